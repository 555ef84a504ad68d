#!/usr/bin/env bash
# Storage and queue benchmark, on SQLite and PostgreSQL, in one run:
# - queue: jobs enqueued/s over HTTP (wrk, 32 connections, 5 s; each request
#   enqueues one job), then jobs completed/s until the queue is drained
#   (2 workers; the handler does two INSERTs);
# - store: one indexed SELECT round trip from inside a component (host call)
#   vs the same query from native Rust (sqlx), microseconds per query.
# Needs: wrk (apt-get install wrk), python3; PostgreSQL as scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
scripts/build.sh >/dev/null
cargo build --release -p wharf-bench 2>/dev/null
source scripts/postgres.sh
start_test_postgres
target="${CARGO_TARGET_DIR:-target}"
work=$(mktemp -d /tmp/wharf-storage-bench.XXXXXX)
rows=()

run_backend() {
    local backend=$1 url=$2 port=$((21000 + RANDOM % 20000)) dir="$work/$1"
    mkdir -p "$dir"
    cat >"$dir/components.toml" <<TOML
[components.storetest]
wasm = "$PWD/target/wasm32-wasip2/release/storetest.wasm"
routes = [{ path = "/store/*" }]
grants = { interfaces = ["store", "queue"] }
migrations = "$PWD/tests/components/storetest/migrations"
limits = { max_instances = 200 }
queue = { workers = 2 }
TOML
    DATABASE_URL=$url WHARF_LOG=warn "$target/release/wharf" serve --manifest "$dir/components.toml" \
        --listen "127.0.0.1:$port" --data-dir "$dir/data" &
    local pid=$!
    until curl -sf "127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done
    local base="http://127.0.0.1:$port"
    # Readiness details (job counts) are on the operator API.
    local admin="http://$(cat "$dir/data/admin.addr")"
    curl -sf "$base/store/execute" -d '{"sql":"INSERT INTO items (id, name) VALUES (1, $1)","params":["bench"]}' >/dev/null

    # Store round trip: inside the component vs native.
    local sql='SELECT id, name, note FROM items WHERE id = $1'
    local in_component native
    in_component=$(curl -sf "$base/store/repeat" -d "{\"sql\":\"$sql\",\"params\":[1],\"times\":5000}" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["us_per_query"],1))')
    if [ "$backend" = sqlite ]; then
        native=$("$target/release/store-native" "sqlite:$dir/data/db/storetest.sqlite" "$sql" 5000)
    else
        native=$("$target/release/store-native" "$url" "$sql" 5000 storetest)
    fi

    # Queue: enqueue for 5 s, then drain.
    local start end enq_rps total
    start=$(date +%s.%N)
    enq_rps=$(wrk -t2 -c32 -d5s -s bench/enqueue.lua "$base/store/enqueue" | awk '/Requests\/sec/ {print $2}')
    until [ "$(curl -sf "$admin/readyz" | python3 -c 'import json,sys; j=json.load(sys.stdin)["components"]["storetest"].get("jobs",{}); print(j.get("queued",0)+j.get("running",0))')" = 0 ]; do sleep 0.2; done
    end=$(date +%s.%N)
    total=$(curl -sf "$admin/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["components"]["storetest"]["jobs"].get("done",0))')
    local done_rps
    done_rps=$(python3 -c "print(round($total / ($end - $start)))")
    rows+=("| $backend | ${enq_rps%.*} | $done_rps | $total | $in_component | $native |")
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_backend sqlite ""
if [ -n "${WHARF_TEST_POSTGRES_URL:-}" ]; then
    psql "$WHARF_TEST_POSTGRES_URL" -qc "CREATE DATABASE wharf_bench" >/dev/null
    run_backend postgres "${WHARF_TEST_POSTGRES_URL%/*}/wharf_bench"
fi
echo
echo "$(nproc) cores; wrk -t2 -c32 -d5s enqueue; 2 workers; store round trip = 5000 sequential queries"
echo
echo "| backend | enqueued/s (HTTP) | completed/s | jobs | store query in component (µs) | same query native sqlx (µs) |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
rm -rf "$work"
