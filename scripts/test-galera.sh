#!/usr/bin/env bash
# `npm run test:galera`: installs galera-4 if missing, starts a three-node MariaDB Galera cluster
# (GALERA_NODES=2 for two) under a temp folder, runs test/galera with both TypeORM lines, and stops
# the cluster, leaving nothing running. Totals go to test-results/galera-summary.json.
set -uo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d "${TMPDIR:-/tmp}/typeorm-locking-galera-XXXXXX")
export GALERA_DIR="$dir"
export GALERA_PORT_BASE="${GALERA_PORT_BASE:-23300}"
export GALERA_NODES="${GALERA_NODES:-3}"
trap 'bash scripts/galera-cluster.sh stop "$dir"' EXIT
trap 'exit 130' INT TERM

rm -f test-results/galera-summary.json
if ! bash scripts/galera-cluster.sh start "$dir"; then
  echo "the Galera cluster could not start (see above): the Galera suite did not run" >&2
  mkdir -p test-results && echo '{"passed":0,"failed":1,"skipped":0,"total":1}' >test-results/galera-summary.json
  exit 1
fi
# GALERA_NODES, GALERA_PARTITION_METHOD, GALERA_NODE<n>_HOST and GALERA_NODE<n>_PORT.
set -a
# shellcheck disable=SC1091
. "$dir/nodes.env"
set +a
LOCKING_SUMMARY_FILE=galera-summary.json npx jest -c jest.galera.config.js "$@"
