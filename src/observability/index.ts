export {
  CONFLICT_CHANNEL,
  type ConflictKind,
  type ConflictMessage,
  LOCK_FAILURE_CHANNEL,
  LOCK_TRACING_CHANNEL,
  type LockAcquisitionContext,
  type LockFailureMessage,
  type LockOutcome,
  OFFLINE_LOCK_CHANNEL,
  type OfflineLockEvent,
  type OfflineLockMessage,
  RETRY_CHANNEL,
  RETRY_EXHAUSTED_CHANNEL,
  type RetryExhaustedMessage,
  type RetryMessage,
} from "../channels";
export {
  LOCK_WAIT_BUCKETS_MS,
  type LockingStatistics,
  type LockingStatisticsSnapshot,
  lockingStatistics,
} from "./statistics";
