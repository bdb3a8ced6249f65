# shellcheck shell=bash
# RabbitMQ from Debian's packages: a private node in $SERVICES_DIR/rabbit with
# its own epmd, on free loopback ports, run as the unprivileged service
# user. Exports SEXTANT_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/ (the
# guest user is allowed on loopback only) and SEXTANT_TEST_RABBITMQ_DIR (the
# node's directory) and SEXTANT_TEST_RABBITMQ_PID; `rabbitmq_ctl ARGS` runs
# rabbitmqctl against the node.
#
# The node also listens with TLS on a second loopback port, with a
# certificate for 127.0.0.1 signed by a CA made with openssl in the
# temporary directory: exports SEXTANT_TEST_AMQPS_URL
# (amqps://guest:guest@127.0.0.1:PORT/) and SEXTANT_TEST_AMQPS_CA (the
# CA's PEM).

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

# rabbitmq_tls_files DIR: a CA and a server certificate for 127.0.0.1 it
# signed (EC P-256, two days), the key readable by the service user only.
rabbitmq_tls_files() {
    command -v openssl >/dev/null || services_apt openssl
    local d="$1"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    mkdir -p "$d"
    openssl req -x509 "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 \
        -subj "/CN=sextant test RabbitMQ CA" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req "${ec[@]}" -keyout "$d/server.key" -out "$d/server.csr" \
        -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
        >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAcreateserial -out "$d/server.pem" -days 2 -extfile "$d/server.ext" 2>/dev/null
    rm -f "$d/ca.key"
    chmod 755 "$d"
    chmod 644 "$d/ca.pem" "$d/server.pem"
    [[ $(id -u) -eq 0 ]] && chown "$SERVICES_USER" "$d/server.key"
    chmod 600 "$d/server.key"
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
    rabbitmq_tls_files "$r/tls"
    RABBITMQ_TLS_PORT="$(services_free_port)"
    printf '%s\n' "listeners.ssl.default = 127.0.0.1:$RABBITMQ_TLS_PORT" \
        "ssl_options.cacertfile = $r/tls/ca.pem" \
        "ssl_options.certfile = $r/tls/server.pem" \
        "ssl_options.keyfile = $r/tls/server.key" \
        "ssl_options.verify = verify_none" \
        "ssl_options.fail_if_no_peer_cert = false" |
        services_as tee -a "$r/rabbitmq.conf" >/dev/null
    printf 'RABBITMQ_PORT=%s\nRABBITMQ_DIST_PORT=%s\nRABBITMQ_EPMD_PORT=%s\n' \
        "$RABBITMQ_PORT" "$RABBITMQ_DIST_PORT" "$RABBITMQ_EPMD_PORT" >"$SERVICES_DIR/rabbit-ports"
    rabbitmq_spawn_node
    services_wait_port "$RABBITMQ_TLS_PORT" rabbitmq 60
    export SEXTANT_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT/"
    export SEXTANT_TEST_AMQPS_URL="amqps://guest:guest@127.0.0.1:$RABBITMQ_TLS_PORT/"
    export SEXTANT_TEST_AMQPS_CA="$r/tls/ca.pem"
    export SEXTANT_TEST_RABBITMQ_DIR="$r"
    export SEXTANT_TEST_RABBITMQ_PID="$(cat "$SERVICES_DIR/rabbitmq.pid")"
}
