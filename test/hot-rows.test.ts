/**
 * Hot rows: after an attempt of retryOnConflict / @Retryable fails on a row, the next attempt
 * reads that row, and only it, with PESSIMISTIC_WRITE. Shown by the SQL the attempt sends and by
 * a second connection that cannot lock the hot row (NOWAIT fails) but can lock its neighbour.
 *
 * PostgreSQL and MariaDB (as TypeORM `mariadb` and `mysql`) race for real: another connection
 * commits a change to the row between the attempt's load and its save. SQLite cannot produce that
 * race as an OptimisticLockError: in WAL mode the late writer gets SQLITE_BUSY_SNAPSHOT (a
 * SerializationError, which names no row), so there the first attempt throws the conflict itself
 * and the test shows what the next attempt does: it takes SQLite's write lock (the dialect's lock
 * statement) before reading the hot row. The contention test needs row locks, so not on SQLite.
 */
import { type DataSource, type EntityManager, In, type ObjectLiteral } from "typeorm";
import {
  galeraDialect,
  installLocking,
  type LockDialect,
  type LockingOptions,
  LockMode,
  LockTimeoutError,
  OptimisticLockError,
  postgresDialect,
  Retryable,
  RetryExhaustedError,
  type RetryOptions,
  retryOnConflict,
  sqliteDialect,
  withLockMode,
} from "../src";
import { anyRememberedHotRows } from "../src/hot-rows";
import { Counter, TenantCounter } from "./fixtures/counter";
import {
  closeAll,
  deferred,
  describeEachDatabase,
  openAlongside,
  openDataSources,
  StatementCounter,
  type TestDatabase,
} from "./support/databases";

const LOCKING_READ = /FOR (NO KEY )?UPDATE/;

describeEachDatabase((db: TestDatabase) => {
  const sqlite = db.family === "sqlite";
  let schema: DataSource;
  let worker: DataSource;
  let other: DataSource;
  const log = new StatementCounter();

  beforeAll(async () => {
    [schema] = await openDataSources(db, [Counter, TenantCounter]);
    worker = installLocking(await openAlongside(schema, { logger: log, logging: true }));
    other = installLocking(await openAlongside(schema, sqlite ? { timeout: 0 } : {}));
  });
  afterAll(() => closeAll(worker, other, schema));

  let nextId = 1;
  async function newCounters(count: number): Promise<number[]> {
    const ids = Array.from({ length: count }, () => nextId++);
    await schema.getRepository(Counter).insert(ids.map((id) => ({ id, value: 0, version: 1 })));
    return ids;
  }

  /** Makes the first attempt fail on `id`: a real race where the database has row locks. */
  async function conflictOn(manager: EntityManager, counter: Counter): Promise<void> {
    if (sqlite) {
      throw new OptimisticLockError({
        entityName: "Counter",
        id: { id: counter.id },
        expectedVersion: counter.version,
        operation: "update",
      });
    }
    await other.transaction(async (m) => {
      const row = await m.findOneByOrFail(Counter, { id: counter.id });
      row.value += 1;
      await m.save(row);
    });
    counter.value += 1;
    await manager.save(counter); // OptimisticLockError: the row moved since this attempt loaded it
  }

  /** The statements since the log was reset that read the counter with `id`, and what preceded each. */
  function readsOf(id: number): { sql: string; before: string }[] {
    const reads: { sql: string; before: string }[] = [];
    log.queries.forEach((q, i) => {
      if (/^\s*SELECT/i.test(q.query) && /tl_counter/.test(q.query) && names(q, id)) {
        reads.push({ sql: q.query, before: log.queries[i - 1]?.query ?? "" });
      }
    });
    return reads;
  }

  /** Whether a statement names the row `id`: as a parameter, or inlined (TypeORM does on SQLite). */
  function names(q: { query: string; parameters?: unknown[] }, id: number): boolean {
    return q.parameters?.includes(id) === true || new RegExp(`id["\`]? = ${id}(?!\\d)`).test(q.query);
  }

  /** Whether each SELECT of `table` since the log was reset was a locking one, in order. */
  function lockedSelectsOf(table: RegExp): boolean[] {
    return log.queries
      .map((q, i) => ({ sql: q.query, before: log.queries[i - 1]?.query ?? "" }))
      .filter((q) => /^\s*SELECT/i.test(q.sql) && table.test(q.sql))
      .map(locked);
  }

  /** Whether a read was a locking one: FOR UPDATE, or on SQLite the write lock taken just before it. */
  function locked(read: { sql: string; before: string }): boolean {
    return sqlite ? /^UPDATE .* WHERE 0 = 1$/.test(read.before) : LOCKING_READ.test(read.sql);
  }

  /** Whether `other` can lock the row at once (NOWAIT): false while the worker holds its lock. */
  async function otherCanLock(id: number): Promise<boolean> {
    if (sqlite) return true; // one lock for the whole database: nothing row-wise to show
    try {
      await other.transaction((m) =>
        m.findOne(Counter, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 0 }) }),
      );
      return true;
    } catch (error) {
      if (error instanceof LockTimeoutError) return false;
      throw error;
    }
  }

  it.each([
    ["by default", {}],
    ["with lockHotRows: true", { lockHotRows: true }],
    // The memory off: the loop's own hot rows alone must lock the row.
    ["with rememberMs: 0", { lockHotRows: { rememberMs: 0 } }],
  ])("after a conflict on one row, the next attempt reads that row, and not its neighbour, with a lock (%s)", async (_, options) => {
    const [hotId, coldId] = await newCounters(2);
    const otherCould: Record<string, boolean> = {};
    const errors: unknown[] = [];
    await retryOnConflict(
      worker,
      async (manager, attempt) => {
        if (attempt === 2) log.reset();
        const hot = await manager.findOneByOrFail(Counter, { id: hotId });
        const cold = await manager.findOneByOrFail(Counter, { id: coldId });
        if (attempt === 1) await conflictOn(manager, hot);
        if (attempt === 2) {
          otherCould.hot = await otherCanLock(hotId);
          otherCould.cold = await otherCanLock(coldId);
        }
        hot.value += 1;
        cold.value += 1;
        await manager.save([hot, cold]);
      },
      { ...options, attempts: 3, onRetry: ({ error, delayMs }) => errors.push(error, delayMs) },
    );
    expect(errors).toHaveLength(2);
    expect(errors[1]).toBe(0); // no backoff before an attempt that locks the row
    expect(errors[0]).toBeInstanceOf(OptimisticLockError);
    const [hotRead] = readsOf(hotId);
    const [coldRead] = readsOf(coldId);
    expect(locked(hotRead)).toBe(true);
    expect(locked(coldRead)).toBe(false);
    if (!sqlite) {
      expect(otherCould).toEqual({ hot: false, cold: true });
      // No lost update: the other connection's increment and the worker's are both there.
      expect(await schema.getRepository(Counter).findOneByOrFail({ id: hotId })).toMatchObject({ value: 2 });
    }
    expect(await schema.getRepository(Counter).findOneByOrFail({ id: coldId })).toMatchObject({ value: 1 });
  });

  it("lockHotRows: false leaves every read of the next attempt optimistic", async () => {
    const [hotId] = await newCounters(1);
    await retryOnConflict(
      worker,
      async (manager, attempt) => {
        if (attempt === 2) log.reset();
        const hot = await manager.findOneByOrFail(Counter, { id: hotId });
        if (attempt === 1) await conflictOn(manager, hot);
        hot.value += 1;
        await manager.save(hot);
      },
      { attempts: 3, lockHotRows: false },
    );
    const reads = readsOf(hotId);
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.some(locked)).toBe(false);
  });

  it("a query-builder read is locked when it returns the hot row, and runs as written when it does not", async () => {
    const [hotId, coldId] = await newCounters(2);
    let both: Counter[] = [];
    await retryOnConflict(
      worker,
      async (manager, attempt) => {
        if (attempt === 2) log.reset();
        const query = () => manager.createQueryBuilder(Counter, "c");
        const cold = await query().where("c.id = :only", { only: coldId }).getOneOrFail();
        both = await query()
          .where("c.id IN (:...ids)", { ids: [hotId, coldId] })
          .orderBy("c.id")
          .getMany();
        if (attempt === 1) await conflictOn(manager, both[0]);
        cold.value += 1;
        await manager.save(cold);
      },
      { attempts: 3 },
    );
    const selects = log.queries
      .map((q, i) => ({ ...q, sql: q.query, before: log.queries[i - 1]?.query ?? "" }))
      .filter((r) => /^\s*SELECT/i.test(r.sql) && /tl_counter/.test(r.sql));
    const ofBoth = selects.filter(
      (r) =>
        (r.parameters?.includes(hotId) && r.parameters.includes(coldId)) ||
        new RegExp(`IN \\(${hotId}, ${coldId}\\)`).test(r.sql),
    );
    const ofCold = selects.filter((r) => !/IN \(/.test(r.sql) && names(r, coldId));
    // The read of the cold row alone ran unlocked; the read of both ran as written, saw the hot
    // row among its results, and ran again locked.
    expect(ofCold.length).toBeGreaterThan(0);
    expect(ofCold.some(locked)).toBe(false);
    expect(ofBoth.map(locked)).toEqual([false, true]);
    expect(both.map((c) => c.id)).toEqual([hotId, coldId]);
  });

  it.each([
    ["by default", {}],
    ["with rememberMs: 0", { lockHotRows: { rememberMs: 0 } }],
  ])("@Retryable: the next call's transaction reads the hot row with a lock (%s)", async (_, options) => {
    const [hotId] = await newCounters(1);
    class Service {
      calls = 0;
      @Retryable({ attempts: 3, ...options })
      increment(id: number) {
        const attempt = ++this.calls;
        return worker.transaction(async (manager) => {
          if (attempt === 2) log.reset();
          const hot = await manager.findOneByOrFail(Counter, { id });
          if (attempt === 1) await conflictOn(manager, hot);
          hot.value += 1;
          await manager.save(hot);
        });
      }
    }
    const service = new Service();
    await service.increment(hotId);
    expect(service.calls).toBe(2);
    expect(locked(readsOf(hotId)[0])).toBe(true);
  });

  it("@Retryable: the next call's read of the hot row before its transaction opens runs as written", async () => {
    // No transaction holds it, so no lock can be taken: the read is a plain one, not a LockingError.
    const [hotId] = await newCounters(1);
    class Service {
      calls = 0;
      @Retryable({ attempts: 3 })
      async increment(id: number) {
        const attempt = ++this.calls;
        if (attempt === 2) log.reset();
        const before = await worker.getRepository(Counter).findOneByOrFail({ id });
        return worker.transaction(async (manager) => {
          const hot = await manager.findOneByOrFail(Counter, { id });
          if (attempt === 1) await conflictOn(manager, hot);
          hot.value = before.value + 1;
          await manager.save(hot);
        });
      }
    }
    const service = new Service();
    await service.increment(hotId);
    expect(service.calls).toBe(2);
    expect(readsOf(hotId).map(locked).slice(0, 2)).toEqual([false, true]);
  });

  // On SQLite a DataSource is one connection (TypeORM gives every caller the same query runner),
  // so there is no read outside the attempt's transaction while it is open.
  (sqlite ? it.skip : it)("reads outside the attempt's transaction stay optimistic", async () => {
    const [hotId] = await newCounters(1);
    await retryOnConflict(
      worker,
      async (manager, attempt) => {
        if (attempt === 2) {
          log.reset();
          await worker.getRepository(Counter).findOneByOrFail({ id: hotId }); // no transaction: no lock
          expect(readsOf(hotId).map(locked)).toEqual([false]);
        }
        const hot = await manager.findOneByOrFail(Counter, { id: hotId });
        if (attempt === 1) await conflictOn(manager, hot);
        hot.value += 1;
        await manager.save(hot);
      },
      { attempts: 3 },
    );
    expect(readsOf(hotId).map(locked).slice(0, 2)).toEqual([false, true]);
  });

  it.each([
    ["a number", (id: number) => ({ id })],
    ["a bigint", (id: number) => ({ id: BigInt(id) })],
  ])("a row that conflicts again once it was hot is no news: that retry waits its backoff (id as %s)", async (_, idOf) => {
    const [hotId] = await newCounters(1);
    const delays: number[] = [];
    const attempts = await retryOnConflict(
      worker,
      async (manager, attempt) => {
        await manager.findOneByOrFail(Counter, { id: hotId });
        if (attempt < 3) {
          throw new OptimisticLockError({
            entityName: "Counter",
            id: idOf(hotId),
            expectedVersion: 1,
            operation: "update",
          });
        }
        return attempt;
      },
      {
        attempts: 3,
        backoff: { initialMs: 5, multiplier: 1, jitter: false },
        lockHotRows: { rememberMs: 0 },
        onRetry: ({ delayMs }) => delays.push(delayMs),
      },
    );
    expect(attempts).toBe(3);
    expect(delays).toEqual([0, 5]);
  });

  it("rejects a lockHotRows option that is not true, false or { timeout?: ms > 0, rememberMs?: ms >= 0 }", async () => {
    const bad = [0, "yes", { timeout: 0 }, { timeout: -5 }, null, { rememberMs: -1 }, { rememberMs: Number.NaN }];
    for (const option of [...bad, { rememberMs: "1000" }, { rememberMs: Number.POSITIVE_INFINITY }]) {
      await expect(retryOnConflict(worker, async () => 1, { lockHotRows: option as never })).rejects.toThrow(
        /lockHotRows must be true, false or \{ timeout\?: ms > 0, rememberMs\?: ms >= 0 \}/,
      );
    }
    await expect(retryOnConflict(worker, async () => 1, { lockHotRows: { rememberMs: 0 } })).resolves.toBe(1);
  });

  describe("a row that conflicted stays hot for later retry loops (rememberMs)", () => {
    /**
     * A retry loop whose first attempt saves a copy of `id` that another connection changed
     * after it was read: the library itself raises the conflict (on every database), and the
     * second attempt commits.
     */
    async function loopThatConflictsOn(id: number, options: Parameters<typeof retryOnConflict>[2] = {}) {
      const stale = await worker.getRepository(Counter).findOneByOrFail({ id });
      await other.transaction(async (m) => {
        const row = await m.findOneByOrFail(Counter, { id });
        row.value += 1;
        await m.save(row);
      });
      const errors: unknown[] = [];
      await retryOnConflict(
        worker,
        async (manager, attempt) => {
          const counter = attempt === 1 ? stale : await manager.findOneByOrFail(Counter, { id });
          counter.value += 1;
          await manager.save(counter);
        },
        { ...options, attempts: 3, onRetry: ({ error }) => errors.push(error) },
      );
      expect(errors).toEqual([expect.any(OptimisticLockError)]);
    }

    /** A later loop on `source` that reads the hot row and a cold one once: whether each read locked. */
    async function laterLoopOn(source: DataSource, ids: { hot: number; cold: number }, options = {}) {
      let attempts = 0;
      const could: Record<string, boolean> = {};
      await retryOnConflict(
        source,
        async (manager) => {
          attempts++;
          log.reset();
          const hot = await manager.findOneByOrFail(Counter, { id: ids.hot });
          const cold = await manager.findOneByOrFail(Counter, { id: ids.cold });
          could.hot = await otherCanLock(ids.hot);
          could.cold = await otherCanLock(ids.cold);
          hot.value += 1;
          cold.value += 1;
          await manager.save([hot, cold]);
        },
        options,
      );
      expect(attempts).toBe(1);
      return { hot: readsOf(ids.hot).some(locked), cold: readsOf(ids.cold).some(locked), could };
    }

    it.each([
      ["by default", {}],
      ["with lockHotRows: true", { lockHotRows: true }],
    ])("the next loop's first attempt reads that row, and not its neighbour, with a lock (%s)", async (_, options) => {
      const [hot, cold] = await newCounters(2);
      await loopThatConflictsOn(hot);
      const later = await laterLoopOn(worker, { hot, cold }, options);
      expect(later).toMatchObject({ hot: true, cold: false });
      if (!sqlite) expect(later.could).toEqual({ hot: false, cold: true });
      expect(await schema.getRepository(Counter).findOneByOrFail({ id: hot })).toMatchObject({ value: 3 });
    });

    it("@Retryable: the next call's first attempt reads the remembered row with a lock", async () => {
      const [hot] = await newCounters(1);
      await loopThatConflictsOn(hot);
      class Service {
        @Retryable({ attempts: 2 })
        increment(id: number) {
          return worker.transaction(async (manager) => {
            log.reset();
            const row = await manager.findOneByOrFail(Counter, { id });
            row.value += 1;
            await manager.save(row);
          });
        }
      }
      await new Service().increment(hot);
      expect(locked(readsOf(hot)[0])).toBe(true); // (the read after it is save()'s own)
    });

    it("rememberMs: 0 remembers nothing: the next loop reads the row optimistically", async () => {
      const [hot, cold] = await newCounters(2);
      await loopThatConflictsOn(hot, { lockHotRows: { rememberMs: 0 } });
      expect(await laterLoopOn(worker, { hot, cold })).toMatchObject({ hot: false, cold: false });
    });

    it("a loop with rememberMs: 0 does not lock the rows other loops remember either", async () => {
      const [hot, cold] = await newCounters(2);
      await loopThatConflictsOn(hot);
      const later = await laterLoopOn(worker, { hot, cold }, { lockHotRows: { rememberMs: 0 } });
      expect(later).toMatchObject({ hot: false, cold: false });
    });

    it("a loop's own hot row stays locked in its later attempts after its memory window is over", async () => {
      const [hot] = await newCounters(1);
      const lockedReads: boolean[] = [];
      await retryOnConflict(
        worker,
        async (manager, attempt) => {
          if (attempt === 2) await new Promise((resolve) => setTimeout(resolve, 30)); // the 1 ms window is over
          log.reset();
          const counter = await manager.findOneByOrFail(Counter, { id: hot });
          lockedReads.push(readsOf(hot).some(locked));
          if (attempt === 1) await conflictOn(manager, counter);
          counter.value += 1;
          await manager.save(counter);
        },
        { attempts: 3, lockHotRows: { rememberMs: 1 } },
      );
      expect(lockedReads).toEqual([false, true]);
    });

    it("the row goes back to optimistic reads once its window is over", async () => {
      const [hot, cold] = await newCounters(2);
      await loopThatConflictsOn(hot, { lockHotRows: { rememberMs: 40 } });
      await new Promise((resolve) => setTimeout(resolve, 120));
      expect(await laterLoopOn(worker, { hot, cold })).toMatchObject({ hot: false, cold: false });
    });

    it("a later loop with lockHotRows: false, or outside any retry loop, reads it optimistically", async () => {
      const [hot, cold] = await newCounters(2);
      await loopThatConflictsOn(hot);
      expect(await laterLoopOn(worker, { hot, cold }, { lockHotRows: false })).toMatchObject({ hot: false });
      log.reset();
      await worker.transaction((manager) => manager.findOneByOrFail(Counter, { id: hot }));
      expect(readsOf(hot).map(locked)).toEqual([false]);
    });

    // Needs a second connection of the worker while its loop's transaction is open (SQLite has one).
    (sqlite ? it.skip : it)(
      "a loop that started before another remembered a row also locks that row once it meets its own first conflict",
      async () => {
        const [remembered, own] = await newCounters(2);
        // The loop must start with nothing remembered: it then has no hot rows until its conflict.
        while (anyRememberedHotRows()) await new Promise((resolve) => setTimeout(resolve, 20));
        const could: Record<string, boolean> = {};
        let lockedRead: boolean | undefined;
        await retryOnConflict(
          worker,
          async (manager, attempt) => {
            const row = await manager.findOneByOrFail(Counter, { id: own });
            if (attempt === 1) {
              await loopThatConflictsOn(remembered); // meanwhile, another loop remembers its row
              await conflictOn(manager, row);
            }
            log.reset();
            const before = await manager.findOneByOrFail(Counter, { id: remembered });
            could.remembered = await otherCanLock(remembered);
            lockedRead = readsOf(remembered).some(locked);
            before.value += 1;
            row.value += 1;
            await manager.save([before, row]);
          },
          { attempts: 3 },
        );
        expect(lockedRead).toBe(true);
        expect(could.remembered).toBe(false);
        expect(await schema.getRepository(Counter).findOneByOrFail({ id: remembered })).toMatchObject({ value: 3 });
      },
    );

    it("another DataSource on the same database does not inherit the row", async () => {
      const [hot, cold] = await newCounters(2);
      await loopThatConflictsOn(hot);
      const elsewhere = installLocking(await openAlongside(schema, { logger: log, logging: true }));
      try {
        expect(await laterLoopOn(elsewhere, { hot, cold })).toMatchObject({ hot: false, cold: false });
      } finally {
        await closeAll(elsewhere);
      }
    });
  });

  describe("which reads of the next attempt take the lock", () => {
    /**
     * A retry loop on `source` whose first attempt fails on the row `hot` of `entityName` (the
     * conflict a save of a stale copy raises) and whose second runs `read`: whether each SELECT
     * of `table` that `read` sent was a locking one, in order.
     */
    async function secondAttemptReads(
      read: (manager: EntityManager) => Promise<unknown>,
      hot: { entityName: string; id: ObjectLiteral; table: RegExp },
      source: DataSource = worker,
      options: RetryOptions = {},
    ): Promise<boolean[]> {
      let reads: boolean[] = [];
      await retryOnConflict(
        source,
        async (manager, attempt) => {
          if (attempt === 1) {
            const { entityName, id } = hot;
            throw new OptimisticLockError({ entityName, id, expectedVersion: 1, operation: "update" });
          }
          log.reset();
          await read(manager);
          reads = lockedSelectsOf(hot.table);
        },
        // Nothing remembered for later loops: their reads must not lock rows of this one.
        { attempts: 2, lockHotRows: { rememberMs: 0 }, ...options },
      );
      return reads;
    }

    const counter = (id: number) => ({ entityName: "Counter", id: { id }, table: /tl_counter/ });

    it("a find whose where lists the hot row among others reads them all with the lock at once", async () => {
      const [hot, cold] = await newCounters(2);
      const reads = await secondAttemptReads(
        (m) => m.find(Counter, { where: [{ id: cold }, { id: hot }] }),
        counter(hot),
      );
      expect(reads).toEqual([true]);
    });

    it("a find whose where lists only other rows runs as written", async () => {
      const [hot, cold, colder] = await newCounters(3);
      const reads = await secondAttemptReads(
        (m) => m.find(Counter, { where: [{ id: cold }, { id: colder }] }),
        counter(hot),
      );
      expect(reads).toEqual([false]);
    });

    it("a find naming its rows with In([...]) runs as written, then again locked when it returned the hot row", async () => {
      const [hot, cold] = await newCounters(2);
      const reads = await secondAttemptReads((m) => m.find(Counter, { where: { id: In([cold, hot]) } }), counter(hot));
      expect(reads).toEqual([false, true]);
    });

    it("a where list with one branch naming rows with In([...]) runs as written, then again locked", async () => {
      const [hot, cold] = await newCounters(2);
      const reads = await secondAttemptReads(
        (m) => m.find(Counter, { where: [{ id: cold }, { id: In([hot]) }] }),
        counter(hot),
      );
      expect(reads).toEqual([false, true]);
    });

    it("a find with an empty where list reads every row: run as written, then again locked", async () => {
      const [hot] = await newCounters(1);
      let found: Counter[] = [];
      const reads = await secondAttemptReads(async (m) => {
        found = await m.find(Counter, { where: [] });
      }, counter(hot));
      expect(found.map((c) => c.id)).toContain(hot);
      expect(reads).toEqual([false, true]);
    });

    describe("composite primary key (tenant text, id number)", () => {
      let nextTenantId = 1;
      async function newTenantCounters(tenant: string, count: number): Promise<number[]> {
        const ids = Array.from({ length: count }, () => nextTenantId++);
        await schema.getRepository(TenantCounter).insert(ids.map((id) => ({ tenant, id, value: 0, version: 1 })));
        return ids;
      }
      const tenantCounter = (tenant: string, id: number) => ({
        entityName: "TenantCounter",
        id: { tenant, id },
        table: /tl_tenant_counter/,
      });

      it("a find naming the hot row by its whole key reads it with the lock at once", async () => {
        const [hot] = await newTenantCounters("acme", 1);
        const reads = await secondAttemptReads(
          (m) => m.findOneByOrFail(TenantCounter, { tenant: "acme", id: hot }),
          tenantCounter("acme", hot),
        );
        expect(reads).toEqual([true]);
      });

      it("a key value given as a bigint names the row as its number does", async () => {
        const [hot] = await newTenantCounters("acme", 1);
        const reads = await secondAttemptReads(
          (m) => m.findOneByOrFail(TenantCounter, { tenant: "acme", id: BigInt(hot) as unknown as number }),
          tenantCounter("acme", hot),
        );
        expect(reads).toEqual([true]);
      });

      it("a find naming another row of the same tenant runs as written", async () => {
        const [hot, cold] = await newTenantCounters("acme", 2);
        const reads = await secondAttemptReads(
          (m) => m.findOneByOrFail(TenantCounter, { tenant: "acme", id: cold }),
          tenantCounter("acme", hot),
        );
        expect(reads).toEqual([false]);
      });

      it("a find naming part of the key (the tenant) runs as written, then again locked when it returned the hot row", async () => {
        const [hot] = await newTenantCounters("globex", 2);
        const reads = await secondAttemptReads(
          (m) => m.findBy(TenantCounter, { tenant: "globex" }),
          tenantCounter("globex", hot),
        );
        expect(reads).toEqual([false, true]);
      });
    });

    describe("on a node whose row locks are node-local (a Galera dialect)", () => {
      /** The dialect of a Galera node on MariaDB; elsewhere the database's own, said to lock node-locally. */
      const nodeLocal: LockDialect =
        db.family === "mysql" ? galeraDialect : { ...(sqlite ? sqliteDialect : postgresDialect), nodeLocalLocks: true };

      async function onNodeLocal<T>(options: LockingOptions, work: (source: DataSource) => Promise<T>): Promise<T> {
        const source = installLocking(await openAlongside(schema, { logger: log, logging: true }), {
          ...options,
          dialect: nodeLocal,
        });
        try {
          return await work(source);
        } finally {
          await closeAll(source);
        }
      }

      it("the hot row stays optimistic, and the retries wait their backoff again (no lock orders them)", async () => {
        const [hot, cold] = await newCounters(2);
        const delays: number[] = [];
        const reads = await onNodeLocal({}, (source) =>
          retryOnConflict(
            source,
            async (manager, attempt) => {
              if (attempt === 3) log.reset();
              const rows = await manager.findBy(Counter, { id: In([hot, cold]) });
              // Attempt 1 fails on one row, attempt 2 on the other: a row not hot before.
              const failing = attempt === 1 ? hot : attempt === 2 ? cold : undefined;
              if (failing !== undefined)
                throw new OptimisticLockError({
                  entityName: "Counter",
                  id: { id: failing },
                  expectedVersion: 1,
                  operation: "update",
                });
              return rows.length;
            },
            {
              attempts: 3,
              backoff: { initialMs: 5, multiplier: 1, jitter: false },
              lockHotRows: { rememberMs: 0 },
              onRetry: ({ delayMs }) => delays.push(delayMs),
            },
          ).then((count) => {
            expect(count).toBe(2);
            return lockedSelectsOf(/tl_counter/);
          }),
        );
        expect(reads).toEqual([false]);
        // The first conflict's retry starts at once (the dialect is not known yet); once a read
        // found it could not lock, the next one waits.
        expect(delays).toEqual([0, 5]);
      });

      it('with galera: { pessimistic: "node-local" } the hot row is read with the lock', async () => {
        const [hot] = await newCounters(1);
        const reads = await onNodeLocal({ galera: { pessimistic: "node-local" } }, (source) =>
          secondAttemptReads((m) => m.findOneByOrFail(Counter, { id: hot }), counter(hot), source),
        );
        expect(reads).toEqual([true]);
      });
    });
  });

  it("an attempt after a conflict that fails on its own error past budgetMs ends in that error", async () => {
    const [hotId] = await newCounters(1);
    const own = new Error("the work's own failure");
    const error = await retryOnConflict(
      worker,
      async (manager, attempt) => {
        const hot = await manager.findOneByOrFail(Counter, { id: hotId });
        if (attempt === 1) await conflictOn(manager, hot);
        await new Promise((resolve) => setTimeout(resolve, 300)); // past the budget
        throw own;
      },
      { attempts: 5, budgetMs: 200 },
    ).catch((e: unknown) => e);
    expect(error).toBe(own);
  });

  if (sqlite) return;

  /**
   * A retry loop on a row another connection has changed and now holds locked: its first
   * attempt saves a copy read before that change (a conflict, found before writing), its next
   * attempt reads the row, now hot, with a lock. The other connection lets go when `release` is
   * called, or `releaseAfterMs` after it took the lock. The loop runs on `source`.
   */
  async function loopOnLockedRow(
    options: Parameters<typeof retryOnConflict>[2],
    releaseAfterMs?: number,
    source: DataSource = worker,
  ) {
    const [id] = await newCounters(1);
    const stale = await source.getRepository(Counter).findOneByOrFail({ id });
    await other.transaction(async (m) => {
      const row = await m.findOneByOrFail(Counter, { id });
      row.value += 1;
      await m.save(row);
    });
    const taken = deferred();
    const released = deferred();
    const holding = other.transaction(async (m) => {
      await m.findOne(Counter, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
      taken.resolve();
      if (releaseAfterMs !== undefined) setTimeout(released.resolve, releaseAfterMs);
      await released.promise;
    });
    await taken.promise;
    const started = performance.now();
    const attempts: number[] = [];
    const outcome = await retryOnConflict(
      source,
      async (manager, attempt) => {
        attempts.push(attempt);
        const counter = attempt === 1 ? stale : await manager.findOneByOrFail(Counter, { id });
        counter.value += 1;
        await manager.save(counter);
      },
      options,
    ).catch((e: unknown) => e);
    const elapsedMs = performance.now() - started;
    released.resolve();
    await holding;
    return { id, outcome, attempts, elapsedMs };
  }

  it("the hot row's lock is waited for while the budget lasts: the attempt gets the row once it is let go", async () => {
    // Released after more than a second: MariaDB bounds lock waits in whole seconds.
    const { id, outcome, attempts, elapsedMs } = await loopOnLockedRow({ attempts: 3, budgetMs: 10_000 }, 1200);
    expect(outcome).toBeUndefined();
    expect(attempts).toEqual([1, 2]);
    expect(elapsedMs).toBeGreaterThanOrEqual(1000);
    // No lost update: the other connection's increment and the worker's are both there.
    expect(await schema.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({ value: 2, version: 3 });
  });

  it("lockHotRows: { timeout } ends the wait before the budget: the LockTimeoutError itself, nothing written", async () => {
    const { id, outcome, attempts, elapsedMs } = await loopOnLockedRow({
      attempts: 3,
      budgetMs: 20_000,
      lockHotRows: { timeout: 300 },
    });
    expect(outcome).toBeInstanceOf(LockTimeoutError);
    expect(attempts).toEqual([1, 2]);
    expect(elapsedMs).toBeLessThan(10_000);
    expect(await schema.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({ value: 1, version: 2 });
  });

  /** `work` on a DataSource of its own, installed with `options`. */
  async function installedWith<T>(options: LockingOptions, work: (source: DataSource) => Promise<T>): Promise<T> {
    const source = installLocking(await openAlongside(schema), options);
    try {
      return await work(source);
    } finally {
      await closeAll(source);
    }
  }

  it("lockTimeout: 0 (NOWAIT) of the installation does not fail the hot row's read at once: it waits for the lock", async () => {
    const { id, outcome, attempts, elapsedMs } = await installedWith({ lockTimeout: 0 }, (source) =>
      loopOnLockedRow({ attempts: 3 }, 1200, source),
    );
    expect(outcome).toBeUndefined();
    expect(attempts).toEqual([1, 2]);
    expect(elapsedMs).toBeGreaterThanOrEqual(1000);
    expect(await schema.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({ value: 2, version: 3 });
  });

  it("the installation's lockTimeout bounds the hot row's wait: the LockTimeoutError itself, nothing written", async () => {
    // The other connection lets go only well after the bound (MariaDB bounds in whole seconds).
    const { id, outcome, attempts, elapsedMs } = await installedWith({ lockTimeout: 300 }, (source) =>
      loopOnLockedRow({ attempts: 3 }, 5000, source),
    );
    expect(outcome).toBeInstanceOf(LockTimeoutError);
    expect(attempts).toEqual([1, 2]);
    expect(elapsedMs).toBeLessThan(3000);
    expect(await schema.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({ value: 1, version: 2 });
  });

  it("lockHotRows: { timeout } longer than what is left of budgetMs waits only for the budget", async () => {
    const { id, outcome, attempts, elapsedMs } = await loopOnLockedRow(
      { attempts: 3, budgetMs: 1000, lockHotRows: { timeout: 10_000 } },
      6000,
    );
    expect(outcome).toBeInstanceOf(RetryExhaustedError);
    expect(outcome).toMatchObject({ reason: "budget", attempts: 2 });
    expect(attempts).toEqual([1, 2]);
    // MariaDB bounds lock waits in whole seconds (rounded up).
    expect(elapsedMs).toBeLessThan(3000);
    expect(await schema.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({ value: 1, version: 2 });
  });

  it("the hot row's lock is waited for no longer than budgetMs: then RetryExhaustedError (budget)", async () => {
    const [hotId] = await newCounters(1);
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let holding: Promise<unknown> | undefined;
    const started = performance.now();
    const error = await retryOnConflict(
      worker,
      async (manager, attempt) => {
        const hot = await manager.findOneByOrFail(Counter, { id: hotId });
        if (attempt === 1) {
          // Another transaction takes the row and keeps it; this attempt fails on the row.
          let locked!: () => void;
          const isLocked = new Promise<void>((resolve) => {
            locked = resolve;
          });
          holding = other.transaction(async (m) => {
            await m.findOne(Counter, { where: { id: hotId }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
            locked();
            await released;
          });
          await isLocked;
          throw new OptimisticLockError({
            entityName: "Counter",
            id: { id: hotId },
            expectedVersion: 1,
            operation: "update",
          });
        }
        hot.value += 1;
        await manager.save(hot);
      },
      { attempts: 5, budgetMs: 1500 },
    ).catch((e: unknown) => e);
    release();
    await holding;
    expect(error).toBeInstanceOf(RetryExhaustedError);
    expect(error).toMatchObject({ reason: "budget", attempts: 2 });
    expect((error as RetryExhaustedError).cause).toBeInstanceOf(LockTimeoutError);
    // MariaDB bounds lock waits in whole seconds (rounded up).
    expect(performance.now() - started).toBeLessThan(db.family === "postgres" ? 3000 : 4000);
  });

  it("a lock the work asks for itself that times out past budgetMs is its own LockTimeoutError, hot row or not", async () => {
    // The loop has a hot row (attempt 1 conflicts on it); attempt 2 also locks another row, held
    // by another connection, with a wait longer than the whole budget. That wait is the work's
    // own: its LockTimeoutError is the answer, as in a loop without hot rows, not "budget".
    const [hotId, heldId] = await newCounters(2);
    const taken = deferred();
    const released = deferred();
    const holding = other.transaction(async (m) => {
      await m.findOne(Counter, { where: { id: heldId }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
      taken.resolve();
      await released.promise;
    });
    await taken.promise;
    const error = await retryOnConflict(
      worker,
      async (manager, attempt) => {
        const hot = await manager.findOneByOrFail(Counter, { id: hotId });
        if (attempt === 1) await conflictOn(manager, hot);
        await manager.findOne(Counter, {
          where: { id: heldId },
          ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 1000 }),
        });
      },
      { attempts: 5, budgetMs: 300 },
    ).catch((e: unknown) => e);
    released.resolve();
    await holding;
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(error).not.toBeInstanceOf(RetryExhaustedError);
  });

  it("8 workers x 15 increments of one row: exact total, and no call needs more than two attempts", async () => {
    const [id] = await newCounters(1);
    const workers = [worker, await openAlongside(schema), await openAlongside(schema)].map((s) =>
      s === worker ? s : installLocking(s),
    );
    let retries = 0;
    let mostAttempts = 0;
    try {
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          for (let i = 0; i < 15; i++) {
            await retryOnConflict(
              workers[w % workers.length],
              async (manager, attempt) => {
                mostAttempts = Math.max(mostAttempts, attempt);
                const counter = await manager.findOneByOrFail(Counter, { id });
                counter.value += 1;
                await manager.save(counter);
              },
              { attempts: 10, onRetry: () => void retries++ },
            );
          }
        }),
      );
    } finally {
      await closeAll(...workers.filter((s) => s !== worker));
    }
    expect(await schema.getRepository(Counter).findOneByOrFail({ id })).toMatchObject({ value: 120, version: 121 });
    expect(mostAttempts).toBeLessThanOrEqual(2);
    expect(retries).toBeLessThanOrEqual(120);
  }, 120_000);
});
