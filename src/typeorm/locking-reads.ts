/**
 * Runs an entity SELECT under a lock mode: the lock clause comes from the dialect, a bounded
 * wait is applied and restored around the statement, and the mode's follow-up is done
 * (force increment now, or an optimistic check queued for commit).
 */
import type { EntityMetadata, ObjectLiteral, QueryRunner } from "typeorm";
import { type LockAcquisitionContext, lockTracingActive, traceLockAcquisition } from "../channels";
import { dialectForServer, dialectForType, type ServerFacts, serverFactsOf, serverFactsQuery } from "../dialect";
import type { LockDialect, LockRendering, ProbeQuery, TimeoutPlan, WaitPolicy } from "../dialect/lock-dialect";
import { LockingConfigurationError, LockingError } from "../errors";
import type { Installation } from "../installation";
import { isPessimistic, LockMode, needsVersion } from "../lock-mode";
import type { LockRequest } from "../lock-request";
import { noteOwnVersionWrite, queueCommitCheck } from "./commit-checks";
import { dataSourceOf } from "./internals";
import { heldVersion, writeVersion } from "./version-writes";

/**
 * The dialect of the server behind a query runner; asks MySQL-family servers once (MySQL, MariaDB,
 * Galera). `ask` runs the question: the failure path passes the runner's untranslated query, since
 * a refused question asked through the translated one would be explained by asking it again.
 * @internal
 */
export async function serverDialectOf(
  queryRunner: QueryRunner,
  installation: Installation,
  ask: ProbeQuery = (sql) => queryRunner.query(sql),
): Promise<LockDialect> {
  if (installation.serverDialect) return installation.serverDialect;
  const type = String(dataSourceOf(queryRunner).options.type);
  const factsQuery = serverFactsQuery(type);
  const facts: ServerFacts | undefined = factsQuery ? serverFactsOf(await ask(factsQuery)) : undefined;
  const dialect = dialectForServer(type, facts);
  if (!dialect) {
    throw new LockingConfigurationError(
      `typeorm-locking cannot take row locks on a "${type}" database. Supported: PostgreSQL, MySQL, ` +
        "MariaDB, SQLite; SQL Server and Oracle SQL is rendered but untested.",
    );
  }
  installation.serverDialect = dialect;
  return dialect;
}

/**
 * The dialect a batched write renders its statements for: the server's where the driver type does
 * not tell (a `mysql` DataSource on a MariaDB server, whose SQL differs on the failure path), asked
 * once per installation as a lock asks it; else the type's. `undefined` for a type the library
 * has no dialect for (TypeORM's own statements are used then).
 *
 * @internal
 */
export async function writeDialectOf(
  queryRunner: QueryRunner,
  installation: Installation | undefined,
): Promise<LockDialect | undefined> {
  if (installation?.serverDialect) return installation.serverDialect;
  const type = String(dataSourceOf(queryRunner).options.type);
  return installation && serverFactsQuery(type) ? serverDialectOf(queryRunner, installation) : dialectForType(type);
}

/** What a locked SELECT needs from the hook: its metadata and a way to run it with a lock clause. @internal */
export interface LockedSelect {
  metadata: EntityMetadata;
  /** The escaped alias of the queried entity in the SELECT. */
  alias: string;
  run(rendering: LockRendering | undefined): Promise<{ entities: ObjectLiteral[] }>;
}

/** Runs one entity SELECT under `request`, inside the caller's transaction. @internal */
export async function runLockedSelect(
  queryRunner: QueryRunner,
  installation: Installation,
  request: LockRequest,
  select: LockedSelect,
): Promise<{ entities: ObjectLiteral[] }> {
  const { mode } = request;
  const { metadata } = select;
  if (mode === LockMode.NONE) return select.run(undefined);
  if (!queryRunner.isTransactionActive) {
    throw new LockingError(
      `${mode} on ${metadata.name} needs a transaction: the lock (or the check at commit) belongs to ` +
        "one. Run the query inside dataSource.transaction(async (manager) => ...) and use that manager.",
    );
  }
  if (needsVersion(mode) && !metadata.versionColumn) {
    throw new LockingConfigurationError(
      `${mode} on ${metadata.name} needs a version column; mark one with @Versioned().`,
    );
  }
  if (!isPessimistic(mode)) {
    const result = await select.run(undefined);
    for (const entity of result.entities) queueCommitCheck(queryRunner, metadata, entity, mode);
    return result;
  }

  const dialect = await serverDialectOf(queryRunner, installation);
  const strength = mode === LockMode.PESSIMISTIC_READ ? "shared" : "exclusive";
  const wait = request.wait ?? installation.defaultWait ?? { kind: "default" };
  assertHonoured(dialect, mode, wait, metadata);
  assertLocksExclude(dialect, installation, mode, metadata);
  const plan = dialect.waitPlan(wait);
  const acquire = () =>
    withWaitBound(queryRunner, plan, async () => {
      const lockStatement = dialect.lockStatement(
        strength,
        metadata.tablePath,
        metadata.primaryColumns[0].databaseName,
      );
      if (lockStatement) await queryRunner.query(lockStatement);
      return select.run(dialect.render(strength, wait, select.alias));
    });
  const result = lockTracingActive()
    ? await traceLockAcquisition(lockContext(queryRunner, dialect, mode, wait, metadata), acquire)
    : await acquire();
  if (mode === LockMode.PESSIMISTIC_FORCE_INCREMENT) {
    for (const entity of result.entities) {
      const held = heldVersion(metadata, entity, mode);
      await writeVersion(queryRunner, metadata, entity, held, true, "force increment", "load");
      noteOwnVersionWrite(queryRunner, metadata, metadata.getEntityIdMap(entity), held, held + 1);
    }
  }
  return result;
}

/** What a lock trace says about the lock asked for. */
function lockContext(
  queryRunner: QueryRunner,
  dialect: LockDialect,
  mode: LockMode,
  wait: WaitPolicy,
  metadata: EntityMetadata,
): LockAcquisitionContext {
  return {
    entity: metadata.name,
    mode,
    timeout: wait.kind === "wait" ? wait.ms : wait.kind,
    dialect: dialect.name,
    dataSource: dataSourceOf(queryRunner),
  };
}

function assertHonoured(dialect: LockDialect, mode: LockMode, wait: WaitPolicy, metadata: EntityMetadata): void {
  const refuse = (what: string, instead: string) => {
    throw new LockingConfigurationError(`${mode} on ${metadata.name}: ${dialect.name} ${what}. ${instead}`);
  };
  if (mode === LockMode.PESSIMISTIC_READ && !dialect.supportsSharedLock) {
    refuse(
      "has no shared row lock",
      // Stryker disable next-line StringLiteral: message text
      "Use PESSIMISTIC_WRITE (on SQLite it takes the database write lock) or OPTIMISTIC.",
    );
  }
  // Stryker disable next-line StringLiteral: message text
  const useTimeout = "Use a timeout instead.";
  if (wait.kind === "skip" && !dialect.supportsSkipLocked) refuse("cannot skip locked rows", useTimeout);
  if (wait.kind === "nowait" && !dialect.supportsNoWait) refuse("cannot fail without waiting", useTimeout);
}

/** Refuses a pessimistic lock a multi-primary node cannot hold cluster-wide, unless opted in. */
function assertLocksExclude(
  dialect: LockDialect,
  installation: Installation,
  mode: LockMode,
  metadata: EntityMetadata,
): void {
  if (!dialect.nodeLocalLocks || installation.options.galera?.pessimistic === "node-local") return;
  throw new LockingConfigurationError(
    `${mode} on ${metadata.name}: this server is a Galera cluster node (wsrep_on = ON). Its row locks ` +
      "block only transactions on the same node; a write on another node is not blocked, and the lock " +
      "holder is aborted instead. Use @Versioned() with OPTIMISTIC / retryOnConflict, or accept " +
      'node-local locks with installLocking(dataSource, { galera: { pessimistic: "node-local" } }).',
  );
}

/** Applies a wait bound, runs the statement, and restores the setting even when it failed. */
async function withWaitBound<T>(
  queryRunner: QueryRunner,
  plan: TimeoutPlan | undefined,
  work: () => Promise<T>,
): Promise<T> {
  if (!plan) return work();
  const [row] = await queryRunner.query(plan.readCurrent);
  const previous = String(Object.values(row as ObjectLiteral)[0]);
  for (const sql of plan.apply) await queryRunner.query(sql);
  let result: T;
  try {
    result = await work();
  } catch (error) {
    await restoreSetting(queryRunner, plan, previous);
    throw error;
  }
  await restoreSetting(queryRunner, plan, previous);
  return result;
}

/**
 * Puts the connection setting back. It must not go back to the pool silently changed, so a
 * failed restore is loud.
 */
async function restoreSetting(queryRunner: QueryRunner, plan: TimeoutPlan, previous: string): Promise<void> {
  try {
    for (const sql of plan.restore(previous)) await queryRunner.query(sql);
  } catch (restoreError) {
    throw new LockingError(
      `Could not restore the lock timeout (${plan.readCurrent}) to ${previous} on this connection after a ` +
        "locking query; discard the connection.",
      { cause: restoreError },
    );
  }
}
