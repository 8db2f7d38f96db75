import type { EntityManager, EntityTarget, ObjectLiteral } from "typeorm";
import { describeValue, LockingConfigurationError } from "./errors";
import { assertLockMode, type LockMode, type LockOptions, waitPolicyOf } from "./lock-mode";
import { lockQuery } from "./lock-request";
import { compareRows } from "./row-ids";

/**
 * One row to lock: its entity class (or name) and primary key.
 *
 * @example
 * ```ts
 * const target: LockTarget = { entity: Account, id: 42 };
 * ```
 */
export interface LockTarget<T extends ObjectLiteral = ObjectLiteral> {
  entity: EntityTarget<T>;
  id: unknown;
}

/**
 * Locks several rows (aggregates) in one deterministic order, table name first, then primary
 * key (numbers by value), one row per statement, so two transactions locking overlapping sets can never hold each
 * other's next row: the A,B / B,A deadlock cannot happen between them. Needs a transaction.
 * Returns the loaded entities in the order they were asked for (`null` for a missing row).
 *
 * @example
 * ```ts
 * await dataSource.transaction(async (manager) => {
 *   const [from, to] = await lockInOrder(manager, [
 *     { entity: Account, id: fromId },
 *     { entity: Account, id: toId },
 *   ], LockMode.PESSIMISTIC_WRITE, { timeout: 2000 });
 * });
 * ```
 */
export async function lockInOrder(
  manager: EntityManager,
  targets: readonly LockTarget[],
  mode: LockMode,
  options?: LockOptions,
): Promise<Array<ObjectLiteral | null>> {
  // Checked before the first lock, also for an empty list: a bad mode or wait is a bug either way.
  // Stryker disable next-line StringLiteral: wording (the caller a refusal names)
  assertLockMode(mode, "lockInOrder()");
  // Stryker disable next-line StringLiteral: wording (the caller a refusal names)
  waitPolicyOf(options, "lockInOrder()");
  if (!Array.isArray(targets) || targets.some((t) => t === null || typeof t !== "object")) {
    throw new LockingConfigurationError(
      `lockInOrder(): targets must be a list of { entity, id }, got ${describeValue(targets)}.`,
    );
  }
  const keyed = targets.map((target, index) => ({
    target,
    index,
    metadata: manager.getRepository(target.entity).metadata,
    id: target.id,
  }));
  keyed.sort(compareRows);
  const results: Array<ObjectLiteral | null> = [];
  for (const { target, index, metadata } of keyed) {
    const query = manager.createQueryBuilder(metadata.target, "locked").whereInIds(target.id);
    results[index] = await lockQuery(query, mode, options).getOne();
  }
  return results;
}
