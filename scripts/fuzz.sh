#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS each (default 60),
# with cargo-fuzz and libFuzzer on a nightly toolchain (installed with rustup
# when missing; the README's test command does not need it). Each target
# starts from, and adds to, its committed corpus in fuzz/corpus/TARGET. A crash
# is copied to fuzz/regressions/TARGET, where crates/fuzz-checks/tests/replay.rs
# replays it in the normal test suite; the script then exits 1.
#
#   scripts/fuzz.sh 60            # every target, 60 s each
#   scripts/fuzz.sh 30 sql_entry  # one target
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
# No sanitizer by default: the code under test is safe Rust except the SQLite
# sandbox, and AddressSanitizer over wasmtime makes the build several times
# slower on two cores. FUZZ_SANITIZER=address brings it back.
sanitizer="${FUZZ_SANITIZER:-none}"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "==> installing the nightly toolchain (for libFuzzer's instrumentation)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# The host's targets (fuzz/) and the components' (fuzz/components/), each
# package built on its own: the components' need neither the host nor wasmtime.
fuzz_dirs=(fuzz/components fuzz)
fuzz_dir_of() {
    local dir
    for dir in "${fuzz_dirs[@]}"; do
        if cargo +nightly fuzz list --fuzz-dir "$dir" | grep -qx "$1"; then
            echo "$dir"
            return
        fi
    done
    echo "no fuzz target named $1" >&2
    exit 2
}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for dir in "${fuzz_dirs[@]}"; do
        mapfile -t -O "${#targets[@]}" targets < <(cargo +nightly fuzz list --fuzz-dir "$dir")
    done
fi

failed=0
printf '%-16s %8s %12s %8s\n' target seconds executions crashes
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/regressions/$target" "fuzz/artifacts/$target"
    log="fuzz/artifacts/$target/last-run.log"
    # -rss_limit_mb: the sandbox allows 512 MiB of SQLite heap plus the fuzzer's own.
    dir=$(fuzz_dir_of "$target")
    if ! cargo +nightly fuzz run --fuzz-dir "$dir" --release --sanitizer "$sanitizer" "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1; then
        failed=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    crashes=0
    for crash in "fuzz/artifacts/$target"/crash-* "fuzz/artifacts/$target"/oom-* "fuzz/artifacts/$target"/timeout-*; do
        [ -e "$crash" ] || continue
        cp "$crash" "fuzz/regressions/$target/"
        crashes=$((crashes + 1))
    done
    printf '%-16s %8s %12s %8s\n' "$target" "$seconds" "$runs" "$crashes"
    [ "$crashes" -eq 0 ] || failed=1
done
if [ "$failed" -ne 0 ]; then
    echo "a target failed: see fuzz/artifacts/*/last-run.log; crashes were copied to fuzz/regressions/ (commit them)" >&2
    exit 1
fi
