/**
 * SQLite: one DataSource, one connection, shared by every caller (issue 18). TypeORM hands every
 * caller the same query runner; the library makes them take turns, so that a caller's work never
 * lands inside another caller's open transaction (lost with its rollback, or reading its
 * uncommitted writes). Each case holds caller A's transaction open while caller B acts, on a file
 * database and on `:memory:`, and checks B waited for A's end and what is written afterwards.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { DataSource, EntityManager } from "typeorm";
import {
  installLocking,
  LockMode,
  retryOnConflict,
  SharedConnectionBusyError,
  updateVersioned,
  withLockMode,
} from "../src";
import { Counter } from "./fixtures/counter";
import { Order, OrderLine } from "./fixtures/entities";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";
import { deferred } from "./support/interleaving";

const BOUND_MS = 1500;

describeEachDatabase(
  (db) => {
    it("a transaction begun by hand as a fresh process's first call still makes another caller wait for it", async () => {
      // Fresh process: no AsyncLocalStorage there has followed an async context yet.
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ["-r", "ts-node/register/transpile-only", join(__dirname, "support", "shared-runner-first-use.ts")],
        { cwd: join(__dirname, ".."), timeout: 60_000 },
      );
      expect(stdout).toBe("SharedConnectionBusyError");
    }, 90_000);

    describe.each([
      ["file database", {}],
      [":memory:", { database: ":memory:" }],
    ])("%s", (_name, extra) => {
      let source: DataSource;
      beforeAll(async () => {
        [source] = await openDataSources(db, [Order, OrderLine, Counter], {
          extra,
          beforeInitialize: (s) => installLocking(s, { lockTimeout: BOUND_MS }),
        });
      });

      const orders = () => source.getRepository(Order);
      const order = (status: string) => orders().save(Object.assign(new Order(), { address: "a", status }));
      const statusOf = async (id: number) => (await orders().findOne({ where: { id }, withDeleted: true }))?.status;

      /**
       * Runs A's transaction (it changes order `aId` and stays open) and starts `b` while it is
       * open; A ends by `end` once b has had the chance to run. Returns the order of events.
       */
      async function whileOpen(aId: number, end: "commit" | "rollback", b: () => Promise<unknown>): Promise<string[]> {
        const events: string[] = [];
        const aOpen = deferred();
        const bStarted = deferred();
        const a = source.transaction(async (m) => {
          const mine = await m.findOneByOrFail(Order, { id: aId });
          mine.status = "A-wrote";
          await m.save(mine);
          aOpen.resolve();
          await bStarted.promise;
          events.push("A ends");
          if (end === "rollback") throw new Error("A rolls back");
        });
        await aOpen.promise;
        const bDone = b().then(() => events.push("B done"));
        // Plain TypeORM runs all of B inside A's transaction before the next macrotask.
        await new Promise((resolve) => setImmediate(resolve));
        bStarted.resolve();
        if (end === "rollback") await expect(a).rejects.toThrow("A rolls back");
        else await a;
        await bDone;
        return events;
      }

      const writes: Array<[string, (id: number) => Promise<unknown>, (id: number) => Promise<void>]> = [
        [
          "save()",
          async (id) => {
            const mine = await orders().findOneByOrFail({ id });
            mine.status = "B";
            await orders().save(mine);
          },
          async (id) => expect(await statusOf(id)).toBe("B"),
        ],
        [
          "remove()",
          async (id) => orders().remove(await orders().findOneByOrFail({ id })),
          async (id) => expect(await statusOf(id)).toBeUndefined(),
        ],
        [
          "softRemove()",
          async (id) => orders().softRemove(await orders().findOneByOrFail({ id })),
          async (id) => {
            expect(await orders().findOneBy({ id })).toBeNull();
            expect(await statusOf(id)).toBe("B0");
          },
        ],
        [
          "repository update()",
          (id) => orders().update({ id }, { status: "B" }),
          async (id) => expect(await statusOf(id)).toBe("B"),
        ],
        [
          "query builder update",
          (id) => source.createQueryBuilder().update(Order).set({ status: "B" }).where({ id }).execute(),
          async (id) => expect(await statusOf(id)).toBe("B"),
        ],
        [
          "insert()",
          (id) => orders().insert({ address: `inserted-after-${id}`, status: "B", version: 1 }),
          async (id) => expect(await orders().countBy({ address: `inserted-after-${id}` })).toBe(1),
        ],
        [
          "updateVersioned()",
          async (id) =>
            updateVersioned(orders(), id, (await orders().findOneByOrFail({ id })).version, { status: "B" }),
          async (id) => expect(await statusOf(id)).toBe("B"),
        ],
        [
          "its own transaction() with a PESSIMISTIC_WRITE read",
          (id) =>
            source.transaction(async (m) => {
              const mine = await m.findOneOrFail(Order, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
              mine.status = "B";
              await m.save(mine);
            }),
          async (id) => expect(await statusOf(id)).toBe("B"),
        ],
        [
          "dataSource.query()",
          (id) => source.query(`UPDATE "tl_order" SET "status" = 'B' WHERE "id" = ?`, [id]),
          async (id) => expect(await statusOf(id)).toBe("B"),
        ],
      ];

      for (const end of ["rollback", "commit"] as const) {
        it.each(
          writes,
        )(`B's %s while A's transaction is open waits for A's ${end}, then is written`, async (_n, b, check) => {
          const aId = (await order("A0")).id;
          const bId = (await order("B0")).id;
          const events = await whileOpen(aId, end, () => b(bId));
          expect(events).toEqual(["A ends", "B done"]);
          await check(bId);
          expect(await statusOf(aId)).toBe(end === "commit" ? "A-wrote" : "A0");
        });
      }

      it("B's read while A's transaction is open does not see A's uncommitted write", async () => {
        const aId = (await order("clean")).id;
        let seen: string | undefined;
        const events = await whileOpen(aId, "rollback", async () => {
          seen = (await orders().findOneByOrFail({ id: aId })).status;
        });
        expect(events).toEqual(["A ends", "B done"]);
        expect(seen).toBe("clean");
      });

      it("B's PESSIMISTIC_WRITE read outside any transaction is refused as without A, not run unlocked inside A's", async () => {
        const aId = (await order("A0")).id;
        const bId = (await order("B0")).id;
        const locked = () => orders().findOne({ where: { id: bId }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
        const alone = await locked().catch((e: unknown) => e);
        expect(alone).toBeInstanceOf(Error);
        let during: unknown;
        const events = await whileOpen(aId, "commit", async () => {
          during = await locked().catch((e: unknown) => e);
        });
        expect(events).toEqual(["A ends", "B done"]);
        expect(during).toBeInstanceOf((alone as Error).constructor);
      });

      it("the holder's default-repository save inside its transaction() joins it: no wait, rolled back with it", async () => {
        const failure = new Error("the unit of work fails");
        await expect(
          source.transaction(async () => {
            await source.getRepository(Order).save(Object.assign(new Order(), { address: "joined", status: "x" }));
            await source.query(`UPDATE "tl_order" SET "status" = 'y' WHERE "address" = 'joined'`);
            throw failure;
          }),
        ).rejects.toBe(failure);
        expect(await orders().countBy({ address: "joined" })).toBe(0);
        await source.transaction(async () => {
          await source.getRepository(Order).save(Object.assign(new Order(), { address: "joined", status: "x" }));
        });
        expect(await orders().countBy({ address: "joined" })).toBe(1);
      });

      it("the holder's work on this DataSource from inside a turn it took on another shared one does not wait", async () => {
        const [other] = await openDataSources(db, [Order, OrderLine, Counter], {
          extra,
          beforeInitialize: (s) => installLocking(s, { lockTimeout: BOUND_MS }),
        });
        await source.transaction(async (m) => {
          await m.save(Object.assign(new Order(), { address: "outer-source", status: "x" }));
          await other.transaction(async (o) => {
            await o.save(Object.assign(new Order(), { address: "other-source", status: "x" }));
            await source
              .getRepository(Order)
              .save(Object.assign(new Order(), { address: "back-in-source", status: "x" }));
          });
        });
        expect(await orders().countBy({ address: "back-in-source" })).toBe(1);
        expect(await other.getRepository(Order).countBy({ address: "other-source" })).toBe(1);
      });

      it("a nested transaction (savepoint) of the holder rolls back alone", async () => {
        await source.transaction(async (m) => {
          await m.save(Object.assign(new Order(), { address: "outer", status: "x" }));
          await expect(
            m.transaction(async (inner) => {
              await inner.save(Object.assign(new Order(), { address: "inner", status: "x" }));
              throw new Error("inner fails");
            }),
          ).rejects.toThrow("inner fails");
          await source.transaction(async (inner) => {
            await inner.save(Object.assign(new Order(), { address: "inner-ok", status: "x" }));
          });
        });
        expect(await orders().countBy({ address: "outer" })).toBe(1);
        expect(await orders().countBy({ address: "inner" })).toBe(0);
        expect(await orders().countBy({ address: "inner-ok" })).toBe(1);
      });

      it("16 concurrent callers, some rolling back: every ok write is present, every rolled-back one absent", async () => {
        let seed = 20_260_518;
        const random = () => {
          seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
          return seed / 2_147_483_648;
        };
        const outcomes = await Promise.all(
          Array.from({ length: 16 }, async (_, i) => {
            const address = `caller-${i}`;
            const rollBack = random() < 0.4;
            const plain = random() < 0.25;
            try {
              if (plain) {
                await new Promise((resolve) => setImmediate(resolve));
                await order("first").then((o) => orders().save(Object.assign(o, { address, status: "plain" })));
                return { address, ok: true };
              }
              await source.transaction(async (m: EntityManager) => {
                await m.save(Object.assign(new Order(), { address, status: "tx" }));
                await new Promise((resolve) => setImmediate(resolve)); // others queue meanwhile
                await m.getRepository(Order).update({ address }, { status: "tx-updated" });
                if (rollBack) throw new Error(`caller ${i} rolls back`);
              });
              return { address, ok: true };
            } catch (error) {
              if (!rollBack) throw error;
              return { address, ok: false };
            }
          }),
        );
        expect(outcomes.some((o) => !o.ok)).toBe(true);
        for (const { address, ok } of outcomes) {
          expect({ address, rows: await orders().countBy({ address }) }).toEqual({ address, rows: ok ? 1 : 0 });
        }
      });

      /**
       * Holds the turn with a transaction of A's, queues `b` and then `c` behind it (each given a
       * macrotask to reach the queue), then ends A. Returns what `b` returned.
       */
      async function queuedBehindA<T>(b: () => Promise<T>, c: () => Promise<unknown>): Promise<T> {
        const aOpen = deferred();
        const aEnds = deferred();
        const a = source.transaction(async () => {
          aOpen.resolve();
          await aEnds.promise;
        });
        await aOpen.promise;
        const bResult = b();
        await new Promise((resolve) => setImmediate(resolve));
        const cDone = c();
        await new Promise((resolve) => setImmediate(resolve));
        aEnds.resolve();
        await a;
        await cDone;
        return bResult;
      }

      it("B's failing cascade save() while A's transaction is open rolls back as a whole once its turn comes", async () => {
        const aId = (await order("A0")).id;
        let failure: unknown;
        const events = await whileOpen(aId, "commit", async () => {
          const lines = [
            Object.assign(new OrderLine(), { product: "fine", quantity: 1 }),
            Object.assign(new OrderLine(), { product: null as unknown as string, quantity: 1 }),
          ];
          failure = await orders()
            .save(Object.assign(new Order(), { address: "b-cascade", status: "B", lines }))
            .catch((e: unknown) => e);
        });
        expect(events).toEqual(["A ends", "B done"]);
        expect(failure).toBeInstanceOf(Error);
        expect(await orders().countBy({ address: "b-cascade" })).toBe(0);
        expect(await source.getRepository(OrderLine).countBy({ product: "fine" })).toBe(0);
        expect(await statusOf(aId)).toBe("A-wrote");
      });

      it("a query builder insert's re-read of its generated columns is not interleaved with a caller queued behind it", async () => {
        const address = `qb-insert-${Math.random()}`;
        const result = await queuedBehindA(
          () => source.createQueryBuilder().insert().into(Order).values({ address, status: "B", version: 1 }).execute(),
          () => source.query(`UPDATE "tl_order" SET "version" = 41 WHERE "address" = ?`, [address]),
        );
        expect(result.generatedMaps[0]).toMatchObject({ version: 1 });
        expect((await orders().findOneByOrFail({ address })).version).toBe(41);
      });

      it("findAndCount's count is of the rows its page was read from, not of a write by a caller queued behind it", async () => {
        const status = `paged-${Math.random()}`;
        await order(status);
        await order(status);
        const [page, count] = await queuedBehindA(
          () => orders().findAndCount({ where: { status }, take: 1 }),
          () => order(status),
        );
        expect(page).toHaveLength(1);
        expect(count).toBe(2);
        expect(await orders().countBy({ status })).toBe(3);
      });

      it("installLocking() again while A's transaction is open: B still waits for A's end", async () => {
        const aId = (await order("A0")).id;
        const bId = (await order("B0")).id;
        const events = await whileOpen(aId, "rollback", async () => {
          installLocking(source, { lockTimeout: BOUND_MS });
          const mine = await orders().findOneByOrFail({ id: bId });
          mine.status = "B";
          await orders().save(mine);
        });
        expect(events).toEqual(["A ends", "B done"]);
        expect(await statusOf(bId)).toBe("B");
        expect(await statusOf(aId)).toBe("A0");
      });

      it("a transaction begun by hand that fails to begin gives the connection back at once", async () => {
        const runner = source.createQueryRunner();
        // SQLite has no READ COMMITTED: TypeORM refuses it before any BEGIN.
        const begin = async () => {
          await Promise.resolve();
          return runner.startTransaction("READ COMMITTED").catch((e: unknown) => e);
        };
        expect(await begin()).toBeInstanceOf(Error);
        expect(runner.isTransactionActive).toBe(false);
        await orders().save(Object.assign(new Order(), { address: "after-failed-begin", status: "x" }));
        expect(await orders().countBy({ address: "after-failed-begin" })).toBe(1);
      });

      it("committing a savepoint of a transaction begun by hand keeps the turn until the outer transaction ends", async () => {
        const runner = source.createQueryRunner();
        const events: string[] = [];
        const innerCommitted = deferred();
        const bTried = deferred();
        const byHand = (async () => {
          await Promise.resolve();
          await runner.startTransaction();
          await runner.manager.save(Object.assign(new Order(), { address: "hand-outer", status: "x" }));
          await runner.startTransaction();
          await runner.manager.save(Object.assign(new Order(), { address: "hand-inner", status: "x" }));
          await runner.commitTransaction();
          innerCommitted.resolve();
          await bTried.promise;
          events.push("outer ends");
          await runner.rollbackTransaction();
        })();
        await innerCommitted.promise;
        const b = orders()
          .save(Object.assign(new Order(), { address: "beside-hand", status: "x" }))
          .then(() => events.push("B done"));
        await new Promise((resolve) => setImmediate(resolve));
        bTried.resolve();
        await byHand;
        await b;
        expect(events).toEqual(["outer ends", "B done"]);
        expect(await orders().countBy({ address: "hand-outer" })).toBe(0);
        expect(await orders().countBy({ address: "hand-inner" })).toBe(0);
        expect(await orders().countBy({ address: "beside-hand" })).toBe(1);
      });

      it("another caller's stray rollbackTransaction() on the shared runner does not end the holder's transaction()", async () => {
        await orders().count(); // a turn taken and given back before
        const aOpen = deferred();
        const goOn = deferred();
        const a = source.transaction(async (m) => {
          await m.save(Object.assign(new Order(), { address: "holder-first", status: "x" }));
          aOpen.resolve();
          await goOn.promise;
          await m.save(Object.assign(new Order(), { address: "holder-second", status: "x" }));
        });
        await aOpen.promise;
        // A handler's clean-up that sees "a transaction is active" on the one runner and rolls back.
        const runner = source.createQueryRunner();
        const stray = (async () => {
          await Promise.resolve();
          if (runner.isTransactionActive) await runner.rollbackTransaction();
        })().catch((e: unknown) => e);
        await new Promise((resolve) => setImmediate(resolve));
        goOn.resolve();
        await a;
        await stray;
        expect(await orders().countBy({ address: "holder-first" })).toBe(1);
        expect(await orders().countBy({ address: "holder-second" })).toBe(1);
      });

      it("without lockTimeout, the wait for a turn is bounded by the driver's busy timeout", async () => {
        const [own] = await openDataSources(db, [Order, OrderLine, Counter], {
          extra: { ...extra, timeout: 300 },
          beforeInitialize: (s) => installLocking(s),
        });
        try {
          const runner = own.createQueryRunner();
          const leak = async () => {
            await Promise.resolve();
            await runner.startTransaction();
          };
          await leak();
          const error = await own
            .getRepository(Order)
            .save(Object.assign(new Order(), { address: "waiting", status: "x" }))
            .catch((e: unknown) => e);
          expect(error).toBeInstanceOf(SharedConnectionBusyError);
          // Waiting again for a transaction nobody ends cannot help; this call's own had not begun.
          expect(error).toMatchObject({
            waitedMs: 300,
            code: "SHARED_CONNECTION_BUSY",
            retryable: false,
            transactionAborted: false,
          });
          await runner.rollbackTransaction();
        } finally {
          await closeAll(own);
        }
      });

      // SQLite only, as the whole file: its drivers are the ones whose callers share one connection.
      it("a driver timeout of 0 is no bound of 0: a caller queued behind a transaction waits for it, then is written", async () => {
        const [own] = await openDataSources(db, [Order, OrderLine, Counter], {
          extra: { ...extra, timeout: 0 },
          beforeInitialize: (s) => installLocking(s),
        });
        try {
          const events: string[] = [];
          const aOpen = deferred();
          const a = own.transaction(async (m) => {
            await m.save(Object.assign(new Order(), { address: "holding", status: "a" }));
            aOpen.resolve();
            await new Promise((resolve) => setTimeout(resolve, 250));
            events.push("A ends");
          });
          await aOpen.promise;
          const b = own
            .getRepository(Order)
            .save(Object.assign(new Order(), { address: "queued", status: "b" }))
            .then(() => events.push("B done"));
          await a;
          await b;
          expect(events).toEqual(["A ends", "B done"]);
          expect(await own.getRepository(Order).countBy({ address: "queued" })).toBe(1);
        } finally {
          await closeAll(own);
        }
      });

      it("a transaction begun by hand and never ended makes another caller fail with SharedConnectionBusyError within the bound", async () => {
        const runner = source.createQueryRunner();
        // The leak happens in its own async function (a request handler that forgot its finally).
        const leak = async () => {
          await Promise.resolve();
          await runner.startTransaction();
          await runner.manager.save(Object.assign(new Order(), { address: "leaked", status: "x" }));
        };
        await leak();
        const error = await orders()
          .save(Object.assign(new Order(), { address: "waiting", status: "x" }))
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(SharedConnectionBusyError);
        expect(error).toMatchObject({ waitedMs: BOUND_MS, dialect: "sqlite" });
        // Ending it from another context does not wait, and gives the connection back.
        await runner.rollbackTransaction();
        await orders().save(Object.assign(new Order(), { address: "after", status: "x" }));
        expect(await orders().countBy({ address: "leaked" })).toBe(0);
        expect(await orders().countBy({ address: "waiting" })).toBe(0);
        expect(await orders().countBy({ address: "after" })).toBe(1);
      });

      it("retryOnConflict across callers of one DataSource: every increment lands once", async () => {
        const id = Math.floor(Math.random() * 1e9);
        await source.getRepository(Counter).save(Object.assign(new Counter(), { id, value: 0 }));
        const stale = await Promise.all(
          Array.from({ length: 8 }, () => source.getRepository(Counter).findOneByOrFail({ id })),
        );
        let attempts = 0;
        await Promise.all(
          stale.map((loaded) =>
            retryOnConflict(source, async (m, attempt) => {
              attempts++;
              // The first attempt saves what it loaded before anybody wrote: all but one conflict.
              const counter = attempt === 1 ? loaded : await m.findOneByOrFail(Counter, { id });
              counter.value += 1;
              await m.save(counter);
            }),
          ),
        );
        expect((await source.getRepository(Counter).findOneByOrFail({ id })).value).toBe(8);
        expect(attempts).toBeGreaterThan(8);
      });
    });
  },
  ["sqlite"],
);
