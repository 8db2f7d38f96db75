#!/usr/bin/env bash
# `npm run test:faults`: the proof under faults (issue 18, docs/reliability.md). test/faults/ on
# every database and both TypeORM lines (jest.faults.config.js; LOCKING_FAULTS_PROFILE=full, the
# default, or reduced), then the Galera part (the network partition and the commits in flight at
# a cut) on a three-node cluster that scripts/test-galera.sh starts and stops.
#
# Arguments go to jest and narrow the run to the files named: the Galera part is then left out,
# as it is with LOCKING_FAULTS_GALERA=0 (.ci/run runs the whole Galera suite in a step of its own).
set -uo pipefail
cd "$(dirname "$0")/.."

galera="${LOCKING_FAULTS_GALERA:-$([ $# -eq 0 ] && echo 1 || echo 0)}"
status=0
LOCKING_SUMMARY_FILE="${LOCKING_SUMMARY_FILE:-faults-summary.json}" npx jest -c jest.faults.config.js "$@" || status=1
if [ "$galera" != 0 ]; then
  bash scripts/test-galera.sh test/galera/partition.test.ts test/galera/commit-outcome.test.ts || status=1
fi
exit "$status"
