/**
 * The version check of one write. A guard is made for each entity that `save()`/`remove()` is
 * about to write, carried from TypeORM's persistence layer to the query builder that issues the
 * statement, and verified against the statement's row count.
 */
import type { EntityMetadata, ObjectLiteral, QueryRunner } from "typeorm";
import {
  type ConflictDetails,
  LockingConfigurationError,
  MissingVersionError,
  OptimisticLockError,
  RowNotFoundError,
  StaleVersionError,
} from "../errors";
import { loadedVersionOf } from "../loaded-versions";
import { raisedIn } from "../transaction-numbers";
import type { ColumnMetadata } from "../typeorm-types";
import { versionCodecOf } from "../version-codec";
import type { VersionPolicy } from "../version-policy";
import type { SubjectLike } from "./internals";

/** What a write is: the verbs TypeORM's persistence layer performs on existing rows. @internal */
export type GuardedOperation = "update" | "remove" | "soft-remove" | "recover";

/** The check one statement must pass. @internal */
export interface WriteGuard {
  readonly metadata: EntityMetadata;
  readonly column: ColumnMetadata;
  /** The version the row must still have for the write to apply. */
  readonly expected: number;
  readonly id: ObjectLiteral;
  readonly operation: GuardedOperation;
  /** The version as the entity holds it, which a property of no declared type keeps the type of; none for a row TypeORM writes without an entity. */
  readonly held?: unknown;
}

/**
 * Makes the guard of one subject, or throws when the write must not happen at all: the entity
 * holds no version (MissingVersionError), its row is gone (OptimisticLockError / RowNotFoundError)
 * or holds another version than the entity (StaleVersionError / OptimisticLockError), as TypeORM
 * just read it, before anything is written.
 *
 * Subjects without an entity object are TypeORM's own relation upkeep (e.g. nulling the foreign
 * key of a child dropped from a parent's collection): they carry no version to check (one whose row
 * this transaction read under OPTIMISTIC is guarded by that read's version instead, in persistence-hooks.ts).
 *
 * @internal
 */
export function guardSubject(
  subject: SubjectLike,
  policy: VersionPolicy,
  operation: GuardedOperation,
  runner: QueryRunner,
): WriteGuard | undefined {
  const { entity, metadata } = subject;
  if (!entity || !subject.identifier) return undefined;
  const { column } = policy;
  const id = subject.identifier;
  const expected = versionToCheck(metadata, column, entity, id, operation);
  // A remove() of a row TypeORM's pre-load did not find: refused as the save of a gone row is
  // (a client's version names no row: RowNotFoundError, not a retryable race).
  if (subject.databaseEntityLoaded === true && !subject.databaseEntity) {
    throw rowGone(entity, { entityName: metadata.name, id, expectedVersion: expected, operation }, runner);
  }
  const actual = subject.databaseEntity
    ? versionCodecOf(column).parse(column.getEntityValue(subject.databaseEntity))
    : undefined;
  if (actual !== undefined && actual !== expected) {
    throw conflictFoundBeforeWriting(
      entity,
      { entityName: metadata.name, id, expectedVersion: expected, actualVersion: actual, operation },
      runner,
    );
  }
  // The held version is what the row must have, never a value to write: TypeORM then sets
  // `version = version + 1` itself, so a stale copy can never move the version backwards.
  subject.changeMaps = subject.changeMaps.filter((change) => change.column !== column);
  return { metadata, column, expected, id, operation, held: column.getEntityValue(entity) };
}

/**
 * The version an entity holds, which the row must still have for a guarded write to apply;
 * MissingVersionError when it holds none, since the write could not be checked.
 *
 * @internal
 */
export function versionToCheck(
  metadata: EntityMetadata,
  column: ColumnMetadata,
  entity: ObjectLiteral,
  id: unknown,
  operation: string,
): number {
  const expected = versionCodecOf(column).parse(column.getEntityValue(entity));
  if (expected === undefined) {
    throw new MissingVersionError({ entityName: metadata.name, id, versionProperty: column.propertyPath, operation });
  }
  return expected;
}

/**
 * Refuses to re-insert a row that is gone. TypeORM turns the save of an entity whose row no
 * longer exists into an INSERT; if the entity holds a version, it was loaded (or edited by a
 * client) from a row someone has since deleted, and re-creating it would silently undo that
 * delete. Hibernate refuses the same way: OptimisticLockError when the entity was loaded here,
 * RowNotFoundError when its version was set by the application (a client's).
 *
 * @internal
 */
export function refuseResurrection(subject: SubjectLike, policy: VersionPolicy, runner: QueryRunner): void {
  const { entity, metadata } = subject;
  if (!entity || !subject.identifier || subject.databaseEntityLoaded !== true || subject.databaseEntity) return;
  const expected = versionCodecOf(policy.column).parse(policy.column.getEntityValue(entity));
  if (expected === undefined) return;
  throw rowGone(
    entity,
    { entityName: metadata.name, id: subject.identifier, expectedVersion: expected, operation: "update" },
    runner,
  );
}

/**
 * Refuses the soft remove or recover of a row that is gone. TypeORM skips a subject whose row its
 * pre-load did not find (`Subject.mustBeSoftRemoved`), so `softRemove()` of a copy whose row
 * someone deleted returned as if it had soft-removed it, where the same stale copy's `save()` or
 * `remove()` fails. The same errors as a re-insert refused (refuseResurrection), and
 * MissingVersionError when the entity holds no version, as for a row that is there.
 *
 * @internal
 */
export function refuseChangeOfGoneRow(
  subject: SubjectLike,
  policy: VersionPolicy,
  operation: "soft-remove" | "recover",
  runner: QueryRunner,
): void {
  const { entity, metadata } = subject;
  if (!entity || !subject.identifier || subject.databaseEntityLoaded !== true || subject.databaseEntity) return;
  const id = subject.identifier;
  const expected = versionToCheck(metadata, policy.column, entity, id, operation);
  throw rowGone(entity, { entityName: metadata.name, id, expectedVersion: expected, operation }, runner);
}

/**
 * The error for a write to a row that is gone. Loaded by this process: the row was deleted after
 * that load (a race), OptimisticLockError. A version the application set (from a client) names a
 * row that is not there: no retry can bring it back, RowNotFoundError.
 */
function rowGone(
  entity: object,
  details: ConflictDetails,
  runner: QueryRunner,
): OptimisticLockError | RowNotFoundError {
  if (loadedVersionOf(entity) !== details.expectedVersion) {
    return raisedIn(runner, new RowNotFoundError(details), "client", true);
  }
  // Its one conflict entry says the row is gone, as a batched write's entries do.
  const { entityName, id, expectedVersion } = details;
  const error = new OptimisticLockError({
    ...details,
    detail: "the row no longer exists",
    conflicts: [{ entityName, id, expectedVersion, deleted: true }],
  });
  goneRowErrors.add(error);
  return raisedIn(runner, error, "load", true);
}

const goneRowErrors = new WeakSet<object>();

/** Whether a conflict was raised because its row is gone (a flush naming every conflict says `deleted`). @internal */
export function isGoneRowConflict(error: unknown): boolean {
  return typeof error === "object" && error !== null && goneRowErrors.has(error);
}

/**
 * The error for a conflict seen before writing. An entity still holding the version it was
 * loaded with was overtaken after that load (OptimisticLockError); one holding another version
 * was given it by the application, from a client's stale copy (StaleVersionError).
 */
function conflictFoundBeforeWriting(
  entity: object,
  details: ConflictDetails & { detail?: string },
  runner: QueryRunner,
): OptimisticLockError | StaleVersionError {
  return loadedVersionOf(entity) === details.expectedVersion
    ? raisedIn(runner, new OptimisticLockError(details), "load")
    : raisedIn(runner, new StaleVersionError(details), "client");
}

/**
 * Throws when a guarded statement did not touch exactly the rows it was meant to. Zero rows
 * means the version moved (or the row is gone) since the entity was loaded.
 *
 * @internal
 */
export function verifyRowCount(
  guards: readonly WriteGuard[],
  affected: number | null | undefined,
  rows: number,
  runner: QueryRunner | undefined,
  driverType: string,
): void {
  if (typeof affected !== "number") {
    throw new LockingConfigurationError(
      `The ${driverType} driver did not report how many rows ${guards[0].operation} changed, ` +
        "so the version check cannot be verified. Use a driver that reports affected rows.",
    );
  }
  if (affected === rows) return;
  const first = guards[0];
  throw raisedIn(
    runner,
    new OptimisticLockError({
      entityName: first.metadata.name,
      // Copies: the id maps TypeORM handed over carry the guard (and through it the DataSource).
      id: guards.length === 1 ? structuredCloneLite(first.id) : guards.map((g) => structuredCloneLite(g.id)),
      expectedVersion: first.expected,
      operation: first.operation,
      detail: guards.length === 1 ? undefined : `${rows - affected} of ${rows} rows were changed or deleted meanwhile`,
    }),
    "write",
  );
}

/** The guarded condition object for a bulk DELETE: the id map plus the expected version. @internal */
export function idWithVersion(guard: WriteGuard): ObjectLiteral {
  return deepMerge(structuredCloneLite(guard.id), guard.column.createValueMap(guard.expected));
}

function structuredCloneLite(value: ObjectLiteral): ObjectLiteral {
  const copy: ObjectLiteral = {};
  for (const [k, v] of Object.entries(value)) copy[k] = isPlainObject(v) ? structuredCloneLite(v) : v;
  return copy;
}

/** Merges `source` into `target` recursively (plain objects only); returns `target`. @internal */
export function deepMerge(target: ObjectLiteral, source: ObjectLiteral): ObjectLiteral {
  for (const [k, v] of Object.entries(source)) {
    if (isPlainObject(v) && isPlainObject(target[k])) deepMerge(target[k], v);
    else target[k] = v;
  }
  return target;
}

function isPlainObject(value: unknown): value is ObjectLiteral {
  return value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype;
}
