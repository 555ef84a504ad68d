#!/usr/bin/env bash
# Builds everything `wharf serve` needs: the wasm32-wasip2 target (installed
# with rustup when missing), every component, and the host in release mode.
# When CARGO_TARGET_DIR points outside the repository, the results are copied
# into ./target so `target/release/wharf serve` works from the repo root.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "==> installing the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi

echo "==> building components (wasm32-wasip2)"
# Every package but the host's own crates (all named `wharf*`; wharf-guest is
# still built, as the components' dependency).
cargo build --release --target wasm32-wasip2 --workspace --exclude 'wharf*'

echo "==> building the host"
cargo build --release -p wharf

target_dir="${CARGO_TARGET_DIR:-target}"
if [ "$(cd "$target_dir" && pwd -P)" != "$(mkdir -p target && cd target && pwd -P)" ]; then
    mkdir -p target/release target/wasm32-wasip2/release
    cp "$target_dir/release/wharf" target/release/wharf
    cp "$target_dir"/wasm32-wasip2/release/*.wasm target/wasm32-wasip2/release/
fi
