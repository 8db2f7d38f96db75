/**
 * An offline lock on an aggregate root covers its whole aggregate, on every database, with two
 * users on two DataSources (two connections): Alice holds the lock on an order, Bob does not.
 * Every way of changing the order's aggregate is refused for Bob before anything is written
 * (the order's version stays put), goes through for Alice under her handle, and Alice's save of
 * the copy she loaded before Bob's attempt then succeeds. Writes that cannot be checked
 * (repository.update()/delete(), query builders) are refused with OfflineLockBypassError. Also:
 * runHolding() with the handle string, and a missing lock table.
 */
import {
  Column,
  type DataSource,
  DeleteDateColumn,
  Entity,
  ManyToOne,
  OneToMany,
  PrimaryColumn,
  PrimaryGeneratedColumn,
} from "typeorm";
import {
  installLocking,
  LockingConfigurationError,
  LockMode,
  OFFLINE_LOCK_TABLE,
  OfflineLockBypassError,
  type OfflineLockHandle,
  OfflineLockManager,
  OfflineLockRecord,
  OfflineLockRequiredError,
  Versioned,
  VersionedBy,
  withLockMode,
} from "../src";
import { AGGREGATE_ENTITIES, AggLine, AggNote, AggOrder, AggTag } from "./fixtures/aggregate-entities";
import { closeAll, describeEachDatabase, openAlongside, openDataSources, StatementCounter } from "./support/databases";

const failure = (work: Promise<unknown>) =>
  work.then(
    () => undefined,
    (error: unknown) => error,
  );

/** A root that can be soft-removed, so a member may leave a root whose row is soft-deleted. */
@Entity({ name: "tl_offline_shelf" })
class Shelf {
  @PrimaryGeneratedColumn() id!: number;
  @Column() city!: string;
  @DeleteDateColumn({ nullable: true }) deletedAt?: Date | null;
  @Versioned() version!: number;
  @OneToMany(
    () => Book,
    (book) => book.shelf,
  )
  books?: Book[];
}

@Entity({ name: "tl_offline_book" })
@VersionedBy(
  () => Shelf,
  (book: Book) => book.shelf,
)
class Book {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @ManyToOne(
    () => Shelf,
    (shelf) => shelf.books,
  )
  shelf!: Shelf | null;
}

/** A root whose key the application assigns: a new one holds its id before it is inserted. */
@Entity({ name: "tl_offline_ledger" })
class Ledger {
  @PrimaryColumn() code!: string;
  @Versioned() version!: number;
  @OneToMany(
    () => Entry,
    (entry) => entry.ledger,
    { cascade: true },
  )
  entries?: Entry[];
}

@Entity({ name: "tl_offline_entry" })
@VersionedBy(
  () => Ledger,
  (entry: Entry) => entry.ledger,
)
class Entry {
  @PrimaryGeneratedColumn() id!: number;
  @Column() amount!: number;
  @ManyToOne(
    () => Ledger,
    (ledger) => ledger.entries,
  )
  ledger!: Ledger;
}

describeEachDatabase((db) => {
  let alice: DataSource;
  let bob: DataSource;
  let aliceLocks: OfflineLockManager;
  let bobLocks: OfflineLockManager;

  beforeAll(async () => {
    [alice] = await openDataSources(db, [...AGGREGATE_ENTITIES, Shelf, Book, Ledger, Entry, OfflineLockRecord]);
    bob = await openAlongside(alice);
    installLocking(alice);
    installLocking(bob);
    aliceLocks = new OfflineLockManager(alice).protect(AggOrder);
    bobLocks = new OfflineLockManager(bob).protect(AggOrder);
    await alice.getRepository(AggTag).save([
      { id: 1, name: "gift" },
      { id: 2, name: "express" },
    ]);
  });
  afterAll(() => closeAll(alice, bob));

  async function seed(city = "Seoul"): Promise<number> {
    const order = await alice.getRepository(AggOrder).save({
      status: "NEW",
      address: { street: "Old Street 1", city },
      lines: [
        { product: "pen", quantity: 1, notes: [{ text: "blue" }] },
        { product: "ink", quantity: 2, notes: [] },
      ],
      tags: [{ id: 1 } as AggTag],
    } as AggOrder);
    return order.id;
  }
  const load = (source: DataSource, id: number) =>
    source.getRepository(AggOrder).findOneOrFail({
      where: { id },
      relations: { lines: { notes: true }, tags: true },
      order: { lines: { id: "ASC" } },
    });
  const lineOf = (order: AggOrder, product: string) => order.lines!.find((l) => l.product === product)!;
  const loadLine = (source: DataSource, order: AggOrder, product: string) =>
    source
      .getRepository(AggLine)
      .findOneOrFail({ where: { id: lineOf(order, product).id }, relations: { order: true } });

  /** One way of changing an order's aggregate, done by `source` on its own copy `order`. */
  type Change = (source: DataSource, order: AggOrder) => Promise<unknown>;

  /**
   * Alice takes the lock and loads the order; Bob's change is refused and writes nothing; Alice's
   * same change under her handle goes through; then her save of the copy she loaded before Bob's
   * attempt succeeds (the order was not moved under her).
   */
  async function lockedAgainstBob(change: Change, holding: (lock: OfflineLockHandle) => OfflineLockHandle | string) {
    const id = await seed();
    const lock = await aliceLocks.tryLock("AggOrder", id, { owner: "alice", ttlMs: 60_000 });
    try {
      const alicesCopy = await load(alice, id);
      const before = await load(bob, id);

      const refused = await failure(change(bob, await load(bob, id)));
      expect(refused).toBeInstanceOf(OfflineLockRequiredError);
      expect((refused as Error).message).toMatch(`AggOrder/${id}`);
      expect(await load(bob, id)).toEqual(before);

      // Bob holding a handle for another order does not help either.
      const otherId = await seed();
      const otherLock = await bobLocks.tryLock("AggOrder", otherId, { owner: "bob", ttlMs: 60_000 });
      const refusedWithOther = await failure(
        bobLocks.runHolding(otherLock, async () => change(bob, await load(bob, id))),
      );
      expect(refusedWithOther).toBeInstanceOf(OfflineLockRequiredError);
      expect((await load(bob, id)).version).toBe(before.version);
      await bobLocks.releaseLock(otherLock);

      await aliceLocks.runHolding(holding(lock), () => change(alice, alicesCopy));
      const after = await load(alice, id);
      expect(after.version).toBe(before.version + 1);
      return { id, before, after, lock };
    } finally {
      await aliceLocks.releaseLock(lock).catch(() => undefined);
    }
  }

  const saveOrder = (source: DataSource, order: AggOrder) => source.getRepository(AggOrder).save(order);

  const changes: Array<[string, Change, (after: AggOrder) => void]> = [
    [
      "orders.save(order) with only a line's quantity changed (cascade)",
      (source, order) => {
        lineOf(order, "pen").quantity = 7;
        return saveOrder(source, order);
      },
      (after) => expect(lineOf(after, "pen").quantity).toBe(7),
    ],
    [
      "orders.save(order) with a line added (cascade insert)",
      (source, order) => {
        order.lines!.push({ product: "paper", quantity: 5 } as AggLine);
        return saveOrder(source, order);
      },
      (after) => expect(after.lines!.map((l) => l.product)).toEqual(["pen", "ink", "paper"]),
    ],
    [
      "orders.save(order) with a line dropped (orphan delete)",
      (source, order) => {
        order.lines = order.lines!.filter((l) => l.product !== "ink");
        return saveOrder(source, order);
      },
      (after) => expect(after.lines!.map((l) => l.product)).toEqual(["pen"]),
    ],
    [
      "orders.save(order) with a note of a line changed (a grandchild)",
      (source, order) => {
        lineOf(order, "pen").notes![0].text = "red";
        return saveOrder(source, order);
      },
      (after) => expect(lineOf(after, "pen").notes![0].text).toBe("red"),
    ],
    [
      "orders.save(order) with a many-to-many link added and one removed (junction rows)",
      (source, order) => {
        order.tags = [{ id: 2 } as AggTag];
        return saveOrder(source, order);
      },
      (after) => expect(after.tags!.map((t) => t.id)).toEqual([2]),
    ],
    [
      "lines.save(line) through the line's own repository",
      async (source, order) => {
        const line = await loadLine(source, order, "pen");
        line.order = order;
        line.quantity = 9;
        return source.getRepository(AggLine).save(line);
      },
      (after) => expect(lineOf(after, "pen").quantity).toBe(9),
    ],
    [
      "lines.save(newLine) through the line's own repository (an insert into the aggregate)",
      (source, order) => source.getRepository(AggLine).save({ product: "clip", quantity: 3, order } as AggLine),
      (after) => expect(after.lines!.map((l) => l.product)).toEqual(["pen", "ink", "clip"]),
    ],
    [
      "lines.remove(line) through the line's own repository",
      async (source, order) => {
        const line = await loadLine(source, order, "ink");
        line.order = order;
        return source.getRepository(AggLine).remove(line);
      },
      (after) => expect(after.lines!.map((l) => l.product)).toEqual(["pen"]),
    ],
    [
      "notes.save(note) through the grandchild's own repository",
      async (source, order) => {
        const note = await source
          .getRepository(AggNote)
          .findOneOrFail({ where: { id: lineOf(order, "pen").notes![0].id }, relations: { line: { order: true } } });
        note.line.order = order;
        note.text = "green";
        return source.getRepository(AggNote).save(note);
      },
      (after) => expect(lineOf(after, "pen").notes![0].text).toBe("green"),
    ],
  ];

  describe.each(changes)("%s", (_name, change, check) => {
    it("is refused for a non-holder (nothing written), allowed for the holder, whose later save succeeds", async () => {
      const { after } = await lockedAgainstBob(change, (lock) => lock);
      check(after);
    });

    it("the holder may run with the handle string instead of the object", async () => {
      const { after } = await lockedAgainstBob(change, (lock) => lock.handle);
      check(after);
    });
  });

  describe("a line moved out of a locked order needs that order's lock too (the move changes it)", () => {
    const moves: Array<[string, (source: DataSource, from: AggOrder, to: AggOrder) => Promise<unknown>]> = [
      [
        "through the line's repository",
        async (source, from, to) => {
          const line = await loadLine(source, from, "pen");
          line.order = to;
          return source.getRepository(AggLine).save(line);
        },
      ],
      [
        "by the other order's cascade",
        (source, from, to) => {
          to.lines!.push(lineOf(from, "pen"));
          return saveOrder(source, to);
        },
      ],
      [
        "detached (order = null)",
        async (source, from) => {
          const line = await loadLine(source, from, "pen");
          line.order = null as unknown as AggOrder;
          return source.getRepository(AggLine).save(line);
        },
      ],
    ];
    it.each(moves)("%s: refused for Bob holding only the order it joins, nothing written", async (_name, move) => {
      const [a, b] = [await seed(), await seed()];
      const aliceLock = await aliceLocks.tryLock("AggOrder", a, { owner: "alice", ttlMs: 60_000 });
      const bobLock = await bobLocks.tryLock("AggOrder", b, { owner: "bob", ttlMs: 60_000 });
      try {
        const before = [await load(bob, a), await load(bob, b)];
        const refused = await failure(
          bobLocks.runHolding(bobLock, async () => move(bob, await load(bob, a), await load(bob, b))),
        );
        expect(refused).toBeInstanceOf(OfflineLockRequiredError);
        expect((refused as Error).message).toMatch(`AggOrder/${a}`);
        expect([await load(bob, a), await load(bob, b)]).toEqual(before);
      } finally {
        await aliceLocks.releaseLock(aliceLock).catch(() => undefined);
        await bobLocks.releaseLock(bobLock).catch(() => undefined);
      }
    });
  });

  it("after the holder's change under the lock, her own later save of another part succeeds", async () => {
    const id = await seed();
    const lock = await aliceLocks.tryLock("AggOrder", id, { owner: "alice", ttlMs: 60_000 });
    const order = await load(alice, id);
    const bobs = await load(bob, id);
    lineOf(bobs, "ink").quantity = 99;
    await expect(saveOrder(bob, bobs)).rejects.toThrow(OfflineLockRequiredError);
    await aliceLocks.runHolding(lock, async () => {
      lineOf(order, "pen").quantity = 3;
      await saveOrder(alice, order);
      order.address.city = "Busan";
      await saveOrder(alice, order);
    });
    const after = await load(alice, id);
    expect(after).toMatchObject({ version: 3, address: { city: "Busan" } });
    expect(lineOf(after, "ink").quantity).toBe(2);
    await aliceLocks.releaseLock(lock);
  });

  it("outside a transaction (save(..., { transaction: false })) a non-holder's change through the root or a line is refused before the root's version bump is written", async () => {
    // Nothing rolls back here: the lock is checked before any write, the root's bump included.
    const id = await seed();
    const lock = await aliceLocks.tryLock("AggOrder", id, { owner: "alice", ttlMs: 60_000 });
    try {
      const bobs = await load(bob, id);
      lineOf(bobs, "pen").quantity = 7;
      await expect(bob.getRepository(AggOrder).save(bobs, { transaction: false })).rejects.toThrow(
        OfflineLockRequiredError,
      );
      const line = await loadLine(bob, bobs, "ink");
      line.quantity = 9;
      await expect(bob.getRepository(AggLine).save(line, { transaction: false })).rejects.toThrow(
        OfflineLockRequiredError,
      );
      const after = await load(bob, id);
      expect(after.version).toBe(1);
      expect(after.lines!.map((l) => l.quantity)).toEqual([1, 2]);
    } finally {
      await aliceLocks.releaseLock(lock);
    }
  });

  it("the holder's save(..., { transaction: false }) is refused as a misuse, naming the way out, before anything is written", async () => {
    // The lock is checked with its row held until the write commits: without a transaction, a
    // take-over could slip between the check and the write, so there is nothing to check it in.
    const id = await seed();
    const lock = await aliceLocks.tryLock("AggOrder", id, { owner: "alice", ttlMs: 60_000 });
    try {
      const order = await load(alice, id);
      lineOf(order, "pen").quantity = 7;
      order.address.city = "Busan";
      const refused = await failure(
        aliceLocks.runHolding(lock, () => alice.getRepository(AggOrder).save(order, { transaction: false })),
      );
      expect(refused).toBeInstanceOf(LockingConfigurationError);
      expect(refused).not.toBeInstanceOf(OfflineLockRequiredError);
      expect((refused as Error).message).toMatch("transaction");
      const after = await load(alice, id);
      expect(after).toMatchObject({ version: 1, address: { city: "Seoul" } });
      expect(after.lines!.map((l) => l.quantity)).toEqual([1, 2]);
      // With its transaction, the same change by the holder is written.
      await aliceLocks.runHolding(lock, () => saveOrder(alice, order));
      expect(await load(alice, id)).toMatchObject({ version: 2, address: { city: "Busan" } });
    } finally {
      await aliceLocks.releaseLock(lock);
    }
  });

  it("a new order with its lines and an entity outside the aggregate need no lock; a root's excluded property still does", async () => {
    const id = await seed(); // a new order with its lines: inserts only
    await bob.getRepository(AggTag).save({ id: 3, name: "fragile" });
    const order = await load(bob, id);
    order.viewCount = 5; // @OptimisticLockExcluded: not versioned, but still a write of the protected row
    await expect(saveOrder(bob, order)).rejects.toThrow(OfflineLockRequiredError);
    expect((await load(bob, id)).version).toBe(1);
  });

  describe("writes that name no entity are refused with OfflineLockBypassError, holder included", () => {
    const bypasses: Array<[string, (source: DataSource, order: AggOrder) => Promise<unknown>]> = [
      ["orders.update(id, patch)", (s, o) => s.getRepository(AggOrder).update(o.id, { status: "PAID" })],
      ["orders.delete(id)", (s, o) => s.getRepository(AggOrder).delete(o.id)],
      ["orders.increment(...)", (s, o) => s.getRepository(AggOrder).increment({ id: o.id }, "viewCount", 1)],
      [
        "orders.upsert(...)",
        (s, o) =>
          s
            .getRepository(AggOrder)
            .upsert({ id: o.id, status: "PAID", address: o.address, version: o.version } as AggOrder, ["id"]),
      ],
      [
        "a query-builder UPDATE of the root",
        (s, o) =>
          s.createQueryBuilder().update(AggOrder).set({ status: "PAID" }).where("id = :id", { id: o.id }).execute(),
      ],
      [
        "lines.update(id, patch) of a member",
        (s, o) => s.getRepository(AggLine).update(lineOf(o, "pen").id, { quantity: 8 }),
      ],
      ["lines.delete(id) of a member", (s, o) => s.getRepository(AggLine).delete(lineOf(o, "pen").id)],
      [
        "lines.insert(...) of a member",
        (s, o) => s.getRepository(AggLine).insert({ product: "clip", quantity: 1, order: { id: o.id } as AggOrder }),
      ],
      [
        "a query-builder DELETE of a grandchild",
        (s, o) =>
          s
            .createQueryBuilder()
            .delete()
            .from(AggNote)
            .where("id = :id", { id: lineOf(o, "pen").notes![0].id })
            .execute(),
      ],
      [
        "relation(Order, 'tags').add() (a junction row)",
        (s, o) => s.createQueryBuilder().relation(AggOrder, "tags").of(o.id).add(2),
      ],
      [
        "relation(Order, 'tags').remove() (a junction row)",
        (s, o) => s.createQueryBuilder().relation(AggOrder, "tags").of(o.id).remove(1),
      ],
    ];

    it.each(bypasses)("%s", async (_name, write) => {
      const id = await seed();
      const lock = await aliceLocks.tryLock("AggOrder", id, { owner: "alice", ttlMs: 60_000 });
      const before = await load(alice, id);
      const error = await failure(write(bob, before));
      expect(error).toBeInstanceOf(OfflineLockBypassError);
      expect(error).toBeInstanceOf(LockingConfigurationError);
      expect((error as Error).message).toMatch(/cannot be checked against the offline lock AggOrder/);
      const holders = await failure(aliceLocks.runHolding(lock, () => write(alice, before)));
      expect(holders).toBeInstanceOf(OfflineLockBypassError);
      expect(await load(alice, id)).toEqual(before);
      await aliceLocks.releaseLock(lock);
    });

    it("entities outside every protected aggregate, plain inserts of a protected root and DataSources without protect() are not affected", async () => {
      await expect(bob.getRepository(AggTag).update(1, { name: "present" })).resolves.toMatchObject({ affected: 1 });
      await expect(
        bob.getRepository(AggOrder).insert({ status: "NEW", address: { street: "s", city: "c" } } as AggOrder),
      ).resolves.toBeDefined();
      const id = await seed();
      const unprotected = await openAlongside(alice);
      try {
        installLocking(unprotected);
        await expect(unprotected.getRepository(AggOrder).update(id, { status: "PAID" })).resolves.toMatchObject({
          affected: 1,
        });
      } finally {
        await closeAll(unprotected);
      }
    });
  });

  it("lock modes on a protected root: OPTIMISTIC's re-check (no change) passes; a force increment moves the version and is refused", async () => {
    const id = await seed();
    const read = (mode: LockMode) =>
      bob.transaction((m) => m.findOneOrFail(AggOrder, { where: { id }, ...withLockMode(mode) }));
    await expect(read(LockMode.OPTIMISTIC)).resolves.toMatchObject({ version: 1 });
    await expect(read(LockMode.PESSIMISTIC_FORCE_INCREMENT)).rejects.toThrow(OfflineLockBypassError);
    await expect(read(LockMode.OPTIMISTIC_FORCE_INCREMENT)).rejects.toThrow(OfflineLockBypassError);
    expect((await load(bob, id)).version).toBe(1);
  });

  it("the documented member workaround (protect(Line, { lockType, lockIdOf })) no longer refuses the holder inside a cascade", async () => {
    const carol = await openAlongside(alice);
    try {
      installLocking(carol);
      const carolLocks = new OfflineLockManager(carol)
        .protect(AggOrder)
        .protect(AggLine, { lockType: "AggOrder", lockIdOf: (line: AggLine) => line.order?.id });
      const id = await seed();
      const lock = await carolLocks.tryLock("AggOrder", id, { owner: "carol", ttlMs: 60_000 });
      const order = await load(carol, id);
      lineOf(order, "pen").quantity = 4;
      await carolLocks.runHolding(lock, () => saveOrder(carol, order));
      expect((await load(carol, id)).version).toBe(2);
      await carolLocks.releaseLock(lock);

      // Outside any aggregate, a lockIdOf that gives no id is a configuration error, not a lock "undefined".
      carolLocks.protect(AggTag, { lockType: "Tag", lockIdOf: () => undefined });
      const tag = await carol.getRepository(AggTag).findOneByOrFail({ id: 1 });
      tag.name = "renamed";
      await expect(carol.getRepository(AggTag).save(tag)).rejects.toThrow(
        /lockIdOf given to protect\(AggTag\) returned no id/,
      );
    } finally {
      await closeAll(carol);
    }
  });

  it("a root whose lockIdOf gives no id, saved directly, is a configuration error, not a write without a lock", async () => {
    const erin = await openAlongside(alice);
    try {
      installLocking(erin);
      new OfflineLockManager(erin).protect(AggOrder, { lockType: "Nowhere", lockIdOf: () => undefined });
      const id = await seed();
      const order = await load(erin, id);
      order.status = "PAID";
      await expect(saveOrder(erin, order)).rejects.toBeInstanceOf(LockingConfigurationError);
      expect(await load(erin, id)).toMatchObject({ status: "NEW", version: 1 });
    } finally {
      await closeAll(erin);
    }
  });

  it("a member whose lockIdOf gives no id, in an aggregate whose root is not protected, is a configuration error", async () => {
    const frank = await openAlongside(alice);
    try {
      installLocking(frank);
      new OfflineLockManager(frank).protect(AggLine, { lockType: "Line", lockIdOf: () => undefined });
      const id = await seed();
      const order = await load(frank, id);
      lineOf(order, "pen").quantity = 8;
      await expect(saveOrder(frank, order)).rejects.toBeInstanceOf(LockingConfigurationError);
      expect(lineOf(await load(frank, id), "pen").quantity).toBe(1);
    } finally {
      await closeAll(frank);
    }
  });

  /** Dave's own DataSource, where orders are protected by one offline lock per city. */
  async function withCityLocks(work: (dave: DataSource, daveLocks: OfflineLockManager) => Promise<void>) {
    const dave = await openAlongside(alice);
    try {
      installLocking(dave);
      const daveLocks = new OfflineLockManager(dave).protect(AggOrder, {
        lockType: "City",
        lockIdOf: (order: AggOrder) => order.address?.city,
      });
      await work(dave, daveLocks);
    } finally {
      await closeAll(dave);
    }
  }

  it("a root protected by a lock id read from another column (one lock per city) is saved directly, and through its lines, under that lock", async () => {
    await withCityLocks(async (dave, daveLocks) => {
      const id = await seed(); // in Seoul
      const order = await load(dave, id);
      order.status = "PAID";
      await expect(saveOrder(dave, order)).rejects.toThrow(OfflineLockRequiredError);
      const lock = await daveLocks.tryLock("City", "Seoul", { owner: "dispatcher", ttlMs: 60_000 });
      await daveLocks.runHolding(lock, () => saveOrder(dave, order));
      lineOf(order, "pen").quantity = 4;
      await daveLocks.runHolding(lock, () => saveOrder(dave, order));
      await daveLocks.releaseLock(lock);
      expect(await load(dave, id)).toMatchObject({ status: "PAID", version: 3 });
      expect(lineOf(await load(dave, id), "pen").quantity).toBe(4);
    });
  });

  it("one lock per city: a line loaded without its order moves to an order in another city only under both cities' locks", async () => {
    await withCityLocks(async (dave, daveLocks) => {
      const a = await seed("Seoul");
      const b = await seed("Busan");
      const busan = await daveLocks.tryLock("City", "Busan", { owner: "dispatcher", ttlMs: 60_000 });
      const seoul = await daveLocks.tryLock("City", "Seoul", { owner: "dispatcher", ttlMs: 60_000 });
      // The line is loaded alone: the order it leaves is known by its id only, and its city is
      // read from its row.
      const move = async () => {
        const line = await dave.getRepository(AggLine).findOneByOrFail({ id: lineOf(await load(dave, a), "pen").id });
        line.order = await load(dave, b);
        return dave.getRepository(AggLine).save(line);
      };
      const refused = await failure(daveLocks.runHolding(busan, move));
      expect(refused).toBeInstanceOf(OfflineLockRequiredError);
      expect(refused).toMatchObject({ lockType: "City", lockId: "Seoul" });
      expect(lineOf(await load(dave, a), "pen")).toBeDefined();
      await daveLocks.runHolding(busan, () => daveLocks.runHolding(seoul, move));
      expect((await load(dave, b)).lines!.map((l) => l.product)).toContain("pen");
      expect((await load(dave, a)).lines!.map((l) => l.product)).toEqual(["ink"]);
      await daveLocks.releaseLock(busan);
      await daveLocks.releaseLock(seoul);
    });
  });

  it("one lock per city: an order moved to another city needs the lock of the city it leaves as well as the one it joins", async () => {
    await withCityLocks(async (dave, daveLocks) => {
      const id = await seed("Seoul");
      const busan = await daveLocks.tryLock("City", "Busan", { owner: "dave", ttlMs: 60_000 });
      // Someone else is working on Seoul's orders under its lock.
      const seoulHolder = await daveLocks.tryLock("City", "Seoul", { owner: "dispatcher", ttlMs: 60_000 });
      const order = await load(dave, id);
      order.address.city = "Busan";
      const refused = await failure(daveLocks.runHolding(busan, () => saveOrder(dave, order)));
      expect(refused).toBeInstanceOf(OfflineLockRequiredError);
      expect(refused).toMatchObject({ lockType: "City", lockId: "Seoul" });
      expect(await load(dave, id)).toMatchObject({ version: 1, address: { city: "Seoul" } });
      // Holding both, the move goes through; and back again needs both too.
      await daveLocks.runHolding(busan, () => daveLocks.runHolding(seoulHolder, () => saveOrder(dave, order)));
      expect(await load(dave, id)).toMatchObject({ version: 2, address: { city: "Busan" } });
      const back = await load(dave, id);
      back.address.city = "Seoul";
      await expect(daveLocks.runHolding(seoulHolder, () => saveOrder(dave, back))).rejects.toMatchObject({
        lockId: "Busan",
      });
      // A change that keeps the city needs that city's lock only.
      back.address.city = "Busan";
      back.status = "PAID";
      await daveLocks.runHolding(busan, () => saveOrder(dave, back));
      expect(await load(dave, id)).toMatchObject({ version: 3, status: "PAID", address: { city: "Busan" } });
      await daveLocks.releaseLock(busan);
      await daveLocks.releaseLock(seoulHolder);
    });
  });

  it("one lock per city: a lockIdOf that cannot read the row as it was (a relation the save does not carry) asks only for the lock the entity is written with", async () => {
    const kim = await openAlongside(alice);
    try {
      installLocking(kim);
      // Reads the order's city through the line: the pre-load of a line saved without its order
      // holds no order, and the function throws on it.
      const kimLocks = new OfflineLockManager(kim).protect(AggLine, {
        lockType: "City",
        lockIdOf: (line: AggLine) => (line.order as AggOrder).address.city,
      });
      const id = await seed("Seoul");
      const seoul = await kimLocks.tryLock("City", "Seoul", { owner: "kim", ttlMs: 60_000 });
      const line = lineOf(await load(kim, id), "pen");
      line.order = await load(kim, id);
      line.quantity = 9;
      await kimLocks.runHolding(seoul, () => kim.getRepository(AggLine).save(line));
      expect(lineOf(await load(kim, id), "pen").quantity).toBe(9);
      await kimLocks.releaseLock(seoul);
    } finally {
      await closeAll(kim);
    }
  });

  it("a line protected by its order's id (lockIdOf: line => line.order?.id) moved to another order needs the lock of the order it leaves too", async () => {
    const lena = await openAlongside(alice);
    try {
      installLocking(lena);
      const lenaLocks = new OfflineLockManager(lena).protect(AggLine, {
        lockType: "Order",
        lockIdOf: (line: AggLine) => line.order?.id,
      });
      const a = await seed();
      const b = await seed();
      const toB = await lenaLocks.tryLock("Order", b, { owner: "lena", ttlMs: 60_000 });
      const line = lineOf(await load(lena, a), "pen");
      line.order = await load(lena, b);
      const refused = await failure(lenaLocks.runHolding(toB, () => lena.getRepository(AggLine).save(line)));
      expect(refused).toBeInstanceOf(OfflineLockRequiredError);
      expect(refused).toMatchObject({ lockType: "Order", lockId: String(a) });
      expect(lineOf(await load(lena, a), "pen")).toBeDefined();
      const fromA = await lenaLocks.tryLock("Order", a, { owner: "lena", ttlMs: 60_000 });
      await lenaLocks.runHolding(toB, () => lenaLocks.runHolding(fromA, () => lena.getRepository(AggLine).save(line)));
      expect((await load(lena, b)).lines!.map((l) => l.product)).toContain("pen");
      await lenaLocks.releaseLock(toB);
      await lenaLocks.releaseLock(fromA);
    } finally {
      await closeAll(lena);
    }
  });

  it("a new root whose key the application assigns, inserted with its members, needs no lock; an entry added to it later does", async () => {
    const hana = await openAlongside(alice);
    try {
      installLocking(hana);
      const hanaLocks = new OfflineLockManager(hana).protect(Ledger);
      const code = `L${Date.now()}`;
      // The new ledger's id is known before the insert: still a new aggregate, nobody's lock yet.
      await hana.getRepository(Ledger).save({ code, entries: [{ amount: 1 }, { amount: 2 }] } as Ledger);
      const ledger = await hana.getRepository(Ledger).findOneOrFail({ where: { code }, relations: { entries: true } });
      expect(ledger).toMatchObject({ version: 1 });
      expect(ledger.entries!.map((e) => e.amount).sort()).toEqual([1, 2]);
      ledger.entries!.push({ amount: 3 } as Entry);
      const refused = await failure(hana.getRepository(Ledger).save(ledger));
      expect(refused).toBeInstanceOf(OfflineLockRequiredError);
      expect((refused as Error).message).toMatch(`Ledger/${code}`);
      const lock = await hanaLocks.tryLock("Ledger", code, { owner: "hana", ttlMs: 60_000 });
      await hanaLocks.runHolding(lock, () => hana.getRepository(Ledger).save(ledger));
      expect((await hana.getRepository(Ledger).findOneByOrFail({ code })).version).toBe(2);
      await hanaLocks.releaseLock(lock);
    } finally {
      await closeAll(hana);
    }
  });

  it("one lock per city: a root saved directly is checked against the lock its own copy names, without reading its row again", async () => {
    const counter = new StatementCounter();
    const ivan = await openAlongside(alice, { logger: counter, logging: true });
    try {
      installLocking(ivan);
      const ivanLocks = new OfflineLockManager(ivan).protect(AggOrder, {
        lockType: "City",
        lockIdOf: (order: AggOrder) => order.address?.city,
      });
      const id = await seed("Seoul");
      const lock = await ivanLocks.tryLock("City", "Seoul", { owner: "dispatcher", ttlMs: 60_000 });
      const order = await ivan.getRepository(AggOrder).findOneByOrFail({ id });
      order.status = "PAID";
      counter.reset();
      await ivanLocks.runHolding(lock, () => ivan.getRepository(AggOrder).save(order));
      // The pre-load, the lock's row, the guarded UPDATE: no SELECT of the order for its city.
      const selects = counter.statements.filter((sql) => sql.startsWith("SELECT"));
      expect(selects).toHaveLength(2);
      expect(await load(ivan, id)).toMatchObject({ status: "PAID", version: 2 });
      await ivanLocks.releaseLock(lock);
    } finally {
      await closeAll(ivan);
    }
  });

  it("one lock per city: a book leaving a soft-removed shelf needs that shelf's city lock, read from its soft-deleted row", async () => {
    const gina = await openAlongside(alice);
    try {
      installLocking(gina);
      const ginaLocks = new OfflineLockManager(gina).protect(Shelf, {
        lockType: "ShelfCity",
        lockIdOf: (shelf: Shelf) => shelf.city,
      });
      const [from, to] = await gina.getRepository(Shelf).save([{ city: "Seoul" }, { city: "Busan" }] as Shelf[]);
      const seoul = await ginaLocks.tryLock("ShelfCity", "Seoul", { owner: "librarian", ttlMs: 60_000 });
      const busan = await ginaLocks.tryLock("ShelfCity", "Busan", { owner: "librarian", ttlMs: 60_000 });
      const book = await ginaLocks.runHolding(seoul, async () => {
        const placed = await gina.getRepository(Book).save({ title: "atlas", shelf: from } as Book);
        await gina.getRepository(Shelf).softRemove(from);
        return placed;
      });
      // Loaded alone: the shelf it leaves is known by its id only.
      const move = async () => {
        const alone = await gina.getRepository(Book).findOneByOrFail({ id: book.id });
        alone.shelf = to;
        return gina.getRepository(Book).save(alone);
      };
      const refused = await failure(ginaLocks.runHolding(busan, move));
      expect(refused).toBeInstanceOf(OfflineLockRequiredError);
      expect(refused).toMatchObject({ lockType: "ShelfCity", lockId: "Seoul" });
      await ginaLocks.runHolding(busan, () => ginaLocks.runHolding(seoul, move));
      expect(
        await gina.getRepository(Book).findOneOrFail({ where: { id: book.id }, relations: { shelf: true } }),
      ).toMatchObject({
        shelf: { id: to.id },
      });
      await ginaLocks.releaseLock(seoul);
      await ginaLocks.releaseLock(busan);
    } finally {
      await closeAll(gina);
    }
  });

  describe("runHolding() takes the handle object or its string, and refuses anything else", () => {
    it("the handle string (as kept in a session) lets a protected save through", async () => {
      const id = await seed();
      const lock = await aliceLocks.tryLock("AggOrder", id, { owner: "alice", ttlMs: 60_000 });
      const order = await load(alice, id);
      order.status = "PAID";
      const session: { orderLock: string } = { orderLock: lock.handle };
      await aliceLocks.runHolding(session.orderLock, () => saveOrder(alice, order));
      expect((await load(alice, id)).status).toBe("PAID");

      // A string that holds nothing (released, or never a handle) does not.
      await aliceLocks.releaseLock(session.orderLock);
      order.status = "SHIPPED";
      await expect(aliceLocks.runHolding(session.orderLock, () => saveOrder(alice, order))).rejects.toThrow(
        /no handle string it runs with holds it/,
      );
      await expect(aliceLocks.runHolding("0".repeat(32), () => saveOrder(alice, order))).rejects.toThrow(
        OfflineLockRequiredError,
      );
    });

    it("a handle that is not one is a LockingConfigurationError, thrown before the work runs", () => {
      let ran = false;
      const work = () => {
        ran = true;
      };
      // @ts-expect-error a number is not a handle
      expect(() => aliceLocks.runHolding(42, work)).toThrow(LockingConfigurationError);
      // @ts-expect-error undefined is not a handle
      expect(() => aliceLocks.runHolding(undefined, work)).toThrow(/runHolding\(\): pass the handle/);
      expect(() => aliceLocks.runHolding("", work)).toThrow(LockingConfigurationError);
      // @ts-expect-error an object without a handle string is not a handle
      expect(() => aliceLocks.runHolding({ lockType: "AggOrder" }, work)).toThrow(LockingConfigurationError);
      // @ts-expect-error the work must be a function
      expect(() => aliceLocks.runHolding("abc", "not a function")).toThrow(/as a function/);
      expect(ran).toBe(false);
    });
  });

  // Last: drops the lock table.
  it("a missing lock table is a LockingConfigurationError saying how to create it, for every call and for protected saves", async () => {
    const id = await seed();
    const order = await load(alice, id);
    const lock = await aliceLocks.tryLock("AggOrder", id, { owner: "alice", ttlMs: 60_000 });
    const runner = alice.createQueryRunner();
    try {
      await runner.dropTable(OFFLINE_LOCK_TABLE);
    } finally {
      await runner.release();
    }
    const missing = /typeorm_locking_offline_lock does not exist.*OfflineLockTableMigration.*synchronize/;
    for (const call of [
      () => aliceLocks.tryLock("AggOrder", id, { owner: "alice", ttlMs: 1000 }),
      () => aliceLocks.checkLock(lock),
      () => aliceLocks.extendLock(lock, 1000),
      () => aliceLocks.releaseLock(lock),
      () => {
        order.status = "PAID";
        return aliceLocks.runHolding(lock, () => saveOrder(alice, order));
      },
    ]) {
      const error = await failure(call());
      expect(error).toBeInstanceOf(LockingConfigurationError);
      expect((error as Error).message).toMatch(missing);
      expect((error as Error & { cause?: unknown }).cause).toBeDefined();
    }
    expect((await load(alice, id)).status).toBe("NEW");
    await alice.synchronize();
  });
});
