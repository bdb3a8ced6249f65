# shellcheck shell=bash
# Prometheus from Debian's packages: a private server on a free loopback
# port, its TSDB in $SERVICES_DIR/prometheus, run as the service user, with
# the remote-write receiver on (tests feed it series as Watcher's tempest
# plugin does with `promtool push metrics`). Nothing is scraped until a test
# drops a file_sd target file (JSON, `[{"targets": ["127.0.0.1:PORT"],
# "labels": {...}}]`) into $SEXTANT_TEST_PROMETHEUS_SD_DIR; targets are
# scraped every second. Alerts go to the Alertmanagers listed in
# $dir/alertmanagers/*.json (scripts/services/alertmanager.sh writes it);
# its one alerting rule, SextantTestOverload, fires on
# `sextant_test_load > 0.9`, evaluated every second.
# Exports SEXTANT_TEST_PROMETHEUS_URL=http://127.0.0.1:PORT and
# SEXTANT_TEST_PROMETHEUS_SD_DIR.
#
# A second server stands behind TLS and basic auth (its web config): a CA
# and a certificate for 127.0.0.1 made with openssl, a random password
# hashed with bcrypt. Exports SEXTANT_TEST_PROMETHEUS_TLS_URL
# (https://127.0.0.1:PORT), SEXTANT_TEST_PROMETHEUS_TLS_CA (the CA's PEM),
# SEXTANT_TEST_PROMETHEUS_TLS_USER and SEXTANT_TEST_PROMETHEUS_TLS_PASSWORD.

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
rule_files: ["$dir/rules.yml"]
alerting:
  alertmanagers:
    - file_sd_configs:
        - files: ["$dir/alertmanagers/*.json"]
          refresh_interval: 1s
scrape_configs:
  - job_name: tests
    scrape_interval: 1s
    scrape_timeout: 1s
    file_sd_configs:
      - files: ["$dir/sd/*.json"]
        refresh_interval: 1s
CONFIG
    # The alerting rule of the Alertmanager test (tests/alertmanager_audit.rs):
    # a series it writes above 0.9 fires at once, its labels (the audit,
    # the test's run) carried into the alert.
    cat >"$dir/rules.yml" <<RULES
groups:
  - name: sextant-tests
    interval: 1s
    rules:
      - alert: SextantTestOverload
        expr: sextant_test_load > 0.9
        labels:
          severity: page
        annotations:
          summary: "{{ \$labels.host }} is overloaded"
RULES
    chmod 644 "$dir/prometheus.yml" "$dir/rules.yml"
    # alertmanager.sh drops its target file here.
    services_as mkdir -p "$dir/alertmanagers"
    chmod 777 "$dir/alertmanagers"
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
    prometheus_start_secured
}

prometheus_start_secured() {
    command -v openssl >/dev/null || services_apt openssl
    local dir="$SERVICES_DIR/prometheus-tls" port i password hash
    services_as mkdir -p "$dir/data"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 2 \
        -subj "/CN=sextant test CA" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req "${ec[@]}" -keyout "$dir/server.key" -out "$dir/server.csr" \
        -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
        >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$dir/server.pem" -days 2 -extfile "$dir/server.ext" 2>/dev/null
    [[ $(id -u) -eq 0 ]] && chown "$SERVICES_USER" "$dir/server.key"
    chmod 600 "$dir/server.key"
    password="$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
    # bcrypt through libxcrypt (Python's crypt module, 3.11).
    hash="$(python3 -W ignore -c 'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)))' "$password")"
    cat >"$dir/web.yml" <<CONFIG
tls_server_config:
  cert_file: $dir/server.pem
  key_file: $dir/server.key
basic_auth_users:
  sextant: '$hash'
CONFIG
    printf 'global: {scrape_interval: 15s}\n' >"$dir/prometheus.yml"
    chmod 644 "$dir/web.yml" "$dir/prometheus.yml" "$dir/server.pem" "$dir/ca.pem"
    port="$(services_free_port)"
    services_spawn prometheus-tls prometheus \
        --config.file="$dir/prometheus.yml" \
        --web.config.file="$dir/web.yml" \
        --storage.tsdb.path="$dir/data" \
        --storage.tsdb.retention.time=1d \
        --web.listen-address="127.0.0.1:$port" \
        --web.enable-remote-write-receiver
    services_wait_port "$port" prometheus-tls 60
    for ((i = 0; i < 300; i++)); do
        curl -fsS --cacert "$dir/ca.pem" -u "sextant:$password" \
            "https://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
        sleep 0.1
    done
    export SEXTANT_TEST_PROMETHEUS_TLS_URL="https://127.0.0.1:$port"
    export SEXTANT_TEST_PROMETHEUS_TLS_CA="$dir/ca.pem"
    export SEXTANT_TEST_PROMETHEUS_TLS_USER=sextant
    export SEXTANT_TEST_PROMETHEUS_TLS_PASSWORD="$password"
}
