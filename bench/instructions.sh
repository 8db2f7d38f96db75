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
#
# Needs valgrind (not part of npm run bench); takes about 7 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "bench/instructions.sh needs valgrind" >&2; exit 1; }
CONNECTION=${BENCH_CONNECTION:-'{"type":"postgres","host":"127.0.0.1","port":5432,"username":"postgres","password":"","database":"test"}'}
WARMUP=${WARMUP:-4000}
SHORT=${SHORT:-100}
LONG=${LONG:-4100}

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
    "{\"connection\":$CONNECTION,\"pair\":\"ours\",\"ids\":[9101,9102],\"only\":$1,\"warmupSaves\":$WARMUP,\"saves\":$2,\"blocks\":1}" \
    >/dev/null 2>"$log"; then
    echo "the worker failed (side $1, $2 saves):" >&2
    grep -v '^==' "$log" >&2
    return 1
  fi
  awk '/Collected/ { print $4 }' "$log" >"$3"
}

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "counting: $WARMUP warm-up saves, then $SHORT and $LONG saves, per side (two at a time)" >&2
for saves in "$SHORT" "$LONG"; do
  count 0 "$saves" "$out/plain-$saves" &
  plain_pid=$!
  count 1 "$saves" "$out/ours-$saves" &
  ours_pid=$!
  # One wait per line: under set -e a failure inside an && list would not stop the script.
  wait "$plain_pid"
  wait "$ours_pid"
done
plain=$((($(cat "$out/plain-$LONG") - $(cat "$out/plain-$SHORT")) / (LONG - SHORT)))
ours=$((($(cat "$out/ours-$LONG") - $(cat "$out/ours-$SHORT")) / (LONG - SHORT)))
echo "| side | instructions per save |"
echo "|---|---|"
echo "| plain TypeORM | $plain |"
echo "| typeorm-locking | $ours |"
awk -v p="$plain" -v o="$ours" 'BEGIN { printf "| ours / plain | %.3f |\n", o / p }'
