# shellcheck shell=bash
# Real OpenStack Nova 34.0.0 and Placement 16.0.0 from PyPI: nova-api and
# placement-api under gunicorn on free loopback ports, nova-conductor,
# nova-scheduler and three nova-compute processes (hosts cmp1, cmp2, cmp3) on
# Nova's fake virt driver, on this run's PostgreSQL (databases nova_api,
# nova_cell0, nova_cell1, placement) and RabbitMQ (its own vhost `nova`), so
# it comes after postgres and rabbitmq. Test stacks only, no Keystone:
# Nova's paste pipeline has nova/identity_filter.py where `authtoken` was
# and Placement runs with `auth_strategy = noauth2` (nova/placement_wsgi.py):
# in both the token SEXTANT_TEST_NOVA_TOKEN (`admin`, the one Placement's
# noauth2 takes for an admin's, so that one clouds.yaml `admin_token` serves
# both) is an admin's. Without Keystone, Nova refuses any other with 401.
# When keystone.sh ran first (SEXTANT_TEST_KEYSTONE_URL), any other token
# goes through keystonemiddleware's `authtoken` in both, validated by that
# Keystone as the user sextant-service, and compute and placement are
# registered in its catalog (RegionOne, public, internal and admin). nova/standins.py answers for Glance (one image) and
# Neutron (no ports). Everything runs as the service user, stopped by pid.
#
# The virtual environment ($SERVICES_CACHE/nova-<hash of the pins>) is
# built once from PyPI, pinned by nova-constraints.txt, and kept.
#
# Placement is served over https, with a certificate for 127.0.0.1 signed by
# a CA made for this run (SEXTANT_TEST_CA_FILE, which Nova is told too).
#
# Exports SEXTANT_TEST_NOVA_URL (the compute endpoint, .../v2.1),
# SEXTANT_TEST_PLACEMENT_URL (https), SEXTANT_TEST_CA_FILE,
# SEXTANT_TEST_NOVA_TOKEN, SEXTANT_TEST_NOVA_IMAGE
# (the one bootable image), SEXTANT_TEST_NOVA_DIR (configs and logs) and
# SEXTANT_TEST_NOVA_VENV. Flavors sextant.small (1 vCPU, 512 MB, 1 GB) and
# sextant.medium (2 vCPU, 1024 MB, 2 GB) exist.
#
# cmp1 and cmp2 are MediumFakeDriver's 10 vCPU, 8192 MB, 1028 GB, with
# reservations and allocation ratios that differ per host, so that a
# collector reading them is told apart from one that assumes defaults; cmp3
# is FakeLiveMigrateDriver (1000 vCPU, 800000 MB, 600000 GB), whose live
# migrations out take 5 s and can be aborted, so that a test can act while
# one runs:
#   cmp1: cpu_allocation_ratio 4.0, reserved_host_memory_mb 512
#   cmp2: ram_allocation_ratio 1.5, reserved_host_cpus 1, reserved_host_disk_mb 10240
#   cmp3: ratios 1.0, nothing reserved

NOVA_VERSION=34.0.0
PLACEMENT_VERSION=16.0.0
NOVA_COMPUTES=(cmp1 cmp2 cmp3)
NOVA_IMAGE_ID=5b1f2c3e-7a5d-4c4e-9f61-0d3c1e2a9b10

# nova_venv: prints the venv's path, building it first if needed. Built with
# Debian's python3 (the service user must be able to run it; a python under
# /root is out of its reach) and marked complete only once pip succeeded.
nova_venv() {
    local pins="$SERVICES_LIB_DIR/nova-constraints.txt" hash v
    hash="$(cat "$pins" | sha256sum | cut -c1-12)"
    v="$SERVICES_CACHE/nova-$NOVA_VERSION-$hash"
    if [[ ! -e "$v/.complete" ]]; then
        [[ -x /usr/bin/python3 ]] || services_apt python3
        /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || services_apt python3-venv
        rm -rf "$v"
        local t0=$SECONDS
        services_log "building the Nova venv in $v (once)"
        /usr/bin/python3 -m venv "$v" >&2
        "$v/bin/pip" install -q -c "$pins" "nova==$NOVA_VERSION" \
            "openstack-placement==$PLACEMENT_VERSION" gunicorn psycopg2-binary >&2
        touch "$v/.complete"
        services_log "Nova venv built in $((SECONDS - t0))s"
    fi
    echo "$v"
}

# nova_api_call METHOD PATH [BODY]: nova-api as the admin, at 2.53.
nova_api_call() {
    curl -sS -f -m 30 -X "$1" -H "X-Auth-Token: $NOVA_TOKEN" \
        -H "Content-Type: application/json" -H "OpenStack-API-Version: compute 2.53" \
        "$SEXTANT_TEST_NOVA_URL$2" ${3:+-d "$3"}
}

nova_write_configs() {
    local d="$1" pg_port="$2" amqp_port="$3" host
    local db="postgresql+psycopg2://sextant@127.0.0.1:$pg_port"
    services_as tee "$d/etc/placement.conf" >/dev/null <<EOF
[DEFAULT]
debug = False
[api]
auth_strategy = noauth2
[placement_database]
connection = $db/placement
[oslo_concurrency]
lock_path = $d/lock
EOF
    services_as tee "$d/etc/nova.conf" >/dev/null <<EOF
[DEFAULT]
debug = False
host = ctl
my_ip = 127.0.0.1
state_path = $d/state/ctl
transport_url = rabbit://guest:guest@127.0.0.1:$amqp_port/nova
compute_driver = fake.MediumFakeDriver
initial_cpu_allocation_ratio = 1.0
initial_ram_allocation_ratio = 1.0
initial_disk_allocation_ratio = 1.0
reserved_host_memory_mb = 0
reserved_host_disk_mb = 0
report_interval = 5
service_down_time = 30
[wsgi]
api_paste_config = $d/etc/api-paste.ini
[api_database]
connection = $db/nova_api
[database]
connection = $db/nova_cell1
[placement]
auth_type = admin_token
endpoint = https://127.0.0.1:$PLACEMENT_PORT
token = admin
cafile = $d/tls/ca.pem
[glance]
endpoint_override = http://127.0.0.1:$GLANCE_PORT
[neutron]
auth_type = admin_token
endpoint = http://127.0.0.1:$NEUTRON_PORT
token = admin
endpoint_override = http://127.0.0.1:$NEUTRON_PORT
[scheduler]
discover_hosts_in_cells_interval = -1
workers = 1
[conductor]
workers = 1
[oslo_concurrency]
lock_path = $d/lock
[vnc]
enabled = False
[quota]
# No quota: sextant-bench openstack boots hundreds of servers (nova_grow).
instances = -1
cores = -1
ram = -1
EOF
    local -A extra=(
        [cmp1]=$'cpu_allocation_ratio = 4.0\nreserved_host_memory_mb = 512'
        [cmp2]=$'ram_allocation_ratio = 1.5\nreserved_host_cpus = 1\nreserved_host_disk_mb = 10240'
        [cmp3]='compute_driver = fake.FakeLiveMigrateDriver')
    for host in "${NOVA_COMPUTES[@]}"; do
        services_as mkdir -p "$d/state/$host"
        printf '[DEFAULT]\nhost = %s\nstate_path = %s\n%s\n' "$host" "$d/state/$host" \
            "${extra[$host]}" | services_as tee "$d/etc/compute-$host.conf" >/dev/null
    done
    # Nova's own pipeline with the identity filter where authtoken was.
    sed -e 's/ authtoken keystonecontext/ sextantidentity keystonecontext/' \
        "$NOVA_VENV/etc/nova/api-paste.ini" | services_as tee "$d/etc/api-paste.ini" >/dev/null
    grep -q ' sextantidentity keystonecontext' "$d/etc/api-paste.ini" || {
        services_log "Nova's api-paste.ini has no 'authtoken keystonecontext' pipeline to change"
        return 1
    }
    printf '\n[filter:sextantidentity]\npaste.filter_factory = identity_filter:filter_factory\ntoken = %s\nkeystone = %s\n' \
        "$NOVA_TOKEN" "$([[ -n "${SEXTANT_TEST_KEYSTONE_URL:-}" ]] && echo true || echo false)" |
        services_as tee -a "$d/etc/api-paste.ini" >/dev/null
    # With the test Keystone: both validate its tokens as production does.
    if [[ -n "${SEXTANT_TEST_KEYSTONE_URL:-}" ]]; then
        local f
        for f in nova.conf placement.conf; do
            services_as tee -a "$d/etc/$f" >/dev/null <<EOF2
[keystone_authtoken]
www_authenticate_uri = $SEXTANT_TEST_KEYSTONE_URL
auth_url = $SEXTANT_TEST_KEYSTONE_URL
auth_type = password
username = sextant-service
password = $SEXTANT_TEST_KEYSTONE_SERVICE_PASSWORD
user_domain_name = Default
project_name = service
project_domain_name = Default
EOF2
        done
    fi
}

# nova_tls DIR: a CA and, signed by it, a certificate for 127.0.0.1.
nova_tls() {
    local t="$1/tls"
    services_as mkdir -p "$t"
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' |
        services_as tee "$t/server.ext" >/dev/null
    {
        services_as openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj /CN=sextant-test-ca -keyout "$t/ca.key" -out "$t/ca.pem" &&
            services_as openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                -subj /CN=127.0.0.1 -keyout "$t/server.key" -out "$t/server.csr" &&
            services_as openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" \
                -CAcreateserial -days 2 -extfile "$t/server.ext" -out "$t/server.pem"
    } >"$SERVICES_DIR/nova-tls.log" 2>&1 || {
        services_log "could not make the test CA:"
        cat "$SERVICES_DIR/nova-tls.log" >&2
        return 1
    }
}

# nova_wait_http URL NAME SECONDS: until URL answers at all.
nova_wait_http() {
    local i
    for ((i = 0; i < $3 * 2; i++)); do
        curl -s -m 2 --cacert "$SERVICES_DIR/nova/tls/ca.pem" -o /dev/null "$1" && return 0
        sleep 0.5
    done
    services_log "$2 did not answer at $1 within $3s; its log:"
    tail -n 40 "$SERVICES_DIR/$2.log" >&2 || true
    return 1
}

nova_start() {
    [[ -n "${SEXTANT_TEST_PG_URL:-}" && -n "${SEXTANT_TEST_AMQP_URL:-}" ]] || {
        services_log "nova needs postgres and rabbitmq started before it"
        return 1
    }
    local t0=$SECONDS
    NOVA_VENV="$(nova_venv)"
    local t_venv=$((SECONDS - t0))
    local d="$SERVICES_DIR/nova" v="$NOVA_VENV" here="$SERVICES_LIB_DIR/nova"
    local pg_port amqp_port name
    pg_port="$(sed -E 's#.*@127\.0\.0\.1:([0-9]+)/.*#\1#' <<<"$SEXTANT_TEST_PG_URL")"
    amqp_port="$(sed -E 's#.*@127\.0\.0\.1:([0-9]+)/.*#\1#' <<<"$SEXTANT_TEST_AMQP_URL")"
    NOVA_TOKEN=admin
    PLACEMENT_PORT="$(services_free_port)"
    NOVA_PORT="$(services_free_port)"
    GLANCE_PORT="$(services_free_port)"
    NEUTRON_PORT="$(services_free_port)"
    services_as mkdir -p "$d/etc" "$d/lock" "$d/state/ctl"
    nova_tls "$d"
    nova_write_configs "$d" "$pg_port" "$amqp_port"

    for name in nova_api nova_cell0 nova_cell1 placement; do
        services_as "$SEXTANT_TEST_PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U sextant "$name"
    done
    rabbitmq_ctl -q add_vhost nova >/dev/null
    rabbitmq_ctl -q set_permissions -p nova guest '.*' '.*' '.*' >/dev/null

    local manage=(services_as "$v/bin/nova-manage" --config-file "$d/etc/nova.conf")
    {
        services_as "$v/bin/placement-manage" --config-file "$d/etc/placement.conf" db sync &&
            "${manage[@]}" api_db sync &&
            "${manage[@]}" cell_v2 map_cell0 --database_connection \
                "postgresql+psycopg2://sextant@127.0.0.1:$pg_port/nova_cell0" &&
            "${manage[@]}" cell_v2 create_cell --name cell1 &&
            "${manage[@]}" db sync
    } >"$SERVICES_DIR/nova-bootstrap.log" 2>&1 || {
        services_log "Nova's database bootstrap failed:"
        tail -n 40 "$SERVICES_DIR/nova-bootstrap.log" >&2
        return 1
    }

    services_spawn nova-standins "$v/bin/python" "$here/standins.py" \
        "$GLANCE_PORT" "$NEUTRON_PORT" "$NOVA_IMAGE_ID"
    services_spawn placement-api env OS_PLACEMENT_CONFIG_DIR="$d/etc" \
        SEXTANT_PLACEMENT_TOKEN="$NOVA_TOKEN" SEXTANT_PLACEMENT_KEYSTONE="${SEXTANT_TEST_KEYSTONE_URL:+1}" \
        "$v/bin/gunicorn" -b "127.0.0.1:$PLACEMENT_PORT" -w 1 --threads 4 \
        --certfile "$d/tls/server.pem" --keyfile "$d/tls/server.key" \
        --no-control-socket --timeout 120 --chdir "$here" placement_wsgi:application
    services_spawn nova-api env OS_NOVA_CONFIG_DIR="$d/etc" \
        "$v/bin/gunicorn" -b "127.0.0.1:$NOVA_PORT" -w 1 --threads 8 \
        --no-control-socket --timeout 120 --chdir "$here" nova_api_wsgi:application
    services_spawn nova-conductor "$v/bin/nova-conductor" --config-file "$d/etc/nova.conf"
    services_spawn nova-scheduler "$v/bin/nova-scheduler" --config-file "$d/etc/nova.conf"
    for name in "${NOVA_COMPUTES[@]}"; do
        services_spawn "nova-compute-$name" "$v/bin/nova-compute" \
            --config-file "$d/etc/nova.conf" --config-file "$d/etc/compute-$name.conf"
    done
    services_wait_port "$NEUTRON_PORT" nova-standins 30
    nova_wait_http "https://127.0.0.1:$PLACEMENT_PORT/" placement-api 60
    nova_wait_http "http://127.0.0.1:$NOVA_PORT/" nova-api 90

    export SEXTANT_TEST_NOVA_URL="http://127.0.0.1:$NOVA_PORT/v2.1"
    export SEXTANT_TEST_PLACEMENT_URL="https://127.0.0.1:$PLACEMENT_PORT"
    export SEXTANT_TEST_CA_FILE="$d/tls/ca.pem"
    export SEXTANT_TEST_NOVA_TOKEN="$NOVA_TOKEN"
    export SEXTANT_TEST_NOVA_IMAGE="$NOVA_IMAGE_ID"
    export SEXTANT_TEST_NOVA_DIR="$d"
    export SEXTANT_TEST_NOVA_VENV="$v"

    # The computes register themselves; then they are mapped into cell1.
    local i up=0
    for ((i = 0; i < 120; i++)); do
        up="$(nova_api_call GET '/os-services?binary=nova-compute' 2>/dev/null |
            python3 -c 'import json,sys; print(sum(s["state"] == "up" for s in json.load(sys.stdin)["services"]))' \
                2>/dev/null || echo 0)"
        [[ "$up" -ge ${#NOVA_COMPUTES[@]} ]] && break
        sleep 1
    done
    [[ "$up" -ge ${#NOVA_COMPUTES[@]} ]] || {
        services_log "only $up of ${#NOVA_COMPUTES[@]} nova-compute services came up; cmp1's log:"
        tail -n 40 "$SERVICES_DIR/nova-compute-cmp1.log" >&2
        return 1
    }
    "${manage[@]}" cell_v2 discover_hosts >>"$SERVICES_DIR/nova-bootstrap.log" 2>&1
    # ...and each has its resource provider with inventories in Placement.
    local rps=0
    for ((i = 0; i < 60; i++)); do
        rps="$(curl -sS -m 10 --cacert "$SEXTANT_TEST_CA_FILE" -H 'X-Auth-Token: admin' -H 'OpenStack-API-Version: placement 1.14' \
            "$SEXTANT_TEST_PLACEMENT_URL/resource_providers?resources=VCPU:1" 2>/dev/null |
            python3 -c 'import json,sys; print(len(json.load(sys.stdin)["resource_providers"]))' \
                2>/dev/null || echo 0)"
        [[ "$rps" -ge ${#NOVA_COMPUTES[@]} ]] && break
        sleep 1
    done
    [[ "$rps" -ge ${#NOVA_COMPUTES[@]} ]] || {
        services_log "Placement has $rps of ${#NOVA_COMPUTES[@]} compute resource providers"
        return 1
    }
    nova_api_call POST /flavors \
        '{"flavor":{"name":"sextant.small","id":"sextant-small","vcpus":1,"ram":512,"disk":1}}' >/dev/null
    nova_api_call POST /flavors \
        '{"flavor":{"name":"sextant.medium","id":"sextant-medium","vcpus":2,"ram":1024,"disk":2}}' >/dev/null
    if [[ -n "${SEXTANT_TEST_KEYSTONE_URL:-}" ]]; then
        keystone_endpoint compute nova "$SEXTANT_TEST_NOVA_URL" &&
            keystone_endpoint placement placement "$SEXTANT_TEST_PLACEMENT_URL" || {
            services_log "could not register compute and placement in Keystone's catalog"
            return 1
        }
    fi
    services_log "nova up in $((SECONDS - t0))s (venv ${t_venv}s): $SEXTANT_TEST_NOVA_URL"
}

# nova_stop: ends Nova's processes before the generic stop reaches
# PostgreSQL and RabbitMQ: all at once, then waiting for them together
# (nova-compute takes up to 10 s after SIGTERM), so that PostgreSQL's
# shutdown does not wait on their connections.
nova_stop() {
    services_stop_groups 15 "$SERVICES_DIR"/nova-*.pid "$SERVICES_DIR"/placement-api.pid
}

# nova_grow COUNT: adds COUNT more nova-compute processes (hosts big001,
# big002, …; one node each, Nova's FakeDriver: 1000 vCPU, 800000 MB,
# 600000 GB, ratios 1.0) to a running stack and waits until each is up,
# mapped into cell1 and has its resource provider in Placement. For
# `sextant-bench openstack` only (the tests expect three hosts). Runs in a
# shell of its own after nova_start ran in another: it finds the stack by
# the SEXTANT_TEST_* variables, and nova_stop ends what it started (its pid
# files are the stack's).
nova_grow() {
    local count="$1" d="$SEXTANT_TEST_NOVA_DIR" v="$SEXTANT_TEST_NOVA_VENV" host i n=0 up=0 rps=0
    SERVICES_DIR="$SEXTANT_TEST_SERVICES_DIR"
    NOVA_TOKEN="$SEXTANT_TEST_NOVA_TOKEN"
    local before
    before="$(nova_api_call GET '/os-services?binary=nova-compute' |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)["services"]))')" || return 1
    for ((i = 1; n < count; i++)); do
        host="$(printf 'big%03d' "$i")"
        [[ -e "$d/etc/compute-$host.conf" ]] && continue
        services_as mkdir -p "$d/state/$host"
        printf '[DEFAULT]\nhost = %s\nstate_path = %s\ncompute_driver = fake.FakeDriver\n' \
            "$host" "$d/state/$host" | services_as tee "$d/etc/compute-$host.conf" >/dev/null
        services_spawn "nova-compute-$host" "$v/bin/nova-compute" \
            --config-file "$d/etc/nova.conf" --config-file "$d/etc/compute-$host.conf"
        n=$((n + 1))
    done
    local want=$((before + count))
    for ((i = 0; i < 600; i++)); do
        up="$(nova_api_call GET '/os-services?binary=nova-compute' 2>/dev/null |
            python3 -c 'import json,sys; print(sum(s["state"] == "up" for s in json.load(sys.stdin)["services"]))' \
                2>/dev/null || echo 0)"
        [[ "$up" -ge $want ]] && break
        sleep 2
    done
    [[ "$up" -ge $want ]] || {
        services_log "only $up of $want nova-compute services came up"
        return 1
    }
    services_as "$v/bin/nova-manage" --config-file "$d/etc/nova.conf" cell_v2 discover_hosts \
        >>"$SERVICES_DIR/nova-bootstrap.log" 2>&1
    for ((i = 0; i < 300; i++)); do
        rps="$(curl -sS -m 30 --cacert "$SEXTANT_TEST_CA_FILE" -H 'X-Auth-Token: admin' \
            -H 'OpenStack-API-Version: placement 1.14' \
            "$SEXTANT_TEST_PLACEMENT_URL/resource_providers?resources=VCPU:1" 2>/dev/null |
            python3 -c 'import json,sys; print(len(json.load(sys.stdin)["resource_providers"]))' \
                2>/dev/null || echo 0)"
        [[ "$rps" -ge $want ]] && break
        sleep 2
    done
    [[ "$rps" -ge $want ]] || {
        services_log "Placement has $rps of $want compute resource providers"
        return 1
    }
}

# nova_grow_stop: stops the nova-compute processes nova_grow started
# (their hypervisors, services and servers stay in Nova's database; the
# services turn `down`). Forty idle nova-compute processes' periodic tasks
# take more CPU than this 2-core machine has, which slows nova-api for
# every client alike.
nova_grow_stop() {
    SERVICES_DIR="$SEXTANT_TEST_SERVICES_DIR"
    services_stop_groups 30 "$SERVICES_DIR"/nova-compute-big*.pid
}
