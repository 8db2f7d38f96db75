import { DeadlockError, LockTimeoutError, SerializationError, type TranslatedDatabaseError } from "../errors";
import { renderCountingBatchedDelete } from "./batched-delete";
import { renderMysqlBatchedUpdate } from "./batched-update";
import { driverErrorOf, isSocketLoss, type LockDialect, roundWait } from "./lock-dialect";
import { classifyWsrepRefusal, isWsrepReplicationLoss } from "./wsrep";

/**
 * MySQL 8+: `FOR SHARE` / `FOR UPDATE`, `NOWAIT`, `SKIP LOCKED`. A bounded wait needs the
 * session variable `innodb_lock_wait_timeout` (whole seconds, at least 1): it is read first, set,
 * and restored after the statement even when it fails, so a pooled connection is handed back
 * exactly as it was. A lock wait timeout (1205) undoes the statement only; a deadlock (1213)
 * rolls back the transaction.
 *
 * @example
 * ```ts
 * mysqlDialect.waitPlan({ kind: "wait", ms: 1500 })?.apply; // ["SET SESSION innodb_lock_wait_timeout = 2"]
 * ```
 */
export const mysqlDialect: LockDialect = {
  name: "mysql",
  supportsSharedLock: true,
  supportsNoWait: true,
  supportsSkipLocked: true,
  timeoutStyle: "connection",
  timeoutGranularityMs: 1000,
  nowMillis: "CAST(UNIX_TIMESTAMP(CURRENT_TIMESTAMP(3)) * 1000 AS SIGNED)",
  render(strength, wait) {
    const lock = strength === "shared" ? " FOR SHARE" : " FOR UPDATE";
    const suffix = wait.kind === "nowait" ? " NOWAIT" : wait.kind === "skip" ? " SKIP LOCKED" : "";
    return { tableHint: "", clause: lock + suffix };
  },
  waitPlan(wait) {
    if (wait.kind !== "wait") return undefined;
    const seconds = roundWait(wait.ms, 1000) / 1000;
    return {
      readCurrent: "SELECT @@SESSION.innodb_lock_wait_timeout AS value",
      apply: [`SET SESSION innodb_lock_wait_timeout = ${seconds}`],
      restore: (previous) => [`SET SESSION innodb_lock_wait_timeout = ${Number.parseInt(previous, 10)}`],
    };
  },
  lockStatement: () => undefined,
  isMissingTable: isMissingMysqlFamilyTable,
  isConnectionLoss: isMysqlFamilyConnectionLoss,
  // A Galera node (MySQL wsrep) before the library has asked the server what it is.
  isReplicationLoss: isWsrepReplicationLoss,
  classifyError: (error) => classifyMysqlFamily("mysql", error),
  batchedUpdate: (shape) => renderMysqlBatchedUpdate(shape, true),
  batchedDelete: renderCountingBatchedDelete,
  // The prepared-statement limit; the driver interpolates, but a statement stays below it.
  maxParameters: 65_535,
};

/**
 * The server numbers of a session that ended: 1927 ER_CONNECTION_KILLED (MariaDB, `KILL
 * CONNECTION`), 1053 ER_SERVER_SHUTDOWN, 2006/2013 server gone / lost during query (libmysql's
 * numbers, which some drivers reuse), 4031 the server closed an idle session (MySQL 8).
 */
const SESSION_ENDED_ERRNOS = new Set([1927, 1053, 2006, 2013, 4031]);
/** Codes of a connection that was never made: nothing was sent on it. */
const NEVER_CONNECTED_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ER_ACCESS_DENIED_ERROR"]);

/**
 * MySQL and MariaDB drivers (mysql2, mysql) mark an error that ended the connection `fatal`
 * (PROTOCOL_CONNECTION_LOST, a reset socket, a command on a closed connection); the server's own
 * numbers cover a session it ended. @internal
 */
export function isMysqlFamilyConnectionLoss(error: unknown): boolean {
  const driverError = driverErrorOf(error);
  if (!driverError) return false;
  if (NEVER_CONNECTED_CODES.has(String(driverError.code))) return false;
  return (
    driverError.fatal === true ||
    driverError.code === "PROTOCOL_CONNECTION_LOST" ||
    isSocketLoss(driverError) ||
    SESSION_ENDED_ERRNOS.has(Number(driverError.errno))
  );
}

/** ER_NO_SUCH_TABLE, the same number on MySQL, MariaDB and Galera. @internal */
export function isMissingMysqlFamilyTable(error: unknown): boolean {
  return Number(driverErrorOf(error)?.errno) === 1146;
}

/**
 * MySQL and MariaDB share their error numbers; a Galera node's refusal (1047) can come through any
 * of their dialects, before the library knows the server is a Galera node. @internal
 */
export function classifyMysqlFamily(dialect: string, error: unknown): TranslatedDatabaseError | undefined {
  const driverError = driverErrorOf(error);
  const errno = Number(driverError?.errno);
  const failure = (transactionAborted: boolean) => ({
    dialect,
    code: String(errno),
    retryable: true,
    transactionAborted,
  });
  switch (errno) {
    case 1205: // lock wait timeout: only the statement is rolled back (unless innodb_rollback_on_timeout)
    case 3572: // NOWAIT: the row is locked
      return new LockTimeoutError(failure(false), error);
    case 1213:
      return new DeadlockError(failure(true), error);
    case 1020: // MariaDB snapshot isolation: "Record has changed since last read"
      return new SerializationError(failure(true), error);
    default:
      return classifyWsrepRefusal(dialect, error);
  }
}
