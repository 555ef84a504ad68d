#!/usr/bin/env bash
# Hub benchmark: fan-out latency and deliveries/s to 1,000 and 10,000
# WebSocket clients on this machine, and the time to ingest a 1000-event
# Mandrill batch (with no client, and with clients connected).
set -euo pipefail
cd "$(dirname "$0")/.."
# 10,000 clients need 10,000 descriptors in each process.
ulimit -n "$(ulimit -Hn)"
scripts/build.sh >/dev/null
cargo build --release -p wharf-bench 2>/dev/null
target="${CARGO_TARGET_DIR:-target}"
work=$(mktemp -d /tmp/wharf-hub-bench.XXXXXX)
port=$((21000 + RANDOM % 20000))
sed 's|^\[websockets.email\]|[websockets.email]\nmax_clients = 20000|' components.toml >"$work/components.toml"
sed -i "s|target/wasm32-wasip2|$PWD/target/wasm32-wasip2|; s|\"components/mandrill/migrations\"|\"$PWD/components/mandrill/migrations\"|" "$work/components.toml"
# One address opens all 10,000 connections: lift the per-address cap (1,024).
WHARF_LOG=warn "$target/release/wharf" serve --manifest "$work/components.toml" --listen "127.0.0.1:$port" \
    --admin-listen 127.0.0.1:0 --max-connections-per-ip 20000 --data-dir "$work/data" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
until curl -sf "127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done
echo
echo "$(nproc) cores, SQLite; latency = POST start to arrival at a client"
echo
echo "| clients | batches x events | deliveries | deliveries/s | p50 ms | p99 ms | max ms | POST ms (mean) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
"$target/release/hub-fanout" "http://127.0.0.1:$port" 0 5 1000
"$target/release/hub-fanout" "http://127.0.0.1:$port" 1000 10 100
"$target/release/hub-fanout" "http://127.0.0.1:$port" 1000 3 1000
"$target/release/hub-fanout" "http://127.0.0.1:$port" 10000 5 10
"$target/release/hub-fanout" "http://127.0.0.1:$port" 10000 2 100
