/**
 * OPTIMISTIC and OPTIMISTIC_FORCE_INCREMENT: what was read under them is re-checked (or
 * incremented) just before the transaction commits, once per entity per transaction.
 */
import type { EntityMetadata, ObjectLiteral, QueryRunner } from "typeorm";
import { LockMode } from "../lock-mode";
import { rowKey } from "../row-ids";
import { versionCodecOf } from "../version-codec";
import type { Method } from "./internals";
import { patchRunnerPrototypes } from "./runner-prototypes";
import { heldVersion, writeVersion } from "./version-writes";

interface PendingCheck {
  metadata: EntityMetadata;
  entity: ObjectLiteral;
  /** The row's id as it was locked: remove() clears the entity's id, a rolled-back savepoint does not restore it. */
  id: ObjectLiteral | undefined;
  /** The version the entity held when it was locked. */
  lockedVersion: number;
  forceIncrement: boolean;
  /**
   * The versions this transaction's own writes moved the row to since it was locked, each with
   * the transaction depth it was written at (a savepoint rolled back takes its writes with it);
   * `removed` when the write deleted the row.
   */
  own?: { version: number; depth: number; removed?: true }[];
}

const pending = new WeakMap<QueryRunner, Map<string, PendingCheck>>();

/** Queues the commit-time check of an entity read under OPTIMISTIC or OPTIMISTIC_FORCE_INCREMENT. @internal */
export function queueCommitCheck(
  queryRunner: QueryRunner,
  metadata: EntityMetadata,
  entity: ObjectLiteral,
  mode: string,
): void {
  const lockedVersion = heldVersion(metadata, entity, mode);
  const checks = pending.get(queryRunner) ?? new Map<string, PendingCheck>();
  pending.set(queryRunner, checks);
  const id = metadata.getEntityIdMap(entity);
  const key = rowKey(metadata, id);
  const forceIncrement = mode === LockMode.OPTIMISTIC_FORCE_INCREMENT;
  const existing = checks.get(key);
  // One check per entity per transaction; a force increment asked for anywhere wins.
  checks.set(key, {
    metadata,
    entity: existing?.entity ?? entity,
    id,
    lockedVersion: existing?.lockedVersion ?? lockedVersion,
    forceIncrement: forceIncrement || existing?.forceIncrement === true,
    own: existing?.own,
  });
}

/**
 * Notes that this transaction moved a row from version `from` to `to` (a save, an increment),
 * whichever copy of the row it wrote through. A check queued for the row then expects `to` at
 * commit: another copy read under a lock still holds `from`, and its own transaction's write is
 * no conflict. Only a move from the version the check expects counts: a write that started from
 * a later one means another transaction had moved the row meanwhile, and the check fails.
 *
 * @internal
 */
export function noteOwnVersionWrite(
  queryRunner: QueryRunner,
  metadata: EntityMetadata,
  id: ObjectLiteral | undefined,
  from: number,
  to: number,
): void {
  noteOwnWrite(queryRunner, metadata, id, from, { version: to, depth: depthOf(queryRunner) });
}

/**
 * Notes that this transaction deleted a row, checked against version `from`. A check queued for
 * the row is then dropped at commit, as JPA drops the lock of an entity removed in its own
 * transaction: the lock protected a row the transaction no longer has. A removal from a later
 * version than the check expects (another transaction had moved the row) does not count, and the
 * check fails on the row being gone.
 *
 * @internal
 */
export function noteOwnRemoval(
  queryRunner: QueryRunner,
  metadata: EntityMetadata,
  id: ObjectLiteral | undefined,
  from: number,
): void {
  noteOwnWrite(queryRunner, metadata, id, from, { version: from, depth: depthOf(queryRunner), removed: true });
}

function noteOwnWrite(
  queryRunner: QueryRunner,
  metadata: EntityMetadata,
  id: ObjectLiteral | undefined,
  from: number,
  write: NonNullable<PendingCheck["own"]>[number],
): void {
  const check = pending.get(queryRunner)?.get(rowKey(metadata, id));
  if (!check || from !== expectedVersion(check)) return;
  check.own = [...(check.own ?? []), write];
}

/** The version a commit-time check queued for the row expects it at now, if one is queued. @internal */
export function checkedVersionOf(
  queryRunner: QueryRunner,
  metadata: EntityMetadata,
  id: ObjectLiteral | undefined,
): number | undefined {
  const check = pending.get(queryRunner)?.get(rowKey(metadata, id));
  return check && expectedVersion(check);
}

/** How deep the runner's transaction is nested: 0 outside one, 1 in it, 2 in a savepoint of it... */
function depthOf(queryRunner: QueryRunner): number {
  return (queryRunner as unknown as { transactionDepth?: number }).transactionDepth ?? 0;
}

/** Whether the runner's transaction has commit-time checks (a save then notes the versions it writes). @internal */
export function hasCommitChecks(queryRunner: QueryRunner): boolean {
  return pending.has(queryRunner);
}

/** The version the row must be at for the check: the last one this transaction wrote, else the locked one. */
function expectedVersion(check: PendingCheck): number {
  return check.own?.at(-1)?.version ?? check.lockedVersion;
}

/**
 * Runs the queued checks when a transaction commits (right before its COMMIT, where TypeORM would
 * call a subscriber's beforeTransactionCommit) and forgets them when it rolls back. A runner with
 * nothing queued (nearly all) costs one WeakMap lookup and no await.
 *
 * @internal
 */
export function installCommitChecks(): void {
  patchRunnerPrototypes((proto) => {
    const commit = proto.commitTransaction as Method;
    const rollback = proto.rollbackTransaction as Method;
    proto.commitTransaction = function (this: QueryRunner) {
      if (!pending.has(this)) return commit.call(this);
      return runCommitChecks(this)
        .then(() => commit.call(this))
        .then((result: unknown) => {
          keepReleasedWrites(this);
          return result;
        });
    };
    proto.rollbackTransaction = async function (this: QueryRunner) {
      try {
        await rollback.call(this);
      } finally {
        dropCommitChecks(this);
      }
    };
  });
}

/** Runs the queued checks of the outermost transaction; throws OptimisticLockError on the first conflict. */
async function runCommitChecks(queryRunner: QueryRunner): Promise<void> {
  const depth = depthOf(queryRunner);
  const checks = pending.get(queryRunner);
  if (!checks || depth > 1) return;
  pending.delete(queryRunner);
  for (const check of checks.values()) {
    const { metadata, entity } = check;
    if (check.own?.at(-1)?.removed) continue;
    // Once a write of the row by this transaction was seen, the versions it wrote decide (a copy
    // may hold one that a rolled-back savepoint undid); else the version the entity holds.
    const current = check.own
      ? expectedVersion(check)
      : (versionCodecOf(metadata.versionColumn!).parse(metadata.versionColumn!.getEntityValue(entity)) ??
        check.lockedVersion);
    // Saved in this transaction already: that save incremented the version once, which is the
    // increment a force-increment lock owes; only the re-check remains.
    const increment = check.forceIncrement && current === check.lockedVersion;
    await writeVersion(
      queryRunner,
      metadata,
      entity,
      current,
      increment,
      increment ? "force increment" : "optimistic check",
      "commit",
      { id: check.id },
    );
  }
}

/** A savepoint released: the writes made inside it now belong to the level around it. */
function keepReleasedWrites(queryRunner: QueryRunner): void {
  const depth = depthOf(queryRunner);
  for (const check of pending.get(queryRunner)?.values() ?? []) {
    for (const write of check.own ?? []) write.depth = Math.min(write.depth, depth);
  }
}

/** Forgets the checks of a transaction that ended without them (rolled back). */
function dropCommitChecks(queryRunner: QueryRunner): void {
  const depth = depthOf(queryRunner);
  if (depth === 0) {
    pending.delete(queryRunner);
    return;
  }
  // A savepoint rolled back: the writes made inside it are undone.
  for (const check of pending.get(queryRunner)?.values() ?? []) {
    check.own = check.own?.filter((write) => write.depth <= depth);
  }
}
