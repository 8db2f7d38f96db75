/**
 * retryOnConflict and @Retryable on real concurrent connections: workers racing on one counter
 * row, conflicts provoked by a second connection between a load and its save, and a real
 * deadlock on the databases that have row locks.
 */
import type { DataSource, EntityManager } from "typeorm";
import {
  assertVersion,
  DeadlockError,
  installLocking,
  isRetryableConflict,
  LockingConfigurationError,
  LockMode,
  LockTimeoutError,
  OptimisticLockError,
  Retryable,
  RetryExhaustedError,
  type RetryOptions,
  retryOnConflict,
  SerializationError,
  StaleVersionError,
  updateVersioned,
  withLockMode,
} from "../src";
import { backoffDelay } from "../src/retry";
import { Counter } from "./fixtures/counter";
import { Account } from "./fixtures/lock-entities";
import { closeAll, describeEachDatabase, openAlongside, openDataSources, type TestDatabase } from "./support/databases";
import { deferred, waitUntilBlocked } from "./support/interleaving";

const WORKERS = 8;
const INCREMENTS = 25;

describeEachDatabase((db) => {
  let first: DataSource;
  let second: DataSource;
  let workers: DataSource[];

  beforeAll(async () => {
    // SQLite: a DataSource is one connection, and TypeORM nests concurrent transactions on it as
    // savepoints, so each worker gets its own connection; a busy timeout of 0 makes a second
    // writer fail at once (SQLITE_BUSY) instead of blocking the event loop its peers run on.
    const extra = db.family === "sqlite" ? { timeout: 0 } : {};
    [first, second] = await openDataSources(db, [Counter, Account], { count: 2, extra });
    workers = [first, second];
    if (db.family === "sqlite") {
      while (workers.length < WORKERS) workers.push(await openAlongside(first, extra));
    }
    for (const source of workers) installLocking(source);
  });
  afterAll(() => closeAll(...workers));

  let nextId = 1;
  async function newCounter(): Promise<number> {
    const id = nextId++;
    await first.getRepository(Counter).insert({ id, value: 0, version: 1 });
    return id;
  }

  async function increment(manager: EntityManager, id: number): Promise<void> {
    const counter = await manager.findOneByOrFail(Counter, { id });
    counter.value += 1;
    await manager.save(counter);
  }

  /** On SQLite the one writer lock is the contended resource: a second writer's SQLITE_BUSY is a lock timeout. */
  const contention: RetryOptions = db.family === "sqlite" ? { retryLockTimeouts: true } : {};

  it(`${WORKERS} workers x ${INCREMENTS} optimistic increments under retryOnConflict: exactly ${WORKERS * INCREMENTS}, retries counted`, async () => {
    const id = await newCounter();
    let retries = 0;
    const retriedErrors = new Set<string>();
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        const source = workers[w % workers.length];
        for (let i = 0; i < INCREMENTS; i++) {
          await retryOnConflict(source, (manager) => increment(manager, id), {
            ...contention,
            attempts: 200,
            backoff: { initialMs: 2, maxMs: 50 },
            onRetry: ({ error }) => {
              retries++;
              retriedErrors.add((error as Error).constructor.name);
            },
          });
        }
      }),
    );
    const counter = await first.getRepository(Counter).findOneByOrFail({ id });
    expect(counter).toMatchObject({ value: WORKERS * INCREMENTS, version: WORKERS * INCREMENTS + 1 });
    expect(retries).toBeGreaterThan(0);
    for (const name of retriedErrors) {
      expect(["OptimisticLockError", "DeadlockError", "SerializationError", "LockTimeoutError"]).toContain(name);
    }
    // Reported for the docs: how often the workers collided.
    console.info(
      `${db.name}: ${WORKERS}x${INCREMENTS} increments, ${retries} retries (${[...retriedErrors].join(", ")})`,
    );
  });

  it("the same workers without retry report their conflicts and lose nothing", async () => {
    const id = await newCounter();
    let committed = 0;
    let conflicts = 0;
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        const source = workers[w % workers.length];
        for (let i = 0; i < INCREMENTS; i++) {
          try {
            await source.transaction((manager) => increment(manager, id));
            committed++;
          } catch (error) {
            if (!isRetryableConflict(error, contention)) throw error;
            conflicts++;
          }
        }
      }),
    );
    expect(conflicts).toBeGreaterThan(0);
    expect(committed + conflicts).toBe(WORKERS * INCREMENTS);
    expect(await first.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({
      value: committed,
      version: committed + 1,
    });
  });

  /**
   * What an overtaken save fails with: the conditional UPDATE matches no row, except on SQLite,
   * whose snapshot (taken by the load) is older than the overtaking commit, so SQLite itself
   * refuses the write (SQLITE_BUSY_SNAPSHOT).
   */
  const overtakenError = db.family === "sqlite" ? SerializationError : OptimisticLockError;

  /**
   * A work function whose save is overtaken `times` times by the second connection. It writes the
   * row from inside the attempt, which a hot-row lock would block: the tests that use it pass
   * `lockHotRows: false` (test/hot-rows.test.ts tests the locks).
   */
  function overtaken(id: number, times: number) {
    let calls = 0;
    const work = async (manager: EntityManager, attempt: number) => {
      calls++;
      expect(attempt).toBe(calls);
      const counter = await manager.findOneByOrFail(Counter, { id });
      if (calls <= times) await updateVersioned(second.getRepository(Counter), id, counter.version, { value: -1 });
      counter.value = 100 + attempt;
      await manager.save(counter);
      return attempt;
    };
    return { work, calls: () => calls };
  }

  it("re-runs the whole unit with a fresh transaction and freshly loaded rows until it wins", async () => {
    const id = await newCounter();
    const { work, calls } = overtaken(id, 2);
    const events: Array<{ attempt: number; delayMs: number; conflict: boolean }> = [];
    const result = await retryOnConflict(first, work, {
      lockHotRows: false,
      backoff: { initialMs: 10, jitter: false },
      onRetry: ({ attempt, delayMs, error }) =>
        events.push({ attempt, delayMs, conflict: error instanceof overtakenError }),
    });
    expect(result).toBe(3);
    expect(calls()).toBe(3);
    expect(events).toEqual([
      { attempt: 1, delayMs: 10, conflict: true },
      { attempt: 2, delayMs: 20, conflict: true },
    ]);
    // Two overtaking writes (versions 2, 3), then our save: version 4, our value.
    expect(await first.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({ value: 103, version: 4 });
  });

  it("gives up after `attempts` with RetryExhaustedError carrying the count and the last conflict", async () => {
    const id = await newCounter();
    const { work, calls } = overtaken(id, Number.POSITIVE_INFINITY);
    const error = await retryOnConflict(first, work, {
      attempts: 3,
      backoff: { initialMs: 1 },
      lockHotRows: false,
    }).catch((e) => e);
    expect(error).toBeInstanceOf(RetryExhaustedError);
    expect(error).toMatchObject({ attempts: 3, reason: "attempts" });
    expect(error.cause).toBeInstanceOf(overtakenError);
    expect(error.message).toMatch(/after 3 attempts/);
    expect(calls()).toBe(3);
    // Only the overtaking writes landed: none of our three attempts wrote anything.
    expect(await first.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({ value: -1, version: 4 });
  });

  it("stops when the next wait would overrun the time budget", async () => {
    const id = await newCounter();
    const { work, calls } = overtaken(id, Number.POSITIVE_INFINITY);
    const error = await retryOnConflict(first, work, {
      attempts: 100,
      lockHotRows: false,
      budgetMs: 30,
      backoff: { initialMs: 20, jitter: false },
    }).catch((e) => e);
    expect(error).toBeInstanceOf(RetryExhaustedError);
    expect(error).toMatchObject({ reason: "budget" });
    expect(calls()).toBeLessThanOrEqual(2);
  });

  it("never retries a StaleVersionError or an ordinary error", async () => {
    const id = await newCounter();
    await updateVersioned(second.getRepository(Counter), id, 1, { value: 5 });
    let calls = 0;
    const stale = await retryOnConflict(first, async (manager) => {
      calls++;
      const counter = await manager.findOneByOrFail(Counter, { id });
      assertVersion(counter, 1); // the client's copy was version 1
    }).catch((e) => e);
    expect(stale).toBeInstanceOf(StaleVersionError);
    expect(calls).toBe(1);

    const plain = new Error("validation failed");
    calls = 0;
    const error = await retryOnConflict(first, async () => {
      calls++;
      throw plain;
    }).catch((e) => e);
    expect(error).toBe(plain);
    expect(calls).toBe(1);
  });

  /** A counter loaded at version 1 and then overtaken by the second connection (now version 2). */
  async function overtakenCounter(): Promise<Counter> {
    const id = await newCounter();
    const counter = await first.getRepository(Counter).findOneByOrFail({ id });
    await updateVersioned(second.getRepository(Counter), id, counter.version, { value: -1 });
    return counter;
  }

  it.each<[string, (outer: EntityManager, stale: Counter) => Promise<unknown>]>([
    // The surrounding transaction's manager, as typeorm-transactional hands out.
    [
      "does not retry a conflict of a transaction that was open before it began: it was called inside one",
      (outer, stale) => outer.save(stale),
    ],
    // Same runner: a SAVEPOINT, still the surrounding transaction.
    [
      "a nested transaction (a savepoint) opened inside it is still the surrounding transaction: not retried",
      (outer, stale) => outer.transaction((inner) => inner.save(stale)),
    ],
  ])("%s", async (_name, write) => {
    const stale = await overtakenCounter();
    let calls = 0;
    const error = await first
      .transaction((outer) =>
        retryOnConflict(first, async () => {
          calls++;
          stale.value = 7;
          await write(outer, stale);
        }),
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockingConfigurationError);
    expect((error as Error).message).toMatch(/inside a transaction/);
    expect((error as Error).cause).toBeInstanceOf(OptimisticLockError);
    expect(calls).toBe(1);
    expect(await first.getRepository(Counter).findOneByOrFail({ id: stale.id })).toMatchObject({
      value: -1,
      version: 2,
    });
  });

  it("also sees a transaction begun by hand with queryRunner.startTransaction()", async () => {
    const stale = await overtakenCounter();
    const runner = first.createQueryRunner();
    await runner.startTransaction();
    try {
      let calls = 0;
      const error = await retryOnConflict(first, async () => {
        calls++;
        await runner.manager.save(stale);
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockingConfigurationError);
      expect(calls).toBe(1);
    } finally {
      await runner.rollbackTransaction();
      await runner.release();
    }
  });

  describe("@Retryable", () => {
    class CounterService {
      calls = 0;
      constructor(
        private readonly source: DataSource,
        private readonly overtakeTimes: number,
      ) {}

      // The second connection writes the row inside the attempt: no hot-row lock, or it would wait on it.
      @Retryable({ attempts: 4, backoff: { initialMs: 1 }, lockHotRows: false })
      async bump(id: number): Promise<number> {
        this.calls++;
        return this.source.transaction(async (manager) => {
          const counter = await manager.findOneByOrFail(Counter, { id });
          if (this.calls <= this.overtakeTimes) {
            await updateVersioned(second.getRepository(Counter), id, counter.version, { value: -1 });
          }
          counter.value = 42;
          await manager.save(counter);
          return counter.version;
        });
      }
    }

    it("re-runs the method (and so its transaction) on a conflict", async () => {
      const id = await newCounter();
      const service = new CounterService(first, 2);
      expect(await service.bump(id)).toBe(4);
      expect(service.calls).toBe(3);
      expect(await first.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({ value: 42, version: 4 });
    });

    it("gives up with RetryExhaustedError after its attempts", async () => {
      const id = await newCounter();
      const service = new CounterService(first, Number.POSITIVE_INFINITY);
      await expect(service.bump(id)).rejects.toMatchObject({ attempts: 4, name: "RetryExhaustedError" });
      expect(service.calls).toBe(4);
    });

    it("does not retry a conflict of the transaction it was called in (it must sit outside @Transactional)", async () => {
      class RenameService {
        calls = 0;
        @Retryable({ attempts: 4, backoff: { initialMs: 1 } })
        async rename(manager: EntityManager, counter: Counter): Promise<void> {
          this.calls++;
          counter.value = 9;
          await manager.save(counter);
        }
      }
      const stale = await overtakenCounter();
      const service = new RenameService();
      const error = await first.transaction((manager) => service.rename(manager, stale)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockingConfigurationError);
      expect((error as Error).cause).toBeInstanceOf(OptimisticLockError);
      expect(service.calls).toBe(1);
    });
  });

  if (db.family !== "sqlite") {
    it("retries the victim of a real deadlock (A,B / B,A) and both units end committed", async () => {
      await first.getRepository(Account).save([
        { id: 9001, balance: 0 },
        { id: 9002, balance: 0 },
      ]);
      await deadlockRetried(db, first, second);
    });
  }

  it("lock timeouts are retried only when asked", async () => {
    expect(isRetryableConflict(new LockTimeoutError(failure()))).toBe(false);
    expect(isRetryableConflict(new LockTimeoutError(failure()), { retryLockTimeouts: true })).toBe(true);
    expect(isRetryableConflict(new SerializationError(failure()))).toBe(true);
    expect(isRetryableConflict(new DeadlockError(failure()))).toBe(true);
  });
});

function failure() {
  return { dialect: "test", code: "0", retryable: true, transactionAborted: true };
}

/**
 * T1 (under retryOnConflict) locks A; T2 locks B, asks for A and waits; then T1 asks for B and
 * closes the cycle. T1 is made the victim whatever the machine's load: PostgreSQL checks a waiting
 * session for a deadlock once, deadlock_timeout after its wait began, so T2, which waits first,
 * gets a deadlock_timeout longer than the test and T1's check (a second after the cycle closed)
 * is the one that finds it; InnoDB checks at once, when T1's request closes the cycle, and rolls
 * back the lighter transaction, T1 (T2 has written more). T1 is retried and commits.
 */
async function deadlockRetried(db: TestDatabase, t1Source: DataSource, t2Source: DataSource): Promise<void> {
  const t1HoldsA = deferred();
  const t2WaitsForA = deferred();
  let t1Attempts = 0;
  const retriedWith: unknown[] = [];
  const lockAccount = (manager: EntityManager, id: number) =>
    manager.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
  const t1 = retryOnConflict(
    t1Source,
    async (manager, attempt) => {
      t1Attempts = attempt;
      const a = await lockAccount(manager, 9001);
      if (attempt === 1) {
        t1HoldsA.resolve();
        await t2WaitsForA.promise;
      }
      const b = await lockAccount(manager, 9002);
      a.balance -= 1;
      b.balance += 1;
      await manager.save([a, b]);
    },
    { backoff: { initialMs: 1 }, onRetry: ({ error }) => retriedWith.push(error) },
  );
  const t2 = t2Source.transaction(async (manager) => {
    await t1HoldsA.promise;
    if (db.family === "postgres") await manager.query("SET LOCAL deadlock_timeout = '60s'");
    const b = await lockAccount(manager, 9002);
    b.balance += 10;
    await manager.save(b); // the heavier transaction: InnoDB picks the other one as the victim
    const waitingForA = lockAccount(manager, 9001);
    await waitUntilBlocked(db, t2Source);
    t2WaitsForA.resolve();
    const a = await waitingForA;
    a.balance -= 10;
    await manager.save(a);
  });
  await Promise.all([t1, t2]);
  expect(t1Attempts).toBe(2);
  expect(retriedWith).toHaveLength(1);
  expect(retriedWith[0]).toBeInstanceOf(DeadlockError);
  const accounts = await t1Source.getRepository(Account).findBy([{ id: 9001 }, { id: 9002 }]);
  expect(accounts.map((a) => a.balance).sort((x, y) => x - y)).toEqual([-11, 11]);
}

describe("backoff", () => {
  it("grows exponentially from initialMs, is capped at maxMs, and full jitter stays within [0, ceiling)", () => {
    const fixed = { backoff: { initialMs: 10, maxMs: 100, multiplier: 3, jitter: false } };
    expect([1, 2, 3, 4].map((attempt) => backoffDelay(fixed, attempt))).toEqual([10, 30, 90, 100]);
    const jittered = { backoff: { initialMs: 10, maxMs: 100, multiplier: 3 } };
    expect(backoffDelay(jittered, 3, () => 0)).toBe(0);
    expect(backoffDelay(jittered, 3, () => 0.999)).toBe(89);
    expect(backoffDelay({}, 1, () => 0.5)).toBe(10); // defaults: 20 ms first, halved by jitter
  });

  it("rejects options that cannot work, naming them", () => {
    expect(() => Retryable({ attempts: 0 })).toThrow(/attempts must be a whole number >= 1/);
    expect(() => Retryable({ backoff: { multiplier: 0.5 } })).toThrow(/multiplier/);
    expect(() => Retryable({ budgetMs: -1 })).toThrow(/budgetMs/);
  });
});
