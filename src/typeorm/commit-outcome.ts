/**
 * A connection lost after COMMIT was sent (or during a write outside any transaction, which is
 * its own commit) leaves the transaction's outcome unknown: the server may have committed it
 * before the connection went. So does a cluster node that lost its cluster while replicating the
 * COMMIT (Galera's 1180): the other nodes may have committed it. Such failures become
 * `CommitOutcomeUnknownError`, which no retry helper retries by default (a retried increment
 * would apply twice). A connection lost earlier in a transaction is left as the driver reported
 * it: the server rolls back a transaction whose session ends before COMMIT, so nothing was written.
 */
import type { QueryRunner } from "typeorm";
import type { LockDialect } from "../dialect";
import { CommitOutcomeUnknownError } from "../errors";

/** TypeORM ends a transaction with exactly this statement on every SQL driver but SQL Server. */
const COMMIT = /^\s*COMMIT\b/i;
/**
 * Statements outside a transaction that write nothing (reads, session settings) or only open or
 * end one: losing their answer leaves nothing unknown.
 */
const WRITES_NOTHING =
  /^\s*(SELECT|SHOW|SET|BEGIN|START\s+TRANSACTION|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA|EXPLAIN|DESCRIBE|USE)\b/i;

/**
 * The `CommitOutcomeUnknownError` a failed statement stands for, or `undefined` when its failure
 * leaves no doubt about what was written. @internal
 */
export function commitOutcomeUnknown(
  queryRunner: QueryRunner,
  dialect: LockDialect,
  statement: string,
  error: unknown,
): CommitOutcomeUnknownError | undefined {
  const mayHaveCommitted = queryRunner.isTransactionActive ? COMMIT.test(statement) : !WRITES_NOTHING.test(statement);
  if (!mayHaveCommitted) return undefined;
  if (dialect.isConnectionLoss(error)) {
    return new CommitOutcomeUnknownError({ dialect: dialect.name, statement }, error);
  }
  if (dialect.isReplicationLoss?.(error)) {
    return new CommitOutcomeUnknownError({ dialect: dialect.name, statement, lost: "cluster" }, error);
  }
  return undefined;
}
