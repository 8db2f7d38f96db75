import "reflect-metadata";
import { VersionColumn } from "typeorm";
import { describeValue, LockingConfigurationError } from "./errors";
import { versionPropertyTypeOf } from "./version-codec";

/**
 * Integer column types a version may use. (A `bigint` or `decimal` column made by a migration is
 * checked too: its versions are parsed from the strings drivers return, see docs/optimistic-locking.md.)
 *
 * @example
 * ```ts
 * @Versioned({ type: "smallint" }) version!: number;
 * ```
 */
export type VersionColumnType = (typeof VERSION_COLUMN_TYPES)[number];
const VERSION_COLUMN_TYPES = ["int", "integer", "smallint", "int2", "int4", "mediumint"] as const;

/**
 * Options of {@link Versioned}.
 *
 * @example
 * ```ts
 * @Versioned({ name: "row_version" }) version!: number;
 * ```
 */
export interface VersionedOptions {
  /** Column name in the table; defaults to TypeORM's naming of the property. */
  name?: string;
  /**
   * Integer column type; defaults to the driver's version type (`integer`, `int4` or `int`).
   * TypeORM gives every version column that type whatever a `@VersionColumn` says; the library
   * puts this one in when the DataSource builds its metadata, so the schema (synchronize, a
   * generated migration) has it. A type the database does not have is refused there.
   */
  type?: VersionColumnType;
  /** Column comment. */
  comment?: string;
}

/** Per class that declares `@Versioned()`: its property and the column type it asked for. */
const declarations = new WeakMap<Function, { property: string; type?: VersionColumnType }>();

/**
 * Marks a property as the entity's version (declared `number`, or `string`: the version is then
 * written back as a string of digits) and makes every write of the entity
 * conditional on it. The row is inserted with version 1; each `save()` of a changed entity
 * issues `UPDATE ... SET version = version + 1 WHERE id = :id AND version = :held` (the same
 * for `remove()`, `softRemove()`, `recover()`), and a conflict throws
 * {@link OptimisticLockError}. Enforced on every DataSource with the entity: one never passed to
 * `installLocking()` behaves as `installLocking(dataSource)` with the default options.
 *
 * It declares the column itself (as TypeORM's `@VersionColumn` would): do not add `@Column`.
 *
 * @example
 * ```ts
 * @Entity()
 * class Order {
 *   @PrimaryGeneratedColumn() id!: number;
 *   @Column() address!: string;
 *   @Versioned() version!: number;
 * }
 * ```
 */
export function Versioned(options: VersionedOptions = {}): PropertyDecorator {
  return (prototype: object, property: string | symbol) => {
    const entity = prototype.constructor as Function;
    // Stryker disable next-line StringLiteral: wording (the property every refusal below names)
    const where = `${entity.name}.${String(property)}`;
    if (typeof property !== "string") {
      throw new LockingConfigurationError(`@Versioned() on ${where}: use a string-named property.`);
    }
    const designType = Reflect.getMetadata?.("design:type", prototype, property) as Function | undefined;
    if (versionPropertyTypeOf(designType) === undefined) {
      throw new LockingConfigurationError(
        `@Versioned() on ${where} needs a property that holds a version number, but it is declared as ` +
          `${designType?.name}. Declare it as \`${property}!: number\` (or string).`,
      );
    }
    if (options.type !== undefined && !(VERSION_COLUMN_TYPES as readonly string[]).includes(options.type)) {
      throw new LockingConfigurationError(
        `@Versioned() on ${where}: type must be one of "${VERSION_COLUMN_TYPES.join('", "')}", got ` +
          `${describeValue(options.type)}.`,
      );
    }
    const existing = versionedPropertyOf(entity);
    if (existing !== undefined) {
      throw new LockingConfigurationError(
        `${entity.name} has two @Versioned() properties ("${existing}" and "${property}"); ` +
          "an entity has exactly one version. Remove one of them.",
      );
    }
    declarations.set(entity, { property, type: options.type });
    VersionColumn({ name: options.name, comment: options.comment })(prototype, property);
  };
}

/** The `@Versioned()` property of an entity class or of one of its parent classes. @internal */
export function versionedPropertyOf(entity: Function): string | undefined {
  return declarationOf(entity)?.property;
}

/**
 * The column type `@Versioned({ type })` declared on a class or one of its parent classes (the
 * one that declared the property). @internal
 */
export function declaredVersionTypeOf(entity: Function): VersionColumnType | undefined {
  return declarationOf(entity)?.type;
}

function declarationOf(entity: Function): { property: string; type?: VersionColumnType } | undefined {
  for (let c: unknown = entity; typeof c === "function"; c = Object.getPrototypeOf(c)) {
    const declaration = declarations.get(c as Function);
    if (declaration !== undefined) return declaration;
  }
  return undefined;
}
