#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: `scripts/postgres.sh start|stop|status`.
#
# start: initdb's a cluster under $ZAPFN_PG_DIR (default /tmp/zapfn-pg), runs it on
#        127.0.0.1:$ZAPFN_PG_PORT (default 5433) with trust auth and fsync off (test
#        data only), creates database `zapfn` owned by role `zapfn`, and prints
#        ZAPFN_DATABASE_URL=postgres://zapfn@127.0.0.1:5433/zapfn
#        (export it as ZAPFN_TEST_DATABASE_URL for the store tests).
# stop:  stops the server and deletes the cluster directory.
# As root, the server runs as the OS user `postgres` (PostgreSQL refuses to run as root).
set -euo pipefail

dir=${ZAPFN_PG_DIR:-/tmp/zapfn-pg}
port=${ZAPFN_PG_PORT:-5433}
data="$dir/data"
url="postgres://zapfn@127.0.0.1:$port/zapfn"

find_bin() {
    local candidate
    for candidate in /usr/lib/postgresql/*/bin; do
        [ -x "$candidate/pg_ctl" ] && bin=$candidate
    done
    if [ -z "${bin:-}" ] && command -v pg_ctl >/dev/null; then
        bin=$(dirname "$(command -v pg_ctl)")
    fi
    if [ -z "${bin:-}" ]; then
        echo "postgres.sh: no PostgreSQL server found; install it with: apt-get install -y postgresql" >&2
        exit 1
    fi
}

# Runs a PostgreSQL program as a user it accepts.
as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "postgres.sh: running as root needs the OS user 'postgres' (apt-get install -y postgresql creates it)" >&2
            exit 1
        fi
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() {
    [ -f "$data/PG_VERSION" ] && as_server_user "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start() {
    if running; then
        echo "ZAPFN_DATABASE_URL=$url"
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
    as_server_user "$bin/initdb" -D "$data" -U zapfn --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    as_server_user "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    as_server_user "$bin/createdb" -h 127.0.0.1 -p "$port" -U zapfn zapfn
    echo "ZAPFN_DATABASE_URL=$url"
}

stop() {
    if running; then
        as_server_user "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
    rm -rf "$dir"
}

find_bin
case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if running; then echo "running: ZAPFN_DATABASE_URL=$url"; else echo "not running"; exit 1; fi ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
