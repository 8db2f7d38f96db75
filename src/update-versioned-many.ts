/**
 * The many-row form of `updateVersioned()`: rows the caller holds at known versions (a bulk edit
 * screen, a CQRS command batch), each with its own patch, written without loading them by one
 * guarded UPDATE per group of rows with the same patched columns (per chunk below the database's
 * parameter limit), with the statements of the batched `save()` (LockDialect.batchedUpdate).
 * Every stale row is named in one {@link OptimisticLockError}, and nothing is kept: the writes
 * run in one transaction (the caller's, if one is active).
 */
import type { DataSource, EntityManager, EntityMetadata, ObjectLiteral, QueryRunner, Repository } from "typeorm";
import type { BatchedUpdateShape, BatchedUpdateSql, LockDialect } from "./dialect";
import { describeValue, LockingConfigurationError, type OptimisticLockError, type RowConflict } from "./errors";
import { installationOf } from "./installation";
import { idCanExist, idMapOf } from "./row-ids";
import {
  columnOf,
  conflictFound,
  type DriverLike,
  escapedTable,
  flushConflict,
  keyStringOf,
  recordKeyString,
  selectByKeys,
  writtenThroughSqlFunction,
} from "./typeorm/batched-writes";
import { noteOwnVersionWrite } from "./typeorm/commit-checks";
import { knownDialectOf } from "./typeorm/error-translation";
import { writeDialectOf } from "./typeorm/locking-reads";
import type { ColumnMetadata } from "./typeorm-types";
import type { UpdatePatch } from "./update-versioned";
import { toVersionNumber } from "./version-value";

/**
 * One row of the many-row form of `updateVersioned()`: its id (a primary key value or an id map),
 * the version the caller holds, and the columns to set. The version is not part of the patch:
 * the statement increments it.
 *
 * @example
 * ```ts
 * const row: VersionedRowUpdate<Order> = { id: 42, version: 3, patch: { status: "SHIPPED" } };
 * ```
 */
export interface VersionedRowUpdate<T extends ObjectLiteral> {
  id: string | number | ObjectLiteral;
  version: number | string;
  patch: UpdatePatch<T>;
}

interface Row {
  index: number;
  id: Record<string, unknown>;
  expected: number;
  /** Key values as bound, and their text form to match returned rows by. */
  keys: unknown[];
  keyString: string;
  values: unknown[];
}

interface Group {
  columns: ColumnMetadata[];
  rows: Row[];
}

/**
 * Writes `rows` (see {@link VersionedRowUpdate}) checked against their held versions and returns
 * their new versions, in the order given. Called by `updateVersioned(repository, rows)`.
 *
 * @internal
 */
export async function updateVersionedRows<T extends ObjectLiteral>(
  repository: Repository<T>,
  rows: readonly VersionedRowUpdate<T>[],
): Promise<number[]> {
  const { metadata, manager } = repository;
  const dataSource = manager.connection;
  const driver = dataSource.driver as unknown as DriverLike;
  const version = metadata.versionColumn;
  const refuse = (reason: string) => refusal(metadata, reason);
  if (!version) throw refuse("the entity has no version column. Mark one with @Versioned().");
  if (!Array.isArray(rows) || rows.length === 0) {
    throw refuse(`give a non-empty list of { id, version, patch }, got ${describeValue(rows)}. Nothing was written.`);
  }
  const dialect = knownDialectOf(dataSource);
  if (!dialect?.batchedUpdate) {
    throw refuse(
      `the ${dataSource.options.type} dialect has no batched UPDATE; call updateVersioned(repository, id, version, patch) per row.`,
    );
  }
  const groups = new Map<string, Group>();
  const expectedOf: number[] = [];
  const seen = new Map<string, number>();
  const unknownIds: RowConflict[] = [];
  rows.forEach((row, index) => {
    if (row === null || typeof row !== "object" || Array.isArray(row)) {
      throw refuse(`row ${index} must be { id, version, patch }, got ${describeValue(row)}. Nothing was written.`);
    }
    refuseOtherEntity(metadata, dataSource, row, index);
    // Stryker disable next-line StringLiteral: wording (toVersionNumber's `what`, declared in another file)
    const expected = toVersionNumber(row.version, `updateVersioned(): the version of ${metadata.name} row ${index}`);
    if (expected === undefined) throw refuse(`row ${index} has no version. Nothing was written.`);
    expectedOf[index] = expected;
    const id = idMapOf(metadata, row.id);
    const columns = patchedColumns(metadata, driver, row.patch, index);
    if (!idCanExist(metadata, row.id)) {
      // A key value no row can have (a fraction for an integer key) names no row.
      unknownIds.push({ entityName: metadata.name, id, expectedVersion: expected, deleted: true });
      return;
    }
    const keys = metadata.primaryColumns.map((k) => driver.preparePersistentValue(k.getEntityValue(id), k));
    const keyString = keyStringOf(keys);
    const twice = seen.get(keyString);
    if (twice !== undefined) {
      throw refuse(
        `rows ${twice} and ${index} both name ${describeValue(id)}: each row may be given once. Nothing was written.`,
      );
    }
    seen.set(keyString, index);
    const values = columns.map((c) => driver.preparePersistentValue(c.getEntityValue(row.patch as ObjectLiteral), c));
    const groupKey = columns.map((c) => c.databaseName).join("\u0000");
    let group = groups.get(groupKey);
    if (!group) {
      group = { columns, rows: [] };
      groups.set(groupKey, group);
    }
    group.rows.push({ index, id, expected, keys, keyString, values });
  });
  if (unknownIds.length > 0)
    throw notRetryable(flushConflict(manager.queryRunner, unknownIds, "write", describeBatch(rows.length)));
  const write = async (runner: QueryRunner) => {
    // The server's own (a `mysql` DataSource may be on MariaDB); the type's told whether one exists.
    const rendering = (await writeDialectOf(runner, installationOf(dataSource))) ?? dialect;
    const conflicts: RowConflict[] = [];
    for (const group of groups.values()) {
      const width = metadata.primaryColumns.length + 1 + group.columns.length;
      const byParameters = Math.floor((rendering.maxParameters ?? 65_535) / width);
      const perStatement = Math.max(
        1,
        Math.min(byParameters, installationOf(dataSource)?.batching?.maxRows ?? byParameters),
      );
      for (let at = 0; at < group.rows.length; at += perStatement) {
        const chunk = group.rows.slice(at, at + perStatement);
        conflicts.push(...(await writeChunk(runner, driver, rendering, metadata, version, group.columns, chunk)));
      }
    }
    // Every chunk ran, so every stale row is named; throwing rolls the transaction back.
    if (conflicts.length > 0) throw notRetryable(flushConflict(runner, conflicts, "write", describeBatch(rows.length)));
    // The transaction's own writes: rows it read under OPTIMISTIC are at expected + 1 at commit.
    for (const group of groups.values()) {
      for (const row of group.rows) noteOwnVersionWrite(runner, metadata, row.id, row.expected, row.expected + 1);
    }
  };
  const active = manager.queryRunner?.isTransactionActive ? manager.queryRunner : undefined;
  if (active) await write(active);
  else await manager.transaction((m: EntityManager) => write(m.queryRunner!));
  return expectedOf.map((expected) => expected + 1);
}

/**
 * The versions were the caller's, not read by this call: running it again with them fails the
 * same way (as the one-row form's StaleVersionError), so retryOnConflict rethrows at once.
 */
function notRetryable(error: OptimisticLockError): OptimisticLockError {
  Object.defineProperty(error, "retryable", { value: false });
  return error;
}

/** Where a conflict was found, for its message: "of 100 rows of updateVersioned() ". */
function describeBatch(rows: number): string {
  return `of ${rows} rows of updateVersioned() `;
}

/** A row that is an entity of another class than the repository's (a mixed list) is the caller's mistake. */
function refuseOtherEntity(metadata: EntityMetadata, dataSource: DataSource, row: object, index: number): void {
  for (const value of [row, (row as { id?: unknown }).id, (row as { patch?: unknown }).patch]) {
    if (value === null || typeof value !== "object") continue;
    const type = value.constructor;
    // Plain objects and lists are no entity; a class of the same table (itself, a single-table child) is this one.
    if (!dataSource.hasMetadata(type)) continue;
    const other = dataSource.getMetadata(type);
    if (other.tableName === metadata.tableName) continue;
    throw new LockingConfigurationError(
      `updateVersioned(${metadata.name} rows): row ${index} holds a ${other.name}; every row must be a ${metadata.name} ` +
        "of this repository (one call per entity). Nothing was written.",
    );
  }
}

/** The error for rows the many-row form cannot take; `reason` only words it. */
function refusal(metadata: EntityMetadata, reason: string): LockingConfigurationError {
  return new LockingConfigurationError(`updateVersioned(${metadata.name} rows): ${reason}`);
}

/** The columns a patch sets; a patch the batched statement cannot write is refused. */
function patchedColumns(metadata: EntityMetadata, driver: DriverLike, patch: unknown, index: number): ColumnMetadata[] {
  const refuse = (reason: string) => refusal(metadata, reason);
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) {
    throw refuse(`the patch of row ${index} is an object of the columns to set, got ${describeValue(patch)}.`);
  }
  const columns = metadata.columns.filter(
    (c) => !c.isVirtual && c.getEntityValue(patch as ObjectLiteral) !== undefined,
  );
  const covered = new Set(columns.map((c) => c.embeddedMetadata?.parentPropertyNames[0] ?? c.propertyName));
  const unknown = Object.keys(patch).filter((key) => !covered.has(key) && (patch as ObjectLiteral)[key] !== undefined);
  if (unknown.length > 0) {
    throw refuse(
      `the patch of row ${index} sets ${unknown.map((k) => `"${k}"`).join(", ")}, which is not a column ` +
        "(relations are set through their foreign key column). Nothing was written.",
    );
  }
  if (columns.length === 0) throw refuse(`the patch of row ${index} sets no column. Nothing was written.`);
  for (const column of columns) {
    const value = column.getEntityValue(patch as ObjectLiteral);
    const why = column.isVersion
      ? "is the version, which the library increments"
      : column.isPrimary
        ? "is a primary key column, which names the row"
        : !column.isUpdate
          ? "is not updatable (update: false)"
          : typeof value === "function"
            ? "is an SQL expression, which the one-row form updateVersioned(repository, id, version, patch) takes"
            : writtenThroughSqlFunction(column, driver)
              ? "is written through an SQL function (a spatial column, SQLite's jsonb), which the one-row form updateVersioned(repository, id, version, patch) does"
              : undefined;
    if (why)
      throw refuse(`the patch of row ${index} sets "${column.propertyPath}", which ${why}. Nothing was written.`);
  }
  // In the entity's column order whatever the patch's key order, so equal sets group together.
  return columns;
}

interface QueryResultLike {
  records?: ObjectLiteral[];
  affected?: number;
}

/** One guarded statement for `rows`; returns the stale ones (one more SELECT, only when some are). */
async function writeChunk(
  runner: QueryRunner,
  driver: DriverLike,
  dialect: LockDialect,
  metadata: EntityMetadata,
  version: ColumnMetadata,
  columns: ColumnMetadata[],
  rows: Row[],
): Promise<RowConflict[]> {
  const rendered = render(driver, dialect, metadata, version, columns, rows.length);
  const parameters = rows.flatMap((row) => [...row.keys, row.expected, ...row.values]);
  const result = (await runner.query(rendered.sql, parameters, true)) as QueryResultLike;
  if (rendered.reports === "rows") {
    const returned = new Set((result.records ?? []).map((r) => recordKeyString(metadata, r)));
    if (returned.size === rows.length) return [];
    return readStale(
      runner,
      driver,
      metadata,
      version,
      rows.filter((row) => !returned.has(row.keyString)),
    );
  }
  if (result.affected === rows.length) return [];
  const probed = (await runner.query(rendered.probe!, parameters)) as ObjectLiteral[];
  const stale = probed
    .filter((record) => Number(record._tl_ours) !== 1)
    .map((record) => conflictOf(metadata, version, rows[Number(record._tl_n)], record._tl_found));
  // The probe names none when a row was rewritten to exactly these values meanwhile: every row, versions unknown.
  return stale.length > 0
    ? stale
    : rows.map((row) => ({ entityName: metadata.name, id: row.id, expectedVersion: row.expected }));
}

function render(
  driver: DriverLike,
  dialect: LockDialect,
  metadata: EntityMetadata,
  version: ColumnMetadata,
  columns: ColumnMetadata[],
  rows: number,
): BatchedUpdateSql {
  const updated = metadata.updateDateColumn;
  const stamps = updated && !columns.includes(updated) ? [updated] : [];
  const shape: BatchedUpdateShape = {
    table: escapedTable(metadata, driver),
    keys: metadata.primaryColumns.map((k) => columnOf(k, driver)),
    version: columnOf(version, driver),
    values: columns.map((c) => columnOf(c, driver)),
    stamps: stamps.map((c) => ({ column: driver.escape(c.databaseName), sql: "CURRENT_TIMESTAMP" })),
    returning: [],
    conditions: [],
    rows,
    // Stryker disable next-line StringLiteral: equivalent (docs/testing.md); the supported drivers' parameters are positional, their names unused
    placeholder: (index) => driver.createParameter(`p${index}`, index),
  };
  const rendered = dialect.batchedUpdate?.(shape);
  if (!rendered) {
    throw new LockingConfigurationError(
      `updateVersioned(${metadata.name} rows): its key or version column has a type the batched UPDATE cannot ` +
        "bind (an enum); call updateVersioned(repository, id, version, patch) per row.",
    );
  }
  return rendered;
}

/** The stale rows of a RETURNING statement with their versions now (one SELECT). */
async function readStale(
  runner: QueryRunner,
  driver: DriverLike,
  metadata: EntityMetadata,
  version: ColumnMetadata,
  stale: Row[],
): Promise<RowConflict[]> {
  const found = await selectByKeys(runner, driver, metadata, stale, [version]);
  return stale.map((row) => conflictOf(metadata, version, row, found.get(row.keyString)?.[version.databaseName]));
}

function conflictOf(metadata: EntityMetadata, version: ColumnMetadata, row: Row, found: unknown): RowConflict {
  return conflictFound({ entityName: metadata.name, id: row.id, expectedVersion: row.expected }, version, found);
}
