import type { DataSource, EntityManager, QueryRunner } from "typeorm";
import { type ConflictKind, dataSourceOfRunner, publishRaised } from "./channels";

/**
 * Numbers transactions as they begin, so that a retry can tell a conflict of a transaction its
 * attempt began (roll back and run again) from one of a transaction that was already open when
 * the attempt began: that one is aborted, or will be, and re-running work inside it cannot
 * succeed. A number per transaction and per conflict error is all it takes; tracking the async
 * context instead (AsyncLocalStorage) would make every promise of the process slower on Node.js
 * 20 and 22 from the first `transaction()` on.
 */
const BEGAN_AS = Symbol("typeorm-locking.transactionNumber");
let begun = 0;
const raisedInTransaction = new WeakMap<object, number>();
const raisedOn = new WeakMap<object, DataSource>();

type NumberedRunner = QueryRunner & { [BEGAN_AS]?: number };

/** Numbers the transaction a runner is about to begin (not a savepoint inside one). @internal */
export function noteTransactionBegins(runner: QueryRunner): void {
  (runner as NumberedRunner)[BEGAN_AS] = ++begun;
}

/** Whether the runner's current (or last) transaction was numbered. @internal */
export function isNumbered(runner: QueryRunner): boolean {
  return (runner as NumberedRunner)[BEGAN_AS] !== undefined;
}

/** How many transactions have begun so far: a later one has a greater number. @internal */
export function transactionsBegun(): number {
  return begun;
}

/**
 * Records in which transaction a conflict error arose (none when the runner was not in one) and
 * returns the error, for `throw raisedIn(runner, new OptimisticLockError(...), "write")`. Every
 * conflict and lock failure passes here, so it is also where they are published on the
 * diagnostics channels (`kind`: where a conflict was found; `rowGone`: the row was deleted).
 *
 * @internal
 */
export function raisedIn<E extends object>(
  where: QueryRunner | EntityManager | undefined,
  error: E,
  kind?: ConflictKind,
  rowGone?: boolean,
): E {
  // A manager outside a transaction has no runner of its own; it still names the DataSource.
  const runner = ((where as EntityManager | undefined)?.queryRunner ?? where) as QueryRunner | undefined;
  if (runner?.isTransactionActive) raisedInTransaction.set(error, (runner as NumberedRunner)[BEGAN_AS] ?? 0);
  const dataSource = dataSourceOfRunner(where);
  if (dataSource) raisedOn.set(error, dataSource);
  publishRaised(where, error, kind, rowGone);
  return error;
}

/** The DataSource on which `raisedIn` saw `error` arise, if it named one. @internal */
export function dataSourceRaisedOn(error: unknown): DataSource | undefined {
  return typeof error === "object" && error !== null ? raisedOn.get(error) : undefined;
}

/** Whether `error` arose in a transaction that had begun when `transactionsBegun()` was `count`. @internal */
export function raisedInTransactionBegunBy(error: unknown, count: number): boolean {
  if (typeof error !== "object" || error === null) return false;
  const number = raisedInTransaction.get(error);
  return number !== undefined && number <= count;
}

/** The number of the transaction a runner is in (or was last in); `undefined` if never numbered. @internal */
export function transactionNumberOf(runner: QueryRunner): number | undefined {
  return (runner as NumberedRunner)[BEGAN_AS];
}
