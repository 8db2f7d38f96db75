/**
 * Statements per operation, plain TypeORM beside ours, counted by a logger on each DataSource.
 * Every statement is one driver call, so the count is also the round trips.
 */
import type { DataSource, EntityManager } from "typeorm";
import { LockMode, updateVersioned, withLockMode } from "../src";
import type { StatementCounter } from "../test/support/databases";
import { BenchItem } from "./entities";

export interface StatementRow {
  operation: string;
  /** `undefined`: plain TypeORM cannot do it. */
  plain?: number;
  ours: number;
}

/** A DataSource and the counter its logger feeds. */
export interface Counted {
  source: DataSource;
  counter: StatementCounter;
}

let nextId = 1_000_000;

async function seeded(source: DataSource): Promise<BenchItem> {
  const repository = source.getRepository(BenchItem);
  const id = nextId++;
  await repository.insert({ id, value: 0, label: "a", version: 1 });
  return repository.findOneByOrFail({ id });
}

/** Counts the statements `work` sends; `inTransaction` leaves out the caller's BEGIN/COMMIT. */
async function count(
  { source, counter }: Counted,
  work: (manager: EntityManager) => Promise<unknown>,
  inTransaction = false,
): Promise<number | undefined> {
  try {
    if (!inTransaction) {
      counter.reset();
      await work(source.manager);
      return counter.count;
    }
    let statements = 0;
    await source.transaction(async (manager) => {
      counter.reset();
      await work(manager);
      statements = counter.count;
    });
    return statements;
  } catch {
    return undefined; // plain TypeORM refuses it on this database (e.g. a row lock on SQLite)
  }
}

export async function countStatements(plain: Counted, ours: Counted): Promise<StatementRow[]> {
  const rows: StatementRow[] = [];
  // The first lock on a DataSource asks a MySQL-family server which it is (once per DataSource):
  // a start-up cost, not a per-operation one, so it is paid before counting.
  const warm = await seeded(ours.source);
  await ours.source.transaction((m) =>
    m.getRepository(BenchItem).findOne({ where: { id: warm.id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) }),
  );
  const both = async (
    operation: string,
    work: (manager: EntityManager, item: BenchItem, installed: boolean) => Promise<unknown>,
    inTx = false,
  ) => {
    const plainItem = await seeded(plain.source);
    const ourItem = await seeded(ours.source);
    const plainCount = await count(plain, (m) => work(m, plainItem, false), inTx);
    const ourCount = await count(ours, (m) => work(m, ourItem, true), inTx);
    if (ourCount === undefined) throw new Error(`bench: ${operation} failed on the installed DataSource`);
    rows.push({ operation, plain: plainCount, ours: ourCount });
  };
  const change = (item: BenchItem) => {
    item.value += 1;
    return item;
  };
  await both("save() of one changed entity", (m, item) => m.save(change(item)));
  await both("save() inside a transaction", (m, item) => m.save(change(item)), true);
  await both("remove()", (m, item) => m.remove(item));
  const ourItem = await seeded(ours.source);
  const versioned = await count(ours, (m) =>
    updateVersioned(m.getRepository(BenchItem), { id: ourItem.id }, ourItem.version, { value: 5 }),
  );
  rows.push({ operation: "updateVersioned()", ours: versioned ?? Number.NaN });
  await both(
    "PESSIMISTIC_WRITE read",
    (m, item, installed) =>
      m
        .getRepository(BenchItem)
        .findOne(
          installed
            ? { where: { id: item.id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) }
            : { where: { id: item.id }, lock: { mode: "pessimistic_write" } },
        ),
    true,
  );
  const timed = await seeded(ours.source);
  const withTimeout = await count(
    ours,
    (m) =>
      m
        .getRepository(BenchItem)
        .findOne({ where: { id: timed.id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 1000 }) }),
    true,
  );
  rows.push({ operation: "PESSIMISTIC_WRITE read, timeout 1000 ms", ours: withTimeout ?? Number.NaN });
  return rows;
}
