/**
 * A member moved from one aggregate to another changes both: the root it leaves and the root it
 * joins. Two clients on two connections: user 1 moves a member (through its own repository, by
 * cascade, a grandchild, a one-to-one member, to and from no root); user 2, holding the order
 * the member left at the version from before the move, then saves a change to that member through
 * the order. Without the old root's bump user 2's save puts the member back and user 1's move is
 * lost silently; with it, user 2's save fails with OptimisticLockError and writes nothing.
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
  VersionColumn,
} from "typeorm";
import {
  installLocking,
  LockMode,
  lock,
  lockInOrder,
  OptimisticLockError,
  Versioned,
  VersionedBy,
  withLockMode,
} from "../src";
import { AGGREGATE_ENTITIES, AggLabel, AggLine, AggNote, AggOrder, AggTag } from "./fixtures/aggregate-entities";
import { closeAll, describeEachDatabase, openAlongside, openDataSources, StatementCounter } from "./support/databases";
import { deferred, pauseAfterNextQuery, waitUntilBlocked } from "./support/interleaving";

describeEachDatabase((db) => {
  let user1: DataSource;
  let user2: DataSource;
  let plain: DataSource;
  const counter = new StatementCounter();
  const plainCounter = new StatementCounter();

  beforeAll(async () => {
    [user1] = await openDataSources(db, [...AGGREGATE_ENTITIES, KeyedOrder, KeyedLine, Board, Card, Sticker], {
      extra: { logger: counter, logging: true },
    });
    user2 = await openAlongside(user1, { logger: undefined, logging: false });
    plain = await openAlongside(user1, {
      entities: [PlainMoveOrder, PlainMoveLine],
      logger: plainCounter,
      logging: true,
    });
    installLocking(user1);
    installLocking(user2);
  });
  afterAll(() => closeAll(user1, user2, plain));

  /** Order A (apple, pear; apple has a note; a label) and order B (kiwi, with a note), both at version 1. */
  async function seed(): Promise<{ a: number; b: number }> {
    const orders = user1.getRepository(AggOrder);
    const order = (status: string, lines: Array<{ product: string; notes: string[] }>, label?: string) =>
      orders.save({
        status,
        address: { street: "Old Street 1", city: "Seoul" },
        lines: lines.map(({ product, notes }) => ({ product, quantity: 1, notes: notes.map((text) => ({ text })) })),
        label: label ? { text: label } : undefined,
      } as unknown as AggOrder);
    const a = await order(
      "A",
      [
        { product: "apple", notes: ["ripe"] },
        { product: "pear", notes: [] },
      ],
      "fragile",
    );
    const b = await order("B", [{ product: "kiwi", notes: ["green"] }]);
    return { a: a.id, b: b.id };
  }

  const load = (source: DataSource, id: number) =>
    source.getRepository(AggOrder).findOneOrFail({
      where: { id },
      relations: { lines: { notes: true }, label: true },
      order: { lines: { id: "ASC" } },
    });
  const lineOf = (order: AggOrder, product: string) => order.lines!.find((l) => l.product === product);
  const lineId = async (order: number, product: string) => lineOf(await load(user1, order), product)!.id;
  const failure = (work: Promise<unknown>) =>
    work.then(
      () => undefined,
      (error: unknown) => error,
    );
  /** Where each line is, with its quantity, and the versions of both orders. */
  async function state(ids: { a: number; b: number }) {
    const [a, b] = [await load(user1, ids.a), await load(user1, ids.b)];
    const lines = (o: AggOrder) => o.lines!.map((l) => `${l.product}:${l.quantity}`).sort();
    return { a: { version: a.version, lines: lines(a) }, b: { version: b.version, lines: lines(b) } };
  }

  /**
   * User 2 holds A from before the move and changes the apple line's quantity (or `edit`) in it:
   * the save must fail and leave everything as user 1 left it.
   */
  async function user2SavesStaleA(
    ids: { a: number; b: number },
    staleA: AggOrder,
    edit: (a: AggOrder) => void = (a) => {
      lineOf(a, "apple")!.quantity = 9;
    },
  ) {
    const before = await state(ids);
    edit(staleA);
    expect(await failure(user2.getRepository(AggOrder).save(staleA))).toBeInstanceOf(OptimisticLockError);
    expect(await state(ids)).toEqual(before);
  }

  describe("a line moved through its own repository", () => {
    it("(loaded with its order) moves both orders once, and user 2's stale order A then fails", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const apple = await user1
        .getRepository(AggLine)
        .findOneOrFail({ where: { id: await lineId(ids.a, "apple") }, relations: { order: true } });
      apple.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      await user1.getRepository(AggLine).save(apple);
      expect(await state(ids)).toEqual({
        a: { version: 2, lines: ["pear:1"] },
        b: { version: 2, lines: ["apple:1", "kiwi:1"] },
      });
      await user2SavesStaleA(ids, staleA);
    });

    it("(loaded without its order: no copy of A held) moves A unchecked, so every holder of A conflicts", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const apple = await user1.getRepository(AggLine).findOneByOrFail({ id: await lineId(ids.a, "apple") });
      apple.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      await user1.getRepository(AggLine).save(apple);
      expect((await state(ids)).a.version).toBe(2);
      await user2SavesStaleA(ids, staleA);
    });

    it("(no copy of A held) in the transaction that read A under OPTIMISTIC: A's move is its own, the commit succeeds", async () => {
      const ids = await seed();
      await user1.transaction(async (m) => {
        await m.findOneOrFail(AggOrder, { where: { id: ids.a }, ...withLockMode(LockMode.OPTIMISTIC) });
        const apple = await m.findOneByOrFail(AggLine, { id: await lineId(ids.a, "apple") });
        apple.order = await m.findOneByOrFail(AggOrder, { id: ids.b });
        await m.save(apple);
      });
      expect(await state(ids)).toEqual({
        a: { version: 2, lines: ["pear:1"] },
        b: { version: 2, lines: ["apple:1", "kiwi:1"] },
      });
    });

    if (db.family !== "sqlite") {
      it("(no copy of A held) after another transaction changed the A read under OPTIMISTIC: the move fails, nothing is written", async () => {
        const ids = await seed();
        const error = await failure(
          user1.transaction(async (m) => {
            await m.findOneOrFail(AggOrder, { where: { id: ids.a }, ...withLockMode(LockMode.OPTIMISTIC) });
            const a = await user2.getRepository(AggOrder).findOneByOrFail({ id: ids.a });
            a.status = "A2";
            await user2.getRepository(AggOrder).save(a);
            const apple = await m.findOneByOrFail(AggLine, { id: await lineId(ids.a, "apple") });
            apple.order = await m.findOneByOrFail(AggOrder, { id: ids.b });
            await m.save(apple);
          }),
        );
        expect(error).toBeInstanceOf(OptimisticLockError);
        expect(error).toMatchObject({ entityName: "AggOrder", operation: "aggregate change" });
        expect(await state(ids)).toEqual({
          a: { version: 2, lines: ["apple:1", "pear:1"] },
          b: { version: 1, lines: ["kiwi:1"] },
        });
      });
    }

    it("is guarded by the order it was loaded with: a change of A since then fails the move, which writes nothing", async () => {
      const ids = await seed();
      const apple = await user1
        .getRepository(AggLine)
        .findOneOrFail({ where: { id: await lineId(ids.a, "apple") }, relations: { order: true } });
      const a = await load(user2, ids.a);
      a.status = "PAID";
      await user2.getRepository(AggOrder).save(a);
      const before = await state(ids);
      apple.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      expect(await failure(user1.getRepository(AggLine).save(apple))).toBeInstanceOf(OptimisticLockError);
      expect(await state(ids)).toEqual(before);
    });

    it("no move: a line re-saved with a fresher copy of its own order is guarded by that copy, not by the stale one it was loaded with", async () => {
      const ids = await seed();
      const apple = await user1
        .getRepository(AggLine)
        .findOneOrFail({ where: { id: await lineId(ids.a, "apple") }, relations: { order: true } });
      const a = await load(user2, ids.a);
      a.status = "PAID";
      await user2.getRepository(AggOrder).save(a);
      apple.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.a });
      apple.quantity = 5;
      await user1.getRepository(AggLine).save(apple);
      expect(await state(ids)).toEqual({
        a: { version: 3, lines: ["apple:5", "pear:1"] },
        b: { version: 1, lines: ["kiwi:1"] },
      });
    });

    it("(loaded with its order's version but not its id) moves the A its row names, unchecked", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const apple = await user1.getRepository(AggLine).findOneOrFail({
        where: { id: await lineId(ids.a, "apple") },
        relations: { order: true },
        select: { id: true, product: true, quantity: true, order: { status: true, version: true } },
      });
      expect(apple.order).toEqual({ status: "A", version: 1 });
      apple.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      await user1.getRepository(AggLine).save(apple);
      expect(await state(ids)).toEqual({
        a: { version: 2, lines: ["pear:1"] },
        b: { version: 2, lines: ["apple:1", "kiwi:1"] },
      });
      await user2SavesStaleA(ids, staleA);
    });

    it("(loaded with its order but not the order's version) moves A unchecked, as if no copy of A were held", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const apple = await user1.getRepository(AggLine).findOneOrFail({
        where: { id: await lineId(ids.a, "apple") },
        relations: { order: true },
        select: { id: true, product: true, quantity: true, order: { id: true, status: true } },
      });
      expect(apple.order.version).toBeUndefined();
      apple.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      await user1.getRepository(AggLine).save(apple);
      expect(await state(ids)).toEqual({
        a: { version: 2, lines: ["pear:1"] },
        b: { version: 2, lines: ["apple:1", "kiwi:1"] },
      });
      await user2SavesStaleA(ids, staleA);
    });

    it("a move refused for a stale A is refused again when retried with the same object", async () => {
      const ids = await seed();
      const apple = await user1
        .getRepository(AggLine)
        .findOneOrFail({ where: { id: await lineId(ids.a, "apple") }, relations: { order: true } });
      const a = await load(user2, ids.a);
      a.status = "PAID";
      await user2.getRepository(AggOrder).save(a);
      const before = await state(ids);
      apple.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      expect(await failure(user1.getRepository(AggLine).save(apple))).toBeInstanceOf(OptimisticLockError);
      expect(await failure(user1.getRepository(AggLine).save(apple))).toBeInstanceOf(OptimisticLockError);
      expect(await state(ids)).toEqual(before);
    });

    it("a move refused at the order it joins leaves the held copy of the order it leaves at its version", async () => {
      // Both directions: the bumps run in a fixed order, so in one of them the refused bump is
      // the second, after the first one's UPDATE (rolled back with the flush).
      for (const [from, to, product] of [
        ["a", "b", "apple"],
        ["b", "a", "kiwi"],
      ] as const) {
        const ids = await seed();
        const [held, target] = [await load(user1, ids[from]), await load(user1, ids[to])];
        const other = await load(user2, ids[to]);
        other.status = "PAID";
        await user2.getRepository(AggOrder).save(other);
        const line = lineOf(held, product)!;
        line.order = target;
        expect(await failure(user1.getRepository(AggLine).save(line))).toBeInstanceOf(OptimisticLockError);
        expect(held.version).toBe(1);
        delete (line as Partial<AggLine>).order;
        held.status = "CHECKED";
        await user1.getRepository(AggOrder).save(held);
        expect((await load(user1, ids[from])).version).toBe(2);
      }
    });

    it("two users moving the same line away from A: the second fails (both held A at version 1)", async () => {
      const ids = await seed();
      const c = (await user1.getRepository(AggOrder).save({
        status: "C",
        address: { street: "s", city: "c" },
        lines: [],
      } as unknown as AggOrder)) as AggOrder;
      const id = await lineId(ids.a, "apple");
      const first = await user1.getRepository(AggLine).findOneOrFail({ where: { id }, relations: { order: true } });
      const second = await user2.getRepository(AggLine).findOneOrFail({ where: { id }, relations: { order: true } });
      first.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      await user1.getRepository(AggLine).save(first);
      second.order = await user2.getRepository(AggOrder).findOneByOrFail({ id: c.id });
      expect(await failure(user2.getRepository(AggLine).save(second))).toBeInstanceOf(OptimisticLockError);
      expect(lineOf(await load(user1, ids.b), "apple")).toBeDefined();
      expect((await load(user1, c.id)).version).toBe(1);
    });

    it("the same object moved twice (A to B, then B back to A) moves the order it leaves each time", async () => {
      const ids = await seed();
      const apple = await user1
        .getRepository(AggLine)
        .findOneOrFail({ where: { id: await lineId(ids.a, "apple") }, relations: { order: true } });
      const a = apple.order;
      apple.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      await user1.getRepository(AggLine).save(apple);
      const staleB = await load(user2, ids.b);
      apple.order = a;
      await user1.getRepository(AggLine).save(apple);
      expect(await state(ids)).toEqual({
        a: { version: 3, lines: ["apple:1", "pear:1"] },
        b: { version: 3, lines: ["kiwi:1"] },
      });
      const before = await state(ids);
      staleB.status = "PAID";
      expect(await failure(user2.getRepository(AggOrder).save(staleB))).toBeInstanceOf(OptimisticLockError);
      expect(await state(ids)).toEqual(before);
    });
  });

  if (db.family !== "sqlite") {
    it("two moves in opposite directions at once (A to B, B to A) take the orders in one order: one wins, the other conflicts, no deadlock", async () => {
      const ids = await seed();
      const withOrder = (source: DataSource, id: number) =>
        source.getRepository(AggLine).findOneOrFail({ where: { id }, relations: { order: true } });
      const apple = await withOrder(user1, await lineId(ids.a, "apple"));
      apple.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      const kiwi = await withOrder(user2, await lineId(ids.b, "kiwi"));
      kiwi.order = await user2.getRepository(AggOrder).findOneByOrFail({ id: ids.a });
      // Each move stops just after the first order it bumps (its row lock held) until both have
      // got that far or the second waits for the first's order. Taken in opposite orders, each
      // would then hold the order the other asks for next.
      const orderUpdate = /^UPDATE\s+["`]?tl_agg_order["`]?/i;
      const resume = deferred();
      const pauses = [user1, user2].map((source) => pauseAfterNextQuery(source, orderUpdate, resume.promise));
      try {
        const moves = [user1.getRepository(AggLine).save(apple)];
        await pauses[0].paused;
        moves.push(user2.getRepository(AggLine).save(kiwi));
        await waitUntilBlocked(db, plain, { orUntil: pauses[1].paused });
        resume.resolve();
        const errors = (await Promise.allSettled(moves)).flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
        expect(errors.map((e) => e?.constructor?.name)).toEqual(["OptimisticLockError"]);
      } finally {
        resume.resolve();
        for (const pause of pauses) pause.dispose();
      }
      const after = await state(ids);
      expect([after.a.version, after.b.version]).toEqual([2, 2]);
      // Either move, whole: the other wrote nothing.
      expect([
        { a: ["pear:1"], b: ["apple:1", "kiwi:1"] },
        { a: ["apple:1", "kiwi:1", "pear:1"], b: [] },
      ]).toContainEqual({ a: after.a.lines, b: after.b.lines });
    });
  }

  describe("orders 9 and 10 (ids that sort one way as text, the other as numbers)", () => {
    const keyedOrderUpdate = /^UPDATE\s+["`]?tl_agg_keyed_order["`]?/i;
    const keyedOrderLock = /tl_agg_keyed_order[\s\S]*FOR UPDATE/i;

    /** Orders 9 and 10 at version 1, a line in each; the ids of the lines. */
    async function seedKeyed(): Promise<{ in9: number; in10: number }> {
      await user1.getRepository(KeyedLine).createQueryBuilder().delete().execute();
      await user1.getRepository(KeyedOrder).createQueryBuilder().delete().execute();
      const orders = user1.getRepository(KeyedOrder);
      for (const id of [9, 10]) await orders.save({ id, status: "new", lines: [{ product: `p${id}` }] });
      const lines = await user1.getRepository(KeyedLine).find({ relations: { order: true } });
      const [in9, in10] = [9, 10].map((id) => lines.find((line) => line.order.id === id)!.id);
      return { in9, in10 };
    }
    const lineWithOrder = (source: DataSource, id: number) =>
      source.getRepository(KeyedLine).findOneOrFail({ where: { id }, relations: { order: true } });
    /** The order a statement names (SQLite writes integers into it; the others pass parameters). */
    const orderIdIn = ({ query, parameters = [] }: { query: string; parameters?: unknown[] }) => {
      let next = 0;
      const filled = query.replace(/\$(\d+)|\?/g, (_, n) => String(parameters[n ? Number(n) - 1 : next++]));
      const id = /["`]id["`]\s*(?:=|IN\s*\()\s*(\d+)/i.exec(filled);
      return id ? Number(id[1]) : undefined;
    };
    const keyedVersions = async () =>
      (await user1.getRepository(KeyedOrder).find({ order: { id: "ASC" } })).map((o) => [o.id, o.version]);

    it("a move bumps order 9 before order 10, in both directions (lockInOrder's order)", async () => {
      const lines = await seedKeyed();
      for (const [line, to] of [
        [lines.in9, 10],
        [lines.in10, 9],
      ] as const) {
        const moving = await lineWithOrder(user1, line);
        moving.order = await user1.getRepository(KeyedOrder).findOneByOrFail({ id: to });
        counter.reset();
        await user1.getRepository(KeyedLine).save(moving);
        expect(counter.queries.filter((q) => keyedOrderUpdate.test(q.query)).map(orderIdIn)).toEqual([9, 10]);
        counter.reset();
        await user1.transaction((manager) =>
          lockInOrder(
            manager,
            [
              { entity: KeyedOrder, id: 10 },
              { entity: KeyedOrder, id: { id: 9 } },
            ],
            LockMode.PESSIMISTIC_WRITE,
          ),
        );
        const locked = counter.queries.filter((q) => /tl_agg_keyed_order/.test(q.query)).map(orderIdIn);
        expect(locked.filter((id) => id !== undefined)).toEqual([9, 10]);
      }
      expect(await keyedVersions()).toEqual([
        [9, 3],
        [10, 3],
      ]);
    });

    if (db.family !== "sqlite") {
      for (const t1Changes of [false, true]) {
        it(`lockInOrder([9, 10]) holding 9 while a save moves a line from 10 to 9: the save waits for it, no deadlock${
          t1Changes ? " (T1 changed order 10: the save conflicts)" : ""
        }`, async () => {
          const lines = await seedKeyed();
          const moving = await lineWithOrder(user2, lines.in10);
          moving.order = await user2.getRepository(KeyedOrder).findOneByOrFail({ id: 9 });
          const resume = deferred();
          const pause = pauseAfterNextQuery(user1, keyedOrderLock, resume.promise);
          try {
            const t1 = user1.transaction(async (manager) => {
              const [ten, nine] = (await lockInOrder(
                manager,
                [
                  { entity: KeyedOrder, id: 10 },
                  { entity: KeyedOrder, id: 9 },
                ],
                LockMode.PESSIMISTIC_WRITE,
                { timeout: 10_000 },
              )) as KeyedOrder[];
              expect([ten.id, nine.id]).toEqual([10, 9]);
              if (t1Changes) {
                ten.status = "paid";
                await manager.save(ten);
              }
            });
            await pause.paused;
            const t2 = user2.getRepository(KeyedLine).save(moving);
            // T2 bumps order 9 first: it waits for T1 before it holds anything T1 asks for next.
            await waitUntilBlocked(db, plain, { orUntil: t2 });
            resume.resolve();
            const [one, two] = await Promise.allSettled([t1, t2]);
            expect(one).toEqual({ status: "fulfilled", value: undefined });
            if (t1Changes) {
              expect(two.status === "rejected" && two.reason).toBeInstanceOf(OptimisticLockError);
              expect(await keyedVersions()).toEqual([
                [9, 1],
                [10, 2],
              ]);
            } else {
              expect(two.status).toBe("fulfilled");
              expect(await keyedVersions()).toEqual([
                [9, 2],
                [10, 2],
              ]);
            }
          } finally {
            resume.resolve();
            pause.dispose();
          }
        });
      }
    }
  });

  describe("a line moved by cascade", () => {
    it("from A's collection to B's, B saved alone: A moves too (guarded by the A it was loaded in)", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const [a, b] = [await load(user1, ids.a), await load(user1, ids.b)];
      b.lines!.push(lineOf(a, "apple")!);
      await user1.getRepository(AggOrder).save(b);
      expect(await state(ids)).toEqual({
        a: { version: 2, lines: ["pear:1"] },
        b: { version: 2, lines: ["apple:1", "kiwi:1"] },
      });
      await user2SavesStaleA(ids, staleA);
    });

    it("B saved alone with a line given by id only (no copy of A held): A moves unchecked", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const b = await load(user1, ids.b);
      b.lines!.push({ id: await lineId(ids.a, "apple"), product: "apple", quantity: 1 } as AggLine);
      await user1.getRepository(AggOrder).save(b);
      expect((await state(ids)).a.version).toBe(2);
      await user2SavesStaleA(ids, staleA);
    });

    it("a stale A held for the line fails B's cascade, which writes nothing", async () => {
      const ids = await seed();
      const [a, b] = [await load(user1, ids.a), await load(user1, ids.b)];
      const other = await load(user2, ids.a);
      other.status = "PAID";
      await user2.getRepository(AggOrder).save(other);
      const before = await state(ids);
      b.lines!.push(lineOf(a, "apple")!);
      expect(await failure(user1.getRepository(AggOrder).save(b))).toBeInstanceOf(OptimisticLockError);
      expect(await state(ids)).toEqual(before);
    });

    it("both orders saved in one flush: each moves once (TypeORM then deletes the line as A's orphan)", async () => {
      const ids = await seed();
      const staleB = await load(user2, ids.b);
      const [a, b] = [await load(user1, ids.a), await load(user1, ids.b)];
      const apple = lineOf(a, "apple")!;
      a.lines = a.lines!.filter((l) => l !== apple);
      b.lines!.push(apple);
      await user1.manager.save([a, b]);
      const after = await state(ids);
      expect([after.a.version, after.b.version]).toEqual([2, 2]);
      const before = after;
      staleB.status = "PAID";
      expect(await failure(user2.getRepository(AggOrder).save(staleB))).toBeInstanceOf(OptimisticLockError);
      expect(await state(ids)).toEqual(before);
    });
  });

  describe("a grandchild (a note) moved between lines of different orders", () => {
    const noteText = async (ids: { a: number; b: number }) => {
      const [a, b] = [await load(user1, ids.a), await load(user1, ids.b)];
      return {
        apple: lineOf(a, "apple")!
          .notes!.map((n) => n.text)
          .sort(),
        kiwi: lineOf(b, "kiwi")!
          .notes!.map((n) => n.text)
          .sort(),
      };
    };
    const editNote = (a: AggOrder) => {
      lineOf(a, "apple")!.notes![0].text = "bruised";
    };

    it("through its own repository, loaded with its line and order", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const note = await user1.getRepository(AggNote).findOneOrFail({
        where: { text: "ripe", line: { order: { id: ids.a } } },
        relations: { line: { order: true } },
      });
      note.line = await user1
        .getRepository(AggLine)
        .findOneOrFail({ where: { id: await lineId(ids.b, "kiwi") }, relations: { order: true } });
      await user1.getRepository(AggNote).save(note);
      expect([(await state(ids)).a.version, (await state(ids)).b.version]).toEqual([2, 2]);
      expect(await noteText(ids)).toEqual({ apple: [], kiwi: ["green", "ripe"] });
      await user2SavesStaleA(ids, staleA, editNote);
      expect((await noteText(ids)).kiwi).toEqual(["green", "ripe"]);
    });

    it("through its own repository, loaded without its line's order (A found by one SELECT)", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const note = await user1.getRepository(AggNote).findOneOrFail({
        where: { text: "ripe", line: { order: { id: ids.a } } },
      });
      note.line = await user1
        .getRepository(AggLine)
        .findOneOrFail({ where: { id: await lineId(ids.b, "kiwi") }, relations: { order: true } });
      await user1.getRepository(AggNote).save(note);
      expect((await state(ids)).a.version).toBe(2);
      await user2SavesStaleA(ids, staleA, editNote);
    });

    it("by cascade, from a line of A to a line of B, B saved alone", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const [a, b] = [await load(user1, ids.a), await load(user1, ids.b)];
      lineOf(b, "kiwi")!.notes!.push(lineOf(a, "apple")!.notes![0]);
      await user1.getRepository(AggOrder).save(b);
      expect([(await state(ids)).a.version, (await state(ids)).b.version]).toEqual([2, 2]);
      await user2SavesStaleA(ids, staleA, editNote);
    });

    it("between two lines of the same order: the order moves once, by one UPDATE", async () => {
      const ids = await seed();
      const note = await user1.getRepository(AggNote).findOneOrFail({
        where: { text: "ripe", line: { order: { id: ids.a } } },
        relations: { line: { order: true } },
      });
      note.line = await user1
        .getRepository(AggLine)
        .findOneOrFail({ where: { id: await lineId(ids.a, "pear") }, relations: { order: true } });
      counter.reset();
      await user1.getRepository(AggNote).save(note);
      const writes = counter.statements.filter((s) => /^UPDATE\s+["`]?tl_agg_order["`]?/i.test(s));
      expect(writes).toHaveLength(1);
      expect(await state(ids)).toMatchObject({ a: { version: 2 }, b: { version: 1 } });
      expect(lineOf(await load(user1, ids.a), "pear")!.notes!.map((n) => n.text)).toEqual(["ripe"]);
    });
  });

  describe("a one-to-one member re-pointed", () => {
    it("a label moved from A to B through its repository: user 2's stale A fails", async () => {
      const ids = await seed();
      const labels = user1.getRepository(AggLabel);
      const staleA = await load(user2, ids.a);
      const label = await labels.findOneOrFail({ where: { order: { id: ids.a } }, relations: { order: true } });
      label.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      await labels.save(label);
      expect([(await state(ids)).a.version, (await state(ids)).b.version]).toEqual([2, 2]);
      const before = await state(ids);
      staleA.label!.text = "handle with care";
      expect(await failure(user2.getRepository(AggOrder).save(staleA))).toBeInstanceOf(OptimisticLockError);
      expect(await state(ids)).toEqual(before);
      expect((await load(user1, ids.b)).label?.text).toBe("fragile");
    });

    it("a label loaded through its order (order.label) and moved to B is guarded by that order: a change of A since fails the move", async () => {
      const ids = await seed();
      const a = await load(user1, ids.a);
      const other = await load(user2, ids.a);
      other.status = "PAID";
      await user2.getRepository(AggOrder).save(other);
      const before = await state(ids);
      const label = a.label!;
      label.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      expect(await failure(user1.getRepository(AggLabel).save(label))).toBeInstanceOf(OptimisticLockError);
      expect(await state(ids)).toEqual(before);
      expect((await load(user1, ids.a)).label?.text).toBe("fragile");
    });
  });

  describe("a member detached (nullable foreign key) or attached", () => {
    it("a line detached from A (order = null) moves A, guarded by the A it was loaded with", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const apple = await user1
        .getRepository(AggLine)
        .findOneOrFail({ where: { id: await lineId(ids.a, "apple") }, relations: { order: true } });
      apple.order = null as unknown as AggOrder;
      await user1.getRepository(AggLine).save(apple);
      expect(await state(ids)).toEqual({
        a: { version: 2, lines: ["pear:1"] },
        b: { version: 1, lines: ["kiwi:1"] },
      });
      await user2SavesStaleA(ids, staleA);
    });

    it("a line detached without its order loaded moves A unchecked", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const apple = await user1.getRepository(AggLine).findOneByOrFail({ id: await lineId(ids.a, "apple") });
      apple.order = null as unknown as AggOrder;
      await user1.getRepository(AggLine).save(apple);
      expect((await state(ids)).a.version).toBe(2);
      await user2SavesStaleA(ids, staleA);
    });

    it("the same object detached from A, then attached to B: the attach moves B only, A moved once (by the detach)", async () => {
      const ids = await seed();
      const apple = await user1
        .getRepository(AggLine)
        .findOneOrFail({ where: { id: await lineId(ids.a, "apple") }, relations: { order: true } });
      apple.order = null as unknown as AggOrder;
      await user1.getRepository(AggLine).save(apple);
      expect(await state(ids)).toMatchObject({ a: { version: 2 }, b: { version: 1 } });
      apple.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      await user1.getRepository(AggLine).save(apple);
      expect(await state(ids)).toEqual({
        a: { version: 2, lines: ["pear:1"] },
        b: { version: 2, lines: ["apple:1", "kiwi:1"] },
      });
    });

    it("a note dropped from its line, the line saved through its own repository (its order loaded): A moves, the note is deleted", async () => {
      const ids = await seed();
      const staleA = await load(user2, ids.a);
      const apple = await user1.getRepository(AggLine).findOneOrFail({
        where: { id: await lineId(ids.a, "apple") },
        relations: { order: true, notes: true },
      });
      expect(apple.notes).toHaveLength(1);
      apple.notes = [];
      await user1.getRepository(AggLine).save(apple);
      expect((await state(ids)).a.version).toBe(2);
      expect(lineOf(await load(user1, ids.a), "apple")!.notes).toEqual([]);
      await user2SavesStaleA(ids, staleA, (a) => {
        lineOf(a, "pear")!.quantity = 9;
      });
    });

    it("a detached line attached to B moves B only (there is no order it leaves)", async () => {
      const ids = await seed();
      const loose = await user1
        .getRepository(AggLine)
        .save({ product: "plum", quantity: 1, order: null as unknown as AggOrder } as AggLine);
      const staleB = await load(user2, ids.b);
      const plum = await user1.getRepository(AggLine).findOneOrFail({ where: { id: loose.id } });
      plum.order = await user1.getRepository(AggOrder).findOneByOrFail({ id: ids.b });
      await user1.getRepository(AggLine).save(plum);
      expect(await state(ids)).toMatchObject({ a: { version: 1 }, b: { version: 2 } });
      staleB.status = "PAID";
      expect(await failure(user2.getRepository(AggOrder).save(staleB))).toBeInstanceOf(OptimisticLockError);
    });
  });

  describe("a card on a board, pinned on another board (a second many-to-one to the root, not its link)", () => {
    /** Boards A (version 2: the card's insert moved it), B and P (version 1); a card on A pinned on P. */
    async function seedBoards() {
      const boards = user1.getRepository(Board);
      const [a, b, p] = [
        await boards.save({ name: "A" }),
        await boards.save({ name: "B" }),
        await boards.save({ name: "P" }),
      ];
      const card = await user1.getRepository(Card).save({ title: "todo", board: a, pinnedOn: p });
      return { a: a.id, b: b.id, p: p.id, card: card.id };
    }
    const versions = async (ids: { a: number; b: number; p: number }) => {
      const boards = user1.getRepository(Board);
      return Promise.all([ids.a, ids.b, ids.p].map(async (id) => (await boards.findOneByOrFail({ id })).version));
    };

    it("loaded in P's pinned cards, then moved from A to B: A (its board) moves, P does not", async () => {
      const ids = await seedBoards();
      const p = await user1.getRepository(Board).findOneOrFail({ where: { id: ids.p }, relations: { pinned: true } });
      const card = p.pinned![0];
      card.board = await user1.getRepository(Board).findOneByOrFail({ id: ids.b });
      await user1.getRepository(Card).save(card);
      expect(await versions(ids)).toEqual([3, 2, 1]);
    });

    it("re-pinned (no move) with a fresher copy of its board than it was loaded with: guarded by that copy", async () => {
      const ids = await seedBoards();
      const card = await user1
        .getRepository(Card)
        .findOneOrFail({ where: { id: ids.card }, relations: { board: true } });
      const a = await user2.getRepository(Board).findOneByOrFail({ id: ids.a });
      a.name = "A2";
      await user2.getRepository(Board).save(a);
      card.board = await user1.getRepository(Board).findOneByOrFail({ id: ids.a });
      card.pinnedOn = await user1.getRepository(Board).findOneByOrFail({ id: ids.b });
      await user1.getRepository(Card).save(card);
      expect(await versions(ids)).toEqual([4, 1, 1]);
      const saved = await user1
        .getRepository(Card)
        .findOneOrFail({ where: { id: ids.card }, relations: { pinnedOn: true } });
      expect(saved.pinnedOn?.id).toBe(ids.b);
    });
  });

  it("a sticker (two steps below its board) moved off a soft-deleted card, loaded without it: the board the card's row names moves, read without the card's eager relation", async () => {
    const boards = user1.getRepository(Board);
    const [a, b] = [await boards.save({ name: "A" }), await boards.save({ name: "B" })];
    const from = await user1.getRepository(Card).save({ title: "done", board: a, pinnedOn: null });
    const to = await user1.getRepository(Card).save({ title: "doing", board: b, pinnedOn: null });
    const { id } = await user1.getRepository(Sticker).save({ text: "urgent", card: from });
    await user1.getRepository(Card).softRemove(from);
    const versions = async () =>
      Promise.all([a.id, b.id].map(async (board) => (await boards.findOneByOrFail({ id: board })).version));
    const before = await versions();
    const sticker = await user1.getRepository(Sticker).findOneByOrFail({ id });
    sticker.card = await user1.getRepository(Card).findOneOrFail({ where: { id: to.id }, relations: { board: true } });
    counter.reset();
    await user1.getRepository(Sticker).save(sticker);
    expect(counter.statements.filter((sql) => /tl_agg_tag/.test(sql))).toEqual([]);
    expect(await versions()).toEqual([before[0] + 1, before[1] + 1]);
  });

  it("repository.update() of the foreign key moves no root; the documented recipe (force-increment both) does", async () => {
    const ids = await seed();
    const id = await lineId(ids.a, "apple");
    await user1.getRepository(AggLine).update(id, { order: { id: ids.b } });
    expect(await state(ids)).toMatchObject({ a: { version: 1 }, b: { version: 1 } });
    await user1.getRepository(AggLine).update(id, { order: { id: ids.a } });

    const staleA = await load(user2, ids.a);
    await user1.transaction(async (manager) => {
      const from = await manager.findOneByOrFail(AggOrder, { id: ids.a });
      const to = await manager.findOneByOrFail(AggOrder, { id: ids.b });
      await lock(manager, from, LockMode.PESSIMISTIC_FORCE_INCREMENT);
      await lock(manager, to, LockMode.PESSIMISTIC_FORCE_INCREMENT);
      await manager.update(AggLine, id, { order: { id: ids.b } });
    });
    expect(await state(ids)).toMatchObject({ a: { version: 2 }, b: { version: 2, lines: ["apple:1", "kiwi:1"] } });
    await user2SavesStaleA(ids, staleA);
  });

  it("statements: a move through the line's repository costs two UPDATEs of orders over plain TypeORM, nothing else", async () => {
    const ids = await seed();
    const id = await lineId(ids.a, "pear");
    const move = async (source: DataSource, c: StatementCounter) => {
      const [Order, Line] = source === plain ? [PlainMoveOrder, PlainMoveLine] : [AggOrder, AggLine];
      const line = (await source
        .getRepository(Line)
        .findOneOrFail({ where: { id }, relations: { order: true } })) as AggLine;
      line.order = (await source
        .getRepository(Order)
        .findOneByOrFail({ id: line.order.id === ids.a ? ids.b : ids.a })) as AggOrder;
      c.reset();
      await source.getRepository(Line).save(line);
      return c.statements.filter((s) => !/^(BEGIN|START|COMMIT|SAVEPOINT|RELEASE)/i.test(s));
    };
    const plainStatements = await move(plain, plainCounter);
    // Move it back with ours, from B to A.
    const ours = await move(user1, counter);
    expect(ours.length - plainStatements.length).toBe(2);
    expect(ours.filter((s) => /^UPDATE\s+["`]?tl_agg_order["`]?/i.test(s))).toHaveLength(2);
  });

  it("statements: a line moved in by its new order's cascade, given by id only, costs the two order UPDATEs and no SELECT for the order it leaves", async () => {
    // TypeORM's pre-load of the line reads its old foreign key too (the library asks it to): the
    // order the line leaves is known without a query of its own.
    const ids = await seed();
    const apple = await lineId(ids.a, "apple");
    const move = async (source: DataSource, c: StatementCounter, to: number) => {
      const Order = source === plain ? PlainMoveOrder : AggOrder;
      const order = (await source
        .getRepository(Order)
        .findOneOrFail({ where: { id: to }, relations: { lines: true } })) as AggOrder;
      order.lines!.push({ id: apple, product: "apple", quantity: 1 } as AggLine);
      c.reset();
      await source.getRepository(Order).save(order);
      return c.statements.filter((s) => !/^(BEGIN|START|COMMIT|SAVEPOINT|RELEASE)/i.test(s));
    };
    const plainStatements = await move(plain, plainCounter, ids.b);
    // Move it back with ours, from B to A.
    const ours = await move(user1, counter, ids.a);
    expect(ours.filter((s) => /^UPDATE\s+["`]?tl_agg_order["`]?/i.test(s))).toHaveLength(2);
    expect(ours.length - plainStatements.length).toBe(2);
    expect(await state(ids)).toMatchObject({ a: { version: 2, lines: ["apple:1", "pear:1"] }, b: { version: 2 } });
  });
});

/** tl_agg_order and tl_agg_line as plain TypeORM maps them, for statement counts. */
@Entity({ name: "tl_agg_order" })
class PlainMoveOrder {
  @PrimaryGeneratedColumn() id!: number;
  @Column() status!: string;
  @VersionColumn() version!: number;
  @OneToMany(
    () => PlainMoveLine,
    (line) => line.order,
    { cascade: true },
  )
  lines?: PlainMoveLine[];
}

@Entity({ name: "tl_agg_line" })
class PlainMoveLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() product!: string;
  @Column() quantity!: number;
  @ManyToOne(
    () => PlainMoveOrder,
    (order) => order.lines,
  )
  order!: PlainMoveOrder;
}

/** A root keyed by hand (9 and 10 sort one way as text, the other as numbers) and its member. */
@Entity({ name: "tl_agg_keyed_order" })
class KeyedOrder {
  @PrimaryColumn() id!: number;
  @Column() status!: string;
  @Versioned() version!: number;
  @OneToMany(
    () => KeyedLine,
    (line) => line.order,
    { cascade: true },
  )
  lines?: KeyedLine[];
}

@Entity({ name: "tl_agg_keyed_line" })
@VersionedBy(
  () => KeyedOrder,
  (line: KeyedLine) => line.order,
)
class KeyedLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() product!: string;
  @ManyToOne(
    () => KeyedOrder,
    (order) => order.lines,
  )
  order!: KeyedOrder;
}

/** A root with two collections of one member type: its cards (their link) and the cards pinned on it. */
@Entity({ name: "tl_move_board" })
class Board {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @Versioned() version!: number;
  @OneToMany(
    () => Card,
    (card) => card.board,
  )
  cards?: Card[];
  @OneToMany(
    () => Card,
    (card) => card.pinnedOn,
  )
  pinned?: Card[];
}

@Entity({ name: "tl_move_card" })
@VersionedBy(
  () => Board,
  (card: Card) => card.board,
)
class Card {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @ManyToOne(
    () => Board,
    (board) => board.cards,
    { nullable: true },
  )
  board!: Board | null;
  /** Eager: loaded with every card (but not when the library reads a card's row for its board). */
  @ManyToOne(() => AggTag, { eager: true, nullable: true }) tag?: AggTag | null;
  @DeleteDateColumn() removedAt?: Date | null;
  /** Not its link: pinning a card on a board does not make it part of that board's aggregate. */
  @ManyToOne(
    () => Board,
    (board) => board.pinned,
    { nullable: true },
  )
  pinnedOn!: Board | null;
}

/** A member two steps below its board (sticker -> card -> board). */
@Entity({ name: "tl_move_sticker" })
@VersionedBy(
  () => Card,
  (sticker: Sticker) => sticker.card,
)
class Sticker {
  @PrimaryGeneratedColumn() id!: number;
  @Column() text!: string;
  @ManyToOne(() => Card, { nullable: true }) card!: Card | null;
}
