import "reflect-metadata";
import { describeValue, LockingConfigurationError, VersionOutOfRangeError } from "./errors";
import type { ColumnMetadata } from "./typeorm-types";

/**
 * The JavaScript type a version property is declared with, which is the type the library writes
 * versions back in. `"as-held"`: declared `any`, a union, or compiled without decorator metadata;
 * the property keeps the type it holds (a string stays a string).
 *
 * @example
 * ```ts
 * versionPropertyTypeOf(String); // "string"
 * ```
 */
export type VersionPropertyType = "number" | "string" | "bigint" | "as-held";

/**
 * The version type of a property from its `design:type`, or `undefined` when versions cannot be
 * held in it (`Date`, `Boolean`, a class). @internal
 */
export function versionPropertyTypeOf(designType: unknown): VersionPropertyType | undefined {
  if (designType === undefined || designType === Object) return "as-held";
  if (designType === Number) return "number";
  if (designType === String) return "string";
  if (designType === BigInt) return "bigint";
  return undefined;
}

/** The `design:type` TypeScript recorded for a property (undefined without emitDecoratorMetadata). @internal */
export function designTypeOf(target: unknown, property: string): unknown {
  if (typeof target !== "function") return undefined;
  return Reflect.getMetadata?.("design:type", target.prototype, property) as unknown;
}

/**
 * How the versions of one column are read and written back. Every comparison the library makes
 * is between safe integers parsed by {@link VersionCodec.parse}, whatever the driver or the
 * entity holds (a number, a string from a `bigint`/`decimal` column or a `string` property, a
 * bigint); every version it writes onto an entity goes through {@link VersionCodec.format}.
 * @internal
 */
export interface VersionCodec {
  /**
   * The integer a held value stands for; `undefined` for null/undefined. Throws
   * {@link VersionOutOfRangeError} beyond 2^53-1 and LockingConfigurationError for a value that
   * is no integer at all.
   */
  parse(value: unknown): number | undefined;
  /** `version` in the property's declared type; `held` is what the property holds now. */
  format(version: number, held?: unknown): number | string | bigint;
}

const codecs = new WeakMap<ColumnMetadata, VersionCodec>();

/** The codec of a version column (made once per column). @internal */
export function versionCodecOf(column: ColumnMetadata): VersionCodec {
  let codec = codecs.get(column);
  // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); a cache: a codec made again is the same codec
  if (!codec) {
    const entityName = column.entityMetadata.name;
    const property = column.propertyPath;
    const type = versionPropertyTypeOf(designTypeOf(column.target, column.propertyName)) ?? "as-held";
    codec = {
      parse: (value) => parseVersion(value, entityName, property),
      format: (version, held) => formatVersion(version, type === "as-held" ? asHeld(held) : type),
    };
    codecs.set(column, codec);
  }
  return codec;
}

/**
 * Rewrites an entity's version in its declared type (TypeORM hands back what the driver returns,
 * a number for an `int` column, a string for `bigint`) and returns it as an integer; `undefined`
 * when the entity holds none or one beyond exact comparison (the write that would need it
 * refuses it then, not the read). @internal
 */
export function settleVersion(column: ColumnMetadata, entity: object): number | undefined {
  const held = column.getEntityValue(entity);
  const codec = versionCodecOf(column);
  let version: number | undefined;
  try {
    version = codec.parse(held);
  } catch {
    // Beyond exact comparison, or no integer: left as held for the write that needs it to refuse.
  }
  if (version === undefined) return undefined;
  const declared = codec.format(version, held);
  // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); writing back the value held changes nothing
  if (declared !== held) column.setEntityValue(entity, declared);
  return version;
}

const DIGITS = /^(-?\d+)(?:\.0*)?$/;

/**
 * The safe integer a version held by `entityName.property` stands for: a number, a bigint, or a
 * string of digits (what node-postgres returns for `bigint`/`numeric`, mysql2 for `decimal` or
 * with `bigNumberStrings`). `undefined` for null/undefined. @internal
 */
export function parseVersion(value: unknown, entityName: string, property: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number") {
    if (Number.isSafeInteger(value)) return value;
    if (Number.isInteger(value))
      throw new VersionOutOfRangeError({ entityName, versionProperty: property, value: String(value) });
  } else if (typeof value === "bigint") {
    const version = Number(value);
    if (Number.isSafeInteger(version)) return version;
    throw new VersionOutOfRangeError({ entityName, versionProperty: property, value: value.toString() });
  } else if (typeof value === "string") {
    const digits = DIGITS.exec(value.trim())?.[1];
    if (digits !== undefined) {
      const version = Number(digits);
      if (Number.isSafeInteger(version)) return version;
      throw new VersionOutOfRangeError({ entityName, versionProperty: property, value: digits });
    }
  }
  throw new LockingConfigurationError(
    `${entityName}.${property} must hold an integer version, got ${typeof value} ${describeValue(value)}.`,
  );
}

function formatVersion(version: number, type: Exclude<VersionPropertyType, "as-held">): number | string | bigint {
  if (type === "string") return String(version);
  if (type === "bigint") return BigInt(version);
  return version;
}

function asHeld(held: unknown): Exclude<VersionPropertyType, "as-held"> {
  return typeof held === "string" ? "string" : typeof held === "bigint" ? "bigint" : "number";
}
