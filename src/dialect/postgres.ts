import { DeadlockError, LockTimeoutError, SerializationError } from "../errors";
import { driverErrorOf, type LockDialect } from "./lock-dialect";

/**
 * PostgreSQL (and the postgres wire family): `FOR SHARE` / `FOR UPDATE`, `NOWAIT`, `SKIP LOCKED`,
 * and `lock_timeout` in ms set with `set_config(.., is_local => true)`, so it ends with the
 * transaction even if the restore never runs. Any error aborts the whole transaction.
 *
 * @example
 * ```ts
 * postgresDialect.render("exclusive", { kind: "nowait" }, '"order"').clause; // ' FOR UPDATE OF "order" NOWAIT'
 * ```
 */
export const postgresDialect: LockDialect = {
  name: "postgres",
  supportsSharedLock: true,
  supportsNoWait: true,
  supportsSkipLocked: true,
  timeoutStyle: "transaction",
  timeoutGranularityMs: 1,
  nowMillis: "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint",
  render(strength, wait, alias) {
    const lock = (strength === "shared" ? " FOR SHARE" : " FOR UPDATE") + (alias ? ` OF ${alias}` : "");
    const suffix = wait.kind === "nowait" ? " NOWAIT" : wait.kind === "skip" ? " SKIP LOCKED" : "";
    return { tableHint: "", clause: lock + suffix };
  },
  waitPlan(wait) {
    if (wait.kind !== "wait") return undefined;
    const ms = wait.ms;
    // One round trip reads the old value and sets the new one: a target list is evaluated left
    // to right, so `value` is the setting before set_config ran.
    return {
      readCurrent: `SELECT current_setting('lock_timeout') AS value, set_config('lock_timeout', '${Math.ceil(ms)}ms', true) AS applied`,
      apply: [],
      restore: (previous) => [`SELECT set_config('lock_timeout', ${quote(previous)}, true)`],
    };
  },
  lockStatement: () => undefined,
  classifyError(error) {
    const code = driverErrorOf(error)?.code;
    const failure = { dialect: "postgres", code: String(code), retryable: true, transactionAborted: true };
    if (code === "55P03") return new LockTimeoutError(failure, error);
    if (code === "40P01") return new DeadlockError(failure, error);
    if (code === "40001") return new SerializationError(failure, error);
    return undefined;
  },
};

function quote(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
