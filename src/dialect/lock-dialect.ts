import type { TranslatedDatabaseError } from "../errors";

/** Runs one SQL statement on the connection a failure came from and returns its rows. */
export type ProbeQuery = (sql: string) => Promise<Record<string, unknown>[]>;

/**
 * The row lock a locking SELECT takes: shared (others may read-lock too) or exclusive.
 *
 * @example
 * ```ts
 * postgresDialect.render("shared" satisfies LockStrength, { kind: "default" }); // FOR SHARE
 * ```
 */
export type LockStrength = "shared" | "exclusive";

/**
 * How long a locking statement may wait for a row another transaction holds.
 * - `default`: whatever the database (or the session) is set to.
 * - `nowait`: fail at once.
 * - `skip`: leave locked rows out of the result.
 * - `wait`: wait at most `ms` milliseconds, then fail.
 *
 * @example
 * ```ts
 * const wait: WaitPolicy = { kind: "wait", ms: 1000 };
 * ```
 */
export type WaitPolicy = { kind: "default" } | { kind: "nowait" } | { kind: "skip" } | { kind: "wait"; ms: number };

/**
 * How a dialect bounds a lock wait of N ms.
 *
 * @example
 * ```ts
 * mariadbDialect.timeoutStyle; // "statement": FOR UPDATE WAIT n, nothing to restore
 * ```
 */
export type TimeoutStyle =
  /**
   * The locking statement bounds its own wait: a clause (MariaDB, Oracle `WAIT n`), or a setting
   * changed and put back inside that one statement (PostgreSQL). No extra round trip.
   */
  | "statement"
  /** A setting of the connection, read before and restored after (MySQL, SQLite, SQL Server). */
  | "connection";

/**
 * The statements that bound one locking statement's wait, for dialects that use a connection
 * setting. `readCurrent` returns one row whose first column is the current value; `apply` sets
 * the bound; `restore` puts the old value back, after the locking statement, even when it failed.
 *
 * @example
 * ```ts
 * mysqlDialect.waitPlan({ kind: "wait", ms: 1500 })
 * // { readCurrent: "SELECT @@SESSION.innodb_lock_wait_timeout AS value",
 * //   apply: ["SET SESSION innodb_lock_wait_timeout = 2"],
 * //   restore: (v) => [`SET SESSION innodb_lock_wait_timeout = ${v}`] }
 * ```
 */
export interface TimeoutPlan {
  readCurrent: string;
  apply: string[];
  restore(previous: string): string[];
}

/**
 * The SQL pieces that lock the rows of one SELECT.
 *
 * @example
 * ```ts
 * sqlserverDialect.render("exclusive", { kind: "default" }); // { tableHint: " WITH (UPDLOCK, HOLDLOCK, ROWLOCK)", clause: "" }
 * ```
 */
export interface LockRendering {
  /** Appended after the table name in FROM (SQL Server table hints), else `""`. */
  tableHint: string;
  /** Appended to the end of the SELECT (`" FOR UPDATE NOWAIT"`), else `""`. */
  clause: string;
  /**
   * Rewrites the whole locking SELECT (clause included) into one statement that bounds its own
   * wait, for a bound that is a setting (PostgreSQL's `lock_timeout`): set, lock, put back, with
   * no round trip of its own. Absent when the clause alone is enough.
   */
  boundStatement?(sql: string): string;
}

/**
 * One column of a batched UPDATE, as the statement names it.
 *
 * @example
 * ```ts
 * const column: BatchedColumn = { name: '"status"', key: "status", type: "character varying" };
 * ```
 */
export interface BatchedColumn {
  /** The escaped column name. */
  name: string;
  /** The column name as the database knows it, unescaped. */
  key: string;
  /**
   * The database type a parameter for it is cast to where the dialect needs one (PostgreSQL
   * types the first row of its VALUES list), e.g. `"integer"`; `undefined` when TypeORM's type
   * does not name the database type (a PostgreSQL enum, named per table): PostgreSQL then takes
   * the type from the table's row type.
   */
  type: string | undefined;
  /** Whether the column holds JSON (MySQL compares it as JSON on the failure path). */
  json?: boolean;
}

/**
 * A guarded UPDATE of many rows of one table: each row's keys and held version, and the new
 * values of the same columns. Parameters come row by row: the keys, the held version, the values.
 *
 * @example
 * ```ts
 * const shape: BatchedUpdateShape = {
 *   table: '"order"',
 *   keys: [{ name: '"id"', key: "id", type: "integer" }],
 *   version: { name: '"version"', key: "version", type: "integer" },
 *   values: [{ name: '"status"', key: "status", type: "character varying" }],
 *   stamps: [],
 *   conditions: [],
 *   returning: [],
 *   rows: 2, placeholder: (i) => `$${i + 1}`,
 * };
 * postgresDialect.batchedUpdate?.(shape)?.sql; // UPDATE "order" AS "_tl_t" SET "status" = ... FROM (VALUES ...)
 * ```
 */
export interface BatchedUpdateShape {
  /** The escaped table path. */
  table: string;
  keys: readonly BatchedColumn[];
  version: BatchedColumn;
  /** The changed columns, whose new values the statement sets per row. */
  values: readonly BatchedColumn[];
  /** Further assignments of SQL that names no column, e.g. `{ column: '"updated"', sql: "CURRENT_TIMESTAMP" }`. */
  stamps: ReadonlyArray<{ column: string; sql: string }>;
  /**
   * Further conditions on the table's row, e.g. `{ column: '"deleted"', sql: "IS NULL" }`: each is
   * one the statement's own stamps end (a soft remove stamps the date `IS NULL` asks for), so a
   * row that still meets one was not written by it.
   */
  conditions: ReadonlyArray<{ column: string; sql: string }>;
  /** Escaped columns to return after the keys, where the statement returns rows. */
  returning: readonly string[];
  rows: number;
  /** The driver's placeholder of the parameter at this index (0-based). */
  placeholder(index: number): string;
}

/**
 * The SQL of one batched UPDATE.
 *
 * @example
 * ```ts
 * const rendered: BatchedUpdateSql | undefined = sqliteDialect.batchedUpdate?.(shape);
 * rendered?.reports; // "rows": RETURNING, one row per changed row
 * ```
 */
export interface BatchedUpdateSql {
  sql: string;
  /**
   * `"rows"`: the statement returns the keys (then the `returning` columns) of each row it
   * changed. `"count"`: only the driver's affected-row count tells how many rows matched.
   */
  reports: "rows" | "count";
  /**
   * For `"count"`: a SELECT run on the failure path only, with the same parameters, returning
   * per batched row `_tl_n` (its 0-based position), `_tl_found` (the row's version, NULL when it is
   * gone) and `_tl_ours` (1 when the row holds exactly what this statement wrote).
   */
  probe?: string;
}

/**
 * A guarded DELETE of many rows of one table: each row's keys and held version. Parameters come
 * row by row: the keys, then the held version.
 *
 * @example
 * ```ts
 * const shape: BatchedDeleteShape = {
 *   table: '"order"',
 *   keys: [{ name: '"id"', key: "id", type: "integer" }],
 *   version: { name: '"version"', key: "version", type: "integer" },
 *   rows: 2, placeholder: (i) => `$${i + 1}`,
 * };
 * postgresDialect.batchedDelete?.(shape)?.sql; // DELETE FROM "order" WHERE ("id", "version") IN (($1, $2), ($3, $4)) RETURNING "id"
 * ```
 */
export interface BatchedDeleteShape {
  /** The escaped table path. */
  table: string;
  keys: readonly BatchedColumn[];
  version: BatchedColumn;
  rows: number;
  /** The driver's placeholder of the parameter at this index (0-based). */
  placeholder(index: number): string;
}

/**
 * The SQL of one batched DELETE, and of the failure path's read.
 *
 * @example
 * ```ts
 * const rendered: BatchedDeleteSql | undefined = mysqlDialect.batchedDelete?.(shape);
 * rendered?.reports; // "count": no RETURNING on DELETE in MySQL
 * ```
 */
export interface BatchedDeleteSql {
  sql: string;
  /** `"rows"`: the statement returns the keys of each row it deleted. `"count"`: the affected-row count only. */
  reports: "rows" | "count";
  /**
   * A SELECT of the keys and the version of the shape's rows as they are now (a current read,
   * not a snapshot's), with the keys alone as parameters, row by row: run on the failure path only.
   */
  probe: string;
}

/**
 * Everything that differs between databases for locking, in one object per database.
 * No other module branches on the database: it asks its dialect.
 *
 * @example
 * ```ts
 * const dialect = postgresDialect;
 * dialect.render("exclusive", { kind: "nowait" }).clause; // " FOR UPDATE NOWAIT"
 * dialect.classifyError({ code: "55P03" });               // LockTimeoutError
 * ```
 */
export interface LockDialect {
  /** Short name used in errors and docs: `"postgres"`, `"mysql"`, `"mariadb"`, ... */
  readonly name: string;
  /** Whether a shared (read) row lock exists; without it PESSIMISTIC_READ is refused. */
  readonly supportsSharedLock: boolean;
  /** Whether NOWAIT can be expressed. */
  readonly supportsNoWait: boolean;
  /** Whether SKIP LOCKED can be expressed. */
  readonly supportsSkipLocked: boolean;
  /** How a bounded wait is expressed. */
  readonly timeoutStyle: TimeoutStyle;
  /**
   * Whether TypeORM gives every caller of a DataSource the same query runner (one connection),
   * as it does for SQLite: the library then lets one transaction use it at a time, so that one
   * caller's work never lands inside another's transaction. Absent: a runner per caller.
   */
  readonly sharesOneRunner?: boolean;
  /**
   * An SQL expression for the database's clock, in ms since 1970 (UTC), as an integer: offline
   * locks expire by the database's clock, the one clock all application servers share.
   */
  readonly nowMillis: string;
  /** The smallest step of a bounded wait, in ms; waits are rounded up to it (1000 = whole seconds). */
  readonly timeoutGranularityMs: number;
  /**
   * The SQL that locks the rows of a SELECT with this strength and wait. `alias` is the escaped
   * alias of the queried entity: where the database can, only its rows are locked, not those of
   * joined relations (PostgreSQL refuses FOR UPDATE on the nullable side of an outer join).
   */
  render(strength: LockStrength, wait: WaitPolicy, alias?: string): LockRendering;
  /**
   * The statements that bound the wait around the locking statement, for waits the dialect does
   * not express in `render` (a setting); `undefined` when nothing needs to run.
   */
  waitPlan(wait: WaitPolicy): TimeoutPlan | undefined;
  /**
   * A statement to run right before a locking SELECT, for databases whose lock is not part of
   * the SELECT (SQLite takes its database write lock this way); `undefined` for the others.
   */
  lockStatement(strength: LockStrength, table: string, primaryColumn: string): string | undefined;
  /**
   * A driver error turned into the library's typed error, or `undefined` if it is neither a lock
   * failure nor a Galera node's refusal ({@link TranslatedDatabaseError}).
   */
  classifyError(error: unknown): TranslatedDatabaseError | undefined;
  /**
   * Whether a driver error says a table the statement names does not exist (each database has its
   * own code and wording): the library's own tables (offline locks) then get a configuration
   * error saying how to create them instead of the raw driver error.
   */
  isMissingTable(error: unknown): boolean;
  /**
   * Whether a driver error says the connection to the server was lost (reset, closed, killed, the
   * server shut down) while a statement was in flight or about to be sent. A COMMIT (or an
   * autocommit write) that fails this way may or may not have taken effect: the library then
   * raises `CommitOutcomeUnknownError`. SQLite runs in the process and cannot lose one.
   */
  isConnectionLoss(error: unknown): boolean;
  /**
   * Whether a failed COMMIT (or autocommit write) says the server lost its cluster while it was
   * replicating the commit, so that the other nodes may have committed it or not: a Galera node's
   * 1180 "... (provider status: Not connected to Primary Component)". The library then raises
   * `CommitOutcomeUnknownError`, as for a lost connection. Absent: the database has no such case.
   */
  isReplicationLoss?(error: unknown): boolean;
  /**
   * Whether a driver error says a value the statement compares with a column cannot be one of its
   * values (PostgreSQL 22P02 "invalid input syntax", 22003 "out of range": an id of 2^31 for an
   * `integer` key; better-sqlite3's RangeError for an integer beyond 64 bits, which it will not
   * bind). The databases that compare such a value without complaint (it matches no row)
   * leave this out. `updateVersioned()` answers it as a row that does not exist.
   */
  isInvalidValue?(error: unknown): boolean;
  /**
   * Row locks bind only the server they were taken on: on a multi-primary cluster (Galera) a
   * writer on another node is not blocked by them. Pessimistic lock modes are then refused unless
   * the application opts in (`installLocking(ds, { galera: { pessimistic: "node-local" } })`).
   */
  readonly nodeLocalLocks?: boolean;
  /**
   * A second look at a classified failure, for databases whose error code alone is ambiguous
   * (Galera reports a certification conflict with a local deadlock's 1213). `statement` is the
   * SQL that failed; `probe` runs SQL on the same connection. Runs only on the failure path.
   */
  explainFailure?(
    failure: TranslatedDatabaseError,
    statement: string,
    probe: ProbeQuery,
  ): Promise<TranslatedDatabaseError>;
  /**
   * One guarded UPDATE of many rows (`batchWrites`, on by default), or `undefined`
   * when the dialect cannot write this shape in one statement (the rows are then written one by
   * one). Absent: the dialect never batches.
   */
  batchedUpdate?(shape: BatchedUpdateShape): BatchedUpdateSql | undefined;
  /**
   * One guarded DELETE of many rows (`batchWrites`), or `undefined` when the dialect cannot write
   * this shape in one statement. Absent: the dialect leaves removes to TypeORM's own DELETE.
   */
  batchedDelete?(shape: BatchedDeleteShape): BatchedDeleteSql | undefined;
  /** The most bound parameters one statement may carry (a batch is split into statements below it). */
  readonly maxParameters?: number;
  /**
   * The isolation levels a transaction can start with, when the database lacks some of the four
   * (SQLite: `READ UNCOMMITTED` and `SERIALIZABLE`). Absent: all four. `retryOnConflict()` refuses
   * the others with a `LockingConfigurationError` before anything runs.
   */
  readonly isolationLevels?: readonly string[];
}

/** Rounds a wait up to the dialect's granularity, never below one step: a wait is never shortened. @internal */
export function roundWait(ms: number, granularityMs: number): number {
  return Math.max(granularityMs, Math.ceil(ms / granularityMs) * granularityMs);
}

/** The driver-level error behind a TypeORM QueryFailedError (or the error itself). @internal */
export function driverErrorOf(error: unknown): Record<string, unknown> | undefined {
  if (error === null || typeof error !== "object") return undefined;
  const e = error as Record<string, unknown>;
  return (e.driverError as Record<string, unknown> | undefined) ?? e;
}

/**
 * A driver error's text: `sqlMessage` (the server's own words, on MySQL's drivers), else
 * `message`; `""` when it has neither. @internal
 */
export function driverMessageOf(driverError: Record<string, unknown> | undefined): string {
  // Stryker disable next-line StringLiteral: equivalent (docs/testing.md); no pattern a caller tests matches a fallback text
  return String(driverError?.sqlMessage ?? driverError?.message ?? "");
}

/**
 * Socket errors of an established connection (Node.js error codes): the peer reset or closed it,
 * or it timed out. Not the codes of a connection that was never made (ECONNREFUSED, ENOTFOUND):
 * nothing was sent on those. @internal
 */
const SOCKET_LOSS_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT", "ESOCKET", "ECONNCLOSED"]);

/** Whether a driver error is the loss of an established socket, whatever the database. @internal */
export function isSocketLoss(driverError: Record<string, unknown> | undefined): boolean {
  return typeof driverError?.code === "string" && SOCKET_LOSS_CODES.has(driverError.code);
}
