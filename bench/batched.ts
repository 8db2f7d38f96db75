/**
 * Batched writes (`installLocking(ds, { batchWrites: true })`): statements and ms per `save()` of
 * 1, 10, 100 and 1,000 changed rows of one table and of an aggregate with 100 changed lines, for
 * plain TypeORM, ours row by row (`batchWrites: false`) and ours batched (the default), in one run, rounds interleaved
 * so that the three sides share the machine's drift.
 */
import { type DataSource, In } from "typeorm";
import type { StatementCounter } from "../test/support/databases";
import { BenchItem, BenchOrder, type BenchOrderLine } from "./entities";
import { progress, type Summary, summarize } from "./stats";

/** One side of the comparison: a DataSource and the counter its logger feeds. */
export interface BatchSide {
  name: "plain" | "ours per row" | "ours batched";
  source: DataSource;
  counter: StatementCounter;
}

export interface BatchedRow {
  /** "1 row", "100 rows", "aggregate, 100 lines". */
  shape: string;
  /** Per side: statements of one save (the last round's) and ms per save. */
  sides: { name: BatchSide["name"]; statements: number; ms: Summary }[];
}

export const BATCH_SIZES = [1, 10, 100, 1000];
let nextId = 5_000_000;

async function seedItems(source: DataSource, count: number): Promise<BenchItem[]> {
  const repository = source.getRepository(BenchItem);
  const ids = Array.from({ length: count }, () => nextId++);
  for (let at = 0; at < ids.length; at += 500) {
    await repository.insert(ids.slice(at, at + 500).map((id) => ({ id, value: 0, label: "a", version: 1 })));
  }
  return repository.findBy({ id: In(ids) });
}

async function seedOrder(source: DataSource, lines: number): Promise<BenchOrder> {
  const repository = source.getRepository(BenchOrder);
  const { id } = await repository.save(
    repository.create({
      customer: "c",
      lines: Array.from({ length: lines }, (_, quantity) => ({ quantity }) as BenchOrderLine),
    }),
  );
  return repository.findOneOrFail({ where: { id }, relations: { lines: true } });
}

/** Times `rounds` saves per side, the sides taking turns each round; each save changes every row. */
async function measure(
  sides: BatchSide[],
  shape: string,
  rounds: number,
  prepare: (side: BatchSide) => Promise<() => Promise<unknown>>,
): Promise<BatchedRow> {
  // One side after the other: SQLite has one writer.
  const saves: Array<() => Promise<unknown>> = [];
  for (const side of sides) saves.push(await prepare(side));
  const times: number[][] = sides.map(() => []);
  const statements: number[] = sides.map(() => 0);
  for (let round = -2; round < rounds; round++) {
    for (const [i, side] of sides.entries()) {
      side.counter.reset();
      const started = performance.now();
      await saves[i]();
      const elapsed = performance.now() - started;
      if (round < 0) continue; // warm-up
      times[i].push(elapsed);
      statements[i] = side.counter.count;
    }
  }
  return {
    shape,
    sides: sides.map((side, i) => ({ name: side.name, statements: statements[i], ms: summarize(times[i]) })),
  };
}

/** The batched-writes rows of one database. */
export async function batchedSaves(sides: BatchSide[], rounds: number, label: string): Promise<BatchedRow[]> {
  const rows: BatchedRow[] = [];
  for (const size of BATCH_SIZES) {
    progress(`${label}: batched writes, ${size} rows`);
    rows.push(
      await measure(
        sides,
        `${size} ${size === 1 ? "row" : "rows"}`,
        size >= 1000 ? Math.max(3, rounds / 3) : rounds,
        async (side) => {
          const items = await seedItems(side.source, size);
          return () => {
            for (const item of items) item.value += 1;
            return side.source.getRepository(BenchItem).save(items);
          };
        },
      ),
    );
  }
  progress(`${label}: batched writes, aggregate with 100 lines`);
  rows.push(
    await measure(sides, "aggregate, 100 lines", rounds, async (side) => {
      const order = await seedOrder(side.source, 100);
      return () => {
        for (const line of order.lines) line.quantity += 1;
        return side.source.getRepository(BenchOrder).save(order);
      };
    }),
  );
  return rows;
}
