import { DeadlockError, LockTimeoutError } from "../errors";
import { driverErrorOf, isSocketLoss, type LockDialect } from "./lock-dialect";

/**
 * SQL Server (rendered and unit-tested; no server here): locks are table hints,
 * `WITH (UPDLOCK, HOLDLOCK, ROWLOCK)` / `WITH (HOLDLOCK, ROWLOCK)`, `NOWAIT` and `READPAST` are
 * hints too, and a bounded wait is the connection's `SET LOCK_TIMEOUT` (ms), read from
 * `@@LOCK_TIMEOUT` and restored. 1222 is a lock timeout (statement only), 1205 a deadlock.
 *
 * @example
 * ```ts
 * sqlserverDialect.render("exclusive", { kind: "skip" }).tableHint; // " WITH (UPDLOCK, HOLDLOCK, ROWLOCK, READPAST)"
 * ```
 */
export const sqlserverDialect: LockDialect = {
  name: "mssql",
  supportsSharedLock: true,
  supportsNoWait: true,
  supportsSkipLocked: true,
  timeoutStyle: "connection",
  timeoutGranularityMs: 1,
  nowMillis: "DATEDIFF_BIG(millisecond, '1970-01-01', SYSUTCDATETIME())",
  render(strength, wait) {
    const hints = strength === "shared" ? ["HOLDLOCK", "ROWLOCK"] : ["UPDLOCK", "HOLDLOCK", "ROWLOCK"];
    if (wait.kind === "nowait") hints.push("NOWAIT");
    if (wait.kind === "skip") hints.push("READPAST");
    return { tableHint: ` WITH (${hints.join(", ")})`, clause: "" };
  },
  waitPlan(wait) {
    if (wait.kind !== "wait") return undefined;
    const ms = wait.ms;
    return {
      readCurrent: "SELECT @@LOCK_TIMEOUT AS value",
      apply: [`SET LOCK_TIMEOUT ${Math.ceil(ms)}`],
      restore: (previous) => [`SET LOCK_TIMEOUT ${Number.parseInt(previous, 10)}`],
    };
  },
  lockStatement: () => undefined,
  isMissingTable(error) {
    // 208: Invalid object name.
    const e = driverErrorOf(error);
    const original = e?.originalError as { info?: { number?: number } } | undefined;
    return Number(e?.number ?? original?.info?.number) === 208;
  },
  // tedious reports a lost connection as ESOCKET / ECONNCLOSED. (TypeORM commits through the mssql
  // driver's API, not a COMMIT statement: only autocommit writes are recognised here.)
  isConnectionLoss: (error) => isSocketLoss(driverErrorOf(error)),
  classifyError(error) {
    const e = driverErrorOf(error);
    const original = e?.originalError as { info?: { number?: number } } | undefined;
    const number = Number(e?.number ?? original?.info?.number);
    if (number === 1222) {
      return new LockTimeoutError(
        { dialect: "mssql", code: "1222", retryable: true, transactionAborted: false },
        error,
      );
    }
    if (number === 1205) {
      return new DeadlockError({ dialect: "mssql", code: "1205", retryable: true, transactionAborted: true }, error);
    }
    return undefined;
  },
};
