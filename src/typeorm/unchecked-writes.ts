/**
 * Writes that bypass the persistence layer: `repository.update()`/`delete()`/`insert()`/
 * `upsert()`/`increment()`/`softDelete()`/`restore()` and query-builder writes. They carry no
 * entities, so per-entity rules (an offline lock) cannot check them; a rule registered here sees
 * each such statement before it runs and may refuse it.
 *
 * TypeORM's own persistence (`save()`/`remove()`) issues its statements with the same query
 * builders; those run inside {@link runAsCheckedWrites} and are not seen here, since the
 * pre-write checks already looked at every subject of that flush.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { DataSource, EntityMetadata } from "typeorm";
import { dataSourceOf, type TypeormInternals, type WriteQueryBuilderLike, wrap } from "./internals";

/** What an unchecked statement does. @internal */
export type UncheckedWriteKind = "update" | "delete" | "soft-delete" | "restore" | "insert" | "upsert";

/** One statement about to run outside `save()`/`remove()`. @internal */
export interface UncheckedWrite {
  dataSource: DataSource;
  /** The entity (or junction table) the statement writes. */
  metadata: EntityMetadata;
  kind: UncheckedWriteKind;
}

/** A rule for unchecked writes: throw to refuse the statement (nothing is sent). @internal */
export type UncheckedWriteCheck = (write: UncheckedWrite) => void;

const checks = new Set<UncheckedWriteCheck>();
const checkedWrites = new AsyncLocalStorage<true>();

/** Registers a rule (once; registering the same function again does nothing). @internal */
export function addUncheckedWriteCheck(check: UncheckedWriteCheck): void {
  checks.add(check);
}

/**
 * Runs `work` as statements checked elsewhere (TypeORM's persistence after its pre-write checks,
 * the library's own version writes): the rules here do not see them. Costs nothing while no
 * rule is registered.
 *
 * @internal
 */
export function runAsCheckedWrites<R>(work: () => R): R {
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent (docs/testing.md); with no rule registered both branches run the work alike, the first without entering the store
  return checks.size === 0 || checkedWrites.getStore() ? work() : checkedWrites.run(true, work);
}

/**
 * Patches the write query builders, and marks the persistence layer's writes; `installHooks()`
 * calls it once per loaded copy of TypeORM. @internal
 */
export function installUncheckedWriteChecks(internals: TypeormInternals): void {
  for (const name of [
    "executeInsertOperations",
    "executeUpdateOperations",
    "executeRemoveOperations",
    "executeSoftRemoveOperations",
    "executeRecoverOperations",
  ]) {
    wrap(
      internals.subjectExecutor,
      name,
      (original) =>
        function (this: unknown, ...args: unknown[]) {
          return runAsCheckedWrites(() => original.apply(this, args));
        },
    );
  }
  for (const builder of [
    internals.updateQueryBuilder,
    internals.softDeleteQueryBuilder,
    internals.deleteQueryBuilder,
    internals.insertQueryBuilder,
  ]) {
    wrap(
      builder,
      "execute",
      (original) =>
        function (this: WriteQueryBuilderLike, ...args: unknown[]) {
          if (checks.size === 0 || checkedWrites.getStore()) return original.apply(this, args);
          try {
            checkStatement(this);
          } catch (error) {
            return Promise.reject(error);
          }
          return original.apply(this, args);
        },
    );
  }
}

function checkStatement(builder: WriteQueryBuilderLike): void {
  const { mainAlias, queryType, onUpdate, onConflict } = builder.expressionMap;
  if (!mainAlias?.hasMetadata) return;
  const kind: UncheckedWriteKind | undefined =
    queryType === "insert"
      ? onUpdate || onConflict
        ? "upsert"
        : "insert"
      : queryType === "update" || queryType === "delete" || queryType === "soft-delete" || queryType === "restore"
        ? queryType
        : undefined;
  if (!kind) return;
  const write = { dataSource: dataSourceOf(builder), metadata: mainAlias.metadata, kind };
  for (const check of checks) check(write);
}
