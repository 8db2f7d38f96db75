/**
 * typeorm-locking: JPA/Hibernate locking semantics for TypeORM.
 *
 * @example
 * ```ts
 * import { installLocking, Versioned, OptimisticLockError } from "typeorm-locking";
 * ```
 * @packageDocumentation
 */
export { OptimisticLockExcluded, VersionedBy } from "./aggregate";
export { assertVersion } from "./assert-version";
export {
  type BatchedColumn,
  type BatchedUpdateShape,
  type BatchedUpdateSql,
  galeraDialect,
  type LockDialect,
  type LockRendering,
  type LockStrength,
  mariadbDialect,
  mysqlDialect,
  oracleDialect,
  postgresDialect,
  sqliteDialect,
  sqlserverDialect,
  type TimeoutPlan,
  type TimeoutStyle,
  type WaitPolicy,
} from "./dialect";
export {
  AlreadyLockedError,
  CertificationConflictError,
  ClusterNodeNotReadyError,
  CommitOutcomeUnknownError,
  ConcurrencyError,
  type ConflictDetails,
  type DatabaseLockFailure,
  DeadlockError,
  LockingConfigurationError,
  LockingError,
  LockTimeoutError,
  MalformedIfMatchError,
  MissingVersionError,
  OfflineLockBypassError,
  OfflineLockLostError,
  OfflineLockRequiredError,
  OptimisticLockError,
  PessimisticLockError,
  PreconditionRequiredError,
  RetryExhaustedError,
  type RowConflict,
  RowNotFoundError,
  SerializationError,
  SharedConnectionBusyError,
  StaleVersionError,
  type TranslatedDatabaseError,
  VersionOutOfRangeError,
} from "./errors";
export { DEFAULT_REMEMBER_MS, type HotRowOptions } from "./hot-rows";
export {
  type ConflictBody,
  type ConflictErrorHandlerOptions,
  type ConflictResponse,
  type ConflictResponseOptions,
  checkIfMatch,
  conflictErrorHandler,
  conflictResponse,
  currentVersionOf,
  type EntityTag,
  type FastifyConflictOptions,
  type FastifyConflictPlugin,
  type FastifyInstanceLike,
  type FastifyReplyLike,
  type FastifyRequestLike,
  fastifyConflictHandler,
  fastifyConflictPlugin,
  fastifyRequireIfMatch,
  type IfMatch,
  ifMatchHolds,
  type NextLike,
  parseIfMatch,
  type RequestLike,
  type ResponseLike,
  readIfMatch,
  requireIfMatch,
  versionETag,
  versionOfETag,
} from "./http";
export { installLocking } from "./install";
export type { BatchWritesOptions, GaleraPessimisticPolicy, LockingOptions } from "./installation";
export { lock } from "./lock";
export { type LockTarget, lockInOrder } from "./lock-in-order";
export { LockMode, type LockOptions, NO_WAIT, SKIP_LOCKED } from "./lock-mode";
export {
  Lock,
  type LockDecoratorOptions,
  type LockModeOption,
  lockQuery,
  runWithLockMode,
  withLockMode,
} from "./lock-request";
export {
  CONFLICT_CHANNEL,
  type ConflictKind,
  type ConflictMessage,
  LOCK_FAILURE_CHANNEL,
  LOCK_TRACING_CHANNEL,
  LOCK_WAIT_BUCKETS_MS,
  type LockAcquisitionContext,
  type LockFailureMessage,
  type LockingStatistics,
  type LockingStatisticsSnapshot,
  type LockOutcome,
  lockingStatistics,
  OFFLINE_LOCK_CHANNEL,
  type OfflineLockEvent,
  type OfflineLockMessage,
  RETRY_CHANNEL,
  RETRY_EXHAUSTED_CHANNEL,
  type RetryExhaustedMessage,
  type RetryMessage,
} from "./observability";
export {
  OFFLINE_LOCK_TABLE,
  type OfflineLockHandle,
  OfflineLockManager,
  OfflineLockRecord,
  OfflineLockTableMigration,
  type ProtectOptions,
  type TryLockOptions,
} from "./offline";
export { isRetryableConflict, Retryable, type RetryEvent, type RetryOptions, retryOnConflict } from "./retry";
export { type UpdatePatch, updateVersioned } from "./update-versioned";
export type { VersionedRowUpdate } from "./update-versioned-many";
export type { VersionPropertyType } from "./version-codec";
export type { VersionColumnMode } from "./version-policy";
export { type VersionColumnType, Versioned, type VersionedOptions } from "./versioned";
