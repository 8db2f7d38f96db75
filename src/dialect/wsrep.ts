/**
 * What the wsrep replication layer under a Galera cluster answers, whichever MySQL-family dialect
 * a DataSource has: a `mariadb` or `mysql` DataSource does not know it talks to a Galera node
 * until the library asks the server (src/dialect/galera.ts), and a node cut off from the cluster
 * must be recognised before that, at its first refusal.
 */
import { ClusterNodeNotReadyError } from "../errors";
import { driverErrorOf, driverMessageOf } from "./lock-dialect";

/** ER_UNKNOWN_COM_ERROR: the number a wsrep node not ready for clients answers every statement with. */
const NOT_READY_ERRNO = 1047;
/** ER_ERROR_DURING_COMMIT: what wsrep answers a commit it could not replicate with. */
const DURING_COMMIT_ERRNO = 1180;

/**
 * The typed error for a statement a wsrep node refused because it is not ready for clients (error
 * 1047, "WSREP has not yet prepared node for application use": outside the primary component, or
 * still joining), else `undefined`. The server refuses before running the statement, so nothing of
 * it was executed. Plain MySQL and MariaDB use 1047 for an unknown protocol command, which names no
 * WSREP: that stays the driver's error.
 *
 * @internal
 */
export function classifyWsrepRefusal(dialect: string, error: unknown): ClusterNodeNotReadyError | undefined {
  const driverError = driverErrorOf(error);
  if (Number(driverError?.errno) !== NOT_READY_ERRNO) return undefined;
  if (!/\bWSREP\b/i.test(driverMessageOf(driverError))) return undefined;
  return new ClusterNodeNotReadyError({ dialect, code: String(NOT_READY_ERRNO) }, error);
}

/**
 * Whether a failed COMMIT (or autocommit write) is a wsrep node's 1180 for a write set it could
 * not replicate: "Error while appending streaming replication fragment(provider status: Not
 * connected to Primary Component)" (MariaDB 10.6+, whatever the provider status; the text names
 * streaming replication even without it). The node lost the primary component while the COMMIT
 * was being replicated: it rolled the transaction back locally, but the write set may already
 * have been ordered, and then committed, by the nodes that kept the primary component. Plain
 * MySQL and MariaDB answer 1180 for a storage engine's failure with "Got error N during COMMIT",
 * which names no replication: that stays the driver's error unless the server is known to be a
 * Galera node (galeraDialect).
 *
 * A certification failure is never this error: wsrep answers it with 1213 (a deadlock's code),
 * which galeraDialect reads as `CertificationConflictError`.
 *
 * @internal
 */
export function isWsrepReplicationLoss(error: unknown): boolean {
  const driverError = driverErrorOf(error);
  if (Number(driverError?.errno) !== DURING_COMMIT_ERRNO) return false;
  return /replication fragment|provider status/i.test(driverMessageOf(driverError));
}

/** Whether a driver error is 1180 (ER_ERROR_DURING_COMMIT), whatever its text. @internal */
export function isErrorDuringCommit(error: unknown): boolean {
  return Number(driverErrorOf(error)?.errno) === DURING_COMMIT_ERRNO;
}
