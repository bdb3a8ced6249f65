# shellcheck shell=bash
# schemathesis, the property-based HTTP fuzzer that tests an API against
# its own OpenAPI document, in a virtual environment under $SERVICES_CACHE
# (kept between runs; rebuilt when the pins change; every dependency pinned
# by schemathesis-constraints.txt). No process is started: the test
# (tests/api_openapi.rs) runs it against a `sextant serve --api` of its own.
# Exports SEXTANT_TEST_SCHEMATHESIS (the `schemathesis` executable).

SCHEMATHESIS_PINS=(schemathesis==4.32.5)

schemathesis_start() {
    local pins="${SCHEMATHESIS_PINS[*]}"
    local venv="$SERVICES_CACHE/schemathesis"
    if [[ ! -x "$venv/bin/schemathesis" || "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]]; then
        services_log "installing $pins into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
            --constraint "$SERVICES_LIB_DIR/schemathesis-constraints.txt" "${SCHEMATHESIS_PINS[@]}"
        printf '%s' "$pins" >"$venv/.pins"
    fi
    "$venv/bin/schemathesis" --version >/dev/null
    export SEXTANT_TEST_SCHEMATHESIS="$venv/bin/schemathesis"
}
