#!/usr/bin/env bash
# For a developer: starts the named services (default: all the test command
# starts) and keeps them up until Ctrl-C, printing the variables to export in
# another shell, so that `cargo test` can be run against them by hand.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/services/lib.sh
[[ $# -gt 0 ]] || set -- $(cat scripts/services/ALL)
trap services_stop EXIT
services_start "$@"
env | grep '^SEXTANT_TEST_' | sed 's/^/export /'
echo "# services up; Ctrl-C stops them" >&2
while sleep 3600; do :; done
