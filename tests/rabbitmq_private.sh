#!/usr/bin/env bash
# A private RabbitMQ for one test (scripts/services/rabbitmq.sh), which the
# test may stop and restart without touching the test-wide broker.
#
#   rabbitmq_private.sh start          prints DIR=<state dir> and URL=<amqp url>
#   rabbitmq_private.sh kill DIR       SIGKILLs the node (epmd stays up)
#   rabbitmq_private.sh restart DIR    starts the node again, same ports and state
#   rabbitmq_private.sh stop DIR       stops the node and epmd, removes DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/services/lib.sh"
source "$here/../scripts/services/rabbitmq.sh"

# group_kill SIGNAL PIDFILE: signals the process group services_spawn made,
# then waits for its leader to go.
group_kill() {
    local pid i
    pid="$(cat "$2" 2>/dev/null)" || return 0
    kill "-$1" -- "-$pid" 2>/dev/null || kill "-$1" "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
}

case "$1" in
start)
    services_start rabbitmq >&2
    echo "DIR=$SERVICES_DIR"
    echo "URL=$SEXTANT_TEST_AMQP_URL"
    ;;
kill)
    group_kill KILL "$2/rabbitmq.pid"
    ;;
restart)
    SERVICES_DIR="$2"
    rabbitmq_spawn_node
    ;;
stop)
    group_kill TERM "$2/rabbitmq.pid"
    group_kill KILL "$2/rabbitmq.pid"
    group_kill TERM "$2/epmd.pid"
    group_kill KILL "$2/epmd.pid"
    rm -rf "$2"
    ;;
*)
    echo "usage: $0 start | kill DIR | restart DIR | stop DIR" >&2
    exit 2
    ;;
esac
