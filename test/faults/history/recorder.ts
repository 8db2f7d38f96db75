/**
 * The recorder: every operation with its outcome, Jepsen style.
 *
 * - ok: the call returned; its token must be in the final state, once.
 * - failed: it threw a library error that says nothing was written; its token must be absent.
 * - unknown: anything else (a connection that died, a commit whose outcome the client cannot
 *   know, a driver error): its token may be present (once) or absent.
 */
import {
  AlreadyLockedError,
  ClusterNodeNotReadyError,
  ConcurrencyError,
  OfflineLockLostError,
  OfflineLockRequiredError,
  PessimisticLockError,
  RetryExhaustedError,
} from "../../../src";
import type { Operation, OperationKind } from "./generator";

export type Outcome = "ok" | "failed" | "unknown";

/** Outcomes of one kind of operation. */
export type KindSummary = Record<Outcome, number> & { meanMs: number };

/** One operation as it ended. */
export interface RecordedOperation extends Operation {
  outcome: Outcome;
  /** What the operation really did (a `line-remove` on an order with one line adds one instead). */
  did: OperationKind;
  /** Attempts made (retried operations may make several). */
  attempts: number;
  /** The error's class name and message, for failed and unknown operations. */
  error?: string;
  startedMs: number;
  endedMs: number;
}

/**
 * Whether an error says that nothing of the operation was written: the library's conflict and
 * lock errors, raised inside the transaction before its commit, roll everything back. Anything
 * else (including a library error about a commit whose outcome is unknown) is not such a promise.
 *
 * `ClusterNodeNotReadyError` (Galera's 1047, a node outside the primary component) is such a
 * promise wherever it comes: the node refuses the statement before running it, at a write, at
 * START TRANSACTION or at COMMIT alike, and when it comes inside a transaction the library closes
 * the connection, so the server rolls the transaction back (the node refuses ROLLBACK too, and a
 * pooled connection would otherwise commit the transaction at its next START TRANSACTION:
 * test/galera/commit-outcome.test.ts). A COMMIT the node could not replicate is 1180, a
 * `CommitOutcomeUnknownError`: unknown.
 */
export function saysNothingWritten(error: unknown): boolean {
  return (
    error instanceof ConcurrencyError ||
    error instanceof PessimisticLockError ||
    error instanceof RetryExhaustedError ||
    error instanceof AlreadyLockedError ||
    error instanceof OfflineLockLostError ||
    error instanceof OfflineLockRequiredError ||
    error instanceof ClusterNodeNotReadyError
  );
}

/** `Name: message` of an error, shortened. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const text = `${error.constructor.name}${code ? ` [${String(code)}]` : ""}: ${error.message}`;
    return text.length > 300 ? `${text.slice(0, 300)}...` : text;
  }
  return String(error);
}

/** The history of one run. */
export class HistoryRecorder {
  readonly operations: RecordedOperation[] = [];
  /** Retries made by `retryOnConflict` (its `onRetry` calls), all operations together. */
  retries = 0;
  private readonly t0 = performance.now();

  constructor(private readonly isFailure: (error: unknown) => boolean = saysNothingWritten) {}

  now(): number {
    return performance.now() - this.t0;
  }

  ok(op: Operation, did: OperationKind, attempts: number, startedMs: number): void {
    this.operations.push({ ...op, did, outcome: "ok", attempts, startedMs, endedMs: this.now() });
  }

  threw(op: Operation, did: OperationKind, attempts: number, startedMs: number, error: unknown): Outcome {
    const outcome: Outcome = this.isFailure(error) ? "failed" : "unknown";
    this.operations.push({
      ...op,
      did,
      outcome,
      attempts,
      error: describeError(error),
      startedMs,
      endedMs: this.now(),
    });
    return outcome;
  }

  count(outcome: Outcome): number {
    return this.operations.filter((op) => op.outcome === outcome).length;
  }

  /** Outcomes per kind the operation really did, with the mean duration in ms. */
  byKind(): Record<string, KindSummary> {
    const table: Record<string, KindSummary> = {};
    for (const op of this.operations) {
      const row = table[op.did] ?? { ok: 0, failed: 0, unknown: 0, meanMs: 0 };
      table[op.did] = row;
      row[op.outcome]++;
      row.meanMs += op.endedMs - op.startedMs;
    }
    for (const row of Object.values(table)) {
      row.meanMs = Math.round(row.meanMs / (row.ok + row.failed + row.unknown));
    }
    return table;
  }

  /** The most frequent error texts of one outcome (digits folded), for the report. */
  topErrors(outcome: Outcome, limit = 8): { error: string; count: number }[] {
    const counts = new Map<string, number>();
    for (const op of this.operations) {
      if (op.outcome !== outcome || !op.error) continue;
      const key = op.error.replace(/\d+/g, "#").slice(0, 160);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return [...counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([error, count]) => ({ error, count }));
  }
}
