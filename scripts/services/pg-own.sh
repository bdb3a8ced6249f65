#!/usr/bin/env bash
# A PostgreSQL instance of a test's own, which the test stops, starts and
# restarts (tests/fleet.rs): the shared test server
# (postgres.sh) must stay up for the other tests.
#
#   pg-own.sh start DIR     initdb into DIR/pg on first use, start it on a free
#                           loopback port (kept in DIR/pg/port for the next
#                           start); prints postgres://sextant@127.0.0.1:PORT/sextant
#   pg-own.sh stop DIR      fast shutdown (SIGINT: clients are disconnected)
#   pg-own.sh restart DIR   fast shutdown, then start on the same port
#
# As the unprivileged service user when root (PostgreSQL refuses root), as
# postgres.sh does; DIR must be readable by that user.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=postgres.sh
source "$here/postgres.sh"

cmd="${1:?start, stop or restart}"
dir="${2:?the directory}"
pg="$dir/pg"
SERVICES_DIR="$pg"

if ! bin="$(postgres_bin)"; then
    services_apt postgresql
    bin="$(postgres_bin)"
fi

own_start() {
    if [[ ! -d "$pg/data" ]]; then
        services_ensure_user
        mkdir -p "$pg"
        [[ $(id -u) -eq 0 ]] && chown "$SERVICES_USER" "$pg"
        services_as mkdir -p "$pg/data" "$pg/sock"
        services_as "$bin/initdb" -D "$pg/data" -U sextant --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$dir/pg-initdb.log" 2>&1
        services_free_port >"$dir/pg-port"
    fi
    local port
    port="$(cat "$dir/pg-port")"
    services_as "$bin/pg_ctl" -D "$pg/data" -l "$pg/log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $pg/sock -c fsync=off -c full_page_writes=off" start >/dev/null
    if [[ ! -e "$dir/pg-created" ]]; then
        services_as "$bin/createdb" -h 127.0.0.1 -p "$port" -U sextant sextant
        touch "$dir/pg-created"
    fi
    echo "postgres://sextant@127.0.0.1:$port/sextant"
}

own_stop() {
    [[ -f "$pg/data/postmaster.pid" ]] || return 0
    services_as "$bin/pg_ctl" -D "$pg/data" -m fast -w -t 60 stop >/dev/null
}

case "$cmd" in
start) own_start ;;
stop) own_stop ;;
restart)
    own_stop
    own_start >/dev/null
    ;;
*)
    echo "pg-own.sh: unknown command $cmd (start, stop or restart)" >&2
    exit 2
    ;;
esac
