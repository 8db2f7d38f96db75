/**
 * The report of the fault runs: one entry per run (test, database, TypeORM line) in
 * test-results/faults-report.json (LOCKING_FAULTS_REPORT overrides the path), kept across the
 * files of one `npm run test:faults`, and a one-line summary on the console.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { HistoryRunResult } from "./run";

/** A run's figures as the run returned them, with where and when it ran and what it found. */
export type ReportEntry = Pick<
  HistoryRunResult,
  | "seed"
  | "clients"
  | "aggregates"
  | "operations"
  | "durationMs"
  | "opsPerSecond"
  | "ok"
  | "failed"
  | "unknown"
  | "retries"
  | "byKind"
  | "errors"
> & {
  run: string;
  database: string;
  typeorm: string;
  profile: string;
  at: string;
  unknownPresent: number;
  faults: Record<string, Record<string, number>>;
  violations: Record<string, number>;
};

export function reportFile(): string {
  return process.env.LOCKING_FAULTS_REPORT ?? join(__dirname, "..", "..", "..", "test-results", "faults-report.json");
}

/** Adds (or replaces) a run's entry in the report file and prints its summary line. */
export function reportRun(run: string, database: string, result: HistoryRunResult): ReportEntry {
  const typeorm = String((globalThis as { TYPEORM_LINE?: string }).TYPEORM_LINE ?? "typeorm");
  const entry: ReportEntry = {
    run,
    database,
    typeorm,
    profile: process.env.LOCKING_FAULTS_PROFILE ?? "full",
    at: new Date().toISOString(),
    seed: result.seed,
    clients: result.clients,
    aggregates: result.aggregates,
    operations: result.operations,
    durationMs: result.durationMs,
    opsPerSecond: result.opsPerSecond,
    ok: result.ok,
    failed: result.failed,
    unknown: result.unknown,
    unknownPresent: result.check.unknownPresent,
    retries: result.retries,
    faults: result.faults,
    violations: result.check.counts,
    byKind: result.byKind,
    errors: result.errors,
  };
  const file = reportFile();
  let entries: ReportEntry[] = [];
  try {
    entries = (JSON.parse(readFileSync(file, "utf8")) as { runs: ReportEntry[] }).runs ?? [];
  } catch {
    // no report yet
  }
  entries = entries.filter((e) => !(e.run === run && e.database === database && e.typeorm === typeorm));
  entries.push(entry);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ runs: entries }, null, 2)}\n`);
  const faults = Object.entries(result.faults)
    .flatMap(([name, kinds]) => Object.entries(kinds).map(([kind, n]) => `${name}.${kind}=${n}`))
    .join(" ");
  const bad = Object.entries(result.check.counts)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${kind}=${n}`)
    .join(" ");
  console.log(
    `[faults] ${run} ${database} ${typeorm}: ${result.operations} ops in ${result.durationMs} ms ` +
      `(${result.opsPerSecond} ops/s), ok ${result.ok}, failed ${result.failed}, unknown ${result.unknown} ` +
      `(${result.check.unknownPresent} committed), retries ${result.retries}; faults: ${faults || "none"}; ` +
      `violations: ${bad || "none"} (seed ${result.seed})`,
  );
  return entry;
}
