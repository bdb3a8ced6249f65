# shellcheck shell=bash
# The real OpenStack Watcher client, python-watcherclient with the
# `openstack optimize` commands of python-openstackclient, in a virtual
# environment under $SERVICES_CACHE (kept between runs; rebuilt when the pins
# change). No process is started: tests run the client against a
# `sextant serve --api` of their own.
# Exports SEXTANT_TEST_OPENSTACK (the `openstack` executable) and
# SEXTANT_TEST_WATCHER (the `watcher` executable).

WATCHERCLIENT_PINS=(python-watcherclient==4.11.0 python-openstackclient==10.5.0)

watcherclient_start() {
    local pins="${WATCHERCLIENT_PINS[*]}"
    local venv="$SERVICES_CACHE/watcherclient"
    if [[ ! -x "$venv/bin/openstack" || "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]]; then
        services_log "installing $pins into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
            --constraint "$SERVICES_LIB_DIR/watcherclient-constraints.txt" "${WATCHERCLIENT_PINS[@]}"
        printf '%s' "$pins" >"$venv/.pins"
    fi
    "$venv/bin/openstack" --version >/dev/null
    export SEXTANT_TEST_OPENSTACK="$venv/bin/openstack"
    export SEXTANT_TEST_WATCHER="$venv/bin/watcher"
}
