import type { EntityManager, EntityTarget, ObjectLiteral } from "typeorm";
import { jsonOf, LockingError, OptimisticLockError } from "./errors";
import { assertLockMode, isPessimistic, LockMode, type LockOptions, needsVersion, waitPolicyOf } from "./lock-mode";
import { lockQuery } from "./lock-request";
import { raisedIn } from "./transaction-numbers";
import { installationForLockRequest } from "./typeorm/activation";
import { noteOwnVersionWrite, queueCommitCheck } from "./typeorm/commit-checks";
import { dataSourceOf } from "./typeorm/internals";
import { heldVersion, writeVersion } from "./typeorm/version-writes";
import { versionCodecOf } from "./version-codec";

/**
 * Locks an entity that is already loaded, like JPA's `EntityManager.lock(entity, mode)`. Needs
 * the manager of a transaction.
 * - OPTIMISTIC / OPTIMISTIC_FORCE_INCREMENT: its version is re-checked (and incremented) at commit.
 * - PESSIMISTIC_READ / PESSIMISTIC_WRITE: the row is re-read with the lock; if its version moved
 *   since the entity was loaded, `OptimisticLockError` (the lock would protect a stale copy).
 * - PESSIMISTIC_FORCE_INCREMENT: as PESSIMISTIC_WRITE, then the version is incremented now.
 *
 * Returns the same entity (its version updated by a force increment).
 *
 * @example
 * ```ts
 * await dataSource.transaction(async (manager) => {
 *   const order = await manager.findOneByOrFail(Order, { id });
 *   await lock(manager, order, LockMode.PESSIMISTIC_WRITE, { timeout: 0 });
 * });
 * ```
 */
export async function lock<T extends ObjectLiteral>(
  manager: EntityManager,
  entity: T,
  mode: LockMode,
  options?: LockOptions,
): Promise<T> {
  // Stryker disable next-line StringLiteral: wording (the caller a refusal names)
  assertLockMode(mode, "lock()");
  // A bad wait is a bug for every mode, NONE and the optimistic ones too.
  // Stryker disable next-line StringLiteral: wording (the caller a refusal names)
  waitPolicyOf(options, "lock()");
  const metadata = manager.getRepository(entity.constructor as EntityTarget<T>).metadata;
  const queryRunner = manager.queryRunner;
  if (mode === LockMode.NONE) return entity;
  if (!queryRunner?.isTransactionActive) {
    throw new LockingError(
      `lock(${metadata.name}, ${mode}) needs a transaction: pass the manager that ` +
        "dataSource.transaction(async (manager) => ...) gives you.",
    );
  }
  installationForLockRequest(dataSourceOf(queryRunner), queryRunner);
  const expected = metadata.versionColumn || needsVersion(mode) ? heldVersion(metadata, entity, mode) : undefined;
  if (!isPessimistic(mode)) {
    queueCommitCheck(queryRunner, metadata, entity, mode);
    return entity;
  }

  const id = metadata.getEntityIdMap(entity);
  const columns = [...metadata.primaryColumns, ...(metadata.versionColumn ? [metadata.versionColumn] : [])];
  const reread = manager
    .createQueryBuilder(metadata.target, "locked")
    .select(columns.map((c) => `locked.${c.propertyPath}`))
    .whereInIds(id);
  const strength = mode === LockMode.PESSIMISTIC_READ ? LockMode.PESSIMISTIC_READ : LockMode.PESSIMISTIC_WRITE;
  const row = await lockQuery(reread, strength, options).getOne();
  const actual =
    row && metadata.versionColumn
      ? versionCodecOf(metadata.versionColumn).parse(metadata.versionColumn.getEntityValue(row))
      : undefined;
  // Both are versions exactly when the entity has a version column.
  if (!row || actual !== expected) {
    if (expected === undefined) throw new LockingError(`lock(): ${metadata.name} ${jsonOf(id)} no longer exists.`);
    throw raisedIn(
      queryRunner,
      new OptimisticLockError({
        entityName: metadata.name,
        id,
        expectedVersion: expected,
        actualVersion: actual,
        operation: "lock",
        detail: row ? undefined : "the row no longer exists",
      }),
      "load",
      !row,
    );
  }
  if (mode === LockMode.PESSIMISTIC_FORCE_INCREMENT) {
    // Stryker disable next-line StringLiteral: equivalent (docs/testing.md); the operation a conflict would carry, and the row is locked at that version
    await writeVersion(queryRunner, metadata, entity, expected!, true, "force increment", "load");
    noteOwnVersionWrite(queryRunner, metadata, metadata.getEntityIdMap(entity), expected!, expected! + 1);
  }
  return entity;
}
