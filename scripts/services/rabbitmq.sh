# shellcheck shell=bash
# RabbitMQ from Debian's packages: a private node in $SERVICES_DIR/rabbit with
# its own epmd, on free loopback ports, run as the unprivileged service
# user. Exports SEXTANT_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/ (the
# guest user is allowed on loopback only) and SEXTANT_TEST_RABBITMQ_DIR (the
# node's directory) and SEXTANT_TEST_RABBITMQ_PID; `rabbitmq_ctl ARGS` runs
# rabbitmqctl against the node.

rabbitmq_sbin() {
    ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin 2>/dev/null | tail -n 1
}

# rabbitmq_env: fills RABBITMQ_ENV, the node's private environment. The node
# uses this run's own epmd (on a free port; epmd always adds the IPv6
# loopback ::1 beside 127.0.0.1, and nothing else).
rabbitmq_env() {
    local r="$SERVICES_DIR/rabbit"
    RABBITMQ_ENV=(HOME="$r" RABBITMQ_NODENAME="rabbit@localhost"
        RABBITMQ_CONFIG_FILE="$r/rabbitmq.conf"
        RABBITMQ_ENABLED_PLUGINS_FILE="$r/enabled_plugins"
        RABBITMQ_MNESIA_BASE="$r/mnesia" RABBITMQ_LOG_BASE="$r/log"
        RABBITMQ_CONF_ENV_FILE="$r/none.conf" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$RABBITMQ_PORT" RABBITMQ_DIST_PORT="$RABBITMQ_DIST_PORT"
        ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$RABBITMQ_EPMD_PORT"
        ERL_CRASH_DUMP="$r/erl_crash.dump" RABBITMQ_LOGS=-
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
}

# rabbitmq_spawn_node: starts this run's node (again) on the ports chosen by
# rabbitmq_start (kept in $SERVICES_DIR/rabbit-ports), with the same state
# directory: a test that stops the node restarts it identically.
rabbitmq_spawn_node() {
    # shellcheck source=/dev/null
    source "$SERVICES_DIR/rabbit-ports"
    rabbitmq_env
    services_spawn rabbitmq env "${RABBITMQ_ENV[@]}" "$(rabbitmq_sbin)/rabbitmq-server"
    services_wait_port "$RABBITMQ_PORT" rabbitmq 120
}

# rabbitmq_ctl ARGS...: rabbitmqctl against this run's node.
rabbitmq_ctl() {
    rabbitmq_env
    services_as env "${RABBITMQ_ENV[@]}" "$(rabbitmq_sbin)/rabbitmqctl" "$@"
}

rabbitmq_start() {
    [[ -n "$(rabbitmq_sbin)" ]] || services_apt rabbitmq-server
    local r="$SERVICES_DIR/rabbit"
    RABBITMQ_PORT="$(services_free_port)"
    RABBITMQ_DIST_PORT="$(services_free_port)"
    RABBITMQ_EPMD_PORT="$(services_free_port)"
    services_as mkdir -p "$r/mnesia" "$r/log"
    printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\n' "$RABBITMQ_PORT" |
        services_as tee "$r/rabbitmq.conf" >/dev/null
    echo '[].' | services_as tee "$r/enabled_plugins" >/dev/null
    services_as touch "$r/none.conf"
    # This run's own epmd, in the foreground, so that it is stopped by pid too.
    services_spawn epmd env ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$RABBITMQ_EPMD_PORT"
    services_wait_port "$RABBITMQ_EPMD_PORT" epmd 20
    printf 'RABBITMQ_PORT=%s\nRABBITMQ_DIST_PORT=%s\nRABBITMQ_EPMD_PORT=%s\n' \
        "$RABBITMQ_PORT" "$RABBITMQ_DIST_PORT" "$RABBITMQ_EPMD_PORT" >"$SERVICES_DIR/rabbit-ports"
    rabbitmq_spawn_node
    export SEXTANT_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT/"
    export SEXTANT_TEST_RABBITMQ_DIR="$r"
    export SEXTANT_TEST_RABBITMQ_PID="$(cat "$SERVICES_DIR/rabbitmq.pid")"
}
