/**
 * Batched removes (`batchWrites`): the rows one `remove()` deletes from one table are written by
 * one guarded `DELETE .. WHERE (id, version) IN (..)` per chunk below the database's parameter
 * limit (TypeORM's own one DELETE per table is not split, and fails beyond it: a remove of more
 * than about 32,000 rows on PostgreSQL), and a conflict names every stale row: the keys the
 * DELETE returns (PostgreSQL, SQLite, MariaDB) or its row count (MySQL) tell whether all matched;
 * one more SELECT, on the failure path only, reads the stale rows' versions.
 *
 * A remove whose subjects are not all batchable (an unchecked entity, a tree, a key that is a
 * date or binary) stays on TypeORM's path, only split into chunks of subjects.
 */
import type { EntityMetadata, ObjectLiteral, QueryRunner } from "typeorm";
import type { BatchedDeleteSql, LockDialect } from "../dialect";
import type { RowConflict } from "../errors";
import type { Installation } from "../installation";
import {
  batchableKeys,
  columnOf,
  type DriverLike,
  escapedTable,
  flushConflict,
  keyStringOf,
  recordKeyString,
  rowConflict,
  unknownConflict,
} from "./batched-writes";
import { dataSourceOf, type SubjectExecutorLike, type SubjectLike } from "./internals";
import { writeDialectOf } from "./locking-reads";
import type { WriteGuard } from "./write-guards";

interface RemoveRow {
  guard: WriteGuard;
  keys: unknown[];
  keyString: string;
}

/**
 * Deletes the flush's remove subjects in batches, or runs `writeRest` (TypeORM's remove step)
 * on chunks of them when they cannot all batch.
 *
 * @internal
 */
export async function removeInBatches(
  executor: SubjectExecutorLike,
  installation: Installation,
  guardOf: (subject: SubjectLike) => WriteGuard | undefined,
  writeRest: () => Promise<unknown>,
): Promise<void> {
  const runner = executor.queryRunner;
  const dataSource = dataSourceOf(runner);
  const driver = dataSource.driver as unknown as DriverLike;
  // MySQL and MariaDB share driver types; only MariaDB returns the keys a DELETE removed.
  const dialect = await writeDialectOf(runner, installation);
  const maxParameters = dialect?.maxParameters ?? 65_535;
  const groups = dialect?.batchedDelete ? groupsOf(executor.removeSubjects, guardOf, driver) : undefined;
  if (!dialect?.batchedDelete || !groups) {
    const width = Math.max(...executor.removeSubjects.map((s) => s.metadata.primaryColumns.length + 1));
    await inChunks(executor, perStatement(maxParameters, width, installation), writeRest);
    return;
  }
  for (const [metadata, rows] of groups) {
    const size = perStatement(maxParameters, metadata.primaryColumns.length + 1, installation);
    for (let at = 0; at < rows.length; at += size) {
      await deleteChunk(runner, driver, dialect, metadata, rows.slice(at, at + size));
    }
  }
}

function perStatement(maxParameters: number, width: number, installation: Installation): number {
  const byParameters = Math.floor(maxParameters / width);
  return Math.max(1, Math.min(byParameters, installation.batching?.maxRows ?? byParameters));
}

/** TypeORM's remove step on consecutive chunks of the subjects (its order kept), the full list restored after. */
async function inChunks(executor: SubjectExecutorLike, size: number, writeRest: () => Promise<unknown>) {
  const all = executor.removeSubjects;
  if (all.length <= size) {
    await writeRest();
    return;
  }
  try {
    for (let at = 0; at < all.length; at += size) {
      executor.removeSubjects = all.slice(at, at + size);
      await writeRest();
    }
  } finally {
    executor.removeSubjects = all;
  }
}

/** The subjects by entity, in TypeORM's order of first appearance, or `undefined` when one cannot batch. */
function groupsOf(
  subjects: readonly SubjectLike[],
  guardOf: (subject: SubjectLike) => WriteGuard | undefined,
  driver: DriverLike,
): Map<EntityMetadata, RemoveRow[]> | undefined {
  const groups = new Map<EntityMetadata, RemoveRow[]>();
  for (const subject of subjects) {
    const guard = guardOf(subject);
    const keys = guard && !subject.metadata.treeType ? batchableKeys(subject, driver) : undefined;
    if (!guard || !keys) return undefined;
    let rows = groups.get(subject.metadata);
    if (!rows) {
      rows = [];
      groups.set(subject.metadata, rows);
    }
    rows.push({ guard, keys, keyString: keyStringOf(keys) });
  }
  return groups;
}

function render(
  driver: DriverLike,
  dialect: LockDialect,
  metadata: EntityMetadata,
  version: WriteGuard["column"],
  rows: number,
) {
  return dialect.batchedDelete!({
    table: escapedTable(metadata, driver),
    keys: metadata.primaryColumns.map((k) => columnOf(k, driver)),
    version: columnOf(version, driver),
    rows,
    placeholder: (index) => driver.createParameter(`p${index}`, index),
  }) as BatchedDeleteSql;
}

async function deleteChunk(
  runner: QueryRunner,
  driver: DriverLike,
  dialect: LockDialect,
  metadata: EntityMetadata,
  rows: RemoveRow[],
): Promise<void> {
  const version = rows[0].guard.column;
  const rendered = render(driver, dialect, metadata, version, rows.length);
  const parameters = rows.flatMap((row) => [...row.keys, row.guard.expected]);
  const result = (await runner.query(rendered.sql, parameters, true)) as {
    records?: ObjectLiteral[];
    affected?: number;
  };
  const keyOf = (record: ObjectLiteral) => recordKeyString(metadata, record);
  let suspects = rows;
  if (rendered.reports === "rows") {
    const deleted = new Set((result.records ?? []).map(keyOf));
    if (deleted.size === rows.length) return;
    suspects = rows.filter((row) => !deleted.has(row.keyString));
  } else if (result.affected === rows.length) {
    return;
  }
  // Failure path only: the stale rows as they are now.
  const probe = render(driver, dialect, metadata, version, suspects.length).probe;
  const found = new Map(
    (
      (await runner.query(
        probe,
        suspects.flatMap((row) => row.keys),
      )) as ObjectLiteral[]
    ).map((r) => [keyOf(r), r]),
  );
  const conflicts: RowConflict[] = [];
  const missing: RemoveRow[] = [];
  for (const row of suspects) {
    const record = found.get(row.keyString);
    if (record) conflicts.push(rowConflict(row, record[version.databaseName]));
    else missing.push(row);
  }
  if (rendered.reports === "rows") {
    conflicts.push(...missing.map((row) => rowConflict(row, undefined)));
  } else if (missing.length > (result.affected ?? 0)) {
    // MySQL: of the rows gone, this DELETE removed `affected`; the others were deleted meanwhile,
    // and which is which cannot be told without RETURNING: named, their state unknown.
    conflicts.push(...missing.map(({ guard }) => unknownConflict(guard)));
  }
  // Stryker disable next-line StringLiteral: wording (flushConflict's `among`, declared in batched-writes.ts)
  const among = `of ${rows.length} rows of one batched DELETE `;
  throw flushConflict(runner, conflicts, "write", among, "remove");
}
