/**
 * The required scenarios on two real connections (two DataSources, each its own pool or
 * SQLite connection), interleaved with explicit barriers rather than sleeps.
 */
import type { DataSource } from "typeorm";
import {
  assertVersion,
  currentVersionOf,
  installLocking,
  OptimisticLockError,
  StaleVersionError,
  updateVersioned,
} from "../src";
import { ALL_ENTITIES, LegacyOrder, Order } from "./fixtures/entities";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";
import { changeBeforeNextWrite, deferred, waitUntilBlocked } from "./support/interleaving";
import { operatorSavesAfterCustomer } from "./support/stories";

describeEachDatabase((db) => {
  let customerSide: DataSource;
  let operatorSide: DataSource;

  beforeAll(async () => {
    [customerSide, operatorSide] = await openDataSources(db, ALL_ENTITIES, { count: 2 });
    installLocking(customerSide);
    installLocking(operatorSide);
  });
  afterAll(() => closeAll(customerSide, operatorSide));

  async function orderAtVersion(version: number): Promise<number> {
    const orders = customerSide.getRepository(Order);
    const { id } = await orders.save(orders.create({ address: "A", status: "NEW" }));
    for (let v = 1; v < version; v++) await updateVersioned(orders, id, v, { status: "NEW" });
    return id;
  }

  it("operator's stale save on another connection fails; the customer's address and version 2 survive", async () => {
    const id = await orderAtVersion(1);
    const operatorRepo = operatorSide.getRepository(Order);
    const error = await operatorSavesAfterCustomer(operatorRepo, customerSide.getRepository(Order), id);
    expect(error).toBeInstanceOf(OptimisticLockError);
    expect(await operatorRepo.findOneByOrFail({ id })).toMatchObject({ address: "B", status: "NEW", version: 2 });
  });

  it("two transactions read version 5; the first commits 6; the second's save fails", async () => {
    const id = await orderAtVersion(5);
    const firstRead = deferred();
    const secondRead = deferred();
    const firstCommitted = deferred();

    const first = customerSide
      .transaction(async (manager) => {
        const order = await manager.findOneByOrFail(Order, { id });
        expect(order.version).toBe(5);
        firstRead.resolve();
        await secondRead.promise;
        order.address = "FIRST";
        await manager.save(order);
      })
      .then(firstCommitted.resolve, (e) => {
        firstCommitted.reject(e);
        throw e;
      });
    const second = operatorSide.transaction(async (manager) => {
      const order = await manager.findOneByOrFail(Order, { id });
      expect(order.version).toBe(5);
      secondRead.resolve();
      await firstRead.promise;
      await firstCommitted.promise;
      order.status = "SECOND";
      await manager.save(order);
    });

    await first;
    const error = await second.catch((e: unknown) => e);
    if (db.family === "sqlite") {
      // SQLite has one writer and snapshot reads: the second transaction's snapshot is older than
      // the first's commit, so SQLite itself refuses the write (SQLITE_BUSY_SNAPSHOT).
      expect(String((error as { code?: string }).code)).toMatch(/^SQLITE_BUSY/);
    } else {
      expect(error).toBeInstanceOf(OptimisticLockError);
    }
    expect(await customerSide.getRepository(Order).findOneByOrFail({ id })).toMatchObject({
      address: "FIRST",
      status: "NEW",
      version: 6,
    });
  });

  if (db.family !== "sqlite") {
    it("a save blocked behind the other transaction's uncommitted update fails when that one commits", async () => {
      const id = await orderAtVersion(5);
      const staleCopy = await operatorSide.getRepository(Order).findOneByOrFail({ id });
      const firstWrote = deferred();
      const secondBlocked = deferred();

      const first = customerSide.transaction(async (manager) => {
        const order = await manager.findOneByOrFail(Order, { id });
        order.address = "FIRST";
        await manager.save(order); // holds the row lock until commit
        firstWrote.resolve();
        await secondBlocked.promise;
      });
      await firstWrote.promise;
      staleCopy.status = "SECOND";
      const second = operatorSide
        .getRepository(Order)
        .save(staleCopy)
        .catch((e: unknown) => e);
      await waitUntilBlocked(db, customerSide);
      secondBlocked.resolve();
      await first;
      expect(await second).toBeInstanceOf(OptimisticLockError);
      expect(await customerSide.getRepository(Order).findOneByOrFail({ id })).toMatchObject({
        address: "FIRST",
        status: "NEW",
        version: 6,
      });
    });
  }

  if (db.family !== "sqlite") {
    // TypeORM pre-loads the row before writing, and a version that moved by then is refused before
    // anything is written; these changes land after that pre-load, so only the UPDATE's own
    // `AND version = ?` can catch them (SQLite: the other writer would wait on the save's snapshot).
    describe("a change landing between TypeORM's pre-load and the UPDATE is caught by the UPDATE", () => {
      function changeBeforeOperatorWrites(id: number, event: "beforeUpdate" | "beforeSoftRemove"): void {
        changeBeforeNextWrite(operatorSide, Order, event, () =>
          customerSide
            .createQueryBuilder()
            .update(Order)
            .set({ address: "OTHER", version: () => "version + 1" })
            .where("id = :id", { id })
            .execute(),
        );
      }

      for (const [title, options] of [
        ["save()", undefined],
        ["save({ reload: false })", { reload: false }],
      ] as const) {
        it(`${title}: the stale UPDATE matches no row and fails; the other change survives`, async () => {
          const id = await orderAtVersion(5);
          const orders = operatorSide.getRepository(Order);
          const order = await orders.findOneByOrFail({ id });
          order.status = "OPERATOR";
          changeBeforeOperatorWrites(id, "beforeUpdate");
          const error = await orders.save(order, options).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(OptimisticLockError);
          expect(error).toMatchObject({ expectedVersion: 5, operation: "update" });
          expect(order.version).toBe(5);
          expect(await orders.findOneByOrFail({ id })).toMatchObject({ address: "OTHER", status: "NEW", version: 6 });
        });
      }

      it("softRemove(): the stale soft delete matches no row and fails; the row stays", async () => {
        const id = await orderAtVersion(5);
        const orders = operatorSide.getRepository(Order);
        const order = await orders.findOneByOrFail({ id });
        changeBeforeOperatorWrites(id, "beforeSoftRemove");
        await expect(orders.softRemove(order)).rejects.toBeInstanceOf(OptimisticLockError);
        expect(await orders.findOneByOrFail({ id })).toMatchObject({ address: "OTHER", deletedAt: null, version: 6 });
      });
    });
  }

  it("a stale remove on another connection fails and the row keeps the other change", async () => {
    const id = await orderAtVersion(1);
    const remover = await operatorSide.getRepository(Order).findOneByOrFail({ id });
    const editor = await customerSide.getRepository(Order).findOneByOrFail({ id });
    editor.address = "B";
    await customerSide.getRepository(Order).save(editor);
    await expect(operatorSide.getRepository(Order).remove(remover)).rejects.toBeInstanceOf(OptimisticLockError);
    expect(await operatorSide.getRepository(Order).findOneByOrFail({ id })).toMatchObject({ address: "B", version: 2 });
  });

  it("the current version of a soft-removed row (a 409's body) is its version, not null: the row is there to recover", async () => {
    const id = await orderAtVersion(1);
    const operatorOrders = operatorSide.getRepository(Order);
    await operatorOrders.softRemove(await operatorOrders.findOneByOrFail({ id }));
    const { version } = await operatorOrders.findOneOrFail({ where: { id }, withDeleted: true });
    const lost = new OptimisticLockError({ entityName: "Order", id: { id }, expectedVersion: 1, operation: "update" });
    expect(await currentVersionOf(customerSide, lost)).toBe(version);
  });

  it("the current version an error carries is the answer, without reading the row (which may have moved since)", async () => {
    const id = await orderAtVersion(1);
    const carried = new OptimisticLockError({
      entityName: "Order",
      id: { id },
      expectedVersion: 1,
      actualVersion: 9,
      operation: "update",
    });
    expect(await currentVersionOf(customerSide, carried)).toBe(9);
    const unknownEntity = new OptimisticLockError({
      entityName: "NotAnEntityHere",
      id: { id },
      expectedVersion: 1,
      actualVersion: 4,
      operation: "update",
    });
    expect(await currentVersionOf(customerSide, unknownEntity)).toBe(4);
  });

  it("a @VersionColumn app is checked after install (versionColumns: 'checked')", async () => {
    const [customerApp, operatorApp] = await openDataSources(db, ALL_ENTITIES, { count: 2 });
    try {
      installLocking(customerApp, { versionColumns: "checked" });
      installLocking(operatorApp, { versionColumns: "checked" });
      const customerRepo = customerApp.getRepository(LegacyOrder);
      const operatorRepo = operatorApp.getRepository(LegacyOrder);
      const { id } = await customerRepo.save(customerRepo.create({ address: "A", status: "NEW" }));
      expect(await operatorSavesAfterCustomer(operatorRepo, customerRepo, id)).toBeInstanceOf(OptimisticLockError);
      expect(await operatorRepo.findOneByOrFail({ id })).toMatchObject({ address: "B", status: "NEW", version: 2 });
    } finally {
      await closeAll(customerApp, operatorApp);
    }
  });

  it("an expected version from a client: stale is refused, current is applied", async () => {
    const id = await orderAtVersion(1);
    const clientSawVersion = 1;
    await updateVersioned(customerSide.getRepository(Order), id, 1, { address: "B" }); // someone else

    const orders = operatorSide.getRepository(Order);
    const order = await orders.findOneByOrFail({ id });
    expect(() => assertVersion(order, clientSawVersion)).toThrow(StaleVersionError);
    order.version = clientSawVersion;
    order.status = "FROM CLIENT";
    await expect(orders.save(order)).rejects.toBeInstanceOf(StaleVersionError);
    await expect(updateVersioned(orders, id, clientSawVersion, { status: "FROM CLIENT" })).rejects.toBeInstanceOf(
      StaleVersionError,
    );
    expect(await orders.findOneByOrFail({ id })).toMatchObject({ address: "B", status: "NEW", version: 2 });

    expect(await updateVersioned(orders, id, 2, { status: "FROM CLIENT" })).toBe(3);
    expect(await customerSide.getRepository(Order).findOneByOrFail({ id })).toMatchObject({
      address: "B",
      status: "FROM CLIENT",
      version: 3,
    });
  });
});
