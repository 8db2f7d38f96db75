/**
 * Keeps a versioned tree's bookkeeping from moving its version. TypeORM writes a
 * materialized-path tree's paths with query-builder UPDATEs of the entity's own table (a new
 * node's path right after its INSERT; a moved subtree's paths just before the move's UPDATE), and
 * its UpdateQueryBuilder adds `version = version + 1` to every UPDATE of an entity with a version
 * column. Those bumps are not changes anyone made: a new node's row stood one version ahead of
 * the entity just saved, and a move bumped the moved node before its own guarded UPDATE, which
 * then found it "changed by another transaction". Inside those two steps an UPDATE of a guarded
 * entity sets the version to itself, so TypeORM adds no increment. (Closure tables write their
 * own table, nested sets raw SQL: neither touches the version.)
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { ObjectLiteral } from "typeorm";
import { installationOf } from "../installation";
import { dataSourceOf, type Method, type TypeormInternals, type WriteQueryBuilderLike, wrap } from "./internals";

const keepingPaths = new AsyncLocalStorage<true>();

/** Patches the materialized-path executor and the update builder's `set()`; once per TypeORM copy. @internal */
export function installTreeBookkeeping(internals: TypeormInternals): void {
  for (const step of ["insert", "update"]) {
    wrap(
      internals.materializedPathExecutor,
      step,
      (original) =>
        function (this: unknown, ...args: unknown[]) {
          return keepingPaths.run(true, () => original.apply(this, args));
        },
    );
  }
  wrap(
    internals.updateQueryBuilder,
    "set",
    (original: Method) =>
      function (this: WriteQueryBuilderLike & { escape(name: string): string }, values: ObjectLiteral) {
        const column = keepingPaths.getStore() ? guardedVersionColumnOf(this) : undefined;
        if (!column) return original.call(this, values);
        const itself = column.createValueMap(() => this.escape(column.databaseName));
        return original.call(this, { ...values, ...itself });
      },
  );
}

function guardedVersionColumnOf(query: WriteQueryBuilderLike) {
  const metadata = query.expressionMap.mainAlias?.metadata;
  return metadata && installationOf(dataSourceOf(query))?.policies.of(metadata)?.column;
}
