# shellcheck shell=bash
# The test command's real services: each one runs on 127.0.0.1 with its state
# in one temporary directory, as an unprivileged user when the test command
# runs as root, and is stopped by pid (exactly the processes started here).
#
#   source scripts/services/lib.sh
#   services_start postgres [rabbitmq ...]   # exports SEXTANT_TEST_* for tests
#   trap services_stop EXIT
#
# Each service NAME lives in scripts/services/NAME.sh and defines
# `NAME_start` (which calls services_spawn / services_wait_port and exports
# the variables its tests read) and, optionally, `NAME_stop`.
# Ports are picked free at start, so several runs can share a machine.
# Python tools go into virtual environments under the build directory
# ("$SERVICES_CACHE"), kept between runs.

SERVICES_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${SERVICES_CACHE:=${CARGO_TARGET_DIR:-$SERVICES_LIB_DIR/../../target}/services-cache}"
SERVICES_USER="${SERVICES_USER:-sextant-svc}"
SERVICES_DIR=""
SERVICES_PIDS=()
SERVICES_STARTED=()

services_log() { printf 'services: %s\n' "$*" >&2; }

# services_as CMD...: runs CMD as the unprivileged service user when root
# (setpriv execs, so the pid is the service's own).
services_as() {
    if [[ $(id -u) -eq 0 ]]; then
        setpriv --reuid="$SERVICES_USER" --regid="$SERVICES_USER" --init-groups \
            env HOME="$SERVICES_DIR" USER="$SERVICES_USER" "$@"
    else
        "$@"
    fi
}

# exec_as CMD...: replaces this shell with CMD run as the service user.
exec_as() {
    if [[ $(id -u) -eq 0 ]]; then
        exec setpriv --reuid="$SERVICES_USER" --regid="$SERVICES_USER" --init-groups \
            env HOME="$SERVICES_DIR" USER="$SERVICES_USER" "$@"
    fi
    exec "$@"
}

services_ensure_user() {
    [[ $(id -u) -eq 0 ]] || return 0
    if ! getent passwd "$SERVICES_USER" >/dev/null; then
        useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$SERVICES_USER"
    fi
}

# services_free_port: prints a TCP port free on 127.0.0.1 right now.
services_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# services_apt PACKAGE...: installs the Debian packages not yet installed.
services_apt() {
    local missing=()
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    services_log "installing ${missing[*]}"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >/dev/null
    # Debian's packages start their daemon on install unless told not to.
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
}

# services_spawn NAME CMD...: starts CMD in the background, as the service
# user, its output in $SERVICES_DIR/NAME.log; records its pid.
services_spawn() {
    local name="$1"
    shift
    # exec all the way down: $! is the service's pid, and setsid makes it the
    # leader of its own process group, which services_stop ends as a whole.
    (exec setsid "$BASH" -c 'source "$0"; SERVICES_DIR="$1"; shift; exec_as "$@"' \
        "$SERVICES_LIB_DIR/lib.sh" "$SERVICES_DIR" "$@" >"$SERVICES_DIR/$name.log" 2>&1) &
    SERVICES_PIDS+=("$!")
    echo "$!" >"$SERVICES_DIR/$name.pid"
}

# services_wait_port PORT NAME [SECONDS]: waits until 127.0.0.1:PORT accepts.
services_wait_port() {
    local port="$1" name="$2" secs="${3:-60}" i
    for ((i = 0; i < secs * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    services_log "$name did not listen on 127.0.0.1:$port within ${secs}s; its log:"
    tail -n 40 "$SERVICES_DIR/$name.log" >&2 || true
    return 1
}

# services_stop_groups SECONDS PIDFILE...: ends the process groups led by
# the pids in PIDFILEs (those that exist) all at once: TERM to each group,
# up to SECONDS for all their leaders to exit, then KILL to the groups
# left. For a service of several processes (Nova, Cinder) to stop together,
# in its NAME_stop, before the services it depends on (PostgreSQL,
# RabbitMQ) stop and wait on its connections.
services_stop_groups() {
    local secs="$1" f pid i alive pids=()
    shift
    for f in "$@"; do
        if [[ -e "$f" ]]; then pids+=("$(cat "$f")"); fi
    done
    for pid in "${pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for ((i = 0; i < secs * 10; i++)); do
        alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [[ $alive -eq 0 ]] && return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
}

services_start() {
    services_ensure_user
    SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/sextant-services.XXXXXX")"
    chmod 755 "$SERVICES_DIR"
    [[ $(id -u) -eq 0 ]] && chown "$SERVICES_USER" "$SERVICES_DIR"
    mkdir -p "$SERVICES_CACHE"
    export SEXTANT_TEST_SERVICES_DIR="$SERVICES_DIR"
    local name
    for name in "$@"; do
        # shellcheck source=/dev/null
        source "$SERVICES_LIB_DIR/$name.sh"
        services_log "starting $name"
        "${name}_start"
        SERVICES_STARTED+=("$name")
    done
}

services_stop() {
    local name pid i n
    # In reverse order: a service stops before those it depends on.
    for ((n = ${#SERVICES_STARTED[@]} - 1; n >= 0; n--)); do
        name="${SERVICES_STARTED[n]}"
        if declare -F "${name}_stop" >/dev/null; then "${name}_stop" || true; fi
    done
    for pid in "${SERVICES_PIDS[@]}"; do
        # setsid made each service its own process group: end the group.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SERVICES_PIDS[@]}"; do
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    SERVICES_PIDS=()
    SERVICES_STARTED=()
    [[ -n "$SERVICES_DIR" ]] && rm -rf "$SERVICES_DIR"
    SERVICES_DIR=""
}
