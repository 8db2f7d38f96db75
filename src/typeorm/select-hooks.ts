/**
 * Lets every entity SELECT (find*, getOne, getMany, ...) run under a lock mode asked for with
 * `withLockMode()`, `lockQuery()` or `@Lock`. Queries with no such request run exactly as before,
 * TypeORM's own `lock:` option included. On an installed DataSource it also notes the version of
 * every versioned entity a SELECT loads.
 */
import type { EntityMetadata, ObjectLiteral, QueryRunner } from "typeorm";
import type { LockRendering } from "../dialect/lock-dialect";
import { type HotRows, hotIdsOf, hotRowsOf } from "../hot-rows";
import { type Installation, installationOf } from "../installation";
import { rememberLoadedVersion } from "../loaded-versions";
import { lockRequestOf, outsideLockScope } from "../lock-request";
import { settleVersion } from "../version-codec";
import { rememberLoadedRoots } from "./aggregate-versions";
import { readWithHotRows } from "./hot-row-reads";
import { dataSourceOf, type TypeormInternals, wrap } from "./internals";
import { type LockedSelect, runLockedSelect } from "./locking-reads";

interface SelectQueryLike {
  expressionMap: { mainAlias?: { name: string; hasMetadata: boolean; metadata: EntityMetadata } };
  findOptions?: unknown;
  escape(name: string): string;
}

type Loaded = { entities: ObjectLiteral[] };

const renderings = new WeakMap<object, LockRendering>();
/**
 * Set while TypeORM's pre-load of the rows a save()/remove() writes runs synchronously: its
 * first SELECT is issued before the loader's first await. Further groups (PostgreSQL loads them
 * one after another) then have their versions noted, which costs a note, not a wrong answer.
 * A synchronous flag, not a mark per query runner cleared when the load settles: that cost a
 * `finally()` and its promises on every save, for the one group nearly every save has.
 */
let preloadingForWrite = false;

/** Patches SelectQueryBuilder; installHooks() calls it once per loaded copy of TypeORM. @internal */
export function installSelectHooks(internals: TypeormInternals): void {
  const proto = internals.selectQueryBuilder;

  wrap(
    proto,
    "executeEntitiesAndRawResults",
    (execute) =>
      function (this: SelectQueryLike, queryRunner: QueryRunner): Promise<Loaded> {
        const installation = installationOf(dataSourceOf(queryRunner));
        const alias = this.expressionMap.mainAlias;
        if (!installation || !alias?.hasMetadata) return execute.call(this, queryRunner);
        const { metadata } = alias;
        // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent (docs/testing.md); saves noting versions nobody holds
        const remember = !preloadingForWrite && reachesVersioned(installation, metadata);
        const load = (): Promise<Loaded> => {
          const loading = execute.call(this, queryRunner) as Promise<Loaded>;
          // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); the same saving
          if (!remember) return loading;
          return loading.then((loaded) => {
            rememberVersions(installation, metadata, loaded.entities);
            rememberLoadedRoots(dataSourceOf(queryRunner), metadata, loaded.entities);
            return loaded;
          });
        };
        const request = lockRequestOf(this);
        const hot = !request && queryRunner.isTransactionActive ? hotRowsOf(queryRunner) : undefined;
        const hotIds = hot && hotIdsOf(hot, dataSourceOf(queryRunner), metadata.name);
        if (!request && !hotIds) return load();
        const select: LockedSelect = {
          metadata,
          alias: this.escape(alias.name),
          run: async (rendering) => {
            if (!rendering) return load();
            renderings.set(this.expressionMap, rendering);
            try {
              return await load();
            } finally {
              renderings.delete(this.expressionMap);
            }
          },
        };
        if (request) return runLockedSelect(queryRunner, installation, request, select);
        // A retry attempt's read of a row that conflicted before: locked (see hot-row-reads.ts).
        return readWithHotRows(queryRunner, installation, hot as HotRows, hotIds as ObjectLiteral[], {
          metadata,
          where: (this.findOptions as { where?: unknown } | undefined)?.where,
          plain: load,
          locked: (escalated) => runLockedSelect(queryRunner, installation, escalated, select),
        });
      },
  );

  // A @Lock scope is about the queries the method runs, not the reads TypeORM does inside
  // save()/remove() (its pre-load of the row, its re-read of generated columns): those already
  // run under the version check, and queuing their copies for OPTIMISTIC checks would be wrong.
  wrap(
    internals.entityPersistExecutor,
    "execute",
    (persist) =>
      function (this: unknown, ...args: unknown[]) {
        return outsideLockScope(() => persist.apply(this, args));
      },
  );

  // The rows save()/remove() read before writing are TypeORM's own copies, compared with the
  // entity and then dropped: noting their versions would cost a WeakMap entry per save for
  // objects no application code ever holds.
  wrap(
    internals.subjectDatabaseEntityLoader,
    // Stryker disable next-line StringLiteral: equivalent (docs/testing.md); unhooked, the pre-load's versions are noted, unread
    "load",
    (load) =>
      function (this: unknown, ...args: unknown[]) {
        const outer = preloadingForWrite;
        // Stryker disable next-line BooleanLiteral: equivalent (docs/testing.md); the same saving
        preloadingForWrite = true;
        try {
          return load.apply(this, args);
        } finally {
          preloadingForWrite = outer;
        }
      },
  );

  // TypeORM runs a paginated query with joins (findOne with relations) as clones of the builder;
  // the lock travels with them, as TypeORM's own lock mode does.
  wrap(
    internals.queryExpressionMap,
    "clone",
    (clone) =>
      function (this: object, ...args: unknown[]) {
        const copy = clone.apply(this, args);
        const rendering = renderings.get(this);
        if (rendering) renderings.set(copy, rendering);
        return copy;
      },
  );

  wrap(
    proto,
    "createLockExpression",
    (lockExpression) =>
      function (this: SelectQueryLike) {
        const rendering = renderings.get(this.expressionMap);
        return rendering ? rendering.clause : lockExpression.call(this);
      },
  );
  // A bound that is a setting is set and restored by the locking statement itself (PostgreSQL),
  // so the finished SQL, lock clause included, is rewritten here rather than around it.
  wrap(
    proto,
    "getQuery",
    (getQuery) =>
      function (this: SelectQueryLike) {
        const sql: string = getQuery.call(this);
        const bound = renderings.get(this.expressionMap)?.boundStatement;
        return bound ? bound(sql) : sql;
      },
  );
  wrap(
    proto,
    "createTableLockExpression",
    (tableLockExpression) =>
      function (this: SelectQueryLike) {
        const rendering = renderings.get(this.expressionMap);
        return rendering ? rendering.tableHint : tableLockExpression.call(this);
      },
  );
}

/**
 * Notes the version every loaded versioned entity holds, relations loaded with it included, so
 * that a later save can tell "the row moved since this load" from "a client-sent version is
 * stale". Done here rather than in an afterLoad subscriber: a DataSource with any subscriber
 * makes TypeORM build and dispatch events on every load, save and commit.
 */
function rememberVersions(installation: Installation, metadata: EntityMetadata, entities: ObjectLiteral[]): void {
  if (!reachesVersioned(installation, metadata)) return;
  const policy = installation.policies.of(metadata);
  for (const entity of entities) {
    if (policy) rememberLoadedVersion(entity, settleVersion(policy.column, entity));
    for (const relation of metadata.relations) {
      // Never a lazy relation's getter (it would run a query): only what a load already put there.
      const value = relation.getEntityValue(entity);
      if (value !== null && typeof value === "object") {
        rememberVersions(installation, relation.inverseEntityMetadata, Array.isArray(value) ? value : [value]);
      }
    }
  }
}

const reach = new WeakMap<Installation, WeakMap<EntityMetadata, boolean>>();

/** Whether an entity, or any entity its relations lead to, is versioned (cached per installation). */
function reachesVersioned(installation: Installation, metadata: EntityMetadata): boolean {
  let known = reach.get(installation);
  // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); a cache made anew gives the same answer
  if (!known) {
    known = new WeakMap();
    reach.set(installation, known);
  }
  const cached = known.get(metadata);
  if (cached !== undefined) return cached;
  const seen = new Set<EntityMetadata>([metadata]);
  for (const current of seen) {
    for (const relation of current.relations) seen.add(relation.inverseEntityMetadata);
  }
  // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); an unversioned graph has nothing to note
  const result = [...seen].some((each) => installation.policies.of(each) !== undefined);
  known.set(metadata, result);
  return result;
}
