import "reflect-metadata";
import type { EntityMetadata } from "typeorm";
import { LockingConfigurationError } from "./errors";
import type { ColumnMetadata } from "./typeorm-types";
import { versionedPropertyOf } from "./versioned";

/**
 * How TypeORM `@VersionColumn`s (as opposed to `@Versioned()`) are treated.
 *
 * @example
 * ```ts
 * installLocking(dataSource, { versionColumns: "checked" satisfies VersionColumnMode });
 * ```
 */
export type VersionColumnMode = "checked" | "unchecked";

/** The version column whose value guards an entity's writes. @internal */
export interface VersionPolicy {
  readonly column: ColumnMetadata;
  /** `versioned`: declared with `@Versioned()`; `version-column`: a TypeORM `@VersionColumn`. */
  readonly declaredBy: "versioned" | "version-column";
}

const INTEGER_TYPES = new Set(["int", "integer", "smallint", "int2", "int4", "mediumint", "tinyint", "number"]);

/**
 * Works out, once per entity metadata, which column guards its writes, and rejects the set-ups
 * that could only be checked wrongly (two version columns, a non-integer version).
 *
 * @internal
 */
export class VersionPolicies {
  private readonly cache = new WeakMap<EntityMetadata, VersionPolicy | null>();

  constructor(private readonly versionColumns: VersionColumnMode) {}

  /** The policy of `metadata`, or `undefined` when its writes are not checked. */
  of(metadata: EntityMetadata): VersionPolicy | undefined {
    let policy = this.cache.get(metadata);
    if (policy === undefined) {
      policy = resolve(metadata, this.versionColumns);
      this.cache.set(metadata, policy);
    }
    return policy ?? undefined;
  }
}

function resolve(metadata: EntityMetadata, mode: VersionColumnMode): VersionPolicy | null {
  const versionColumns = metadata.columns.filter((c) => c.isVersion);
  const versioned = typeof metadata.target === "function" ? versionedPropertyOf(metadata.target) : undefined;
  if (versioned !== undefined) {
    const others = versionColumns.filter((c) => c.propertyPath !== versioned);
    if (others.length > 0) {
      throw new LockingConfigurationError(
        `${metadata.name} declares @Versioned() on "${versioned}" and @VersionColumn on ` +
          `${others.map((c) => `"${c.propertyPath}"`).join(", ")}; an entity has one version. ` +
          "Keep @Versioned() and remove the @VersionColumn.",
      );
    }
  }
  if (versionColumns.length > 1 && (versioned !== undefined || mode === "checked")) {
    throw new LockingConfigurationError(
      `${metadata.name} has ${versionColumns.length} version columns ` +
        `(${versionColumns.map((c) => `"${c.propertyPath}"`).join(", ")}); writes can be ` +
        "checked against one only. Remove all but one.",
    );
  }
  const column = versionColumns[0];
  if (column === undefined || (versioned === undefined && mode !== "checked")) return null;
  assertIntegerColumn(metadata, column);
  return { column, declaredBy: versioned !== undefined ? "versioned" : "version-column" };
}

function assertIntegerColumn(metadata: EntityMetadata, column: ColumnMetadata): void {
  const type = column.type;
  const name = typeof type === "function" ? type.name.toLowerCase() : String(type).toLowerCase();
  const where = `${metadata.name}.${column.propertyPath}`;
  if (!INTEGER_TYPES.has(name)) {
    throw new LockingConfigurationError(
      `${where} is the version but its column type is "${name}"; a version must be an integer column ` +
        '(e.g. type "int"). bigint and decimal come back as strings and cannot be compared reliably.',
    );
  }
  // TypeORM maps every version column to an integer type, whatever the property says; a property
  // declared as something else would hold a number the application does not expect.
  const prototype = typeof metadata.target === "function" ? metadata.target.prototype : undefined;
  const designType = prototype
    ? (Reflect.getMetadata?.("design:type", prototype, column.propertyName) as unknown)
    : undefined;
  if (typeof designType === "function" && designType !== Number && !column.embeddedMetadata) {
    throw new LockingConfigurationError(
      `${where} is the version but is declared as ${designType.name}; declare it as \`${column.propertyName}!: number\`.`,
    );
  }
}
