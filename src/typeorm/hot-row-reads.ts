/**
 * The reads of a retry attempt that return a hot row (one that conflicted in an earlier attempt)
 * run as PESSIMISTIC_WRITE reads: the row is locked, and read as it is now, before the attempt
 * changes it, so the attempt cannot lose the same race again. Reads that do not return a hot row
 * stay optimistic, as do reads outside a transaction (a lock would end with the statement).
 */
import type { EntityMetadata, ObjectLiteral, QueryRunner } from "typeorm";
import type { WaitPolicy } from "../dialect/lock-dialect";
import { LockTimeoutError } from "../errors";
import { type HotRows, noteHotRowLockTimeout } from "../hot-rows";
import type { Installation } from "../installation";
import { LockMode } from "../lock-mode";
import type { LockRequest } from "../lock-request";
import { isKeyValue, rowKey } from "../row-ids";
import { transactionNumberOf } from "../transaction-numbers";
import { serverDialectOf } from "./locking-reads";

type Loaded = { entities: ObjectLiteral[] };

/** One entity SELECT, as the select hook can run it: as written, or under a lock request. @internal */
export interface HotRowRead {
  metadata: EntityMetadata;
  /** The `where` of its find options, when it came from `find*()`: it may name the rows it reads. */
  where: unknown;
  plain(): Promise<Loaded>;
  locked(request: LockRequest): Promise<Loaded>;
}

/** The hot rows locked by the transaction a runner has open. */
const held = new WeakMap<QueryRunner, { transaction: number | undefined; keys: Set<string> }>();

/**
 * Runs a read of an entity that has hot rows in this attempt. A read whose find options name
 * only other rows by primary key runs as written; one that names a hot row is locked at once;
 * any other is run as written first and, if it returned a hot row not yet locked, run again
 * locked (so a query-builder read of other rows costs nothing more than one look at its result).
 *
 * @internal
 */
export async function readWithHotRows(
  queryRunner: QueryRunner,
  installation: Installation,
  hot: HotRows,
  ids: readonly ObjectLiteral[],
  read: HotRowRead,
): Promise<Loaded> {
  const { metadata } = read;
  const locked = heldBy(queryRunner);
  const pending = new Set(ids.map((id) => keyOf(metadata, id)).filter((key) => !locked.has(key)));
  if (pending.size === 0) return read.plain();
  const named = keysNamedBy(metadata, read.where);
  if (named && !named.some((key) => pending.has(key))) return read.plain();
  const request = await escalation(queryRunner, installation, hot);
  if (!request) return read.plain();
  if (!named) {
    const probe = await read.plain();
    if (!probe.entities.some((entity) => pending.has(keyOf(metadata, entity)))) return probe;
  }
  const result = await read.locked(request).catch((error: unknown) => {
    if (error instanceof LockTimeoutError) noteHotRowLockTimeout(error);
    throw error;
  });
  for (const entity of result.entities) locked.add(keyOf(metadata, entity));
  return result;
}

/**
 * The lock a hot row is read with: PESSIMISTIC_WRITE, waiting as asked (never NOWAIT or SKIP
 * LOCKED, which would fail or hide the row) and never past the retry's time budget. None on a
 * Galera node not opted in to node-local locks: there the row stays optimistic.
 */
async function escalation(
  queryRunner: QueryRunner,
  installation: Installation,
  hot: HotRows,
): Promise<LockRequest | undefined> {
  const dialect = await serverDialectOf(queryRunner, installation);
  if (dialect.nodeLocalLocks && installation.options.galera?.pessimistic !== "node-local") {
    hot.unlockable = true;
    return undefined;
  }
  const configured = installation.defaultWait?.kind === "wait" ? installation.defaultWait : undefined;
  let wait: WaitPolicy = hot.wait ?? configured ?? { kind: "default" };
  if (hot.deadline !== undefined) {
    const left = Math.max(1, Math.floor(hot.deadline - performance.now()));
    if (wait.kind !== "wait" || wait.ms > left) wait = { kind: "wait", ms: left };
  }
  return { mode: LockMode.PESSIMISTIC_WRITE, wait };
}

function heldBy(queryRunner: QueryRunner): Set<string> {
  const transaction = transactionNumberOf(queryRunner);
  let entry = held.get(queryRunner);
  if (!entry || entry.transaction !== transaction) {
    entry = { transaction, keys: new Set() };
    held.set(queryRunner, entry);
  }
  return entry.keys;
}

/** The library's key of the row an id map or a loaded entity names (both give the same). */
function keyOf(metadata: EntityMetadata, idOrEntity: ObjectLiteral): string {
  return rowKey(metadata, metadata.getEntityIdMap(idOrEntity));
}

/**
 * The rows a find's `where` names by primary key (each branch of a list naming one), or
 * `undefined` when some branch does not name a single row by plain key values (an `In([...])`,
 * part of a composite key, no `where` at all), or when the list is empty: TypeORM then reads
 * every row.
 */
function keysNamedBy(metadata: EntityMetadata, where: unknown): string[] | undefined {
  const branches = (Array.isArray(where) ? where : [where]) as ObjectLiteral[];
  // getEntityValue() reads nothing from null or undefined (no where): that names no row either.
  const namesOneRow = (branch: ObjectLiteral) =>
    metadata.primaryColumns.every((column) => isKeyValue(column.getEntityValue(branch)));
  if (branches.length === 0 || !branches.every(namesOneRow)) return undefined;
  return branches.map((branch) => keyOf(metadata, branch));
}
