import type { DataSource, Repository } from "typeorm";
import {
  assertVersion,
  ConcurrencyError,
  installLocking,
  LockingError,
  MissingVersionError,
  OptimisticLockError,
  StaleVersionError,
  updateVersioned,
} from "../src";
import { ALL_ENTITIES, LegacyOrder, Order, OrderLine } from "./fixtures/entities";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";
import { operatorSavesAfterCustomer } from "./support/stories";

describeEachDatabase((db) => {
  let plain: DataSource;
  let locked: DataSource;
  let orders: Repository<Order>;

  beforeAll(async () => {
    [locked, plain] = await openDataSources(db, ALL_ENTITIES, { count: 2 });
    installLocking(locked);
    orders = locked.getRepository(Order);
  });
  afterAll(() => closeAll(locked, plain));

  async function newOrder(): Promise<Order> {
    return orders.save(orders.create({ address: "A", status: "NEW" }));
  }

  describe("the operator/customer story", () => {
    it("plain TypeORM with @VersionColumn loses the customer's update (the bug we fix)", async () => {
      const repo = plain.getRepository(LegacyOrder);
      const { id } = await repo.save(repo.create({ address: "A", status: "NEW" }));
      expect(await operatorSavesAfterCustomer(repo, repo, id)).toBeUndefined();
      expect(await repo.findOneByOrFail({ id })).toMatchObject({ address: "A", version: 1 });
    });

    it("with @Versioned the stale save fails and the customer's address and version 2 survive", async () => {
      const { id } = await newOrder();
      const error = await operatorSavesAfterCustomer(orders, orders, id);
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(error).toBeInstanceOf(ConcurrencyError);
      expect(error).toBeInstanceOf(LockingError);
      expect(error).toMatchObject({ entityName: "Order", id: { id }, expectedVersion: 1, actualVersion: 2 });
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ address: "B", status: "NEW", version: 2 });
    });

    it("after a save the entity holds the new version and can be saved again", async () => {
      const order = await newOrder();
      expect(order.version).toBe(1);
      for (const status of ["PAID", "PACKED", "SHIPPED"]) {
        order.status = status;
        await orders.save(order);
      }
      expect(order.version).toBe(4);
      expect(await orders.findOneByOrFail({ id: order.id })).toMatchObject({ status: "SHIPPED", version: 4 });
    });

    it("a save that changes nothing bumps nothing", async () => {
      const order = await newOrder();
      await orders.save(order);
      await orders.save(await orders.findOneByOrFail({ id: order.id }));
      expect(await orders.findOneByOrFail({ id: order.id })).toMatchObject({ version: 1 });
    });

    it("a stale copy can never move the version backwards", async () => {
      const { id } = await newOrder();
      const stale = await orders.findOneByOrFail({ id });
      await updateVersioned(orders, id, 1, { status: "PAID" });
      await updateVersioned(orders, id, 2, { status: "PACKED" });
      stale.status = "CANCELLED";
      await expect(orders.save(stale)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ status: "PACKED", version: 3 });
    });
  });

  describe("nothing of a failed save is written", () => {
    it("a stale cascaded child rolls back the parent's change in the same save", async () => {
      const order = await orders.save(
        orders.create({ address: "A", status: "NEW", lines: [{ product: "tea", quantity: 1 }] }),
      );
      const lines = locked.getRepository(OrderLine);
      const mine = await orders.findOneOrFail({ where: { id: order.id }, relations: { lines: true } });
      const other = await lines.findOneByOrFail({ id: order.lines![0].id });
      other.quantity = 5;
      await lines.save(other);

      mine.address = "B";
      mine.lines![0].quantity = 2;
      await expect(orders.save(mine)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await orders.findOneByOrFail({ id: order.id })).toMatchObject({ address: "A", version: 1 });
      expect(await lines.findOneByOrFail({ id: other.id })).toMatchObject({ quantity: 5, version: 2 });
    });

    it("in a caller's transaction the error propagates and the caller's earlier writes roll back", async () => {
      const first = await newOrder();
      const second = await newOrder();
      const staleSecond = await orders.findOneByOrFail({ id: second.id });
      await updateVersioned(orders, second.id, 1, { status: "PAID" });

      const error = await locked
        .transaction(async (manager) => {
          const a = await manager.findOneByOrFail(Order, { id: first.id });
          a.status = "TOUCHED";
          await manager.save(a);
          staleSecond.status = "TOUCHED";
          await manager.save(staleSecond);
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(await orders.findOneByOrFail({ id: first.id })).toMatchObject({ status: "NEW", version: 1 });
      expect(await orders.findOneByOrFail({ id: second.id })).toMatchObject({ status: "PAID", version: 2 });
    });
  });

  describe("remove, softRemove and recover are version-checked", () => {
    it("a stale remove fails and the row stays with the other change", async () => {
      const { id } = await newOrder();
      const remover = await orders.findOneByOrFail({ id });
      const editor = await orders.findOneByOrFail({ id });
      editor.status = "PAID";
      await orders.save(editor);
      const error = await orders.remove(remover).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(error).toMatchObject({ operation: "remove", expectedVersion: 1 });
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ status: "PAID", version: 2 });
    });

    it("a current remove deletes the row", async () => {
      const { id } = await newOrder();
      await orders.remove(await orders.findOneByOrFail({ id }));
      expect(await orders.findOneBy({ id })).toBeNull();
    });

    it("removing several entities at once removes none if one is stale", async () => {
      const [a, b] = [await newOrder(), await newOrder()];
      const copies = await orders.findBy([{ id: a.id }, { id: b.id }]);
      await updateVersioned(orders, b.id, 1, { status: "PAID" });
      await expect(orders.remove(copies)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await orders.countBy([{ id: a.id }, { id: b.id }])).toBe(2);
    });

    it("softRemove and recover check and bump the version", async () => {
      const { id } = await newOrder();
      const stale = await orders.findOneByOrFail({ id });
      const current = await orders.findOneByOrFail({ id });
      await orders.softRemove(current);
      expect(current.version).toBe(2);
      stale.status = "X";
      await expect(orders.softRemove(stale)).rejects.toBeInstanceOf(OptimisticLockError);

      const deleted = await orders.findOneOrFail({ where: { id }, withDeleted: true });
      const staleDeleted = await orders.findOneOrFail({ where: { id }, withDeleted: true });
      await orders.recover(deleted);
      expect(deleted.version).toBe(3);
      await expect(orders.recover(staleDeleted)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ deletedAt: null, version: 3 });
    });
  });

  describe("an existing @VersionColumn app, after installLocking(ds, { versionColumns: 'checked' })", () => {
    it("rejects the stale save that plain TypeORM accepted", async () => {
      const [app] = await openDataSources(db, ALL_ENTITIES);
      try {
        installLocking(app, { versionColumns: "checked" });
        const repo = app.getRepository(LegacyOrder);
        const { id } = await repo.save(repo.create({ address: "A", status: "NEW" }));
        expect(await operatorSavesAfterCustomer(repo, repo, id)).toBeInstanceOf(OptimisticLockError);
        expect(await repo.findOneByOrFail({ id })).toMatchObject({ address: "B", status: "NEW", version: 2 });
        await expect(repo.save({ id, status: "PARTIAL" })).rejects.toBeInstanceOf(MissingVersionError);
      } finally {
        await closeAll(app);
      }
    });

    it("without the option, @VersionColumn keeps TypeORM's behaviour on an installed DataSource", async () => {
      const repo = locked.getRepository(LegacyOrder);
      const { id } = await repo.save(repo.create({ address: "A", status: "NEW" }));
      await repo.save({ id, status: "PARTIAL" });
      expect(await repo.findOneByOrFail({ id })).toMatchObject({ status: "PARTIAL", version: 2 });
    });
  });

  describe("a version the client sends back", () => {
    it("assertVersion throws StaleVersionError before anything is written", async () => {
      const { id } = await newOrder();
      await updateVersioned(orders, id, 1, { status: "PAID" });
      const order = await orders.findOneByOrFail({ id });
      const error = (() => {
        try {
          assertVersion(order, 1);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(StaleVersionError);
      expect(error).toBeInstanceOf(ConcurrencyError);
      expect(error).toMatchObject({ entityName: "Order", id: { id }, expectedVersion: 1, actualVersion: 2 });
      expect(() => assertVersion(order, 2)).not.toThrow();
      expect(() => assertVersion(order, "2")).not.toThrow();
    });

    it("an entity carrying the client's stale version is refused with StaleVersionError, nothing written", async () => {
      const { id } = await newOrder();
      await updateVersioned(orders, id, 1, { status: "PAID" });
      const order = await orders.findOneByOrFail({ id });
      order.version = 1; // what the client's form sent back
      order.address = "FROM CLIENT";
      const error = await orders.save(order).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StaleVersionError);
      expect(error).toMatchObject({ expectedVersion: 1, actualVersion: 2 });
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ address: "A", status: "PAID", version: 2 });
    });

    it("the loaded version is known however the entity was loaded: listeners off, or as a relation", async () => {
      const { id } = await orders.save(
        orders.create({ address: "A", status: "NEW", lines: [{ product: "p", quantity: 1 }] }),
      );
      const quiet = await orders
        .createQueryBuilder("o")
        .where("o.id = :id", { id })
        .callListeners(false)
        .getOneOrFail();
      const withLines = await orders.findOneOrFail({ where: { id }, relations: { lines: true } });
      const line = withLines.lines![0];
      await updateVersioned(orders, id, 1, { status: "PAID" });
      await updateVersioned(locked.getRepository(OrderLine), line.id, 1, { quantity: 2 });
      quiet.address = "LATE";
      line.quantity = 3;
      // The row moved after these loads: OptimisticLockError, not the StaleVersionError of a
      // version the application put on the entity.
      expect(await orders.save(quiet).catch((e: unknown) => e)).toBeInstanceOf(OptimisticLockError);
      const lineError = await locked
        .getRepository(OrderLine)
        .save(line)
        .catch((e: unknown) => e);
      expect(lineError).toBeInstanceOf(OptimisticLockError);
      expect(lineError).not.toBeInstanceOf(StaleVersionError);
    });

    it("an entity carrying the client's current version saves", async () => {
      const { id } = await newOrder();
      const order = orders.create({ id, address: "FORM", status: "NEW", version: 1 });
      await orders.save(order);
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ address: "FORM", version: 2 });
    });

    it("updateVersioned issues one conditional UPDATE, returns the new version, and throws on conflict", async () => {
      const { id } = await newOrder();
      expect(await updateVersioned(orders, id, 1, { status: "PAID" })).toBe(2);
      const error = await updateVersioned(orders, id, 1, { status: "LOST" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StaleVersionError); // the caller's version, not a race: test/client-versions.test.ts
      expect(error).toMatchObject({ expectedVersion: 1, actualVersion: 2, entityName: "Order" });
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ status: "PAID", version: 2 });
      await expect(updateVersioned(orders, 999999, 1, { status: "X" })).rejects.toThrow(/does not exist/);
    });

    it("an update of an existing row without a version is refused, never written unchecked", async () => {
      const { id } = await newOrder();
      const error = await orders.save({ id, status: "PARTIAL" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MissingVersionError);
      expect(error).toMatchObject({ entityName: "Order", versionProperty: "version", operation: "update" });
      // A version given as null (a client's form, a DTO) holds none either.
      const nulled = await orders.save({ id, status: "PARTIAL", version: null as never }).catch((e: unknown) => e);
      expect(nulled).toBeInstanceOf(MissingVersionError);
      expect(nulled).toMatchObject({ entityName: "Order", versionProperty: "version", operation: "update" });
      const removal = await orders.remove(orders.create({ id })).catch((e: unknown) => e);
      expect(removal).toBeInstanceOf(MissingVersionError);
      expect(removal).toMatchObject({ entityName: "Order", operation: "remove" });
      const nulledRemoval = await orders.remove(orders.create({ id, version: null as never })).catch((e: unknown) => e);
      expect(nulledRemoval).toBeInstanceOf(MissingVersionError);
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ status: "NEW", version: 1 });
    });
  });

  describe("several DataSources in one process", () => {
    it("a DataSource never passed to installLocking() keeps plain TypeORM for @VersionColumn beside an installed one", async () => {
      const legacy = plain.getRepository(LegacyOrder);
      const { id } = await legacy.save(legacy.create({ address: "A", status: "NEW" }));
      expect(await operatorSavesAfterCustomer(legacy, legacy, id)).toBeUndefined(); // lost update
      expect(await legacy.findOneByOrFail({ id })).toMatchObject({ address: "A", status: "SHIPPED", version: 1 });
      // ...while its @Versioned() entity is checked all the same (test/never-silent.test.ts).
      const plainOrders = plain.getRepository(Order);
      const order = await newOrder();
      expect(await operatorSavesAfterCustomer(plainOrders, plainOrders, order.id)).toBeInstanceOf(OptimisticLockError);
    });

    it("installLocking() called again and again (say once per request) stays harmless: queries still run", async () => {
      // Each call must not wrap the driver once more: 50 000 wrappers deep, making a query runner
      // would overflow the stack.
      for (let i = 0; i < 50_000; i++) installLocking(locked);
      const { id } = await newOrder();
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ version: 1 });
    });

    it("installLocking twice is harmless", async () => {
      installLocking(locked);
      installLocking(locked);
      const { id } = await newOrder();
      const stale = await orders.findOneByOrFail({ id });
      await updateVersioned(orders, id, 1, { status: "PAID" });
      stale.status = "X";
      await expect(orders.save(stale)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ version: 2 });
    });
  });
});
