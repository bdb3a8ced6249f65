# shellcheck shell=bash
# Prometheus Alertmanager from Debian's packages (prometheus-alertmanager):
# a private server on a free loopback port, its state in
# $SERVICES_DIR/alertmanager, run as the service user, clustering off.
# Start it after prometheus: it registers itself as the Alertmanager of the
# harness's Prometheus (a file_sd target file), whose alerting rule
# SextantTestOverload it then receives.
#
# Its config has only a receiver that sends nowhere until a test writes
# its own (route and webhook receiver) to $SEXTANT_TEST_ALERTMANAGER_CONFIG
# and asks Alertmanager to read it again (POST $SEXTANT_TEST_ALERTMANAGER_URL/-/reload).
# Exports SEXTANT_TEST_ALERTMANAGER_URL=http://127.0.0.1:PORT and
# SEXTANT_TEST_ALERTMANAGER_CONFIG.

alertmanager_start() {
    command -v prometheus-alertmanager >/dev/null || services_apt prometheus-alertmanager
    local dir="$SERVICES_DIR/alertmanager" port i
    services_as mkdir -p "$dir/data" "$dir/config"
    # Tests (this user) write the config.
    chmod 777 "$dir/config"
    cat >"$dir/config/alertmanager.yml" <<CONFIG
route:
  receiver: nowhere
receivers:
  - name: nowhere
CONFIG
    chmod 666 "$dir/config/alertmanager.yml"
    port="$(services_free_port)"
    services_spawn alertmanager prometheus-alertmanager \
        --config.file="$dir/config/alertmanager.yml" \
        --storage.path="$dir/data" \
        --web.listen-address="127.0.0.1:$port" \
        --cluster.listen-address=
    services_wait_port "$port" alertmanager 60
    for ((i = 0; i < 300; i++)); do
        curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
        sleep 0.1
    done
    export SEXTANT_TEST_ALERTMANAGER_URL="http://127.0.0.1:$port"
    export SEXTANT_TEST_ALERTMANAGER_CONFIG="$dir/config/alertmanager.yml"
    # The harness's Prometheus sends its alerts here.
    # The harness's Prometheus sends its alerts here (the file written
    # whole, then renamed: Prometheus never reads half of it).
    local sd="$SERVICES_DIR/prometheus/alertmanagers"
    if [[ -d "$sd" ]]; then
        printf '[{"targets": ["127.0.0.1:%s"]}]\n' "$port" >"$sd/.alertmanager.tmp"
        mv "$sd/.alertmanager.tmp" "$sd/alertmanager.json"
        for ((i = 0; i < 300; i++)); do
            curl -fsS "$SEXTANT_TEST_PROMETHEUS_URL/api/v1/alertmanagers" 2>/dev/null |
                grep -q "127.0.0.1:$port" && break
            sleep 0.1
        done
    fi
}
