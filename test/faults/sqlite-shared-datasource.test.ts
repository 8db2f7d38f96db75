/**
 * Found by the history checker (issue 18): on SQLite, one DataSource shared by concurrent callers
 * loses writes that returned ok. TypeORM gives a better-sqlite3 DataSource a single query runner
 * (`BetterSqlite3Driver.createQueryRunner` returns the same one to everybody), so while one
 * caller's transaction is open, another caller's `save()` finds "a transaction already active",
 * writes inside it without BEGIN or COMMIT of its own, and returns; when the first transaction
 * rolls back (a conflict, any error), the second caller's write goes with it.
 *
 * Not a hole of the library's checks but of the promise "what returned ok is written". Fixed by
 * making the callers of such a DataSource take turns on its runner
 * (src/typeorm/shared-runner-turns.ts): B waits until A's transaction has ended, then writes in
 * a transaction of its own. The neighbours (every write shape, reads, the holder's own calls, a
 * leaked transaction) are in test/shared-connection.test.ts; the history runs have a target with
 * all clients on one SQLite DataSource (test/faults/targets.ts).
 */

import { installLocking } from "../../src";
import { describeEachDatabase, openDataSources } from "../support/databases";
import type { HistoryOrder } from "./history";
import { LOCKED_MODEL } from "./history";

describeEachDatabase(
  (db) => {
    it("a save() that returned ok is not rolled back by another caller's transaction on the same DataSource", async () => {
      const [source] = await openDataSources(db, LOCKED_MODEL.entities, { beforeInitialize: (s) => installLocking(s) });
      const orders = source.getRepository(LOCKED_MODEL.order);
      for (const id of [1, 2]) {
        const order = new LOCKED_MODEL.order();
        Object.assign(order, { id, tokens: "" } satisfies Partial<HistoryOrder>);
        await orders.save(order);
      }
      let release!: () => void;
      const bStarted = new Promise<void>((resolve) => {
        release = resolve;
      });
      let opened!: () => void;
      const aOpen = new Promise<void>((resolve) => {
        opened = resolve;
      });
      // A: a unit of work that ends in an error (any: a conflict, a validation) and rolls back
      const a = source.transaction(async (manager) => {
        await manager.findOneByOrFail(LOCKED_MODEL.order, { id: 1 });
        opened();
        await bStarted;
        throw new Error("A gives up");
      });
      // B: another request's read and save of another order, while A's transaction is open. Plain
      // TypeORM runs them inside A's transaction before the next macrotask; with the library they
      // wait for A to end.
      await aOpen;
      const b = (async () => {
        const order2 = await orders.findOneByOrFail({ id: 2 });
        order2.tokens = "written-by-B";
        await orders.save(order2); // returns: B is told its write is done
      })();
      await new Promise((resolve) => setImmediate(resolve));
      release();
      await expect(a).rejects.toThrow("A gives up");
      await b;
      expect((await orders.findOneByOrFail({ id: 2 })).tokens).toBe("written-by-B");
    });
  },
  ["sqlite"],
);
