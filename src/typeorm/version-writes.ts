/**
 * The library's own version statements: the increment of a force-increment lock and the
 * locking re-check of an OPTIMISTIC read. Both are single conditional UPDATEs on the primary key
 * and the expected version, so the check and the lock it takes are one atomic step.
 */
import type { EntityMetadata, ObjectLiteral, QueryRunner } from "typeorm";
import type { ConflictKind } from "../channels";
import { LockingConfigurationError, OptimisticLockError } from "../errors";
import { rememberLoadedVersion } from "../loaded-versions";
import { raisedIn } from "../transaction-numbers";
import { versionCodecOf } from "../version-codec";
import { runAsCheckedWrites } from "./unchecked-writes";

/** The version an entity holds, or a clear error when it has none to lock by. @internal */
export function heldVersion(metadata: EntityMetadata, entity: ObjectLiteral, mode: string): number {
  const column = metadata.versionColumn;
  if (!column) {
    throw new LockingConfigurationError(
      `${mode} on ${metadata.name} needs a version column; mark one with @Versioned() (or @VersionColumn).`,
    );
  }
  const version = versionCodecOf(column).parse(column.getEntityValue(entity));
  if (version === undefined) {
    throw new LockingConfigurationError(`${mode} on ${metadata.name}: the entity holds no version to lock by.`);
  }
  return version;
}

/**
 * `UPDATE t SET version = version + 1 WHERE id = :id AND version = :expected` (increment) or
 * `SET version = version` (re-check under an exclusive row lock held to commit). Throws
 * OptimisticLockError when the row is no longer at `expected`, published as a conflict of `kind`.
 *
 * @internal
 */
export async function writeVersion(
  queryRunner: QueryRunner,
  metadata: EntityMetadata,
  entity: ObjectLiteral,
  expected: number,
  increment: boolean,
  operation: string,
  kind: ConflictKind,
  {
    noteOnEntity = true,
    id = metadata.getEntityIdMap(entity),
  }: {
    /** Record the increment on `entity` (default true). */
    noteOnEntity?: boolean;
    /** The row's id, when the entity may no longer hold it (default: the entity's). */
    id?: ObjectLiteral;
  } = {},
): Promise<void> {
  const { query, v } = versionUpdate(queryRunner, metadata, increment);
  query.whereInIds(id).andWhere(`${v} = :typeormLockingExpectedVersion`, { typeormLockingExpectedVersion: expected });
  // A re-check changes nothing, so no rule on writes (an offline lock) has a say in it; an
  // increment is a change like any other (the aggregate bump runs as a checked write already).
  const result = await (increment ? query.execute() : runAsCheckedWrites(() => query.execute()));
  if (result.affected !== 1) {
    throw raisedIn(
      queryRunner,
      new OptimisticLockError({ entityName: metadata.name, id, expectedVersion: expected, operation }),
      kind,
    );
  }
  if (increment && noteOnEntity) noteIncrement(metadata, entity, expected);
}

/**
 * `UPDATE t SET version = version + 1 WHERE id = :id`, checked against nothing: for a row whose
 * version must move (so that every holder of it conflicts) although no copy of it is held to
 * guard the move by. A row that is gone is left gone.
 */
export async function incrementVersionUnchecked(
  queryRunner: QueryRunner,
  metadata: EntityMetadata,
  id: ObjectLiteral,
): Promise<void> {
  await versionUpdate(queryRunner, metadata, true).query.whereInIds(id).execute();
}

/** Records on an entity object that its row moved from `expected` to the next version. */
export function noteIncrement(metadata: EntityMetadata, entity: ObjectLiteral, expected: number): void {
  const column = metadata.versionColumn!;
  column.setEntityValue(entity, versionCodecOf(column).format(expected + 1, column.getEntityValue(entity)));
  rememberLoadedVersion(entity, expected + 1);
}

function versionUpdate(queryRunner: QueryRunner, metadata: EntityMetadata, increment: boolean) {
  const column = metadata.versionColumn!;
  const query = queryRunner.manager
    .createQueryBuilder(queryRunner)
    .update(metadata.target)
    .updateEntity(false)
    .callListeners(false);
  const v = query.escape(column.databaseName);
  const set: ObjectLiteral = column.createValueMap(() => (increment ? `${v} + 1` : v));
  // Keep TypeORM from stamping an @UpdateDateColumn: a lock is not a change of the entity.
  const updated = metadata.updateDateColumn;
  if (updated)
    Object.assign(
      set,
      updated.createValueMap(() => query.escape(updated.databaseName)),
    );
  return { query: query.set(set), v };
}
