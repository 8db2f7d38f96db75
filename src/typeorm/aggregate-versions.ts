/**
 * Aggregate consistency: a flush that changes anything inside an aggregate (a member inserted,
 * updated or removed, an orphan's foreign key cleared or its row deleted, a many-to-many link
 * added or removed, from either side) moves the root's version once, guarded by the version the root was loaded
 * with. When the root's own row is updated in the same flush, that guarded UPDATE already does it
 * and nothing is added; otherwise one `UPDATE root SET version = version + 1 WHERE id = ? AND
 * version = ?` runs before the flush writes anything, so a stale root fails it whole.
 *
 * A member moved to another root (its foreign key re-pointed, set, or cleared) changes both
 * aggregates: the root it leaves moves too, guarded by the copy of it the member was loaded with,
 * or, when no copy is held, moved unchecked so that every holder of it conflicts.
 */
import type { DataSource, EntityMetadata, ObjectLiteral, QueryRunner } from "typeorm";
import { aggregateLinkOf, lockExcludedPropertiesOf } from "../aggregate";
import { LockingConfigurationError, OptimisticLockError } from "../errors";
import { type Installation, installationOf } from "../installation";
import { compareRows, rowKey } from "../row-ids";
import { raisedIn } from "../transaction-numbers";
import { checkedVersionOf, noteOwnVersionWrite } from "./commit-checks";
import {
  type DatabaseEntityLoaderLike,
  dataSourceOf,
  type SubjectExecutorLike,
  type SubjectLike,
  type TypeormInternals,
  wrap,
} from "./internals";
import { addPreWriteCheck } from "./pre-write-checks";
import { incrementVersionUnchecked, noteIncrement, writeVersion } from "./version-writes";
import { versionToCheck } from "./write-guards";

/** TypeORM's `RelationMetadata`, from a root export (no deep import in emitted declarations). */
type RelationMetadata = EntityMetadata["relations"][number];

/** How a member entity reaches the top root of its aggregate. */
interface MemberChain {
  root: EntityMetadata;
  /** Relation properties from the member to the top root, across all links. */
  path: string[];
  /** The member's own step up (`path[0]`): the foreign key whose change moves it between roots. */
  link: RelationMetadata;
}

interface Aggregates {
  members: Map<EntityMetadata, MemberChain>;
  roots: Set<EntityMetadata>;
}

const aggregatesBySource = new WeakMap<DataSource, Aggregates>();
/** Whether any DataSource declared an aggregate: until one does, the load hooks cost one test. */
// Stryker disable next-line BooleanLiteral: equivalent (docs/testing.md); a shortcut, the lookup after it finds no aggregate
let anyAggregate = false;

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
    const chain = chainOf(metadata);
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
  // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent (docs/testing.md); a shortcut, the check exits when there are no members
  if (members.size > 0) {
    anyAggregate = true;
    addPreWriteCheck(bumpAggregateRoots);
  }
}

function chainOf(member: EntityMetadata): MemberChain | undefined {
  const path: string[] = [];
  let firstStep: RelationMetadata | undefined;
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
      firstStep ??= relation;
      step = relation.inverseEntityMetadata;
    }
    // TypeORM resolved each relation to an entity of this DataSource: a parent reached is one too.
    if (step.target !== parent) {
      throw new LockingConfigurationError(
        `@VersionedBy on ${current.name}: "${link.path.join(".")}" leads to ${step.name}, not to ${parent.name}.`,
      );
    }
    path.push(...link.path);
    current = step;
  }
  // Every link has a step (recordPath refuses an empty path): a first step means a chain.
  return firstStep ? { root: current, path, link: firstStep } : undefined;
}

/** Whether every change a subject carries is to a property excluded from optimistic locking. @internal */
export function onlyExcludedChanges(subject: SubjectLike): boolean {
  const excluded = lockExcludedPropertiesOf(subject.metadata.target);
  return (
    // Stryker disable next-line ConditionalExpression,LogicalOperator,EqualityOperator: equivalent (docs/testing.md); shortcuts of the every() below
    excluded.size > 0 &&
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent (docs/testing.md); TypeORM updates no subject without a change
    subject.changeMaps.length > 0 &&
    subject.changeMaps.every((change) => {
      const property = change.column?.propertyPath ?? change.relation?.propertyPath;
      return property !== undefined && excluded.has(property.split(".")[0]);
    })
  );
}

/** A root reached from a member: its id, and the copy of it held there when one is. @internal */
export interface RootRef {
  metadata: EntityMetadata;
  id: ObjectLiteral | undefined;
  entity?: ObjectLiteral;
}

/** A root whose version a flush moves. @internal */
export interface TouchedRoot {
  metadata: EntityMetadata;
  /** Its primary key (`undefined` for a root the same flush inserts). */
  id: ObjectLiteral | undefined;
  /**
   * The copies of it the flush holds (the root being saved, the member's loaded root): the bump
   * is guarded by their version. Empty when none is held: the bump is then unchecked.
   */
  held: ObjectLiteral[];
  /** Its own row is written by the flush, whose guarded UPDATE already moves the version. */
  writtenAnyway: boolean;
  /** A member of it is written (inserted, updated, removed, moved in or out, a junction row). */
  throughMembers: boolean;
}

/**
 * The roots a flush changes: every root whose own row it writes, and every root one of its member
 * subjects touches (see `rootsTouchedBy`). May read the database (inside the flush's transaction)
 * to find the root a member leaves, when nothing on hand says which one that is.
 *
 * @internal
 */
export function rootsTouchedByFlush(executor: SubjectExecutorLike): Promise<TouchedRoot[]> {
  // Worked out once per flush, however many checks ask (the bump, offline locks).
  const cached = executor as SubjectExecutorLike & { [TOUCHED]?: Promise<TouchedRoot[]> };
  cached[TOUCHED] ??= findRootsTouched(executor);
  return cached[TOUCHED];
}

const TOUCHED = Symbol("typeorm-locking:roots-touched");

async function findRootsTouched(executor: SubjectExecutorLike): Promise<TouchedRoot[]> {
  // What an earlier flush on this runner left unsettled (it failed) is dropped.
  (executor.queryRunner as unknown as Settling)[SETTLE] = undefined;
  const aggregates = aggregatesBySource.get(dataSourceOf(executor.queryRunner));
  if (!aggregates?.members.size) return [];
  const updated = new Set(executor.updateSubjects);
  const touched = new Map<string, TouchedRoot>();
  const add = (ref: RootRef, writtenAnyway: boolean) => {
    const key = rowKey(ref.metadata, ref.id);
    let root = touched.get(key);
    if (!root) {
      root = { metadata: ref.metadata, id: ref.id, held: [], writtenAnyway: false, throughMembers: false };
      touched.set(key, root);
    }
    if (ref.entity && !root.held.includes(ref.entity)) root.held.push(ref.entity);
    root.writtenAnyway ||= writtenAnyway;
    root.throughMembers ||= !writtenAnyway;
  };
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
        add({ metadata: subject.metadata, id: subject.metadata.getEntityIdMap(subject.entity) }, true);
      }
      continue;
    }
    // Stryker disable next-line LogicalOperator: equivalent (docs/testing.md); an inserted or removed member's own link is among its changes
    if (subject.entity && updated.has(subject) && onlyExcludedChanges(subject)) continue;
    for (const ref of await rootsTouchedBy(subject, executor.queryRunner, updated.has(subject))) add(ref, false);
    if (subject.metadata.isJunction) {
      for (const ref of await farEndRootsOf(subject, executor.queryRunner, aggregates)) add(ref, false);
    }
  }
  // The order lockInOrder() locks rows in, for every flush: two flushes moving members between the
  // same roots in opposite directions, or a flush and a transaction that locked those roots with
  // lockInOrder(), take the rows' locks in the same order instead of deadlocking.
  return [...touched.values()].sort(compareRows);
}

/**
 * The roots one subject's change touches: the root its member belongs to now (through the root
 * being saved with it, else through its relations), and, when an update re-points, sets or clears
 * its link (`update` true), the root it leaves. Junction rows and foreign-key fix-ups count for
 * the entity whose save made them (a junction row's other end: `farEndRootsOf`). Empty for
 * entities outside every aggregate.
 *
 * @internal
 */
export async function rootsTouchedBy(
  subject: SubjectLike,
  queryRunner: QueryRunner,
  update: boolean,
): Promise<RootRef[]> {
  const aggregates = aggregatesBySource.get(dataSourceOf(queryRunner));
  if (!aggregates) return [];
  const owner = subject.entity && !subject.metadata.isJunction ? subject : subject.parentSubject;
  if (!owner) return [];
  const now = currentRootOf(owner, aggregates);
  const refs = now ? [now] : [];
  const chain = aggregates.members.get(subject.metadata);
  if (owner === subject && chain && subject.entity) {
    if (update && subject.changeMaps.some((change) => change.relation?.propertyPath === chain.link.propertyPath)) {
      const before = await formerRootOf(subject, chain, queryRunner);
      if (before) refs.push(before);
    }
    // Once the flush has written it, the member is held as part of the root it was saved into, or
    // of none (a link on the way is null). A member's current root always carries its copy.
    settleLater(queryRunner, subject.entity, now?.entity ?? null);
  }
  return refs;
}

// ---- For other checks (offline locks): the same roots the bump below works out ----

/** An aggregate root a flush changes: its metadata and the object holding its id (and version, if held). @internal */
export interface ChangedRoot {
  metadata: EntityMetadata;
  /** The copy of the root the flush holds, or, when none is held (a root a member leaves), its id map. */
  entity: ObjectLiteral;
}

/**
 * The existing aggregate roots whose aggregate a flush changes through its members (a member
 * inserted, updated, removed, orphaned, moved in or out, a junction row): the roots that flush
 * bumps, plus roots written by the flush anyway; roots inserted by the same flush are left out
 * (they are new). Throws, as the bump would, when a member's root is not loaded on it.
 *
 * @internal
 */
export async function existingRootsChangedBy(executor: SubjectExecutorLike): Promise<ChangedRoot[]> {
  const inserted = new Set(
    executor.insertSubjects.flatMap((s) =>
      // Stryker disable next-line ArrayDeclaration: equivalent (docs/testing.md); a key no row has changes no lookup
      s.entity ? [rowKey(s.metadata, s.metadata.getEntityIdMap(s.entity) ?? undefined)] : [],
    ),
  );
  return (await rootsTouchedByFlush(executor)).flatMap((root) =>
    root.throughMembers && root.id && !inserted.has(rowKey(root.metadata, root.id))
      ? [{ metadata: root.metadata, entity: root.held[0] ?? root.id }]
      : [],
  );
}

/** The top root of the aggregate an entity belongs to (the entity itself for a root), if any. @internal */
export function aggregateRootOf(dataSource: DataSource, metadata: EntityMetadata): EntityMetadata | undefined {
  const aggregates = aggregatesBySource.get(dataSource);
  if (!aggregates) return undefined;
  return aggregates.members.get(metadata)?.root ?? (aggregates.roots.has(metadata) ? metadata : undefined);
}

/** One end of a junction row: the entity (or the subject saving it) a link joins, or its id. @internal */
export interface JunctionSide extends ChangedRoot {
  subject?: SubjectLike;
}

/**
 * Both ends of a junction row a flush inserts or removes: from the values an insert writes (the
 * entities, or their subjects), or from the key of a removed row (ids only).
 *
 * @internal
 */
export function junctionSides(junction: SubjectLike): JunctionSide[] {
  // Two ends even when both are of one entity (a self-referencing many-to-many).
  const { ownerColumns, inverseColumns } = junction.metadata;
  return [ownerColumns, inverseColumns].flatMap((columns) => {
    const side = junctionSide(junction, columns);
    return side ? [side] : [];
  });
}

function junctionSide(junction: SubjectLike, columns: EntityMetadata["ownerColumns"]): JunctionSide | undefined {
  const metadata = columns[0]?.referencedColumn?.entityMetadata;
  if (!metadata) return undefined;
  const written = junction.changeMaps.find((change) => change.column === columns[0]);
  // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); TypeORM writes a subject or an entity, never a bare id
  if (written?.value && typeof written.value === "object") {
    const value = written.value as ObjectLiteral;
    const subject = isSubject(value) ? value : undefined;
    const entity = subject ? (subject.entity ?? subject.identifier) : value;
    return entity ? { metadata, entity, subject } : undefined;
  }
  if (!junction.identifier) return undefined;
  const entity: ObjectLiteral = {};
  for (const column of columns) {
    if (column.referencedColumn) {
      Object.assign(entity, column.referencedColumn.createValueMap(column.getEntityValue(junction.identifier)));
    }
  }
  return { metadata, entity };
}

function isSubject(value: ObjectLiteral): value is SubjectLike {
  return "metadata" in value && "changeMaps" in value;
}

/** Whether a junction end is the entity whose save made the row (its own check covers it). @internal */
export function isSavedSide(side: JunctionSide, saved: SubjectLike | undefined): boolean {
  if (!saved || side.metadata !== saved.metadata) return false;
  if (side.subject === saved || side.entity === saved.entity) return true;
  const savedId = saved.entity ? saved.metadata.getEntityIdMap(saved.entity) : saved.identifier;
  // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); compareEntities() of an undefined id is false
  return savedId !== undefined && savedId !== null && side.metadata.compareEntities(side.entity, savedId);
}

// ---- end of the functions for other checks ----

const SETTLE = Symbol("typeorm-locking:member-roots");
type Settling = { [SETTLE]?: Array<() => void> };

function settleLater(queryRunner: QueryRunner, member: ObjectLiteral, root: ObjectLiteral | null): void {
  afterFlushWritten(queryRunner, () => {
    if (root) loadedRoots.set(member, root);
    else loadedRoots.delete(member);
  });
}

function afterFlushWritten(queryRunner: QueryRunner, note: () => void): void {
  const runner = queryRunner as unknown as Settling;
  runner[SETTLE] ??= [];
  runner[SETTLE].push(note);
}

/**
 * After a flush has written everything: each member saved is now held as part of the root it was
 * saved into (or of none), and each root copy whose version the flush moved holds the new one.
 * Not before: a flush that fails (a later bump, a later write) leaves the member where it was and
 * the row at its version, and the copies must keep what they held for the next try. A symbol on
 * the query runner rather than a WeakMap: it is read on every save.
 *
 * @internal
 */
export function settleMemberRoots(executor: SubjectExecutorLike): void {
  const runner = executor.queryRunner as unknown as Settling;
  const settled = runner[SETTLE];
  if (!settled) return;
  runner[SETTLE] = undefined;
  for (const note of settled) note();
}

/** The pre-write check: one version bump per aggregate root the flush changes. */
async function bumpAggregateRoots(executor: SubjectExecutorLike): Promise<void> {
  const installation = installationOf(dataSourceOf(executor.queryRunner));
  if (!installation) return;
  const runner = executor.queryRunner;
  for (const root of await rootsTouchedByFlush(executor)) {
    if (root.writtenAnyway) continue;
    if (root.held.length === 0 && root.id) {
      // A root this transaction read under OPTIMISTIC is held after all: the move is guarded by
      // the version its check expects, and is the transaction's own write at commit.
      const id = root.metadata.getEntityIdMap(root.id);
      const checked = checkedVersionOf(runner, root.metadata, id);
      if (checked === undefined) {
        await incrementVersionUnchecked(runner, root.metadata, root.id);
        continue;
      }
      await writeVersion(runner, root.metadata, root.id, checked, true, "aggregate change", "aggregate-root", {
        noteOnEntity: false,
      });
      afterFlushWritten(runner, () => noteOwnVersionWrite(runner, root.metadata, id, checked, checked + 1));
      continue;
    }
    const column = installation.policies.of(root.metadata)!.column;
    const copies = root.held.map((entity) => ({
      entity,
      expected: versionToCheck(root.metadata, column, entity, root.id, "aggregate change"),
    }));
    const [first, ...others] = copies;
    // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); a root without a copy was bumped above, an inserted one is written anyway
    if (!first) continue;
    if (others.some((copy) => copy.expected !== first.expected)) {
      // Two copies of one root in one flush (the one the member was loaded with, the one it
      // is saved into) at different versions: at least one of them is stale.
      throw raisedIn(
        runner,
        new OptimisticLockError({
          entityName: root.metadata.name,
          id: root.id,
          expectedVersion: Math.min(...copies.map((copy) => copy.expected)),
          operation: "aggregate change",
          detail: "two copies of it in this save hold different versions",
        }),
        "aggregate-root",
      );
    }
    await writeVersion(
      runner,
      root.metadata,
      first.entity,
      first.expected,
      true,
      "aggregate change",
      "aggregate-root",
      { noteOnEntity: false },
    );
    afterFlushWritten(runner, () => {
      for (const copy of copies) noteIncrement(root.metadata, copy.entity, copy.expected);
      const id = root.metadata.getEntityIdMap(first.entity);
      noteOwnVersionWrite(runner, root.metadata, id, first.expected, first.expected + 1);
    });
  }
}

/**
 * The top root a subject belongs to now: the root's subject up the chain of subjects when the
 * root is being saved (cascades), else the root object reached through the member's relations,
 * which must then be loaded. `null` when a link on the way is null: the member belongs to no
 * aggregate (detached from its root).
 */
function currentRootOf(subject: SubjectLike, aggregates: Aggregates): RootRef | null | undefined {
  if (aggregates.roots.has(subject.metadata)) {
    return subject.entity
      ? { metadata: subject.metadata, id: subject.metadata.getEntityIdMap(subject.entity), entity: subject.entity }
      : undefined;
  }
  const chain = aggregates.members.get(subject.metadata);
  if (!chain) return undefined;
  for (let up = subject.parentSubject; up; up = up.parentSubject) {
    if (up.metadata === chain.root && up.entity) {
      return { metadata: chain.root, id: chain.root.getEntityIdMap(up.entity), entity: up.entity };
    }
  }
  let value: unknown = subject.entity;
  for (const property of chain.path) {
    value = (value as ObjectLiteral | undefined)?.[property];
    if (value === null) return null;
  }
  const id = value && typeof value === "object" ? chain.root.getEntityIdMap(value as ObjectLiteral) : undefined;
  if (id) return { metadata: chain.root, id, entity: value as ObjectLiteral };
  throw new LockingConfigurationError(
    `Saving ${subject.metadata.name} changes the aggregate of ${chain.root.name}, but the ${chain.root.name} it ` +
      `belongs to is not loaded on it. Load it with the relation (relations: { ${chain.path.join(": { ")}: true${" }".repeat(
        chain.path.length - 1,
      )} }) so that its version can be checked, or save the ${chain.root.name} with its cascade.`,
  );
}

/**
 * The root a member whose link changes is leaving: the copy of it the member was loaded with
 * (its version then guards the move: if anyone changed that aggregate since, or moved the member
 * out of it, the flush fails), else the root its row names now, by id, unguarded. TypeORM's
 * pre-load gives the old foreign key (see `installAggregateHooks`); a member deeper than one
 * step needs one SELECT per step above it. `undefined` when it belonged to no root.
 */
async function formerRootOf(
  subject: SubjectLike,
  chain: MemberChain,
  queryRunner: QueryRunner,
): Promise<RootRef | undefined> {
  const remembered = loadedRoots.get(subject.entity!);
  const rememberedId = remembered ? chain.root.getEntityIdMap(remembered) : undefined;
  if (remembered && rememberedId) return { metadata: chain.root, id: rememberedId, entity: remembered };
  const linked = subject.databaseEntity ? chain.link.getEntityValue(subject.databaseEntity) : undefined;
  if (linked === null) return undefined;
  if (linked === undefined) return storedRootOf(subject.metadata, subject.identifier, chain.path, chain, queryRunner);
  const parent = chain.link.inverseEntityMetadata;
  return storedRootOf(parent, parent.getEntityIdMap(linked), chain.path.slice(1), chain, queryRunner);
}

/**
 * The root the stored rows name, from an entity's id up the relations `rest` (one SELECT per
 * step), by id: nothing held guards it. `undefined` when a link on the way is null.
 */
async function storedRootOf(
  step: EntityMetadata,
  id: ObjectLiteral | undefined,
  rest: string[],
  chain: MemberChain,
  queryRunner: QueryRunner,
): Promise<RootRef | undefined> {
  for (const property of rest) {
    if (!id) return undefined;
    const relation = step.findRelationWithPropertyPath(property)!;
    const row = await queryRunner.manager
      .getRepository(step.target)
      .createQueryBuilder()
      .setFindOptions({
        loadEagerRelations: false,
        loadRelationIds: { relations: [property], disableMixedMap: true },
        withDeleted: true,
      })
      .whereInIds(id)
      .getOne();
    const next = row ? relation.getEntityValue(row) : undefined;
    // A null foreign key reads back as an id map of nulls: no root.
    if (!next || !relation.inverseEntityMetadata.hasAllPrimaryKeys(next)) return undefined;
    step = relation.inverseEntityMetadata;
    id = step.getEntityIdMap(next);
  }
  return id ? { metadata: chain.root, id } : undefined;
}

/**
 * The roots at the far end of a junction row, the end whose save did not make it: linking a tag
 * to an order from the tag's side (`tag.orders`) writes the same row as `order.tags` does, and
 * changes the order's aggregate as much. Guarded by the copy the link was made with when it holds
 * a version (as the copy saved through the root would be); else, as a link removed (ids only),
 * moved by id: every holder of the root conflicts.
 */
async function farEndRootsOf(
  junction: SubjectLike,
  queryRunner: QueryRunner,
  aggregates: Aggregates,
): Promise<RootRef[]> {
  const refs: RootRef[] = [];
  for (const side of junctionSides(junction)) {
    if (isSavedSide(side, junction.parentSubject)) continue;
    const chain = aggregates.members.get(side.metadata);
    if (!chain && !aggregates.roots.has(side.metadata)) continue;
    let value: unknown = side.entity;
    for (const property of chain?.path ?? []) value = (value as ObjectLiteral | null | undefined)?.[property];
    const root = chain?.root ?? side.metadata;
    if (holdsVersion(root, value)) {
      refs.push({ metadata: root, id: root.getEntityIdMap(value), entity: value });
      continue;
    }
    const id = side.metadata.getEntityIdMap(side.entity);
    const ref = chain ? await storedRootOf(side.metadata, id, chain.path, chain, queryRunner) : { metadata: root, id };
    if (ref) refs.push(ref);
  }
  return refs;
}

/** Member object -> the root object it was loaded (or last saved) as part of. Weak: keeps nothing alive. */
const loadedRoots = new WeakMap<ObjectLiteral, ObjectLiteral>();

/**
 * Notes, for every aggregate member a SELECT loaded, the root it was loaded as part of: the root
 * reached through its own relations (`relations: { order: true }`), or the root whose collection
 * it was loaded in (`relations: { lines: true }`). When the member later moves to another root,
 * this copy's version guards the root it leaves.
 *
 * @internal
 */
export function rememberLoadedRoots(dataSource: DataSource, metadata: EntityMetadata, entities: ObjectLiteral[]): void {
  const aggregates = anyAggregate ? aggregatesBySource.get(dataSource) : undefined;
  if (aggregates?.members.size) walkLoaded(aggregates, metadata, entities, undefined);
}

function walkLoaded(
  aggregates: Aggregates,
  metadata: EntityMetadata,
  entities: ObjectLiteral[],
  above: ObjectLiteral | undefined,
): void {
  const chain = aggregates.members.get(metadata);
  const isRoot = aggregates.roots.has(metadata);
  for (const entity of entities) {
    let root: ObjectLiteral | undefined;
    if (isRoot) root = entity;
    else if (chain) {
      let value: unknown = entity;
      for (const property of chain.path) value = (value as ObjectLiteral | null | undefined)?.[property];
      // A root loaded as ids only (loadRelationIds) holds no version to guard by.
      root = value && typeof value === "object" && holdsVersion(chain.root, value) ? (value as ObjectLiteral) : above;
      if (root) loadedRoots.set(entity, root);
    }
    for (const relation of metadata.relations) {
      // Never a lazy relation's getter (it would run a query): only what a load already put there.
      const value = relation.getEntityValue(entity);
      if (value === null || typeof value !== "object") continue;
      const child = relation.inverseEntityMetadata;
      // Down a root's (or a member's) collection into members that link back up through it.
      const down = root && aggregates.members.get(child)?.link === relation.inverseRelation ? root : undefined;
      walkLoaded(aggregates, child, Array.isArray(value) ? value : [value], down);
    }
  }
}

/** Whether a value is a copy of the root that holds a version (not an id, nor nothing). */
function holdsVersion(root: EntityMetadata, entity: unknown): entity is ObjectLiteral {
  const version = root.versionColumn?.getEntityValue(entity as ObjectLiteral);
  return version !== undefined && version !== null;
}

/**
 * Makes TypeORM's pre-load of a save() read each member's link (the foreign key to its parent)
 * even when the entity saved does not carry it, as when a line moves by its new order's cascade:
 * the column is in the row the pre-load selects anyway, so it costs no statement, and the root
 * the member leaves is known without one. TypeORM loads the relations the entity's copy defines;
 * a null on that copy (never on the entity) asks for this one. Called once per copy of TypeORM,
 * by `installHooks()`.
 *
 * @internal
 */
export function installAggregateHooks(internals: TypeormInternals): void {
  wrap(
    internals.subjectDatabaseEntityLoader,
    "load",
    (load) =>
      function (this: DatabaseEntityLoaderLike, ...args: unknown[]) {
        const aggregates = anyAggregate ? aggregatesBySource.get(dataSourceOf(this.queryRunner)) : undefined;
        for (const subject of aggregates?.members.size ? this.subjects : []) {
          const link = aggregates!.members.get(subject.metadata)?.link;
          const copy = subject.entityWithFulfilledIds;
          if (link && copy && link.getEntityValue(copy) === undefined) link.setEntityValue(copy, null);
        }
        return load.apply(this, args);
      },
  );
}
