#!/usr/bin/env bash
# The newcomer's first command: build everything, then serve every bundled
# component on SQLite in ./data. Extra arguments go to `wharf serve`
# (e.g. --listen 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec target/release/wharf serve "$@"
