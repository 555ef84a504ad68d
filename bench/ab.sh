#!/usr/bin/env bash
# Interleaved A/B of two Wharf builds: both serve `hello` and `hello-plain`
# at once (each its own port), and wrk alternates between them, so drift of
# the machine hits both alike. Prints one line per cell and the means.
#
# Usage: bench/ab.sh TARGET_A TARGET_B   (cargo target dirs holding
#        release/wharf and wasm32-wasip2/release/{hello,hello_plain}.wasm)
# Env:   C (connections, 64), D (seconds per cell, 4), ROUNDS (5).
# A before/after pair: build the old commit in a git worktree with its own
# CARGO_TARGET_DIR (a copy of target/ keeps that to the host's own crates).
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,10p' "$0"; exit 2; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
work=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null; tail -n 3 "$work"/*.log >&2; rm -rf "$work"' EXIT
port=18100
for side in A B; do
    target=$(cd "$([ $side = A ] && echo "$1" || echo "$2")" && pwd)
    cat > "$work/$side.toml" <<TOML
[components.hello]
wasm = "$target/wasm32-wasip2/release/hello.wasm"
routes = [{ path = "/hello/*" }]
grants = { interfaces = ["config", "log"] }
limits = { max_instances = 1000 }
[components.hello-plain]
wasm = "$target/wasm32-wasip2/release/hello_plain.wasm"
routes = [{ path = "/plain/*" }]
limits = { max_instances = 1000 }
TOML
    port=$((port + 1))
    WHARF_LOG=error "$target/release/wharf" serve --manifest "$work/$side.toml" --listen "127.0.0.1:$port" \
        --data-dir "$work/data-$side" --admin-listen 127.0.0.1:0 >"$work/$side.log" 2>&1 &
    pids+=($!)
done
ports=(18101 18102); names=(A B)
for p in "${ports[@]}"; do
    # A fresh data dir compiles both components first.
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$p/hello/" >/dev/null && break; sleep 0.1; done
    for path in hello plain; do wrk -t2 -c16 -d2s "http://127.0.0.1:$p/$path/" >/dev/null; done
done
for round in $(seq "${ROUNDS:-5}"); do
    for path in hello plain; do
        for i in 0 1; do
            rps=$(wrk -t2 -c"${C:-64}" -d"${D:-4}"s "http://127.0.0.1:${ports[$i]}/$path/" | awk '/Requests\/sec/{print $2}')
            echo "$round $path ${names[$i]} $rps"
        done
    done
done | tee "$work/cells"
echo "means (req/s, ${C:-64} connections):"
awk '{k=$2" "$3; s[k]+=$4; n[k]++} END {for (k in s) printf "  %s %.0f\n", k, s[k]/n[k]}' "$work/cells" | sort
