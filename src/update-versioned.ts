import type { EntityMetadata, ObjectLiteral, Repository } from "typeorm";
import {
  describeValue,
  LockingConfigurationError,
  OptimisticLockError,
  RowNotFoundError,
  StaleVersionError,
} from "./errors";
import { raisedIn } from "./transaction-numbers";
import { knownDialectOf } from "./typeorm/error-translation";
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
  const query = manager
    .createQueryBuilder()
    .update(metadata.target)
    .set(patch)
    .whereInIds(details.id)
    .updateEntity(false);
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
    const detail = `cannot be at version ${expected}, which its version column cannot hold`;
    throw raisedIn(manager, new StaleVersionError({ ...details, detail }), "client");
  }
  if (result.affected === 1) return expected + 1;
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

/** A primary key value that names one row: a string, a finite number, a bigint. */
function isKeyValue(value: unknown): value is string | number | bigint {
  return (
    typeof value === "string" || typeof value === "bigint" || (typeof value === "number" && Number.isFinite(value))
  );
}

/**
 * The id map of `id`, refusing what does not name exactly one row: TypeORM's `whereInIds` takes a
 * list (or a map with a list in it) as many ids, and the update would write every row of it.
 */
function idMapOf(metadata: EntityMetadata, id: unknown): Record<string, unknown> {
  const primary = metadata.primaryColumns;
  const refuse = () =>
    new LockingConfigurationError(
      `updateVersioned(): the id must name one ${metadata.name}: its primary key value ` +
        `(e.g. 42) or a map of its primary columns (e.g. { ${primary.map((c) => `${c.propertyPath}: 42`).join(", ")} }); ` +
        `got ${describeValue(id)}. Nothing was written.`,
    );
  if (isKeyValue(id)) {
    if (primary.length !== 1) throw refuse();
    return { [primary[0].propertyPath]: id };
  }
  if (id === null || typeof id !== "object" || Array.isArray(id)) throw refuse();
  const map: Record<string, unknown> = {};
  for (const column of primary) {
    const value = column.getEntityValue(id as ObjectLiteral);
    if (!isKeyValue(value)) throw refuse();
    map[column.propertyPath] = value;
  }
  return map;
}

const INTEGER_TYPES = /^(int|integer|int[248]|smallint|mediumint|bigint|tinyint|(small|big)?serial|increment)$/i;

/** False when a key value cannot be any row's: a fraction or non-digits for an integer column. */
function idCanExist(metadata: EntityMetadata, id: unknown): boolean {
  return metadata.primaryColumns.every((column) => {
    const type = column.type === Number ? "integer" : String(column.type);
    if (!INTEGER_TYPES.test(type) && column.generationStrategy !== "increment") return true;
    const value = isKeyValue(id) ? id : column.getEntityValue(id as ObjectLiteral);
    if (typeof value === "number") return Number.isSafeInteger(value);
    return typeof value === "bigint" || /^-?\d{1,19}$/.test(String(value).trim());
  });
}

/** Whether an id map holds an integer key value outside 32 bits, which an `integer` column cannot hold. */
function beyondInt32(id: Record<string, unknown>): boolean {
  return Object.values(id).some((value) => {
    const digits = typeof value === "bigint" || typeof value === "number" ? String(value) : String(value).trim();
    if (!/^-?\d+$/.test(digits)) return false;
    const n = BigInt(digits);
    return n > 2147483647n || n < -2147483648n;
  });
}
