import { CertificationConflictError, DeadlockError } from "../errors";
import type { LockDialect, ProbeQuery } from "./lock-dialect";
import { mariadbDialect } from "./mariadb";
import { classifyMysqlFamily } from "./mysql";
import { isErrorDuringCommit } from "./wsrep";

/** How recent InnoDB's latest deadlock must be to be the one that just failed this connection. */
const SAME_DEADLOCK_WINDOW_MS = 10_000;

/**
 * A MariaDB Galera cluster node (`wsrep_on = ON`): MariaDB's SQL, with three differences.
 *
 * - Row locks are node-local. `FOR UPDATE` on node 1 does not block an UPDATE on node 2; the
 *   write that replicates first wins and the other transaction is aborted (certification, or a
 *   brute-force abort of the lock holder), so pessimistic modes are refused unless the
 *   application opts in to node-local locks.
 * - Galera reports those aborts as 1213, a local deadlock's code. A 1213 at COMMIT is always
 *   certification. At another statement the connection's InnoDB is asked whether it was the
 *   victim of its latest local deadlock; if not, the abort came from the cluster and the error
 *   is a {@link CertificationConflictError}. Without the PROCESS privilege (needed by
 *   `SHOW ENGINE INNODB STATUS`) such an error stays a `DeadlockError`; both are retryable.
 * - A COMMIT the node could not replicate because it lost the primary component on the way
 *   (1180, "Not connected to Primary Component") may have committed on the other nodes: it is a
 *   `CommitOutcomeUnknownError`, never retried by default.
 *
 * @example
 * ```ts
 * galeraDialect.nodeLocalLocks; // true
 * galeraDialect.render("exclusive", { kind: "nowait" }).clause; // " FOR UPDATE NOWAIT"
 * ```
 */
export const galeraDialect: LockDialect = {
  ...mariadbDialect,
  name: "galera",
  nodeLocalLocks: true,
  // Every 1180 of a wsrep commit is one it could not replicate (MariaDB 10.4-10.5 word it "Got
  // error 6 ... during COMMIT", 6 being the provider's "connection failed"): the other nodes may
  // have committed it. A certification failure comes as 1213 instead (explainFailure below).
  isReplicationLoss: isErrorDuringCommit,
  classifyError: (error) => classifyMysqlFamily("galera", error),
  async explainFailure(failure, statement, probe) {
    if (!(failure instanceof DeadlockError)) return failure;
    if (!/^\s*COMMIT\b/i.test(statement) && (await wasLocalDeadlockVictim(probe))) return failure;
    return new CertificationConflictError(failure, failure.cause);
  },
};

/**
 * Whether this connection was the victim InnoDB rolled back in its latest detected deadlock, a
 * moment ago. `undefined` answers (no privilege, unexpected output) count as yes: the error then
 * stays the `DeadlockError` the code says.
 */
async function wasLocalDeadlockVictim(probe: ProbeQuery): Promise<boolean> {
  try {
    const [self] = await probe("SELECT CONNECTION_ID() AS id, DATE_FORMAT(NOW(), '%Y-%m-%d %H:%i:%s') AS now");
    const [status] = await probe("SHOW ENGINE INNODB STATUS");
    // Stryker disable next-line StringLiteral: equivalent (docs/testing.md); any text without a deadlock section names no victim
    const victim = latestDeadlockVictim(String(status?.Status ?? ""));
    if (!victim) return false;
    const age = utcMs(String(self.now)) - utcMs(victim.at);
    return victim.threadId === Number(self.id) && age >= 0 && age <= SAME_DEADLOCK_WINDOW_MS;
  } catch {
    return true;
  }
}

/** The time and MariaDB thread id of the transaction InnoDB rolled back in its latest deadlock. @internal */
export function latestDeadlockVictim(innodbStatus: string): { at: string; threadId: number } | undefined {
  const section = /LATEST DETECTED DEADLOCK\n-+\n([\s\S]*?)\n-{8,}\n/.exec(innodbStatus)?.[1];
  if (!section) return undefined;
  // Stryker disable next-line Regex: equivalent (docs/testing.md); the section starts with its timestamp
  const at = /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})/.exec(section)?.[1];
  // Stryker disable next-line Regex: equivalent (docs/testing.md); InnoDB numbers the two transactions (1) and (2)
  const rolledBack = /\*\*\* WE ROLL BACK TRANSACTION \((\d+)\)/.exec(section)?.[1];
  if (!at || !rolledBack) return undefined;
  // Stryker disable next-line Regex: equivalent (docs/testing.md); as above
  const block = section.split(/\*\*\* \(\d+\) TRANSACTION:/)[Number(rolledBack)];
  const threadId = /(?:MariaDB|MySQL) thread id (\d+)/.exec(block ?? "")?.[1];
  return threadId === undefined ? undefined : { at, threadId: Number(threadId) };
}

/** A server-local "YYYY-MM-DD hh:mm:ss" as ms; both sides of a comparison use the same zone. */
function utcMs(localTime: string): number {
  return Date.parse(`${localTime.replace(" ", "T")}Z`);
}
