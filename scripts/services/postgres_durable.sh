# shellcheck shell=bash
# PostgreSQL with its default durability, for `sextant-bench fleet` only
# (not in ALL: the tests run on postgres.sh's server, which turns fsync off
# for speed). fsync and full_page_writes on, as an operator runs it, so a
# commit returns once its WAL is flushed to disk. Otherwise as postgres.sh:
# a private cluster in $SERVICES_DIR/pg-durable, a free loopback port, trust
# authentication (loopback only), the unprivileged service user.
# Exports SEXTANT_TEST_PG_DURABLE_URL=postgres://sextant@127.0.0.1:PORT/sextant.

postgres_durable_start() {
    # shellcheck source=postgres.sh
    source "$SERVICES_LIB_DIR/postgres.sh"
    local bin
    if ! bin="$(postgres_bin)"; then
        services_apt postgresql
        bin="$(postgres_bin)"
    fi
    local data="$SERVICES_DIR/pg-durable/data" sock="$SERVICES_DIR/pg-durable/sock" port
    services_as mkdir -p "$data" "$sock"
    services_as "$bin/initdb" -D "$data" -U sextant --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$SERVICES_DIR/pg-durable-initdb.log" 2>&1
    port="$(services_free_port)"
    services_spawn postgres_durable "$bin/postgres" -D "$data" -h 127.0.0.1 -p "$port" \
        -k "$sock" -c max_connections=200
    services_wait_port "$port" postgres_durable 60
    local i
    for ((i = 0; i < 100; i++)); do
        services_as "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        sleep 0.1
    done
    services_as "$bin/createdb" -h 127.0.0.1 -p "$port" -U sextant sextant
    export SEXTANT_TEST_PG_DURABLE_URL="postgres://sextant@127.0.0.1:$port/sextant"
}

# A fast shutdown (SIGINT), as postgres.sh's.
postgres_durable_stop() {
    local pid
    pid="$(cat "$SERVICES_DIR/postgres_durable.pid" 2>/dev/null)" || return 0
    kill -INT "$pid" 2>/dev/null || true
}
