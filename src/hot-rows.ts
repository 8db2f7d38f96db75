/**
 * Hot rows: the rows whose conflicts made an attempt of `retryOnConflict` / `@Retryable` fail.
 * The next attempt reads them with PESSIMISTIC_WRITE (the select hooks do it), so a row that
 * lost a race once is locked before it can lose it again, while every other row stays optimistic.
 *
 * A row that conflicted also stays hot for a short while (`rememberMs`) for later retry loops on
 * the same DataSource, so a row many clients fight over is locked from their first attempt on.
 *
 * An attempt's hot rows travel with the transaction `retryOnConflict` opens (a mark on its query
 * runner: free for every other query of the process) or, for `@Retryable`, which opens no
 * transaction itself, in an `AsyncLocalStorage` scope entered only by attempts that follow a
 * conflict or start while a row is remembered: on Node.js 20 and 22 an active scope makes every
 * promise slower, so a process without conflicts never pays for it.
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
  /** How long a row this loop finds hot stays hot for later loops (ms; 0: not at all). */
  readonly rememberMs: number;
  /** Whether the reads also lock the rows remembered from earlier loops on their DataSource. */
  readonly remembered: boolean;
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
  /**
   * How long, in ms, a row that conflicted stays hot for later retry loops on the same
   * DataSource: their first attempt already reads it with the lock, instead of losing the race
   * once more before locking it. `0` remembers nothing (only the loop that met the conflict locks
   * the row) and turns the memory off for the loop: its reads do not lock the rows other loops
   * remember either. Default {@link DEFAULT_REMEMBER_MS}; each new conflict on the row starts the
   * window again.
   */
  rememberMs?: number;
}

/**
 * How long a row that conflicted stays hot for later retry loops by default, in ms: long enough
 * that a row many clients fight over stays locked while they do, short enough that a row that
 * conflicted once goes back to optimistic reads almost at once (measured: docs/benchmarks.md,
 * "Hot rows").
 *
 * @example
 * ```ts
 * await retryOnConflict(dataSource, work, { lockHotRows: { rememberMs: DEFAULT_REMEMBER_MS * 2 } });
 * ```
 */
export const DEFAULT_REMEMBER_MS = 1000;

/**
 * Starts the hot rows of one retry loop (escalation is on: `lockHotRows` is not `false`). The
 * loop's reads also lock the rows earlier loops found hot (see {@link anyRememberedHotRows}),
 * unless `rememberMs` is 0: that turns the memory off for the loop, both ways.
 *
 * @internal
 */
export function newHotRows(option: true | HotRowOptions | undefined, deadline: number | undefined): HotRows {
  const timeout = typeof option === "object" ? option.timeout : undefined;
  const rememberMs = (typeof option === "object" ? option.rememberMs : undefined) ?? DEFAULT_REMEMBER_MS;
  return {
    rows: new Map(),
    wait: timeout === undefined ? undefined : { kind: "wait", ms: timeout },
    deadline,
    rememberMs,
    remembered: rememberMs > 0,
  };
}

/** Refuses a `lockHotRows` option that is not `true`, `false` or `{ timeout: ms > 0 }`. @internal */
export function assertHotRowOption(option: unknown, where: string): void {
  if (option === undefined || typeof option === "boolean") return;
  const { timeout, rememberMs } = (option ?? {}) as HotRowOptions;
  if (
    typeof option === "object" &&
    option !== null &&
    // Number.isFinite() is false for anything that is not a number: no typeof needed.
    (timeout === undefined || (Number.isFinite(timeout) && timeout > 0)) &&
    (rememberMs === undefined || (Number.isFinite(rememberMs) && rememberMs >= 0))
  ) {
    return;
  }
  throw new LockingConfigurationError(
    `${where}: lockHotRows must be true, false or { timeout?: ms > 0, rememberMs?: ms >= 0 }, got ${JSON.stringify(option)}.`,
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
  if (runner && hot) byRunner.set(runner, hot);
}

/** Removes the mark when the attempt is over (the runner object is not reused, but may be held). @internal */
export function unmarkHotRows(runner: QueryRunner | undefined): void {
  if (runner) byRunner.delete(runner);
}

/** Runs a `@Retryable` attempt with the loop's hot rows in scope (only when there are some). @internal */
export function runWithHotRows<T>(hot: HotRows | undefined, work: () => T): T {
  // Stryker disable next-line ConditionalExpression,EqualityOperator: a scope with no rows to lock changes no read, only the cost of every promise (docs/testing.md)
  return hot && (hot.rows.size > 0 || hot.remembered) ? scope.run(hot, work) : work();
}

/** The hot rows that apply to a query run on `runner`, if any. @internal */
export function hotRowsOf(runner: QueryRunner): HotRows | undefined {
  return byRunner.get(runner) ?? scope.getStore();
}

/**
 * The ids of `entityName` that a read under `hot` locks: the rows its loop met conflicts on,
 * and, when the loop uses the memory, the rows remembered on `dataSource`; `undefined` if none.
 *
 * @internal
 */
export function hotIdsOf(hot: HotRows, dataSource: object, entityName: string): ObjectLiteral[] | undefined {
  const own = hot.rows.get(entityName);
  if (!hot.remembered) return own;
  const remembered = rememberedIds(dataSource, entityName);
  if (!remembered) return own;
  // A row both its own and remembered is listed twice: the read keys the ids, which merges them.
  return [...(own ?? []), ...remembered];
}

// The memory of hot rows across retry loops: per DataSource (a WeakMap, so a closed one is
// forgotten), per entity, the rows' ids and until when they stay hot. Bounded per DataSource so
// a conflict storm over many rows cannot grow it without end; an expired row is dropped when
// its entity is next looked at.
const MAX_REMEMBERED_PER_DATA_SOURCE = 1024;
const memories = new WeakMap<object, Map<string, Map<string, { id: ObjectLiteral; until: number }>>>();
/** When the last remembered row of any DataSource stops being hot: a loop checks it, and nothing else, to know whether to look. */
let rememberedUntil = 0;

/** Whether any DataSource remembers a hot row now. A retry loop that starts when none does pays nothing for the memory. @internal */
export function anyRememberedHotRows(): boolean {
  return performance.now() < rememberedUntil;
}

/** Remembers the rows a conflict named, on the DataSource it arose on, for `ms`. @internal */
export function rememberHotRows(dataSource: object | undefined, conflict: unknown, ms: number): void {
  if (!dataSource || ms <= 0 || !(conflict instanceof ConcurrencyError) || !conflict.retryable) return;
  const ids = (Array.isArray(conflict.id) ? conflict.id : [conflict.id]).filter(
    (id): id is ObjectLiteral => typeof id === "object" && id !== null,
  );
  if (ids.length === 0) return;
  const memory = memories.get(dataSource) ?? new Map();
  memories.set(dataSource, memory);
  const rows = memory.get(conflict.entityName) ?? new Map();
  memory.set(conflict.entityName, rows);
  const until = performance.now() + ms;
  for (const id of ids) {
    const key = JSON.stringify(id, plain);
    rows.delete(key); // re-inserted last: the oldest entry is the first one evicted
    rows.set(key, { id, until });
  }
  let size = 0;
  for (const each of memory.values()) size += each.size;
  for (const each of memory.values()) {
    for (const key of each.keys()) {
      if (size <= MAX_REMEMBERED_PER_DATA_SOURCE) break;
      each.delete(key);
      size--;
    }
  }
  rememberedUntil = Math.max(rememberedUntil, until);
}

// The lock timeouts of hot rows' locked reads: only those mean the retry's budget ran out (the
// read waited at most what was left of it); a lock the work itself asked for keeps its own error.
const hotRowLockTimeouts = new WeakSet<object>();

/** Notes that `error` ended a hot row's locked read. @internal */
export function noteHotRowLockTimeout(error: object): void {
  hotRowLockTimeouts.add(error);
}

/** Whether `error` ended a hot row's locked read (see `noteHotRowLockTimeout`). @internal */
export function endedHotRowRead(error: unknown): boolean {
  return typeof error === "object" && error !== null && hotRowLockTimeouts.has(error);
}

/** Forgets every row remembered on `dataSource` (a benchmark's cells must not inherit each other's). @internal */
export function forgetHotRows(dataSource: object): void {
  memories.delete(dataSource);
}

/** The ids of `entityName` still hot on `dataSource`; expired ones are dropped. */
function rememberedIds(dataSource: object, entityName: string): ObjectLiteral[] | undefined {
  const rows = memories.get(dataSource)?.get(entityName);
  if (!rows) return undefined;
  const now = performance.now();
  const ids: ObjectLiteral[] = [];
  for (const [key, row] of rows) {
    if (row.until <= now) rows.delete(key);
    else ids.push(row.id);
  }
  return ids.length > 0 ? ids : undefined;
}
