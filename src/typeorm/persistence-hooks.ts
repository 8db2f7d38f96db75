/**
 * Makes TypeORM's own persistence path version-checked, without adding a statement.
 *
 * `save()`/`remove()` end in TypeORM's SubjectExecutor, which builds one query per entity with
 * a WHERE on the primary key only. The hooks below (1) make a guard per versioned subject just
 * before the executor writes it, (2) add `AND version = ?` where the executor's query builder
 * names that subject, and (3) check the statement's row count. The guard travels on the objects
 * TypeORM hands from step to step (the subject's id map, then the builder's expression map), so
 * DataSources without the library, and queries the application builds itself, pass through
 * untouched.
 */
import type { ObjectLiteral, QueryRunner } from "typeorm";
import { LockingConfigurationError, OptimisticLockError, type RowConflict } from "../errors";
import { type Installation, installationOf } from "../installation";
import { rememberLoadedVersion } from "../loaded-versions";
import { settleVersion, versionCodecOf } from "../version-codec";
import type { VersionPolicy } from "../version-policy";
import { onlyExcludedChanges, settleMemberRoots } from "./aggregate-versions";
import { removeInBatches } from "./batched-removes";
import { type BatchedOperation, flushConflict, plainId, updateInBatches } from "./batched-writes";
import { checkedVersionOf, hasCommitChecks, noteOwnRemoval, noteOwnVersionWrite } from "./commit-checks";
import {
  type DatabaseEntityLoaderLike,
  dataSourceOf,
  type ExpressionMapLike,
  type Method,
  type ReturningUpdatorLike,
  type SubjectExecutorLike,
  type SubjectLike,
  type TypeormInternals,
  type WriteQueryBuilderLike,
  type WriteResultLike,
  wrap,
} from "./internals";
import {
  deepMerge,
  type GuardedOperation,
  guardSubject,
  idWithVersion,
  isGoneRowConflict,
  refuseChangeOfGoneRow,
  refuseResurrection,
  verifyRowCount,
  type WriteGuard,
} from "./write-guards";

/** The guards a statement carries and how many rows it must touch. */
interface GuardedQuery {
  guards: WriteGuard[];
  rows: number;
  /** The guard whose `AND version = ?` is still to be added to the rendered SQL (UPDATEs). */
  condition?: WriteGuard;
}

// Symbol properties rather than WeakMaps: the objects live for one statement, and a WeakMap
// entry per save costs the garbage collector ephemeron work (measured: about 1 k instructions).
const GUARD = Symbol("typeorm-locking:guard");
const GUARDED_QUERY = Symbol("typeorm-locking:guarded-query");
type Carrying<K extends symbol, T> = { [key in K]?: T };

/**
 * Stands in a guarded UPDATE's rendered WHERE clause for the version condition, which is spliced
 * in after TypeORM's own passes over the SQL: run through them as a named parameter, the
 * condition cost TypeORM a property-name pass and a parameter pass per token (most of the 29 k
 * instructions a save that this and the symbol carriers saved, docs/benchmarks.md). A control
 * character never appears in TypeORM's SQL text, and no pass treats it as part of a name or a
 * parameter.
 */
const CONDITION_MARK = "\u0001";
const EXPECTED_VERSION_PARAMETER = "typeormLockingExpectedVersion";

function guardOf(id: unknown): WriteGuard | undefined {
  return id !== null && typeof id === "object" ? (id as Carrying<typeof GUARD, WriteGuard>)[GUARD] : undefined;
}

function guardedQueryOf(expressionMap: ExpressionMapLike): GuardedQuery | undefined {
  return (expressionMap as Carrying<typeof GUARDED_QUERY, GuardedQuery>)[GUARDED_QUERY];
}

function carryGuardedQuery(expressionMap: ExpressionMapLike, guarded: GuardedQuery): void {
  (expressionMap as Carrying<typeof GUARDED_QUERY, GuardedQuery>)[GUARDED_QUERY] = guarded;
}

/** Patches TypeORM's persistence path; installHooks() calls it once per loaded copy of TypeORM. @internal */
export function installPersistenceHooks(internals: TypeormInternals): void {
  // Batching (on unless batchWrites: false) needs two rows at least: otherwise TypeORM's step, untouched.
  const guardAndBatch =
    (operation: BatchedOperation, subjectsOf: (e: SubjectExecutorLike) => SubjectLike[]) =>
    (original: Method): Method =>
      function (this: SubjectExecutorLike, ...args: unknown[]) {
        const subjects = subjectsOf(this);
        guardSubjects(this, subjects, operation);
        const installation = subjects.length > 1 ? installationOf(dataSourceOf(this.queryRunner)) : undefined;
        if (!installation?.batching) return original.apply(this, args);
        const guardOfSubject = (subject: SubjectLike) => guardOf(subject.identifier);
        return updateInBatches(this, installation, guardOfSubject, () => original.apply(this, args), operation);
      };
  // TypeORM's pre-load finds no row for a soft remove (recover) of a row someone deleted, and then
  // skips that entity without a word: refused here, right after the pre-load, before any write.
  wrap(
    internals.subjectDatabaseEntityLoader,
    "load",
    (original) =>
      function (this: DatabaseEntityLoaderLike, mode: unknown, ...rest: unknown[]) {
        const loaded: Promise<unknown> = original.call(this, mode, ...rest);
        if (mode !== "soft-remove" && mode !== "recover") return loaded;
        return loaded.then((result) => {
          refuseChangesOfGoneRows(this, mode);
          return result;
        });
      },
  );
  const executor = internals.subjectExecutor;
  wrap(
    executor,
    "executeInsertOperations",
    (original) =>
      function (this: SubjectExecutorLike, ...args: unknown[]) {
        const installation = installationOf(dataSourceOf(this.queryRunner));
        // One subject has one conflict to name: the per-row checks below (and the update step's)
        // do it, without checking the row twice, so a one-row save costs what it did unbatched.
        if (installation?.batching && this.insertSubjects.length + this.updateSubjects.length > 1) {
          refuseAllConflictsSeenBeforeWriting(this, installation);
          return original.apply(this, args);
        }
        for (const subject of installation ? this.insertSubjects : []) {
          const policy = installation?.policies.of(subject.metadata);
          if (policy) refuseResurrection(subject, policy, this.queryRunner);
        }
        return original.apply(this, args);
      },
  );
  wrap(
    executor,
    "executeUpdateOperations",
    guardAndBatch("update", (e) => e.updateSubjects),
  );
  wrap(
    executor,
    "executeRemoveOperations",
    (original) =>
      function (this: SubjectExecutorLike, ...args: unknown[]) {
        const subjects = this.removeSubjects;
        const installation = subjects.length > 1 ? installationOf(dataSourceOf(this.queryRunner)) : undefined;
        if (!installation?.batching) {
          guardSubjects(this, subjects, "remove");
          return original.apply(this, args);
        }
        // As a batched UPDATE: every row the pre-load shows stale or gone is named before anything
        // is deleted. (A guarded subject's row was found by the pre-load: guardSubject() refuses a
        // loaded row that is gone, and TypeORM builds entity-less subjects after its pre-load.)
        const conflicts: RowConflict[] = [];
        guardSubjects(this, subjects, "remove", conflicts);
        if (conflicts.length > 0) throw flushConflict(this.queryRunner, conflicts, undefined, "", "remove");
        const guardOfSubject = (subject: SubjectLike) => guardOf(subject.identifier);
        return removeInBatches(this, installation, guardOfSubject, () => original.apply(this, args));
      },
  );
  wrap(
    executor,
    "executeSoftRemoveOperations",
    guardAndBatch("soft-remove", (e) => e.softRemoveSubjects),
  );
  wrap(
    executor,
    "executeRecoverOperations",
    guardAndBatch("recover", (e) => e.recoverSubjects),
  );
  wrap(
    executor,
    "updateSpecialColumnsInPersistedEntities",
    (original) =>
      function (this: SubjectExecutorLike, ...args: unknown[]) {
        const result = original.apply(this, args);
        rememberSavedVersions(this);
        settleMemberRoots(this);
        return result;
      },
  );

  for (const builder of [internals.updateQueryBuilder, internals.softDeleteQueryBuilder]) {
    // A subject without an entity (a child dropped from its parent's collection) is written by
    // `.where(identifier)`, not whereEntity(): its guard, when it has one, comes on the identifier.
    wrap(
      builder,
      "where",
      (original) =>
        function (this: WriteQueryBuilderLike, where: unknown, ...rest: unknown[]) {
          const result = original.call(this, where, ...rest);
          const guard = guardOf(where);
          if (guard) carryGuardedQuery(this.expressionMap, { guards: [guard], rows: 1, condition: guard });
          return result;
        },
    );
    wrap(
      builder,
      "whereEntity",
      (original) =>
        function (this: WriteQueryBuilderLike, entity: unknown) {
          const result = original.call(this, entity);
          const guard = guardOf(entity);
          if (guard) carryGuardedQuery(this.expressionMap, { guards: [guard], rows: 1, condition: guard });
          return result;
        },
    );
    wrap(
      builder,
      "createWhereExpression",
      (original) =>
        function (this: WriteQueryBuilderLike) {
          const where: string = original.call(this);
          return guardedQueryOf(this.expressionMap)?.condition ? where + CONDITION_MARK : where;
        },
    );
    wrap(
      builder,
      "getQueryAndParameters",
      (original) =>
        function (this: WriteQueryBuilderLike) {
          const rendered: [string, unknown[]] = original.call(this);
          const guard = guardedQueryOf(this.expressionMap)?.condition;
          return guard ? withVersionCondition(this, guard, rendered) : rendered;
        },
    );
  }

  // The executor deletes a group of entities with `.where([id1, id2, ...])`: each id map gets
  // its expected version, so the one DELETE stays one statement.
  wrap(
    internals.deleteQueryBuilder,
    "where",
    (original) =>
      function (this: WriteQueryBuilderLike, where: unknown, ...rest: unknown[]) {
        if (Array.isArray(where)) {
          const guards = where.map(guardOf);
          const present = guards.filter((g): g is WriteGuard => g !== undefined);
          if (present.length > 0) {
            carryGuardedQuery(this.expressionMap, { guards: present, rows: where.length });
            return original.call(
              this,
              where.map((id, i) => (guards[i] ? idWithVersion(guards[i]) : id)),
              ...rest,
            );
          }
        }
        return original.call(this, where, ...rest);
      },
  );

  for (const builder of [
    internals.updateQueryBuilder,
    internals.softDeleteQueryBuilder,
    internals.deleteQueryBuilder,
  ]) {
    wrap(
      builder,
      "execute",
      (original) =>
        function (this: WriteQueryBuilderLike, ...args: unknown[]) {
          const written: Promise<WriteResultLike> = original.apply(this, args);
          // Every guard is set by where()/whereEntity(), before execute(); a statement without one
          // gets no extra promise.
          const guarded = guardedQueryOf(this.expressionMap);
          if (!guarded) return written;
          // An UPDATE of an entity had its count checked by the returning updater already (below):
          // checked again here, which costs a comparison and spares the statement a flag saying so.
          return written.then((result) => {
            verifyRowCount(
              guarded.guards,
              result.affected,
              guarded.rows,
              this.queryRunner,
              dataSourceOf(this).options.type,
            );
            return result;
          });
        },
    );
  }

  // Runs right after the UPDATE, before TypeORM re-reads generated columns: a conflict is
  // reported before that read, and where the database has no RETURNING (MySQL, MariaDB,
  // SQLite) the re-read of the version is skipped: the guarded UPDATE matched `version =
  // expected` and set `version + 1`, so the new version is known.
  wrap(
    internals.returningUpdator,
    "update",
    (original) =>
      function (this: ReturningUpdatorLike, result: WriteResultLike, entities: ObjectLiteral[]) {
        const guarded = guardedQueryOf(this.expressionMap);
        if (!guarded) return original.call(this, result, entities);
        return updateGuarded.call(this, original, guarded, result, entities);
      },
  );
}

/**
 * The rendered UPDATE with `AND version = ?` where its WHERE clause ends, and the expected
 * version as its last parameter: nothing after a WHERE clause (RETURNING, OUTPUT, ORDER BY,
 * LIMIT) takes parameters, so the placeholder's position is the parameter's in every dialect.
 */
function withVersionCondition(
  builder: WriteQueryBuilderLike,
  guard: WriteGuard,
  [sql, parameters]: [string, unknown[]],
): [string, unknown[]] {
  const at = sql.indexOf(CONDITION_MARK);
  if (at < 0) {
    throw new LockingConfigurationError(
      `The UPDATE of ${guard.metadata.name} was rendered without the WHERE clause its version check goes in. ` +
        "This TypeORM version builds its statements in a way typeorm-locking does not support; please report it.",
    );
  }
  const driver = dataSourceOf(builder).driver;
  parameters.push(guard.expected);
  const placeholder = driver.createParameter(EXPECTED_VERSION_PARAMETER, parameters.length - 1);
  const condition = ` AND ${driver.escape(guard.column.databaseName)} = ${placeholder}`;
  return [sql.slice(0, at) + condition + sql.slice(at + CONDITION_MARK.length), parameters];
}

/** The returning updater's work for a guarded UPDATE: see the comment where it is hooked. */
async function updateGuarded(
  this: ReturningUpdatorLike,
  original: Method,
  guarded: GuardedQuery,
  result: WriteResultLike,
  entities: ObjectLiteral[],
): Promise<void> {
  const driver = dataSourceOf(this.queryRunner).driver;
  verifyRowCount(guarded.guards, result.affected, guarded.rows, this.queryRunner, driver.options.type);
  const [guard] = guarded.guards;
  const onlyVersionToRead = this.expressionMap.extraReturningColumns.every((c) => c === guard.column);
  if (guarded.guards.length !== 1 || driver.isReturningSqlSupported("update") || !onlyVersionToRead) {
    return original.call(this, result, entities);
  }
  const generated = deepMerge(
    guard.metadata.getEntityIdMap(entities[0]) ?? {},
    guard.column.createValueMap(
      // entities[0] is the row's id map (TypeORM's where-entity), which holds no version.
      versionCodecOf(guard.column).format(guard.expected + 1, guard.held),
    ),
  );
  this.queryRunner.manager.merge(guard.metadata.target as never, entities[0], generated);
  result.generatedMaps?.push(generated);
}

/** Guards each versioned subject; with `conflicts`, collects the stale ones the pre-load shows there instead of throwing at the first. */
function guardSubjects(
  executor: SubjectExecutorLike,
  subjects: SubjectLike[],
  operation: GuardedOperation,
  conflicts?: RowConflict[],
): void {
  if (subjects.length === 0) return;
  const installation = installationOf(dataSourceOf(executor.queryRunner));
  if (!installation) return;
  // A row inserted by this same save cannot have been changed by anyone else.
  const inserted = executor.insertSubjects.length > 0 ? new Set(executor.insertSubjects) : undefined;
  for (const subject of subjects) {
    if (inserted?.has(subject)) continue;
    const policy = installation.policies.of(subject.metadata);
    if (!policy) continue;
    if (operation === "update" && onlyExcludedChanges(subject)) {
      // @OptimisticLockExcluded: neither checked nor bumped (TypeORM would add version + 1).
      const escaped = dataSourceOf(executor.queryRunner).driver.escape(policy.column.databaseName);
      subject.changeMaps.push({ column: policy.column, value: () => escaped });
      continue;
    }
    let guard: WriteGuard | undefined;
    try {
      guard = subject.entity
        ? guardSubject(subject, policy, operation, executor.queryRunner)
        : guardOfRowReadUnderOptimistic(subject, policy, operation, executor.queryRunner);
    } catch (error) {
      if (!conflicts || !(error instanceof OptimisticLockError)) throw error;
      conflicts.push(conflictOfError(error));
      continue;
    }
    if (guard && subject.identifier) (subject.identifier as Carrying<typeof GUARD, WriteGuard>)[GUARD] = guard;
  }
}

/**
 * TypeORM's own write of a row it holds no entity for (a child dropped from its parent's
 * collection: its foreign key nulled, the row deleted or soft-deleted) carries no version to
 * check. When this transaction read the row under OPTIMISTIC, it is guarded by the version that
 * read's commit-time check expects: then it is the transaction's own write, which the check must
 * not take for another's, and a change by another transaction since the read still fails it.
 */
function guardOfRowReadUnderOptimistic(
  subject: SubjectLike,
  policy: VersionPolicy,
  operation: GuardedOperation,
  runner: QueryRunner,
): WriteGuard | undefined {
  const { identifier: id, metadata } = subject;
  const expected = checkedVersionOf(runner, metadata, id);
  return id && expected !== undefined ? { metadata, column: policy.column, expected, id, operation } : undefined;
}

/**
 * With batchWrites, the conflicts TypeORM's pre-load shows (a row at another version, a row gone)
 * are all named in one error before anything is written, as a failed batched UPDATE names all
 * its stale rows: a grid save learns every row someone else changed, not only the first. A
 * client-held version that is wrong (StaleVersionError, RowNotFoundError) is thrown as before.
 */
function refuseAllConflictsSeenBeforeWriting(executor: SubjectExecutorLike, installation: Installation): void {
  const runner = executor.queryRunner;
  const conflicts: RowConflict[] = [];
  // Whether the row is gone, its error says itself (conflictOfError): a refused re-insert always is.
  const attempt = (check: () => unknown) => {
    try {
      check();
    } catch (error) {
      if (!(error instanceof OptimisticLockError)) throw error;
      conflicts.push(conflictOfError(error));
    }
  };
  for (const subject of executor.insertSubjects) {
    const policy = installation.policies.of(subject.metadata);
    if (policy) attempt(() => refuseResurrection(subject, policy, runner));
  }
  const inserted = new Set(executor.insertSubjects);
  for (const subject of executor.updateSubjects) {
    const policy = inserted.has(subject) ? undefined : installation.policies.of(subject.metadata);
    if (policy && !onlyExcludedChanges(subject)) attempt(() => guardSubject(subject, policy, "update", runner));
  }
  if (conflicts.length > 0) throw flushConflict(runner, conflicts, undefined);
}

/** The conflict entry of a per-row check's error (a copy of its id, without the guard TypeORM's carries). */
function conflictOfError(error: OptimisticLockError): RowConflict {
  const { entityName, expectedVersion, actualVersion } = error;
  const id = plainId(error.id as ObjectLiteral);
  return isGoneRowConflict(error)
    ? { entityName, id, expectedVersion, deleted: true }
    : { entityName, id, expectedVersion, actualVersion };
}

/**
 * The soft remove (recover) subjects whose rows the pre-load did not find are refused
 * (refuseChangeOfGoneRow); with batchWrites, every such row is named in one error, as for the
 * conflicts a save's pre-load sees (refuseAllConflictsSeenBeforeWriting).
 */
function refuseChangesOfGoneRows(loader: DatabaseEntityLoaderLike, operation: "soft-remove" | "recover"): void {
  const runner = loader.queryRunner;
  const installation = installationOf(dataSourceOf(runner));
  if (!installation) return;
  const conflicts: RowConflict[] = [];
  for (const subject of loader.subjects) {
    const changed = operation === "soft-remove" ? subject.canBeSoftRemoved : subject.canBeRecovered;
    const policy = changed ? installation.policies.of(subject.metadata) : undefined;
    if (!policy) continue;
    try {
      refuseChangeOfGoneRow(subject, policy, operation, runner);
    } catch (error) {
      if (!installation.batching || !(error instanceof OptimisticLockError)) throw error;
      const { entityName, expectedVersion } = error;
      conflicts.push({ entityName, id: plainId(error.id as ObjectLiteral), expectedVersion, deleted: true });
    }
  }
  if (conflicts.length > 0) throw flushConflict(runner, conflicts, undefined, "", operation);
}

function rememberSavedVersions(executor: SubjectExecutorLike): void {
  const installation = installationOf(dataSourceOf(executor.queryRunner));
  if (!installation) return;
  const checked = hasCommitChecks(executor.queryRunner);
  for (const subject of [
    ...executor.insertSubjects,
    ...executor.updateSubjects,
    ...executor.recoverSubjects,
    ...executor.softRemoveSubjects,
  ]) {
    if (!subject.entity) {
      // Guarded only when read under OPTIMISTIC (guardOfRowReadUnderOptimistic): TypeORM added `version + 1`.
      const guard = checked ? guardOf(subject.identifier) : undefined;
      if (guard) {
        const id = guard.metadata.getEntityIdMap(guard.id);
        noteOwnVersionWrite(executor.queryRunner, guard.metadata, id, guard.expected, guard.expected + 1);
      }
      continue;
    }
    const policy = installation.policies.of(subject.metadata);
    if (!policy) continue;
    // TypeORM merged back what the driver returned (a number, or a string for bigint): the
    // property gets its declared type again.
    const version = settleVersion(policy.column, subject.entity);
    if (version === undefined) continue;
    rememberLoadedVersion(subject.entity, version);
    // The row moved from the version its UPDATE was checked against: a commit-time check of
    // another copy of it must not take this transaction's own write for another's.
    const guard = checked ? guardOf(subject.identifier) : undefined;
    if (guard) {
      const id = subject.metadata.getEntityIdMap(subject.entity);
      noteOwnVersionWrite(executor.queryRunner, subject.metadata, id, guard.expected, version);
    }
  }
  // A row this transaction deleted has no lock left to check (TypeORM has cleared the entity's id: the guard keeps it).
  for (const subject of checked ? executor.removeSubjects : []) {
    const guard = guardOf(subject.identifier);
    if (guard)
      noteOwnRemoval(executor.queryRunner, guard.metadata, guard.metadata.getEntityIdMap(guard.id), guard.expected);
  }
}
