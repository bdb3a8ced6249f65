# shellcheck shell=bash
# oslo.messaging (with its kombu) in a virtual environment under
# $SERVICES_CACHE, pinned whole by oslo-constraints.txt beside this file: the
# real notification listener the AMQP tests run (tests/oslo_listener.py).
# Starts no process. Exports SEXTANT_TEST_OSLO_PYTHON, the venv's python.

oslo_start() {
    local here venv
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    venv="$SERVICES_CACHE/oslo-messaging-$(sha256sum "$here/oslo-constraints.txt" | cut -c1-12)"
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import oslo_messaging' 2>/dev/null; then
        services_log "creating $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check \
            -c "$here/oslo-constraints.txt" oslo.messaging kombu
    fi
    export SEXTANT_TEST_OSLO_PYTHON="$venv/bin/python"
}
