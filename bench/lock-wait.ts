/** Requested lock timeout vs the time a blocked locking read takes to fail. */
import type { DataSource } from "typeorm";
import { LockMode, withLockMode } from "../src";
import { deferred } from "../test/support/interleaving";
import { BenchItem } from "./entities";
import { type Summary, summarize } from "./stats";

export interface LockWaitRow {
  requestedMs: number;
  observedMs: Summary;
  error: string;
}

const ROW = 42;

export async function lockWaits(
  holder: DataSource,
  waiter: DataSource,
  requested: number[],
  rounds: number,
): Promise<LockWaitRow[]> {
  const repository = holder.getRepository(BenchItem);
  await repository.delete({ id: ROW });
  await repository.insert({ id: ROW, value: 0, label: "lock-wait", version: 1 });
  const rows: LockWaitRow[] = [];
  for (const ms of requested) {
    const observed: number[] = [];
    let error = "";
    for (let round = 0; round < rounds; round++) {
      const held = deferred();
      const done = deferred();
      const holding = holder.transaction(async (manager) => {
        await manager.findOneOrFail(BenchItem, { where: { id: ROW }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
        held.resolve();
        await done.promise;
      });
      await held.promise;
      const started = performance.now();
      try {
        await waiter.transaction((manager) =>
          manager.findOneOrFail(BenchItem, {
            where: { id: ROW },
            ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: ms }),
          }),
        );
        error = "(not blocked!)";
      } catch (failure) {
        error = (failure as Error).constructor.name;
      }
      observed.push(performance.now() - started);
      done.resolve();
      await holding;
    }
    rows.push({ requestedMs: ms, observedMs: summarize(observed), error });
  }
  return rows;
}
