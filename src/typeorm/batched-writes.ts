/**
 * Batched versioned writes (`batchWrites`, on by default): the guarded UPDATEs a
 * flush would send one per row become one statement per group of rows of one entity with the
 * same changed columns (split below the parameter limit). The statement matches a row only at
 * its held version, so the check is the same as the per-row one; the row count it reports (or
 * the rows it returns) tells whether every row matched. On a mismatch one more SELECT, on the
 * failure path only, names every stale row; the error is thrown before the flush ends, so its
 * transaction keeps nothing.
 *
 * Subjects the batch cannot write (see {@link batchableChanges}) stay on TypeORM's per-row path,
 * which runs after the batches, unchanged.
 */
import type { DataSource, EntityMetadata, ObjectLiteral, QueryRunner } from "typeorm";
import type { BatchedColumn, BatchedUpdateShape, LockDialect } from "../dialect";
import { jsonOf, LockingConfigurationError, OptimisticLockError, type RowConflict } from "../errors";
import type { Installation } from "../installation";
import { raisedIn } from "../transaction-numbers";
import type { ColumnMetadata } from "../typeorm-types";
import { versionCodecOf } from "../version-codec";
import { dataSourceOf, type SubjectExecutorLike, type SubjectLike } from "./internals";
import { writeDialectOf } from "./locking-reads";
import { deepMerge, type WriteGuard } from "./write-guards";

/** The driver methods a batch uses (TypeORM's `Driver`, both lines). @internal */
export interface DriverLike {
  escape(name: string): string;
  createParameter(name: string, index: number): string;
  preparePersistentValue(value: unknown, column: ColumnMetadata): unknown;
  prepareHydratedValue(value: unknown, column: ColumnMetadata): unknown;
  normalizeType(column: { type?: unknown; length?: unknown; precision?: unknown; scale?: unknown }): string;
  spatialTypes?: unknown[];
  /** TypeORM 1.x: the SQL a value of `column` is written as (`jsonb(?)` for SQLite's jsonb). */
  wrapWithJsonFunction?(value: string, column: ColumnMetadata, jsonb?: boolean): string;
  options: { type: string };
}

interface BatchRow {
  subject: SubjectLike;
  guard: WriteGuard;
  /** Key values as the statement binds them, and their string form to match returned rows by. */
  keys: unknown[];
  keyString: string;
  values: unknown[];
}

interface Group {
  metadata: EntityMetadata;
  columns: ColumnMetadata[];
  rows: BatchRow[];
  operation: BatchedOperation;
}

/** How many rows a group needs before it is batched: one row stays on the per-row path. */
const MIN_ROWS = 2;
// Stryker disable next-line StringLiteral: with the check it marks (batchableChanges)
const SUBJECT_MARK = Symbol.for("Subject");

/**
 * Writes the batchable update subjects of a flush, then runs `writeRest` (TypeORM's own update
 * step) for the others with `executor.updateSubjects` narrowed to them, restoring the full list
 * afterwards (the after-listeners and the generated-column merge read it).
 *
 * @internal
 */
export async function updateInBatches(
  executor: SubjectExecutorLike,
  installation: Installation,
  guardOf: (subject: SubjectLike) => WriteGuard | undefined,
  writeRest: () => Promise<unknown>,
  operation: BatchedOperation = "update",
): Promise<void> {
  const list = LISTS[operation];
  const runner = executor.queryRunner;
  const dataSource = dataSourceOf(runner);
  const { batching } = installation;
  // Batching off: TypeORM's statements, and no question to the server.
  const dialect = batching && (await writeDialectOf(runner, installation));
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent (docs/testing.md); without batching there is no dialect either, the check narrows the type
  if (!batching || !dialect?.batchedUpdate) {
    await writeRest();
    return;
  }
  const driver = dataSource.driver as unknown as DriverLike;
  const { groups, rest } = groupSubjects(executor[list], guardOf, driver, operation);
  const batches: Group[] = [];
  for (const group of groups) {
    if (group.rows.length >= MIN_ROWS && shapeOf(group, driver, dialect, 1) !== undefined) batches.push(group);
    else rest.push(...group.rows.map((row) => row.subject));
  }
  // Stryker disable next-line ConditionalExpression,BlockStatement: equivalent (docs/testing.md); a shortcut, the filtering below leaves every subject to writeRest alike
  if (batches.length === 0) {
    await writeRest();
    return;
  }
  const reload = executor.options?.reload !== false;
  for (const group of batches) {
    const width = group.metadata.primaryColumns.length + 1 + group.columns.length;
    const byParameters = Math.floor((dialect.maxParameters ?? 65_535) / width);
    const perStatement = Math.max(1, Math.min(byParameters, batching.maxRows ?? byParameters));
    for (const row of group.rows) row.subject.createValueSetAndPopChangeMap?.();
    for (let at = 0; at < group.rows.length; at += perStatement) {
      await writeChunk(runner, dataSource, dialect, group, group.rows.slice(at, at + perStatement), reload);
    }
  }
  const all = executor[list];
  // Keep TypeORM's order for the subjects it still writes.
  const left = new Set(rest);
  executor[list] = all.filter((subject) => left.has(subject));
  try {
    await writeRest();
  } finally {
    executor[list] = all;
  }
}

/** The persistence steps that batch: an UPDATE of changed columns, a soft remove, a recover. @internal */
export type BatchedOperation = "update" | "soft-remove" | "recover";

const LISTS = {
  update: "updateSubjects",
  "soft-remove": "softRemoveSubjects",
  recover: "recoverSubjects",
} as const satisfies Record<BatchedOperation, keyof SubjectExecutorLike>;

/** Sorts update subjects into groups (entity + changed columns) and those that cannot batch. */
function groupSubjects(
  subjects: readonly SubjectLike[],
  guardOf: (subject: SubjectLike) => WriteGuard | undefined,
  driver: DriverLike,
  operation: BatchedOperation,
): { groups: Group[]; rest: SubjectLike[] } {
  const groups = new Map<string, Group>();
  const rest: SubjectLike[] = [];
  const seen = new Set<string>();
  for (const subject of subjects) {
    const guard = guardOf(subject);
    const changes = !guard
      ? undefined
      : operation === "update"
        ? batchableChanges(subject, driver)
        : softRemovable(subject)
          ? []
          : undefined;
    const keys = changes ? batchableKeys(subject, driver) : undefined;
    if (!guard || !changes || !keys) {
      rest.push(subject);
      continue;
    }
    const keyString = keyStringOf(keys);
    const rowName = `${subject.metadata.name}\u0000${keyString}`;
    // The same row twice in one flush (two copies of it): the second is written after the first,
    // by the per-row path, and conflicts there exactly as without batching.
    if (seen.has(rowName)) {
      rest.push(subject);
      continue;
    }
    seen.add(rowName);
    const columns = changes.map((change) => change.column);
    const groupKey = `${subject.metadata.name}\u0000${columns.map((c) => c.databaseName).join("\u0000")}`;
    let group = groups.get(groupKey);
    if (!group) {
      group = { metadata: subject.metadata, columns, rows: [], operation };
      groups.set(groupKey, group);
    }
    const values = changes.map((change) => driver.preparePersistentValue(change.value, change.column));
    group.rows.push({ subject, guard, keys, keyString, values });
  }
  return { groups: [...groups.values()], rest };
}

/** A soft remove or recover TypeORM writes as a plain UPDATE of the delete date (not a tree's). */
function softRemovable(subject: SubjectLike): boolean {
  // Stryker disable next-line ConditionalExpression,LogicalOperator,BooleanLiteral: equivalent (docs/testing.md); only a guarded subject gets here, and a guard needs the entity and its id
  if (!subject.entity || !subject.identifier) return false;
  return Boolean(subject.metadata.deleteDateColumn) && !subject.metadata.treeType;
}

/**
 * The changes of a subject, in the entity's column order (TypeORM computes every subject's changes
 * in that order, so rows changing the same columns list them alike), or `undefined` when the
 * subject must take the per-row path: a tree entity (TypeORM maintains the tree per row), a
 * relation change (its value is resolved per row), an SQL expression or a value inserted by the
 * same flush, a column TypeORM would skip or compute (`update: false`, primary, generated), or a
 * value TypeORM writes through an SQL function (spatial columns, SQLite's `jsonb`).
 */
function batchableChanges(
  subject: SubjectLike,
  driver: DriverLike,
): Array<{ column: ColumnMetadata; value: unknown }> | undefined {
  const { metadata } = subject;
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent (docs/testing.md); only a guarded subject gets here, and a guard needs the entity and its id
  if (!subject.entity || !subject.identifier) return undefined;
  if (metadata.treeType) return undefined;
  if (metadata.columns.some((c) => c.asExpression !== undefined)) return undefined;
  const changes: Array<{ column: ColumnMetadata; value: unknown }> = [];
  for (const change of subject.changeMaps) {
    const { column } = change;
    if (!column || change.relation) return undefined;
    if (!column.isUpdate || column.isPrimary || column.isVersion || column.isVirtual) return undefined;
    const value = change.value;
    if (typeof value === "function") return undefined;
    // Stryker disable all: equivalent (docs/testing.md); defensive, TypeORM hands an entity or a subject to a column only in a relation change, refused above
    if (value !== null && typeof value === "object") {
      if ((value as { "@instanceof"?: symbol })["@instanceof"] === SUBJECT_MARK) return undefined;
      if (column.referencedColumn && !(value instanceof Date) && !(value instanceof Uint8Array)) return undefined;
    }
    // Stryker restore all
    if (writtenThroughSqlFunction(column, driver)) return undefined;
    changes.push({ column, value });
  }
  return changes;
}

/**
 * Whether TypeORM writes a value of `column` through an SQL function around its parameter (a
 * spatial column's `ST_GeomFromText(?)`, SQLite's `jsonb(?)` on TypeORM 1.x): a batched statement
 * binds the bare value, which the database would store differently, or refuse.
 *
 * @internal
 */
export function writtenThroughSqlFunction(column: ColumnMetadata, driver: DriverLike): boolean {
  if (driver.spatialTypes?.includes(column.type)) return true;
  // Stryker disable next-line BooleanLiteral: equivalent (docs/testing.md); a driver wraps a jsonb column for reading (false) as for writing (true)
  return driver.wrapWithJsonFunction !== undefined && driver.wrapWithJsonFunction("?", column, true) !== "?";
}

/** The subject's key values as bound, or `undefined` for keys that do not compare as text (dates, binary). @internal */
export function batchableKeys(subject: SubjectLike, driver: DriverLike): unknown[] | undefined {
  const keys: unknown[] = [];
  for (const key of subject.metadata.primaryColumns) {
    const value = driver.preparePersistentValue(key.getEntityValue(subject.identifier!), key);
    if (typeof value !== "number" && typeof value !== "string" && typeof value !== "bigint") return undefined;
    keys.push(value);
  }
  return keys;
}

/** A table's name as a statement writes it: each part of its path (schema, table) escaped. @internal */
export function escapedTable(metadata: EntityMetadata, driver: DriverLike): string {
  return metadata.tablePath
    .split(".")
    .map((part) => driver.escape(part))
    .join(".");
}

/** A column as a batched statement names, types and compares it. @internal */
export function columnOf(column: ColumnMetadata, driver: DriverLike): BatchedColumn {
  let type: string | undefined = driver.normalizeType(column);
  // An enum's database type is one TypeORM names per table and column: the dialect takes it from
  // the table's row type (PostgreSQL), an array of enums too (its value travels as array-literal text).
  if (/enum/i.test(String(column.type))) type = undefined;
  else if (column.isArray) type += "[]";
  return {
    name: driver.escape(column.databaseName),
    key: column.databaseName,
    type,
    // A JSON column, not simple-json's text: MySQL compares the one as JSON and the other as text.
    json: column.type === "json",
  };
}

/**
 * The columns the statement stamps and returns, as TypeORM's own statements set them:
 * `updatedAt = CURRENT_TIMESTAMP` (unless the save sets it), and `deletedAt = CURRENT_TIMESTAMP`
 * (soft remove) or `NULL` (recover).
 */
function stampsOf(group: Group): Array<{ column: ColumnMetadata; sql: string }> {
  const stamps: Array<{ column: ColumnMetadata; sql: string }> = [];
  const deleted = group.metadata.deleteDateColumn;
  if (deleted && group.operation !== "update") {
    stamps.push({ column: deleted, sql: group.operation === "soft-remove" ? "CURRENT_TIMESTAMP" : "NULL" });
  }
  const updated = group.metadata.updateDateColumn;
  if (updated && !group.columns.includes(updated)) stamps.push({ column: updated, sql: "CURRENT_TIMESTAMP" });
  return stamps;
}

function shapeOf(group: Group, driver: DriverLike, dialect: LockDialect, rows: number) {
  const stamped = stampsOf(group);
  const shape: BatchedUpdateShape = {
    table: escapedTable(group.metadata, driver),
    keys: group.metadata.primaryColumns.map((k) => columnOf(k, driver)),
    version: columnOf(group.rows[0].guard.column, driver),
    values: group.columns.map((c) => columnOf(c, driver)),
    stamps: stamped.map((s) => ({ column: driver.escape(s.column.databaseName), sql: s.sql })),
    returning: stamped.map((s) => driver.escape(s.column.databaseName)),
    // As TypeORM's soft remove (recover): only a row not (still) soft-deleted.
    conditions:
      group.operation === "update"
        ? []
        : [
            {
              column: driver.escape(group.metadata.deleteDateColumn!.databaseName),
              sql: group.operation === "soft-remove" ? "IS NULL" : "IS NOT NULL",
            },
          ],
    rows,
    // Stryker disable next-line StringLiteral: equivalent (docs/testing.md); the supported drivers' parameters are positional, their names unused
    placeholder: (index) => driver.createParameter(`p${index}`, index),
  };
  return dialect.batchedUpdate?.(shape);
}

interface QueryResultLike {
  records?: ObjectLiteral[];
  affected?: number;
}

async function writeChunk(
  runner: QueryRunner,
  dataSource: DataSource,
  dialect: LockDialect,
  group: Group,
  rows: BatchRow[],
  reload: boolean,
): Promise<void> {
  const driver = dataSource.driver as unknown as DriverLike;
  const rendered = shapeOf(group, driver, dialect, rows.length)!;
  const parameters = rows.flatMap((row) => [...row.keys, row.guard.expected, ...row.values]);
  const result = (await runner.query(rendered.sql, parameters, true)) as QueryResultLike;
  const stamped = stampsOf(group).map((s) => s.column);
  if (rendered.reports === "rows") {
    if (!Array.isArray(result.records)) {
      throw new LockingConfigurationError(
        `The ${driver.options.type} driver did not return the rows a batched UPDATE changed, so its version check ` +
          "cannot be verified. Turn batchWrites off for this DataSource.",
      );
    }
    const returned = new Map(result.records.map((r) => [recordKeyString(group.metadata, r), r]));
    if (result.records.length !== rows.length) {
      const stale = rows.filter((row) => !returned.has(row.keyString));
      throw conflictError(runner, group, rows.length, await readStale(runner, driver, group, stale));
    }
    for (const row of rows) settle(row, driver, stamped, returned.get(row.keyString));
    return;
  }
  // Stryker disable next-line ConditionalExpression,BlockStatement: defensive (docs/testing.md); mysql2 and mysql report affected rows for every UPDATE
  if (typeof result.affected !== "number") {
    throw new LockingConfigurationError(
      `The ${driver.options.type} driver did not report how many rows a batched UPDATE changed, so its version ` +
        "check cannot be verified. Use a driver that reports affected rows, or turn batchWrites off.",
    );
  }
  if (result.affected !== rows.length) {
    const probed = (await runner.query(rendered.probe!, parameters)) as ObjectLiteral[];
    const conflicts: RowConflict[] = [];
    for (const record of probed) {
      if (Number(record._tl_ours) === 1) continue;
      const row = rows[Number(record._tl_n)];
      conflicts.push(rowConflict(row, record._tl_found));
    }
    throw conflictError(runner, group, rows.length, conflicts.length > 0 ? conflicts : unknownConflicts(rows));
  }
  // No RETURNING: the stamped columns are read back, as TypeORM's per-row path does.
  const reread =
    reload && stamped.length > 0
      ? await selectByKeys(runner, driver, group.metadata, rows, stamped)
      : new Map<string, ObjectLiteral>();
  for (const row of rows) settle(row, driver, stamped, reread.get(row.keyString));
}

/** Gives the subject what TypeORM's per-row path gives it: the new version and the returned columns. */
function settle(
  row: BatchRow,
  driver: DriverLike,
  returned: ColumnMetadata[],
  record: ObjectLiteral | undefined,
): void {
  const { guard, subject } = row;
  const entity = subject.entity!;
  const generated = deepMerge(
    guard.metadata.getEntityIdMap(entity) ?? {},
    guard.column.createValueMap(versionCodecOf(guard.column).format(guard.expected + 1, guard.held)),
  );
  if (record) {
    for (const column of returned) {
      deepMerge(generated, column.createValueMap(driver.prepareHydratedValue(record[column.databaseName], column)));
    }
  }
  subject.generatedMap = deepMerge(subject.generatedMap ?? {}, generated);
}

/** The text a row's key values are matched by, as bound or as a statement returned them. @internal */
export function keyStringOf(keys: readonly unknown[]): string {
  return keys.map(String).join("\u0000");
}

/** {@link keyStringOf} a returned or selected record's key columns. @internal */
export function recordKeyString(metadata: EntityMetadata, record: ObjectLiteral): string {
  return keyStringOf(metadata.primaryColumns.map((k) => record[k.databaseName]));
}

/**
 * `SELECT keys, columns FROM t WHERE keys IN (rows)`, the records keyed by {@link recordKeyString}:
 * a failure path's read of stale rows, and MySQL's re-read of stamps. @internal
 */
export async function selectByKeys(
  runner: QueryRunner,
  driver: DriverLike,
  metadata: EntityMetadata,
  rows: readonly { keys: readonly unknown[] }[],
  columns: ColumnMetadata[],
): Promise<Map<string, ObjectLiteral>> {
  const keys = metadata.primaryColumns;
  const parameters: unknown[] = [];
  const bind = (value: unknown) => {
    const index = parameters.push(value) - 1;
    // Stryker disable next-line StringLiteral: equivalent (docs/testing.md); the supported drivers' parameters are positional, their names unused
    return driver.createParameter(`p${index}`, index);
  };
  const where =
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent (docs/testing.md); both forms select the rows asked for (the first key alone a superset), matched back by their whole key
    keys.length === 1
      ? `${driver.escape(keys[0].databaseName)} IN (${rows.map((row) => bind(row.keys[0])).join(", ")})`
      : rows
          .map(
            (row) => `(${keys.map((k, i) => `${driver.escape(k.databaseName)} = ${bind(row.keys[i])}`).join(" AND ")})`,
          )
          .join(" OR ");
  const table = escapedTable(metadata, driver);
  const selected = [...keys, ...columns].map((c) => driver.escape(c.databaseName)).join(", ");
  const records = (await runner.query(
    `SELECT ${selected} FROM ${table} WHERE ${where}`,
    parameters,
  )) as ObjectLiteral[];
  return new Map(records.map((record) => [recordKeyString(metadata, record), record]));
}

/** The stale rows of a RETURNING statement with their versions now (one SELECT). */
async function readStale(
  runner: QueryRunner,
  driver: DriverLike,
  group: Group,
  stale: BatchRow[],
): Promise<RowConflict[]> {
  // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); a statement that returned fewer rows than it was given left at least one
  if (stale.length === 0) return [];
  const version = stale[0].guard.column;
  const found = await selectByKeys(runner, driver, group.metadata, stale, [version]);
  return stale.map((row) => rowConflict(row, found.get(row.keyString)?.[version.databaseName]));
}

/** The conflict of a guarded row given the version found for it (none: the row is gone). @internal */
export function rowConflict(row: { guard: WriteGuard }, found: unknown): RowConflict {
  return conflictFound(unknownConflict(row.guard), row.guard.column, found);
}

/** A stale row's conflict given the version found for it now (`null` or `undefined`: the row is gone). @internal */
export function conflictFound(row: RowConflict, version: ColumnMetadata, found: unknown): RowConflict {
  if (found === null || found === undefined) row.deleted = true;
  else row.actualVersion = versionCodecOf(version).parse(found);
  return row;
}

/** A stale row whose version now is not known: its entity, id and the version it was held at. @internal */
export function unknownConflict(guard: WriteGuard): RowConflict {
  return { entityName: guard.metadata.name, id: plainId(guard.id), expectedVersion: guard.expected };
}

/** Should the probe name no row (a row rewritten to exactly these values meanwhile): every row, versions unknown. */
function unknownConflicts(rows: BatchRow[]): RowConflict[] {
  return rows.map(({ guard }) => unknownConflict(guard));
}

/** A copy of an id map without what the hooks attach to TypeORM's own (the guard it carries). @internal */
export function plainId(id: ObjectLiteral): ObjectLiteral {
  return Object.fromEntries(Object.entries(id));
}

/** Rows a many-row conflict's message names; `conflicts` holds them all. */
const LISTED = 10;

function conflictError(runner: QueryRunner, group: Group, rows: number, conflicts: RowConflict[]): OptimisticLockError {
  // Stryker disable next-line StringLiteral: wording (flushConflict's `among`); "write" does not compile
  return flushConflict(runner, conflicts, "write", `of ${rows} rows of one batched UPDATE `, group.operation);
}

/**
 * One OptimisticLockError for the stale rows of a flush (a batched UPDATE's, or those its pre-load
 * saw), with the first as the error's own row and all of them in `conflicts`. `kind` undefined:
 * each row's conflict was published already (the pre-load's per-row checks).
 *
 * @internal
 */
export function flushConflict(
  runner: QueryRunner | undefined,
  conflicts: RowConflict[],
  kind: "write" | undefined,
  // Stryker disable next-line StringLiteral: equivalent (docs/testing.md); the text is a message's only
  among = "",
  operation = "update",
): OptimisticLockError {
  const first = conflicts[0];
  return raisedIn(
    runner,
    new OptimisticLockError({
      entityName: first.entityName,
      id: first.id,
      expectedVersion: first.expectedVersion,
      actualVersion: first.actualVersion,
      operation,
      detail: describeConflicts(conflicts, among),
      conflicts,
    }),
    kind,
    first.deleted === true,
  );
}

/**
 * The conflict's detail for the message: for one row found stale outside a batched UPDATE, whether
 * it is gone; else how many, and the first few rows with what became of each.
 */
function describeConflicts(conflicts: RowConflict[], among: string): string | undefined {
  if (conflicts.length === 1 && !among) return conflicts[0].deleted ? "the row no longer exists" : undefined;
  const listed = conflicts
    .slice(0, LISTED)
    .map(
      (c) =>
        `${c.entityName} ${jsonOf(c.id)} ${c.deleted ? "deleted" : c.actualVersion === undefined ? "changed" : `at ${c.actualVersion}`}`,
    );
  const more = conflicts.length > LISTED ? `, and ${conflicts.length - LISTED} more` : "";
  return `${conflicts.length} rows ${among}were changed or deleted meanwhile: ${listed.join(", ")}${more}`;
}
