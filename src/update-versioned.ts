import type { ObjectLiteral, Repository } from "typeorm";
import { LockingConfigurationError, OptimisticLockError, RowNotFoundError, StaleVersionError } from "./errors";
import { raisedIn } from "./transaction-numbers";
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
): Promise<number> {
  const { metadata, manager } = repository;
  const column = metadata.versionColumn;
  if (!column) {
    throw new LockingConfigurationError(
      `updateVersioned(): ${metadata.name} has no version column. Mark one with @Versioned().`,
    );
  }
  const expected = toVersionNumber(expectedVersion, `The expected version of ${metadata.name}`);
  if (expected === undefined) {
    throw new LockingConfigurationError(
      `updateVersioned(): no expected version was given for ${metadata.name} ${String(id)}.`,
    );
  }
  if (column.getEntityValue(patch as ObjectLiteral) !== undefined) {
    throw new LockingConfigurationError(
      `updateVersioned(): the patch for ${metadata.name} sets "${column.propertyPath}"; the version ` +
        "is incremented by the library and must not be in the patch.",
    );
  }
  const query = manager.createQueryBuilder().update(metadata.target).set(patch).whereInIds(id).updateEntity(false);
  query.andWhere(`${query.escape(column.databaseName)} = :typeormLockingExpectedVersion`, {
    typeormLockingExpectedVersion: expected,
  });
  const result = await query.execute();
  if (result.affected === 1) return expected + 1;
  const current = await repository.createQueryBuilder("current").withDeleted().whereInIds(id).getOne();
  const actual = current ? versionCodecOf(column).parse(column.getEntityValue(current)) : undefined;
  const details = {
    entityName: metadata.name,
    id: typeof id === "object" ? id : { [metadata.primaryColumns[0]?.propertyPath ?? "id"]: id },
    expectedVersion: expected,
    operation: "update",
  };
  // Nothing was loaded: a version that is not the row's came from the caller, and sending it
  // again can never succeed. Only a re-read that still shows it (a repeatable-read snapshot
  // older than the row) means a concurrent write won the race.
  if (!current) throw raisedIn(manager, new RowNotFoundError(details), "client", true);
  if (actual !== expected)
    throw raisedIn(manager, new StaleVersionError({ ...details, actualVersion: actual }), "client");
  throw raisedIn(manager, new OptimisticLockError(details), "write");
}
