/**
 * The cost promise: the version check adds no statement to what plain TypeORM issues for the
 * same save, and drops TypeORM's version re-read where there is no RETURNING.
 */
import type { DataSource, EntityManager, ObjectLiteral } from "typeorm";
import { installLocking, LockMode, updateVersioned, withLockMode } from "../src";
import { ALL_ENTITIES, LegacyOrder, Order } from "./fixtures/entities";
import { closeAll, describeEachDatabase, openAlongside, openDataSources, StatementCounter } from "./support/databases";

/** Statements per operation: [plain TypeORM, typeorm-locking]. */
const EXPECTED = {
  postgres: { save: [4, 4], saveInTransaction: [2, 2], remove: [4, 4] },
  mysql: { save: [5, 4], saveInTransaction: [3, 2], remove: [4, 4] },
  sqlite: { save: [5, 4], saveInTransaction: [3, 2], remove: [4, 4] },
} as const;

/**
 * Statements of one PESSIMISTIC_WRITE read: [no timeout, 1500 ms timeout]. PostgreSQL and
 * MariaDB bound the wait inside the locking statement; SQLite reads, sets and restores
 * busy_timeout around its write lock (a local file: no network round trip).
 */
const LOCKED_READ = { postgres: [1, 1], mysql: [1, 1], sqlite: [2, 5] } as const;

describeEachDatabase((db) => {
  const plainCounter = new StatementCounter();
  const lockedCounter = new StatementCounter();
  let plain: DataSource;
  let locked: DataSource;

  beforeAll(async () => {
    [locked] = await openDataSources(db, ALL_ENTITIES, { extra: { logger: lockedCounter, logging: true } });
    // Plain TypeORM: a DataSource mapping only entities without library decorators (one with
    // @Versioned() entities is checked whether installed or not).
    plain = await openAlongside(locked, { entities: [LegacyOrder], logger: plainCounter, logging: true });
    installLocking(locked, { versionColumns: "checked" });
  });
  afterAll(() => closeAll(plain, locked));

  async function countSave(
    ds: DataSource,
    counter: StatementCounter,
    entity: new () => ObjectLiteral,
    inTransaction: boolean,
  ) {
    const repo = ds.getRepository(entity);
    const { id } = await repo.save(repo.create({ address: "A", status: "NEW" }));
    const loaded = await repo.findOneByOrFail({ id });
    loaded.status = "PAID";
    const save = (manager: EntityManager) => manager.save(loaded);
    let count: number;
    let statements: string[];
    counter.reset();
    if (inTransaction) {
      await ds.transaction(async (manager) => {
        counter.reset(); // count the save, not the caller's BEGIN/COMMIT
        await save(manager);
        count = counter.count;
        statements = [...counter.statements];
      });
    } else {
      await save(ds.manager);
      count = counter.count;
      statements = [...counter.statements];
    }
    expect(await repo.findOneByOrFail({ id })).toMatchObject({ status: "PAID", version: 2 });
    return { count: count!, statements: statements! };
  }

  const expected = () => EXPECTED[db.family];

  it("save() of one changed entity: no extra statement over plain TypeORM", async () => {
    const [plainCount, lockedCount] = expected().save;
    expect((await countSave(plain, plainCounter, LegacyOrder, false)).count).toBe(plainCount);
    const ours = await countSave(locked, lockedCounter, LegacyOrder, false);
    expect(ours.count).toBe(lockedCount);
    expect(ours.statements.join("\n")).toMatch(/UPDATE[\s\S]*WHERE[\s\S]*version[\s\S]*= /i);
    expect((await countSave(locked, lockedCounter, Order, false)).count).toBe(lockedCount);
  });

  it("save() inside a caller's transaction", async () => {
    const [plainCount, lockedCount] = expected().saveInTransaction;
    expect((await countSave(plain, plainCounter, LegacyOrder, true)).count).toBe(plainCount);
    expect((await countSave(locked, lockedCounter, Order, true)).count).toBe(lockedCount);
  });

  it("remove() of one entity", async () => {
    const [plainCount, lockedCount] = expected().remove;
    for (const [ds, counter, count, entity] of [
      [plain, plainCounter, plainCount, LegacyOrder],
      [locked, lockedCounter, lockedCount, Order],
    ] as const) {
      const repo = ds.getRepository<Order | LegacyOrder>(entity);
      const { id } = await repo.save(repo.create({ address: "A", status: "NEW" }));
      const loaded = await repo.findOneByOrFail({ id });
      counter.reset();
      await repo.remove(loaded);
      expect(counter.count).toBe(count);
    }
  });

  it("a timeout adds no statement to a pessimistic read on PostgreSQL and MariaDB", async () => {
    const repo = locked.getRepository(Order);
    const { id } = await repo.save(repo.create({ address: "A", status: "NEW" }));
    const countRead = (timeout?: number) =>
      locked.transaction(async (manager) => {
        await manager.findOneBy(Order, { id }); // the first lock asks a MySQL-family server what it is
        lockedCounter.reset();
        const order = await manager.findOne(Order, {
          where: { id },
          ...withLockMode(LockMode.PESSIMISTIC_WRITE, timeout === undefined ? {} : { timeout }),
        });
        expect(order).toMatchObject({ id });
        return lockedCounter.count;
      });
    await countRead(); // warm: server detection happens once per DataSource
    expect([await countRead(), await countRead(1500)]).toEqual(LOCKED_READ[db.family]);
  });

  it("updateVersioned() is exactly one statement", async () => {
    const repo = locked.getRepository(Order);
    const { id } = await repo.save(repo.create({ address: "A", status: "NEW" }));
    lockedCounter.reset();
    expect(await updateVersioned(repo, id, 1, { status: "PAID" })).toBe(2);
    expect(lockedCounter.count).toBe(1);
    expect(lockedCounter.statements[0]).toMatch(/^UPDATE/);
  });
});
