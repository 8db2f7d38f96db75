/**
 * Batched versioned writes (`installLocking(ds, { batchWrites: true })`), on every database, with
 * a second client on its own connection: a flush that updates many rows of one table with the
 * same changed columns writes them with one guarded UPDATE per chunk, every entity gets its new
 * version (and @UpdateDateColumn), a conflict names every stale row and keeps nothing, and the
 * shapes that cannot batch are written row by row as before.
 */
import diagnosticsChannel from "node:diagnostics_channel";
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
  Tree,
  TreeChildren,
  TreeParent,
  UpdateDateColumn,
  type UpdateEvent,
  VersionColumn,
} from "typeorm";
import {
  CONFLICT_CHANNEL,
  type ConflictMessage,
  installLocking,
  isRetryableConflict,
  LockingConfigurationError,
  type LockingOptions,
  LockMode,
  mariadbDialect,
  mysqlDialect,
  OptimisticLockError,
  postgresDialect,
  SerializationError,
  sqliteDialect,
  updateVersioned,
  Versioned,
  VersionedBy,
  withLockMode,
} from "../src";
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

/** A table that stays small: on a small table an UPDATE joined to its rows' list may scan it. */
@Entity({ name: "bw_few" })
class Few {
  @PrimaryGeneratedColumn() id!: number;
  @Column() n!: number;
  @Versioned() version!: number;
}

/** Not versioned: a remove with one of these among its rows stays on TypeORM's path. */
@Entity({ name: "bw_plain" })
class Plain {
  @PrimaryGeneratedColumn() id!: number;
  @Column() n!: number;
}

/** A nested-set tree: TypeORM renumbers the tree when it removes a node, so its removes do not batch. */
@Entity({ name: "bw_node" })
@Tree("nested-set")
class TreeNode {
  @PrimaryGeneratedColumn() id!: number;
  @Column() label!: string;
  @Versioned() version!: number;
  @TreeChildren() children!: TreeNode[];
  @TreeParent() parent?: TreeNode | null;
}

/** A JSON column and a simple-json one (text that holds JSON). */
@Entity({ name: "bw_doc" })
class Doc {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: "json" }) body!: { state: string };
  @Column("simple-json") tags!: string[];
  @Versioned() version!: number;
}

/** How alice's DataSource is installed in this file. */
const ALICE: LockingOptions = { batchWrites: true, versionColumns: "checked" };

const ENTITIES = [Item, Slot, Shape, Circle, Legacy, Basket, BasketLine, Label, Few, Plain, TreeNode, Doc];

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
  async beforeRemove(): Promise<void> {
    await this.beforeUpdate();
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
      beforeInitialize: (source) => installLocking(source, ALICE),
    });
    bob = await openAlongside(alice, { logger: undefined, logging: false, subscribers: [] });
    installLocking(bob, { versionColumns: "checked" });
  });
  afterAll(() => closeAll(alice, bob));

  /** Runs `work` with alice installed with `options` over this file's own, then puts this file's back. */
  async function installedOnAlice(options: LockingOptions, work: () => Promise<void>): Promise<void> {
    installLocking(alice, { ...ALICE, ...options });
    try {
      await work();
    } finally {
      installLocking(alice, ALICE);
    }
  }

  const updates = () => counter.statements.filter((s) => /^\s*UPDATE/i.test(s));

  async function seedItems(count: number): Promise<Item[]> {
    const repo = alice.getRepository(Item);
    const saved = await repo.save(Array.from({ length: count }, (_, i) => repo.create({ name: `n${i}`, quantity: i })));
    return repo.findBy(saved.map((s) => ({ id: s.id })));
  }

  // SQLite locks the whole database for a writer: nothing row-wise to show there.
  (db.family === "sqlite" ? it.skip : it)(
    "a batched UPDATE reads, and locks, only the rows it writes: a row another transaction holds does not block it",
    async () => {
      const few = alice.getRepository(Few);
      const rows = await few.save([1, 2, 3, 4].map((n) => Object.assign(new Few(), { n })));
      const mine = await few.findBy([{ id: rows[0].id }, { id: rows[1].id }]);
      for (const row of mine) row.n += 10;
      let saved = false;
      await bob.transaction(async (manager) => {
        await manager.findOneOrFail(Few, { where: { id: rows[3].id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
        counter.reset();
        const saving = few.save(mine).then(() => {
          saved = true;
        });
        // A scan of the table would wait for bob's lock (until bob commits, below): give it ample time.
        await Promise.race([saving, new Promise((resolve) => setTimeout(resolve, 5000))]);
      });
      expect(saved).toBe(true);
      expect(updates()).toHaveLength(1);
      expect(mine.map((row) => row.version)).toEqual([2, 2]);
    },
  );

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

  it("one stale row seen before writing fails as it does without batching: the same error, nothing written", async () => {
    // bob's DataSource writes row by row.
    const plainSave = (items: Item[]) =>
      bob
        .getRepository(Item)
        .save(items)
        .catch((e: unknown) => e);
    for (const gone of [false, true]) {
      const items = await seedItems(3);
      const copies = await bob.getRepository(Item).findBy(items.map((i) => ({ id: i.id })));
      if (gone) await bob.getRepository(Item).delete({ id: items[1].id });
      else await bob.getRepository(Item).update({ id: items[1].id }, { version: 5 });
      for (const item of [...items, ...copies]) item.quantity = 4242;
      const batched = await alice
        .getRepository(Item)
        .save(items)
        .catch((e: unknown) => e);
      const unbatched = await plainSave(copies);
      expect(batched).toBeInstanceOf(OptimisticLockError);
      expect(unbatched).toBeInstanceOf(OptimisticLockError);
      expect((batched as Error).message).toBe((unbatched as Error).message);
      expect((batched as OptimisticLockError).conflicts).toEqual([
        gone
          ? { entityName: "Item", id: { id: items[1].id }, expectedVersion: 1, deleted: true }
          : { entityName: "Item", id: { id: items[1].id }, expectedVersion: 1, actualVersion: 5 },
      ]);
      const stored = await bob.getRepository(Item).findBy(items.map((i) => ({ id: i.id })));
      expect(stored.filter((i) => i.quantity === 4242)).toEqual([]);
    }
  });

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
    // The two pairs as batched statements, the lone row as TypeORM's own UPDATE.
    expect(updates().filter((sql) => sql.includes("_tl_v"))).toHaveLength(2);
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

  if (db.family !== "sqlite") {
    it("composite keys: a batched UPDATE meeting two rows changed or deleted meanwhile names exactly those", async () => {
      const slots = alice.getRepository(Slot);
      await slots.save(
        [1, 2, 3, 4].map((i) => slots.create({ day: 3000 + i, room: "upd", price: { amount: i, currency: "EUR" } })),
      );
      const loaded = await slots.findBy({ room: "upd" });
      for (const s of loaded) s.price.amount += 100;
      UpdateWatcher.race = async () => {
        await bob.getRepository(Slot).update({ day: 3002, room: "upd" }, { version: 5 });
        await bob.getRepository(Slot).delete({ day: 3004, room: "upd" });
      };
      try {
        const error = await slots.save(loaded).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(OptimisticLockError);
        const conflicts = [...(error as OptimisticLockError).conflicts].sort(
          (a, b) => (a.id as { day: number }).day - (b.id as { day: number }).day,
        );
        expect(conflicts).toEqual([
          { entityName: "Slot", id: { day: 3002, room: "upd" }, expectedVersion: 1, actualVersion: 5 },
          { entityName: "Slot", id: { day: 3004, room: "upd" }, expectedVersion: 1, deleted: true },
        ]);
        const stored = await bob.getRepository(Slot).findBy({ room: "upd" });
        expect(stored.map((s) => s.price.amount).sort()).toEqual([1, 2, 3]);
      } finally {
        UpdateWatcher.race = undefined;
      }
    });

    it("a batched UPDATE's conflict event says the first stale row is deleted, or gives the version found", async () => {
      const seen: ConflictMessage[] = [];
      const listener = (message: unknown) => seen.push(message as ConflictMessage);
      diagnosticsChannel.subscribe(CONFLICT_CHANNEL, listener);
      try {
        const attempt = async (race: (items: Item[]) => Promise<void>) => {
          const items = await seedItems(3);
          for (const item of items) item.quantity = 5555;
          UpdateWatcher.race = () => race(items);
          const error = await alice
            .getRepository(Item)
            .save(items)
            .catch((e: unknown) => e);
          UpdateWatcher.race = undefined;
          expect(error).toBeInstanceOf(OptimisticLockError);
          return seen.filter((m) => m.error === error);
        };
        const deletedFirst = await attempt(async (items) => {
          await bob.getRepository(Item).delete({ id: items[0].id });
          await bob.getRepository(Item).update({ id: items[1].id }, { version: 4 });
        });
        expect(deletedFirst).toMatchObject([
          { kind: "write", entity: "Item", versionHeld: 1, versionFound: "deleted" },
        ]);
        const changedFirst = await attempt(async (items) => {
          await bob.getRepository(Item).update({ id: items[0].id }, { version: 4 });
          await bob.getRepository(Item).delete({ id: items[1].id });
        });
        expect(changedFirst).toMatchObject([{ kind: "write", entity: "Item", versionHeld: 1, versionFound: 4 }]);
      } finally {
        UpdateWatcher.race = undefined;
        diagnosticsChannel.unsubscribe(CONFLICT_CHANNEL, listener);
      }
    });
  }

  // The dialect each server is detected as, and on the MySQL family MySQL's own statements too
  // (forced: the test server is MariaDB). A stale row is named with the version it has now.
  const dialects: [string, LockingOptions][] = [
    ["as detected", {}],
    ...(db.family === "mysql" ? [["MySQL's, forced", { dialect: mysqlDialect }] as [string, LockingOptions]] : []),
  ];
  describe.each(dialects)("a failed batched statement's stale rows (%s)", (_, options) => {
    it.each([
      "save",
      "remove",
      "softRemove",
      "recover",
      "updateVersioned",
    ] as const)("a transaction read the rows, another changed one, then %s: the stale row at its version now, not the snapshot's", async (write) => {
      await installedOnAlice(options, async () => {
        const seeded = await seedItems(3);
        const ids = seeded.map((i) => ({ id: i.id }));
        const everyRow = { where: ids, withDeleted: true, order: { id: "ASC" } } as const;
        if (write === "recover")
          await bob.getRepository(Item).update(
            ids.map((id) => id.id),
            { deletedAt: new Date() },
          );
        const before = await bob.getRepository(Item).find(everyRow);
        const error = await alice
          .transaction(async (manager) => {
            const repository = manager.getRepository(Item);
            // Under REPEATABLE READ (MySQL, MariaDB) this read fixes the transaction's snapshot.
            const held = await repository.find({ where: ids, withDeleted: true });
            await bob.getRepository(Item).increment({ id: ids[1].id }, "version", 1);
            for (const item of held) item.name = "alice";
            if (write === "save") await repository.save(held);
            if (write === "remove") await repository.remove(held);
            if (write === "softRemove") await repository.softRemove(held);
            if (write === "recover") await repository.recover(held);
            if (write === "updateVersioned") {
              await updateVersioned(
                repository,
                held.map((item) => ({ id: item.id, version: item.version, patch: { name: "alice" } })),
              );
            }
          })
          .catch((e: unknown) => e);
        if (db.family === "sqlite") {
          // SQLite's snapshot cannot become a writer once another connection wrote: the write is refused whole.
          expect(error).toBeInstanceOf(SerializationError);
        } else {
          expect(error).toBeInstanceOf(OptimisticLockError);
          expect((error as OptimisticLockError).conflicts).toEqual([
            {
              entityName: "Item",
              id: ids[1],
              expectedVersion: before[1].version,
              actualVersion: before[1].version + 1,
            },
          ]);
        }
        // Nothing of it written: the names, the versions (but the other's) and the deletion marks as they were.
        const stored = await bob.getRepository(Item).find(everyRow);
        expect(stored.map((s) => [s.name, s.version, s.deletedAt != null])).toEqual(
          before.map((b, n) => [b.name, b.version + (n === 1 ? 1 : 0), write === "recover"]),
        );
      });
    });

    it.each([
      "save",
      "updateVersioned",
    ] as const)("an UPDATE of JSON columns by %s: only the stale row is named (a JSON value compared as the column stores it)", async (write) => {
      // MySQL compares a JSON column as JSON; MariaDB's JSON is text, and so is simple-json everywhere.
      const forcedMysql = options.dialect === mysqlDialect;
      await installedOnAlice(options, async () => {
        try {
          const docs = alice.getRepository(Doc);
          const seeded = await docs.save(
            [1, 2, 3].map((n) => docs.create({ body: { state: `s${n}` }, tags: [`t${n}`] })),
          );
          const held = await docs.findBy(seeded.map((d) => ({ id: d.id })));
          for (const doc of held) {
            doc.tags = [...doc.tags, "seen"];
            // MariaDB has no CAST(.. AS JSON): MySQL's statement, forced there, must leave JSON columns out.
            if (!forcedMysql) doc.body = { state: "shipped" };
          }
          const otherChanges = async () => {
            await bob.getRepository(Doc).update({ id: held[1].id }, { tags: ["bob"], version: 2 });
          };
          let error: unknown;
          if (write === "save") {
            UpdateWatcher.race = otherChanges;
            error = await docs.save(held).catch((e: unknown) => e);
          } else {
            await otherChanges();
            const patchOf = (doc: Doc) => (forcedMysql ? { tags: doc.tags } : { tags: doc.tags, body: doc.body });
            error = await updateVersioned(
              docs,
              held.map((doc) => ({ id: doc.id, version: doc.version, patch: patchOf(doc) })),
            ).catch((e: unknown) => e);
          }
          expect(error).toBeInstanceOf(OptimisticLockError);
          expect((error as OptimisticLockError).conflicts).toEqual([
            { entityName: "Doc", id: { id: held[1].id }, expectedVersion: 1, actualVersion: 2 },
          ]);
          // Nothing of it written: the other's change stands, the rest as seeded.
          const stored = await bob
            .getRepository(Doc)
            .find({ where: held.map((d) => ({ id: d.id })), order: { id: "ASC" } });
          expect(stored.map((d) => [d.tags, d.version])).toEqual([
            [["t1"], 1],
            [["bob"], 2],
            [["t3"], 1],
          ]);
        } finally {
          UpdateWatcher.race = undefined;
        }
      });
    });

    it("an UPDATE changing two columns: only the stale row is named, the rows it wrote are told apart by every value", async () => {
      await installedOnAlice(options, async () => {
        try {
          const items = await seedItems(3);
          const ids = items.map((i) => ({ id: i.id }));
          for (const item of items) Object.assign(item, { name: "both", quantity: 4242 });
          UpdateWatcher.race = async () => {
            await bob.getRepository(Item).update({ id: items[2].id }, { name: "bob", version: 2 });
          };
          const error = await alice
            .getRepository(Item)
            .save(items)
            .catch((e: unknown) => e);
          expect(error).toBeInstanceOf(OptimisticLockError);
          expect((error as OptimisticLockError).conflicts).toEqual([
            { entityName: "Item", id: ids[2], expectedVersion: 1, actualVersion: 2 },
          ]);
          const stored = await bob.getRepository(Item).findBy(ids);
          expect(stored.map((s) => [s.name, s.quantity, s.version])).toEqual([
            ["n0", 0, 1],
            ["n1", 1, 1],
            ["bob", 2, 2],
          ]);
        } finally {
          UpdateWatcher.race = undefined;
        }
      });
    });
  });

  if (db.family === "mysql") {
    describe("MySQL's batched UPDATE (no RETURNING; forced on MariaDB)", () => {
      it("rows with no stamped column: one UPDATE and no read after it", async () => {
        await installedOnAlice({ dialect: mysqlDialect }, async () => {
          const few = alice.getRepository(Few);
          const rows = await few.save([1, 2, 3].map((n) => Object.assign(new Few(), { n })));
          for (const row of rows) row.n += 10;
          counter.reset();
          await few.save(rows);
          expect(updates()).toHaveLength(1);
          const afterUpdate = counter.statements.slice(counter.statements.findIndex((s) => /^\s*UPDATE/i.test(s)) + 1);
          expect(afterUpdate.filter((s) => /^\s*SELECT/i.test(s))).toHaveLength(0);
          expect(rows.map((row) => row.version)).toEqual([2, 2, 2]);
          const stored = await bob.getRepository(Few).findBy(rows.map((row) => ({ id: row.id })));
          expect(stored.map((row) => [row.n, row.version])).toEqual([
            [11, 2],
            [12, 2],
            [13, 2],
          ]);
        });
      });

      it("a row moved meanwhile to exactly the version and values written: every row named, versions unknown, nothing kept", async () => {
        await installedOnAlice({ dialect: mysqlDialect }, async () => {
          try {
            const items = await seedItems(3);
            const ids = items.map((i) => ({ id: i.id }));
            for (const item of items) item.quantity = 4242;
            UpdateWatcher.race = async () => {
              await bob.getRepository(Item).update({ id: items[1].id }, { quantity: 4242, version: 2 });
            };
            const error = await alice
              .getRepository(Item)
              .save(items)
              .catch((e: unknown) => e);
            expect(error).toBeInstanceOf(OptimisticLockError);
            expect((error as OptimisticLockError).conflicts).toEqual(
              ids.map((id) => ({ entityName: "Item", id, expectedVersion: 1 })),
            );
            const stored = await bob.getRepository(Item).findBy(ids);
            expect(stored.map((s) => [s.quantity, s.version])).toEqual([
              [0, 1],
              [4242, 2],
              [2, 1],
            ]);
          } finally {
            UpdateWatcher.race = undefined;
          }
        });
      });
    });
  }

  describe("remove() of many rows", () => {
    const deletes = () => counter.statements.filter((s) => /^\s*DELETE/i.test(s));

    it("10 rows: one guarded DELETE; split at maxRowsPerStatement, one statement per chunk", async () => {
      const items = await seedItems(10);
      const ids = items.map((i) => ({ id: i.id })); // remove() clears the entities' ids
      counter.reset();
      await alice.getRepository(Item).remove(items);
      expect(deletes()).toHaveLength(1);
      expect(await bob.getRepository(Item).countBy(ids)).toBe(0);
      await installedOnAlice({ batchWrites: { maxRowsPerStatement: 4 } }, async () => {
        const more = await seedItems(10);
        const moreIds = more.map((i) => ({ id: i.id }));
        counter.reset();
        await alice.getRepository(Item).remove(more);
        expect(deletes()).toHaveLength(3);
        expect(await bob.getRepository(Item).countBy(moreIds)).toBe(0);
      });
    });

    it("at the dialect's parameter limit (2 per row): one DELETE per chunk below it, every row gone", async () => {
      // The real limits (65,535 parameters, 32,766 on SQLite) need 33,000 rows, which TypeORM's own
      // remove() takes minutes to prepare; the same split, at a dialect's limit of 41 parameters (20 rows).
      const server =
        db.family === "sqlite" ? sqliteDialect : db.family === "postgres" ? postgresDialect : mariadbDialect;
      await installedOnAlice({ dialect: { ...server, maxParameters: 41 } }, async () => {
        const items = await seedItems(45);
        const ids = items.map((i) => ({ id: i.id }));
        counter.reset();
        await alice.getRepository(Item).remove(items);
        expect(deletes()).toHaveLength(3);
        expect(await bob.getRepository(Item).countBy(ids)).toBe(0);
      });
    });

    it("8 rows at maxRowsPerStatement 4: exactly two DELETEs, every row gone", async () => {
      await installedOnAlice({ batchWrites: { maxRowsPerStatement: 4 } }, async () => {
        const items = await seedItems(8);
        const ids = items.map((i) => ({ id: i.id }));
        counter.reset();
        await alice.getRepository(Item).remove(items);
        expect(deletes()).toHaveLength(2);
        expect(await bob.getRepository(Item).countBy(ids)).toBe(0);
      });
    });

    it("a remove with an unversioned row among them stays on TypeORM's DELETEs, split below the parameter limit by the widest key", async () => {
      const server =
        db.family === "sqlite" ? sqliteDialect : db.family === "postgres" ? postgresDialect : mariadbDialect;
      await installedOnAlice({ dialect: { ...server, maxParameters: 41 } }, async () => {
        const slots = alice.getRepository(Slot);
        await slots.save(
          Array.from({ length: 20 }, (_, i) =>
            slots.create({ day: 1000 + i, room: "chunked", price: { amount: i, currency: "EUR" } }),
          ),
        );
        const loaded = await slots.findBy({ room: "chunked" });
        const plains = await alice
          .getRepository(Plain)
          .save(Array.from({ length: 6 }, (_, n) => Object.assign(new Plain(), { n })));
        const plainIds = plains.map((p) => ({ id: p.id }));
        counter.reset();
        await alice.manager.remove([...loaded, ...plains]);
        // A Slot binds its two keys and its version: 41 parameters hold 13 of them, so TypeORM's
        // DELETE runs on chunks of 13 subjects (a chunk as wide as a Plain's key would hold 20).
        const bound = counter.queries.filter((q) => /^\s*DELETE/i.test(q.query)).map((q) => q.parameters?.length ?? 0);
        expect(bound.length).toBeGreaterThan(2);
        expect(Math.max(...bound)).toBeLessThanOrEqual(41);
        expect(await bob.getRepository(Slot).countBy({ room: "chunked" })).toBe(0);
        expect(await bob.getRepository(Plain).countBy(plainIds)).toBe(0);
        // TypeORM's last step saw every removed subject, not the last chunk: every key cleared.
        expect(loaded.filter((s) => s.day !== undefined || s.room !== undefined)).toEqual([]);
        expect(plains.filter((p) => p.id !== undefined)).toEqual([]);
      });
    });

    it("tree rows stay on TypeORM's remove, which renumbers the nested set", async () => {
      const nodes = alice.getRepository(TreeNode);
      const root = await nodes.save(nodes.create({ label: "root" }));
      await nodes.save(["a", "b", "c"].map((label) => nodes.create({ label, parent: root })));
      const children = await nodes.findBy([{ label: "a" }, { label: "b" }]);
      await nodes.remove(children);
      const [row] = (await bob.query(
        `SELECT ${bob.driver.escape("nsleft")} AS l, ${bob.driver.escape("nsright")} AS r FROM ${bob.driver.escape("bw_node")} WHERE ${bob.driver.escape("id")} = ${db.family === "postgres" ? "$1" : "?"}`,
        [root.id],
      )) as Array<{ l: number; r: number }>;
      expect([Number(row.l), Number(row.r)]).toEqual([1, 4]);
      expect((await bob.getRepository(TreeNode).find()).map((n) => n.label).sort()).toEqual(["c", "root"]);
    });

    it("conflicts seen before deleting: every stale row of 100 named, nothing deleted", async () => {
      const items = await seedItems(100);
      await bobChanges(items);
      counter.reset();
      const error = await alice
        .getRepository(Item)
        .remove(items)
        .catch((e: unknown) => e);
      await expectThreeNamed(items, error);
      expect((error as OptimisticLockError).operation).toBe("remove");
    });

    if (db.family !== "sqlite") {
      it("conflicts met by the DELETE: every stale row of 100 named by one SELECT, nothing deleted", async () => {
        const items = await seedItems(100);
        UpdateWatcher.race = () => bobChanges(items);
        counter.reset();
        const error = await alice
          .getRepository(Item)
          .remove(items)
          .catch((e: unknown) => e);
        UpdateWatcher.race = undefined;
        await expectThreeNamed(items, error);
        expect((error as Error).message).toMatch(/3 rows of 100 rows of one batched DELETE/);
        expect(deletes()).toHaveLength(1);
        const afterDelete = counter.statements.slice(counter.statements.findIndex((s) => /^\s*DELETE/i.test(s)) + 1);
        expect(afterDelete.filter((s) => /^\s*SELECT/i.test(s))).toHaveLength(1);
      });

      it("composite keys: the DELETE names exactly the row changed meanwhile, as a remove's conflict", async () => {
        const slots = alice.getRepository(Slot);
        await slots.save(
          [1, 2, 3, 4].map((i) => slots.create({ day: 2000 + i, room: "race", price: { amount: i, currency: "EUR" } })),
        );
        const loaded = await slots.findBy({ room: "race" });
        UpdateWatcher.race = async () => {
          await bob.getRepository(Slot).update({ day: 2002, room: "race" }, { version: 5 });
        };
        try {
          const error = await slots.remove(loaded).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(OptimisticLockError);
          expect((error as OptimisticLockError).operation).toBe("remove");
          expect((error as OptimisticLockError).conflicts).toEqual([
            { entityName: "Slot", id: { day: 2002, room: "race" }, expectedVersion: 1, actualVersion: 5 },
          ]);
          expect(await bob.getRepository(Slot).countBy({ room: "race" })).toBe(4);
        } finally {
          UpdateWatcher.race = undefined;
        }
      });

      if (db.family === "mysql") {
        it("MySQL's DELETE of rows all current: one DELETE and no SELECT, every row gone", async () => {
          await installedOnAlice({ dialect: mysqlDialect }, async () => {
            const items = await seedItems(5);
            const ids = items.map((i) => ({ id: i.id }));
            counter.reset();
            await alice.getRepository(Item).remove(items);
            expect(deletes()).toHaveLength(1);
            const afterDelete = counter.statements.slice(
              counter.statements.findIndex((s) => /^\s*DELETE/i.test(s)) + 1,
            );
            expect(afterDelete.filter((s) => /^\s*SELECT/i.test(s))).toHaveLength(0);
            expect(await bob.getRepository(Item).countBy(ids)).toBe(0);
          });
        });

        it("MySQL's DELETE meeting a row deleted meanwhile: every row gone is named, its state unknown, nothing deleted", async () => {
          await installedOnAlice({ dialect: mysqlDialect }, async () => {
            try {
              const items = await seedItems(4);
              const ids = items.map((i) => ({ id: i.id }));
              UpdateWatcher.race = async () => {
                await bob.getRepository(Item).update({ id: items[1].id }, { name: "bob", version: 2 });
                await bob.getRepository(Item).delete({ id: items[3].id });
              };
              const error = await alice
                .getRepository(Item)
                .remove(items)
                .catch((e: unknown) => e);
              expect(error).toBeInstanceOf(OptimisticLockError);
              const conflicts = [...(error as OptimisticLockError).conflicts].sort(
                (x, y) => (x.id as { id: number }).id - (y.id as { id: number }).id,
              );
              // The DELETE removed two of the three rows gone: which two cannot be told, so all three are named.
              expect(conflicts).toEqual([
                { entityName: "Item", id: ids[0], expectedVersion: 1 },
                { entityName: "Item", id: ids[1], expectedVersion: 1, actualVersion: 2 },
                { entityName: "Item", id: ids[2], expectedVersion: 1 },
                { entityName: "Item", id: ids[3], expectedVersion: 1 },
              ]);
              expect(await bob.getRepository(Item).countBy(ids)).toBe(3);
            } finally {
              UpdateWatcher.race = undefined;
            }
          });
        });

        it("MySQL's DELETE (no RETURNING): the row count and one locking SELECT name the stale rows", async () => {
          // The test server is MariaDB, which returns the keys; MySQL's statement, forced, runs there as on MySQL.
          await installedOnAlice({ dialect: mysqlDialect }, async () => {
            try {
              const items = await seedItems(100);
              const ids = items.map((i) => ({ id: i.id }));
              UpdateWatcher.race = async () => {
                await bob.getRepository(Item).update({ id: items[3].id }, { name: "bob", version: 2 });
                await bob.getRepository(Item).update({ id: items[50].id }, { name: "bob", version: 3 });
              };
              counter.reset();
              const error = await alice
                .getRepository(Item)
                .remove(items)
                .catch((e: unknown) => e);
              UpdateWatcher.race = undefined;
              expect(error).toBeInstanceOf(OptimisticLockError);
              expect(deletes()[0]).not.toMatch(/RETURNING/i);
              const conflicts = [...(error as OptimisticLockError).conflicts].sort(
                (x, y) => (x.id as { id: number }).id - (y.id as { id: number }).id,
              );
              expect(conflicts).toEqual([
                { entityName: "Item", id: ids[3], expectedVersion: 1, actualVersion: 2 },
                { entityName: "Item", id: ids[50], expectedVersion: 1, actualVersion: 3 },
              ]);
              expect(await bob.getRepository(Item).countBy(ids)).toBe(100);
            } finally {
              UpdateWatcher.race = undefined;
            }
          });
        });
      }
    }
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
    await installedOnAlice({ batchWrites: { maxRowsPerStatement: 4 } }, async () => {
      const items = await seedItems(10);
      for (const item of items) item.quantity = -5;
      counter.reset();
      await alice.getRepository(Item).save(items);
      expect(updates()).toHaveLength(3);
      expect(items.every((i) => i.version === 2)).toBe(true);
    });
  });

  describe("updateVersioned(repository, rows): the many-row form", () => {
    const rowsOf = (items: Item[], quantity: (item: Item) => number) =>
      items.map((i) => ({ id: i.id, version: i.version, patch: { quantity: quantity(i) } }));

    it("100 rows held at their versions: one UPDATE, the new versions in the order given", async () => {
      const items = await seedItems(100);
      counter.reset();
      const versions = await updateVersioned(
        alice.getRepository(Item),
        rowsOf(items, (i) => i.quantity + 500),
      );
      expect(updates()).toHaveLength(1);
      expect(versions).toEqual(items.map(() => 2));
      const stored = await bob.getRepository(Item).findBy(items.map((i) => ({ id: i.id })));
      expect(stored.map((s) => [s.quantity, s.version]).sort((a, b) => a[0] - b[0])).toEqual(
        items.map((i) => [i.quantity + 500, 2]),
      );
      // Ids as id maps and strings, versions as strings (a form, a header) name the same rows.
      const again = await updateVersioned(
        alice.getRepository(Item),
        items.map((i, n) => ({ id: n % 2 ? { id: i.id } : String(i.id), version: "2", patch: { name: "m" } })),
      );
      expect(again).toEqual(items.map(() => 3));
    });

    it("3 stale of 100 (a second connection changed two, deleted one): all named, nothing kept", async () => {
      const items = await seedItems(100);
      await bobChanges(items);
      counter.reset();
      const error = await updateVersioned(
        alice.getRepository(Item),
        rowsOf(items, () => 7777),
      ).catch((e: unknown) => e);
      await expectThreeNamed(items, error);
      expect((error as Error).message).toMatch(/3 rows of 100 rows of updateVersioned\(\)/);
      // The versions were the caller's: the same call fails again, so it is not retried.
      expect((error as OptimisticLockError).retryable).toBe(false);
      expect(isRetryableConflict(error)).toBe(false);
      expect(updates()).toHaveLength(1);
      const afterUpdate = counter.statements.slice(counter.statements.findIndex((s) => /^\s*UPDATE/i.test(s)) + 1);
      expect(afterUpdate.filter((s) => /^\s*SELECT/i.test(s))).toHaveLength(1);
    });

    it("one statement per chunk and per set of patched columns; composite keys and embedded columns", async () => {
      const items = await seedItems(10);
      await installedOnAlice({ batchWrites: { maxRowsPerStatement: 4 } }, async () => {
        counter.reset();
        await updateVersioned(
          alice.getRepository(Item),
          rowsOf(items, () => 1),
        );
        expect(updates()).toHaveLength(3);
      });
      counter.reset();
      const versions = await updateVersioned(alice.getRepository(Item), [
        { id: items[0].id, version: 2, patch: { name: "a" } },
        { id: items[1].id, version: 2, patch: { quantity: 9 } },
        { id: items[2].id, version: 2, patch: { name: "b" } },
      ]);
      expect(updates()).toHaveLength(2);
      expect(versions).toEqual([3, 3, 3]);
      const slots = alice.getRepository(Slot);
      await slots.save([7, 8].map((day) => slots.create({ day, room: "m", price: { amount: 1, currency: "EUR" } })));
      counter.reset();
      await updateVersioned(slots, [
        { id: { day: 7, room: "m" }, version: 1, patch: { price: { amount: 70 } } },
        { id: { day: 8, room: "m" }, version: 1, patch: { price: { amount: 80 } } },
      ]);
      expect(updates()).toHaveLength(1);
      const stored = await bob.getRepository(Slot).findBy([7, 8].map((day) => ({ day, room: "m" })));
      expect(stored.map((s) => [s.day, s.price.amount, s.price.currency, s.version]).sort()).toEqual([
        [7, 70, "EUR", 2],
        [8, 80, "EUR", 2],
      ]);
    });

    it("refuses bad input with a typed error before any statement", async () => {
      const [a, b] = await seedItems(2);
      const items = alice.getRepository(Item);
      const refused = async (rows: unknown, message: RegExp) => {
        counter.reset();
        const error = await updateVersioned(items, rows as never).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LockingConfigurationError);
        expect((error as Error).message).toMatch(/Item/);
        expect((error as Error).message).toMatch(message);
        expect(updates()).toHaveLength(0);
      };
      await refused([], /non-empty list/);
      await refused(
        [
          { id: a.id, version: 1, patch: { name: "x" } },
          { id: { id: a.id }, version: 1, patch: { name: "y" } },
        ],
        /rows 0 and 1 both name/,
      );
      await refused([{ id: a.id, version: 1.5, patch: { name: "x" } }], /integer version/);
      await refused([{ id: a.id, version: "v1", patch: { name: "x" } }], /integer version/);
      await refused([{ id: a.id, patch: { name: "x" } }], /no version/);
      await refused([{ id: a.id, version: null, patch: { name: "x" } }], /no version/);
      await refused([{ id: a.id, version: "1abc", patch: { name: "x" } }], /integer version/);
      await refused([{ id: a.id, version: "1234567890123456", patch: { name: "x" } }], /integer version/);
      await refused(
        [{ id: a.id, version: 1, patch: alice.getRepository(Label).create({ text: "x" }) }],
        /holds a Label/,
      );
      await refused([{ id: a.id, version: 1, patch: { version: 9 } }], /the version/);
      await refused([{ id: a.id, version: 1, patch: { colour: "red" } }], /"colour", which is not a column/);
      await refused([{ id: [a.id, b.id], version: 1, patch: { name: "x" } }], /must name one Item/);
      for (const row of [null, 5, [a.id, 1, { name: "x" }]]) await refused([row], /must be \{ id, version, patch \}/);
      for (const patch of [null, [], "x"]) await refused([{ id: a.id, version: 1, patch }], /an object of the columns/);
      await refused([{ id: a.id, version: 1, patch: {} }], /sets no column/);
      await refused([{ id: a.id, version: 1, patch: { id: 99 } }], /primary key/);
      await refused([{ id: a.id, version: 1, patch: { name: () => "'x'" } }], /SQL expression/);
      expect((await bob.getRepository(Item).findBy([{ id: a.id }, { id: b.id }])).map((i) => i.version)).toEqual([
        1, 1,
      ]);
    });

    it("a key no row can have is a deleted row of the call's conflict, not retryable, nothing written", async () => {
      const [a] = await seedItems(1);
      const items = alice.getRepository(Item);
      counter.reset();
      const error = await updateVersioned(items, [
        { id: a.id, version: 1, patch: { name: "x" } },
        { id: a.id + 0.5, version: 1, patch: { name: "y" } },
      ]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect((error as OptimisticLockError).conflicts).toEqual([
        { entityName: "Item", id: { id: a.id + 0.5 }, expectedVersion: 1, deleted: true },
      ]);
      expect(isRetryableConflict(error)).toBe(false);
      expect(updates()).toHaveLength(0);
      expect((await bob.getRepository(Item).findOneByOrFail({ id: a.id })).version).toBe(1);
    });

    it("composite keys whose parts run together alike, (1, '23') and (12, '3'), are two rows; the stale one is named", async () => {
      const slots = alice.getRepository(Slot);
      const keys = [
        { day: 4001, room: "23" },
        { day: 40012, room: "3" },
      ];
      await slots.save(keys.map((k) => slots.create({ ...k, price: { amount: 1, currency: "EUR" } })));
      const patch = { price: { amount: 2 } } as never;
      expect(
        await updateVersioned(
          slots,
          keys.map((id) => ({ id, version: 1, patch })),
        ),
      ).toEqual([2, 2]);
      await bob.getRepository(Slot).update(keys[1], { version: 5 });
      const error = await updateVersioned(
        slots,
        keys.map((id) => ({ id, version: 2, patch })),
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect((error as OptimisticLockError).conflicts).toEqual([
        { entityName: "Slot", id: keys[1], expectedVersion: 2, actualVersion: 5 },
      ]);
      expect((await bob.getRepository(Slot).findBy(keys)).map((s) => s.version).sort()).toEqual([2, 5]);
    });

    it("rows filling whole chunks (8 at 4 a statement): two UPDATEs, no empty third", async () => {
      const items = await seedItems(8);
      await installedOnAlice({ batchWrites: { maxRowsPerStatement: 4 } }, async () => {
        counter.reset();
        expect(
          await updateVersioned(
            alice.getRepository(Item),
            rowsOf(items, () => 8),
          ),
        ).toEqual(items.map(() => 2));
        expect(updates()).toHaveLength(2);
      });
    });

    it("stamps @UpdateDateColumn on every row, as TypeORM's own UPDATE does", async () => {
      const items = await seedItems(2);
      const old = new Date("2001-02-03T04:05:06Z");
      // TypeORM's update() moves the version too.
      for (const item of items) await bob.getRepository(Item).update({ id: item.id }, { updatedAt: old });
      const aged = await bob.getRepository(Item).findBy(items.map((i) => ({ id: i.id })));
      expect(aged.every((s) => s.updatedAt.getTime() === old.getTime())).toBe(true);
      await updateVersioned(
        alice.getRepository(Item),
        rowsOf(aged, () => 3),
      );
      const stored = await bob.getRepository(Item).findBy(items.map((i) => ({ id: i.id })));
      expect(stored.every((s) => s.updatedAt.getTime() > old.getTime() + 86_400_000)).toBe(true);
    });

    if (db.family === "mysql") {
      it("MySQL: a row moved meanwhile to exactly the version and values written: every row named, versions unknown", async () => {
        const items = await seedItems(3);
        const ids = items.map((i) => ({ id: i.id }));
        await bob.getRepository(Item).update(ids[1], { quantity: 4242, version: 2 });
        const error = await updateVersioned(
          alice.getRepository(Item),
          rowsOf(items, () => 4242),
        ).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(OptimisticLockError);
        expect((error as OptimisticLockError).conflicts).toEqual(
          ids.map((id) => ({ entityName: "Item", id, expectedVersion: 1 })),
        );
        const stored = await bob.getRepository(Item).find({ where: ids, order: { id: "ASC" } });
        expect(stored.map((s) => s.version)).toEqual([1, 2, 1]);
      });
    }

    it("a patch may be an entity of the repository's class, and its undefined properties are not set", async () => {
      const [a, b] = await seedItems(2);
      const items = alice.getRepository(Item);
      const patch = Object.assign(items.create({ name: "from an entity" }), { colour: undefined });
      expect(
        await updateVersioned(items, [
          { id: a.id, version: 1, patch },
          { id: b.id, version: 1, patch: { name: "from an entity", colour: undefined } as never },
        ]),
      ).toEqual([2, 2]);
      expect((await bob.getRepository(Item).findBy([{ id: a.id }, { id: b.id }])).map((i) => i.name)).toEqual([
        "from an entity",
        "from an entity",
      ]);
    });

    it("takes a version sent as text (a form field, a header): digits, spaces around them trimmed", async () => {
      const [a, b] = await seedItems(2);
      const items = alice.getRepository(Item);
      expect(await updateVersioned(items, [{ id: a.id, version: " 1 ", patch: { name: "from a form" } }])).toEqual([2]);
      // Two digits are a version like any other: here a stale one, so a conflict, not a refusal.
      const stale = await updateVersioned(items, [{ id: b.id, version: "12", patch: { name: "x" } }]).catch(
        (e: unknown) => e,
      );
      expect(stale).toBeInstanceOf(OptimisticLockError);
      expect((stale as OptimisticLockError).conflicts).toEqual([
        { entityName: "Item", id: { id: b.id }, expectedVersion: 12, actualVersion: 1 },
      ]);
    });
  });

  it("refuses a malformed batchWrites option", () => {
    expect(() => installLocking(bob, { batchWrites: { maxRowsPerStatement: 1 } })).toThrow(LockingConfigurationError);
    expect(() => installLocking(bob, { batchWrites: "yes" as never })).toThrow(/batchWrites must be/);
    installLocking(bob, { versionColumns: "checked" });
  });
});
