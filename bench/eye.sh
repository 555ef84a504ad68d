#!/usr/bin/env bash
# The eye's benchmark, on SQLite and PostgreSQL in one run:
# - accepted events/s: wrk POSTs events (64 connections, 10 s), each answered 202;
# - processed events/s: accepted events / time until the queue is drained (4 workers);
# - filter latency with 1,000,000 stored events (seeded with SQL), for three
#   typical queries (wrk, 8 connections, 5 s): p50/p99.
set -uo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
scripts/build.sh >/dev/null
source scripts/postgres.sh
start_test_postgres
target="${CARGO_TARGET_DIR:-target}"
work=$(mktemp -d /tmp/wharf-eye-bench.XXXXXX)
rows=()
latency() { # url -> "p50 p99" in ms
    wrk -t2 -c8 -d5s --latency "$1" | awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        $1=="50%" {p50=ms($2)} $1=="99%" {p99=ms($2)} END {printf "%.2f / %.2f", p50, p99}'
}

run_backend() {
    local backend=$1 url=$2 port=$((21000 + RANDOM % 20000)) dir="$work/$1"
    mkdir -p "$dir"
    sed "s|target/wasm32-wasip2|$PWD/target/wasm32-wasip2|; s|\"components/|\"$PWD/components/|" components.toml >"$dir/components.toml"
    DATABASE_URL=$url WHARF_LOG=warn "$target/release/wharf" serve --manifest "$dir/components.toml" \
        --listen "127.0.0.1:$port" --data-dir "$dir/data" &
    local pid=$!
    until curl -sf "127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done
    local base="http://127.0.0.1:$port"
    # Readiness details (job counts) are on the operator API.
    local admin="http://$(cat "$dir/data/admin.addr")"
    export EYE_SESSION
    EYE_SESSION=$(curl -sf -X POST "$base/eye/sessions/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    local start accepted_rps end processed
    start=$(date +%s.%N)
    accepted_rps=$(wrk -t2 -c64 -d10s -s bench/eye-event.lua "$base/eye/events/" | awk '/Requests\/sec/ {print $2}')
    until [ "$(curl -s "$admin/readyz" | python3 -c 'import json,sys; j=json.load(sys.stdin)["components"]["eye"].get("jobs",{}); print(j.get("queued",0)+j.get("running",0))' 2>/dev/null)" = 0 ]; do sleep 0.5; done
    end=$(date +%s.%N)
    processed=$(curl -s "$base/eye/events/?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')

    # Seed 1,000,000 events over 1,000 sessions straight into the component's tables.
    local seed="INSERT INTO events (session_id, category, name, data, ts_us, created_at)
        SELECT 'bench-' || (n % 1000), CASE WHEN n % 3 = 0 THEN 'form interaction' ELSE 'page interaction' END,
               'e' || (n % 50), '{\"path\": \"/\"}', 1600000000000000 + n * 1000000, '2021-01-01T00:00:00Z'"
    if [ "$backend" = sqlite ]; then
        python3 - "$dir/data/db/eye.sqlite" "$seed" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); db.execute("PRAGMA busy_timeout = 10000")
db.execute("WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000000) " + sys.argv[2] + " FROM s")
db.commit()
PY
    else
        psql "$url" -q -c "SET search_path TO eye; $seed FROM generate_series(1, 1000000) AS n; ANALYZE events;"
    fi
    local q1 q2 q3
    q1=$(latency "$base/eye/events/?session=bench-42&limit=50")
    q2=$(latency "$base/eye/events/?category=form%20interaction&timestamp__gte=2021-01-01T00:00:00Z&timestamp__lte=2021-01-02T00:00:00Z&limit=50")
    q3=$(latency "$base/eye/events/?name=e7&limit=50&offset=1000")
    rows+=("| $backend | ${accepted_rps%.*} | $(python3 -c "print(round($processed / ($end - $start)))") | $processed | $q1 | $q2 | $q3 |")
    echo "${rows[-1]}" >&2
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_backend sqlite ""
if [ -n "${WHARF_TEST_POSTGRES_URL:-}" ]; then
    psql "$WHARF_TEST_POSTGRES_URL" -qc "CREATE DATABASE wharf_eye_bench" >/dev/null
    run_backend postgres "${WHARF_TEST_POSTGRES_URL%/*}/wharf_eye_bench"
fi
echo
echo "$(nproc) cores; wrk -t2 -c64 -d10s POST; 4 workers; queries: wrk -c8 -d5s over 1,000,000 events (p50 / p99 ms)"
echo
echo "| backend | accepted/s (202) | processed/s | events | ?session= | ?category=&timestamp range | ?name=&offset=1000 |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
rm -rf "$work"
