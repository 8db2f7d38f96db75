import { LockTimeoutError, SerializationError } from "../errors";
import { renderReturningBatchedDelete } from "./batched-delete";
import { renderSqliteBatchedUpdate } from "./batched-update";
import { driverErrorOf, driverMessageOf, type LockDialect } from "./lock-dialect";

/**
 * SQLite has no row locks: one writer holds the whole database. PESSIMISTIC_WRITE is honoured by
 * taking that write lock for the rest of the transaction (the library issues a write that
 * changes nothing before the SELECT), which excludes every other writer, a superset of a row
 * lock. There is no shared lock other writers must respect, so PESSIMISTIC_READ is refused, and
 * no SKIP LOCKED. The wait is the connection's `busy_timeout` (ms), read and restored.
 *
 * @example
 * ```ts
 * sqliteDialect.lockStatement("exclusive", "order", "id"); // 'UPDATE "order" SET "id" = "id" WHERE 0 = 1'
 * ```
 */
export const sqliteDialect: LockDialect = {
  name: "sqlite",
  supportsSharedLock: false,
  supportsNoWait: true,
  supportsSkipLocked: false,
  timeoutStyle: "connection",
  // TypeORM's SQLite drivers hand the one connection's runner to everybody (createQueryRunner).
  sharesOneRunner: true,
  timeoutGranularityMs: 1,
  nowMillis: "CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)",
  render: () => ({ tableHint: "", clause: "" }),
  // NOWAIT is a busy timeout of 0: fail at once if another connection holds the write lock.
  waitPlan(wait) {
    if (wait.kind !== "wait" && wait.kind !== "nowait") return undefined;
    const ms = wait.kind === "wait" ? wait.ms : 0;
    return {
      readCurrent: "PRAGMA busy_timeout",
      apply: [`PRAGMA busy_timeout = ${Math.ceil(ms)}`],
      restore: (previous) => [`PRAGMA busy_timeout = ${Number.parseInt(previous, 10)}`],
    };
  },
  // A write matching no row still takes the database write lock, held until the transaction ends.
  lockStatement(strength, table, primaryColumn) {
    if (strength !== "exclusive") return undefined;
    const t = quoteIdentifier(table);
    const c = quoteIdentifier(primaryColumn);
    return `UPDATE ${t} SET ${c} = ${c} WHERE 0 = 1`;
  },
  // SQLite has no code of its own for it: SQLITE_ERROR with "no such table: <name>".
  isMissingTable: (error) => /no such table/i.test(driverMessageOf(driverErrorOf(error))),
  // better-sqlite3 refuses to bind an integer outside SQLite's 64 bits (a bigint id of 2^63) with a
  // RangeError instead of comparing it: no row can hold it, so it names none.
  isInvalidValue: (error) => {
    const driverError = driverErrorOf(error);
    return driverError?.name === "RangeError" && /too big/i.test(String(driverError.message));
  },
  // In the process, no network: a COMMIT either returns or throws, and its outcome is never unknown.
  isConnectionLoss: () => false,
  classifyError(error) {
    const code = driverErrorOf(error)?.code;
    if (typeof code !== "string") return undefined;
    const failure = { dialect: "sqlite", code, retryable: true, transactionAborted: false };
    if (code === "SQLITE_BUSY_SNAPSHOT") return new SerializationError(failure, error);
    if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) return new LockTimeoutError(failure, error);
    return undefined;
  },
  batchedUpdate: renderSqliteBatchedUpdate,
  batchedDelete: (shape) => renderReturningBatchedDelete(shape, "values"),
  // SQLITE_MAX_VARIABLE_NUMBER's default since 3.32.
  maxParameters: 32_766,
  // What TypeORM's SQLite query runner starts (PRAGMA read_uncommitted); it throws a plain
  // TypeORMError for the other two.
  isolationLevels: ["READ UNCOMMITTED", "SERIALIZABLE"],
};

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
