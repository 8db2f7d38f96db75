/**
 * The batched UPDATE of each database family: many rows of one table, each with its own keys,
 * held version and new values, written by one statement that matches a row only where its
 * version is still the held one. The dialects (postgres.ts, sqlite.ts, mysql.ts, mariadb.ts) use
 * these; nothing else renders them.
 */
import type { BatchedColumn, BatchedUpdateShape, BatchedUpdateSql } from "./lock-dialect";

const T = '"_tl_t"';
const V = '"_tl_v"';

/** The parameters of row `row`, each rendered by `cell(placeholder, column)`. */
function rowCells(
  shape: BatchedUpdateShape,
  row: number,
  cell: (placeholder: string, column: BatchedColumn) => string,
): string[] {
  const columns = [...shape.keys, shape.version, ...shape.values];
  return columns.map((column, i) => cell(shape.placeholder(row * columns.length + i), column));
}

/**
 * PostgreSQL: `UPDATE t SET .. FROM (VALUES ..) v WHERE t.id = v.id AND t.version = v.version
 * RETURNING t.id`. Parameters arrive untyped, so the first row casts each to its column's type
 * (the other rows take the types of the first). A value column whose type TypeORM does not name
 * (an enum: its type is named per table) travels as text and gets the column's own type from the
 * table's row type (`json_populate_record(NULL::t, ..)`), as an untyped parameter would; a key or
 * version of such a type cannot be batched.
 *
 * @example
 * ```ts
 * renderPostgresBatchedUpdate(shape).sql;
 * // UPDATE "order" AS "_tl_t" SET "status" = "_tl_v"."c2", "version" = "_tl_t"."version" + 1
 * // FROM (VALUES (CAST($1 AS integer), CAST($2 AS integer), CAST($3 AS character varying)), ($4, $5, $6))
 * // AS "_tl_v"("c0", "c1", "c2") WHERE "_tl_t"."id" = "_tl_v"."c0" AND "_tl_t"."version" = "_tl_v"."c1" RETURNING "_tl_t"."id"
 * ```
 *
 * @internal
 */
export function renderPostgresBatchedUpdate(shape: BatchedUpdateShape): BatchedUpdateSql | undefined {
  const columns = [...shape.keys, shape.version, ...shape.values];
  if ([...shape.keys, shape.version].some((c) => c.type === undefined)) return undefined;
  const rows: string[] = [];
  for (let row = 0; row < shape.rows; row++) {
    // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); a cast on every row types them as the first row's does
    const cells = rowCells(shape, row, (p, c) => (row === 0 ? `CAST(${p} AS ${c.type ?? "text"})` : p));
    rows.push(`(${cells.join(", ")})`);
  }
  const names = columns.map((_, i) => `"c${i}"`);
  const source = (i: number) => {
    const column = columns[i];
    // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); a typed value comes back unchanged through json and the row type, the direct reference only spares the round trip
    if (column.type !== undefined) return `${V}."c${i}"`;
    const key = `'${column.key.replace(/'/g, "''")}'`;
    const typed = `json_populate_record(NULL::${shape.table}, json_build_object(${key}, ${V}."c${i}"))`;
    return `(${typed}).${column.name}`;
  };
  const sql =
    `UPDATE ${shape.table} AS ${T} SET ${assignments(shape, (c) => c.name, source).join(", ")} ` +
    `FROM (VALUES ${rows.join(", ")}) AS ${V}(${names.join(", ")}) ` +
    `WHERE ${matches(shape, (i) => `${V}."c${i}"`)} ` +
    `RETURNING ${[...shape.keys.map((k) => k.name), ...shape.returning].map((c) => `${T}.${c}`).join(", ")}`;
  return { sql, reports: "rows" };
}

/**
 * SQLite 3.35+: `UPDATE t SET .. FROM (VALUES ..) WHERE .. RETURNING`; a VALUES list names its
 * columns `column1`, `column2`, ...; RETURNING sees the target table only.
 *
 * @example
 * ```ts
 * renderSqliteBatchedUpdate(shape).sql;
 * // UPDATE "order" AS "_tl_t" SET "status" = "_tl_v"."column3", "version" = "_tl_t"."version" + 1
 * // FROM (VALUES (?, ?, ?), (?, ?, ?)) AS "_tl_v" WHERE "_tl_t"."id" = "_tl_v"."column1" AND ... RETURNING "id"
 * ```
 *
 * @internal
 */
export function renderSqliteBatchedUpdate(shape: BatchedUpdateShape): BatchedUpdateSql {
  const rows: string[] = [];
  for (let row = 0; row < shape.rows; row++) rows.push(`(${rowCells(shape, row, (p) => p).join(", ")})`);
  const column = (i: number) => `${V}."column${i + 1}"`;
  const sql =
    `UPDATE ${shape.table} AS ${T} SET ${assignments(shape, (c) => c.name, column).join(", ")} ` +
    `FROM (VALUES ${rows.join(", ")}) AS ${V} ` +
    `WHERE ${matches(shape, column)} ` +
    `RETURNING ${[...shape.keys.map((k) => k.name), ...shape.returning].join(", ")}`;
  return { sql, reports: "rows" };
}

/**
 * MySQL and MariaDB: `UPDATE (SELECT ? AS c0, .. UNION ALL SELECT ?, ..) v STRAIGHT_JOIN t ON .. SET ..`,
 * checked by its affected-row count (they have no RETURNING on UPDATE). The failure-path probe
 * joins the same rows back, as a locking (current) read so that REPEATABLE READ shows the rows as
 * they are, not as the transaction's snapshot had them: a row that someone else moved to exactly
 * the version this statement writes is told apart from one this statement wrote by comparing the
 * written values.
 *
 * @example
 * ```ts
 * renderMysqlBatchedUpdate(shape, true).sql;
 * // UPDATE (SELECT ? AS `c0`, ? AS `c1`, ? AS `c2` UNION ALL SELECT ?, ?, ?) `_tl_v` STRAIGHT_JOIN `order` `_tl_t`
 * // ON `_tl_t`.`id` = `_tl_v`.`c0` AND `_tl_t`.`version` = `_tl_v`.`c1` SET `_tl_t`.`status` = `_tl_v`.`c2`, ...
 * ```
 *
 * @internal
 */
export function renderMysqlBatchedUpdate(shape: BatchedUpdateShape, jsonType: boolean): BatchedUpdateSql {
  const t = "`_tl_t`";
  const v = "`_tl_v`";
  const derived = (numbered: boolean) => {
    const rows: string[] = [];
    for (let row = 0; row < shape.rows; row++) {
      // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); a UNION takes its column names from its first SELECT, later aliases are ignored
      const cells = rowCells(shape, row, (p) => p).map((p, i) => (row === 0 ? `${p} AS \`c${i}\`` : p));
      // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); the row number is read by the probe only, the UPDATE names its columns, and later aliases are ignored
      if (numbered) cells.unshift(row === 0 ? `${row} AS \`_tl_n\`` : String(row));
      rows.push(`SELECT ${cells.join(", ")}`);
    }
    return `(${rows.join(" UNION ALL ")}) ${v}`;
  };
  const column = (i: number) => `${v}.\`c${i}\``;
  const on = matches(shape, column, t);
  // The rows' list first and STRAIGHT_JOIN: InnoDB locks every row an UPDATE reads, and on a small
  // table the optimizer would rather scan the table than look each row up by its key, locking
  // rows other transactions hold (16 workers on 4 rows deadlocked 80 times where the per-row
  // UPDATEs never did). In this order each row is read by its primary key, and only those rows lock.
  // Stryker disable BooleanLiteral: equivalent (docs/testing.md); the UPDATE names the columns it reads, a row number beside them is unused
  const sql =
    `UPDATE ${derived(false)} STRAIGHT_JOIN ${shape.table} ${t} ON ${on} ` +
    `SET ${assignments(shape, (c) => `${t}.${c.name}`, column, t).join(", ")}`;
  // Stryker restore BooleanLiteral
  const first = shape.keys.length + 1;
  const written = [
    `${t}.${shape.version.name} <=> ${column(shape.keys.length)} + 1`,
    ...shape.values.map(
      (c, i) => `${t}.${c.name} <=> ${c.json && jsonType ? `CAST(${column(first + i)} AS JSON)` : column(first + i)}`,
    ),
    // A soft remove (recover) writes no value to compare, but a row it wrote left the state it asked for.
    ...shape.conditions.map((c) => `NOT (${t}.${c.column} ${c.sql})`),
  ];
  const keysOn = shape.keys.map((k, i) => `${t}.${k.name} = ${column(i)}`).join(" AND ");
  const probe =
    `SELECT ${v}.\`_tl_n\` AS \`_tl_n\`, ${t}.${shape.version.name} AS \`_tl_found\`, ` +
    `(${written.join(" AND ")}) AS \`_tl_ours\` FROM ${derived(true)} LEFT JOIN ${shape.table} ${t} ON ${keysOn} LOCK IN SHARE MODE`;
  return { sql, reports: "count", probe };
}

/** `col = v.col` for each changed column, the version bump and the stamps. */
function assignments(
  shape: BatchedUpdateShape,
  target: (column: BatchedColumn) => string,
  source: (index: number) => string,
  table = T,
): string[] {
  const first = shape.keys.length + 1;
  return [
    ...shape.values.map((c, i) => `${target(c)} = ${source(first + i)}`),
    `${target(shape.version)} = ${table}.${shape.version.name} + 1`,
    ...shape.stamps.map((s) => `${target({ name: s.column, key: s.column, type: undefined })} = ${s.sql}`),
  ];
}

/** The keys and the held version of the table's row equal the batched row's. */
function matches(shape: BatchedUpdateShape, source: (index: number) => string, table = T): string {
  return [
    ...[...shape.keys, shape.version].map((c, i) => `${table}.${c.name} = ${source(i)}`),
    ...shape.conditions.map((c) => `${table}.${c.column} ${c.sql}`),
  ].join(" AND ");
}
