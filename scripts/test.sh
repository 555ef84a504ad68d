#!/usr/bin/env bash
# The whole test suite: builds the components the tests load, starts a
# throwaway PostgreSQL server (installing it when missing), installs Chromium
# for the page tests when missing and PyPI's openapi-spec-validator and
# schemathesis (in a venv under ~/.cache/wharf-py) for the OpenAPI tests, then runs the
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
# The OpenAPI test checks /openapi.json with a real validator (PyPI's
# openapi-spec-validator) in a venv of its own, kept across runs.
OPENAPI_VALIDATOR="openapi-spec-validator==0.9.0"
# The adversarial run over /openapi.json (tests/all/schemathesis.rs).
SCHEMATHESIS="schemathesis==4.32.5"
py_venv="${XDG_CACHE_HOME:-$HOME/.cache}/wharf-py"
make_py_venv() {
    rm -rf "$py_venv" && python3 -m venv "$py_venv"
}
install_openapi_validator() {
    # A venv without pip (a failed attempt, or its Python upgraded away) is made anew.
    if ! "$py_venv/bin/python" -m pip --version >/dev/null 2>&1 && ! make_py_venv >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
        echo "==> installing Python's venv (Debian packages python3, python3-venv)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
        make_py_venv || return 1
    fi
    "$py_venv/bin/python" -m pip install -q --disable-pip-version-check "$OPENAPI_VALIDATOR" "$SCHEMATHESIS" || return 1
}
if install_openapi_validator; then
    export WHARF_TEST_PYTHON="$py_venv/bin/python"
    export WHARF_TEST_SCHEMATHESIS="$py_venv/bin/schemathesis"
    echo "==> $("$WHARF_TEST_PYTHON" -m openapi_spec_validator --version 2>&1 | head -n 1) in $py_venv"
else
    banner "openapi-spec-validator could not be installed in $py_venv: the OpenAPI validator test will be SKIPPED"
fi
echo "==> running tests"
# Two invocations on purpose: compiled natively, the guest crates' wit-bindgen
# macros turn on `indexmap/default` for build-time crates, and cargo's feature
# unification would then rebuild wasmtime (and everything above it) a second
# time instead of reusing the host that scripts/build.sh just built.
cargo test --release -p wharf -p wharf-spec -p wharf-auth -p wharf-store -p wharf-queue -p wharf-hub -p wharf-outbound \
    -p wharf-runtime -p wharf-sqlite-sandbox -p wharf-fuzz-checks -p wharf-fuzz-replay -p wharf-schedule "$@"
# The guest library's and the components' own unit tests run natively.
cargo test --release -p wharf-guest --features wharf-guest/reply,wharf-guest/url \
    -p mandrill -p eye -p content -p users "$@"
