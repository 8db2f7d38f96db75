/**
 * A row someone deleted stays deleted. TypeORM turns the save of an entity whose row is gone into
 * an INSERT; the library refuses it when the entity holds a version (it names a row that existed):
 * OptimisticLockError when this process loaded it (a race: retryable), RowNotFoundError when the
 * application gave it the version (a client's stale copy: not retryable). On every write path
 * that can reach a deleted row: a direct save, a child saved by its parent's cascade, a save with
 * nothing changed, and remove/softRemove/recover of the stale copy (TypeORM alone skips the soft
 * remove or recover of a row its pre-load did not find, without an error). An entity that holds no
 * version is new and is inserted as TypeORM would.
 */
import type { DataSource } from "typeorm";
import { installLocking, MissingVersionError, OptimisticLockError, RowNotFoundError } from "../src";
import { Counter } from "./fixtures/counter";
import { Order, OrderLine } from "./fixtures/entities";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";

describeEachDatabase((db) => {
  let mine: DataSource;
  let theirs: DataSource;

  beforeAll(async () => {
    [mine, theirs] = await openDataSources(db, [Order, OrderLine, Counter], { count: 2 });
    installLocking(mine);
    installLocking(theirs);
  });
  afterAll(() => closeAll(mine, theirs));

  const caught = (work: Promise<unknown>) =>
    work.then(
      () => undefined,
      (e: unknown) => e,
    );

  async function newOrder(): Promise<number> {
    const order = await mine.getRepository(Order).save(
      mine.getRepository(Order).create({
        address: "A",
        status: "NEW",
        lines: [{ product: "pen", quantity: 1 } as OrderLine, { product: "ink", quantity: 2 } as OrderLine],
      }),
    );
    return order.id;
  }
  const loadOrder = (id: number) =>
    mine
      .getRepository(Order)
      .findOneOrFail({ where: { id }, relations: { lines: true }, order: { lines: { id: "ASC" } } });
  const rowsOf = async (id: number) => ({
    order: await theirs.getRepository(Order).findOne({ where: { id }, withDeleted: true }),
    lines: await theirs.getRepository(OrderLine).find({ where: { order: { id } }, order: { id: "ASC" } }),
  });

  it("save() of a loaded copy whose row was deleted: OptimisticLockError (retryable), nothing re-inserted", async () => {
    const id = await newOrder();
    const stale = await loadOrder(id);
    await theirs.getRepository(Order).delete({ id });
    stale.status = "PAID";
    const error = await caught(mine.getRepository(Order).save(stale));
    expect(error).toBeInstanceOf(OptimisticLockError);
    expect(error).toMatchObject({ entityName: "Order", id: { id }, expectedVersion: 1, retryable: true });
    expect(error).toMatchObject({ operation: "update" });
    expect(error).not.toBeInstanceOf(RowNotFoundError);
    // Its conflict entry says the row is gone, batched (which names the deleted lines too) or not.
    expect((error as OptimisticLockError).conflicts[0]).toEqual({
      entityName: "Order",
      id: { id },
      expectedVersion: 1,
      deleted: true,
    });
    expect((await rowsOf(id)).order).toBeNull();
  });

  it("save() of an unchanged loaded copy whose row was deleted is refused too (TypeORM would insert it whole)", async () => {
    const id = await newOrder();
    const stale = await loadOrder(id);
    await theirs.getRepository(Order).delete({ id });
    expect(await caught(mine.getRepository(Order).save(stale))).toBeInstanceOf(OptimisticLockError);
    expect((await rowsOf(id)).order).toBeNull();
  });

  it("a deleted child saved by its parent's cascade: the whole flush is refused, the parent's change too", async () => {
    const id = await newOrder();
    const stale = await loadOrder(id);
    const [pen, ink] = stale.lines!;
    await theirs.getRepository(OrderLine).delete({ id: ink.id });
    stale.status = "PAID";
    pen.quantity = 10;
    ink.quantity = 20;
    const error = await caught(mine.getRepository(Order).save(stale));
    expect(error).toBeInstanceOf(OptimisticLockError);
    expect(error).toMatchObject({ entityName: "OrderLine", id: { id: ink.id }, expectedVersion: 1 });
    const rows = await rowsOf(id);
    expect(rows.order).toMatchObject({ status: "NEW", version: 1 });
    expect(rows.lines.map((l) => [l.product, l.quantity, l.version])).toEqual([["pen", 1, 1]]);
  });

  it("the deleted child unchanged in the cascade is refused as well: the parent's save would re-create it", async () => {
    const id = await newOrder();
    const stale = await loadOrder(id);
    await theirs.getRepository(OrderLine).delete({ id: stale.lines![1].id });
    stale.status = "PAID";
    expect(await caught(mine.getRepository(Order).save(stale))).toBeInstanceOf(OptimisticLockError);
    const rows = await rowsOf(id);
    expect(rows.order).toMatchObject({ status: "NEW", version: 1 });
    expect(rows.lines).toHaveLength(1);
  });

  it("a copy given a version by the application (a client's) for a deleted row: RowNotFoundError, not retryable", async () => {
    const id = await newOrder();
    await theirs.getRepository(Order).delete({ id });
    const fromClient = mine.getRepository(Order).create({ id, address: "B", status: "FROM CLIENT", version: 1 });
    const error = await caught(mine.getRepository(Order).save(fromClient));
    expect(error).toBeInstanceOf(RowNotFoundError);
    expect(error).toMatchObject({ entityName: "Order", id: { id }, expectedVersion: 1, retryable: false });
    expect((await rowsOf(id)).order).toBeNull();
  });

  it("a loaded copy whose version the application changed, row deleted: the client's case, RowNotFoundError", async () => {
    const id = await newOrder();
    const copy = await loadOrder(id);
    await theirs.getRepository(Order).delete({ id });
    copy.version = 3; // e.g. set from an If-Match header
    expect(await caught(mine.getRepository(Order).save(copy))).toBeInstanceOf(RowNotFoundError);
    expect((await rowsOf(id)).order).toBeNull();
  });

  it("an entity with an id the application chose and no version is new: inserted, starting at version 1", async () => {
    const counters = mine.getRepository(Counter);
    const created = await counters.save(counters.create({ id: 7001, value: 5 }));
    expect(created.version).toBe(1);
    expect(await theirs.getRepository(Counter).findOneByOrFail({ id: 7001 })).toMatchObject({ value: 5, version: 1 });
  });

  it("the same id with a version, for a row that never existed: RowNotFoundError, nothing inserted", async () => {
    const counters = mine.getRepository(Counter);
    const error = await caught(counters.save(counters.create({ id: 7002, value: 5, version: 1 })));
    expect(error).toBeInstanceOf(RowNotFoundError);
    expect(await theirs.getRepository(Counter).findOneBy({ id: 7002 })).toBeNull();
  });

  it("a row deleted and re-created at the same id starts again at version 1: a copy of the old row at 1 then updates it (a known limit)", async () => {
    const counters = mine.getRepository(Counter);
    await counters.save(counters.create({ id: 7003, value: 1 }));
    const stale = await counters.findOneByOrFail({ id: 7003 });
    await theirs.getRepository(Counter).delete({ id: 7003 });
    await theirs.getRepository(Counter).save(theirs.getRepository(Counter).create({ id: 7003, value: 2 }));
    // The row exists again, at version 1 like the stale copy: an UPDATE guarded by version 1
    // applies. It is the same row id at the same version: no check can tell them apart.
    stale.value = 3;
    await counters.save(stale);
    expect(await counters.findOneByOrFail({ id: 7003 })).toMatchObject({ value: 3, version: 2 });
  });

  it("remove() of a client's copy of a deleted row: RowNotFoundError (not retryable), as its save()", async () => {
    const id = await newOrder();
    await theirs.getRepository(Order).delete({ id });
    const fromClient = mine.getRepository(Order).create({ id, address: "A", status: "NEW", version: 1 });
    const error = await caught(mine.getRepository(Order).remove(fromClient));
    expect(error).toBeInstanceOf(RowNotFoundError);
    expect(error).toMatchObject({ entityName: "Order", id: { id }, expectedVersion: 1, operation: "remove" });
    expect(error).toMatchObject({ retryable: false });
  });

  it("remove() of a loaded copy whose row was deleted: OptimisticLockError, nothing else deleted", async () => {
    const id = await newOrder();
    const stale = await loadOrder(id);
    await theirs.getRepository(OrderLine).delete({ id: stale.lines![0].id });
    const error = await caught(mine.getRepository(OrderLine).remove(stale.lines![0]));
    expect(error).toBeInstanceOf(OptimisticLockError);
    expect((error as OptimisticLockError).conflicts).toEqual([
      { entityName: "OrderLine", id: { id: stale.lines![0].id }, expectedVersion: 1, deleted: true },
    ]);
    expect((await rowsOf(id)).lines.map((l) => l.product)).toEqual(["ink"]);
  });

  it("softRemove() of a loaded copy whose row was deleted: OptimisticLockError (retryable), as a stale save", async () => {
    const id = await newOrder();
    const stale = await mine.getRepository(Order).findOneByOrFail({ id });
    await theirs.getRepository(Order).delete({ id });
    // TypeORM alone skips an entity whose row its pre-load did not find, and returns as if done.
    const error = await caught(mine.getRepository(Order).softRemove(stale));
    expect(error).toBeInstanceOf(OptimisticLockError);
    expect(error).toMatchObject({ entityName: "Order", id: { id }, expectedVersion: 1, operation: "soft-remove" });
    expect(error).toMatchObject({ retryable: true });
    expect(error).not.toBeInstanceOf(RowNotFoundError);
    expect((error as OptimisticLockError).conflicts).toEqual([
      { entityName: "Order", id: { id }, expectedVersion: 1, deleted: true },
    ]);
    expect(stale.deletedAt ?? null).toBeNull();
    expect((await rowsOf(id)).order).toBeNull();
    // And the save the same copy would make next is refused as well: nothing re-created.
    expect(await caught(mine.getRepository(Order).save(stale))).toBeInstanceOf(OptimisticLockError);
    expect((await rowsOf(id)).order).toBeNull();
  });

  it("recover() of a soft-removed copy whose row was then deleted: OptimisticLockError, nothing re-created", async () => {
    const id = await newOrder();
    const orders = mine.getRepository(Order);
    const copy = await orders.softRemove(await orders.findOneByOrFail({ id }));
    expect(copy.version).toBe(2);
    await theirs.getRepository(Order).delete({ id });
    const error = await caught(orders.recover(copy));
    expect(error).toBeInstanceOf(OptimisticLockError);
    expect(error).toMatchObject({ entityName: "Order", id: { id }, expectedVersion: 2, operation: "recover" });
    expect(error).not.toBeInstanceOf(RowNotFoundError);
    expect(copy.deletedAt).toBeInstanceOf(Date);
    expect((await rowsOf(id)).order).toBeNull();
  });

  it("softRemove() and recover() of a client's copy of a deleted row: RowNotFoundError, not retryable", async () => {
    const id = await newOrder();
    await theirs.getRepository(Order).delete({ id });
    const orders = mine.getRepository(Order);
    for (const change of [(o: Order) => orders.softRemove(o), (o: Order) => orders.recover(o)]) {
      const error = await caught(change(orders.create({ id, address: "A", status: "NEW", version: 1 })));
      expect(error).toBeInstanceOf(RowNotFoundError);
      expect(error).toMatchObject({ entityName: "Order", id: { id }, expectedVersion: 1, retryable: false });
      expect((await rowsOf(id)).order).toBeNull();
    }
  });

  it("softRemove() of a deleted row by a copy that holds no version: MissingVersionError, as for a row that is there", async () => {
    const id = await newOrder();
    const orders = mine.getRepository(Order);
    expect(await caught(orders.softRemove(orders.create({ id, address: "A", status: "NEW" })))).toBeInstanceOf(
      MissingVersionError,
    );
    await theirs.getRepository(Order).delete({ id });
    expect(await caught(orders.softRemove(orders.create({ id, address: "A", status: "NEW" })))).toBeInstanceOf(
      MissingVersionError,
    );
    expect((await rowsOf(id)).order).toBeNull();
  });

  it("a soft remove refused for a deleted row writes nothing else: the other rows of the same call stay", async () => {
    const [gone, kept] = [await newOrder(), await newOrder()];
    const orders = mine.getRepository(Order);
    const copies = await orders.find({ where: [{ id: gone }, { id: kept }], order: { id: "ASC" } });
    await theirs.getRepository(Order).delete({ id: gone });
    expect(await caught(orders.softRemove(copies))).toBeInstanceOf(OptimisticLockError);
    const still = (await rowsOf(kept)).order!;
    expect(still).toMatchObject({ version: 1, deletedAt: null });
  });

  it("save() of a copy loaded before someone soft-removed the row: OptimisticLockError, the row stays soft-removed", async () => {
    const id = await newOrder();
    const stale = await loadOrder(id);
    await theirs.getRepository(Order).softRemove(await theirs.getRepository(Order).findOneByOrFail({ id }));
    const removed = (await rowsOf(id)).order!;
    expect(removed.deletedAt).toBeInstanceOf(Date);
    stale.status = "PAID";
    expect(await caught(mine.getRepository(Order).save(stale))).toBeInstanceOf(OptimisticLockError);
    expect((await rowsOf(id)).order).toMatchObject({ status: "NEW", version: removed.version });
    expect((await rowsOf(id)).order!.deletedAt).toBeInstanceOf(Date);
  });
});
