export {
  type OfflineLockHandle,
  OfflineLockManager,
  type ProtectOptions,
  type TryLockOptions,
} from "./offline-lock-manager";
export { OfflineLockTableMigration } from "./offline-lock-migration";
export { OFFLINE_LOCK_TABLE, OfflineLockRecord } from "./offline-lock-record";
