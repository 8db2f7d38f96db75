import { DeadlockError, LockTimeoutError, SerializationError } from "../errors";
import { renderReturningBatchedDelete } from "./batched-delete";
import { renderPostgresBatchedUpdate } from "./batched-update";
import { driverErrorOf, driverMessageOf, isSocketLoss, type LockDialect } from "./lock-dialect";

/**
 * PostgreSQL (and the postgres wire family): `FOR SHARE` / `FOR UPDATE`, `NOWAIT`, `SKIP LOCKED`,
 * and a wait of N ms bounded by `lock_timeout`, which the locking statement sets, uses and puts
 * back itself (see {@link boundByLockTimeout}): no round trip beyond the SELECT. Any error aborts
 * the whole transaction.
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
  timeoutStyle: "statement",
  timeoutGranularityMs: 1,
  nowMillis: "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint",
  render(strength, wait, alias) {
    const lock = (strength === "shared" ? " FOR SHARE" : " FOR UPDATE") + (alias ? ` OF ${alias}` : "");
    const suffix = wait.kind === "nowait" ? " NOWAIT" : wait.kind === "skip" ? " SKIP LOCKED" : "";
    const rendering = { tableHint: "", clause: lock + suffix };
    if (wait.kind !== "wait") return rendering;
    const ms = Math.max(1, Math.ceil(wait.ms));
    return { ...rendering, boundStatement: (sql: string) => boundByLockTimeout(sql, ms) };
  },
  waitPlan: () => undefined,
  lockStatement: () => undefined,
  // 22P02 invalid_text_representation, 22003 numeric_value_out_of_range.
  isInvalidValue: (error) => ["22P02", "22003"].includes(String(driverErrorOf(error)?.code)),
  // 42P01 undefined_table.
  isMissingTable: (error) => driverErrorOf(error)?.code === "42P01",
  isConnectionLoss(error) {
    const driverError = driverErrorOf(error);
    if (!driverError) return false;
    // Stryker disable next-line StringLiteral: equivalent (docs/testing.md); a fallback text is no code below
    const code = String(driverError.code ?? "");
    // Class 08 connection_exception; 57P01/57P02 the server ended the session (pg_terminate_backend,
    // a shutdown, a crash of another backend).
    if (code.startsWith("08") || code === "57P01" || code === "57P02" || isSocketLoss(driverError)) return true;
    // node-postgres' own errors carry no code: "Connection terminated unexpectedly", "Client has
    // encountered a connection error and is not queryable", "Client was closed and is not queryable".
    return /^(Connection terminated|Client (has encountered a connection error|was closed))/.test(
      driverMessageOf(driverError),
    );
  },
  classifyError(error) {
    const code = driverErrorOf(error)?.code;
    const failure = { dialect: "postgres", code: String(code), retryable: true, transactionAborted: true };
    if (code === "55P03") return new LockTimeoutError(failure, error);
    if (code === "40P01") return new DeadlockError(failure, error);
    if (code === "40001") return new SerializationError(failure, error);
    return undefined;
  },
  batchedUpdate: renderPostgresBatchedUpdate,
  batchedDelete: (shape) => renderReturningBatchedDelete(shape, "list"),
  // The wire protocol numbers parameters with 16 bits.
  maxParameters: 65_535,
};

/**
 * One statement that sets `lock_timeout`, runs the locking SELECT under it and restores the old
 * value, in that order whatever the planner does, because each step reads the one before it:
 * - `_tl_bound` reads `_tl_before`, so the old value is read before the new one is set;
 * - the locking SELECT sits behind a one-time filter on `_tl_bound`, so it starts after the set
 *   (PostgreSQL reads `lock_timeout` when a wait begins, so a mid-statement set is honoured);
 * - `_tl_after` counts every locked row before it restores, and the outer one-time filter runs
 *   it before the first row is returned, also when no row matched.
 * MATERIALIZED (PostgreSQL 12+) keeps each step evaluated once; the locked rows are read back
 * from their materialized CTE in the order the SELECT produced them. A failed wait aborts the
 * transaction (or the savepoint), and `set_config(.., true)` dies with it.
 *
 * @example
 * ```ts
 * boundByLockTimeout('SELECT "o"."id" FROM "order" "o" WHERE "o"."id" = $1 FOR UPDATE OF "o"', 500);
 * // WITH "_tl_before" AS MATERIALIZED (...), ... SELECT "_tl_rows".* FROM "_tl_rows" WHERE ...
 * ```
 *
 * @internal
 */
export function boundByLockTimeout(lockingSelect: string, ms: number): string {
  return (
    `WITH "_tl_before" AS MATERIALIZED (SELECT current_setting('lock_timeout') AS "value"), ` +
    `"_tl_bound" AS MATERIALIZED (SELECT set_config('lock_timeout', '${ms}ms', true) AS "value" FROM "_tl_before"), ` +
    `"_tl_rows" AS MATERIALIZED (SELECT * FROM (${lockingSelect}) "_tl_locked" WHERE (SELECT count(*) FROM "_tl_bound") = 1), ` +
    `"_tl_after" AS MATERIALIZED (SELECT set_config('lock_timeout', (SELECT "value" FROM "_tl_before"), true) AS "value" ` +
    `FROM (SELECT count(*) FROM "_tl_rows") "_tl_all") ` +
    `SELECT "_tl_rows".* FROM "_tl_rows" WHERE (SELECT count(*) FROM "_tl_after") = 1`
  );
}
