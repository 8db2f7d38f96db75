/**
 * Single-client saves: ms per save, saves per second and client CPU per save, for plain TypeORM
 * and ours, each measured in a fresh process of its own (see latency-worker.ts), plus a second
 * plain side measured the same way: its ratio to the first (ideally 1.00) is the noise of the
 * measurement itself.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { DataSource } from "typeorm";
import type { LatencyJob, LatencySample } from "./latency-worker";
import { type Summary, summarize } from "./stats";

export interface LatencyResult {
  plainMs: Summary;
  oursMs: Summary;
  /** ours / plain, per round. */
  ratio: Summary;
  /** plain twin / plain, per round: what the method reads when nothing differs. */
  noiseRatio: Summary;
  plainPerSecond: Summary;
  oursPerSecond: Summary;
  /** Node.js CPU time (user + system, all threads) per save, µs. */
  plainCpuUs: Summary;
  oursCpuUs: Summary;
}

const run = promisify(execFile);
const WORKER = join(__dirname, "latency-worker.ts");

async function sample(job: LatencyJob): Promise<LatencySample> {
  const { stdout } = await run(
    process.execPath,
    ["-r", "ts-node/register/transpile-only", WORKER, JSON.stringify(job)],
    {
      cwd: join(__dirname, ".."),
    },
  );
  return JSON.parse(stdout.trim().split("\n").pop() ?? "") as LatencySample;
}

/** The DataSource's connection options without what cannot cross a process boundary. */
function connectionOf(source: DataSource): Record<string, unknown> {
  const connection: Record<string, unknown> = { ...(source.options as unknown as Record<string, unknown>) };
  for (const key of ["entities", "subscribers", "migrations", "logger", "logging"]) delete connection[key];
  return connection;
}

/**
 * Each round measures the three sides one after the other, in a rotating order, each in a new
 * process that warms up and then times `saves` saves; the round's ratio compares sides measured
 * seconds apart, so a change in the machine's load weighs on them alike.
 */
export async function singleClientSaves(
  base: DataSource,
  options: { rounds: number; saves: number; warmupSaves: number },
): Promise<LatencyResult> {
  const connection = connectionOf(base);
  const sides = [false, false, true].map((installed, index) => ({ installed, id: index + 1 }));
  const perRound = sides.map(() => ({ ms: [] as number[], cpuUs: [] as number[] }));
  for (let round = 0; round < options.rounds; round++) {
    for (let turn = 0; turn < sides.length; turn++) {
      const side = (round + turn) % sides.length;
      const measured = await sample({
        connection,
        ...sides[side],
        warmupSaves: options.warmupSaves,
        saves: options.saves,
      });
      perRound[side].ms.push(measured.msPerSave);
      perRound[side].cpuUs.push(measured.cpuUsPerSave);
    }
  }
  const [plain, twin, ours] = perRound;
  return {
    plainMs: summarize(plain.ms),
    oursMs: summarize(ours.ms),
    ratio: summarize(ours.ms.map((ms, i) => ms / plain.ms[i])),
    noiseRatio: summarize(twin.ms.map((ms, i) => ms / plain.ms[i])),
    plainPerSecond: summarize(plain.ms.map((ms) => 1000 / ms)),
    oursPerSecond: summarize(ours.ms.map((ms) => 1000 / ms)),
    plainCpuUs: summarize(plain.cpuUs),
    oursCpuUs: summarize(ours.cpuUs),
  };
}
