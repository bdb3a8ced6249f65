# shellcheck shell=bash
# Prometheus from Debian's packages: a private server on a free loopback
# port, its TSDB in $SERVICES_DIR/prometheus, run as the service user, with
# the remote-write receiver on (tests feed it series as Watcher's tempest
# plugin does with `promtool push metrics`). Nothing is scraped until a test
# drops a file_sd target file (JSON, `[{"targets": ["127.0.0.1:PORT"],
# "labels": {...}}]`) into $SEXTANT_TEST_PROMETHEUS_SD_DIR; targets are
# scraped every second.
# Exports SEXTANT_TEST_PROMETHEUS_URL=http://127.0.0.1:PORT and
# SEXTANT_TEST_PROMETHEUS_SD_DIR.

prometheus_start() {
    command -v prometheus >/dev/null || services_apt prometheus
    local dir="$SERVICES_DIR/prometheus" port i
    services_as mkdir -p "$dir/data" "$dir/sd"
    # Tests (this user) write target files into sd/.
    chmod 777 "$dir/sd"
    cat >"$dir/prometheus.yml" <<CONFIG
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tests
    scrape_interval: 1s
    scrape_timeout: 1s
    file_sd_configs:
      - files: ["$dir/sd/*.json"]
        refresh_interval: 1s
CONFIG
    chmod 644 "$dir/prometheus.yml"
    port="$(services_free_port)"
    services_spawn prometheus prometheus \
        --config.file="$dir/prometheus.yml" \
        --storage.tsdb.path="$dir/data" \
        --storage.tsdb.retention.time=1d \
        --web.listen-address="127.0.0.1:$port" \
        --web.enable-remote-write-receiver
    services_wait_port "$port" prometheus 60
    for ((i = 0; i < 300; i++)); do
        curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
        sleep 0.1
    done
    export SEXTANT_TEST_PROMETHEUS_URL="http://127.0.0.1:$port"
    export SEXTANT_TEST_PROMETHEUS_SD_DIR="$dir/sd"
}
