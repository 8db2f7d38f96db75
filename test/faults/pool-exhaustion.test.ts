/**
 * Pool exhaustion (issue 18): more workers than connections, each locking two rows in random order
 * (PESSIMISTIC_WRITE with a lock timeout) and incrementing both, under retryOnConflict.
 *
 * - With lockInOrder: no deadlock can happen, and none does.
 * - Without it (the rows locked in the order drawn, with a little work between the two locks, as
 *   real code has): deadlocks happen, every failure is typed (DeadlockError or LockTimeoutError)
 *   and retried until the operation succeeds.
 * - Either way: no lock wait outlasts its timeout (by more than a bound generous for a loaded CI
 *   machine; lockInOrder's call takes two locks, so twice its timeout), no operation hangs waiting for a connection (a connection not given back to the pool
 *   after a failure would starve the others), and the rows end where the operations say: every
 *   increment applied exactly once.
 *
 * SQLite has one writer per database and no pool: its "pool" is 4 connections (DataSources) handed
 * out by a semaphore, and PESSIMISTIC_WRITE takes the database write lock, so two rows in any
 * order are one lock: there too no deadlock, and a busy writer is a LockTimeoutError (SQLITE_BUSY),
 * retried. Its lock timeout is 0: better-sqlite3 waits for a busy database synchronously, which
 * would block the very event loop the holder needs to commit. A NOWAIT writer is not queued, so
 * one worker can lose the race for many seconds (the longest operation figure shows it): on
 * SQLite, one writer connection serves better than several.
 *
 * Figures (deadlocks, lock timeouts, retries, times) are printed and written to
 * test-results/pool-exhaustion.<TypeORM line>.json for docs/reliability.md.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Column, type DataSource, Entity, type EntityManager, PrimaryColumn } from "typeorm";
import {
  DeadlockError,
  installLocking,
  LockMode,
  LockTimeoutError,
  lockInOrder,
  lockQuery,
  retryOnConflict,
  Versioned,
} from "../../src";
import {
  closeAll,
  deferred,
  describeEachDatabase,
  openAlongside,
  openDataSources,
  type TestDatabase,
} from "../support/databases";
import { bySize, faultsProfile } from "./profile";

declare const TYPEORM_LINE: string;

@Entity({ name: "tl_pool_slot" })
class Slot {
  @PrimaryColumn() id!: number;
  @Column() value!: number;
  @Versioned() version!: number;
}

const POOL_SIZE = 4;
const WORKERS = 16;
const ROWS = 4;
const OPERATIONS_PER_WORKER = bySize(25, 3);
/** Work between the two locks: what widens the window in which random order deadlocks. */
const GAP_MS = 15;
/**
 * How much longer than its timeout a lock wait may take on a loaded 2-core CI machine (the
 * statement's own round trips, the event loop of 16 workers, a deadlock detector's period).
 */
const LOCK_WAIT_SLACK_MS = 4_000;
/** The longest one operation may take, pool waits and retries included: far beyond a healthy run. */
const OPERATION_BOUND_MS = 60_000;

interface Figures {
  database: string;
  variant: "lockInOrder" | "random order";
  operations: number;
  deadlocks: number;
  lockTimeouts: number;
  retries: number;
  otherErrors: string[];
  lockTimeoutMs: number;
  /** Rows locked by one timed call: lockInOrder locks both (one statement each), else one. */
  locksPerWait: number;
  maxLockWaitMs: number;
  maxOperationMs: number;
  meanOperationMs: number;
  wallMs: number;
  opsPerSecond: number;
}

const figures: Figures[] = [];

afterAll(() => {
  if (figures.length === 0) return;
  const line = typeof TYPEORM_LINE === "string" ? TYPEORM_LINE : "typeorm";
  console.log(
    `pool exhaustion (${line}, ${faultsProfile()} profile, pool ${POOL_SIZE}, ${WORKERS} workers, ${ROWS} rows):\n` +
      figures
        .map(
          (f) =>
            `  ${f.database.padEnd(18)} ${f.variant.padEnd(13)} ${f.operations} ops in ${f.wallMs} ms ` +
            `(${f.opsPerSecond} ops/s): ${f.deadlocks} deadlocks, ${f.lockTimeouts} lock timeouts, ${f.retries} retries; ` +
            `longest lock wait ${f.maxLockWaitMs} ms (${f.locksPerWait} lock(s), timeout ${f.lockTimeoutMs} ms each), ` +
            `longest operation ${f.maxOperationMs} ms`,
        )
        .join("\n"),
  );
  const folder = join(__dirname, "..", "..", "test-results");
  mkdirSync(folder, { recursive: true });
  writeFileSync(
    join(folder, `pool-exhaustion.${line}.json`),
    `${JSON.stringify({ profile: faultsProfile(), poolSize: POOL_SIZE, workers: WORKERS, rows: ROWS, figures }, null, 2)}\n`,
  );
});

/** Connections handed out one transaction at a time: TypeORM's pool, or a semaphore over SQLite connections. */
interface Pool {
  use<T>(work: (source: DataSource) => Promise<T>): Promise<T>;
}

function semaphorePool(sources: DataSource[]): Pool {
  const free = [...sources];
  const waiting: ((source: DataSource) => void)[] = [];
  return {
    async use(work) {
      const source = free.pop() ?? (await new Promise<DataSource>((resolve) => waiting.push(resolve)));
      try {
        return await work(source);
      } finally {
        const next = waiting.shift();
        if (next) next(source);
        else free.push(source);
      }
    },
  };
}

function randomPair(): [number, number] {
  const first = 1 + Math.floor(Math.random() * ROWS);
  let second = 1 + Math.floor(Math.random() * (ROWS - 1));
  if (second >= first) second++;
  return [first, second];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or a failure naming `what` once `ms` have passed: a hang fails the test, not the run. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

describeEachDatabase((db: TestDatabase) => {
  const sqlite = db.family === "sqlite";
  // PostgreSQL looks for deadlocks after deadlock_timeout (1 s by default): 100 ms, set for these
  // sessions only, keeps a deadlock a deadlock (not a lock timeout) with a 1 s lock timeout.
  // MariaDB finds them at once and waits in whole seconds.
  const lockTimeoutMs = sqlite ? 0 : 1_000;
  let sources: DataSource[];
  let pool: Pool;

  beforeAll(async () => {
    const extra = sqlite
      ? { timeout: 0 }
      : db.family === "postgres"
        ? { poolSize: POOL_SIZE, extra: { options: "-c deadlock_timeout=100ms" } }
        : { poolSize: POOL_SIZE };
    const [first] = await openDataSources(db, [Slot], { extra });
    sources = [first];
    if (sqlite) while (sources.length < POOL_SIZE) sources.push(await openAlongside(first, { timeout: 0 }));
    for (const source of sources) installLocking(source);
    pool = sqlite ? semaphorePool(sources) : { use: (work) => work(first) };
  });
  afterAll(() => closeAll(...sources));

  async function resetRows(): Promise<void> {
    const slots = sources[0].getRepository(Slot);
    await slots.clear();
    await slots.insert(Array.from({ length: ROWS }, (_, i) => ({ id: i + 1, value: 0, version: 1 })));
  }

  /**
   * A connection a failed attempt did not give back would starve the pool: all POOL_SIZE of them
   * must be had at once, each holding a transaction open until the last one has begun.
   */
  async function expectEveryConnectionBack(): Promise<void> {
    let begun = 0;
    const all = deferred();
    const holders = Array.from({ length: POOL_SIZE }, () =>
      pool.use((source) =>
        source.transaction(async (manager) => {
          await manager.query("SELECT 1");
          if (++begun === POOL_SIZE) all.resolve();
          await all.promise;
        }),
      ),
    );
    await within(Promise.all(holders), 10_000, `taking all ${POOL_SIZE} connections of the pool at once`);
  }

  async function run(variant: Figures["variant"]): Promise<Figures> {
    await resetRows();
    const lockWaits: number[] = [];
    const operationTimes: number[] = [];
    const f: Figures = {
      database: db.name,
      variant,
      operations: WORKERS * OPERATIONS_PER_WORKER,
      deadlocks: 0,
      lockTimeouts: 0,
      retries: 0,
      otherErrors: [],
      lockTimeoutMs,
      locksPerWait: variant === "lockInOrder" ? 2 : 1,
      maxLockWaitMs: 0,
      maxOperationMs: 0,
      meanOperationMs: 0,
      wallMs: 0,
      opsPerSecond: 0,
    };
    const options = { timeout: lockTimeoutMs };

    /** Locks one row, timing the wait whatever its outcome. */
    async function timed<T>(lock: () => Promise<T>): Promise<T> {
      const started = performance.now();
      try {
        return await lock();
      } finally {
        lockWaits.push(performance.now() - started);
      }
    }

    async function transfer(manager: EntityManager, [a, b]: [number, number]): Promise<void> {
      let rows: Slot[];
      if (variant === "lockInOrder") {
        const targets = [
          { entity: Slot, id: a },
          { entity: Slot, id: b },
        ];
        rows = (await timed(() => lockInOrder(manager, targets, LockMode.PESSIMISTIC_WRITE, options))) as Slot[];
        await sleep(GAP_MS);
      } else {
        rows = [];
        for (const id of [a, b]) {
          const query = manager.createQueryBuilder(Slot, "slot").whereInIds(id);
          rows.push((await timed(() => lockQuery(query, LockMode.PESSIMISTIC_WRITE, options).getOneOrFail())) as Slot);
          if (rows.length === 1) await sleep(GAP_MS);
        }
      }
      for (const row of rows) row.value += 1;
      await manager.save(rows);
    }

    const started = performance.now();
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        for (let i = 0; i < OPERATIONS_PER_WORKER; i++) {
          const pair = randomPair();
          const operationStarted = performance.now();
          const operation = pool.use((source) =>
            retryOnConflict(source, (manager) => transfer(manager, pair), {
              retryLockTimeouts: true,
              // SQLite: a NOWAIT writer is not queued, so one can lose the race for the write lock
              // for as long as others keep winning it (seconds, measured); its bound is the
              // operation's time, not a count of attempts.
              attempts: sqlite ? 100_000 : 200,
              backoff: { initialMs: 5, maxMs: 100 },
              onRetry: ({ error }) => {
                f.retries++;
                if (error instanceof DeadlockError) f.deadlocks++;
                else if (error instanceof LockTimeoutError) f.lockTimeouts++;
                else f.otherErrors.push(String(error));
              },
            }),
          );
          await within(operation, OPERATION_BOUND_MS, `an operation (${variant})`);
          operationTimes.push(performance.now() - operationStarted);
        }
      }),
    );
    f.wallMs = Math.round(performance.now() - started);
    f.opsPerSecond = Math.round((f.operations / f.wallMs) * 1000);
    f.maxLockWaitMs = Math.round(Math.max(...lockWaits));
    f.maxOperationMs = Math.round(Math.max(...operationTimes));
    f.meanOperationMs = Math.round(operationTimes.reduce((sum, t) => sum + t, 0) / operationTimes.length);
    figures.push(f);

    await expectEveryConnectionBack();
    // Every operation applied exactly once: each added 1 to two rows.
    const rows = await sources[0].getRepository(Slot).find();
    expect(rows.reduce((sum, row) => sum + row.value, 0)).toBe(2 * f.operations);
    expect(f.otherErrors).toEqual([]);
    expect(f.maxLockWaitMs).toBeLessThanOrEqual(f.locksPerWait * lockTimeoutMs + LOCK_WAIT_SLACK_MS);
    expect(f.maxOperationMs).toBeLessThanOrEqual(OPERATION_BOUND_MS);
    return f;
  }

  it(`lockInOrder: ${WORKERS} workers on a pool of ${POOL_SIZE}, 0 deadlocks, no wait past its timeout, every increment once`, async () => {
    const f = await run("lockInOrder");
    expect(f.deadlocks).toBe(0);
  });

  it(`random order: every deadlock typed and retried, no wait past its timeout, every increment once`, async () => {
    const f = await run("random order");
    if (sqlite) {
      // One database write lock: two rows in any order cannot deadlock; a busy writer times out.
      expect(f.deadlocks).toBe(0);
    } else {
      // The scenario must provoke what it claims to survive.
      expect(f.deadlocks).toBeGreaterThan(0);
    }
  });
});
