# shellcheck shell=bash
# OpenStack Watcher 17.0.0 (python-watcher from PyPI, the 2026.2 release, as
# Nova 34) in a virtual environment under $SERVICES_CACHE, for
# `sextant-bench openstack` only: it runs Watcher's own collector
# (NovaModelBuilder) against the harness's Nova. Not in ALL, not in
# scripts/test. No process is started.
#
# Pinned by watcher-bench-constraints.txt (pip freeze of the venv; the
# libraries Nova shares are at nova-constraints.txt's versions). Built with
# Debian's python3, marked complete only once pip succeeded.
#
# Exports SEXTANT_BENCH_WATCHER_PYTHON (the venv's python).

WATCHER_VERSION=17.0.0

watcher_bench_venv() {
    local pins="$SERVICES_LIB_DIR/watcher-bench-constraints.txt" hash v
    hash="$(sha256sum <"$pins" | cut -c1-12)"
    v="$SERVICES_CACHE/watcher-$WATCHER_VERSION-$hash"
    if [[ ! -e "$v/.complete" ]]; then
        /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || services_apt python3-venv
        rm -rf "$v"
        local t0=$SECONDS
        services_log "building the Watcher venv in $v (once)"
        /usr/bin/python3 -m venv "$v" >&2
        "$v/bin/pip" install -q --disable-pip-version-check -c "$pins" \
            "python-watcher==$WATCHER_VERSION" >&2
        touch "$v/.complete"
        services_log "Watcher venv built in $((SECONDS - t0))s"
    fi
    echo "$v"
}

watcher_bench_start() {
    local v
    v="$(watcher_bench_venv)"
    "$v/bin/python" -c 'import watcher.decision_engine.model.collector.nova' || {
        services_log "Watcher's collector does not import from $v"
        return 1
    }
    export SEXTANT_BENCH_WATCHER_PYTHON="$v/bin/python"
}
