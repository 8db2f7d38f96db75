/**
 * Every error this library throws. Catch them with `instanceof`:
 *
 * ```ts
 * try {
 *   await orders.save(order);
 * } catch (e) {
 *   if (e instanceof ConcurrencyError) return reply.code(409).send({ error: e.message });
 *   throw e;
 * }
 * ```
 *
 * Hierarchy:
 * - `LockingError`: the root of everything below.
 *   - `LockingConfigurationError`: the library, an entity or a call is set up wrong (a bug to fix, not to retry).
 *   - `MissingVersionError`: a write to an existing row of a versioned entity that holds no version.
 *   - `ConcurrencyError`: the row is not what the writer held; reload and retry, or tell the user.
 *     - `StaleVersionError`: a version the caller or client holds is not the row's (not retryable).
 *     - `RowNotFoundError`: a client's version names a row that does not exist (not retryable).
 *     - `OptimisticLockError`: a race: the row changed after it was loaded or checked (retryable).
 *   - `CommitOutcomeUnknownError`: the connection was lost after COMMIT was sent: the transaction may
 *     or may not have committed (never retried by default).
 *   - `PessimisticLockError`: the database refused a lock (timeout, deadlock, serialization, Galera certification).
 *   - `ClusterNodeNotReadyError`: a Galera node outside the primary component refused a statement (retryable).
 */

/**
 * Root of every error thrown by typeorm-locking.
 *
 * @example
 * ```ts
 * if (err instanceof LockingError) logger.warn(err.message);
 * ```
 */
export class LockingError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The library, an entity or a call is configured wrongly: a decorator on the wrong kind of
 * property, an unsupported TypeORM build, an option with a bad value. Fix the code; retrying
 * cannot help.
 *
 * @example
 * ```ts
 * class Order { @Versioned() version!: Date } // throws LockingConfigurationError
 * ```
 */
export class LockingConfigurationError extends LockingError {}

/**
 * An UPDATE or DELETE of an existing row of a versioned entity was asked for, but the entity
 * holds no version, so the write cannot be checked. The library refuses rather than write
 * unchecked. Load the entity first, copy the version the client sent onto it, or use
 * `updateVersioned()`.
 *
 * @example
 * ```ts
 * await orders.save({ id: 1, status: "SHIPPED" }); // throws MissingVersionError
 * ```
 */
export class MissingVersionError extends LockingError {
  /** Entity (class) name, e.g. `"Order"`. */
  readonly entityName: string;
  /** The primary key of the row, as TypeORM's id map (`{ id: 1 }`). */
  readonly id: unknown;
  /** The version property, e.g. `"version"`. */
  readonly versionProperty: string;
  /**
   * The write that could not be checked: `"update"`, `"remove"`, ... or `"aggregate change"` (a
   * member's save that moves its root, whose copy holds no version), as in `OptimisticLockError`.
   */
  readonly operation: string;

  constructor(init: { entityName: string; id: unknown; versionProperty: string; operation: string }) {
    super(
      `Cannot ${init.operation} ${init.entityName} ${describeId(init.id)}: its version property ` +
        `"${init.versionProperty}" holds no value, so the write could not be checked against ` +
        `concurrent changes. Load the entity before changing it, set "${init.versionProperty}" ` +
        `to the version the client sent, or use updateVersioned().`,
    );
    this.entityName = init.entityName;
    this.id = init.id;
    this.versionProperty = init.versionProperty;
    this.operation = init.operation;
  }
}

/**
 * A version held by an entity or read from its row is an integer beyond
 * `Number.MAX_SAFE_INTEGER` (2^53-1), which a `bigint` or `decimal` version column can hold.
 * JavaScript numbers cannot tell such versions apart, so the library refuses to check the write
 * rather than compare them inexactly. Nothing was written.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof VersionOutOfRangeError) log.error(`${e.entityName}.${e.versionProperty} = ${e.value}`); }
 * ```
 */
export class VersionOutOfRangeError extends LockingError {
  /** Entity (class) name, e.g. `"Order"`. */
  readonly entityName: string;
  /** The version property, e.g. `"version"`. */
  readonly versionProperty: string;
  /** The version as the driver or the entity held it, in decimal digits. */
  readonly value: string;

  constructor(init: { entityName: string; versionProperty: string; value: string }) {
    super(
      `${init.entityName}.${init.versionProperty} holds version ${init.value}, above 2^53-1 ` +
        "(Number.MAX_SAFE_INTEGER): JavaScript numbers cannot compare it exactly, so typeorm-locking " +
        "refuses to check this write. Bring the column's versions back into range (any smaller value " +
        `works once no client holds an old one), or leave ${init.entityName} unchecked with ` +
        `@OptimisticLockExcluded() on its class or installLocking(dataSource, { exclude: [${init.entityName}] }).`,
    );
    this.entityName = init.entityName;
    this.versionProperty = init.versionProperty;
    this.value = init.value;
  }
}

/**
 * What every concurrency conflict carries.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof ConcurrencyError) log.warn({ entity: e.entityName, id: e.id, expected: e.expectedVersion }); }
 * ```
 */
export interface ConflictDetails {
  /** Entity (class) name, e.g. `"Order"`. */
  entityName: string;
  /** The primary key of the row, as TypeORM's id map (`{ id: 1 }`), or a list of them for a bulk remove. */
  id: unknown;
  /** The version the write expected the row to have. */
  expectedVersion: number;
  /** The row's version when known; `undefined` when the row could not be read (or is gone). */
  actualVersion?: number;
  /** What was being done: `"update"`, `"remove"`, `"soft-remove"`, `"recover"` or `"check"`. */
  operation: string;
}

/**
 * Another writer changed the row this one was about to change. Both subclasses mean the same
 * to a user ("someone else changed this; reload"); they differ in *when* the other change
 * happened, which matters for logs and for HTTP (412 vs 409).
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof ConcurrencyError) return conflict(e.entityName, e.id); }
 * ```
 */
export abstract class ConcurrencyError extends LockingError implements ConflictDetails {
  readonly entityName: string;
  readonly id: unknown;
  readonly expectedVersion: number;
  readonly actualVersion?: number;
  readonly operation: string;
  /**
   * Whether running the same unit of work again can succeed: true for a race
   * ({@link OptimisticLockError}: the retry reloads the row); false when the version came from a
   * client ({@link StaleVersionError}, {@link RowNotFoundError}): the same version fails again.
   */
  readonly retryable: boolean = true;

  protected constructor(message: string, details: ConflictDetails) {
    super(message);
    this.entityName = details.entityName;
    this.id = details.id;
    this.expectedVersion = details.expectedVersion;
    this.actualVersion = details.actualVersion;
    this.operation = details.operation;
  }
}

/**
 * The version the caller holds (typically one a client sent back: a form field, an HTTP
 * `If-Match`, a CQRS command's `expectedVersion`, an entity whose version the application set) is
 * not the row's version. Found before anything was written, or by `updateVersioned()`'s write,
 * which loads nothing: either way the version is wrong, not overtaken by a race, and sending it
 * again can never succeed. Not retryable. HTTP: 412 Precondition Failed (or 409).
 *
 * A version lower than the row's is stale: the row changed after the client read it. One higher
 * than the row's was never a version of this row (a bad or forged version); the message says which.
 *
 * @example
 * ```ts
 * const order = await orders.findOneByOrFail({ id });
 * assertVersion(order, command.expectedVersion); // throws StaleVersionError if they differ
 * ```
 */
export class StaleVersionError extends ConcurrencyError {
  override readonly retryable: boolean = false;

  constructor(details: ConflictDetails & { detail?: string }) {
    super(describeStaleVersion(details), details);
  }
}

function describeStaleVersion(details: ConflictDetails & { detail?: string }): string {
  const { expectedVersion: expected, actualVersion: actual } = details;
  const subject = `${details.entityName} ${describeId(details.id)} (${details.operation})`;
  if (actual === undefined || expected < 0) {
    return (
      `${details.entityName} ${describeId(details.id)} ${details.detail ?? "is at an unknown version"}, but version ` +
      `${expected} was expected by this ${details.operation}. Nothing was written; reload it and apply the change again.`
    );
  }
  if (expected < actual) {
    return (
      `${subject}: version mismatch: expected ${expected}, the row is at ${actual}. The version was read ` +
      "before the row changed, so the change was made on a stale copy. Nothing was written; reload it " +
      "and apply the change again."
    );
  }
  return (
    `${subject}: version mismatch: expected ${expected}, but the row is only at ${actual}: the version sent ` +
    "is ahead of the row, so it was never read from this row (a bad or forged version, or one of another " +
    "row); nobody changed the row. Nothing was written."
  );
}

/**
 * A version a client sent names a row that does not exist: it was deleted since the client read
 * it (or the id is wrong). Nothing was written, and no retry with that version can succeed: not
 * retryable. HTTP: 404 Not Found (RFC 9110 §13.2.2: a request that would fail without its
 * precondition is answered as such). Raised by `updateVersioned()` and by a `save()` of an entity
 * whose version the application set from a client; a row deleted after *this* request loaded it
 * is a race, {@link OptimisticLockError}.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof RowNotFoundError) return res.status(404).end(); }
 * ```
 */
export class RowNotFoundError extends ConcurrencyError {
  override readonly retryable: boolean = false;

  constructor(details: Omit<ConflictDetails, "actualVersion">) {
    super(
      `${details.entityName} ${describeId(details.id)} does not exist (deleted, or never created): the ` +
        `${details.operation} with version ${details.expectedVersion} has no row to apply to. Nothing was written.`,
      details,
    );
  }
}

/**
 * The row changed (or was deleted) between the moment this entity was loaded and the moment it
 * was written: the conditional `UPDATE ... WHERE version = :expected` (or DELETE) matched no
 * row. Nothing of the failed save is written: the transaction `save()` opened rolls back; in a
 * caller's transaction, the error propagates so that the caller rolls back.
 *
 * @example
 * ```ts
 * await retryOnConflict(() => placeOrder(cmd)); // or catch OptimisticLockError and reload
 * ```
 */
export class OptimisticLockError extends ConcurrencyError {
  /**
   * Every row of the failed write found changed or gone: one entry for a single-row write; for a
   * batched write (`batchWrites`, on by default, and the many-row `updateVersioned()`) every stale row of the statement,
   * not only the first. The error's own `id`/`actualVersion` are those of the first entry.
   */
  readonly conflicts: readonly RowConflict[];

  constructor(details: ConflictDetails & { detail?: string; conflicts?: readonly RowConflict[] }) {
    super(
      `${details.entityName} ${describeId(details.id)} was changed or deleted by another ` +
        `transaction after it was loaded: ${details.operation} expected version ` +
        `${details.expectedVersion}${
          details.actualVersion === undefined ? "" : `, found ${details.actualVersion}`
        }${details.detail ? ` (${details.detail})` : ""}. Nothing was written; reload it and try again.`,
      details,
    );
    this.conflicts = details.conflicts ?? [
      {
        entityName: details.entityName,
        id: details.id,
        expectedVersion: details.expectedVersion,
        actualVersion: details.actualVersion,
      },
    ];
  }
}

/**
 * One row a write expected at a version it no longer has: an entry of
 * {@link OptimisticLockError.conflicts}.
 *
 * @example
 * ```ts
 * catch (e) {
 *   if (e instanceof OptimisticLockError)
 *     for (const c of e.conflicts) console.log(c.entityName, c.id, c.expectedVersion, c.deleted ? "deleted" : c.actualVersion);
 * }
 * ```
 */
export interface RowConflict {
  /** Entity (class) name, e.g. `"Order"`. */
  entityName: string;
  /** The row's id map, e.g. `{ id: 7 }`. */
  id: unknown;
  /** The version the entity held, which the write expected. */
  expectedVersion: number;
  /** The version the row has now, when it was read (a batched write reads it on failure). */
  actualVersion?: number;
  /** `true` when the row was read and is gone (deleted by another transaction). */
  deleted?: boolean;
}

/**
 * A route that changes a resource requires `If-Match` (the ETag the client last read), and the
 * request had none. HTTP: 428 Precondition Required (RFC 6585 §3): the client must GET the
 * resource and send its ETag back, so that it cannot overwrite a change it has not seen.
 *
 * @example
 * ```ts
 * checkIfMatch(order, req.headers["if-match"], { required: true }); // throws PreconditionRequiredError when absent
 * ```
 */
export class PreconditionRequiredError extends LockingError {
  constructor(what = "this request") {
    super(
      `${what} changes a resource and must carry If-Match with the ETag the client last read ` +
        "(GET the resource first, then send its ETag back).",
    );
  }
}

/**
 * The request's `If-Match` header cannot be evaluated: it is not RFC 9110 entity-tag syntax
 * (`3` unquoted, an unbalanced quote, a control character, `*` inside a list, a list with a bad
 * member), or a strong tag in it names no version (`"abc"`, `""`): this server's ETags are quoted
 * versions such as `"7"`, so such a tag was not one it issued. HTTP: 400 Bad Request, since the
 * client's header is wrong, not its copy of the resource (that is a 412). Weak tags (`W/"7"`) are
 * well formed and never match `If-Match` (strong comparison, RFC 9110 §13.1.1): 412, not this.
 *
 * @example
 * ```ts
 * checkIfMatch(order, "3"); // throws MalformedIfMatchError: an entity tag is quoted, "3"
 * ```
 */
export class MalformedIfMatchError extends LockingError {
  /** The header as received (cut to its first 100 characters). */
  readonly header: string;
  /** What is wrong with it, for the client. */
  readonly reason: string;

  constructor(header: string, reason: string) {
    const shown = header.length > 100 ? `${header.slice(0, 100)}... (${header.length} characters)` : header;
    super(
      `If-Match: ${describeHeader(shown)} is malformed: ${reason}. Send the ETag the resource was last ` +
        'read with, quoted, e.g. If-Match: "7" (a list "6", "7" or * for any version is accepted too).',
    );
    this.header = shown;
    this.reason = reason;
  }
}

/** A header as sent, with control and non-ASCII characters escaped: the message goes into logs and bodies. */
function describeHeader(header: string): string {
  return header.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * A value as an error message shows it: JSON where JSON can say it (`"abc"`, `{"a":1}`), else a
 * readable form (`5n`, `Symbol(x)`, `function`, `[object with a cycle]`), cut to 100 characters.
 * Never throws: a message about a bad value must not fail on the value (`JSON.stringify` throws on
 * a bigint or a cycle). @internal
 */
export function describeValue(value: unknown): string {
  let shown: string;
  if (typeof value === "bigint") shown = `${value}n`;
  else if (typeof value === "symbol") shown = value.toString();
  else if (typeof value === "function") shown = "a function";
  else if (value === undefined) shown = "undefined";
  else {
    try {
      shown = JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? `${v}n` : v)) ?? typeof value;
    } catch {
      shown = `[${typeof value} that cannot be printed]`;
    }
  }
  return shown.length > 100 ? `${shown.slice(0, 100)}... (${shown.length} characters)` : shown;
}

/**
 * `JSON.stringify` for keys and bodies built from ids, which may hold a bigint (a `bigint` primary
 * key): bigints as their digits, where plain `JSON.stringify` throws. @internal
 */
export function jsonOf(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) ?? "undefined";
}

/**
 * An id as an error message shows it: `{ id: 1 }` -> `id=1`; `{ a: 1, b: 2 }` -> `(a=1, b=2)`;
 * lists are joined.
 */
function describeId(id: unknown, depth = 0): string {
  // An id comes from callers, and from clients through them: a cycle or a deep nest is cut short.
  if (depth > 3) return "...";
  if (Array.isArray(id)) return `[${id.map((v) => describeId(v, depth + 1)).join(", ")}]`;
  if (id !== null && typeof id === "object") {
    const parts = Object.entries(id as Record<string, unknown>).map(
      ([k, v]) => `${k}=${typeof v === "object" && v !== null ? describeId(v, depth + 1) : String(v)}`,
    );
    return parts.length === 1 ? parts[0] : `(${parts.join(", ")})`;
  }
  return String(id);
}

/**
 * What the database said when it refused a lock, as carried by {@link PessimisticLockError}.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof PessimisticLockError && e.transactionAborted) await queryRunner.rollbackTransaction(); }
 * ```
 */
export interface DatabaseLockFailure {
  /** The dialect that classified the error: `"postgres"`, `"mysql"`, `"mariadb"`, `"sqlite"`, ... */
  dialect: string;
  /** The database's own code: `"55P03"`, `"1205"`, `"SQLITE_BUSY"`, `"ORA-00054"`, ... */
  code: string;
  /**
   * Whether running the same work again can succeed: true for lock timeouts, deadlocks and
   * serialization failures (retry the whole transaction).
   */
  retryable: boolean;
  /**
   * Whether the database has already rolled the whole transaction back (PostgreSQL: any error;
   * MySQL/MariaDB: a deadlock, but a lock wait timeout only undoes the statement). When true,
   * nothing more can run in the transaction: roll back and retry it from the start.
   */
  transactionAborted: boolean;
}

/**
 * The database refused a lock: a row lock could not be had in time, a deadlock was broken, or a
 * serializable transaction could not be ordered. The driver's error is kept as `cause`.
 *
 * @example
 * ```ts
 * catch (e) {
 *   if (e instanceof PessimisticLockError && e.retryable) return retryLater();
 * }
 * ```
 */
export abstract class PessimisticLockError extends LockingError implements DatabaseLockFailure {
  readonly dialect: string;
  readonly code: string;
  readonly retryable: boolean;
  readonly transactionAborted: boolean;

  protected constructor(message: string, failure: DatabaseLockFailure, cause: unknown) {
    super(`${message} [${failure.dialect} ${failure.code}]${describeCause(cause)}`, { cause });
    this.dialect = failure.dialect;
    this.code = failure.code;
    this.retryable = failure.retryable;
    this.transactionAborted = failure.transactionAborted;
  }
}

/**
 * A lock was not granted within the timeout (or at once, for `timeout: 0` / NOWAIT).
 *
 * @example
 * ```ts
 * await findOneLocked(orders, { id }, LockMode.PESSIMISTIC_WRITE, { timeout: 0 }); // LockTimeoutError if held
 * ```
 */
export class LockTimeoutError extends PessimisticLockError {
  /** @param message what happened, for subclasses that know more (a turn on a shared connection) */
  constructor(
    failure: DatabaseLockFailure,
    cause?: unknown,
    message = "A lock could not be acquired within the lock timeout",
  ) {
    super(message, failure, cause);
  }
}

/**
 * SQLite only: a caller waited longer than the bound for another caller's transaction on the same
 * DataSource to end. A SQLite DataSource has one connection that TypeORM shares with every caller,
 * so the library lets one transaction use it at a time (docs/reliability.md); this is thrown when
 * the transaction holding it neither commits nor rolls back within the bound: `lockTimeout`, else
 * the driver's busy timeout, else 5000 ms. Nothing of the waiting call ran. Usually a query runner
 * whose transaction was begun by hand and never ended (`startTransaction()` without
 * `commitTransaction()`/`rollbackTransaction()` in a `finally`), or a transaction that waits for a
 * concurrent call on the same DataSource (a deadlock the bound breaks).
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof SharedConnectionBusyError) logger.error("a SQLite transaction was left open", e); }
 * ```
 */
export class SharedConnectionBusyError extends LockTimeoutError {
  /** How long the caller waited, in ms. */
  readonly waitedMs: number;

  constructor(dialect: string, waitedMs: number) {
    super(
      { dialect, code: "SHARED_CONNECTION_BUSY", retryable: false, transactionAborted: false },
      undefined,
      `Another caller's transaction on this DataSource's one shared connection did not end within ${waitedMs} ms, so ` +
        "this call did not run. End every transaction begun by hand (queryRunner.startTransaction()) with " +
        "commitTransaction() or rollbackTransaction() in a finally, don't await another call on the same DataSource " +
        "from inside a transaction (use the transaction's manager instead), or raise installLocking()'s lockTimeout",
    );
    this.waitedMs = waitedMs;
  }
}

/**
 * The database found a deadlock (T1 holds A and wants B, T2 holds B and wants A) and chose this
 * transaction as the victim. Retry the whole transaction; lock rows in one order to avoid it.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof DeadlockError) return retryTransaction(); }
 * ```
 */
export class DeadlockError extends PessimisticLockError {
  constructor(failure: DatabaseLockFailure, cause?: unknown) {
    super("Deadlock detected; this transaction was chosen as the victim", failure, cause);
  }
}

/**
 * A serializable or snapshot transaction could not be ordered with a concurrent one (PostgreSQL
 * 40001, MariaDB 1020, SQLite BUSY_SNAPSHOT, Oracle ORA-08177). Retry the whole transaction.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof SerializationError) return retryTransaction(); }
 * ```
 */
export class SerializationError extends PessimisticLockError {
  /** @param message what happened, for subclasses that know more (a Galera certification conflict) */
  constructor(
    failure: DatabaseLockFailure,
    cause?: unknown,
    message = "The transaction could not be serialized with a concurrent one",
  ) {
    super(message, failure, cause);
  }
}

/**
 * A Galera cluster (MariaDB Galera, wsrep) aborted this transaction because a conflicting write
 * committed first on another node: either at certification (the error comes at a write or at
 * COMMIT) or by a brute-force abort of a local transaction holding a row the other node's write
 * needed (the error comes at the next statement). Galera reports it as 1213, the code of a local
 * deadlock; the library tells the two apart and keeps {@link DeadlockError} for real local
 * deadlocks. Nothing of the transaction was written: retry the whole transaction
 * (`retryOnConflict` does, as for every {@link SerializationError}).
 *
 * @example
 * ```ts
 * catch (e) {
 *   if (e instanceof CertificationConflictError) metrics.increment("galera.cross_node_conflict");
 * }
 * ```
 */
export class CertificationConflictError extends SerializationError {
  constructor(failure: DatabaseLockFailure, cause?: unknown) {
    super(
      failure,
      cause,
      "Galera aborted this transaction: a conflicting write committed first on another cluster node " +
        "(certification conflict); nothing of it was written",
    );
  }
}

/**
 * A Galera cluster node (MariaDB Galera, or any wsrep server) refused a statement because it is not
 * ready for clients: it is cut off from the cluster's primary component (a network partition, the
 * other nodes down), or it is still joining. The server answers error 1047 (SQLSTATE 08S01, "WSREP
 * has not yet prepared node for application use") before it runs the statement, so the statement
 * did nothing. The node refuses COMMIT and ROLLBACK too, and would keep the transaction open:
 * when this error arrives inside a transaction the library closes its connection, so the server
 * rolls the transaction back and nothing of it is written (returned to the pool, the connection's
 * next START TRANSACTION would have committed it once the node was back). Run the whole
 * transaction again once the node is back in the primary component, or on another node:
 * `retryOnConflict` retries it, with its backoff, like a conflict. A node rejoins by itself when
 * the partition heals (a few seconds on a small cluster); until then every try on it fails alike,
 * so give the retry a budget that outlasts a short partition, or route the work to another node.
 *
 * @example
 * ```ts
 * try {
 *   await retryOnConflict(dataSource, (manager) => ship(manager, id), { attempts: 20, budgetMs: 30_000 });
 * } catch (e) {
 *   if (e instanceof RetryExhaustedError && e.cause instanceof ClusterNodeNotReadyError) {
 *     return reply.code(503).header("retry-after", "5").send({ error: "database node unavailable" });
 *   }
 *   throw e;
 * }
 * ```
 */
export class ClusterNodeNotReadyError extends LockingError {
  /** The dialect that classified the error: `"mariadb"`, `"mysql"` or `"galera"`. */
  readonly dialect: string;
  /** The server's code: `"1047"`. */
  readonly code: string;
  /** Always true: the statement was not run, so running the transaction again is safe. */
  readonly retryable = true;
  /**
   * Always false: the node itself refused one statement and did not roll the transaction back
   * (it refuses ROLLBACK as well). Inside a transaction the library closes the connection, which
   * ends it on the server: start the transaction again on a fresh connection.
   */
  readonly transactionAborted = false;

  constructor(failure: { dialect: string; code: string }, cause?: unknown) {
    super(
      "This Galera node is not in the cluster's primary component (cut off from the other nodes, or " +
        "still joining) and refused the statement before running it; nothing of it was executed. " +
        `Retry the transaction when the node is back, or on another node [${failure.dialect} ${failure.code}]` +
        describeCause(cause),
      { cause },
    );
    this.dialect = failure.dialect;
    this.code = failure.code;
  }
}

/**
 * A database failure the library turns into one of its own errors as the driver throws it: a
 * refused lock ({@link PessimisticLockError}) or a Galera node outside the primary component
 * ({@link ClusterNodeNotReadyError}).
 *
 * @example
 * ```ts
 * const failure: TranslatedDatabaseError | undefined = mariadbDialect.classifyError(driverError);
 * if (failure?.retryable) scheduleRetry();
 * ```
 */
export type TranslatedDatabaseError = PessimisticLockError | ClusterNodeNotReadyError;

function describeCause(cause: unknown): string {
  return cause instanceof Error && cause.message ? `: ${cause.message}` : "";
}

/**
 * The connection to the database was lost after COMMIT was sent and before its answer came back
 * (a network cut, a server crash or restart, a killed session, a failover): the transaction may
 * have committed or not, and no client can tell which from the error alone. The same holds for a
 * write sent outside any transaction (autocommit: the statement is its own commit), e.g.
 * `repository.update()` without a surrounding transaction.
 *
 * It is never retried by `retryOnConflict` or `@Retryable` by default: if the first attempt did
 * commit, running the work again applies it twice (an increment, a payment, an appended line).
 * Find out what happened instead: give the operation an idempotency key, written in the same
 * transaction, and look for it before doing the work again (docs/ambiguous-commits.md). Work that
 * does so may opt in to retries with `retryOnConflict(ds, work, { retryOutcomeUnknown: true })`.
 *
 * A connection lost *before* COMMIT was sent is not this error: the server rolls the open
 * transaction back when its session ends, so nothing of it was written; the driver's error
 * (TypeORM's `QueryFailedError`) is passed on unchanged.
 *
 * On a Galera cluster the same doubt arises without losing the connection: a node cut off from
 * the others while it replicates the COMMIT answers 1180 ("Error while appending streaming
 * replication fragment(provider status: Not connected to Primary Component)"). It rolled the
 * transaction back itself, but the write set may already have been committed by the nodes that
 * kept the primary component (it then reaches this node when it rejoins). `lost` is `"cluster"`
 * for that case, `"connection"` for the others. A certification conflict is not this error: it is
 * a {@link CertificationConflictError}, and nothing was written.
 *
 * @example
 * ```ts
 * try {
 *   await dataSource.transaction((manager) => pay(manager, paymentId));
 * } catch (e) {
 *   if (e instanceof CommitOutcomeUnknownError) {
 *     const done = await payments.existsBy({ paymentId }); // the idempotency key tells
 *     if (!done) await dataSource.transaction((manager) => pay(manager, paymentId));
 *   } else throw e;
 * }
 * ```
 */
export class CommitOutcomeUnknownError extends LockingError {
  /** The dialect that recognised the connection loss: `"postgres"`, `"mysql"`, `"mariadb"`, ... */
  readonly dialect: string;
  /** The statement whose answer was lost: `"COMMIT"`, or the autocommit write. */
  readonly statement: string;
  /**
   * What was lost: `"connection"` (the connection went before the answer came back) or
   * `"cluster"` (a Galera node lost the primary component while it replicated the commit).
   */
  readonly lost: "connection" | "cluster";
  /** Never: whether it committed must be found out first (see the class comment). */
  readonly retryable = false;

  constructor(init: { dialect: string; statement: string; lost?: "connection" | "cluster" }, cause?: unknown) {
    const lost = init.lost ?? "connection";
    super(describeLostCommit(init.statement, init.dialect, lost, cause), { cause });
    this.dialect = init.dialect;
    this.statement = init.statement;
    this.lost = lost;
  }
}

function describeLostCommit(
  statement: string,
  dialect: string,
  lost: "connection" | "cluster",
  cause: unknown,
): string {
  const shown = statement.length > 200 ? `${statement.slice(0, 200)}...` : statement;
  const what = /^\s*COMMIT\b/i.test(statement) ? "COMMIT" : `the autocommit statement ${JSON.stringify(shown)}`;
  return (
    (lost === "cluster"
      ? `The database node lost its cluster (Galera: not connected to the primary component) while it ` +
        `replicated ${what} [${dialect}]: the other nodes may or may not have committed the transaction. `
      : `The connection to the database was lost after ${what} was sent and before its answer arrived ` +
        `[${dialect}]: the transaction may or may not have committed. `) +
    "It is not retried, since retrying work that did commit applies it twice: look up the " +
    `operation's idempotency key (or the data) to find out${describeCause(cause)}`
  );
}

/**
 * A retry helper ({@link retryOnConflict}, `@Retryable`) gave up: every attempt it was allowed
 * (or its time budget) ended in a retryable conflict. `cause` is the last attempt's error (an
 * `OptimisticLockError`, `DeadlockError`, ...), `attempts` how many were made. Retrying again at
 * once is unlikely to help: report the conflict (HTTP 409) or queue the work.
 *
 * @example
 * ```ts
 * try {
 *   await retryOnConflict(dataSource, (manager) => ship(manager, id), { attempts: 3 });
 * } catch (e) {
 *   if (e instanceof RetryExhaustedError) log.warn(`gave up after ${e.attempts} attempts`, e.cause);
 * }
 * ```
 */
export class RetryExhaustedError extends LockingError {
  /** How many attempts were made (the first run included). */
  readonly attempts: number;
  /** Milliseconds from the first attempt's start to giving up. */
  readonly elapsedMs: number;
  /** Why it stopped: every attempt was used, or the next wait would overrun the time budget. */
  readonly reason: "attempts" | "budget";
  /** The last attempt's error. */
  declare readonly cause: unknown;

  constructor(init: GivingUp) {
    super(describeGivingUp(init), { cause: init.cause });
    this.attempts = init.attempts;
    this.elapsedMs = init.elapsedMs;
    this.reason = init.reason;
  }
}

/** What a {@link RetryExhaustedError} is built from: its own fields. */
type GivingUp = Pick<RetryExhaustedError, "attempts" | "elapsedMs" | "reason" | "cause">;

function describeGivingUp(init: GivingUp) {
  const limit = init.reason === "attempts" ? "every attempt failed" : "the time budget ran out";
  return (
    `Gave up after ${init.attempts} attempt${init.attempts === 1 ? "" : "s"} in ${Math.round(init.elapsedMs)} ms ` +
    `(${limit}); the last one failed with: ${init.cause instanceof Error ? init.cause.message : String(init.cause)}`
  );
}

/**
 * An offline lock (`OfflineLockManager.tryLock`) on this resource is held by someone else
 * and has not expired. `owner` and `expiresAt` say who holds it and until when (by the database's
 * clock), so a UI can say "Kim is editing this order until 14:05".
 *
 * @example
 * ```ts
 * try { handle = await locks.tryLock("Order", orderId, { owner: user.name, ttlMs: 5 * 60_000 }); }
 * catch (e) { if (e instanceof AlreadyLockedError) return res.status(423).json({ owner: e.owner, until: e.expiresAt }); }
 * ```
 */
export class AlreadyLockedError extends LockingError {
  readonly lockType: string;
  readonly lockId: string;
  /** Who holds the lock, as given to `tryLock`. */
  readonly owner: string;
  /** When the lock expires if not extended. */
  readonly expiresAt: Date;

  constructor(init: { lockType: string; lockId: string; owner: string; expiresAt: Date }) {
    super(
      `${init.lockType} ${init.lockId} is locked by ${init.owner} until ${init.expiresAt.toISOString()}; ` +
        "try again after that, or ask them to release it.",
    );
    this.lockType = init.lockType;
    this.lockId = init.lockId;
    this.owner = init.owner;
    this.expiresAt = init.expiresAt;
  }
}

/**
 * An offline lock handle no longer holds its lock: it expired, was released, or was taken by
 * someone else after it expired. Whatever the handle's owner prepared under the lock must be
 * re-checked (reload, take the lock again) before it is written.
 *
 * @example
 * ```ts
 * try { await locks.checkLock(handle); }
 * catch (e) { if (e instanceof OfflineLockLostError) return showReloadDialog(); }
 * ```
 */
export class OfflineLockLostError extends LockingError {
  readonly handle: string;
  constructor(init: { handle: string; lockType: string; lockId: string; operation: string }) {
    super(
      `${init.operation}: the offline lock on ${init.lockType} ${init.lockId} is no longer held by this handle ` +
        "(it expired, was released, or was taken by someone else). Take the lock again and reload.",
    );
    this.handle = init.handle;
  }
}

/**
 * A write of an entity protected by offline locks (`OfflineLockManager.protect`) was made without
 * holding its lock: outside `runHolding(handle, ...)`, with a handle for another resource, or
 * with a handle that no longer holds. Thrown inside the save's transaction before anything is
 * written.
 *
 * @example
 * ```ts
 * await locks.runHolding(handle, () => orders.save(order)); // instead of orders.save(order)
 * ```
 */
export class OfflineLockRequiredError extends LockingError {
  readonly entityName: string;
  /** The lock's type, as given to `protect()` (the entity's name by default). */
  readonly lockType: string;
  readonly lockId: string;
  constructor(init: { entityName: string; lockType: string; lockId: string; reason: string }) {
    super(
      `${init.entityName} ${init.lockId} is protected by the offline lock ${init.lockType}/${init.lockId}, ` +
        `and ${init.reason}. Take it with tryLock() and write inside runHolding(handle, ...). Nothing was written.`,
    );
    this.entityName = init.entityName;
    this.lockType = init.lockType;
    this.lockId = init.lockId;
  }
}

/**
 * A write of an entity covered by an offline lock (`OfflineLockManager.protect`: the entity itself,
 * or a member or junction table of a protected aggregate root) was made past the persistence
 * layer: `repository.update()`, `delete()`, `insert()` of a member, `upsert()`, `increment()`,
 * `softDelete()`, `restore()`, or a query-builder write. Such a statement names no entity, so it
 * cannot be checked against the lock; it is refused, for the lock's holder too, and nothing is
 * written.
 *
 * @example
 * ```ts
 * // instead of orders.update(id, { status: "PAID" }):
 * await locks.runHolding(handle, async () => {
 *   const order = await orders.findOneByOrFail({ id });
 *   order.status = "PAID";
 *   await orders.save(order);
 * });
 * ```
 */
export class OfflineLockBypassError extends LockingConfigurationError {
  readonly entityName: string;
  readonly lockType: string;
  /** What the refused statement was: "update", "delete", "soft-delete", "restore", "insert", "upsert". */
  readonly operation: string;
  constructor(init: { entityName: string; lockType: string; operation: string; coveredBy: string }) {
    super(
      `A query-builder ${init.operation} of ${init.entityName} (repository.update()/delete()/insert()/upsert() or ` +
        `createQueryBuilder()) cannot be checked against the offline lock ${init.lockType} that ${init.coveredBy}; ` +
        "it was refused and nothing was written. Load the entity and save() or remove() it inside " +
        "runHolding(handle, ...).",
    );
    this.entityName = init.entityName;
    this.lockType = init.lockType;
    this.operation = init.operation;
  }
}
