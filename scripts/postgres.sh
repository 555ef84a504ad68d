# Sourced by scripts/test.sh: a throwaway PostgreSQL server on loopback for
# the tests, installed from Debian's `postgresql` package when missing (as
# root), initialised in a temp dir, and stopped when the tests end. Exports
# WHARF_TEST_POSTGRES_URL. Without PostgreSQL it says so loudly and the tests
# run on SQLite only, except under CI=true, where that is a failure.

banner() {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!!! $*" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}

postgres_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

stop_test_postgres() {
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
        "${PG_RUN[@]}" "$(postgres_bin)/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
}

start_test_postgres() {
    local bin
    bin=$(postgres_bin)
    if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing PostgreSQL (Debian package postgresql)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null
        bin=$(postgres_bin)
    fi
    if [ -z "$bin" ]; then
        banner "PostgreSQL is not installed and cannot be installed here (needs root and apt-get): the PostgreSQL tests will be SKIPPED"
        if [ "${CI:-}" = true ]; then
            echo "CI=true: PostgreSQL is required; failing" >&2
            exit 1
        fi
        return 0
    fi
    PG_DIR=$(mktemp -d /tmp/wharf-pg.XXXXXX)
    PG_RUN=()
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses to run as root.
        chown postgres "$PG_DIR"
        PG_RUN=(runuser -u postgres --)
    fi
    "${PG_RUN[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
    local port attempt
    for attempt in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 30000))
        # Durability settings off: the tests kill Wharf, never PostgreSQL.
        if "${PG_RUN[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
            -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=500 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null; then
            trap stop_test_postgres EXIT
            export WHARF_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
            echo "==> PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
            return 0
        fi
    done
    cat "$PG_DIR/server.log" >&2
    echo "could not start PostgreSQL" >&2
    exit 1
}
