/**
 * N clients incrementing counters for a fixed time: one row all share, or one row each. Ours with
 * optimistic locking under retryOnConflict (with its hot-row locks, the default, and without),
 * ours with PESSIMISTIC_WRITE, and plain TypeORM's read-modify-write save, whose lost updates are
 * counted (committed increments the rows lack). Retry variants (`RetryVariant`) compare backoff
 * policies under the same load (bench/hot-rows.ts).
 */
import type { DataSource, EntityManager } from "typeorm";
import { type HotRowOptions, LockMode, retryOnConflict, withLockMode } from "../src";
import { forgetHotRows } from "../src/hot-rows";
import { BenchItem } from "./entities";

export type ContentionMode =
  | "optimistic + retry"
  | "optimistic + retry, no hot-row locks"
  | "PESSIMISTIC_WRITE"
  | "plain TypeORM";

/**
 * How a retry variant waits before attempt n+1: not at all, full jitter (uniform in
 * [0, min(maxMs, initialMs * 2^(n-1)))), or decorrelated jitter (uniform in
 * [initialMs, 3 * previous wait), capped at maxMs; AWS's "Exponential Backoff and Jitter").
 */
export type Backoff = "none" | "full jitter" | "decorrelated jitter";

/** A retry policy to compare: hot-row locks on or off, and a backoff. */
export interface RetryVariant {
  label: string;
  hotRows: boolean | HotRowOptions;
  backoff: Backoff;
  initialMs: number;
  maxMs: number;
}

export interface ContentionRow {
  mode: string;
  clients: number;
  rows: "same row" | "distinct rows";
  committedPerSecond: number;
  committed: number;
  /** Conflicts met and retried (each retry follows one conflict). */
  retries: number;
  failed: number;
  lost: number;
}

const FIRST_ID = 100_000;

/** The bench's own retry options: enough attempts that no increment gives up, a short backoff. */
const RETRY = { attempts: 10_000, backoff: { initialMs: 1, maxMs: 20 } };

export async function contend(
  source: DataSource,
  mode: ContentionMode | RetryVariant,
  clients: number,
  rows: ContentionRow["rows"],
  durationMs: number,
): Promise<ContentionRow> {
  const repository = source.getRepository(BenchItem);
  const ids = Array.from({ length: rows === "same row" ? 1 : clients }, (_, i) => FIRST_ID + i);
  await repository.createQueryBuilder().delete().where("id >= :first", { first: FIRST_ID }).execute();
  await repository.insert(ids.map((id) => ({ id, value: 0, label: "contention", version: 1 })));
  // The rows (same ids) were hot in the cell before: each cell starts with nothing remembered.
  forgetHotRows(source);
  // Every client's connection is open before the clock starts: a cell measures contention, not
  // how fast the pool connects.
  await Promise.all(Array.from({ length: clients }, () => source.query("SELECT 1")));

  let committed = 0;
  let retries = 0;
  let failed = 0;
  const onRetry = () => void retries++;
  const load = (manager: EntityManager, id: number) => manager.findOneByOrFail(BenchItem, { id });
  const increment = async (id: number) => {
    if (typeof mode === "object") return incrementWith(source, mode, id, onRetry);
    switch (mode) {
      case "optimistic + retry":
      case "optimistic + retry, no hot-row locks":
        await retryOnConflict(
          source,
          async (manager) => {
            const item = await load(manager, id);
            item.value += 1;
            await manager.save(item);
          },
          { ...RETRY, lockHotRows: mode === "optimistic + retry", onRetry },
        );
        return;
      case "PESSIMISTIC_WRITE":
        await source.transaction(async (manager) => {
          const item = await manager.findOneOrFail(BenchItem, {
            where: { id },
            ...withLockMode(LockMode.PESSIMISTIC_WRITE),
          });
          item.value += 1;
          await manager.save(item);
        });
        return;
      case "plain TypeORM": {
        const item = await repository.findOneByOrFail({ id });
        item.value += 1;
        await repository.save(item);
      }
    }
  };
  const deadline = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      const id = ids[client % ids.length];
      while (performance.now() < deadline) {
        try {
          await increment(id);
          committed++;
        } catch {
          failed++;
        }
      }
    }),
  );
  const elapsed = performance.now() - started;
  const stored = await repository
    .createQueryBuilder("i")
    .select("SUM(i.value)", "total")
    .where("i.id >= :first", { first: FIRST_ID })
    .getRawOne();
  const total = Number(stored?.total ?? 0);
  return {
    mode: typeof mode === "object" ? mode.label : mode,
    clients,
    rows,
    committedPerSecond: (committed / elapsed) * 1000,
    committed,
    retries,
    failed,
    lost: committed - total,
  };
}

/**
 * One increment under a retry variant. The library's own backoff is off; the variant's wait is
 * slept at the start of each retry instead, so every variant waits the same way (with hot-row
 * locks on, the library itself would not wait at all).
 */
async function incrementWith(source: DataSource, variant: RetryVariant, id: number, onRetry: () => void) {
  let previous = variant.initialMs;
  await retryOnConflict(
    source,
    async (manager, attempt) => {
      if (attempt > 1 && variant.backoff !== "none") {
        const delay =
          variant.backoff === "full jitter"
            ? Math.floor(Math.random() * Math.min(variant.maxMs, variant.initialMs * 2 ** (attempt - 2)))
            : Math.min(variant.maxMs, variant.initialMs + Math.random() * (previous * 3 - variant.initialMs));
        previous = delay;
        if (delay >= 1) await new Promise((resolve) => setTimeout(resolve, delay));
      }
      const item = await manager.findOneByOrFail(BenchItem, { id });
      item.value += 1;
      await manager.save(item);
    },
    { attempts: 10_000, backoff: { initialMs: 0, maxMs: 0 }, lockHotRows: variant.hotRows, onRetry },
  );
}
