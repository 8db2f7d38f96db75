import diagnosticsChannel from "node:diagnostics_channel";
import type { DataSource } from "typeorm";
import {
  CONFLICT_CHANNEL,
  type ConflictKind,
  type ConflictMessage,
  LOCK_FAILURE_CHANNEL,
  LOCK_TRACING_CHANNEL,
  type LockAcquisitionContext,
  type LockFailureMessage,
  OFFLINE_LOCK_CHANNEL,
  type OfflineLockEvent,
  type OfflineLockMessage,
  RETRY_CHANNEL,
  RETRY_EXHAUSTED_CHANNEL,
  type RetryExhaustedMessage,
  type RetryMessage,
} from "../channels";

/**
 * Upper bounds (ms) of the lock-wait histogram's buckets; a last bucket (`Infinity`) takes the rest.
 *
 * @example
 * ```ts
 * import { LOCK_WAIT_BUCKETS_MS } from "typeorm-locking";
 * console.log(LOCK_WAIT_BUCKETS_MS.join(", ")); // 1, 5, 10, 25, ...
 * ```
 */
export const LOCK_WAIT_BUCKETS_MS: readonly number[] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];

/**
 * The counts of {@link LockingStatistics.snapshot}: everything counted since the statistics were
 * started (or last reset).
 *
 * @example
 * ```ts
 * import type { LockingStatisticsSnapshot } from "typeorm-locking";
 * const storm = (s: LockingStatisticsSnapshot) => s.conflicts.total > 100 || s.retriesExhausted > 0;
 * ```
 */
export interface LockingStatisticsSnapshot {
  /** When counting started (or the last reset). */
  since: Date;
  conflicts: {
    total: number;
    /** By where they were found (see `ConflictKind`). */
    byKind: Record<ConflictKind, number>;
    /** By entity name, then by kind; only entities that had one. */
    byEntity: Record<string, Partial<Record<ConflictKind, number>>>;
  };
  /** Attempts of `retryOnConflict` / `@Retryable` that failed and were run again. */
  retries: number;
  /** Retries given up (`RetryExhaustedError`). */
  retriesExhausted: number;
  /** Pessimistic lock acquisitions, granted or not, and how long they waited. */
  lockWaits: {
    count: number;
    totalMs: number;
    maxMs: number;
    /** Acquisitions per bucket: `count` waited at most `upToMs` (and more than the previous bucket's). */
    histogram: { upToMs: number; count: number }[];
  };
  /** Lock failures met by any statement (a locking SELECT, an UPDATE blocked on a row, a COMMIT). */
  lockTimeouts: number;
  deadlocks: number;
  /** Serialization failures, Galera certification conflicts included. */
  serializationFailures: number;
  /** Offline lock events by kind. */
  offlineLocks: Record<OfflineLockEvent, number>;
}

/**
 * Live counters of one DataSource's conflicts, retries and lock waits. See {@link lockingStatistics}.
 *
 * @example
 * ```ts
 * import type { DataSource } from "typeorm";
 * import { lockingStatistics } from "typeorm-locking";
 *
 * declare const dataSource: DataSource;
 * const stats = lockingStatistics(dataSource);
 * setInterval(() => {
 *   console.log(stats.snapshot());
 *   stats.reset();
 * }, 60_000);
 * ```
 */
export interface LockingStatistics {
  /** A copy of the counts so far. */
  snapshot(): LockingStatisticsSnapshot;
  /** Sets every count back to zero. */
  reset(): void;
  /** Stops counting and unsubscribes; the next `lockingStatistics(dataSource)` starts afresh. */
  stop(): void;
}

const started = new WeakMap<DataSource, LockingStatistics>();

/**
 * Counts a DataSource's conflicts (by entity and kind), retries, exhausted retries, lock waits
 * (with a wait-time histogram), lock timeouts, deadlocks, serialization failures and offline lock
 * events, by subscribing to the library's diagnostics channels, like Hibernate's `Statistics`.
 * Counting starts at the first call for a DataSource (call it next to `installLocking`); later
 * calls return the same object. Until then nothing is subscribed, and nothing costs.
 *
 * Events that name no DataSource (`@Retryable`, which is given none; `assertVersion` and
 * `checkIfMatch`, which check an entity) are counted by the statistics of every DataSource.
 *
 * @example
 * ```ts
 * import type { DataSource } from "typeorm";
 * import { installLocking, lockingStatistics } from "typeorm-locking";
 *
 * declare const dataSource: DataSource;
 * installLocking(dataSource);
 * const stats = lockingStatistics(dataSource);
 * // ... later, e.g. from a /metrics route:
 * const { conflicts, retriesExhausted, lockWaits } = stats.snapshot();
 * console.log(conflicts.byEntity.Order?.write ?? 0, retriesExhausted, lockWaits.maxMs);
 * ```
 */
export function lockingStatistics(dataSource: DataSource): LockingStatistics {
  const existing = started.get(dataSource);
  if (existing) return existing;
  const statistics = startCounting(dataSource);
  started.set(dataSource, statistics);
  return statistics;
}

function startCounting(dataSource: DataSource): LockingStatistics {
  let counts = zero();
  const ours = (source: DataSource | undefined) => source === undefined || source === dataSource;

  const onConflict = (message: unknown) => {
    const { entity, kind, dataSource: source } = message as ConflictMessage;
    if (!ours(source)) return;
    counts.conflicts.total++;
    counts.conflicts.byKind[kind]++;
    const byEntity = counts.conflicts.byEntity[entity] ?? {};
    byEntity[kind] = (byEntity[kind] ?? 0) + 1;
    counts.conflicts.byEntity[entity] = byEntity;
  };
  const onRetry = (message: unknown) => {
    if (ours((message as RetryMessage).dataSource)) counts.retries++;
  };
  const onExhausted = (message: unknown) => {
    if (ours((message as RetryExhaustedMessage).dataSource)) counts.retriesExhausted++;
  };
  const onLockWait = (message: unknown) => {
    const { waitMs = 0, dataSource: source } = message as LockAcquisitionContext;
    if (!ours(source)) return;
    const waits = counts.lockWaits;
    waits.count++;
    waits.totalMs += waitMs;
    waits.maxMs = Math.max(waits.maxMs, waitMs);
    const bucket = LOCK_WAIT_BUCKETS_MS.findIndex((upTo) => waitMs <= upTo);
    waits.histogram[bucket === -1 ? LOCK_WAIT_BUCKETS_MS.length : bucket].count++;
  };
  const onLockFailure = (message: unknown) => {
    const { kind, dataSource: source } = message as LockFailureMessage;
    if (!ours(source)) return;
    if (kind === "timeout") counts.lockTimeouts++;
    else if (kind === "deadlock") counts.deadlocks++;
    else counts.serializationFailures++;
  };
  const onOfflineLock = (message: unknown) => {
    const { event, dataSource: source } = message as OfflineLockMessage;
    if (ours(source)) counts.offlineLocks[event]++;
  };
  const lockWaitEnd = `tracing:${LOCK_TRACING_CHANNEL}:asyncEnd`;
  const subscriptions: [string, (message: unknown) => void][] = [
    [CONFLICT_CHANNEL, onConflict],
    [RETRY_CHANNEL, onRetry],
    [RETRY_EXHAUSTED_CHANNEL, onExhausted],
    [lockWaitEnd, onLockWait],
    [LOCK_FAILURE_CHANNEL, onLockFailure],
    [OFFLINE_LOCK_CHANNEL, onOfflineLock],
  ];
  for (const [name, listener] of subscriptions) diagnosticsChannel.subscribe(name, listener);

  const statistics: LockingStatistics = {
    snapshot: () => structuredClone(counts),
    reset: () => {
      counts = zero();
    },
    stop: () => {
      for (const [name, listener] of subscriptions) diagnosticsChannel.unsubscribe(name, listener);
      if (started.get(dataSource) === statistics) started.delete(dataSource);
    },
  };
  return statistics;
}

function zero(): LockingStatisticsSnapshot {
  return {
    since: new Date(),
    conflicts: {
      total: 0,
      byKind: { load: 0, write: 0, commit: 0, "aggregate-root": 0, client: 0 },
      byEntity: {},
    },
    retries: 0,
    retriesExhausted: 0,
    lockWaits: {
      count: 0,
      totalMs: 0,
      maxMs: 0,
      histogram: [...LOCK_WAIT_BUCKETS_MS, Number.POSITIVE_INFINITY].map((upToMs) => ({ upToMs, count: 0 })),
    },
    lockTimeouts: 0,
    deadlocks: 0,
    serializationFailures: 0,
    offlineLocks: {
      acquired: 0,
      "taken-over": 0,
      refused: 0,
      released: 0,
      extended: 0,
      lost: 0,
      "write-refused": 0,
    },
  };
}
