/**
 * Single-client saves: ms per save, saves per second and client CPU per save, for plain TypeORM
 * and ours. Each measurement is one process (latency-worker.ts) in which the two sides save in
 * turns, block by block, so the machine's drift weighs on both alike; a second kind of process
 * runs plain beside plain, whose ratio (ideally 1.00) is the noise of the method itself.
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
  /** ours / plain: per round, the median over its pairs of blocks. */
  ratio: Summary;
  /** plain twin / plain, measured the same way: what the method reads when nothing differs. */
  noiseRatio: Summary;
  plainPerSecond: Summary;
  oursPerSecond: Summary;
  /** Node.js CPU time (user + system, all threads) per save, µs. */
  plainCpuUs: Summary;
  oursCpuUs: Summary;
}

const run = promisify(execFile);
const WORKER = join(__dirname, "latency-worker.ts");
/** Blocks per side and process: enough pairs for a median, each block still tens of ms long. */
const BLOCKS = 16;

async function sample(job: LatencyJob): Promise<LatencySample> {
  const { stdout } = await run(
    process.execPath,
    ["-r", "ts-node/register/transpile-only", WORKER, JSON.stringify(job)],
    { cwd: join(__dirname, "..") },
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
 * Each round runs one process of plain beside ours and one of plain beside plain, in a rotating
 * order; each warms both of its sides up and then times `saves` saves per side.
 */
export async function singleClientSaves(
  base: DataSource,
  options: { rounds: number; saves: number; warmupSaves: number },
): Promise<LatencyResult> {
  const connection = connectionOf(base);
  const jobs: LatencyJob[] = (["ours", "twin"] as const).map((pair, index) => ({
    connection,
    pair,
    ids: [2 * index + 1, 2 * index + 2],
    warmupSaves: options.warmupSaves,
    saves: options.saves,
    blocks: BLOCKS,
  }));
  const samples: LatencySample[][] = [[], []];
  for (let round = 0; round < options.rounds; round++) {
    for (let turn = 0; turn < jobs.length; turn++) {
      const index = (round + turn) % jobs.length;
      samples[index].push(await sample(jobs[index]));
    }
  }
  const [ours, twin] = samples;
  const plainMs = ours.map((s) => s.msPerSave[0]);
  const oursMs = ours.map((s) => s.msPerSave[1]);
  return {
    plainMs: summarize(plainMs),
    oursMs: summarize(oursMs),
    ratio: summarize(ours.map((s) => s.ratio)),
    noiseRatio: summarize(twin.map((s) => s.ratio)),
    plainPerSecond: summarize(plainMs.map((ms) => 1000 / ms)),
    oursPerSecond: summarize(oursMs.map((ms) => 1000 / ms)),
    plainCpuUs: summarize(ours.map((s) => s.cpuUsPerSave[0])),
    oursCpuUs: summarize(ours.map((s) => s.cpuUsPerSave[1])),
  };
}
