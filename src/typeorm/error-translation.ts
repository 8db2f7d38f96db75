/**
 * Turns the database's lock failures (lock timeout, NOWAIT, deadlock, serialization), a Galera
 * node's refusals (not in the primary component) and a connection lost with a commit in flight
 * (commit-outcome.ts) into the library's typed errors, for every query run on an installed
 * DataSource, whoever issued it.
 * The driver's error stays reachable as `cause`.
 */
import type { DataSource, QueryRunner } from "typeorm";
import { dialectForType, type LockDialect, type ProbeQuery } from "../dialect";
import { ClusterNodeNotReadyError, PessimisticLockError, type TranslatedDatabaseError } from "../errors";
import { type Installation, installationOf } from "../installation";
import { raisedIn } from "../transaction-numbers";
import { commitOutcomeUnknown } from "./commit-outcome";
import { dataSourceOf, destroyConnectionOf } from "./internals";
import { serverDialectOf } from "./locking-reads";
import { patchRunnerPrototypes } from "./runner-prototypes";

type QueryMethod = (this: QueryRunner, ...args: unknown[]) => Promise<unknown>;

/** Makes every query runner class translate the lock failures of installed DataSources. @internal */
export function installErrorTranslation(): void {
  patchRunnerPrototypes(translateQueryErrors);
}

function translateQueryErrors(proto: Record<string, unknown>): void {
  const query = proto.query as QueryMethod;
  // Every query of the process passes here: the success path adds one rejection handler, not
  // an async frame.
  proto.query = function (this: QueryRunner, ...args: unknown[]) {
    return query.apply(this, args).catch((error: unknown) => rethrowTranslated(this, query, args, error));
  };
}

async function rethrowTranslated(
  queryRunner: QueryRunner,
  query: QueryMethod,
  args: unknown[],
  error: unknown,
): Promise<never> {
  const dataSource = dataSourceOf(queryRunner);
  const installation = installationOf(dataSource);
  if (!installation) throw error;
  const dialect = knownDialectOf(dataSource);
  const unknownOutcome = dialect && commitOutcomeUnknown(queryRunner, dialect, String(args[0]), error);
  if (unknownOutcome) throw raisedIn(queryRunner, unknownOutcome);
  const failure = lockFailureOf(dataSource, error);
  if (!failure) throw error;
  const probe = (sql: string) => query.call(queryRunner, sql) as Promise<Record<string, unknown>[]>;
  const explained = await explainedFailure(queryRunner, installation, error, failure, String(args[0]), probe);
  // A Galera node outside the primary component refuses COMMIT and ROLLBACK alike, and keeps the
  // transaction open: back in the pool, its connection's next START TRANSACTION would commit it
  // (with the writes of the "failed" attempt) once the node is back. Ending the session makes the
  // server roll it back, which is what ClusterNodeNotReadyError promises.
  if (explained instanceof ClusterNodeNotReadyError && queryRunner.isTransactionActive) {
    destroyConnectionOf(queryRunner);
  }
  throw raisedIn(queryRunner, explained);
}

/**
 * The failure as the server's own dialect reads it: a Galera node is only known once asked
 * (its 1213 is then looked at again), and the ask happens here at the latest, on the failure path.
 * It asks through `probe`, the untranslated query: a server that refuses the question too (a
 * node refusing every statement, SHOW included) gives the failure as the known dialect read it,
 * instead of a refusal explained by asking again, without end.
 */
async function explainedFailure(
  queryRunner: QueryRunner,
  installation: Installation,
  error: unknown,
  failure: TranslatedDatabaseError,
  statement: string,
  probe: ProbeQuery,
): Promise<TranslatedDatabaseError> {
  let dialect: LockDialect;
  try {
    dialect = await serverDialectOf(queryRunner, installation, probe);
  } catch {
    return failure;
  }
  const classified = dialect.classifyError(error) ?? failure;
  if (!dialect.explainFailure) return classified;
  return dialect.explainFailure(classified, statement, probe);
}

/**
 * The typed failure a DataSource's error stands for (a lock timeout, deadlock or serialization
 * failure of its database, a Galera node's refusal), or `undefined` for any other error. Works for
 * DataSources without the library too (their errors are not translated as they are thrown).
 *
 * @internal
 */
export function lockFailureOf(dataSource: DataSource, error: unknown): TranslatedDatabaseError | undefined {
  if (error instanceof PessimisticLockError || error instanceof ClusterNodeNotReadyError) return error;
  return knownDialectOf(dataSource)?.classifyError(error);
}

/**
 * The dialect as far as it is known without asking the server: the detected one once a lock or a
 * failure asked (MySQL vs MariaDB vs Galera), else the driver type's.
 *
 * @internal
 */
export function knownDialectOf(dataSource: DataSource): LockDialect | undefined {
  return installationOf(dataSource)?.serverDialect ?? dialectForType(String(dataSource.options.type));
}
