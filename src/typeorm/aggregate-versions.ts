/**
 * Aggregate consistency: a flush that changes anything inside an aggregate (a member inserted,
 * updated or removed, an orphan's foreign key cleared or its row deleted, a many-to-many link
 * added or removed) moves the root's version once, guarded by the version the root was loaded
 * with. When the root's own row is updated in the same flush, that guarded UPDATE already does it
 * and nothing is added; otherwise one `UPDATE root SET version = version + 1 WHERE id = ? AND
 * version = ?` runs before the flush writes anything, so a stale root fails it whole.
 */
import type { DataSource, EntityMetadata, ObjectLiteral } from "typeorm";
import { aggregateLinkOf, lockExcludedPropertiesOf } from "../aggregate";
import { LockingConfigurationError } from "../errors";
import { type Installation, installationOf } from "../installation";
import { dataSourceOf, type SubjectExecutorLike, type SubjectLike } from "./internals";
import { addPreWriteCheck } from "./pre-write-checks";
import { writeVersion } from "./version-writes";
import { versionToCheck } from "./write-guards";

/** How a member entity reaches the top root of its aggregate. */
interface MemberChain {
  root: EntityMetadata;
  /** Relation properties from the member to the top root, across all links. */
  path: string[];
}

interface Aggregates {
  members: Map<EntityMetadata, MemberChain>;
  roots: Set<EntityMetadata>;
}

const aggregatesBySource = new WeakMap<DataSource, Aggregates>();

/**
 * Reads the `@VersionedBy` links of a DataSource's entities and checks them (throws
 * LockingConfigurationError for a root that is not versioned, a path that does not lead to the
 * declared parent, a cycle). Registers the flush check when the DataSource has any aggregate.
 *
 * @internal
 */
export function prepareAggregates(dataSource: DataSource, installation: Installation): void {
  const members = new Map<EntityMetadata, MemberChain>();
  for (const metadata of dataSource.entityMetadatas) {
    const chain = chainOf(dataSource, metadata);
    if (!chain) continue;
    if (!installation.policies.of(chain.root)) {
      throw new LockingConfigurationError(
        `@VersionedBy on ${metadata.name}: its aggregate root ${chain.root.name} has no checked version. Mark a ` +
          `property of ${chain.root.name} with @Versioned() (or install with versionColumns: "checked").`,
      );
    }
    members.set(metadata, chain);
  }
  aggregatesBySource.set(dataSource, { members, roots: new Set([...members.values()].map((c) => c.root)) });
  if (members.size > 0) addPreWriteCheck(bumpAggregateRoots);
}

function chainOf(dataSource: DataSource, member: EntityMetadata): MemberChain | undefined {
  const path: string[] = [];
  const seen = new Set<Function>();
  let current = member;
  for (
    let link = aggregateLinkOf(member.target as Function);
    link;
    link = aggregateLinkOf(current.target as Function)
  ) {
    if (seen.has(current.target as Function)) {
      throw new LockingConfigurationError(
        `@VersionedBy on ${member.name}: the chain of parents loops back to ${current.name}. An aggregate has one root.`,
      );
    }
    seen.add(current.target as Function);
    const parent = link.parent();
    let step = current;
    for (const property of link.path) {
      const relation = step.findRelationWithPropertyPath(property);
      if (!relation || !(relation.isManyToOne || relation.isOneToOne)) {
        throw new LockingConfigurationError(
          `@VersionedBy on ${current.name}: "${link.path.join(".")}" must follow many-to-one or one-to-one ` +
            `relations to ${parent.name}, but ${step.name}.${property} is not one.`,
        );
      }
      step = relation.inverseEntityMetadata;
    }
    if (step.target !== parent) {
      throw new LockingConfigurationError(
        `@VersionedBy on ${current.name}: "${link.path.join(".")}" leads to ${step.name}, not to ${parent.name}.`,
      );
    }
    if (!dataSource.hasMetadata(parent)) {
      throw new LockingConfigurationError(
        `@VersionedBy on ${current.name}: ${parent.name} is not an entity of this DataSource.`,
      );
    }
    path.push(...link.path);
    current = step;
  }
  return path.length > 0 ? { root: current, path } : undefined;
}

/** Whether every change a subject carries is to a property excluded from optimistic locking. @internal */
export function onlyExcludedChanges(subject: SubjectLike): boolean {
  const excluded = lockExcludedPropertiesOf(subject.metadata.target as Function);
  return (
    excluded.size > 0 &&
    subject.changeMaps.length > 0 &&
    subject.changeMaps.every((change) => {
      const property = change.column?.propertyPath ?? change.relation?.propertyPath;
      return property !== undefined && excluded.has(property.split(".")[0]);
    })
  );
}

/** An aggregate root a flush changes: its metadata and the object holding its id and version. @internal */
export interface RootRef {
  metadata: EntityMetadata;
  entity: ObjectLiteral;
}

/** The pre-write check: one guarded version bump per aggregate root the flush changes. */
async function bumpAggregateRoots(executor: SubjectExecutorLike): Promise<void> {
  const dataSource = dataSourceOf(executor.queryRunner);
  const aggregates = aggregatesBySource.get(dataSource);
  const installation = installationOf(dataSource);
  if (!aggregates?.members.size || !installation) return;

  const { touched, rootsWrittenAnyway } = rootsOfFlush(executor, aggregates);
  for (const [key, root] of touched) {
    if (rootsWrittenAnyway.has(key)) continue;
    const column = installation.policies.of(root.metadata)!.column;
    const id = root.metadata.getEntityIdMap(root.entity);
    const expected = versionToCheck(root.metadata, column, root.entity, id, "aggregate change");
    const { queryRunner } = executor;
    await writeVersion(queryRunner, root.metadata, root.entity, expected, true, "aggregate change", "aggregate-root");
  }
}

// ---- For other checks (offline locks): the same roots the bump above works out ----

/**
 * The existing aggregate roots whose aggregate a flush changes through its members (a member
 * inserted, updated, removed, orphaned, a junction row): the roots that flush bumps, plus roots
 * written by the flush anyway; roots inserted by the same flush are left out (they are new).
 * Throws, as the bump would, when a member's root is not loaded on it.
 *
 * @internal
 */
export function existingRootsChangedBy(executor: SubjectExecutorLike): RootRef[] {
  const aggregates = aggregatesBySource.get(dataSourceOf(executor.queryRunner));
  if (!aggregates?.members.size) return [];
  const inserted = new Set(
    executor.insertSubjects.flatMap((s) =>
      aggregates.roots.has(s.metadata) && s.entity ? [keyOf(s.metadata, s.entity)] : [],
    ),
  );
  return [...rootsOfFlush(executor, aggregates).touched].flatMap(([key, root]) => (inserted.has(key) ? [] : [root]));
}

/** The top root of the aggregate an entity belongs to (the entity itself for a root), if any. @internal */
export function aggregateRootOf(dataSource: DataSource, metadata: EntityMetadata): EntityMetadata | undefined {
  const aggregates = aggregatesBySource.get(dataSource);
  if (!aggregates) return undefined;
  return aggregates.members.get(metadata)?.root ?? (aggregates.roots.has(metadata) ? metadata : undefined);
}

// ---- end of the functions for other checks ----

/**
 * The roots a flush changes through members (`touched`), and the keys of the roots whose own row
 * it writes anyway (`rootsWrittenAnyway`: updated with a real change, inserted, removed).
 */
function rootsOfFlush(
  executor: SubjectExecutorLike,
  aggregates: Aggregates,
): { touched: Map<string, RootRef>; rootsWrittenAnyway: Set<string> } {
  const updated = new Set(executor.updateSubjects);
  const rootsWrittenAnyway = new Set<string>();
  const touched = new Map<string, RootRef>();
  for (const subject of [
    ...executor.insertSubjects,
    ...executor.updateSubjects,
    ...executor.removeSubjects,
    ...executor.softRemoveSubjects,
    ...executor.recoverSubjects,
  ]) {
    if (aggregates.roots.has(subject.metadata) && subject.entity) {
      // The root's own guarded write moves its version (an insert starts a new aggregate).
      if (!(updated.has(subject) && onlyExcludedChanges(subject))) {
        rootsWrittenAnyway.add(keyOf(subject.metadata, subject.entity));
      }
      continue;
    }
    if (subject.entity && updated.has(subject) && onlyExcludedChanges(subject)) continue;
    // Junction rows and foreign-key fix-ups carry no entity: the entity being saved owns them.
    const owner = subject.entity && !subject.metadata.isJunction ? subject : subject.parentSubject;
    const root = owner ? rootOf(owner, aggregates) : undefined;
    if (root) touched.set(keyOf(root.metadata, root.entity), root);
  }
  return { touched, rootsWrittenAnyway };
}

/**
 * The top root of the aggregate a subject belongs to: the root's subject up the chain of
 * subjects when the root is being saved (cascades), else the root object reached through the
 * member's relations, which must then be loaded.
 */
function rootOf(subject: SubjectLike, aggregates: Aggregates): RootRef | undefined {
  if (aggregates.roots.has(subject.metadata)) {
    return subject.entity ? { metadata: subject.metadata, entity: subject.entity } : undefined;
  }
  const chain = aggregates.members.get(subject.metadata);
  if (!chain) return undefined;
  for (let up = subject.parentSubject; up; up = up.parentSubject) {
    if (up.metadata === chain.root && up.entity) return { metadata: chain.root, entity: up.entity };
  }
  let value: unknown = subject.entity;
  for (const property of chain.path) value = (value as ObjectLiteral | undefined)?.[property];
  if (value && typeof value === "object" && chain.root.getEntityIdMap(value as ObjectLiteral)) {
    return { metadata: chain.root, entity: value as ObjectLiteral };
  }
  throw new LockingConfigurationError(
    `Saving ${subject.metadata.name} changes the aggregate of ${chain.root.name}, but the ${chain.root.name} it ` +
      `belongs to is not loaded on it. Load it with the relation (relations: { ${chain.path.join(": { ")}: true${" }".repeat(
        chain.path.length - 1,
      )} }) so that its version can be checked, or save the ${chain.root.name} with its cascade.`,
  );
}

function keyOf(metadata: EntityMetadata, entity: ObjectLiteral): string {
  return `${metadata.name}:${JSON.stringify(metadata.getEntityIdMap(entity) ?? null)}`;
}
