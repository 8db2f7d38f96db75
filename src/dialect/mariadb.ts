import { renderReturningBatchedDelete } from "./batched-delete";
import { renderMysqlBatchedUpdate } from "./batched-update";
import { type LockDialect, roundWait } from "./lock-dialect";
import { classifyMysqlFamily, isMissingMysqlFamilyTable, isMysqlFamilyConnectionLoss } from "./mysql";
import { isWsrepReplicationLoss } from "./wsrep";

/**
 * MariaDB 10.6+: `LOCK IN SHARE MODE` / `FOR UPDATE`, with the wait in the statement itself:
 * `NOWAIT`, `SKIP LOCKED`, or `WAIT n` (whole seconds), so no setting is touched at all.
 * MariaDB reports NOWAIT and timeouts alike as 1205.
 *
 * @example
 * ```ts
 * mariadbDialect.render("exclusive", { kind: "wait", ms: 1500 }).clause; // " FOR UPDATE WAIT 2"
 * ```
 */
export const mariadbDialect: LockDialect = {
  name: "mariadb",
  supportsSharedLock: true,
  supportsNoWait: true,
  supportsSkipLocked: true,
  timeoutStyle: "statement",
  timeoutGranularityMs: 1000,
  nowMillis: "CAST(UNIX_TIMESTAMP(CURRENT_TIMESTAMP(3)) * 1000 AS SIGNED)",
  render(strength, wait) {
    const lock = strength === "shared" ? " LOCK IN SHARE MODE" : " FOR UPDATE";
    let suffix = "";
    if (wait.kind === "nowait") suffix = " NOWAIT";
    else if (wait.kind === "skip") suffix = " SKIP LOCKED";
    else if (wait.kind === "wait") suffix = ` WAIT ${roundWait(wait.ms, 1000) / 1000}`;
    return { tableHint: "", clause: lock + suffix };
  },
  waitPlan: () => undefined,
  lockStatement: () => undefined,
  isMissingTable: isMissingMysqlFamilyTable,
  isConnectionLoss: isMysqlFamilyConnectionLoss,
  // A Galera node before the library has asked the server what it is.
  isReplicationLoss: isWsrepReplicationLoss,
  classifyError: (error) => classifyMysqlFamily("mariadb", error),
  // MariaDB's JSON is LONGTEXT: compared as text, it has no CAST(.. AS JSON).
  batchedUpdate: (shape) => renderMysqlBatchedUpdate(shape, false),
  // MariaDB has DELETE .. RETURNING (10.0.5+); its probe is a current read, as MySQL's.
  batchedDelete: (shape) => renderReturningBatchedDelete(shape, "list", " LOCK IN SHARE MODE"),
  maxParameters: 65_535,
};
