/**
 * Hot rows: the rows whose conflicts made an attempt of `retryOnConflict` / `@Retryable` fail.
 * The next attempt reads them with PESSIMISTIC_WRITE (the select hooks do it), so a row that
 * lost a race once is locked before it can lose it again, while every other row stays optimistic.
 *
 * An attempt's hot rows travel with the transaction `retryOnConflict` opens (a mark on its query
 * runner: free for every other query of the process) or, for `@Retryable`, which opens no
 * transaction itself, in an `AsyncLocalStorage` scope entered only by attempts that follow a
 * conflict: on Node.js 20 and 22 an active scope makes every promise slower, so a process that
 * never retries never pays for it.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { ObjectLiteral, QueryRunner } from "typeorm";
import type { WaitPolicy } from "./dialect/lock-dialect";
import { ConcurrencyError, LockingConfigurationError } from "./errors";

/**
 * One row named by a conflict: its entity's name (as TypeORM's metadata names it) and its id map.
 *
 * @example
 * ```ts
 * const row: HotRow = { entityName: "Product", id: { id: 7 } };
 * ```
 */
export interface HotRow {
  readonly entityName: string;
  readonly id: ObjectLiteral;
}

/**
 * The hot rows of one retry loop, gathered over its failed attempts, and how long their locks
 * may be waited for.
 *
 * @internal
 */
export interface HotRows {
  /** By entity name, the id maps of its rows that conflicted. */
  readonly rows: Map<string, ObjectLiteral[]>;
  /** The wait asked for in `lockHotRows: { timeout }`; else the installation's, else the database's. */
  readonly wait?: WaitPolicy;
  /** `performance.now()` at which the retry's time budget ends: no lock is waited for beyond it. */
  readonly deadline?: number;
  /**
   * Set when a read could not be escalated (a Galera node not opted in to node-local locks): the
   * retries then wait their backoff again, since no lock orders them.
   */
  unlockable?: boolean;
}

/**
 * Options of the escalation (`RetryOptions.lockHotRows`).
 *
 * @example
 * ```ts
 * const hot: HotRowOptions = { timeout: 2000 }; // wait at most 2 s for a hot row's lock
 * ```
 */
export interface HotRowOptions {
  /**
   * How long the next attempt waits for a hot row's lock, in ms (> 0). Default: the
   * installation's `lockTimeout` when it is a wait, else the database's own; never past `budgetMs`.
   */
  timeout?: number;
}

/** Starts the hot rows of one retry loop; `undefined` when escalation is off. @internal */
export function newHotRows(
  option: boolean | HotRowOptions | undefined,
  deadline: number | undefined,
): HotRows | undefined {
  if (option === false) return undefined;
  const timeout = typeof option === "object" ? option.timeout : undefined;
  return { rows: new Map(), wait: timeout === undefined ? undefined : { kind: "wait", ms: timeout }, deadline };
}

/** Refuses a `lockHotRows` option that is not `true`, `false` or `{ timeout: ms > 0 }`. @internal */
export function assertHotRowOption(option: unknown, where: string): void {
  if (option === undefined || typeof option === "boolean") return;
  const timeout = (option as HotRowOptions | null)?.timeout;
  if (
    typeof option === "object" &&
    option !== null &&
    (timeout === undefined || (typeof timeout === "number" && Number.isFinite(timeout) && timeout > 0))
  ) {
    return;
  }
  throw new LockingConfigurationError(
    `${where}: lockHotRows must be true, false or { timeout: ms > 0 }, got ${JSON.stringify(option)}.`,
  );
}

/**
 * Adds the rows a conflict names (an `OptimisticLockError`: its entity and id, for an aggregate
 * its root; a bulk remove names several). Returns whether it named a row not already hot: a
 * deadlock or a serialization failure names no row, and its next attempt runs as the first did.
 *
 * @internal
 */
export function noteHotRows(hot: HotRows, conflict: unknown): boolean {
  if (!(conflict instanceof ConcurrencyError) || !conflict.retryable) return false;
  const ids = (Array.isArray(conflict.id) ? conflict.id : [conflict.id]).filter(
    (id): id is ObjectLiteral => typeof id === "object" && id !== null,
  );
  const known = hot.rows.get(conflict.entityName) ?? [];
  const fresh = ids.filter((id) => !known.some((each) => sameId(each, id)));
  if (fresh.length === 0) return false;
  known.push(...fresh);
  hot.rows.set(conflict.entityName, known);
  return true;
}

function sameId(a: ObjectLiteral, b: ObjectLiteral): boolean {
  return JSON.stringify(a, plain) === JSON.stringify(b, plain);
}

function plain(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? String(value) : value;
}

const byRunner = new WeakMap<QueryRunner, HotRows>();
const scope = new AsyncLocalStorage<HotRows>();

/** Marks the transaction `retryOnConflict` opened for an attempt with the loop's hot rows. @internal */
export function markHotRows(runner: QueryRunner | undefined, hot: HotRows | undefined): void {
  if (runner && hot && hot.rows.size > 0) byRunner.set(runner, hot);
}

/** Removes the mark when the attempt is over (the runner object is not reused, but may be held). @internal */
export function unmarkHotRows(runner: QueryRunner | undefined): void {
  if (runner) byRunner.delete(runner);
}

/** Runs a `@Retryable` attempt with the loop's hot rows in scope (only when there are some). @internal */
export function runWithHotRows<T>(hot: HotRows | undefined, work: () => T): T {
  return hot && hot.rows.size > 0 ? scope.run(hot, work) : work();
}

/** The hot rows that apply to a query run on `runner`, if any. @internal */
export function hotRowsOf(runner: QueryRunner): HotRows | undefined {
  return byRunner.get(runner) ?? scope.getStore();
}
