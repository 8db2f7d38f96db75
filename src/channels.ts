/**
 * The library's `node:diagnostics_channel` channels: what an APM agent, an OpenTelemetry
 * instrumentation or `lockingStatistics()` subscribes to. This module sits beside errors.ts, at
 * the bottom of the layers, so that every place where an event happens may publish it.
 *
 * With nobody subscribed, each publication point costs one `hasSubscribers` check: no message is
 * built before it. No message carries a bound value or an entity's data: names, ids, versions,
 * timings and the library's own error objects only (an offline lock's secret handle never).
 */
import diagnosticsChannel from "node:diagnostics_channel";
import type { DataSource, EntityManager, QueryRunner } from "typeorm";
import {
  CertificationConflictError,
  ConcurrencyError,
  DeadlockError,
  type LockingError,
  LockTimeoutError,
  PessimisticLockError,
  type RetryExhaustedError,
  SerializationError,
} from "./errors";

/**
 * Name of the channel of optimistic conflicts: every `OptimisticLockError`, `StaleVersionError`
 * and `RowNotFoundError` the library raises, with a {@link ConflictMessage}.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from "node:diagnostics_channel";
 * import { CONFLICT_CHANNEL, type ConflictMessage } from "typeorm-locking";
 *
 * diagnosticsChannel.subscribe(CONFLICT_CHANNEL, (message) => {
 *   const conflict = message as ConflictMessage;
 *   console.warn(`conflict on ${conflict.entity} (${conflict.kind})`);
 * });
 * ```
 */
export const CONFLICT_CHANNEL = "typeorm-locking:conflict";

/**
 * Name of the `TracingChannel` of pessimistic lock acquisitions (a SELECT under
 * PESSIMISTIC_READ, PESSIMISTIC_WRITE or PESSIMISTIC_FORCE_INCREMENT, `lock()`, `lockInOrder()`):
 * its `start` and `asyncEnd` events bracket the wait, with one {@link LockAcquisitionContext}.
 * Subscribe with `diagnosticsChannel.tracingChannel(LOCK_TRACING_CHANNEL).subscribe(...)`, or to
 * one event as `tracing:typeorm-locking:lock:asyncEnd`. Needs Node.js 20.13 or later.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from "node:diagnostics_channel";
 * import { LOCK_TRACING_CHANNEL, type LockAcquisitionContext } from "typeorm-locking";
 *
 * diagnosticsChannel.tracingChannel(LOCK_TRACING_CHANNEL).subscribe({
 *   start() {},
 *   end() {},
 *   asyncStart() {},
 *   asyncEnd(message) {
 *     const lock = message as LockAcquisitionContext;
 *     console.log(`${lock.mode} on ${lock.entity}: ${lock.outcome} after ${lock.waitMs} ms`);
 *   },
 *   error() {},
 * });
 * ```
 */
export const LOCK_TRACING_CHANNEL = "typeorm-locking:lock";

/**
 * Name of the channel of database lock failures: every lock timeout, deadlock, serialization
 * failure and Galera certification conflict the library translates, whichever statement met it
 * (a locking SELECT, an UPDATE blocked on a row lock, a COMMIT), with a {@link LockFailureMessage}.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from "node:diagnostics_channel";
 * import { LOCK_FAILURE_CHANNEL, type LockFailureMessage } from "typeorm-locking";
 *
 * diagnosticsChannel.subscribe(LOCK_FAILURE_CHANNEL, (message) => {
 *   if ((message as LockFailureMessage).kind === "deadlock") console.warn("deadlock");
 * });
 * ```
 */
export const LOCK_FAILURE_CHANNEL = "typeorm-locking:lock-failure";

/**
 * Name of the channel of `retryOnConflict` / `@Retryable` retries: one {@link RetryMessage} per
 * failed attempt that is run again, published before the wait.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from "node:diagnostics_channel";
 * import { RETRY_CHANNEL, type RetryMessage } from "typeorm-locking";
 *
 * diagnosticsChannel.subscribe(RETRY_CHANNEL, (message) => {
 *   const retry = message as RetryMessage;
 *   console.info(`attempt ${retry.attempt} failed; next in ${retry.delayMs} ms`);
 * });
 * ```
 */
export const RETRY_CHANNEL = "typeorm-locking:retry";

/**
 * Name of the channel of retries given up: one {@link RetryExhaustedMessage} per
 * `RetryExhaustedError` thrown.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from "node:diagnostics_channel";
 * import { RETRY_EXHAUSTED_CHANNEL, type RetryExhaustedMessage } from "typeorm-locking";
 *
 * diagnosticsChannel.subscribe(RETRY_EXHAUSTED_CHANNEL, (message) => {
 *   console.error(`gave up after ${(message as RetryExhaustedMessage).attempts} attempts`);
 * });
 * ```
 */
export const RETRY_EXHAUSTED_CHANNEL = "typeorm-locking:retry-exhausted";

/**
 * Name of the channel of offline lock events (`OfflineLockManager`): taken, refused, released,
 * extended, lost, and saves refused by `protect()`, with an {@link OfflineLockMessage}.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from "node:diagnostics_channel";
 * import { OFFLINE_LOCK_CHANNEL, type OfflineLockMessage } from "typeorm-locking";
 *
 * diagnosticsChannel.subscribe(OFFLINE_LOCK_CHANNEL, (message) => {
 *   const event = message as OfflineLockMessage;
 *   console.info(`${event.lockType}/${event.lockId}: ${event.event} (${event.owner ?? "?"})`);
 * });
 * ```
 */
export const OFFLINE_LOCK_CHANNEL = "typeorm-locking:offline-lock";

/**
 * Where an optimistic conflict was found:
 * - `"load"`: by reading the row before writing or locking it (the read `save()` makes before its
 *   UPDATE, `lock()`'s re-read, a PESSIMISTIC_FORCE_INCREMENT at lock time);
 * - `"write"`: by the guarded UPDATE/DELETE itself (`save()`, `remove()`, `updateVersioned()` racing),
 *   which matched no row;
 * - `"commit"`: by the re-check (or increment) of an OPTIMISTIC / OPTIMISTIC_FORCE_INCREMENT read,
 *   just before COMMIT;
 * - `"aggregate-root"`: by the version bump of an aggregate root a member change moves;
 * - `"client"`: the version a client holds (a form, an If-Match, a command) is not the row's
 *   (`StaleVersionError`), or names a row that does not exist (`RowNotFoundError`).
 *
 * @example
 * ```ts
 * const page: ConflictKind[] = ["write", "commit", "aggregate-root"]; // the ones a retry can fix
 * ```
 */
export type ConflictKind = "load" | "write" | "commit" | "aggregate-root" | "client";

/**
 * What {@link CONFLICT_CHANNEL} carries.
 *
 * @example
 * ```ts
 * const onConflict = (m: ConflictMessage) => metrics.increment(`conflict.${m.entity}.${m.kind}`);
 * ```
 */
export interface ConflictMessage {
  kind: ConflictKind;
  /** Entity (class) name, e.g. `"Order"`. */
  entity: string;
  /** The row's primary key as TypeORM's id map (`{ id: 1 }`), or a list of them for a bulk remove. */
  id: unknown;
  /** The version the write (or the check) expected the row to have. */
  versionHeld: number;
  /** The version the row had, `"deleted"` when it is gone, `undefined` when not read. */
  versionFound: number | "deleted" | undefined;
  /** What was being done: `"update"`, `"remove"`, `"lock"`, `"optimistic check"`, `"aggregate change"`, ... */
  operation: string;
  /** The error thrown (its message holds the same names, ids and versions). */
  error: ConcurrencyError;
  /** The DataSource it happened on; `undefined` for checks that have none (`assertVersion`). */
  dataSource: DataSource | undefined;
}

/**
 * How a pessimistic lock acquisition ended: granted (`"acquired"`; with SKIP LOCKED, `rows`
 * says how many), or refused by the database.
 *
 * @example
 * ```ts
 * const bad = (o: LockOutcome) => o !== "acquired";
 * ```
 */
export type LockOutcome = "acquired" | "timeout" | "deadlock" | "serialization" | "certification" | "error";

/**
 * The context object of one {@link LOCK_TRACING_CHANNEL} trace. The library fills `outcome`,
 * `waitMs` and `rows` before `asyncEnd` (and `error`, as every `TracingChannel` does, before
 * `error`). There is no `result`: the rows read stay out of the message.
 *
 * @example
 * ```ts
 * const slow = (c: LockAcquisitionContext) => c.outcome === "acquired" && c.waitMs! > 100;
 * ```
 */
export interface LockAcquisitionContext {
  /** Entity (class) name of the locked rows. */
  entity: string;
  /** `"PESSIMISTIC_READ"`, `"PESSIMISTIC_WRITE"` or `"PESSIMISTIC_FORCE_INCREMENT"`. */
  mode: string;
  /** The wait asked for: ms, `"nowait"`, `"skip"` (SKIP LOCKED) or `"default"` (the database's own). */
  timeout: number | "nowait" | "skip" | "default";
  /** The dialect that rendered the lock: `"postgres"`, `"mysql"`, `"mariadb"`, `"sqlite"`, ... */
  dialect: string;
  dataSource: DataSource;
  /** Set before `asyncEnd`. */
  outcome?: LockOutcome;
  /** Milliseconds from asking for the lock to having it (or the failure), set before `asyncEnd`. */
  waitMs?: number;
  /** Rows locked, set before `asyncEnd` when acquired. */
  rows?: number;
  /** The failure, set by the channel before `error`. */
  error?: unknown;
}

/**
 * What {@link LOCK_FAILURE_CHANNEL} carries.
 *
 * @example
 * ```ts
 * const onFailure = (m: LockFailureMessage) => metrics.increment(`lock.${m.kind}`, { code: m.code });
 * ```
 */
export interface LockFailureMessage {
  kind: Exclude<LockOutcome, "acquired" | "error">;
  /** The dialect that classified the error. */
  dialect: string;
  /** The database's own code: `"55P03"`, `"1205"`, `"SQLITE_BUSY"`, ... */
  code: string;
  /** Whether the database rolled the whole transaction back. */
  transactionAborted: boolean;
  error: PessimisticLockError;
  dataSource: DataSource | undefined;
}

/**
 * What {@link RETRY_CHANNEL} carries.
 *
 * @example
 * ```ts
 * const onRetry = (m: RetryMessage) => metrics.increment("retry", { attempt: m.attempt });
 * ```
 */
export interface RetryMessage {
  /** The attempt that just failed, 1-based. */
  attempt: number;
  /** Its error (an `OptimisticLockError`, `DeadlockError`, ...). */
  error: unknown;
  /** The wait chosen before the next attempt, in ms. */
  delayMs: number;
  /** Which helper: `"retryOnConflict()"` or `"@Retryable() on Class.method"`. */
  where: string;
  /** `retryOnConflict`'s DataSource; `undefined` for `@Retryable`, which is given none. */
  dataSource: DataSource | undefined;
}

/**
 * What {@link RETRY_EXHAUSTED_CHANNEL} carries.
 *
 * @example
 * ```ts
 * const onGiveUp = (m: RetryExhaustedMessage) => log.error({ where: m.where, attempts: m.attempts }, "gave up");
 * ```
 */
export interface RetryExhaustedMessage {
  attempts: number;
  elapsedMs: number;
  reason: "attempts" | "budget";
  /** The error thrown; its `cause` is the last attempt's error. */
  error: RetryExhaustedError;
  where: string;
  dataSource: DataSource | undefined;
}

/**
 * What happened to an offline lock:
 * - `"acquired"`: `tryLock` took a free lock; `"taken-over"`: it took one whose holder let it
 *   expire (`previousOwner` says whose);
 * - `"refused"`: `tryLock` found it held (`owner` is the holder);
 * - `"released"`, `"extended"`: by its holder;
 * - `"lost"`: `checkLock`/`extendLock`/`releaseLock` found the handle no longer holds it;
 * - `"write-refused"`: `protect()` refused a save made without a handle that holds the lock.
 *
 * @example
 * ```ts
 * const alarming: OfflineLockEvent[] = ["lost", "write-refused"];
 * ```
 */
export type OfflineLockEvent =
  | "acquired"
  | "taken-over"
  | "refused"
  | "released"
  | "extended"
  | "lost"
  | "write-refused";

/**
 * What {@link OFFLINE_LOCK_CHANNEL} carries. The handle itself (the secret that acts on the lock)
 * is never published.
 *
 * @example
 * ```ts
 * const onLock = (m: OfflineLockMessage) => audit.log(`${m.owner} ${m.event} ${m.lockType}/${m.lockId}`);
 * ```
 */
export interface OfflineLockMessage {
  event: OfflineLockEvent;
  lockType: string;
  /** `""` when a lost handle string named no resource. */
  lockId: string;
  /** The holder (`acquired`, `taken-over`, `released`, `extended`: this one; `refused`: the other one). */
  owner?: string;
  /** `taken-over`: who held the expired lock. */
  previousOwner?: string;
  /** `lost`: which call found it; `write-refused`: the entity saved. */
  operation?: string;
  /** The lock error thrown, for `refused`, `lost` and `write-refused`. */
  error?: LockingError;
  dataSource: DataSource;
}

/** @internal */
export const conflictChannel = diagnosticsChannel.channel(CONFLICT_CHANNEL);
/** `undefined` on Node.js versions without `TracingChannel` (before 18.19): locks are not traced there. @internal */
export const lockTracingChannel =
  // Stryker disable next-line ConditionalExpression: equivalent on the Node.js the tests run (20 and up: TracingChannel is there)
  typeof diagnosticsChannel.tracingChannel === "function"
    ? diagnosticsChannel.tracingChannel(LOCK_TRACING_CHANNEL)
    : undefined;
/** @internal */
export const lockFailureChannel = diagnosticsChannel.channel(LOCK_FAILURE_CHANNEL);
/** @internal */
export const retryChannel = diagnosticsChannel.channel(RETRY_CHANNEL);
/** @internal */
export const retryExhaustedChannel = diagnosticsChannel.channel(RETRY_EXHAUSTED_CHANNEL);
/** @internal */
export const offlineLockChannel = diagnosticsChannel.channel(OFFLINE_LOCK_CHANNEL);

/** Whether anyone listens to the lock traces (`TracingChannel.hasSubscribers`: Node.js 20.13+). @internal */
export function lockTracingActive(): boolean {
  // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); a trace nobody listens to publishes nothing, it only costs
  return (lockTracingChannel as { hasSubscribers?: boolean } | undefined)?.hasSubscribers === true;
}

/**
 * Publishes an error the library raises on the channel it belongs to: a conflict (found `kind`
 * of way) on {@link CONFLICT_CHANNEL}, a database lock failure on {@link LOCK_FAILURE_CHANNEL}.
 * `rowGone` says the row was found deleted.
 *
 * @internal
 */
export function publishRaised(
  runner: QueryRunner | EntityManager | undefined,
  error: object,
  kind: ConflictKind | undefined,
  rowGone = false,
): void {
  if (error instanceof ConcurrencyError) {
    if (!conflictChannel.hasSubscribers || kind === undefined) return;
    conflictChannel.publish({
      kind,
      entity: error.entityName,
      id: plainId(error.id),
      versionHeld: error.expectedVersion,
      versionFound: rowGone ? "deleted" : error.actualVersion,
      operation: error.operation,
      error,
      dataSource: dataSourceOfRunner(runner),
    } satisfies ConflictMessage);
  } else if (error instanceof PessimisticLockError) {
    // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); a message nobody listens to goes nowhere, it only costs
    if (!lockFailureChannel.hasSubscribers) return;
    lockFailureChannel.publish({
      kind: lockFailureKind(error) as LockFailureMessage["kind"],
      dialect: error.dialect,
      code: error.code,
      transactionAborted: error.transactionAborted,
      error,
      dataSource: dataSourceOfRunner(runner),
    } satisfies LockFailureMessage);
  }
}

/** The outcome a lock failure stands for. @internal */
export function lockFailureKind(error: unknown): LockOutcome {
  if (error instanceof CertificationConflictError) return "certification";
  if (error instanceof SerializationError) return "serialization";
  if (error instanceof DeadlockError) return "deadlock";
  if (error instanceof LockTimeoutError) return "timeout";
  return "error";
}

/** An id map without what the library keeps on it under symbols (a write's guard): keys and values only. */
function plainId(id: unknown): unknown {
  if (Array.isArray(id)) return id.map(plainId);
  if (id === null || typeof id !== "object") return id;
  const proto = Object.getPrototypeOf(id);
  if (proto !== Object.prototype && proto !== null) return id;
  return Object.fromEntries(Object.entries(id).map(([key, value]) => [key, plainId(value)]));
}

/** The DataSource a runner or manager belongs to (`dataSource` on TypeORM 1.x, `connection` on 0.3). @internal */
export function dataSourceOfRunner(owner: QueryRunner | EntityManager | undefined): DataSource | undefined {
  const holder = owner as unknown as { dataSource?: DataSource; connection?: DataSource } | undefined;
  // Stryker disable next-line LogicalOperator: equivalent on TypeORM 1.x, where both name the same DataSource; the typeorm-0.3 project tests the fallback
  return holder?.dataSource ?? holder?.connection;
}

/**
 * Runs a lock acquisition as one {@link LOCK_TRACING_CHANNEL} trace (call it only when
 * {@link lockTracingActive}): fills the context's outcome, wait and row count, and keeps the rows
 * read out of it.
 *
 * @internal
 */
export function traceLockAcquisition<T extends { entities: readonly unknown[] }>(
  context: LockAcquisitionContext,
  acquire: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  let result: T;
  const traced = async (): Promise<void> => {
    try {
      result = await acquire();
      context.outcome = "acquired";
      context.rows = result.entities.length;
    } catch (error) {
      context.outcome = lockFailureKind(error);
      throw error;
    } finally {
      context.waitMs = performance.now() - started;
    }
  };
  return lockTracingChannel!.tracePromise(traced, context).then(() => result);
}
