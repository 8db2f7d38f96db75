/**
 * What names one row: for `updateVersioned()`, a primary key value or an id map, refused when it
 * could name many (TypeORM's `whereInIds` takes a list as many ids), shared by its one-row and
 * many-row forms; and the one order in which the library takes several rows' locks.
 */
import type { EntityMetadata, ObjectLiteral } from "typeorm";
import { describeValue, jsonOf, LockingConfigurationError } from "./errors";

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
  // Anything else names one row only through its primary columns' values: a list (TypeORM's many
  // ids), null or a map missing a part holds no key value for them.
  const map: Record<string, unknown> = {};
  for (const column of primary) {
    const value = column.getEntityValue(id as ObjectLiteral);
    if (!isKeyValue(value)) throw refuse();
    map[column.propertyPath] = value;
  }
  return map;
}

// TypeORM's integer column types (serial is not one: it types an increment key `integer`).
const INTEGER_TYPES = /^(int|integer|int[248]|smallint|mediumint|bigint|tinyint)$/i;

/** False when a key value cannot be any row's: a fraction or non-digits for an integer column. @internal */
export function idCanExist(metadata: EntityMetadata, id: unknown): boolean {
  return metadata.primaryColumns.every((column) => {
    const type = column.type === Number ? "integer" : String(column.type);
    // Stryker disable next-line ConditionalExpression: defensive (docs/testing.md); TypeORM types an increment key Number unless told an integer type
    if (!INTEGER_TYPES.test(type) && column.generationStrategy !== "increment") return true;
    const value = isKeyValue(id) ? id : column.getEntityValue(id as ObjectLiteral);
    if (typeof value === "number") return Number.isSafeInteger(value);
    // No 64-bit column holds more than 19 digits; a bigint is its digits.
    return /^-?\d{1,19}$/.test(String(value).trim());
  });
}

/** Whether an id map holds an integer key value outside 32 bits, which an `integer` column cannot hold. @internal */
export function beyondInt32(id: Record<string, unknown>): boolean {
  return Object.values(id).some((value) => {
    const digits = String(value).trim();
    if (!/^-?\d+$/.test(digits)) return false;
    const n = BigInt(digits);
    return n > 2147483647n || n < -2147483648n;
  });
}

/** A row: its entity's metadata and its primary key (a key value, an id map, or the entity). @internal */
export interface RowRef {
  metadata: EntityMetadata;
  id: unknown;
}

/**
 * The one order in which the library locks several rows: table path, then primary key (its
 * columns in metadata order). `lockInOrder()` takes its rows in it and a flush bumps the aggregate
 * roots it changes in it, so a transaction locking roots with one and a save moving a member
 * between them cannot each hold the row the other asks for next (the A,B / B,A deadlock). The
 * order must hang on the row, not on how its key is spelled: `{ id: 9 }` and `9` sort alike, and
 * 9 before 10 whether the key is a number, a bigint or the string a bigint column reads as.
 *
 * @internal
 */
export function compareRows(a: RowRef, b: RowRef): number {
  const other = keyValuesOf(b);
  return (
    compareText(a.metadata.tablePath, b.metadata.tablePath) ||
    keyValuesOf(a).reduce<number>((order, value, i) => order || compareValues(value, other[i]), 0)
  );
}

/** The primary key's column values, in metadata order; a key value alone stands for every column. */
function keyValuesOf({ metadata, id }: RowRef): unknown[] {
  // TypeORM reads no value from null (undefined), as it finds no row for it.
  const map = typeof id === "object";
  return metadata.primaryColumns.map((column) => (map ? column.getEntityValue(id as ObjectLiteral) : id));
}

/**
 * Key values of any kinds in one total order, never throwing: integers (numbers, bigints, digit
 * strings: a bigint column reads as a string) by value, then everything else by its JSON text.
 * Equal values spelled differently ("09" and "9" of a text key: two rows) are told apart by text.
 * NaN falls in with the numbers, after all of them: its text is "NaN".
 */
function compareValues(a: unknown, b: unknown): number {
  const [x, y] = [numericOf(a), numericOf(b)];
  if (x === undefined || y === undefined) {
    return x !== undefined ? -1 : y !== undefined ? 1 : compareText(textOf(a), textOf(b));
  }
  return x < y ? -1 : x > y ? 1 : compareText(String(a), String(b));
}

function numericOf(value: unknown): number | bigint | undefined {
  if (typeof value === "number" || typeof value === "bigint") return value;
  return typeof value === "string" && /^-?\d+$/.test(value) ? BigInt(value) : undefined;
}

/** Its JSON text (one column's values are of one kind, so the kind need not be told); never throws. */
function textOf(value: unknown): string {
  try {
    return jsonOf(value);
  } catch {
    return String(value);
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A row's key for maps of rows within one flush or transaction: the entity and its id map, with a
 * key value given as a number, its text (an id from a URL) or a bigint naming the same row.
 * @internal
 */
export function rowKey(metadata: EntityMetadata, id: ObjectLiteral | undefined): string {
  const text = (_key: string, value: unknown) =>
    typeof value === "number" || typeof value === "bigint" ? String(value) : value;
  return `${metadata.name}:${JSON.stringify(id ?? null, text)}`;
}
