import type { DataSource } from "typeorm";
import type { TestDatabase } from "./databases";

/** A promise with its resolve/reject exposed: a one-shot barrier between two actors. */
export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // a rejected barrier nobody awaits must not crash the run
  return { promise, resolve, reject };
}

/**
 * Waits until some session of the database is waiting for a row lock: the proof that the
 * other actor's statement is really blocked, instead of a sleep that hopes so. With `orUntil`,
 * returns as soon as that promise settles instead (an actor that was not blocked and got on).
 */
export async function waitUntilBlocked(
  db: TestDatabase,
  observer: DataSource,
  options: { timeoutMs?: number; orUntil?: Promise<unknown> } = {},
): Promise<void> {
  const { timeoutMs = 10_000, orUntil } = options;
  let settled = false;
  const stop = () => {
    settled = true;
  };
  orUntil?.then(stop, stop);
  // Only sessions of this test's own database count: other runs (another checkout, a benchmark)
  // may share the server, and their waits must not pass for ours.
  const sql =
    db.family === "postgres"
      ? "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
      : "SELECT count(*) AS n FROM information_schema.innodb_trx t JOIN information_schema.processlist p " +
        "ON p.id = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND p.db = DATABASE()";
  // InnoDB serves information_schema.innodb_trx from a snapshot that it refreshes only when the
  // table was not read for 100 ms: polling faster keeps reading the same stale snapshot forever.
  const pollMs = db.family === "postgres" ? 10 : 150;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (settled) return;
    const [row] = await observer.query(sql);
    if (Number(row.n) > 0) return;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  throw new Error(`no session of ${db.name} was blocked on a lock within ${timeoutMs} ms`);
}

/**
 * Makes the next `event` of `entity` on `writer` (a save's or soft remove's before-event, which
 * TypeORM broadcasts after its pre-load of the row and before its UPDATE) first run `change`,
 * typically a commit on another connection. Only the UPDATE's own version condition can then see
 * that the row moved.
 */
export function changeBeforeNextWrite(
  writer: DataSource,
  entity: Function,
  event: "beforeUpdate" | "beforeSoftRemove",
  change: () => Promise<unknown>,
): void {
  const subscriber = {
    listenTo: () => entity,
    [event]: async () => {
      writer.subscribers.splice(writer.subscribers.indexOf(subscriber as never), 1);
      await change();
    },
  };
  writer.subscribers.push(subscriber as never);
}

/**
 * Pauses `source` just after its next statement matching `statement` ran (its row locks are held),
 * before it sends the statement after it: `paused` resolves then, and that statement goes once
 * `resume` settles. TypeORM awaits `beforeQuery` subscribers before it sends a statement, on every
 * driver and both TypeORM lines (`afterQuery` is not awaited by 0.3's MySQL driver).
 * `dispose()` drops the pause if it was never reached.
 */
export function pauseAfterNextQuery(
  source: DataSource,
  statement: RegExp,
  resume: Promise<unknown>,
): { paused: Promise<void>; dispose: () => void } {
  const paused = deferred();
  let ran = false;
  const dispose = () => {
    const index = source.subscribers.indexOf(subscriber as never);
    if (index >= 0) source.subscribers.splice(index, 1);
  };
  const subscriber = {
    afterQuery: (event: { query: string }) => {
      if (statement.test(event.query)) ran = true;
    },
    beforeQuery: async () => {
      if (!ran) return;
      dispose();
      paused.resolve();
      await resume.catch(() => undefined);
    },
  };
  source.subscribers.push(subscriber as never);
  return { paused: paused.promise, dispose };
}
