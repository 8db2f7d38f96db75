/**
 * Batched versioned writes (`installLocking(ds, { batchWrites: true })`), on every database, with
 * a second client on its own connection: a flush that updates many rows of one table with the
 * same changed columns writes them with one guarded UPDATE per chunk, every entity gets its new
 * version (and @UpdateDateColumn), a conflict names every stale row and keeps nothing, and the
 * shapes that cannot batch are written row by row as before.
 */
import {
  ChildEntity,
  Column,
  type DataSource,
  DeleteDateColumn,
  Entity,
  type EntitySubscriberInterface,
  EventSubscriber,
  ManyToOne,
  OneToMany,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  TableInheritance,
  UpdateDateColumn,
  type UpdateEvent,
  VersionColumn,
} from "typeorm";
import { installLocking, LockingConfigurationError, OptimisticLockError, Versioned, VersionedBy } from "../src";
import { closeAll, describeEachDatabase, openAlongside, openDataSources, StatementCounter } from "./support/databases";

@Entity({ name: "bw_item" })
class Item {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @Column() quantity!: number;
  @Column({ type: "simple-enum", enum: ["open", "done"], default: "open" }) state!: "open" | "done";
  @UpdateDateColumn() updatedAt!: Date;
  @DeleteDateColumn({ nullable: true }) deletedAt?: Date | null;
  @Versioned() version!: number;
}

/** Composite key, embedded columns. */
class Money {
  @Column() amount!: number;
  @Column() currency!: string;
}
@Entity({ name: "bw_slot" })
class Slot {
  @PrimaryColumn() day!: number;
  @PrimaryColumn() room!: string;
  @Column(() => Money) price!: Money;
  @Versioned() version!: number;
}

/** Single-table inheritance. */
@Entity({ name: "bw_shape" })
@TableInheritance({ column: { type: "varchar", name: "kind" } })
class Shape {
  @PrimaryGeneratedColumn() id!: number;
  @Column() label!: string;
  @Versioned() version!: number;
}
@ChildEntity("circle")
class Circle extends Shape {
  @Column({ nullable: true }) radius?: number;
}

/** versionColumns: "checked". */
@Entity({ name: "bw_legacy" })
class Legacy {
  @PrimaryGeneratedColumn() id!: number;
  @Column() note!: string;
  @VersionColumn() version!: number;
}

/** An aggregate: lines move the root's version. */
@Entity({ name: "bw_basket" })
class Basket {
  @PrimaryGeneratedColumn() id!: number;
  @Column() owner!: string;
  @Versioned() version!: number;
  @OneToMany(
    () => BasketLine,
    (line) => line.basket,
    { cascade: true },
  )
  lines!: BasketLine[];
}
@Entity({ name: "bw_basket_line" })
@VersionedBy(
  () => Basket,
  (line: BasketLine) => line.basket,
)
class BasketLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() quantity!: number;
  @Versioned() version!: number;
  @ManyToOne(
    () => Basket,
    (basket) => basket.lines,
  )
  basket!: Basket;
}

/** A relation change cannot batch: its foreign key value is resolved per row. */
@Entity({ name: "bw_label" })
class Label {
  @PrimaryGeneratedColumn() id!: number;
  @Column() text!: string;
  @Versioned() version!: number;
  @ManyToOne(() => Item, { nullable: true }) item?: Item | null;
}

const ENTITIES = [Item, Slot, Shape, Circle, Legacy, Basket, BasketLine, Label];

/**
 * Records the entities each flush's after-update listeners see, and runs `race` (another client's
 * writes) between TypeORM's pre-load and the UPDATE, so that the UPDATE itself meets them.
 */
@EventSubscriber()
class UpdateWatcher implements EntitySubscriberInterface {
  static seen: unknown[] = [];
  static race: (() => Promise<void>) | undefined;
  async beforeUpdate(): Promise<void> {
    const race = UpdateWatcher.race;
    UpdateWatcher.race = undefined;
    await race?.();
  }
  afterUpdate(event: UpdateEvent<unknown>): void {
    UpdateWatcher.seen.push(event.entity);
  }
}

describeEachDatabase((db) => {
  const counter = new StatementCounter();
  let alice: DataSource;
  let bob: DataSource;

  beforeAll(async () => {
    [alice] = await openDataSources(db, ENTITIES, {
      extra: { logger: counter, logging: true, subscribers: [UpdateWatcher] },
      beforeInitialize: (source) => installLocking(source, { batchWrites: true, versionColumns: "checked" }),
    });
    bob = await openAlongside(alice, { logger: undefined, logging: false, subscribers: [] });
    installLocking(bob, { versionColumns: "checked" });
  });
  afterAll(() => closeAll(alice, bob));

  const updates = () => counter.statements.filter((s) => /^\s*UPDATE/i.test(s));

  async function seedItems(count: number): Promise<Item[]> {
    const repo = alice.getRepository(Item);
    const saved = await repo.save(Array.from({ length: count }, (_, i) => repo.create({ name: `n${i}`, quantity: i })));
    return repo.findBy(saved.map((s) => ({ id: s.id })));
  }

  it("100 changed rows of one table: one UPDATE, each entity at its new version and stamp", async () => {
    const items = await seedItems(100);
    const before = items[0].updatedAt;
    for (const item of items) item.quantity += 1000;
    counter.reset();
    UpdateWatcher.seen = [];
    await alice.getRepository(Item).save(items);
    expect(updates()).toHaveLength(1);
    expect(UpdateWatcher.seen).toHaveLength(100);
    expect(items.every((i) => i.version === 2)).toBe(true);
    expect(items[0].updatedAt).toBeInstanceOf(Date);
    expect(items[0].updatedAt.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1000);
    const stored = await bob.getRepository(Item).findBy(items.map((i) => ({ id: i.id })));
    expect(stored.every((s) => s.version === 2 && s.quantity >= 1000)).toBe(true);
    // The versions written are the ones the next save expects.
    for (const item of items) item.name = "again";
    await alice.getRepository(Item).save(items);
    expect(items.every((i) => i.version === 3)).toBe(true);
  });

  /** Bob changes rows 3 and 50 (50 twice: one more than Alice's write would make it) and deletes row 97. */
  async function bobChanges(items: Item[]): Promise<void> {
    const bobs = bob.getRepository(Item);
    const b3 = await bobs.findOneByOrFail({ id: items[3].id });
    b3.name = "bob";
    await bobs.save(b3);
    const b50 = await bobs.findOneByOrFail({ id: items[50].id });
    b50.quantity = -1;
    await bobs.save(b50);
    b50.quantity = -2;
    await bobs.save(b50);
    await bobs.delete({ id: items[97].id });
  }

  async function expectThreeNamed(items: Item[], error: unknown): Promise<void> {
    expect(error).toBeInstanceOf(OptimisticLockError);
    const conflicts = [...(error as OptimisticLockError).conflicts].sort(
      (a, b) => (a.id as { id: number }).id - (b.id as { id: number }).id,
    );
    expect(conflicts.map((c) => c.id)).toEqual([3, 50, 97].map((i) => ({ id: items[i].id })));
    expect(conflicts.map((c) => (c.deleted ? "deleted" : c.actualVersion))).toEqual([2, 3, "deleted"]);
    expect(conflicts.every((c) => c.entityName === "Item" && c.expectedVersion === 1)).toBe(true);
    expect((error as Error).message).toMatch(/3 rows/);
    const stored = await bob.getRepository(Item).findBy(items.map((i) => ({ id: i.id })));
    expect(stored).toHaveLength(99);
    expect(stored.filter((s) => s.quantity === 7777)).toHaveLength(0);
  }

  it("conflicts seen before writing: every stale row of 100 named, nothing written", async () => {
    const items = await seedItems(100);
    await bobChanges(items);
    for (const item of items) item.quantity = 7777;
    counter.reset();
    const error = await alice
      .getRepository(Item)
      .save(items)
      .catch((e: unknown) => e);
    await expectThreeNamed(items, error);
    expect(updates()).toHaveLength(0);
  });

  // SQLite: a write after another connection's commit fails the reader's snapshot first
  // (SQLITE_BUSY_SNAPSHOT), so the UPDATE never meets the race; the case above covers it.
  if (db.family !== "sqlite") {
    it("conflicts met by the batched UPDATE: every stale row of 100 named by one SELECT, nothing kept", async () => {
      const items = await seedItems(100);
      for (const item of items) item.quantity = 7777;
      UpdateWatcher.race = () => bobChanges(items);
      counter.reset();
      const error = await alice
        .getRepository(Item)
        .save(items)
        .catch((e: unknown) => e);
      UpdateWatcher.race = undefined;
      await expectThreeNamed(items, error);
      expect((error as Error).message).toMatch(/3 rows of 100 rows of one batched UPDATE/);
      expect(updates()).toHaveLength(1);
      const afterUpdate = counter.statements.slice(counter.statements.findIndex((s) => /^\s*UPDATE/i.test(s)) + 1);
      expect(afterUpdate.filter((s) => /^\s*SELECT/i.test(s))).toHaveLength(1);
    });
  }

  it("composite keys, embedded columns, single-table inheritance and checked @VersionColumn batch too", async () => {
    const slots = alice.getRepository(Slot);
    await slots.save(
      Array.from({ length: 5 }, (_, i) =>
        slots.create({ day: i, room: `r${i}`, price: { amount: i, currency: "EUR" } }),
      ),
    );
    const loaded = await slots.find();
    for (const s of loaded) s.price.amount += 100;
    const circles = alice.getRepository(Circle);
    await circles.save(Array.from({ length: 5 }, (_, i) => circles.create({ label: `c${i}`, radius: i })));
    const loadedCircles = await circles.find();
    for (const c of loadedCircles) c.label = "big";
    const legacy = alice.getRepository(Legacy);
    await legacy.save(Array.from({ length: 5 }, (_, i) => legacy.create({ note: `l${i}` })));
    const loadedLegacy = await legacy.find();
    for (const l of loadedLegacy) l.note = "edited";
    counter.reset();
    await alice.manager.save([...loaded, ...loadedCircles, ...loadedLegacy]);
    expect(updates()).toHaveLength(3);
    expect([...loaded, ...loadedCircles, ...loadedLegacy].every((e) => e.version === 2)).toBe(true);
    expect((await bob.getRepository(Slot).find()).map((s) => s.price.amount).sort()).toEqual([100, 101, 102, 103, 104]);
    expect((await bob.getRepository(Circle).find()).every((c) => c.label === "big" && c.version === 2)).toBe(true);
  });

  it("an aggregate with 100 changed lines: one UPDATE for the lines, the root moves once", async () => {
    const baskets = alice.getRepository(Basket);
    const { id } = await baskets.save(
      baskets.create({ owner: "a", lines: Array.from({ length: 100 }, (_, i) => ({ quantity: i }) as BasketLine) }),
    );
    const basket = await baskets.findOneOrFail({ where: { id }, relations: { lines: true } });
    for (const line of basket.lines) line.quantity += 1;
    counter.reset();
    await baskets.save(basket);
    // The root's guarded bump and the lines' one statement.
    expect(updates()).toHaveLength(2);
    expect(basket.version).toBe(2);
    expect(basket.lines.every((l) => l.version === 2)).toBe(true);
  });

  it("different column sets make one statement each; a lone row stays on the per-row path", async () => {
    const items = await seedItems(5);
    items[0].name = "x";
    items[1].name = "y";
    items[2].quantity = 1;
    items[3].quantity = 2;
    items[4].name = "z";
    items[4].quantity = 3;
    counter.reset();
    await alice.getRepository(Item).save(items);
    expect(updates()).toHaveLength(3);
    expect(items.every((i) => i.version === 2)).toBe(true);
  });

  it("an enum column batches (PostgreSQL types it from the table's row)", async () => {
    const items = await seedItems(5);
    for (const item of items) item.state = "done";
    counter.reset();
    await alice.getRepository(Item).save(items);
    expect(updates()).toHaveLength(1);
    const stored = await bob.getRepository(Item).findBy(items.map((i) => ({ id: i.id })));
    expect(stored.map((s) => [s.state, s.version])).toEqual(items.map(() => ["done", 2]));
  });

  it("soft remove and recover of 10 rows: one UPDATE each, stamps and versions on every entity", async () => {
    const repo = alice.getRepository(Item);
    const items = await seedItems(10);
    counter.reset();
    await repo.softRemove(items);
    expect(updates()).toHaveLength(1);
    expect(items.every((i) => i.deletedAt instanceof Date && i.version === 2)).toBe(true);
    expect(await bob.getRepository(Item).countBy(items.map((i) => ({ id: i.id })))).toBe(0);
    counter.reset();
    await repo.recover(items);
    expect(updates()).toHaveLength(1);
    expect(items.every((i) => i.deletedAt === null && i.version === 3)).toBe(true);
    expect(await bob.getRepository(Item).countBy(items.map((i) => ({ id: i.id })))).toBe(10);
    // A stale one fails the whole soft remove, naming it.
    const other = await bob.getRepository(Item).findOneByOrFail({ id: items[4].id });
    other.name = "bob";
    await bob.getRepository(Item).save(other);
    const error = await repo.softRemove(items).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OptimisticLockError);
    expect((error as OptimisticLockError).conflicts).toEqual([
      { entityName: "Item", id: { id: items[4].id }, expectedVersion: 3, actualVersion: 4 },
    ]);
    expect(await bob.getRepository(Item).countBy(items.map((i) => ({ id: i.id })))).toBe(10);
  });

  it("soft remove and recover of rows someone deleted meanwhile: one error naming each, nothing written", async () => {
    const repo = alice.getRepository(Item);
    const items = await seedItems(4);
    await bob.getRepository(Item).delete([items[1].id, items[3].id]);
    const gone = [items[1], items[3]].map((i) => ({
      entityName: "Item",
      id: { id: i.id },
      expectedVersion: 1,
      deleted: true,
    }));
    const error = await repo.softRemove(items).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OptimisticLockError);
    expect((error as OptimisticLockError).conflicts).toEqual(gone);
    const left = await bob
      .getRepository(Item)
      .find({ where: [{ id: items[0].id }, { id: items[2].id }], withDeleted: true });
    expect(left.map((i) => [i.deletedAt, i.version])).toEqual([
      [null, 1],
      [null, 1],
    ]);
    // recover() likewise: the two rows still there are soft-removed first.
    const there = await repo.softRemove([items[0], items[2]]);
    const again = await repo.recover([there[0], items[1], there[1], items[3]]).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(OptimisticLockError);
    expect((again as OptimisticLockError).conflicts).toEqual(gone);
    expect(await bob.getRepository(Item).countBy([{ id: items[0].id }, { id: items[2].id }])).toBe(0);
  });

  it("remove() of 10 rows stays one guarded DELETE", async () => {
    const items = await seedItems(10);
    counter.reset();
    await alice.getRepository(Item).remove(items);
    expect(counter.statements.filter((s) => /^\s*DELETE/i.test(s))).toHaveLength(1);
  });

  it("falls back to one UPDATE per row for a shape that cannot batch (a relation change)", async () => {
    const [item] = await seedItems(1);
    const labels = alice.getRepository(Label);
    await labels.save([1, 2, 3].map((i) => labels.create({ text: `t${i}` })));
    const loaded = await labels.find();
    for (const label of loaded) label.item = item;
    counter.reset();
    await labels.save(loaded);
    expect(updates()).toHaveLength(3);
    expect(loaded.every((l) => l.version === 2)).toBe(true);
    // A stale one among them still conflicts (per-row check).
    await bob.getRepository(Label).update({ id: loaded[1].id }, { text: "bob" });
    for (const label of loaded) label.item = null;
    await expect(labels.save(loaded)).rejects.toBeInstanceOf(OptimisticLockError);
  });

  it("splits a group at maxRowsPerStatement, one statement per chunk", async () => {
    installLocking(alice, { batchWrites: { maxRowsPerStatement: 4 }, versionColumns: "checked" });
    try {
      const items = await seedItems(10);
      for (const item of items) item.quantity = -5;
      counter.reset();
      await alice.getRepository(Item).save(items);
      expect(updates()).toHaveLength(3);
      expect(items.every((i) => i.version === 2)).toBe(true);
    } finally {
      installLocking(alice, { batchWrites: true, versionColumns: "checked" });
    }
  });

  it("refuses a malformed batchWrites option", () => {
    expect(() => installLocking(bob, { batchWrites: { maxRowsPerStatement: 1 } })).toThrow(LockingConfigurationError);
    expect(() => installLocking(bob, { batchWrites: "yes" as never })).toThrow(/batchWrites must be/);
    installLocking(bob, { versionColumns: "checked" });
  });
});
