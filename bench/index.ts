/**
 * `npm run bench`: what typeorm-locking costs beside plain TypeORM, measured in one run on the
 * same machine and databases (embedded SQLite and PostgreSQL always; the machine's PostgreSQL and
 * MariaDB when they answer). Prints Markdown to stdout, progress to stderr, and rewrites the
 * results part of docs/benchmarks.md (and the plot beside it) unless --no-write.
 *
 *   npm run bench -- --rounds=3 --saves=800 --warmup=4000 --duration=1000 --clients=1,4,16,64 \
 *                    --memory-saves=100000 --only=sqlite,postgres-embedded --no-write
 *   npm run bench -- --batched-only --batch-rounds=15 --no-write   (batched writes alone)
 */
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import type { DataSource } from "typeorm";
import { installLocking, type LockingOptions } from "../src";
import { closeAll, type DatabaseName, openAlongside, StatementCounter } from "../test/support/databases";
import { type BatchedRow, type BatchSide, batchedSaves } from "./batched";
import { type ContentionMode, type ContentionRow, contend } from "./contention";
import { BenchItem, BenchOrder, BenchOrderLine } from "./entities";
import { singleClientSaves } from "./latency";
import { lockWaits } from "./lock-wait";
import { heapOverSaves, type MemoryResult } from "./memory";
import {
  batchedTable,
  contentionSvg,
  contentionTable,
  type DatabaseResults,
  latencyTable,
  lockWaitTable,
  memoryTable,
  statementsTable,
} from "./report";
import { openDataSources, serverVersion, startDatabases, stopDatabases, type TestDatabase } from "./setup";
import { countStatements } from "./statements";
import { progress } from "./stats";
import { packageVersion, typeormCopies } from "./typeorm-copies";

interface Options {
  rounds: number;
  saves: number;
  warmupSaves: number;
  durationMs: number;
  clients: number[];
  memorySaves: number;
  only?: DatabaseName[];
  write: boolean;
  /** Only the batched-writes section (`--batched-only`), `batchRounds` saves per side and shape. */
  batchedOnly: boolean;
  batchRounds: number;
}

function parseOptions(argv: string[]): Options {
  const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
  const number = (name: string, fallback: number) => {
    const raw = value(name);
    const parsed = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(parsed) || parsed < 0) throw new Error(`--${name} must be a non-negative number, got ${raw}`);
    return parsed;
  };
  return {
    rounds: number("rounds", 3),
    saves: number("saves", 800),
    warmupSaves: number("warmup", 4000),
    durationMs: number("duration", 1000),
    clients: (value("clients") ?? "1,4,16,64").split(",").map(Number),
    memorySaves: number("memory-saves", 100_000),
    only: value("only")?.split(",") as DatabaseName[] | undefined,
    write: !argv.includes("--no-write"),
    batchedOnly: argv.includes("--batched-only"),
    batchRounds: number("batch-rounds", 15),
  };
}

const ROOT = join(__dirname, "..");
const DOC = join(ROOT, "docs", "benchmarks.md");
const PLOT = "benchmarks-contention.svg";
const START = "<!-- bench:results:start -->";
const END = "<!-- bench:results:end -->";

/**
 * Plain TypeORM from a second copy of the same release (the `typeorm-1` alias the tests use),
 * which the library never patches: installing the library hooks TypeORM's prototypes for the
 * whole process, so a plain DataSource of the same copy would pay the hooks' pass-through cost.
 */
async function openPristine(base: DataSource, extra: Record<string, unknown>): Promise<DataSource> {
  const { pristine } = typeormCopies();
  const source = new pristine.DataSource({ ...base.options, synchronize: false, dropSchema: false, ...extra } as never);
  return (await source.initialize()) as unknown as DataSource;
}

async function benchDatabase(db: TestDatabase, options: Options): Promise<DatabaseResults> {
  const plainCounter = new StatementCounter();
  const oursCounter = new StatementCounter();
  const opened: DataSource[] = [];
  // The schema's owner stays open throughout (on SQLite it is the database file's first user).
  const [base] = await openDataSources(db, [BenchItem, BenchOrder, BenchOrderLine]);
  const open = async (extra: Record<string, unknown>, installed: boolean | LockingOptions) => {
    const source = installed
      ? installLocking(await openAlongside(base, extra), installed === true ? {} : installed)
      : await openPristine(base, extra);
    opened.push(source);
    return source;
  };
  try {
    if (options.batchedOnly) {
      const result: DatabaseResults = { name: db.name, server: await serverVersion(base) };
      result.batched = await batchedSection(db, options, open);
      return result;
    }
    const plainLogged = await open({ logger: plainCounter, logging: true }, false);
    const oursLogged = await open({ logger: oursCounter, logging: true }, true);
    const result: DatabaseResults = { name: db.name, server: await serverVersion(plainLogged) };

    progress(`${db.name}: statements per operation`);
    result.statements = await countStatements(
      { source: plainLogged, counter: plainCounter },
      { source: oursLogged, counter: oursCounter },
    );

    progress(
      `${db.name}: single-client saves, ${options.rounds} rounds x 2 processes x 2 sides x ${options.saves} saves`,
    );
    result.latency = await singleClientSaves(base, {
      rounds: options.rounds,
      saves: options.saves,
      warmupSaves: options.warmupSaves,
    });
    const ours = await open({}, true);

    progress(`${db.name}: lock-wait accuracy`);
    const waiter = await open({}, true);
    result.lockWaits = await lockWaits(ours, waiter, [0, 100, 1000], 3);
    await closeAll(...opened.splice(0));

    result.batched = await batchedSection(db, options, open);
    await closeAll(...opened.splice(0));

    if (db.family !== "sqlite" && options.durationMs > 0) {
      result.contention = await contentionCells(open, db.name, options);
    }
    return result;
  } finally {
    await closeAll(...opened, base);
  }
}

async function batchedSection(
  db: TestDatabase,
  options: Options,
  open: (extra: Record<string, unknown>, installed: boolean | LockingOptions) => Promise<DataSource>,
): Promise<BatchedRow[]> {
  const side = async (name: BatchSide["name"], installed: boolean | LockingOptions): Promise<BatchSide> => {
    const counter = new StatementCounter();
    return { name, counter, source: await open({ logger: counter, logging: true }, installed) };
  };
  const sides = [
    await side("plain", false),
    await side("ours per row", { batchWrites: false }),
    await side("ours batched", { batchWrites: true }),
  ];
  return batchedSaves(sides, options.batchRounds, db.name);
}

const CONTENTION_MODES: [ContentionMode, boolean][] = [
  ["optimistic + retry", true],
  ["optimistic + retry, no hot-row locks", true],
  ["PESSIMISTIC_WRITE", true],
  ["plain TypeORM", false],
];

/**
 * Every contention cell, the modes of each cell run one after another in an order that rotates
 * from cell to cell, after one discarded cell per mode: run mode by mode, the first cell of the
 * run read half the rate of the same load a minute later, whichever mode it was. Each cell gets
 * its own DataSource, closed after it: two pools of 64 would pass PostgreSQL's 100 connections.
 */
async function contentionCells(
  open: (extra: Record<string, unknown>, installed: boolean) => Promise<DataSource>,
  name: string,
  options: Options,
): Promise<ContentionRow[]> {
  const pool = Math.max(...options.clients) + 2;
  const cell = async (
    mode: ContentionMode,
    installed: boolean,
    clients: number,
    kind: ContentionRow["rows"],
    ms: number,
  ) => {
    const source = await open({ poolSize: pool }, installed);
    try {
      return await contend(source, mode, clients, kind, ms);
    } finally {
      await closeAll(source);
    }
  };
  progress(`${name}: contention warm-up`);
  for (const [mode, installed] of CONTENTION_MODES) {
    await cell(mode, installed, 4, "same row", Math.min(500, options.durationMs));
  }
  const rows: ContentionRow[] = [];
  let index = 0;
  for (const kind of ["same row", "distinct rows"] as ContentionRow["rows"][]) {
    for (const clients of options.clients) {
      const order = CONTENTION_MODES.map((_, i) => CONTENTION_MODES[(i + index) % CONTENTION_MODES.length]);
      index++;
      for (const [mode, installed] of order) {
        progress(`${name}: contention, ${mode}, ${kind}, ${clients} clients`);
        rows.push(await cell(mode, installed, clients, kind, options.durationMs));
      }
    }
  }
  // The table reads mode by mode, as before.
  const modeIndex = (row: ContentionRow) => CONTENTION_MODES.findIndex(([mode]) => mode === row.mode);
  return rows.sort((a, b) => modeIndex(a) - modeIndex(b));
}

function renderReport(
  results: DatabaseResults[],
  memory: MemoryResult | undefined,
  used: string,
  skipped: string,
  options: Options,
) {
  const typeormVersion = packageVersion("typeorm");
  const cpus = os.cpus();
  if (options.batchedOnly) {
    return [
      `Batched writes, measured ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC on ${os.cpus().length} x ${os.cpus()[0]?.model ?? "CPU"}, ${options.batchRounds} saves per side and shape.`,
      `Databases: ${used}.`,
      "",
      batchedTable(results),
      "",
    ].join("\n");
  }
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC on ${cpus.length} x ${cpus[0]?.model ?? "CPU"}, ` +
      `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}, Node.js ${process.version}, TypeORM ${typeormVersion}.`,
    `Databases: ${used}.${skipped ? ` Not used: ${skipped}.` : ""}`,
    `Options: ${options.rounds} rounds x ${options.saves} saves per side after ${options.warmupSaves} warm-up saves each, contention ${options.durationMs} ms per cell with ${options.clients.join("/")} clients, ${options.memorySaves} saves for memory.`,
    "",
    "### 1. Statements (= round trips) per operation, plain TypeORM / ours",
    "",
    statementsTable(results),
    "",
    "### 2. Single-client saves (median of rounds, min–max)",
    "",
    latencyTable(results),
    "",
    "### 3. Contention: N clients incrementing for a fixed time",
    "",
    `![committed updates per second against clients](${PLOT})`,
    "",
  ];
  for (const r of results.filter((x) => x.contention?.length)) lines.push(`#### ${r.name}`, "", contentionTable(r), "");
  lines.push("### 4. Lock-wait accuracy (3 rounds)", "", lockWaitTable(results), "");
  if (memory)
    lines.push(
      `### 5. Heap over ${memory.saves} saves of ${1000} distinct rows (SQLite in memory)`,
      "",
      memoryTable(memory),
      "",
      `Growth: ${memory.growthMb.toFixed(1)} MB.`,
      "",
    );
  lines.push("### 6. Batched writes: ms and statements per save() of N changed rows", "", batchedTable(results), "");
  return lines.join("\n");
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const started = performance.now();
  progress("starting databases (embedded PostgreSQL, probing the machine's servers)");
  const { used, skipped } = await startDatabases(options.only);
  const results: DatabaseResults[] = [];
  let memory: MemoryResult | undefined;
  try {
    for (const db of used) results.push(await benchDatabase(db, options));
    if (options.memorySaves > 0 && !options.batchedOnly) {
      progress(`memory: ${options.memorySaves} saves`);
      memory = await heapOverSaves(options.memorySaves);
    }
  } finally {
    await stopDatabases();
  }
  const usedText = results.map((r) => `${r.name} (${r.server})`).join(", ");
  const skippedText = skipped.map((s) => `${s.name} (${s.reason.split("\n")[0]})`).join(", ");
  const report = renderReport(results, memory, usedText, skippedText, options);
  process.stdout.write(`${report}\n`);
  if (options.write && options.batchedOnly) {
    progress("--batched-only: docs/benchmarks.md left as it is (its results block is a full run's)");
  } else if (options.write) {
    const doc = readFileSync(DOC, "utf8");
    const [before, rest] = doc.split(START);
    const after = rest?.split(END)[1];
    if (after === undefined) throw new Error(`${DOC} lacks the ${START} / ${END} markers`);
    writeFileSync(DOC, `${before}${START}\n${report}\n${END}${after}`);
    writeFileSync(join(ROOT, "docs", PLOT), contentionSvg(results));
    progress(`wrote docs/benchmarks.md and docs/${PLOT}`);
  }
  progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
