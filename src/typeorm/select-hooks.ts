/**
 * Lets every entity SELECT (find*, getOne, getMany, ...) run under a lock mode asked for with
 * `withLockMode()`, `lockQuery()` or `@Lock`. Queries with no such request run exactly as before,
 * TypeORM's own `lock:` option included.
 */
import type { ObjectLiteral, QueryRunner } from "typeorm";
import type { EntityMetadata } from "typeorm/metadata/EntityMetadata";
import type { LockRendering } from "../dialect/lock-dialect";
import { installationOf } from "../installation";
import { lockRequestOf, outsideLockScope } from "../lock-request";
import { dataSourceOf, type TypeormInternals, wrap } from "./internals";
import { runLockedSelect } from "./locking-reads";

interface SelectQueryLike {
  expressionMap: { mainAlias?: { name: string; hasMetadata: boolean; metadata: EntityMetadata } };
  findOptions?: unknown;
  escape(name: string): string;
}

const renderings = new WeakMap<object, LockRendering>();
const patched = new WeakSet<object>();

/** Patches SelectQueryBuilder once per loaded copy of TypeORM. */
export function installSelectHooks(internals: TypeormInternals): void {
  const proto = internals.selectQueryBuilder;
  if (patched.has(proto)) return;
  patched.add(proto);

  wrap(
    proto,
    "executeEntitiesAndRawResults",
    (execute) =>
      async function (this: SelectQueryLike, queryRunner: QueryRunner) {
        const installation = installationOf(dataSourceOf(queryRunner));
        const request = installation ? lockRequestOf(this) : undefined;
        const alias = this.expressionMap.mainAlias;
        if (!installation || !request || !alias?.hasMetadata) return execute.call(this, queryRunner);
        return runLockedSelect(queryRunner, installation, request, {
          metadata: alias.metadata,
          alias: this.escape(alias.name),
          run: async (rendering) => {
            if (!rendering) return execute.call(this, queryRunner) as Promise<{ entities: ObjectLiteral[] }>;
            renderings.set(this.expressionMap, rendering);
            try {
              return (await execute.call(this, queryRunner)) as { entities: ObjectLiteral[] };
            } finally {
              renderings.delete(this.expressionMap);
            }
          },
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
  if (typeof proto.createTableLockExpression === "function") {
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
}
