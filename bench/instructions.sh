#!/usr/bin/env bash
# CPU instructions per save(), plain TypeORM beside typeorm-locking, counted by valgrind's
# callgrind: unlike time, a count does not move with the machine's load, so differences of a
# few percent show (docs/benchmarks.md, "Findings"). Each side runs the latency worker in its own
# process, twice: WARMUP saves then SHORT timed saves, and WARMUP then LONG; the difference of the
# two totals over LONG - SHORT is the cost of one save once warm, client side only (the database
# server is another process). --predictable keeps V8's compiler and GC on the main thread.
#
#   bash bench/instructions.sh                     # the machine's PostgreSQL, database test
#   BENCH_CONNECTION='{"type":"mysql","host":"127.0.0.1","port":3306,"username":"root","password":"","database":"test"}' \
#     WARMUP=4000 LONG=8100 bash bench/instructions.sh
#   OPERATION=locked-save bash bench/instructions.sh   # a transaction: PESSIMISTIC_WRITE read + save
#   SIDES=1 OBSERVE=otel bash bench/instructions.sh    # ours only, the OpenTelemetry example subscribed
#
# Needs valgrind (not part of npm run bench); takes about 7 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "bench/instructions.sh needs valgrind" >&2; exit 1; }
CONNECTION=${BENCH_CONNECTION:-'{"type":"postgres","host":"127.0.0.1","port":5432,"username":"postgres","password":"","database":"test"}'}
WARMUP=${WARMUP:-4000}
SHORT=${SHORT:-100}
LONG=${LONG:-4100}
OPERATION=${OPERATION:-save}
OBSERVE=${OBSERVE:-}
SIDES=${SIDES:-0 1}
observe_json=""
[ -n "$OBSERVE" ] && observe_json=",\"observe\":\"$OBSERVE\""

node -r ts-node/register/transpile-only -e '
  require("reflect-metadata");
  const { DataSource } = require("typeorm");
  const { BenchItem } = require("./bench/entities");
  new DataSource({ ...JSON.parse(process.argv[1]), entities: [BenchItem], synchronize: true })
    .initialize().then((s) => s.destroy());
' "$CONNECTION"

count() { # side (0 plain, 1 ours) saves output-file
  local log="$3.log"
  if ! DISABLE_V8_COMPILE_CACHE=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null --smc-check=all-non-file \
    node --predictable -r ts-node/register/transpile-only bench/latency-worker.ts \
    "{\"connection\":$CONNECTION,\"pair\":\"ours\",\"ids\":[9101,9102],\"only\":$1,\"warmupSaves\":$WARMUP,\"saves\":$2,\"blocks\":1,\"operation\":\"$OPERATION\"$observe_json}" \
    >/dev/null 2>"$log"; then
    echo "the worker failed (side $1, $2 saves):" >&2
    grep -v '^==' "$log" >&2
    return 1
  fi
  awk '/Collected/ { print $4 }' "$log" >"$3"
}

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "counting: $OPERATION${OBSERVE:+ observed by $OBSERVE}, $WARMUP warm-up operations, then $SHORT and $LONG, per side (sides: $SIDES)" >&2
names=(plain ours)
for saves in "$SHORT" "$LONG"; do
  pids=()
  for side in $SIDES; do
    count "$side" "$saves" "$out/${names[$side]}-$saves" &
    pids+=($!)
  done
  # One wait per line: under set -e a failure inside an && list would not stop the script.
  for pid in "${pids[@]}"; do wait "$pid"; done
done
per_operation() { echo $((($(cat "$out/$1-$LONG") - $(cat "$out/$1-$SHORT")) / (LONG - SHORT))); }
echo "| side ($OPERATION${OBSERVE:+, $OBSERVE subscribed}) | instructions per operation |"
echo "|---|---|"
for side in $SIDES; do
  label=$([ "$side" = 0 ] && echo "plain TypeORM" || echo "typeorm-locking")
  echo "| $label | $(per_operation "${names[$side]}") |"
done
if [ "$SIDES" = "0 1" ]; then
  awk -v p="$(per_operation plain)" -v o="$(per_operation ours)" 'BEGIN { printf "| ours / plain | %.3f |\n", o / p }'
fi
