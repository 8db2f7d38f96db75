import type { WaitPolicy } from "./dialect/lock-dialect";
import { describeValue, LockingConfigurationError } from "./errors";

/**
 * JPA's lock modes (`jakarta.persistence.LockModeType`), with JPA's meaning:
 *
 * | mode | what happens |
 * |---|---|
 * | `NONE` | no lock, no check |
 * | `OPTIMISTIC` (alias `READ`) | the version of each entity read is re-checked, under a lock, just before commit |
 * | `OPTIMISTIC_FORCE_INCREMENT` (alias `WRITE`) | as OPTIMISTIC, and the version is incremented at commit even if nothing changed |
 * | `PESSIMISTIC_READ` | a shared row lock taken by the SELECT, held to the end of the transaction |
 * | `PESSIMISTIC_WRITE` | an exclusive row lock taken by the SELECT, held to the end of the transaction |
 * | `PESSIMISTIC_FORCE_INCREMENT` | an exclusive row lock and the version incremented immediately |
 *
 * @example
 * ```ts
 * await orders.findOne({ where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 1000 }) });
 * ```
 */
export const LockMode = {
  NONE: "NONE",
  OPTIMISTIC: "OPTIMISTIC",
  READ: "OPTIMISTIC",
  OPTIMISTIC_FORCE_INCREMENT: "OPTIMISTIC_FORCE_INCREMENT",
  WRITE: "OPTIMISTIC_FORCE_INCREMENT",
  PESSIMISTIC_READ: "PESSIMISTIC_READ",
  PESSIMISTIC_WRITE: "PESSIMISTIC_WRITE",
  PESSIMISTIC_FORCE_INCREMENT: "PESSIMISTIC_FORCE_INCREMENT",
} as const;

/** One of the {@link LockMode} values. */
export type LockMode = (typeof LockMode)[keyof typeof LockMode];

/**
 * `timeout` value meaning "skip rows another transaction holds" (SKIP LOCKED); the same number
 * as Hibernate's `LockOptions.SKIP_LOCKED`.
 *
 * @example
 * ```ts
 * const jobs = await lockQuery(repo.createQueryBuilder("job"), LockMode.PESSIMISTIC_WRITE, { timeout: SKIP_LOCKED }).getMany();
 * ```
 */
export const SKIP_LOCKED = -2;

/**
 * `timeout` value meaning "do not wait" (NOWAIT); Hibernate's `LockOptions.NO_WAIT`.
 *
 * @example
 * ```ts
 * manager.findOne(Order, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: NO_WAIT }) });
 * ```
 */
export const NO_WAIT = 0;

/**
 * How long a pessimistic lock may wait, as JPA's `jakarta.persistence.lock.timeout` hint.
 *
 * @example
 * ```ts
 * { timeout: 0 }            // NOWAIT: fail at once with LockTimeoutError
 * { timeout: SKIP_LOCKED }  // leave locked rows out
 * { onLocked: "skip" }      // the same, spelled out
 * { onLocked: "wait" }      // the database's own default, whatever installLocking's lockTimeout
 * { timeout: 1500 }         // wait at most 1.5 s (MySQL, MariaDB, Oracle: rounded up to 2 s)
 * {}                        // the database default, or installLocking's lockTimeout
 * ```
 */
export interface LockOptions {
  /** Milliseconds to wait: `0` = NOWAIT, `SKIP_LOCKED` (-2) = skip locked rows, `n > 0` = at most n ms. */
  timeout?: number;
  /**
   * `"nowait"` or `"skip"`: an alternative to the special `timeout` values. `"wait"`: wait for the
   * lock, at most `timeout` ms if given, else as long as the database's own default allows (also
   * where `installLocking()`'s `lockTimeout` sets another). Given with a `timeout` that asks for
   * another wait (`{ onLocked: "nowait", timeout: 500 }`), it is refused.
   */
  onLocked?: "wait" | "nowait" | "skip";
}

const MODES = new Set<string>(Object.values(LockMode));

/** Rejects anything that is not a {@link LockMode}, naming where it came from. @internal */
export function assertLockMode(mode: unknown, where: string): asserts mode is LockMode {
  if (typeof mode !== "string" || !MODES.has(mode)) {
    throw new LockingConfigurationError(
      `${where}: ${describeValue(mode)} is not a lock mode. Use one of LockMode.${[...MODES].join(", LockMode.")}.`,
    );
  }
}

/**
 * The longest bounded wait, in ms: 2^31-1 (about 24.8 days), the largest every supported database
 * accepts (PostgreSQL's `lock_timeout` is an `int` of ms). A longer one would reach the database
 * as SQL it refuses (`1e+21ms`); leave `timeout` out for the database's own default.
 * @internal
 */
export const MAX_LOCK_TIMEOUT_MS = 2 ** 31 - 1;

/** Turns {@link LockOptions} into the wait the dialects render; `undefined` = not specified. @internal */
export function waitPolicyOf(options: LockOptions | null | undefined, where: string): WaitPolicy | undefined {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== "object" || Array.isArray(options)) {
    // withLockMode(mode, 1000) instead of withLockMode(mode, { timeout: 1000 }) would wait the default.
    throw new LockingConfigurationError(
      `${where}: the lock options are an object such as { timeout: 1000 }, got ${describeValue(options)}.`,
    );
  }
  const { timeout, onLocked } = options;
  if (onLocked !== undefined && !["wait", "nowait", "skip"].includes(onLocked)) {
    throw new LockingConfigurationError(
      `${where}: onLocked must be "wait", "nowait" or "skip", got ${describeValue(onLocked)}.`,
    );
  }
  if (
    timeout !== undefined &&
    (typeof timeout !== "number" ||
      Number.isNaN(timeout) ||
      (timeout < 0 && timeout !== SKIP_LOCKED) ||
      timeout > MAX_LOCK_TIMEOUT_MS)
  ) {
    throw new LockingConfigurationError(
      `${where}: timeout must be milliseconds from 0 to ${MAX_LOCK_TIMEOUT_MS} (about 24.8 days), or SKIP_LOCKED ` +
        `(-2); leave it out for the database's default wait. Got ${describeValue(timeout)}.`,
    );
  }
  const byTimeout: WaitPolicy | undefined =
    timeout === undefined
      ? undefined
      : timeout === SKIP_LOCKED
        ? { kind: "skip" }
        : timeout === 0
          ? { kind: "nowait" }
          : { kind: "wait", ms: timeout };
  if (onLocked === undefined) return byTimeout;
  // "wait" without a timeout is the database's own wait: it overrides installLocking's lockTimeout.
  const asked: WaitPolicy =
    onLocked !== "wait" ? { kind: onLocked } : byTimeout?.kind === "wait" ? byTimeout : { kind: "default" };
  if (byTimeout !== undefined && byTimeout.kind !== asked.kind) {
    throw new LockingConfigurationError(
      `${where}: onLocked ${describeValue(onLocked)} and timeout ${describeValue(timeout)} ask for different waits; ` +
        "give one of them.",
    );
  }
  return asked;
}

/** Whether a mode takes a row lock with the SELECT. @internal */
export function isPessimistic(mode: LockMode): boolean {
  return mode.startsWith("PESSIMISTIC_");
}

/** Whether a mode needs a version column. @internal */
export function needsVersion(mode: LockMode): boolean {
  return (
    mode === LockMode.OPTIMISTIC ||
    mode === LockMode.OPTIMISTIC_FORCE_INCREMENT ||
    mode === LockMode.PESSIMISTIC_FORCE_INCREMENT
  );
}
