#!/usr/bin/env bash
# The whole test suite: builds the components the tests load, starts a
# throwaway PostgreSQL server (installing it when missing), then runs the
# host's unit tests and the black-box tests in tests/ (which start the real
# `wharf` binary) on SQLite and on PostgreSQL. Same release profile as
# scripts/build.sh: one build serves both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
start_test_postgres
echo "==> running tests"
cargo test --release -p wharf "$@"
