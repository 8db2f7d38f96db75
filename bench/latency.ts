/** Single-client saves: ms per save and saves per second, plain TypeORM and ours in the same run. */
import type { DataSource } from "typeorm";
import { BenchItem } from "./entities";
import { type Summary, summarize } from "./stats";

export interface LatencyResult {
  plainMs: Summary;
  oursMs: Summary;
  /** ours / plain, per round. */
  ratio: Summary;
  plainPerSecond: Summary;
  oursPerSecond: Summary;
}

const BATCH = 25;

/** Times `count` saves of one loaded entity; returns the total ms. */
async function timeSaves(item: BenchItem, source: DataSource, count: number): Promise<number> {
  const repository = source.getRepository(BenchItem);
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    item.value += 1;
    await repository.save(item);
  }
  return performance.now() - started;
}

/**
 * Each round runs `saves` saves per side in batches of 25, plain and ours taking turns (and
 * turns about who goes first), so that a change in the machine's load during a round weighs on
 * both sides alike; the round's figure is its total time per save.
 */
export async function singleClientSaves(
  plain: DataSource,
  ours: DataSource,
  options: { rounds: number; saves: number },
): Promise<LatencyResult> {
  const items: BenchItem[] = [];
  for (const [source, id] of [
    [plain, 1],
    [ours, 2],
  ] as const) {
    const repository = source.getRepository(BenchItem);
    await repository.delete({ id });
    await repository.insert({ id, value: 0, label: "latency", version: 1 });
    const item = await repository.findOneByOrFail({ id });
    await timeSaves(item, source, Math.min(100, options.saves)); // warm-up: JIT, pools, caches
    items.push(item);
  }
  const plainMs: number[] = [];
  const oursMs: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    let plainTotal = 0;
    let oursTotal = 0;
    for (let done = 0, batch = 0; done < options.saves; done += BATCH, batch++) {
      const count = Math.min(BATCH, options.saves - done);
      if (batch % 2 === 0) {
        plainTotal += await timeSaves(items[0], plain, count);
        oursTotal += await timeSaves(items[1], ours, count);
      } else {
        oursTotal += await timeSaves(items[1], ours, count);
        plainTotal += await timeSaves(items[0], plain, count);
      }
    }
    plainMs.push(plainTotal / options.saves);
    oursMs.push(oursTotal / options.saves);
  }
  return {
    plainMs: summarize(plainMs),
    oursMs: summarize(oursMs),
    ratio: summarize(oursMs.map((ms, i) => ms / plainMs[i])),
    plainPerSecond: summarize(plainMs.map((ms) => 1000 / ms)),
    oursPerSecond: summarize(oursMs.map((ms) => 1000 / ms)),
  };
}
