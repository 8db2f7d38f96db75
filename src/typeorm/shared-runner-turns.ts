/**
 * One transaction at a time on a DataSource whose callers all share one query runner (SQLite).
 *
 * TypeORM's SQLite drivers return the same runner from every `createQueryRunner()`. While caller
 * A's transaction is open on it, caller B's `save()` finds "a transaction already active", runs
 * inside A's transaction without BEGIN or COMMIT of its own and returns; A rolls back and B's
 * write is gone. B's reads see A's uncommitted writes. So the runner is taken in turns: whoever
 * uses it while another caller holds it waits until that caller is done, then goes on (beginning
 * its own transaction if it needs one).
 *
 * A caller is an async context (AsyncLocalStorage). A turn is held
 * - for the whole of an entry point: `transaction()`, a persist (`save`, `remove`, ...), a write
 *   query builder's `execute()`, and any single query made outside them; everything the holder
 *   awaits inherits its context, so the holder's own nested calls (a default repository's `save()`
 *   inside `dataSource.transaction(cb)`, a nested transaction's savepoint) never wait;
 * - from a `startTransaction()` made by hand outside any turn until the transaction ends (commit or
 *   rollback). There the caller can only be marked with `enterWith`, which also marks whatever the
 *   same synchronous code starts afterwards (see docs/reliability.md).
 *
 * A turn that is never given back (a transaction begun by hand and never ended) would make every
 * other caller wait forever: the wait is bounded, then ends in a SharedConnectionBusyError.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { DataSource, QueryRunner } from "typeorm";
import { dialectForType } from "../dialect";
import { SharedConnectionBusyError } from "../errors";
import type { Installation } from "../installation";
import { dataSourceOf, type Method, type TypeormInternals, wrap } from "./internals";
import { patchRunnerPrototypes } from "./runner-prototypes";

/**
 * One caller: an object so that it can be told apart from every other. `within` is the caller
 * whose work this one runs inside (a turn on another DataSource taken in the middle of a turn on
 * this one), which still counts as the holder's own work when it comes back to this DataSource.
 */
class Caller {
  constructor(readonly within?: Caller) {}
}

/** Whether the current context is the holder of `turns` or runs inside its work. */
function holdsTurn(turns: Turns): boolean {
  for (let caller = callers.getStore(); caller; caller = caller.within) {
    if (caller === turns.holder) return true;
  }
  return false;
}

interface Waiter {
  caller: Caller;
  grant(): void;
  timer: ReturnType<typeof setTimeout>;
}

interface Turns {
  dialect: string;
  /** How long a caller waits for its turn, in ms. */
  boundMs: number;
  holder?: Caller;
  /** Set when the holder's turn lasts until its hand-begun transaction ends. */
  heldByTransaction: boolean;
  waiting: Waiter[];
}

/** When neither `lockTimeout` nor the driver's busy timeout says: better-sqlite3's own default. */
const DEFAULT_BOUND_MS = 5000;

const callers = new AsyncLocalStorage<Caller>();
const turnsOf = new WeakMap<DataSource, Turns>();

/**
 * Makes the callers of `dataSource` take turns on its runner if its dialect says they share one;
 * called at every activation (the latest options give the bound). @internal
 */
export function takeTurnsIfShared(dataSource: DataSource, installation: Installation): void {
  const dialect = installation.options.dialect ?? dialectForType(String(dataSource.options.type));
  if (!dialect?.sharesOneRunner) {
    turnsOf.delete(dataSource);
    return;
  }
  const existing = turnsOf.get(dataSource);
  const boundMs = boundOf(dataSource, installation);
  if (existing) {
    existing.boundMs = boundMs;
    return;
  }
  turnsOf.set(dataSource, { dialect: dialect.name, boundMs, heldByTransaction: false, waiting: [] });
}

function boundOf(dataSource: DataSource, installation: Installation): number {
  const wait = installation.defaultWait;
  if (wait?.kind === "wait" && wait.ms > 0) return wait.ms;
  const options = dataSource.options as { timeout?: unknown; busyTimeout?: unknown };
  const driverBound = options.timeout ?? options.busyTimeout;
  return typeof driverBound === "number" && driverBound > 0 ? driverBound : DEFAULT_BOUND_MS;
}

/** Puts the turn-taking into TypeORM's entry points and runner classes; once. @internal */
export function installSharedRunnerTurns(internals: TypeormInternals): void {
  const entityManager = (require("typeorm") as { EntityManager: { prototype: Record<string, unknown> } }).EntityManager
    .prototype;
  const inTurnOfOwner = (original: Method): Method =>
    function (this: object, ...args: unknown[]) {
      return inTurn(dataSourceOf(this as QueryRunner), () => original.apply(this, args));
    };
  // Entry points that decide "a transaction is already active, join it": the wait comes before.
  wrap(entityManager, "transaction", inTurnOfOwner);
  wrap(internals.entityPersistExecutor, "execute", inTurnOfOwner);
  for (const builder of [
    internals.insertQueryBuilder,
    internals.updateQueryBuilder,
    internals.deleteQueryBuilder,
    internals.softDeleteQueryBuilder,
  ]) {
    wrap(builder, "execute", inTurnOfOwner);
  }
  // A SELECT decides "a transaction is active, so a pessimistic lock is allowed" before running.
  wrap(internals.selectQueryBuilder, "getRawAndEntities", inTurnOfOwner);
  wrap(internals.selectQueryBuilder, "getManyAndCount", inTurnOfOwner);
  patchRunnerPrototypes(takeTurnsOnRunner);
  // An AsyncLocalStorage follows async contexts only from its first run() or enterWith() on. Were
  // that first use the enterWith() of a transaction begun by hand, it would mark the context every
  // later one descends from, and every caller of the process would pass for that transaction's.
  callers.run(new Caller(), () => undefined);
}

function takeTurnsOnRunner(proto: Record<string, unknown>): void {
  // Any other statement (a find(), dataSource.query()) is a turn of its own.
  wrap(
    proto,
    "query",
    (query) =>
      function (this: QueryRunner, ...args: unknown[]) {
        return inTurn(dataSourceOf(this), () => query.apply(this, args));
      },
  );
  wrap(
    proto,
    "startTransaction",
    (start) =>
      function (this: QueryRunner, ...args: unknown[]) {
        const turns = turnsOf.get(dataSourceOf(this));
        if (!turns || holdsTurn(turns)) return start.apply(this, args);
        // Begun by hand outside any turn: the turn lasts until the transaction ends, and the caller
        // is marked for its later calls (commit, its manager's saves) by entering its context.
        const caller = new Caller(callers.getStore());
        callers.enterWith(caller);
        return (async () => {
          await acquire(turns, caller);
          turns.heldByTransaction = true;
          try {
            return await start.apply(this, args);
          } finally {
            if (!this.isTransactionActive) release(turns, caller);
          }
        })();
      },
  );
  for (const name of ["commitTransaction", "rollbackTransaction"]) {
    wrap(
      proto,
      name,
      (end) =>
        function (this: QueryRunner, ...args: unknown[]) {
          const turns = turnsOf.get(dataSourceOf(this));
          const holder = turns?.holder;
          if (!turns || !holder || !turns.heldByTransaction) return end.apply(this, args);
          // Ending a transaction begun by hand never waits, whichever context ends it (begun in a
          // helper, committed by its caller): it ends the holder's transaction, it adds nothing to it.
          return callers.run(holder, async () => {
            try {
              return await end.apply(this, args);
            } finally {
              if (!this.isTransactionActive) release(turns, holder);
            }
          });
        },
    );
  }
}

/** Runs `work` in the caller's turn on `dataSource`, waiting for it first unless the caller holds it. */
function inTurn<T>(dataSource: DataSource, work: () => Promise<T>): Promise<T> {
  const turns = turnsOf.get(dataSource);
  if (!turns || holdsTurn(turns)) return work();
  const caller = new Caller(callers.getStore());
  return callers.run(caller, async () => {
    await acquire(turns, caller);
    try {
      return await work();
    } finally {
      // Every transaction begun in an entry point ends in it; a savepoint begun by hand in it is
      // part of the holder's transaction.
      release(turns, caller);
    }
  });
}

function acquire(turns: Turns, caller: Caller): Promise<void> | void {
  if (turns.holder === undefined) {
    turns.holder = caller;
    return;
  }
  return new Promise<void>((resolve, reject) => {
    const waiter: Waiter = {
      caller,
      grant: resolve,
      timer: setTimeout(() => {
        turns.waiting.splice(turns.waiting.indexOf(waiter), 1);
        reject(new SharedConnectionBusyError(turns.dialect, turns.boundMs));
      }, turns.boundMs),
    };
    turns.waiting.push(waiter);
  });
}

function release(turns: Turns, caller: Caller): void {
  if (turns.holder !== caller) return;
  turns.heldByTransaction = false;
  const next = turns.waiting.shift();
  turns.holder = next?.caller;
  if (next) {
    clearTimeout(next.timer);
    next.grant();
  }
}
