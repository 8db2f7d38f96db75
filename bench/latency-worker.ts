/**
 * One process of the single-client latency bench: two sides saving in turns, in the same
 * process, so that whatever the machine does (another process, CPU frequency, the VM's
 * neighbours) weighs on both alike. Each side saves its own row through its own DataSource:
 *
 * - pair "ours": plain TypeORM beside typeorm-locking;
 * - pair "twin": plain TypeORM beside a second plain DataSource (the table mapped without library
 *   decorators, which the library leaves alone), which reads what the method sees when nothing
 *   differs (the noise).
 *
 * The first side comes from the `typeorm-1` alias, a second copy of the same TypeORM release that
 * the library never patches (installing it hooks the prototypes of the `typeorm` copy for the
 * whole process); the second from `typeorm`, installed or not.
 *
 *   node -r ts-node/register/transpile-only bench/latency-worker.ts '<json LatencyJob>'
 *
 * Prints one JSON line, a LatencySample.
 */
import "reflect-metadata";
import type { DataSource, DataSourceOptions } from "typeorm";
import { installLocking, LockMode, withLockMode } from "../src";
import { BenchItem, PlainBenchItem } from "./entities";
import { summarize } from "./stats";
import { typeormCopies } from "./typeorm-copies";

/** What one worker measures. */
export interface LatencyJob {
  /** Connection options, serialisable (no entities, logger or subscribers). */
  connection: Record<string, unknown>;
  pair: "ours" | "twin";
  /** The rows the two sides save; each side has its own. */
  ids: [number, number];
  /** Saves per side before timing: TypeORM's code (and ours) needs thousands of calls to be optimised. */
  warmupSaves: number;
  /** Timed saves per side. */
  saves: number;
  /** The timed saves come in this many blocks per side, the two sides taking turns (ABBA). */
  blocks: number;
  /**
   * Run only this side of the pair, warm-up and timed saves in one go (bench/instructions.sh
   * counts a process's instructions, so each side needs a process of its own).
   */
  only?: 0 | 1;
  /**
   * What one operation is: a `save()` of a loaded row (the default), or a `transaction()` that
   * reads the row with `PESSIMISTIC_WRITE` and saves it (`withLockMode()` on the library's side,
   * the path that publishes a lock trace; TypeORM's own `lock` option on plain TypeORM's).
   */
  operation?: "save" | "locked-save";
  /** Subscribe the OpenTelemetry example (examples/opentelemetry) to the library's channels. */
  observe?: "otel";
}

/** What one worker reports: side 0 is always plain TypeORM. */
export interface LatencySample {
  msPerSave: [number, number];
  /** Median over blocks of side 1's time over side 0's, each pair of blocks run back to back. */
  ratio: number;
  /** Node.js CPU time (user + system, all threads) per save, during each side's blocks. */
  cpuUsPerSave: [number, number];
}

type DataSourceClass = new (options: DataSourceOptions) => DataSource;

type Item = typeof BenchItem | typeof PlainBenchItem;

async function open(
  DataSourceClass: DataSourceClass,
  connection: Record<string, unknown>,
  entity: Item = BenchItem,
): Promise<DataSource> {
  const source = new DataSourceClass({
    ...connection,
    entities: [entity],
    synchronize: false,
    dropSchema: false,
  } as unknown as DataSourceOptions);
  return source.initialize();
}

async function measure(job: LatencyJob): Promise<LatencySample> {
  const { pristine, main } = typeormCopies();
  if (job.observe === "otel") await observeWithOpenTelemetry();
  // The second side always runs the other copy's code, so the two pairs differ only by
  // installLocking(): two DataSources of one copy would share V8's inline caches and feedback,
  // which the ours pair does not (a twin of one copy read 1.06 in one run).
  const openSide = async (side: 0 | 1) => {
    if (side === 0) return open(pristine.DataSource as unknown as DataSourceClass, job.connection);
    // @Versioned() is enforced on every DataSource of the hooked copy: the twin maps the table
    // without it, so that it stays plain TypeORM (passing through the hooks' pass-through path).
    if (job.pair === "twin") return open(main.DataSource as unknown as DataSourceClass, job.connection, PlainBenchItem);
    return installLocking(await open(main.DataSource as unknown as DataSourceClass, job.connection));
  };
  if (job.only !== undefined) return saveAlone(await openSide(job.only), job);
  const sides = [await openSide(0), await openSide(1)];
  try {
    const savers = await Promise.all(sides.map((source, side) => saver(source, job.ids[side], job.operation, side)));
    const warmupChunk = 100;
    for (let done = 0; done < job.warmupSaves; done += warmupChunk) {
      for (const save of savers) await save(Math.min(warmupChunk, job.warmupSaves - done));
    }
    const perBlock = Math.max(1, Math.round(job.saves / job.blocks));
    const ms = [0, 0];
    const cpuUs = [0, 0];
    const ratios: number[] = [];
    for (let block = 0; block < job.blocks; block++) {
      const blockMs = [0, 0];
      for (const side of block % 2 === 0 ? [0, 1] : [1, 0]) {
        const cpu = process.cpuUsage();
        const started = performance.now();
        await savers[side](perBlock);
        blockMs[side] = performance.now() - started;
        const used = process.cpuUsage(cpu);
        ms[side] += blockMs[side];
        cpuUs[side] += used.user + used.system;
      }
      ratios.push(blockMs[1] / blockMs[0]);
    }
    const timed = perBlock * job.blocks;
    return {
      msPerSave: [ms[0] / timed, ms[1] / timed],
      ratio: summarize(ratios).median,
      cpuUsPerSave: [cpuUs[0] / timed, cpuUs[1] / timed],
    };
  } finally {
    await Promise.all(sides.map((source) => source.destroy()));
  }
}

/** One side alone: its saves untimed, for a count of the whole process. */
async function saveAlone(source: DataSource, job: LatencyJob): Promise<LatencySample> {
  try {
    const save = await saver(source, job.ids[job.only ?? 0], job.operation, job.only ?? 0);
    await save(job.warmupSaves + job.saves);
    return { msPerSave: [Number.NaN, Number.NaN], ratio: Number.NaN, cpuUsPerSave: [Number.NaN, Number.NaN] };
  } finally {
    await source.destroy();
  }
}

/** A function that runs `count` operations on a fresh row, each changing one column. */
async function saver(
  source: DataSource,
  id: number,
  operation: LatencyJob["operation"] = "save",
  side: number,
): Promise<(count: number) => Promise<void>> {
  const [entity] = source.options.entities as Item[];
  const repository = source.getRepository<BenchItem>(entity);
  await repository.delete({ id });
  await repository.insert({ id, value: 0, label: "latency", version: 1 });
  if (operation === "locked-save") {
    const lock =
      side === 0 ? { lock: { mode: "pessimistic_write" as const } } : withLockMode(LockMode.PESSIMISTIC_WRITE);
    return async (count) => {
      for (let i = 0; i < count; i++) {
        await source.transaction(async (manager) => {
          const row = await manager.findOneOrFail<BenchItem>(entity, { where: { id }, ...lock });
          row.value += 1;
          await manager.save(row);
        });
      }
    };
  }
  const item = await repository.findOneByOrFail({ id });
  return async (count) => {
    for (let i = 0; i < count; i++) {
      item.value += 1;
      await repository.save(item);
    }
  };
}

/**
 * Subscribes the OpenTelemetry example with in-memory exporters, as a service would with its own
 * exporter; what the subscription costs is then in the count. Loaded only when asked, so the
 * other runs load no OpenTelemetry code.
 */
async function observeWithOpenTelemetry(): Promise<void> {
  const { startTelemetry } = await import("../examples/opentelemetry/telemetry");
  const telemetry = startTelemetry({ exporters: "memory" });
  // Spans pile up in memory; clearing them now and then keeps the heap as a live service's.
  setInterval(() => telemetry.spans?.reset(), 1000).unref();
}

if (require.main === module) {
  measure(JSON.parse(process.argv[2]) as LatencyJob).then(
    (sample) => process.stdout.write(`${JSON.stringify(sample)}\n`),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
