/**
 * The batched DELETE of each database family: many rows of one table, each matched by its keys
 * and held version, `DELETE FROM t WHERE (id, version) IN ((?, ?), ..)`, one row-value list
 * instead of TypeORM's `(id = ? AND version = ?) OR ..`, which every database plans as one
 * condition per row. The dialects (postgres.ts, sqlite.ts, mysql.ts, mariadb.ts) use these.
 */
import type { BatchedDeleteShape, BatchedDeleteSql } from "./lock-dialect";

/** `(p0, p1), (p2, p3), ..`: `width` parameters per row. */
function tuples(shape: BatchedDeleteShape, width: number, prefix = ""): string {
  const rows: string[] = [];
  for (let row = 0; row < shape.rows; row++) {
    const cells = Array.from({ length: width }, (_, i) => shape.placeholder(row * width + i));
    rows.push(`${prefix}(${cells.join(", ")})`);
  }
  return rows.join(", ");
}

function names(columns: BatchedDeleteShape["keys"]): string {
  return `(${columns.map((c) => c.name).join(", ")})`;
}

/**
 * PostgreSQL, SQLite 3.35+ and MariaDB 10.5+: the keys of the deleted rows come back
 * (`RETURNING`), so the stale ones are those missing. SQLite takes a row-value list only as a
 * `VALUES` subquery; PostgreSQL types a parameter only in a row-value list (it compares it with
 * the column). `lock` is appended to the probe for a current read (MariaDB's snapshot would show
 * the versions as the transaction first read them).
 *
 * @example
 * ```ts
 * renderReturningBatchedDelete(shape, "list").sql;
 * // DELETE FROM "order" WHERE ("id", "version") IN (($1, $2), ($3, $4)) RETURNING "id"
 * ```
 *
 * @internal
 */
export function renderReturningBatchedDelete(
  shape: BatchedDeleteShape,
  rowValues: "list" | "values",
  lock = "",
): BatchedDeleteSql {
  return {
    sql: `${deleteStatement(shape, rowValues)} RETURNING ${shape.keys.map((k) => k.name).join(", ")}`,
    reports: "rows",
    probe: probeOf(shape, rowValues, lock),
  };
}

/**
 * MySQL: no RETURNING on DELETE; the affected-row count tells whether every row matched, and the
 * probe (a locking read, so REPEATABLE READ shows the rows as they are) finds the stale ones.
 *
 * @example
 * ```ts
 * renderCountingBatchedDelete(shape).sql; // DELETE FROM `order` WHERE (`id`, `version`) IN ((?, ?), (?, ?))
 * ```
 *
 * @internal
 */
export function renderCountingBatchedDelete(shape: BatchedDeleteShape): BatchedDeleteSql {
  return {
    sql: deleteStatement(shape, "list"),
    reports: "count",
    probe: probeOf(shape, "list", " LOCK IN SHARE MODE"),
  };
}

function deleteStatement(shape: BatchedDeleteShape, rowValues: "list" | "values"): string {
  const list =
    // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); the SQLite the tests run (3.53) takes a row-value list too, the VALUES form is for older ones
    rowValues === "values" ? `VALUES ${tuples(shape, shape.keys.length + 1)}` : tuples(shape, shape.keys.length + 1);
  return `DELETE FROM ${shape.table} WHERE ${names([...shape.keys, shape.version])} IN (${list})`;
}

function probeOf(shape: BatchedDeleteShape, rowValues: "list" | "values", lock: string): string {
  const width = shape.keys.length;
  // Stryker disable next-line ConditionalExpression,StringLiteral: equivalent (docs/testing.md); the SQLite the tests run (3.53) takes a row-value list too, the VALUES form is for older ones
  const list = rowValues === "values" ? `VALUES ${tuples(shape, width)}` : tuples(shape, width);
  const selected = [...shape.keys, shape.version].map((c) => c.name).join(", ");
  return `SELECT ${selected} FROM ${shape.table} WHERE ${names(shape.keys)} IN (${list})${lock}`;
}
