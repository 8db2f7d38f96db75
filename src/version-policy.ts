import "reflect-metadata";
import type { EntityMetadata } from "typeorm";
import { aggregateLinkOf, isLockExcludedEntity } from "./aggregate";
import { LockingConfigurationError } from "./errors";
import type { ColumnMetadata } from "./typeorm-types";
import { designTypeOf, versionPropertyTypeOf } from "./version-codec";
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
}

/**
 * Works out, once per entity metadata, which column guards its writes, and rejects the set-ups
 * that could only be checked wrongly (two version columns, a property that cannot hold a version).
 *
 * @internal
 */
export class VersionPolicies {
  private readonly cache = new WeakMap<EntityMetadata, VersionPolicy | null>();

  /** `exclude`: entities (classes or names) whose `@VersionColumn` stays unchecked in checked mode. */
  constructor(
    private readonly versionColumns: VersionColumnMode,
    private readonly exclude: ReadonlyArray<Function | string>,
  ) {}

  /** The policy of `metadata`, or `undefined` when its writes are not checked. */
  of(metadata: EntityMetadata): VersionPolicy | undefined {
    let policy = this.cache.get(metadata);
    if (policy === undefined) {
      policy = resolve(metadata, this.versionColumns, this.excludes(metadata));
      this.cache.set(metadata, policy);
    }
    return policy ?? undefined;
  }

  /**
   * Resolves the policy of every entity at install, so that set-up errors surface then rather than
   * at the first write. All the entities that cannot be checked are reported in one error, with
   * the `exclude` list that would leave the `@VersionColumn` ones unchecked: a large app learns
   * its whole list at once, not one entity per restart.
   */
  resolveAll(metadatas: readonly EntityMetadata[]): void {
    this.assertExcludedAreEntities(metadatas);
    const refused: Array<{ metadata: EntityMetadata; error: LockingConfigurationError }> = [];
    for (const metadata of metadatas) {
      try {
        this.of(metadata);
      } catch (error) {
        if (!(error instanceof LockingConfigurationError)) throw error;
        refused.push({ metadata, error });
      }
    }
    if (refused.length === 1) throw refused[0].error;
    if (refused.length === 0) return;
    const excludable = refused.filter(({ metadata }) => !asksForChecks(metadata)).map(({ metadata }) => metadata.name);
    throw new LockingConfigurationError(
      `${refused.length} entities cannot be version-checked:\n${refused.map(({ error }) => `- ${error.message}`).join("\n")}` +
        (excludable.length > 0
          ? `\nTo leave the @VersionColumn ones unchecked for now: installLocking(dataSource, { versionColumns: "checked", exclude: [${excludable.join(", ")}] }).`
          : ""),
    );
  }

  /** Throws when `exclude` names something that is not one of `metadatas` (a typo would check nothing less). */
  private assertExcludedAreEntities(metadatas: readonly EntityMetadata[]): void {
    for (const entry of this.exclude) {
      const known = metadatas.some((m) => isNamedBy(m, entry));
      if (!known) {
        const name = typeof entry === "function" ? entry.name : JSON.stringify(entry);
        throw new LockingConfigurationError(
          `installLocking(): exclude names ${name}, which is not an entity of this DataSource. ` +
            "List entity classes (or their names) as the DataSource's entities option has them.",
        );
      }
    }
  }

  /** How an entity is excluded from checked mode, if it is. */
  private excludes(metadata: EntityMetadata): Exclusion | undefined {
    const target = metadata.target;
    if (typeof target === "function" && isLockExcludedEntity(target)) return "decorator";
    return this.exclude.some((entry) => isNamedBy(metadata, entry)) ? "option" : undefined;
  }
}

/**
 * Whether an `exclude` entry names the entity: its name (its class's, an EntitySchema's own, or
 * its table's for an anonymous class), its class, or a parent class of it.
 */
function isNamedBy(metadata: EntityMetadata, entry: Function | string): boolean {
  return entry === metadata.name || inChain(metadata.target, entry);
}

/** Whether `entry` is the class `target` or one of its parent classes (an excluded base excludes its entities). */
function inChain(target: unknown, entry: unknown): boolean {
  for (let c = target; typeof c === "function" && c !== Function.prototype; c = Object.getPrototypeOf(c)) {
    if (c === entry) return true;
  }
  return false;
}

type Exclusion = "decorator" | "option";

/** How an entity is excluded, for a refusal: either way means the same, so either is refused. */
function describeExclusion(exclusion: Exclusion): string {
  return exclusion === "decorator"
    ? "is excluded by @OptimisticLockExcluded() on its class"
    : "is excluded by installLocking()'s exclude option";
}

/** How to undo an exclusion, for a refusal. */
function describeUndo(exclusion: Exclusion): string {
  return exclusion === "decorator"
    ? "Remove @OptimisticLockExcluded() from the class"
    : "Take it (or its parent class) out of exclude";
}

function resolve(
  metadata: EntityMetadata,
  mode: VersionColumnMode,
  exclusion: Exclusion | undefined,
): VersionPolicy | null {
  const versionColumns = metadata.columns.filter((c) => c.isVersion);
  const versioned = versionedPathOf(metadata, versionColumns);
  if (versioned !== undefined) {
    if (exclusion !== undefined) {
      throw new LockingConfigurationError(
        `${metadata.name} declares @Versioned() on "${versioned}" and ${describeExclusion(exclusion)}; ` +
          "@Versioned() asks for checked writes and the exclusion for none. Remove one of them.",
      );
    }
    const others = versionColumns.filter((c) => c.propertyPath !== versioned);
    if (others.length > 0) {
      throw new LockingConfigurationError(
        `${metadata.name} declares @Versioned() on "${versioned}" and @VersionColumn on ` +
          `${others.map((c) => `"${c.propertyPath}"`).join(", ")}; an entity has one version. ` +
          "Keep @Versioned() and remove the @VersionColumn.",
      );
    }
  } else if (exclusion !== undefined) {
    if (isMember(metadata)) {
      throw new LockingConfigurationError(
        `${metadata.name} has @VersionedBy and ${describeExclusion(exclusion)}: a member of an aggregate is ` +
          `checked through its root. ${describeUndo(exclusion)} (exclude single properties with @OptimisticLockExcluded() instead).`,
      );
    }
    // Left to TypeORM, whatever its version column looks like: the team's way out for an entity
    // the library cannot check.
    return null;
  }
  const how = versioned === undefined && !isMember(metadata) ? describeOptOut(metadata.name) : undefined;
  // With @Versioned(), a second version column was refused above.
  if (versionColumns.length > 1 && mode === "checked") {
    throw new LockingConfigurationError(
      `${metadata.name} has ${versionColumns.length} version columns ` +
        `(${versionColumns.map((c) => `"${c.propertyPath}"`).join(", ")}); writes can be ` +
        `checked against one only. Remove all but one${how ?? "."}`,
    );
  }
  const column = versionColumns[0];
  if (column === undefined || (versioned === undefined && mode !== "checked")) return null;
  assertVersionProperty(metadata, column, how);
  return { column };
}

/** Whether the entity is a `@VersionedBy` member, checked through its root (an EntitySchema named by a string is none). */
function isMember(metadata: EntityMetadata): boolean {
  return aggregateLinkOf(metadata.target) !== undefined;
}

/**
 * Whether the entity's own decorators ask for checked writes (`@Versioned()`, `@VersionedBy`):
 * such an entity cannot be excluded, and makes the library enforce them on its DataSource.
 *
 * @internal
 */
export function asksForChecks(metadata: EntityMetadata): boolean {
  return declaresVersioned(metadata) || isMember(metadata);
}

/**
 * Whether `@Versioned()` declares the entity's version, on the entity or inside an embedded value.
 *
 * @internal
 */
export function declaresVersioned(metadata: EntityMetadata): boolean {
  return (
    versionedPathOf(
      metadata,
      metadata.columns.filter((c) => c.isVersion),
    ) !== undefined
  );
}

/**
 * The path of the property `@Versioned()` declares the entity's version on: on the entity (or a
 * parent class), or inside an embedded value (`audit.version`), whose class the decorator marked.
 */
function versionedPathOf(metadata: EntityMetadata, versionColumns: readonly ColumnMetadata[]): string | undefined {
  const own = typeof metadata.target === "function" ? versionedPropertyOf(metadata.target) : undefined;
  if (own !== undefined) return own;
  const embedded = versionColumns.find((column) => {
    const type = column.embeddedMetadata?.type;
    return typeof type === "function" && versionedPropertyOf(type) === column.propertyName;
  });
  return embedded?.propertyPath;
}

/** The end of a refusal in checked mode: how to leave the one entity unchecked. */
function describeOptOut(entityName: string): string {
  return (
    `, or leave ${entityName} unchecked (as TypeORM alone would) with @OptimisticLockExcluded() on its class ` +
    `or installLocking(dataSource, { versionColumns: "checked", exclude: [${entityName}] }).`
  );
}

/**
 * The column's type needs no check: TypeORM gives every version column its driver's integer
 * version type whatever `@VersionColumn({ type })` says (test/version-column-type.test.ts keeps
 * that so), and `@Versioned({ type })` takes integer types only. A wider column made by a
 * migration is the codec's to read (version-codec.ts). What is checked is the property's declared
 * type, which must hold a version number.
 */
function assertVersionProperty(metadata: EntityMetadata, column: ColumnMetadata, optOutText: string | undefined): void {
  // column.target is the class that declared the property: the entity, a parent, an embedded value.
  const designType = designTypeOf(column.target, column.propertyName);
  if (versionPropertyTypeOf(designType) === undefined) {
    throw new LockingConfigurationError(
      `${metadata.name}.${column.propertyPath} is the version but is declared as ${(designType as Function).name}, which cannot hold a version number; ` +
        `declare it as \`${column.propertyName}!: number\` (or string)${optOutText ?? "."}`,
    );
  }
}
