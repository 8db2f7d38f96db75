/**
 * What the wsrep replication layer under a Galera cluster answers, whichever MySQL-family dialect
 * a DataSource has: a `mariadb` or `mysql` DataSource does not know it talks to a Galera node
 * until the library asks the server (src/dialect/galera.ts), and a node cut off from the cluster
 * must be recognised before that, at its first refusal.
 */
import { ClusterNodeNotReadyError } from "../errors";
import { driverErrorOf } from "./lock-dialect";

/** ER_UNKNOWN_COM_ERROR: the number a wsrep node not ready for clients answers every statement with. */
const NOT_READY_ERRNO = 1047;

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
  const message = String(driverError?.sqlMessage ?? driverError?.message ?? "");
  if (!/\bWSREP\b/i.test(message)) return undefined;
  return new ClusterNodeNotReadyError({ dialect, code: String(NOT_READY_ERRNO) }, error);
}
