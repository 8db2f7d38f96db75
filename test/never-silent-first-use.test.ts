/**
 * The first lock request a DataSource never passed to installLocking() makes arrives inside a
 * transaction its query runner began before the library patched the runner's class (this file
 * has its own copy of TypeORM's classes, so no other test patched them first). A conflict in
 * that transaction must still count as one the retry's attempt began: retryOnConflict retries it
 * instead of taking it for a transaction that was already open.
 */
import type { DataSource } from "typeorm";
import { LockMode, retryOnConflict, withLockMode } from "../src";
import { LegacyOrder } from "./fixtures/entities";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";

describeEachDatabase((db) => {
  let one: DataSource;
  let two: DataSource;

  beforeAll(async () => {
    [one, two] = await openDataSources(db, [LegacyOrder], { count: 2 });
  });
  afterAll(() => closeAll(one, two));

  it("a conflict at the first OPTIMISTIC commit is retried", async () => {
    const parameter = db.family === "postgres" ? "$1" : "?";
    await two.query(`INSERT INTO tl_legacy_order (address, status, version) VALUES ('A', 'NEW', 1)`);
    const [{ id }] = await two.query("SELECT MAX(id) AS id FROM tl_legacy_order");
    const attempts: number[] = [];
    const result = await retryOnConflict(
      one,
      async (manager, attempt) => {
        attempts.push(attempt);
        const order = await manager.findOneOrFail(LegacyOrder, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
        if (attempt === 1) {
          await two.query(`UPDATE tl_legacy_order SET version = version + 1 WHERE id = ${parameter}`, [id]);
        }
        return order.version;
      },
      { attempts: 3, backoff: { initialMs: 1, maxMs: 2 } },
    );
    expect(attempts).toEqual([1, 2]);
    expect(result).toBe(2);
  });
});
