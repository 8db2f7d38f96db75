/**
 * Hot rows and backoff, measured under the same load: retry variants (hot-row locks on or off, x
 * no wait / full jitter / decorrelated jitter) beside PESSIMISTIC_WRITE, on one shared row and on
 * a row per client. Every round runs every cell once, the modes of a cell in an order that rotates
 * from round to round, so no mode always runs first or on a freshly inserted row. Prints, per cell,
 * the median committed/s over rounds, the median ratio to PESSIMISTIC_WRITE of the same round,
 * retries per commit and lost updates (which must be 0).
 *
 *   node -r ts-node/register bench/hot-rows.ts --only=postgres,mariadb --duration=2000 --rounds=3 \
 *        --clients=1,16,64 --distinct=64
 */
import type { DataSource } from "typeorm";
import { installLocking } from "../src";
import { closeAll, type DatabaseName, openAlongside } from "../test/support/databases";
import { type ContentionMode, type ContentionRow, contend, type RetryVariant } from "./contention";
import { BenchItem } from "./entities";
import { openDataSources, serverVersion, startDatabases, stopDatabases } from "./setup";
import { progress } from "./stats";

const VARIANTS: RetryVariant[] = [
  {
    label: "no hot-row locks, full jitter 20-500 ms",
    hotRows: false,
    backoff: "full jitter",
    initialMs: 20,
    maxMs: 500,
  },
  {
    label: "no hot-row locks, decorrelated jitter 20-500 ms",
    hotRows: false,
    backoff: "decorrelated jitter",
    initialMs: 20,
    maxMs: 500,
  },
  { label: "no hot-row locks, no wait", hotRows: false, backoff: "none", initialMs: 0, maxMs: 0 },
  { label: "hot-row locks, no wait", hotRows: true, backoff: "none", initialMs: 0, maxMs: 0 },
  {
    label: "hot-row locks, no wait, not remembered",
    hotRows: { rememberMs: 0 },
    backoff: "none",
    initialMs: 0,
    maxMs: 0,
  },
  {
    label: "hot-row locks, no wait, remembered 250 ms",
    hotRows: { rememberMs: 250 },
    backoff: "none",
    initialMs: 0,
    maxMs: 0,
  },
  {
    label: "hot-row locks, no wait, remembered 5 s",
    hotRows: { rememberMs: 5000 },
    backoff: "none",
    initialMs: 0,
    maxMs: 0,
  },
  { label: "hot-row locks, full jitter 20-500 ms", hotRows: true, backoff: "full jitter", initialMs: 20, maxMs: 500 },
  {
    label: "hot-row locks, decorrelated jitter 20-500 ms",
    hotRows: true,
    backoff: "decorrelated jitter",
    initialMs: 20,
    maxMs: 500,
  },
];
const MODES: (ContentionMode | RetryVariant)[] = [
  "PESSIMISTIC_WRITE",
  "optimistic + retry",
  "optimistic + retry, no hot-row locks",
  ...VARIANTS,
];

const argv = process.argv.slice(2);
const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const list = (name: string, fallback: string) => (value(name) ?? fallback).split(",").filter(Boolean).map(Number);
const durationMs = Number(value("duration") ?? 2000);
const rounds = Number(value("rounds") ?? 3);
const only = (value("only") ?? "postgres,mariadb").split(",") as DatabaseName[];
const cells: [ContentionRow["rows"], number][] = [
  ...list("clients", "1,16,64").map((n) => ["same row", n] as [ContentionRow["rows"], number]),
  ...list("distinct", "64").map((n) => ["distinct rows", n] as [ContentionRow["rows"], number]),
];
const modes = value("modes") ? MODES.filter((_, i) => value("modes")!.split(",").map(Number).includes(i)) : MODES;

const labelOf = (mode: ContentionMode | RetryVariant) => (typeof mode === "object" ? mode.label : mode);
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

async function main(): Promise<void> {
  const { used } = await startDatabases(only);
  try {
    for (const db of used) {
      const [base] = await openDataSources(db, [BenchItem]);
      let source: DataSource | undefined;
      try {
        source = installLocking(await openAlongside(base, { poolSize: Math.max(...cells.map(([, n]) => n)) + 2 }));
        const server = await serverVersion(source);
        // One discarded cell per mode first: the first cell of a run was slower whatever ran in it.
        for (const mode of modes) await contend(source, mode, 4, "same row", 300);
        const results = new Map<string, ContentionRow[]>();
        const ratios = new Map<string, number[]>();
        for (let round = 0; round < rounds; round++) {
          for (const [c, [rows, clients]] of cells.entries()) {
            const order = modes.map((_, i) => modes[(i + round + c) % modes.length]);
            const perRound = new Map<string, ContentionRow>();
            for (const mode of order) {
              progress(`${db.name} round ${round + 1}/${rounds}: ${rows}, ${clients} clients, ${labelOf(mode)}`);
              const row = await contend(source, mode, clients, rows, durationMs);
              perRound.set(row.mode, row);
              const key = `${rows}|${clients}|${row.mode}`;
              results.set(key, [...(results.get(key) ?? []), row]);
            }
            const pessimistic = perRound.get("PESSIMISTIC_WRITE")!.committedPerSecond;
            for (const [label, row] of perRound) {
              const key = `${rows}|${clients}|${label}`;
              ratios.set(key, [...(ratios.get(key) ?? []), row.committedPerSecond / pessimistic]);
            }
          }
        }
        const lines = [
          `#### ${db.name} (${server}): ${rounds} rounds x ${durationMs} ms per cell`,
          "",
          "| rows | clients | mode | committed/s (median) | / PESSIMISTIC_WRITE (median of rounds) | retries per commit | failed | lost updates |",
          "|---|---|---|---|---|---|---|---|",
        ];
        for (const [rows, clients] of cells) {
          for (const mode of modes) {
            const key = `${rows}|${clients}|${labelOf(mode)}`;
            const runs = results.get(key) ?? [];
            const committed = runs.reduce((sum, r) => sum + r.committed, 0);
            const retries = runs.reduce((sum, r) => sum + r.retries, 0);
            lines.push(
              `| ${rows} | ${clients} | ${labelOf(mode)} | ${median(runs.map((r) => r.committedPerSecond)).toFixed(0)} | ` +
                `${median(ratios.get(key) ?? []).toFixed(2)} | ${(retries / Math.max(1, committed)).toFixed(2)} | ` +
                `${runs.reduce((sum, r) => sum + r.failed, 0)} | ${runs.reduce((sum, r) => sum + r.lost, 0)} |`,
            );
          }
        }
        process.stdout.write(`${lines.join("\n")}\n\n`);
      } finally {
        await closeAll(source, base);
      }
    }
  } finally {
    await stopDatabases();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
