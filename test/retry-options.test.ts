/**
 * What retryOnConflict and @Retryable promise about time and about their options: a retry waits
 * (the wait is observed, not just reported), a time budget stops retrying only when the next wait
 * would overrun it, RetryExhaustedError says how long the attempts took, and every option that
 * cannot work is refused with LockingConfigurationError before anything runs, while the edge
 * values that can work are accepted. The conflicts are real ones (a second connection overtakes
 * the save) on every database; the option checks need none.
 */
import { DataSource, type EntityManager } from "typeorm";
import {
  LockingConfigurationError,
  OptimisticLockError,
  Retryable,
  RetryExhaustedError,
  type RetryOptions,
  retryOnConflict,
  updateVersioned,
} from "../src";
import { Counter } from "./fixtures/counter";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";

/** A conflict as the library raises it, for the loops that need no database. */
const conflict = () =>
  new OptimisticLockError({ entityName: "Counter", id: 1, expectedVersion: 1, operation: "update" });

/** A method that fails with a conflict `failures` times, then returns the attempt number. */
function flaky(options: RetryOptions, failures: number) {
  const startedAt: number[] = [];
  class Service {
    @Retryable(options)
    async run(): Promise<number> {
      startedAt.push(performance.now());
      if (startedAt.length <= failures) throw conflict();
      return startedAt.length;
    }
  }
  return { service: new Service(), startedAt };
}

describe("retry timing (no database needed: the loop is the same for every unit of work)", () => {
  it("waits the backoff between attempts: each retry starts at least its reported delay after the failure", async () => {
    const delays: number[] = [];
    const { service, startedAt } = flaky(
      { attempts: 3, backoff: { initialMs: 60, multiplier: 2, jitter: false }, onRetry: (e) => delays.push(e.delayMs) },
      2,
    );
    expect(await service.run()).toBe(3);
    expect(delays).toEqual([60, 120]);
    // A lower bound only: a loaded machine may wait longer, never shorter (timers do not fire early;
    // 1 ms of slack for the clock's rounding).
    expect(startedAt[1] - startedAt[0]).toBeGreaterThanOrEqual(59);
    expect(startedAt[2] - startedAt[1]).toBeGreaterThanOrEqual(119);
  });

  it("with zero backoff it retries at once, without going through a timer, however large the multiplier", async () => {
    const delays: number[] = [];
    // 1e300 ** 2 overflows to Infinity: the third wait is still 0 ms, not NaN.
    const { service } = flaky(
      { attempts: 4, backoff: { initialMs: 0, multiplier: 1e300 }, onRetry: (e) => delays.push(e.delayMs) },
      3,
    );
    // A timer due at once, set before the call: had a retry waited for a timer (even of 0 ms),
    // this one, set first, would have fired before it.
    let timerFired = false;
    const timer = setTimeout(() => {
      timerFired = true;
    }, 0);
    expect(await service.run()).toBe(4);
    expect(timerFired).toBe(false);
    clearTimeout(timer);
    expect(delays).toEqual([0, 0, 0]);
  });

  it("RetryExhaustedError.elapsedMs covers the attempts and their waits, and no more than the call took", async () => {
    const { service } = flaky({ attempts: 3, backoff: { initialMs: 40, jitter: false } }, Number.POSITIVE_INFINITY);
    const before = performance.now();
    const error = await service.run().catch((e: unknown) => e);
    const took = performance.now() - before;
    expect(error).toBeInstanceOf(RetryExhaustedError);
    expect(error).toMatchObject({ attempts: 3, reason: "attempts" });
    expect((error as RetryExhaustedError).cause).toBeInstanceOf(OptimisticLockError);
    // Two waits (40 + 80 ms) happened before the third attempt failed.
    expect((error as RetryExhaustedError).elapsedMs).toBeGreaterThanOrEqual(119);
    expect((error as RetryExhaustedError).elapsedMs).toBeLessThanOrEqual(took + 1);
  });

  it("a budget stops the retries when the next wait would overrun it, after the attempts that fit", async () => {
    const delays: number[] = [];
    // Waits of 50, 200, 800 ms: 50 + 200 fit in 1000 ms (with the attempts' own time, even on a
    // loaded machine), 50 + 200 + 800 do not: the third failure ends it, by the budget, with
    // attempts left.
    const { service, startedAt } = flaky(
      {
        attempts: 10,
        budgetMs: 1000,
        backoff: { initialMs: 50, multiplier: 4, maxMs: 1000, jitter: false },
        onRetry: (e) => delays.push(e.delayMs),
      },
      Number.POSITIVE_INFINITY,
    );
    const error = await service.run().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryExhaustedError);
    expect(error).toMatchObject({ attempts: 3, reason: "budget" });
    expect(delays).toEqual([50, 200]);
    expect(startedAt).toHaveLength(3);
    const { elapsedMs } = error as RetryExhaustedError;
    expect(elapsedMs).toBeGreaterThanOrEqual(249);
    expect(elapsedMs + 800).toBeGreaterThan(1000);
  });

  it("a budget the retries fit in changes nothing: the unit succeeds after its retries", async () => {
    const delays: number[] = [];
    const { service } = flaky(
      {
        attempts: 5,
        budgetMs: 60_000,
        backoff: { initialMs: 5, jitter: false },
        onRetry: (e) => delays.push(e.delayMs),
      },
      3,
    );
    expect(await service.run()).toBe(4);
    expect(delays).toEqual([5, 10, 20]);
  });

  it("a budget of 0 allows the first attempt only (its failure ends it, by the budget)", async () => {
    const { service, startedAt } = flaky({ attempts: 5, budgetMs: 0, backoff: { initialMs: 1, jitter: false } }, 1);
    const error = await service.run().catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "RetryExhaustedError", attempts: 1, reason: "budget" });
    expect(startedAt).toHaveLength(1);
  });
});

describe("retry options", () => {
  /** Each option that cannot work, with the option's name the error must carry. */
  const invalid: [string, RetryOptions][] = [
    ["attempts", { attempts: 0 }],
    ["attempts", { attempts: -1 }],
    ["attempts", { attempts: 1.5 }],
    ["attempts", { attempts: Number.NaN }],
    ["attempts", { attempts: "3" as unknown as number }],
    ["budgetMs", { budgetMs: -1 }],
    ["budgetMs", { budgetMs: Number.NaN }],
    ["budgetMs", { budgetMs: "100" as unknown as number }],
    ["initialMs", { backoff: { initialMs: -1 } }],
    ["initialMs", { backoff: { initialMs: Number.POSITIVE_INFINITY } }],
    ["initialMs", { backoff: { initialMs: "5" as unknown as number } }],
    ["maxMs", { backoff: { maxMs: -1 } }],
    ["maxMs", { backoff: { maxMs: Number.NaN } }],
    ["maxMs", { backoff: { maxMs: "5" as unknown as number } }],
    ["multiplier", { backoff: { multiplier: 0.5 } }],
    ["multiplier", { backoff: { multiplier: "2" as unknown as number } }],
    ["onRetry", { onRetry: "log" as unknown as RetryOptions["onRetry"] }],
    ["multiplier", { backoff: { multiplier: Number.POSITIVE_INFINITY } }],
    ["isolation", { isolation: "SNAPSHOT" as RetryOptions["isolation"] }],
    // Not an object: a number, a string, an array (whose fields would all read as the defaults).
    ["options", 3 as RetryOptions],
    ["options", "fast" as RetryOptions],
    ["options", [{ attempts: 3 }] as RetryOptions],
    ["backoff", { backoff: 20 as RetryOptions["backoff"] }],
    ["backoff", { backoff: [20, 1000] as RetryOptions["backoff"] }],
    // A hot row's lock wait must be a wait (> 0 ms); how long it is remembered may be 0.
    ...(
      [
        { timeout: 0 },
        { timeout: -1 },
        { timeout: Number.POSITIVE_INFINITY },
        { timeout: Number.NaN },
        { timeout: "100" },
        { rememberMs: -1 },
        { rememberMs: Number.POSITIVE_INFINITY },
        { rememberMs: Number.NaN },
        { rememberMs: "5" },
        null,
        "yes",
        1,
      ] as unknown[]
    ).map((lockHotRows): [string, RetryOptions] => ["lockHotRows", { lockHotRows } as RetryOptions]),
  ];

  it.each(invalid)("@Retryable refuses a bad %s when it decorates: %j", (name, options) => {
    const error = (() => {
      try {
        Retryable(options);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(LockingConfigurationError);
    expect((error as Error).message).toContain(name);
  });

  it.each(invalid)("retryOnConflict refuses a bad %s before running the work: %j", async (name, options) => {
    let ran = false;
    // A DataSource never initialized: the options are checked before it is used.
    const dataSource = new DataSource({ type: "better-sqlite3", database: ":memory:" });
    const error = await retryOnConflict(
      dataSource,
      async () => {
        ran = true;
      },
      options,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockingConfigurationError);
    expect((error as Error).message).toContain(name);
    expect(ran).toBe(false);
  });

  it("accepts the edge values that can work: 1 attempt, a 0 ms budget and waits, a multiplier of 1", async () => {
    const edges: RetryOptions = {
      attempts: 1,
      budgetMs: 0,
      backoff: { initialMs: 0, maxMs: 0, multiplier: 1, jitter: false },
      onRetry: () => undefined,
      lockHotRows: { timeout: 1, rememberMs: 0 },
    };
    expect(() => Retryable(edges)).not.toThrow();
    for (const lockHotRows of [true, false, {}, { timeout: 0.5 }, { rememberMs: 1e9 }]) {
      expect(() => Retryable({ lockHotRows })).not.toThrow();
    }
    const { service } = flaky({ ...edges, attempts: 2, budgetMs: undefined }, 1);
    expect(await service.run()).toBe(2);
  });

  it("accepts every isolation level TypeORM starts a transaction with", () => {
    for (const isolation of ["READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"] as const) {
      expect(() => Retryable({ isolation })).not.toThrow();
    }
  });

  it("null options are the defaults", async () => {
    expect(() => Retryable(null as unknown as RetryOptions)).not.toThrow();
    const { service } = flaky(null as unknown as RetryOptions, 1);
    expect(await service.run()).toBe(2);
  });

  it("retryOnConflict refuses a missing DataSource or unit of work (or the two swapped) in its promise, running nothing", async () => {
    const dataSource = new DataSource({ type: "better-sqlite3", database: ":memory:" });
    let ran = false;
    const work = async () => {
      ran = true;
    };
    const calls = [
      () => retryOnConflict(undefined as unknown as DataSource, work),
      () => retryOnConflict(work as unknown as DataSource, dataSource as never),
      () => retryOnConflict(dataSource, undefined as never),
    ];
    for (const call of calls) {
      let result: Promise<unknown> | undefined;
      expect(() => {
        result = call();
      }).not.toThrow(); // a promise-returning function reports in its promise
      await expect(result).rejects.toBeInstanceOf(LockingConfigurationError);
    }
    expect(ran).toBe(false);
  });

  it("@Retryable only decorates methods", () => {
    const decorate = Retryable();
    expect(() =>
      decorate({}, "notAMethod", { value: 42, writable: true, enumerable: false, configurable: true }),
    ).toThrow(LockingConfigurationError);
  });
});

describeEachDatabase((db) => {
  let first: DataSource;
  let second: DataSource;

  beforeAll(async () => {
    [first, second] = await openDataSources(db, [Counter], { count: 2 });
  });
  afterAll(() => closeAll(first, second));

  let nextId = 1;
  async function newCounter(): Promise<number> {
    const id = nextId++;
    await first.getRepository(Counter).insert({ id, value: 0, version: 1 });
    return id;
  }

  /**
   * A unit of work whose save the second connection overtakes on its first `times` attempts. The
   * overtaking write comes from inside the attempt, so the retries run without hot-row locks: with
   * them, the attempt would hold the row it read and the second connection would wait on it.
   */
  function overtaken(id: number, times: number) {
    const startedAt: number[] = [];
    const work = async (manager: EntityManager, attempt: number) => {
      startedAt.push(performance.now());
      const counter = await manager.findOneByOrFail(Counter, { id });
      if (attempt <= times) await updateVersioned(second.getRepository(Counter), id, counter.version, { value: -1 });
      counter.value = 100 + attempt;
      await manager.save(counter);
      return attempt;
    };
    return { work, startedAt };
  }

  it("real conflicts under a budget they fit in: retried after the observed waits, and the last attempt's write lands", async () => {
    const id = await newCounter();
    const { work, startedAt } = overtaken(id, 2);
    const attempt = await retryOnConflict(first, work, {
      attempts: 5,
      lockHotRows: false,
      budgetMs: 60_000,
      backoff: { initialMs: 30, jitter: false },
    });
    expect(attempt).toBe(3);
    expect(startedAt[1] - startedAt[0]).toBeGreaterThanOrEqual(29);
    expect(startedAt[2] - startedAt[1]).toBeGreaterThanOrEqual(59);
    // Two overtaking writes, then ours: version 4, the third attempt's value.
    expect(await first.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({ value: 103, version: 4 });
  });

  it("real conflicts past the budget: RetryExhaustedError by budget, with the time spent, and nothing of ours written", async () => {
    const id = await newCounter();
    const { work, startedAt } = overtaken(id, Number.POSITIVE_INFINITY);
    const before = performance.now();
    const error = await retryOnConflict(first, work, {
      attempts: 100,
      lockHotRows: false,
      budgetMs: 100,
      backoff: { initialMs: 40, jitter: false },
    }).catch((e: unknown) => e);
    const took = performance.now() - before;
    expect(error).toBeInstanceOf(RetryExhaustedError);
    expect(error).toMatchObject({ reason: "budget" });
    const { attempts, elapsedMs } = error as RetryExhaustedError;
    expect(attempts).toBe(startedAt.length);
    expect(attempts).toBeLessThanOrEqual(2); // 40 ms + 80 ms of waits cannot both fit in 100 ms
    expect(elapsedMs).toBeGreaterThanOrEqual(startedAt[startedAt.length - 1] - startedAt[0]);
    expect(elapsedMs).toBeLessThanOrEqual(took + 1);
    expect(await first.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({ value: -1 });
  });
});
