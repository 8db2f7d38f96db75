import type { ObjectLiteral, Repository } from "typeorm";
import {
  describeValue,
  LockingConfigurationError,
  OptimisticLockError,
  RowNotFoundError,
  StaleVersionError,
} from "./errors";
import { beyondInt32, idCanExist, idMapOf } from "./row-ids";
import { raisedIn } from "./transaction-numbers";
import { noteOwnVersionWrite } from "./typeorm/commit-checks";
import { knownDialectOf } from "./typeorm/error-translation";
import { updateVersionedRows, type VersionedRowUpdate } from "./update-versioned-many";
import { versionCodecOf } from "./version-codec";
import { toVersionNumber } from "./version-value";

/**
 * The values `repository.update()` accepts for an entity: the patch of {@link updateVersioned}.
 *
 * @example
 * ```ts
 * const patch: UpdatePatch<Order> = { status: "SHIPPED" };
 * ```
 */
export type UpdatePatch<T extends ObjectLiteral> = Parameters<Repository<T>["update"]>[1];

/**
 * Updates one row without loading it, checked against the version the caller holds: exactly one
 * statement, `UPDATE ... SET <patch>, version = version + 1 WHERE id = :id AND version =
 * :expected`. Returns the new version. Use it where you would use `repository.update()`, which
 * is not version-checked.
 *
 * When no row matched, one extra read (on that failure path only) tells why: the row is at
 * another version, so the version given is wrong ({@link StaleVersionError}, not retryable, with
 * the row's version; its message says whether the version is behind or ahead of the row); there
 * is no row ({@link RowNotFoundError}); or, inside a repeatable-read transaction whose snapshot
 * still shows the version given, a concurrent change raced the write ({@link OptimisticLockError}).
 *
 * `id` names exactly one row: its primary key value (a string, a number, a bigint) or an id map
 * with a value for every primary column (`{ id: 42 }`). A list, or a map whose key values are
 * lists or objects, is refused ({@link LockingConfigurationError}) before anything runs: TypeORM
 * would update every row it names. A number that is no integer, for an integer key, names no row
 * ({@link RowNotFoundError}).
 *
 * @example
 * ```ts
 * const version = await updateVersioned(orders, 42, req.body.version, { status: "SHIPPED" });
 * res.setHeader("ETag", `"${version}"`);
 * ```
 */
export async function updateVersioned<T extends ObjectLiteral>(
  repository: Repository<T>,
  id: string | number | ObjectLiteral,
  expectedVersion: number | string,
  patch: UpdatePatch<T>,
): Promise<number>;
/**
 * The many-row form: updates each row `{ id, version, patch }` checked against the version the
 * caller holds for it, without loading them, and returns their new versions in the order given.
 * Rows with the same patched columns are written by one guarded statement (per chunk below the
 * database's parameter limit: PostgreSQL, MySQL, MariaDB 65,535 parameters, SQLite 32,766, or
 * `batchWrites: { maxRowsPerStatement }`), the statement of a batched `save()`; all of it runs in
 * one transaction (the caller's, if one is active).
 *
 * If any row is not at its held version (or is gone), nothing is kept and one
 * {@link OptimisticLockError} names every such row in `conflicts` (entity, id, version held,
 * version found or `deleted: true`), found by one SELECT on that failure path only. The versions
 * are the caller's, so running the same call again fails the same way: the error is not
 * `retryable` and `retryOnConflict` rethrows it at once; show the user the rows named.
 *
 * Refused before anything runs ({@link LockingConfigurationError}): an empty list, a row given
 * twice, a version that is no integer, a row holding another entity, a patch that sets the
 * version, a key, an `update: false` column, a relation (set its foreign key column instead) or
 * an SQL expression (use the one-row form for that).
 *
 * @example
 * ```ts
 * const versions = await updateVersioned(orders, [
 *   { id: 41, version: 3, patch: { status: "SHIPPED" } },
 *   { id: 42, version: 7, patch: { status: "SHIPPED" } },
 * ]); // one UPDATE; [4, 8]
 * ```
 */
export async function updateVersioned<T extends ObjectLiteral>(
  repository: Repository<T>,
  rows: readonly VersionedRowUpdate<T>[],
): Promise<number[]>;
export async function updateVersioned<T extends ObjectLiteral>(
  repository: Repository<T>,
  id: string | number | ObjectLiteral | readonly VersionedRowUpdate<T>[],
  expectedVersion?: number | string,
  patch?: UpdatePatch<T>,
): Promise<number | number[]> {
  // A list with no version after it is the many-row form; a list with one is refused below (an id names one row).
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent (docs/testing.md); a mutant sends only calls that are wrong for both forms to the other form, which refuses them too
  if (Array.isArray(id) && expectedVersion === undefined && patch === undefined) {
    return updateVersionedRows(repository, id as readonly VersionedRowUpdate<T>[]);
  }
  const { metadata, manager } = repository;
  const column = metadata.versionColumn;
  if (!column) {
    throw new LockingConfigurationError(
      `updateVersioned(): ${metadata.name} has no version column. Mark one with @Versioned().`,
    );
  }
  // Stryker disable next-line StringLiteral: wording (the value a refusal names)
  const expected = toVersionNumber(expectedVersion, `The expected version of ${metadata.name}`);
  if (expected === undefined) {
    throw new LockingConfigurationError(
      `updateVersioned(): no expected version was given for ${metadata.name} ${describeValue(id)}.`,
    );
  }
  const details = {
    entityName: metadata.name,
    id: idMapOf(metadata, id),
    expectedVersion: expected,
    operation: "update",
  };
  if (!idCanExist(metadata, id)) throw raisedIn(manager, new RowNotFoundError(details), "client", true);
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) {
    throw new LockingConfigurationError(
      `updateVersioned(): the patch for ${metadata.name} is an object of the columns to set, got ${describeValue(patch)}.`,
    );
  }
  if (column.getEntityValue(patch as ObjectLiteral) !== undefined) {
    throw new LockingConfigurationError(
      `updateVersioned(): the patch for ${metadata.name} sets "${column.propertyPath}"; the version ` +
        "is incremented by the library and must not be in the patch.",
    );
  }
  // Stryker disable BooleanLiteral: equivalent (docs/testing.md); the update names no entity to refresh, only a RETURNING nobody reads would differ
  const query = manager
    .createQueryBuilder()
    .update(metadata.target)
    .set(patch)
    .whereInIds(details.id)
    .updateEntity(false);
  // Stryker restore BooleanLiteral
  query.andWhere(`${query.escape(column.databaseName)} = :typeormLockingExpectedVersion`, {
    typeormLockingExpectedVersion: expected,
  });
  let result: Awaited<ReturnType<typeof query.execute>>;
  try {
    result = await query.execute();
  } catch (error) {
    // A key value the column cannot hold (2^31 for an `integer` key on PostgreSQL) names no row;
    // the other databases compare it and match none. Nothing was written either way.
    // Only when the id or the version is the suspect: a patch value the column cannot hold is the caller's error.
    const idSuspect = beyondInt32(details.id);
    if (!(idSuspect || beyondInt32({ expected })) || !knownDialectOf(manager.connection)?.isInvalidValue?.(error)) {
      throw error;
    }
    if (idSuspect) throw raisedIn(manager, new RowNotFoundError(details), "client", true);
    // Stryker disable next-line StringLiteral: wording
    const detail = `cannot be at version ${expected}, which its version column cannot hold`;
    throw raisedIn(manager, new StaleVersionError({ ...details, detail }), "client");
  }
  if (result.affected === 1) {
    // The transaction's own write: a row it read under OPTIMISTIC is at expected + 1 at commit.
    if (manager.queryRunner) noteOwnVersionWrite(manager.queryRunner, metadata, details.id, expected, expected + 1);
    return expected + 1;
  }
  const current = await repository.createQueryBuilder("current").withDeleted().whereInIds(details.id).getOne();
  const actual = current ? versionCodecOf(column).parse(column.getEntityValue(current)) : undefined;
  // Nothing was loaded: a version that is not the row's came from the caller, and sending it
  // again can never succeed. Only a re-read that still shows it (a repeatable-read snapshot
  // older than the row) means a concurrent write won the race.
  if (!current) throw raisedIn(manager, new RowNotFoundError(details), "client", true);
  if (actual !== expected)
    throw raisedIn(manager, new StaleVersionError({ ...details, actualVersion: actual }), "client");
  throw raisedIn(manager, new OptimisticLockError(details), "write");
}
