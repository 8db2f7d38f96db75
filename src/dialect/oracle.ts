import { DeadlockError, LockTimeoutError, SerializationError } from "../errors";
import { driverErrorOf, driverMessageOf, isSocketLoss, type LockDialect, roundWait } from "./lock-dialect";

/**
 * Oracle (rendered and unit-tested; no server here): `FOR UPDATE` with `NOWAIT`, `SKIP LOCKED`
 * or `WAIT n` (whole seconds) in the statement. Oracle has no shared row lock in SELECT, so
 * PESSIMISTIC_READ is refused rather than silently upgraded. Errors undo the statement only,
 * deadlocks included (ORA-00060).
 *
 * @example
 * ```ts
 * oracleDialect.render("exclusive", { kind: "wait", ms: 2500 }).clause; // " FOR UPDATE WAIT 3"
 * ```
 */
export const oracleDialect: LockDialect = {
  name: "oracle",
  supportsSharedLock: false,
  supportsNoWait: true,
  supportsSkipLocked: true,
  timeoutStyle: "statement",
  timeoutGranularityMs: 1000,
  nowMillis: "ROUND((CAST(SYS_EXTRACT_UTC(SYSTIMESTAMP) AS DATE) - DATE '1970-01-01') * 86400000)",
  render(_strength, wait) {
    let suffix = "";
    if (wait.kind === "nowait") suffix = " NOWAIT";
    else if (wait.kind === "skip") suffix = " SKIP LOCKED";
    else if (wait.kind === "wait") suffix = ` WAIT ${roundWait(wait.ms, 1000) / 1000}`;
    return { tableHint: "", clause: ` FOR UPDATE${suffix}` };
  },
  waitPlan: () => undefined,
  lockStatement: () => undefined,
  isMissingTable(error) {
    // ORA-00942: table or view does not exist.
    return oracleErrorNumber(driverErrorOf(error)) === 942;
  },
  isConnectionLoss(error) {
    // ORA-03113 end-of-file on communication channel, ORA-03114 not connected, ORA-03135 connection
    // lost contact; node-oracledb's NJS-500 / DPI-1080: the connection was broken.
    const e = driverErrorOf(error);
    return (
      [3113, 3114, 3135].includes(oracleErrorNumber(e)) ||
      /NJS-500|DPI-1080/.test(driverMessageOf(e)) ||
      isSocketLoss(e)
    );
  },
  classifyError(error) {
    const num = oracleErrorNumber(driverErrorOf(error));
    const failure = {
      dialect: "oracle",
      code: `ORA-${String(num).padStart(5, "0")}`,
      retryable: true,
      transactionAborted: false,
    };
    if (num === 54 || num === 30006) return new LockTimeoutError(failure, error);
    if (num === 60) return new DeadlockError(failure, error);
    if (num === 8177) return new SerializationError(failure, error);
    return undefined;
  },
};

/** node-oracledb's `errorNum`, else the number of the message's `ORA-nnnnn` (NaN when it names none). */
function oracleErrorNumber(e: Record<string, unknown> | undefined): number {
  return Number(e?.errorNum ?? /ORA-(\d{5})/.exec(driverMessageOf(e))?.[1]);
}
