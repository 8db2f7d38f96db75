/**
 * What names one row for `updateVersioned()`: a primary key value or an id map, refused when it
 * could name many (TypeORM's `whereInIds` takes a list as many ids). Shared by its one-row and
 * many-row forms.
 */
import type { EntityMetadata, ObjectLiteral } from "typeorm";
import { describeValue, LockingConfigurationError } from "./errors";

/** A primary key value that names one row: a string, a finite number, a bigint. @internal */
export function isKeyValue(value: unknown): value is string | number | bigint {
  return (
    typeof value === "string" || typeof value === "bigint" || (typeof value === "number" && Number.isFinite(value))
  );
}

/**
 * The id map of `id`, refusing what does not name exactly one row: TypeORM's `whereInIds` takes a
 * list (or a map with a list in it) as many ids, and the update would write every row of it.
 *
 * @internal
 */
export function idMapOf(metadata: EntityMetadata, id: unknown): Record<string, unknown> {
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

/** False when a key value cannot be any row's: a fraction or non-digits for an integer column. @internal */
export function idCanExist(metadata: EntityMetadata, id: unknown): boolean {
  return metadata.primaryColumns.every((column) => {
    const type = column.type === Number ? "integer" : String(column.type);
    if (!INTEGER_TYPES.test(type) && column.generationStrategy !== "increment") return true;
    const value = isKeyValue(id) ? id : column.getEntityValue(id as ObjectLiteral);
    if (typeof value === "number") return Number.isSafeInteger(value);
    return typeof value === "bigint" || /^-?\d{1,19}$/.test(String(value).trim());
  });
}

/** Whether an id map holds an integer key value outside 32 bits, which an `integer` column cannot hold. @internal */
export function beyondInt32(id: Record<string, unknown>): boolean {
  return Object.values(id).some((value) => {
    const digits = typeof value === "bigint" || typeof value === "number" ? String(value) : String(value).trim();
    if (!/^-?\d+$/.test(digits)) return false;
    const n = BigInt(digits);
    return n > 2147483647n || n < -2147483648n;
  });
}
