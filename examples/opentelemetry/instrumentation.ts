/**
 * Turns typeorm-locking's diagnostics channels into OpenTelemetry spans and metrics, with no code
 * at the places where conflicts, retries and lock waits happen: the library publishes, this
 * subscribes. Works with any OpenTelemetry SDK set-up (see telemetry.ts for one).
 *
 *   - a span per pessimistic lock acquisition, `typeorm-locking.lock <mode> <entity>`, covering
 *     the wait, with its outcome; an error status when the lock was refused;
 *   - `typeorm_locking.lock.wait` (histogram, ms) by entity, mode and outcome: alert on its p99;
 *   - `typeorm_locking.conflicts` by entity and kind: alert on the rate per entity;
 *   - `typeorm_locking.lock.failures` by kind (timeout, deadlock, serialization, certification);
 *   - `typeorm_locking.retries` and `typeorm_locking.retries.exhausted`: alert on the second;
 *   - `typeorm_locking.offline_locks` by event and lock type;
 *   - conflicts, retries and refused offline locks as events on the active span, if any.
 */
import diagnosticsChannel from "node:diagnostics_channel";
import { type Meter, type Span, SpanKind, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";
import {
  CONFLICT_CHANNEL,
  type ConflictMessage,
  LOCK_FAILURE_CHANNEL,
  LOCK_TRACING_CHANNEL,
  type LockAcquisitionContext,
  type LockFailureMessage,
  OFFLINE_LOCK_CHANNEL,
  type OfflineLockMessage,
  RETRY_CHANNEL,
  RETRY_EXHAUSTED_CHANNEL,
  type RetryExhaustedMessage,
  type RetryMessage,
} from "../../src";

/** Subscribes; returns the function that unsubscribes everything again. */
export function instrumentLocking(tracer: Tracer, meter: Meter): () => void {
  const conflicts = meter.createCounter("typeorm_locking.conflicts", {
    description: "Optimistic conflicts, by entity and where they were found",
  });
  const lockWait = meter.createHistogram("typeorm_locking.lock.wait", {
    description: "Time to acquire (or fail to acquire) a pessimistic lock",
    unit: "ms",
  });
  const lockFailures = meter.createCounter("typeorm_locking.lock.failures", {
    description: "Lock timeouts, deadlocks and serialization failures, by kind",
  });
  const retries = meter.createCounter("typeorm_locking.retries", {
    description: "Attempts run again after a conflict",
  });
  const exhausted = meter.createCounter("typeorm_locking.retries.exhausted", { description: "Retries given up" });
  const offlineLocks = meter.createCounter("typeorm_locking.offline_locks", {
    description: "Offline lock events, by event and lock type",
  });

  const spans = new WeakMap<object, Span>();
  const lockTracing = diagnosticsChannel.tracingChannel(LOCK_TRACING_CHANNEL);
  const lockHandlers = {
    start(message: unknown) {
      const lock = message as LockAcquisitionContext;
      spans.set(
        lock,
        tracer.startSpan(`typeorm-locking.lock ${lock.mode} ${lock.entity}`, {
          kind: SpanKind.INTERNAL,
          attributes: {
            "typeorm_locking.entity": lock.entity,
            "typeorm_locking.lock.mode": lock.mode,
            "typeorm_locking.lock.timeout": String(lock.timeout),
            "db.system": lock.dialect,
          },
        }),
      );
    },
    end() {},
    asyncStart() {},
    error() {},
    asyncEnd(message: unknown) {
      const lock = message as LockAcquisitionContext;
      const outcome = lock.outcome ?? "error";
      lockWait.record(lock.waitMs ?? 0, { entity: lock.entity, mode: lock.mode, outcome });
      const span = spans.get(lock);
      if (!span) return;
      span.setAttribute("typeorm_locking.lock.outcome", outcome);
      if (lock.rows !== undefined) span.setAttribute("typeorm_locking.lock.rows", lock.rows);
      if (lock.error instanceof Error) {
        span.recordException(lock.error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      }
      span.end();
    },
  };
  lockTracing.subscribe(lockHandlers);

  const onConflict = (message: unknown) => {
    const conflict = message as ConflictMessage;
    conflicts.add(1, { entity: conflict.entity, kind: conflict.kind });
    trace.getActiveSpan()?.addEvent("typeorm-locking.conflict", {
      entity: conflict.entity,
      kind: conflict.kind,
      "version.held": conflict.versionHeld,
      "version.found": String(conflict.versionFound ?? "unknown"),
    });
  };
  const onLockFailure = (message: unknown) => {
    const failure = message as LockFailureMessage;
    lockFailures.add(1, { kind: failure.kind, dialect: failure.dialect, code: failure.code });
  };
  const onRetry = (message: unknown) => {
    const retry = message as RetryMessage;
    retries.add(1, { where: retry.where });
    trace.getActiveSpan()?.addEvent("typeorm-locking.retry", { attempt: retry.attempt, "delay.ms": retry.delayMs });
  };
  const onExhausted = (message: unknown) => {
    const giveUp = message as RetryExhaustedMessage;
    exhausted.add(1, { where: giveUp.where, reason: giveUp.reason });
  };
  const onOfflineLock = (message: unknown) => {
    const event = message as OfflineLockMessage;
    offlineLocks.add(1, { event: event.event, lock_type: event.lockType });
  };
  const subscriptions: [string, (message: unknown) => void][] = [
    [CONFLICT_CHANNEL, onConflict],
    [LOCK_FAILURE_CHANNEL, onLockFailure],
    [RETRY_CHANNEL, onRetry],
    [RETRY_EXHAUSTED_CHANNEL, onExhausted],
    [OFFLINE_LOCK_CHANNEL, onOfflineLock],
  ];
  for (const [name, listener] of subscriptions) diagnosticsChannel.subscribe(name, listener);

  return () => {
    lockTracing.unsubscribe(lockHandlers);
    for (const [name, listener] of subscriptions) diagnosticsChannel.unsubscribe(name, listener);
  };
}
