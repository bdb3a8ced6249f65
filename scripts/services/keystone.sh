# shellcheck shell=bash
# Real OpenStack Keystone 30.0.0 (the 2026.2 release, as Nova 34 and
# Placement 16) from PyPI, under gunicorn on a free loopback port, with its
# SQLite database and fernet keys in $SERVICES_DIR/keystone, run
# as the service user and stopped by pid. Tokens live
# SEXTANT_TEST_KEYSTONE_TOKEN_TTL seconds (20 by default; `[token]
# expiration`), so that renewal before expiry is exercised by every test that
# runs longer than that; passwords are hashed with bcrypt's fewest rounds.
#
# `keystone-manage bootstrap` makes the admin (project admin, role admin; the
# roles reader, member, manager and service) and Keystone's own identity
# endpoint in RegionOne; scripts/services/keystone/setup.py adds the projects
# `sextant` and `service`, the users sextant-reader (reader on sextant),
# sextant-member (member on sextant) and sextant-service (service on service:
# what a service validating tokens authenticates as), each with a random
# password, and an application credential of the admin's. Start it before
# nova: nova.sh then validates Keystone tokens (besides its static one) and
# registers compute and placement in the catalog (keystone_endpoint). Tests
# that need an `infra-optim` endpoint register their own, with the admin's
# credentials, in a region of their own.
#
# The virtual environment ($SERVICES_CACHE/keystone-<version>-<hash of the
# pins>) is built once from PyPI, pinned by keystone-constraints.txt.
#
# Exports SEXTANT_TEST_KEYSTONE_URL (http://127.0.0.1:PORT/v3),
# SEXTANT_TEST_KEYSTONE_ADMIN_PASSWORD, SEXTANT_TEST_KEYSTONE_READER_PASSWORD,
# SEXTANT_TEST_KEYSTONE_MEMBER_PASSWORD, SEXTANT_TEST_KEYSTONE_SERVICE_PASSWORD,
# SEXTANT_TEST_KEYSTONE_APP_CRED_ID, SEXTANT_TEST_KEYSTONE_APP_CRED_SECRET,
# SEXTANT_TEST_KEYSTONE_TOKEN_TTL and SEXTANT_TEST_KEYSTONE_DIR.

KEYSTONE_VERSION=30.0.0
: "${SEXTANT_TEST_KEYSTONE_TOKEN_TTL:=20}"

# keystone_venv: prints the venv's path, building it first if needed.
keystone_venv() {
    local pins="$SERVICES_LIB_DIR/keystone-constraints.txt" hash v
    hash="$(sha256sum <"$pins" | cut -c1-12)"
    v="$SERVICES_CACHE/keystone-$KEYSTONE_VERSION-$hash"
    if [[ ! -e "$v/.complete" ]]; then
        [[ -x /usr/bin/python3 ]] || services_apt python3
        /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || services_apt python3-venv
        rm -rf "$v"
        local t0=$SECONDS
        services_log "building the Keystone venv in $v (once)"
        /usr/bin/python3 -m venv "$v" >&2
        "$v/bin/pip" install -q --disable-pip-version-check -c "$pins" \
            "keystone==$KEYSTONE_VERSION" gunicorn >&2
        touch "$v/.complete"
        services_log "Keystone venv built in $((SECONDS - t0))s"
    fi
    echo "$v"
}

# keystone_endpoint TYPE NAME URL: registers a service and its endpoints
# (public, internal, admin; RegionOne) in the catalog.
keystone_endpoint() {
    "$KEYSTONE_VENV/bin/python" "$SERVICES_LIB_DIR/keystone/setup.py" \
        "$SEXTANT_TEST_KEYSTONE_URL" "$SEXTANT_TEST_KEYSTONE_ADMIN_PASSWORD" endpoint "$@"
}

# keystone_fernet_keys DIR: a staged (0) and a primary (1) fernet key, as
# `keystone-manage fernet_setup` writes them (32 random bytes, urlsafe
# base64), without that command's interpreter start.
keystone_fernet_keys() {
    local k
    for k in 0 1; do
        python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())' |
            services_as tee "$1/$k" >/dev/null && services_as chmod 600 "$1/$k" || return 1
    done
}

keystone_start() {
    local t0=$SECONDS
    KEYSTONE_VENV="$(keystone_venv)"
    local t_venv=$((SECONDS - t0))
    local d="$SERVICES_DIR/keystone" v="$KEYSTONE_VENV" port
    port="$(services_free_port)"
    services_as mkdir -p "$d/fernet-keys" "$d/lock"
    services_as chmod 700 "$d/fernet-keys"
    services_as tee "$d/keystone.conf" >/dev/null <<EOF
[DEFAULT]
debug = False
[database]
connection = sqlite:///$d/keystone.db
[token]
provider = fernet
expiration = $SEXTANT_TEST_KEYSTONE_TOKEN_TTL
[fernet_tokens]
key_repository = $d/fernet-keys
[fernet_receipts]
key_repository = $d/fernet-keys
[identity]
password_hash_rounds = 4
[oslo_concurrency]
lock_path = $d/lock
EOF
    local admin_password manage=(services_as "$v/bin/keystone-manage" --config-file "$d/keystone.conf")
    admin_password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
    # An empty schema is the same on every run: made once per venv, copied.
    local template="$v/keystone-schema.db"
    {
        if [[ -e "$template" ]]; then
            services_as cp "$template" "$d/keystone.db"
        else
            "${manage[@]}" db_sync && cp "$d/keystone.db" "$template.tmp" && mv "$template.tmp" "$template"
        fi &&
            keystone_fernet_keys "$d/fernet-keys" &&
            "${manage[@]}" bootstrap --bootstrap-password "$admin_password" \
                --bootstrap-admin-url "http://127.0.0.1:$port/v3" \
                --bootstrap-internal-url "http://127.0.0.1:$port/v3" \
                --bootstrap-public-url "http://127.0.0.1:$port/v3" \
                --bootstrap-region-id RegionOne
    } >"$SERVICES_DIR/keystone-bootstrap.log" 2>&1 || {
        services_log "Keystone's bootstrap failed:"
        tail -n 40 "$SERVICES_DIR/keystone-bootstrap.log" >&2
        return 1
    }
    local t_boot=$((SECONDS - t0 - t_venv))
    services_spawn keystone env OS_KEYSTONE_CONFIG_DIR="$d" \
        "$v/bin/gunicorn" -b "127.0.0.1:$port" -w 1 --threads 4 \
        --no-control-socket --timeout 120 --chdir "$SERVICES_LIB_DIR/keystone" \
        keystone_wsgi:application
    services_wait_port "$port" keystone 60
    local i
    for ((i = 0; i < 120; i++)); do
        curl -s -f -m 2 -o /dev/null "http://127.0.0.1:$port/v3" && break
        sleep 0.5
    done
    export SEXTANT_TEST_KEYSTONE_URL="http://127.0.0.1:$port/v3"
    export SEXTANT_TEST_KEYSTONE_ADMIN_PASSWORD="$admin_password"
    export SEXTANT_TEST_KEYSTONE_TOKEN_TTL
    export SEXTANT_TEST_KEYSTONE_DIR="$d"
    local made
    made="$("$v/bin/python" "$SERVICES_LIB_DIR/keystone/setup.py" \
        "$SEXTANT_TEST_KEYSTONE_URL" "$admin_password" users)" || {
        services_log "Keystone's users could not be made; its log:"
        tail -n 40 "$SERVICES_DIR/keystone.log" >&2
        return 1
    }
    eval "$made"
    export SEXTANT_TEST_KEYSTONE_READER_PASSWORD SEXTANT_TEST_KEYSTONE_MEMBER_PASSWORD \
        SEXTANT_TEST_KEYSTONE_SERVICE_PASSWORD SEXTANT_TEST_KEYSTONE_APP_CRED_ID \
        SEXTANT_TEST_KEYSTONE_APP_CRED_SECRET
    services_log "keystone up in $((SECONDS - t0))s (venv ${t_venv}s, bootstrap ${t_boot}s): $SEXTANT_TEST_KEYSTONE_URL"
}
