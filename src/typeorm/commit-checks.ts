/**
 * OPTIMISTIC and OPTIMISTIC_FORCE_INCREMENT: what was read under them is re-checked (or
 * incremented) just before the transaction commits, once per entity per transaction.
 */
import type { EntityMetadata, ObjectLiteral, QueryRunner } from "typeorm";
import { LockMode } from "../lock-mode";
import { versionCodecOf } from "../version-codec";
import type { Method } from "./internals";
import { patchRunnerPrototypes } from "./runner-prototypes";
import { heldVersion, writeVersion } from "./version-writes";

interface PendingCheck {
  metadata: EntityMetadata;
  entity: ObjectLiteral;
  /** The version the entity held when it was locked. */
  lockedVersion: number;
  forceIncrement: boolean;
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
  const key = `${metadata.name}:${JSON.stringify(metadata.getEntityIdMap(entity))}`;
  const forceIncrement = mode === LockMode.OPTIMISTIC_FORCE_INCREMENT;
  const existing = checks.get(key);
  // One check per entity per transaction; a force increment asked for anywhere wins.
  checks.set(key, {
    metadata,
    entity: existing?.entity ?? entity,
    lockedVersion: existing?.lockedVersion ?? lockedVersion,
    forceIncrement: forceIncrement || existing?.forceIncrement === true,
  });
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
      return runCommitChecks(this).then(() => commit.call(this));
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
  const depth = (queryRunner as unknown as { transactionDepth?: number }).transactionDepth ?? 1;
  const checks = pending.get(queryRunner);
  if (!checks || depth > 1) return;
  pending.delete(queryRunner);
  for (const check of checks.values()) {
    const { metadata, entity } = check;
    const current =
      versionCodecOf(metadata.versionColumn!).parse(metadata.versionColumn!.getEntityValue(entity)) ??
      check.lockedVersion;
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
    );
  }
}

/** Forgets the checks of a transaction that ended without them (rolled back). */
function dropCommitChecks(queryRunner: QueryRunner): void {
  const depth = (queryRunner as unknown as { transactionDepth?: number }).transactionDepth ?? 0;
  if (depth === 0) pending.delete(queryRunner);
}
