#!/usr/bin/env bash
# The whole test suite: builds the components the tests load, then runs the
# host's unit tests and the black-box tests in tests/ (which start the real
# `wharf` binary). Same release profile as scripts/build.sh: one build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
echo "==> running tests"
cargo test --release -p wharf "$@"
