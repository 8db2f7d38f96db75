import { AsyncLocalStorage } from "node:async_hooks";

/**
 * Marks the code running inside a TypeORM `transaction()` callback (of an installed DataSource),
 * so that a retry can refuse to start there: re-running work inside a transaction the database
 * has already aborted (a deadlock, a serialization failure) cannot succeed, and re-running it in
 * a live one would repeat its writes. Transactions opened by hand with
 * `queryRunner.startTransaction()` are not seen.
 */
const transactionScope = new AsyncLocalStorage<true>();

/** Runs `work` marked as being inside a transaction. */
export function runInTransactionScope<T>(work: () => T): T {
  return transactionScope.run(true, work);
}

/** Whether the caller runs inside a `transaction()` callback of an installed DataSource. */
export function insideTransaction(): boolean {
  return transactionScope.getStore() === true;
}
