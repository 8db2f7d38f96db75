import type { DataSource, EntityManager } from "typeorm";
import { type RetryExhaustedMessage, type RetryMessage, retryChannel, retryExhaustedChannel } from "./channels";
import {
  ClusterNodeNotReadyError,
  CommitOutcomeUnknownError,
  DeadlockError,
  describeValue,
  LockingConfigurationError,
  LockTimeoutError,
  OptimisticLockError,
  RetryExhaustedError,
  SerializationError,
} from "./errors";
import {
  anyRememberedHotRows,
  assertHotRowOption,
  endedHotRowRead,
  type HotRowOptions,
  type HotRows,
  markHotRows,
  newHotRows,
  noteHotRows,
  rememberHotRows,
  runWithHotRows,
  unmarkHotRows,
} from "./hot-rows";
import { dataSourceRaisedOn, raisedInTransactionBegunBy, transactionsBegun } from "./transaction-numbers";
import { knownDialectOf, lockFailureOf } from "./typeorm/error-translation";
import type { IsolationLevel } from "./typeorm-types";

/**
 * Options of {@link retryOnConflict} and {@link Retryable}.
 *
 * @example
 * ```ts
 * const options: RetryOptions = {
 *   attempts: 5,                                  // 1 run + up to 4 retries
 *   backoff: { initialMs: 20, maxMs: 500 },       // 20, 40, 80... ms, with full jitter
 *   budgetMs: 2000,                               // never spend more than 2 s in all
 *   onRetry: ({ attempt, error }) => log.info(`retry ${attempt}`, error),
 * };
 * ```
 */
export interface RetryOptions {
  /** Total attempts, the first run included; at least 1. Default 5. */
  attempts?: number;
  /** Exponential backoff between attempts: `initialMs * multiplier^(n-1)`, capped at `maxMs`. */
  backoff?: {
    /** The first wait, in ms. Default 20. */
    initialMs?: number;
    /** The longest wait, in ms. Default 1000. */
    maxMs?: number;
    /** Growth per attempt. Default 2. */
    multiplier?: number;
    /**
     * Full jitter (a uniformly random wait between 0 and the computed one), so that clients that
     * collided do not collide again in lockstep. Default true.
     */
    jitter?: boolean;
  };
  /** Total time budget in ms: no retry starts whose wait would end after it. Default: none. */
  budgetMs?: number;
  /**
   * Also retry {@link LockTimeoutError} (a lock not granted in time). Off by default: a timeout
   * usually means a long-held lock, and retrying at once adds load where it hurts.
   */
  retryLockTimeouts?: boolean;
  /**
   * Also retry {@link CommitOutcomeUnknownError} (the connection was lost after COMMIT was sent,
   * so the attempt may have committed). Off by default, and only safe for work that finds out
   * first whether an earlier attempt committed, e.g. by looking up an idempotency key it writes
   * in the same transaction (docs/ambiguous-commits.md); otherwise a retry can apply it twice.
   */
  retryOutcomeUnknown?: boolean;
  /** Isolation level of each attempt's transaction ({@link retryOnConflict} only). */
  isolation?: IsolationLevel;
  /** Called before each wait: the attempt that failed (1-based), its error and the wait in ms. */
  onRetry?: (event: RetryEvent) => void;
  /**
   * Hot rows: after an attempt fails on a row (an `OptimisticLockError` names its entity and id;
   * for an aggregate, its root), the next attempts read that row with `PESSIMISTIC_WRITE`, so it
   * cannot lose the same race again, and start without a backoff wait (the lock orders them).
   * Other rows stay optimistic. Default `true`; `false` turns it off; `{ timeout }` bounds the
   * lock wait in ms (default: the installation's `lockTimeout`, else the database's own; never
   * past `budgetMs`). On a Galera node not opted in to node-local locks, rows stay optimistic.
   */
  lockHotRows?: boolean | HotRowOptions;
}

/**
 * What {@link RetryOptions.onRetry} is told.
 *
 * @example
 * ```ts
 * const onRetry = (e: RetryEvent) => metrics.increment("order.retry", { attempt: e.attempt });
 * ```
 */
export interface RetryEvent {
  /** The attempt that just failed, 1-based. */
  attempt: number;
  /** Its error (already translated to the library's typed errors). */
  error: unknown;
  /** How long the helper waits before the next attempt. */
  delayMs: number;
}

/**
 * Whether an error is a conflict that re-running the whole unit of work can resolve:
 * `OptimisticLockError` (the row moved since it was loaded), `DeadlockError` and
 * `SerializationError` (the database rolled the transaction back), `ClusterNodeNotReadyError` (a
 * Galera node outside the primary component refused a statement before running it, so nothing
 * was written; it answers again once it rejoins), and `LockTimeoutError` when
 * `retryLockTimeouts` is set. Never `StaleVersionError`: the client edited an old copy, and only
 * the user can decide what to do with their change. Never `CommitOutcomeUnknownError`: the
 * attempt may have committed (the retry helpers retry it only with `retryOutcomeUnknown`). Never
 * anything else.
 *
 * @example
 * ```ts
 * catch (e) { if (isRetryableConflict(e)) return queue.retryLater(job); throw e; }
 * ```
 */
export function isRetryableConflict(error: unknown, options: Pick<RetryOptions, "retryLockTimeouts"> = {}): boolean {
  // Not when the versions were the caller's (the many-row updateVersioned()): they fail again.
  if (error instanceof OptimisticLockError) return error.retryable;
  if (error instanceof DeadlockError || error instanceof SerializationError) return true;
  if (error instanceof ClusterNodeNotReadyError) return true;
  return error instanceof LockTimeoutError && options.retryLockTimeouts === true;
}

/**
 * Runs `work(manager)` in a fresh transaction and, when it fails with a retryable conflict
 * (see {@link isRetryableConflict}), rolls back and runs the whole unit again in a new
 * transaction with a new `EntityManager`, after an exponential backoff with jitter. `work` must
 * load what it changes through the manager it is given, so each attempt starts from fresh rows;
 * an entity carried over from a failed attempt would only fail again.
 *
 * Other errors (a `StaleVersionError`, a validation error, a `CommitOutcomeUnknownError` unless
 * `retryOutcomeUnknown` is set) are rethrown at once, unchanged. When
 * attempts or the time budget run out, {@link RetryExhaustedError} is thrown with the number of
 * attempts and the last error as `cause`.
 *
 * Call it outside any transaction. A conflict that arises in a transaction already open when the
 * attempt began is not retried: it ends in `LockingConfigurationError` (the conflict as `cause`),
 * since a transaction the database aborted cannot be retried from within.
 *
 * @param work the unit of work; `attempt` is 1 for the first run.
 * @example
 * ```ts
 * const total = await retryOnConflict(dataSource, async (manager) => {
 *   const order = await manager.findOneByOrFail(Order, { id });
 *   order.lines.push(line);
 *   await manager.save(order);       // OptimisticLockError if someone else saved it first
 *   return order.total();
 * }, { attempts: 5, onRetry: ({ attempt }) => log.info({ id, attempt }, "order conflict") });
 * ```
 */
export function retryOnConflict<T>(
  dataSource: DataSource,
  work: (manager: EntityManager, attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  if (typeof dataSource?.transaction !== "function") {
    return Promise.reject(
      new LockingConfigurationError(`retryOnConflict(): pass the DataSource first, got ${describeValue(dataSource)}.`),
    );
  }
  if (typeof work !== "function") {
    return Promise.reject(
      new LockingConfigurationError("retryOnConflict(): pass the unit of work as a function (manager) => ..."),
    );
  }
  const { isolation } = options ?? {};
  return retrying("retryOnConflict()", options, dataSource, (attempt, hot) => {
    const levels = isolation ? knownDialectOf(dataSource)?.isolationLevels : undefined;
    if (levels && !levels.includes(isolation as string)) {
      throw new LockingConfigurationError(
        `retryOnConflict(): ${dataSource.options.type} has no ${isolation} isolation; ` +
          `use one of "${levels.join('", "')}" or leave isolation out. Nothing ran.`,
      );
    }
    const unit = (manager: EntityManager) => (hot ? hotAttempt(manager, hot, attempt, work) : work(manager, attempt));
    return (isolation ? dataSource.transaction(isolation, unit) : dataSource.transaction(unit)).catch(
      (error: unknown) => {
        throw lockFailureOf(dataSource, error) ?? error;
      },
    );
  });
}

/** An attempt after a conflict on a row: its transaction carries the hot rows to the select hooks. */
async function hotAttempt<T>(
  manager: EntityManager,
  hot: HotRows,
  attempt: number,
  work: (manager: EntityManager, attempt: number) => Promise<T>,
): Promise<T> {
  markHotRows(manager.queryRunner, hot);
  try {
    return await work(manager, attempt);
  } finally {
    unmarkHotRows(manager.queryRunner);
  }
}

/**
 * `retryOnConflict` for a method, like Spring Retry's `@Retryable` for
 * `OptimisticLockingFailureException`: a call that fails with a retryable conflict runs again,
 * from the start, with the same arguments. It does not open a transaction: the method (or a
 * decorator below this one, such as typeorm-transactional's `@Transactional()`) does, so each
 * attempt gets its own. Put `@Retryable` **outermost**, above `@Transactional()` and `@Lock()`;
 * a conflict in a transaction that was already running when the call came is not retried
 * (`LockingConfigurationError`, with the conflict as `cause`).
 *
 * Lock failures are translated to the library's errors on every DataSource it is active on
 * (installed, or using its decorators or lock requests); on one it never met, they are not:
 * call `installLocking()` on it, or retry explicitly with {@link retryOnConflict}.
 *
 * @example
 * ```ts
 * class OrderService {
 *   @Retryable({ attempts: 5 })                 // 3rd: re-runs everything below on a conflict
 *   @Transactional()                            // 2nd: one transaction per attempt
 *   @Lock(LockMode.OPTIMISTIC_FORCE_INCREMENT)  // 1st: how the method's queries lock
 *   async addLine(orderId: number, line: NewLine) { ... }
 * }
 * ```
 */
export function Retryable(options: RetryOptions = {}): MethodDecorator {
  assertRetryOptions(options, "@Retryable()");
  return (target, key, descriptor: PropertyDescriptor) => {
    const method = descriptor.value as (...args: unknown[]) => unknown;
    if (typeof method !== "function") {
      throw new LockingConfigurationError(`@Retryable() decorates methods; ${String(key)} is not one.`);
    }
    const where = `@Retryable() on ${(target as { constructor?: Function }).constructor?.name ?? "?"}.${String(key)}`;
    descriptor.value = function (this: unknown, ...args: unknown[]) {
      return retrying(where, options, undefined, (_attempt, hot) =>
        runWithHotRows(hot, () => Promise.resolve(method.apply(this, args))),
      );
    };
    return descriptor;
  };
}

const DEFAULTS = { attempts: 5, initialMs: 20, maxMs: 1000, multiplier: 2 };

/** The retry loop both helpers share; it publishes each retry and the giving up. */
async function retrying<T>(
  where: string,
  options: RetryOptions | null,
  dataSource: DataSource | undefined,
  attemptOnce: (attempt: number, hot: HotRows | undefined) => Promise<T>,
) {
  assertRetryOptions(options, where);
  options ??= {};
  const attempts = options.attempts ?? DEFAULTS.attempts;
  const started = performance.now();
  const deadline = options.budgetMs === undefined ? undefined : started + options.budgetMs;
  // Created at the first conflict, or at the start when some row conflicted recently (on any
  // DataSource: the reads look only at their own): a call that never meets either allocates nothing.
  let hot: HotRows | undefined =
    options.lockHotRows !== false && anyRememberedHotRows() ? newHotRows(options.lockHotRows, deadline) : undefined;
  for (let attempt = 1; ; attempt++) {
    const begunBefore = transactionsBegun();
    try {
      return await attemptOnce(attempt, hot);
    } catch (error) {
      if (!isRetryableConflict(error, options) && !retriesUnknownOutcome(error, options)) {
        // A hot row's lock waited for until the budget ran out: the budget is what ran out. A
        // lock the work asked for itself keeps its own error, hot rows in the loop or not.
        if (endedHotRowRead(error) && options.budgetMs !== undefined) {
          const elapsedMs = performance.now() - started;
          if (elapsedMs + 1 >= options.budgetMs) {
            const exhausted = new RetryExhaustedError({ attempts: attempt, elapsedMs, reason: "budget", cause: error });
            throw publishedExhaustion(exhausted, where, dataSource);
          }
        }
        throw error;
      }
      if (raisedInTransactionBegunBy(error, begunBefore)) {
        throw new LockingConfigurationError(
          `${where} was called inside a transaction: its conflict arose in a transaction that was ` +
            "already open when the attempt began. A retry must start its own transaction: the conflict " +
            "aborts (or will abort) the surrounding one, and re-running work inside it cannot succeed. " +
            "Call it before the transaction opens (put @Retryable above @Transactional).",
          { cause: error },
        );
      }
      const elapsedMs = performance.now() - started;
      if (attempt >= attempts) {
        const exhausted = new RetryExhaustedError({ attempts: attempt, elapsedMs, reason: "attempts", cause: error });
        throw publishedExhaustion(exhausted, where, dataSource);
      }
      if (options.lockHotRows !== false) {
        hot ??= newHotRows(options.lockHotRows, deadline);
        rememberHotRows(dataSourceRaisedOn(error), error, hot.rememberMs);
      }
      // The next attempt locks a row this conflict named for the first time: the lock orders the
      // racers, so waiting first would only lose time (measured: docs/benchmarks.md, "Hot rows").
      const delayMs = hot && !hot.unlockable && noteHotRows(hot, error) ? 0 : backoffDelay(options, attempt);
      if (options.budgetMs !== undefined && elapsedMs + delayMs > options.budgetMs) {
        const exhausted = new RetryExhaustedError({ attempts: attempt, elapsedMs, reason: "budget", cause: error });
        throw publishedExhaustion(exhausted, where, dataSource);
      }
      if (retryChannel.hasSubscribers) {
        retryChannel.publish({ attempt, error, delayMs, where, dataSource } satisfies RetryMessage);
      }
      options.onRetry?.({ attempt, error, delayMs });
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** An unknown commit outcome is retried only when the work said it checks for an earlier commit. */
function retriesUnknownOutcome(error: unknown, options: RetryOptions): boolean {
  return options.retryOutcomeUnknown === true && error instanceof CommitOutcomeUnknownError;
}

function publishedExhaustion(
  error: RetryExhaustedError,
  where: string,
  dataSource: DataSource | undefined,
): RetryExhaustedError {
  if (retryExhaustedChannel.hasSubscribers) {
    const { attempts, elapsedMs, reason } = error;
    retryExhaustedChannel.publish({
      attempts,
      elapsedMs,
      reason,
      error,
      where,
      dataSource,
    } satisfies RetryExhaustedMessage);
  }
  return error;
}

/** The wait after failed attempt `attempt` (1-based). @internal */
export function backoffDelay(options: RetryOptions, attempt: number, random: () => number = Math.random): number {
  const { initialMs, maxMs, multiplier } = { ...DEFAULTS, ...options.backoff };
  // multiplier^n may overflow to Infinity: 0 * Infinity would be NaN, not the 0 ms asked for.
  const ceiling = initialMs === 0 ? 0 : Math.min(maxMs, initialMs * multiplier ** (attempt - 1));
  return options.backoff?.jitter === false ? ceiling : Math.floor(random() * ceiling);
}

/** The isolation levels TypeORM starts a transaction with; anything else would reach the SQL as text. */
const ISOLATION_LEVELS: readonly unknown[] = ["READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"];

function assertRetryOptions(options: RetryOptions | null | undefined, where: string): void {
  const bad = (what: string, value: unknown) =>
    new LockingConfigurationError(`${where}: ${what}, got ${describeValue(value)}.`);
  if (options === undefined || options === null) return;
  if (typeof options !== "object" || Array.isArray(options)) {
    throw bad("the options are an object such as { attempts: 5 }", options);
  }
  const { attempts, budgetMs } = options;
  const backoff = options.backoff ?? {};
  if (typeof backoff !== "object" || Array.isArray(backoff)) {
    throw bad("backoff is an object such as { initialMs: 20, maxMs: 1000 }", backoff);
  }
  if (attempts !== undefined && !(Number.isInteger(attempts) && attempts >= 1)) {
    throw bad("attempts must be a whole number >= 1", attempts);
  }
  if (budgetMs !== undefined && !(typeof budgetMs === "number" && budgetMs >= 0)) {
    throw bad("budgetMs must be milliseconds >= 0", budgetMs);
  }
  for (const key of ["initialMs", "maxMs"] as const) {
    const value = backoff[key];
    if (value !== undefined && !(typeof value === "number" && Number.isFinite(value) && value >= 0)) {
      throw bad(`backoff.${key} must be milliseconds >= 0`, value);
    }
  }
  const { multiplier } = backoff;
  if (multiplier !== undefined && !(typeof multiplier === "number" && Number.isFinite(multiplier) && multiplier >= 1)) {
    throw bad("backoff.multiplier must be a finite number >= 1", multiplier);
  }
  // TypeORM writes the level into START TRANSACTION / SET TRANSACTION as text.
  if (options.isolation !== undefined && !ISOLATION_LEVELS.includes(options.isolation)) {
    throw bad(`isolation must be one of "${ISOLATION_LEVELS.join('", "')}"`, options.isolation);
  }
  if (options.retryOutcomeUnknown !== undefined && typeof options.retryOutcomeUnknown !== "boolean") {
    throw bad("retryOutcomeUnknown must be a boolean", options.retryOutcomeUnknown);
  }
  assertHotRowOption(options.lockHotRows, where);
  if (options.onRetry !== undefined && typeof options.onRetry !== "function") {
    throw bad("onRetry must be a function", typeof options.onRetry);
  }
}
