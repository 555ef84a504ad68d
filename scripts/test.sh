#!/usr/bin/env bash
# The whole test suite: builds the components the tests load, starts a
# throwaway PostgreSQL server (installing it when missing), installs Chromium
# for the page tests when missing, then runs the
# host's unit tests and the black-box tests in tests/ (which start the real
# `wharf` binary) on SQLite and on PostgreSQL. Same release profile as
# scripts/build.sh: one build serves both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
start_test_postgres

# The page tests drive a real headless Chromium (Debian's package).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing Chromium (Debian package chromium)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        banner "Chromium is not installed and cannot be installed here: the page tests will be SKIPPED"
    fi
fi
echo "==> running tests"
cargo test --release -p wharf "$@"
