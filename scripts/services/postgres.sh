# shellcheck shell=bash
# PostgreSQL 15 from Debian's packages: a private cluster in $SERVICES_DIR/pg,
# on a free loopback port, trust authentication (loopback only), run as the
# unprivileged service user (PostgreSQL refuses root).
# Exports SEXTANT_TEST_PG_URL=postgres://sextant@127.0.0.1:PORT/sextant; the
# role `sextant` is a superuser, so tests create a database each.

postgres_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" ]] && { echo "$d"; return 0; }
    done
    return 1
}

postgres_start() {
    local bin
    if ! bin="$(postgres_bin)"; then
        services_apt postgresql
        bin="$(postgres_bin)"
    fi
    local data="$SERVICES_DIR/pg/data" sock="$SERVICES_DIR/pg/sock" port
    services_as mkdir -p "$data" "$sock"
    services_as "$bin/initdb" -D "$data" -U sextant --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$SERVICES_DIR/pg-initdb.log" 2>&1
    port="$(services_free_port)"
    services_spawn postgres "$bin/postgres" -D "$data" -h 127.0.0.1 -p "$port" -k "$sock" \
        -c fsync=off -c full_page_writes=off -c max_connections=200
    services_wait_port "$port" postgres 60
    local i
    for ((i = 0; i < 100; i++)); do
        services_as "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        sleep 0.1
    done
    services_as "$bin/createdb" -h 127.0.0.1 -p "$port" -U sextant sextant
    export SEXTANT_TEST_PG_URL="postgres://sextant@127.0.0.1:$port/sextant"
    export SEXTANT_TEST_PG_BIN="$bin"
}

# A fast shutdown (SIGINT): the default SIGTERM waits for every client to
# disconnect, which a test's leftover connection can hold off.
postgres_stop() {
    local pid
    pid="$(cat "$SERVICES_DIR/postgres.pid" 2>/dev/null)" || return 0
    kill -INT "$pid" 2>/dev/null || true
}
