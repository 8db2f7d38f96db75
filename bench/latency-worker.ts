/**
 * One side of the single-client latency bench, in a process of its own: `npm run bench` starts
 * this for plain TypeORM and for ours in turn, so neither shares JIT state or TypeORM's patched
 * prototypes with the other (installing the library hooks TypeORM for the whole process).
 *
 *   node -r ts-node/register/transpile-only bench/latency-worker.ts '<json LatencyJob>'
 *
 * Prints one JSON line: { "msPerSave": .., "cpuUsPerSave": .. }.
 */
import "reflect-metadata";
import { DataSource, type DataSourceOptions } from "typeorm";
import { installLocking } from "../src";
import { BenchItem } from "./entities";

/** What one worker measures. */
export interface LatencyJob {
  /** Connection options, serialisable (no entities, logger or subscribers). */
  connection: Record<string, unknown>;
  installed: boolean;
  /** The row this side saves; each side has its own. */
  id: number;
  /** Saves made before timing: TypeORM's code (and ours) needs thousands of calls to be optimised. */
  warmupSaves: number;
  saves: number;
}

/** What one worker reports. */
export interface LatencySample {
  msPerSave: number;
  /** Node.js CPU time (user + system, all threads) per save. */
  cpuUsPerSave: number;
}

async function measure(job: LatencyJob): Promise<LatencySample> {
  const source = new DataSource({
    ...job.connection,
    entities: [BenchItem],
    synchronize: false,
    dropSchema: false,
  } as unknown as DataSourceOptions);
  await source.initialize();
  if (job.installed) installLocking(source);
  try {
    const repository = source.getRepository(BenchItem);
    await repository.delete({ id: job.id });
    await repository.insert({ id: job.id, value: 0, label: "latency", version: 1 });
    const item = await repository.findOneByOrFail({ id: job.id });
    const saveMany = async (count: number) => {
      for (let i = 0; i < count; i++) {
        item.value += 1;
        await repository.save(item);
      }
    };
    await saveMany(job.warmupSaves);
    const cpu = process.cpuUsage();
    const started = performance.now();
    await saveMany(job.saves);
    const elapsed = performance.now() - started;
    const used = process.cpuUsage(cpu);
    return { msPerSave: elapsed / job.saves, cpuUsPerSave: (used.user + used.system) / job.saves };
  } finally {
    await source.destroy();
  }
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
