/**
 * N clients incrementing counters for a fixed time: one row all share, or one row each. Ours with
 * optimistic locking under retryOnConflict, ours with PESSIMISTIC_WRITE, and plain TypeORM's
 * read-modify-write save, whose lost updates are counted (committed increments the rows lack).
 */
import type { DataSource } from "typeorm";
import { LockMode, retryOnConflict, withLockMode } from "../src";
import { BenchItem } from "./entities";

export type ContentionMode = "optimistic + retry" | "PESSIMISTIC_WRITE" | "plain TypeORM";

export interface ContentionRow {
  mode: ContentionMode;
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

export async function contend(
  source: DataSource,
  mode: ContentionMode,
  clients: number,
  rows: ContentionRow["rows"],
  durationMs: number,
): Promise<ContentionRow> {
  const repository = source.getRepository(BenchItem);
  const ids = Array.from({ length: rows === "same row" ? 1 : clients }, (_, i) => FIRST_ID + i);
  await repository.createQueryBuilder().delete().where("id >= :first", { first: FIRST_ID }).execute();
  await repository.insert(ids.map((id) => ({ id, value: 0, label: "contention", version: 1 })));

  let committed = 0;
  let retries = 0;
  let failed = 0;
  const deadline = performance.now() + durationMs;
  const increment = async (id: number) => {
    switch (mode) {
      case "optimistic + retry":
        await retryOnConflict(
          source,
          async (manager) => {
            const item = await manager.findOneByOrFail(BenchItem, { id });
            item.value += 1;
            await manager.save(item);
          },
          { attempts: 10_000, backoff: { initialMs: 1, maxMs: 20 }, onRetry: () => void retries++ },
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
    mode,
    clients,
    rows,
    committedPerSecond: (committed / elapsed) * 1000,
    committed,
    retries,
    failed,
    lost: committed - total,
  };
}
