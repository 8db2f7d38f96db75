/**
 * typeorm-locking: JPA/Hibernate locking semantics for TypeORM.
 *
 * @example
 * ```ts
 * import { installLocking, Versioned, OptimisticLockError } from "typeorm-locking";
 * ```
 * @packageDocumentation
 */
export { assertVersion } from "./assert-version";
export {
  ConcurrencyError,
  type ConflictDetails,
  LockingConfigurationError,
  LockingError,
  MissingVersionError,
  OptimisticLockError,
  StaleVersionError,
} from "./errors";
export { installLocking } from "./install";
export type { LockingOptions } from "./installation";
export { type UpdatePatch, updateVersioned } from "./update-versioned";
export type { VersionColumnMode } from "./version-policy";
export { type VersionColumnType, Versioned, type VersionedOptions } from "./versioned";
