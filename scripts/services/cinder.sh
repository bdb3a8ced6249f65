# shellcheck shell=bash
# Real OpenStack Cinder 29.0.0 (2026.2, the series of Nova 34) from PyPI:
# cinder-api under gunicorn on a free loopback port, cinder-scheduler, and
# one cinder-volume process serving three backends, fake1, fake2 and fake3
# (services cinder@fake1 …, pools cinder@fake1#fake1 …), on this run's PostgreSQL (database cinder) and
# RabbitMQ (its own vhost `cinder`), so it comes after postgres and
# rabbitmq. Only the storage is fake: cinder/sextant_fake_driver.py keeps a
# file per volume and moves it between backends in a driver-assisted
# migration (2 s), so `os-migrate_volume` runs through Cinder's real API,
# scheduler and volume managers. Each backend's pool holds 100 GB. A third
# backend, fake3, is up but disabled from the start (reason "sextant test:
# disabled backend"), so that a test can aim at a disabled backend without
# changing the stack other tests share. It is disabled through
# `PUT /os-services/disable-log-reason`: in Cinder 29.0.0,
# `PUT /os-services/disable` and `/enable` answer 200 with the new status
# but save nothing (cinder/api/v3/services.py never sets `disabled`).
#
# Authentication as nova.sh does it: nova/identity_filter.py where
# `authtoken` was in Cinder's paste pipeline, the token
# SEXTANT_TEST_CINDER_TOKEN (`admin`, the one nova.sh uses) an admin's; with
# the test Keystone (SEXTANT_TEST_KEYSTONE_URL), any other token is
# validated by it. Cinder is not registered in that Keystone's catalog:
# tests reach it through `block_storage_endpoint_override`, and the Nova
# tests' Keystone clouds keep a catalog without storage.
#
# The virtual environment ($SERVICES_CACHE/cinder-<version>-<hash of the
# pins>) is built once from PyPI, pinned by cinder-constraints.txt.
#
# Exports SEXTANT_TEST_CINDER_URL (http://127.0.0.1:PORT/v3, no project id
# in the path: 3.67+), SEXTANT_TEST_CINDER_TOKEN, SEXTANT_TEST_CINDER_DIR
# (configs, and volumes/<backend>/<volume id>, the fake driver's files).

CINDER_VERSION=29.0.0
CINDER_BACKENDS=(fake1 fake2 fake3)
CINDER_DISABLED=fake3

# cinder_venv: prints the venv's path, building it first if needed.
cinder_venv() {
    local pins="$SERVICES_LIB_DIR/cinder-constraints.txt" hash v
    hash="$(sha256sum <"$pins" | cut -c1-12)"
    v="$SERVICES_CACHE/cinder-$CINDER_VERSION-$hash"
    if [[ ! -e "$v/.complete" ]]; then
        [[ -x /usr/bin/python3 ]] || services_apt python3
        /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || services_apt python3-venv
        rm -rf "$v"
        local t0=$SECONDS
        services_log "building the Cinder venv in $v (once)"
        /usr/bin/python3 -m venv "$v" >&2
        "$v/bin/pip" install -q --disable-pip-version-check -c "$pins" \
            "cinder==$CINDER_VERSION" gunicorn psycopg2-binary >&2
        touch "$v/.complete"
        services_log "Cinder venv built in $((SECONDS - t0))s"
    fi
    echo "$v"
}

# cinder_api_call METHOD PATH [BODY]: cinder-api as the admin, at 3.67.
cinder_api_call() {
    curl -sS -f -m 30 -X "$1" -H "X-Auth-Token: $SEXTANT_TEST_CINDER_TOKEN" \
        -H "Content-Type: application/json" -H "OpenStack-API-Version: volume 3.67" \
        "$SEXTANT_TEST_CINDER_URL$2" ${3:+-d "$3"}
}

cinder_write_configs() {
    local d="$1" pg_port="$2" amqp_port="$3" port="$4" backend
    services_as tee "$d/etc/cinder.conf" >/dev/null <<CONF
[DEFAULT]
debug = False
host = cinder
my_ip = 127.0.0.1
state_path = $d/state
auth_strategy = keystone
api_paste_config = $d/etc/api-paste.ini
transport_url = rabbit://guest:guest@127.0.0.1:$amqp_port/cinder
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = $port
osapi_volume_workers = 1
enabled_backends = $(IFS=,; echo "${CINDER_BACKENDS[*]}")
report_interval = 5
service_down_time = 30
periodic_interval = 10
[database]
connection = postgresql+psycopg2://sextant@127.0.0.1:$pg_port/cinder
[oslo_concurrency]
lock_path = $d/lock
[coordination]
backend_url = file://$d/lock
[backend_defaults]
sextant_volumes_dir = $d/volumes
CONF
    for backend in "${CINDER_BACKENDS[@]}"; do
        printf '[%s]\nvolume_driver = sextant_fake_driver.SextantFakeDriver\nvolume_backend_name = %s\n' \
            "$backend" "$backend" | services_as tee -a "$d/etc/cinder.conf" >/dev/null
    done
    # Cinder's keystone pipeline with the identity filter where authtoken was.
    sed -e 's/ authtoken keystonecontext/ sextantidentity keystonecontext/' \
        "$CINDER_VENV/etc/cinder/api-paste.ini" | services_as tee "$d/etc/api-paste.ini" >/dev/null
    grep -q ' sextantidentity keystonecontext' "$d/etc/api-paste.ini" || {
        services_log "Cinder's api-paste.ini has no 'authtoken keystonecontext' pipeline to change"
        return 1
    }
    printf '\n[filter:sextantidentity]\npaste.filter_factory = identity_filter:filter_factory\ntoken = %s\nkeystone = %s\n' \
        "$CINDER_TOKEN" "$([[ -n "${SEXTANT_TEST_KEYSTONE_URL:-}" ]] && echo true || echo false)" |
        services_as tee -a "$d/etc/api-paste.ini" >/dev/null
    if [[ -n "${SEXTANT_TEST_KEYSTONE_URL:-}" ]]; then
        services_as tee -a "$d/etc/cinder.conf" >/dev/null <<CONF
[keystone_authtoken]
www_authenticate_uri = $SEXTANT_TEST_KEYSTONE_URL
auth_url = $SEXTANT_TEST_KEYSTONE_URL
auth_type = password
username = sextant-service
password = $SEXTANT_TEST_KEYSTONE_SERVICE_PASSWORD
user_domain_name = Default
project_name = service
project_domain_name = Default
CONF
    fi
}

# cinder_count PATH KEY: how many entries of KEY cinder-api lists at PATH
# (with `up`: how many of them are up).
cinder_count() {
    cinder_api_call GET "$1" 2>/dev/null |
        python3 -c 'import json,sys; e=json.load(sys.stdin)[sys.argv[1]]; print(sum(x.get("state","up") == "up" for x in e))' \
            "$2" 2>/dev/null || echo 0
}

cinder_start() {
    [[ -n "${SEXTANT_TEST_PG_URL:-}" && -n "${SEXTANT_TEST_AMQP_URL:-}" ]] || {
        services_log "cinder needs postgres and rabbitmq started before it"
        return 1
    }
    local t0=$SECONDS
    CINDER_VENV="$(cinder_venv)"
    local t_venv=$((SECONDS - t0))
    local d="$SERVICES_DIR/cinder" v="$CINDER_VENV" here="$SERVICES_LIB_DIR/cinder"
    local pg_port amqp_port port
    pg_port="$(sed -E 's#.*@127\.0\.0\.1:([0-9]+)/.*#\1#' <<<"$SEXTANT_TEST_PG_URL")"
    amqp_port="$(sed -E 's#.*@127\.0\.0\.1:([0-9]+)/.*#\1#' <<<"$SEXTANT_TEST_AMQP_URL")"
    port="$(services_free_port)"
    CINDER_TOKEN=admin
    services_as mkdir -p "$d/etc" "$d/lock" "$d/state" "$d/volumes"
    cinder_write_configs "$d" "$pg_port" "$amqp_port" "$port"

    services_as "$SEXTANT_TEST_PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U sextant cinder
    rabbitmq_ctl -q add_vhost cinder >/dev/null
    rabbitmq_ctl -q set_permissions -p cinder guest '.*' '.*' '.*' >/dev/null
    services_as "$v/bin/cinder-manage" --config-file "$d/etc/cinder.conf" db sync \
        >"$SERVICES_DIR/cinder-bootstrap.log" 2>&1 || {
        services_log "Cinder's database bootstrap failed:"
        tail -n 40 "$SERVICES_DIR/cinder-bootstrap.log" >&2
        return 1
    }
    local t_boot=$((SECONDS - t0 - t_venv))

    local path="$here:$SERVICES_LIB_DIR/nova"
    services_spawn cinder-api env SEXTANT_CINDER_CONF="$d/etc/cinder.conf" PYTHONPATH="$path" \
        "$v/bin/gunicorn" -b "127.0.0.1:$port" -w 1 --threads 4 \
        --no-control-socket --timeout 120 --chdir "$here" cinder_api_wsgi:application
    services_spawn cinder-scheduler "$v/bin/cinder-scheduler" --config-file "$d/etc/cinder.conf"
    services_spawn cinder-volume env PYTHONPATH="$path" \
        "$v/bin/cinder-volume" --config-file "$d/etc/cinder.conf"
    services_wait_port "$port" cinder-api 90

    export SEXTANT_TEST_CINDER_URL="http://127.0.0.1:$port/v3"
    export SEXTANT_TEST_CINDER_TOKEN="$CINDER_TOKEN"
    export SEXTANT_TEST_CINDER_DIR="$d"

    # Both backends report in, and the scheduler has their pools.
    local i n=${#CINDER_BACKENDS[@]} up=0 pools=0
    for ((i = 0; i < 120; i++)); do
        up="$(cinder_count '/os-services?binary=cinder-volume' services)"
        [[ "$up" -ge $n ]] && break
        sleep 0.5
    done
    [[ "$up" -ge $n ]] || {
        services_log "only $up of $n cinder-volume backends came up; its log:"
        tail -n 40 "$SERVICES_DIR/cinder-volume.log" >&2
        return 1
    }
    for ((i = 0; i < 120; i++)); do
        pools="$(cinder_count /scheduler-stats/get_pools pools)"
        [[ "$pools" -ge $n ]] && break
        sleep 0.5
    done
    [[ "$pools" -ge $n ]] || {
        services_log "Cinder's scheduler has $pools of $n pools; its log:"
        tail -n 40 "$SERVICES_DIR/cinder-scheduler.log" >&2
        return 1
    }
    cinder_api_call PUT /os-services/disable-log-reason \
        "{\"host\": \"cinder@$CINDER_DISABLED\", \"binary\": \"cinder-volume\", \"disabled_reason\": \"sextant test: disabled backend\"}" \
        >/dev/null || {
        services_log "could not disable cinder@$CINDER_DISABLED"
        return 1
    }
    services_log "cinder up in $((SECONDS - t0))s (venv ${t_venv}s, db ${t_boot}s): $SEXTANT_TEST_CINDER_URL"
}

# cinder_stop: ends Cinder's processes together before PostgreSQL and
# RabbitMQ stop (as nova_stop does).
cinder_stop() {
    services_stop_groups 15 "$SERVICES_DIR"/cinder-*.pid
}
