/**
 * A many-to-many link of an aggregate root changed from the other side, on every database: a tag
 * saved with `tag.orders` changed adds or removes a row of the same junction table as
 * `order.tags` changed, so it changes the order's aggregate as much, and a holder of the order at
 * the old version must conflict, whichever entity owns the join table.
 */
import {
  Column,
  type DataSource,
  Entity,
  JoinTable,
  ManyToMany,
  ManyToOne,
  OneToMany,
  PrimaryGeneratedColumn,
} from "typeorm";
import { installLocking, OptimisticLockError, Versioned, VersionedBy } from "../src";
import { closeAll, describeEachDatabase, openAlongside, openDataSources, StatementCounter } from "./support/databases";

@Entity({ name: "tl_link_order" })
class LinkOrder {
  @PrimaryGeneratedColumn() id!: number;
  @Column() status!: string;
  @Versioned() version!: number;
  /** The order owns this join table. */
  @ManyToMany(
    () => LinkTag,
    (tag) => tag.orders,
  )
  @JoinTable({ name: "tl_link_order_tag" })
  tags?: LinkTag[];
  /** The crate owns this join table: the order is its inverse side. */
  @ManyToMany(
    () => LinkCrate,
    (crate) => crate.orders,
  )
  crates?: LinkCrate[];
  @OneToMany(
    () => LinkLine,
    (line) => line.order,
    { cascade: true },
  )
  lines?: LinkLine[];
}

@Entity({ name: "tl_link_line" })
@VersionedBy(
  () => LinkOrder,
  (line: LinkLine) => line.order,
)
class LinkLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() product!: string;
  @ManyToOne(
    () => LinkOrder,
    (order) => order.lines,
    { onDelete: "CASCADE" },
  )
  order!: LinkOrder;
  /** A member's own many-to-many: its links are part of the order's aggregate too. */
  @ManyToMany(
    () => LinkTag,
    (tag) => tag.lines,
  )
  @JoinTable({ name: "tl_link_line_tag" })
  tags?: LinkTag[];
}

/** Outside the aggregate, the inverse side of the order's tags. */
@Entity({ name: "tl_link_tag" })
class LinkTag {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @ManyToMany(
    () => LinkOrder,
    (order) => order.tags,
  )
  orders?: LinkOrder[];
  @ManyToMany(
    () => LinkLine,
    (line) => line.tags,
  )
  lines?: LinkLine[];
}

/** Outside the aggregate, the owning side of a many-to-many with orders. */
@Entity({ name: "tl_link_crate" })
class LinkCrate {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @ManyToMany(
    () => LinkOrder,
    (order) => order.crates,
  )
  @JoinTable({ name: "tl_link_crate_order" })
  orders?: LinkOrder[];
}

/**
 * A root linked to roots of its own kind (a self-referencing many-to-many): both ends of a
 * junction row are parts. Its `metadata` column is named like a property of TypeORM's subjects.
 */
@Entity({ name: "tl_link_part" })
class LinkPart {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @Column({ default: "" }) metadata!: string;
  @Versioned() version!: number;
  @ManyToMany(() => LinkPart)
  @JoinTable({ name: "tl_link_part_fit" })
  fits?: LinkPart[];
}

/** Makes the part an aggregate root. */
@Entity({ name: "tl_link_part_spec" })
@VersionedBy(
  () => LinkPart,
  (spec: LinkPartSpec) => spec.part,
)
class LinkPartSpec {
  @PrimaryGeneratedColumn() id!: number;
  @ManyToOne(() => LinkPart, { onDelete: "CASCADE" }) part!: LinkPart;
}

describeEachDatabase((db) => {
  let alice: DataSource;
  let bob: DataSource;

  beforeAll(async () => {
    [alice, bob] = await openDataSources(db, [LinkOrder, LinkLine, LinkTag, LinkCrate, LinkPart, LinkPartSpec], {
      count: 2,
    });
    installLocking(alice);
    installLocking(bob);
  });
  afterAll(() => closeAll(alice, bob));

  const failure = (work: Promise<unknown>) =>
    work.then(
      () => undefined,
      (error: unknown) => error,
    );
  const versionOf = async (id: number) => (await bob.getRepository(LinkOrder).findOneByOrFail({ id })).version;

  /**
   * Alice loads the order; Bob changes its links from the other side; Alice's edit of the order,
   * made at the version before Bob's change, must fail and write nothing.
   */
  async function staleAfter(id: number, change: () => Promise<unknown>): Promise<void> {
    const held = await alice.getRepository(LinkOrder).findOneByOrFail({ id });
    await change();
    expect(await versionOf(id)).toBe(held.version + 1);
    held.status = "PAID";
    expect(await failure(alice.getRepository(LinkOrder).save(held))).toBeInstanceOf(OptimisticLockError);
    expect((await bob.getRepository(LinkOrder).findOneByOrFail({ id })).status).toBe("NEW");
  }

  const newOrder = async () => (await alice.getRepository(LinkOrder).save({ status: "NEW" } as LinkOrder)).id;

  describe("the order owns the join table; the tag (inverse side) is saved", () => {
    it("a link added moves the order's version", async () => {
      const id = await newOrder();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift" } as LinkTag);
      await staleAfter(id, async () => {
        const theirs = await bob
          .getRepository(LinkTag)
          .findOneOrFail({ where: { id: tag.id }, relations: { orders: true } });
        theirs.orders!.push(await bob.getRepository(LinkOrder).findOneByOrFail({ id }));
        await bob.getRepository(LinkTag).save(theirs);
      });
    });

    it("a link added with the order given as { id, version: null } (a client's null): moved by id, like an order given by id only", async () => {
      const id = await newOrder();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift" } as LinkTag);
      await staleAfter(id, async () => {
        const order = { id, version: null } as unknown as LinkOrder;
        await bob.getRepository(LinkTag).save({ ...tag, orders: [order] });
      });
    });

    it("a link removed moves the order's version", async () => {
      const id = await newOrder();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift", orders: [{ id }] } as LinkTag);
      await staleAfter(id, async () => {
        const theirs = await bob
          .getRepository(LinkTag)
          .findOneOrFail({ where: { id: tag.id }, relations: { orders: true } });
        theirs.orders = [];
        await bob.getRepository(LinkTag).save(theirs);
      });
    });
  });

  it("a tag linked to the order removed: its link goes with it, and the order moves", async () => {
    const id = await newOrder();
    const tag = await alice.getRepository(LinkTag).save({ name: "gift", orders: [{ id }] } as LinkTag);
    await staleAfter(id, async () => {
      await bob.getRepository(LinkTag).remove(await bob.getRepository(LinkTag).findOneByOrFail({ id: tag.id }));
    });
  });

  describe("the crate owns the join table; the crate (owning side) is saved", () => {
    it("a link added moves the order's version", async () => {
      const id = await newOrder();
      const crate = await alice.getRepository(LinkCrate).save({ name: "A1" } as LinkCrate);
      await staleAfter(id, async () => {
        const theirs = await bob
          .getRepository(LinkCrate)
          .findOneOrFail({ where: { id: crate.id }, relations: { orders: true } });
        theirs.orders!.push(await bob.getRepository(LinkOrder).findOneByOrFail({ id }));
        await bob.getRepository(LinkCrate).save(theirs);
      });
    });

    it("a link removed moves the order's version", async () => {
      const id = await newOrder();
      const crate = await alice.getRepository(LinkCrate).save({ name: "A1", orders: [{ id }] } as LinkCrate);
      await staleAfter(id, async () => {
        const theirs = await bob
          .getRepository(LinkCrate)
          .findOneOrFail({ where: { id: crate.id }, relations: { orders: true } });
        theirs.orders = [];
        await bob.getRepository(LinkCrate).save(theirs);
      });
    });
  });

  describe("guarded like a change through the order", () => {
    it("linked from the tag with a stale copy of the order: fails, and no link is written", async () => {
      const id = await newOrder();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift" } as LinkTag);
      const stale = await bob.getRepository(LinkOrder).findOneByOrFail({ id });
      const edit = await alice.getRepository(LinkOrder).findOneByOrFail({ id });
      edit.status = "PAID";
      await alice.getRepository(LinkOrder).save(edit);
      const theirs = await bob
        .getRepository(LinkTag)
        .findOneOrFail({ where: { id: tag.id }, relations: { orders: true } });
      theirs.orders!.push(stale);
      expect(await failure(bob.getRepository(LinkTag).save(theirs))).toBeInstanceOf(OptimisticLockError);
      expect(await versionOf(id)).toBe(2);
      const links = await bob
        .getRepository(LinkTag)
        .findOneOrFail({ where: { id: tag.id }, relations: { orders: true } });
      expect(links.orders).toEqual([]);
    });

    it("linked from the tag with a current copy: that copy holds the new version", async () => {
      const id = await newOrder();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift" } as LinkTag);
      const order = await bob.getRepository(LinkOrder).findOneByOrFail({ id });
      await bob.getRepository(LinkTag).save({ ...tag, orders: [order] });
      expect(order.version).toBe(2);
      expect(await versionOf(id)).toBe(2);
    });

    it("linked from the tag saved together with a current copy of the order: that copy holds the new version, and its next save succeeds", async () => {
      const id = await newOrder();
      const { id: tagId } = await bob.getRepository(LinkTag).save({ name: "gift" } as LinkTag);
      const tag = await bob.getRepository(LinkTag).findOneByOrFail({ id: tagId });
      const order = await bob.getRepository(LinkOrder).findOneByOrFail({ id });
      tag.orders = [order];
      // The order is a subject of this flush (unchanged): the link is still guarded by its copy.
      await bob.manager.save([tag, order]);
      expect(order.version).toBe(2);
      expect(await versionOf(id)).toBe(2);
      order.status = "PAID";
      await bob.getRepository(LinkOrder).save(order);
      expect(await bob.getRepository(LinkOrder).findOneByOrFail({ id })).toMatchObject({ status: "PAID", version: 3 });
    });
  });

  describe("a part linked to parts (self-referencing many-to-many): both ends are roots", () => {
    const newPart = async (name: string) => alice.getRepository(LinkPart).save({ name } as LinkPart);
    const partVersion = async (id: number) => (await bob.getRepository(LinkPart).findOneByOrFail({ id })).version;

    it("a link added moves the part saved and the part linked; a stale holder of the linked part conflicts", async () => {
      const [a, b] = [await newPart("bolt"), await newPart("nut")];
      const held = await alice.getRepository(LinkPart).findOneByOrFail({ id: b.id });
      const theirs = await bob
        .getRepository(LinkPart)
        .findOneOrFail({ where: { id: a.id }, relations: { fits: true } });
      theirs.fits!.push(await bob.getRepository(LinkPart).findOneByOrFail({ id: b.id }));
      await bob.getRepository(LinkPart).save(theirs);
      expect([await partVersion(a.id), await partVersion(b.id)]).toEqual([2, 2]);
      held.name = "wing nut";
      expect(await failure(alice.getRepository(LinkPart).save(held))).toBeInstanceOf(OptimisticLockError);
      expect((await bob.getRepository(LinkPart).findOneByOrFail({ id: b.id })).name).toBe("nut");
    });

    it("a link removed moves both parts", async () => {
      const b = await newPart("nut");
      const a = await alice.getRepository(LinkPart).save({ name: "bolt", fits: [b] } as LinkPart);
      const before = [await partVersion(a.id), await partVersion(b.id)];
      const theirs = await bob
        .getRepository(LinkPart)
        .findOneOrFail({ where: { id: a.id }, relations: { fits: true } });
      theirs.fits = [];
      await bob.getRepository(LinkPart).save(theirs);
      expect([await partVersion(a.id), await partVersion(b.id)]).toEqual(before.map((v) => v + 1));
    });
  });

  describe("a member's links (the line's tags)", () => {
    const newLine = async () => {
      const order = await alice
        .getRepository(LinkOrder)
        .save({ status: "NEW", lines: [{ product: "pen" }] } as LinkOrder);
      return { id: order.id, lineId: order.lines![0].id };
    };

    it("a new line linked from the tag in the flush whose order's cascade inserts it: the order moves once, nothing is read for the new line", async () => {
      const { id } = await newLine();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift" } as LinkTag);
      const counter = new StatementCounter();
      const counted = await openAlongside(alice, { logger: counter, logging: true });
      installLocking(counted);
      try {
        const order = await counted
          .getRepository(LinkOrder)
          .findOneOrFail({ where: { id }, relations: { lines: true } });
        const line = Object.assign(new LinkLine(), { product: "ink" });
        order.lines!.push(line);
        counter.reset();
        await counted.manager.save([order, Object.assign(new LinkTag(), tag, { lines: [line] })]);
        // The new line has no row yet: the order it is inserted into is the one saved with it.
        const begin = counter.statements.findIndex((sql) => /^(BEGIN|START TRANSACTION)/.test(sql));
        expect(counter.statements.slice(begin + 1).map((sql) => sql.split(" ")[0])).toEqual([
          "UPDATE",
          "INSERT",
          "INSERT",
          "COMMIT",
        ]);
        expect(await versionOf(id)).toBe(2);
        const linked = await bob
          .getRepository(LinkTag)
          .findOneOrFail({ where: { id: tag.id }, relations: { lines: true } });
        expect(linked.lines!.map((l) => l.product)).toEqual(["ink"]);
      } finally {
        await closeAll(counted);
      }
    });

    it("a line's tags changed through the order's cascade: the order moves once, found without a read", async () => {
      const { id, lineId } = await newLine();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift" } as LinkTag);
      const counter = new StatementCounter();
      const counted = await openAlongside(alice, { logger: counter, logging: true });
      installLocking(counted);
      try {
        await staleAfter(id, async () => {
          const order = await counted
            .getRepository(LinkOrder)
            .findOneOrFail({ where: { id }, relations: { lines: true } });
          order.lines!.find((line) => line.id === lineId)!.tags = [tag];
          counter.reset();
          await counted.getRepository(LinkOrder).save(order);
        });
        // The line's end of the row is the line saved: its order is the one saved with it, so
        // nothing is read to find it (the far end is a tag, outside every aggregate).
        const begin = counter.statements.findIndex((sql) => /^(BEGIN|START TRANSACTION)/.test(sql));
        expect(counter.statements.slice(begin + 1).map((sql) => sql.split(" ")[0])).toEqual([
          "UPDATE",
          "INSERT",
          "COMMIT",
        ]);
      } finally {
        await closeAll(counted);
      }
    });

    it("a line's tag unlinked through the order's cascade: the order moves once, found without a read", async () => {
      const { id, lineId } = await newLine();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift", lines: [{ id: lineId }] } as LinkTag);
      const counter = new StatementCounter();
      const counted = await openAlongside(alice, { logger: counter, logging: true });
      installLocking(counted);
      try {
        await staleAfter(id, async () => {
          const order = await counted
            .getRepository(LinkOrder)
            .findOneOrFail({ where: { id }, relations: { lines: { tags: true } } });
          expect(order.lines![0].tags!.map((t) => t.id)).toEqual([tag.id]);
          order.lines![0].tags = [];
          counter.reset();
          await counted.getRepository(LinkOrder).save(order);
        });
        // The removed row names the line by id only; it is still the line saved, whose order is
        // the one saved with it: nothing is read to find it.
        const begin = counter.statements.findIndex((sql) => /^(BEGIN|START TRANSACTION)/.test(sql));
        expect(counter.statements.slice(begin + 1).map((sql) => sql.split(" ")[0])).toEqual([
          "UPDATE",
          "DELETE",
          "COMMIT",
        ]);
      } finally {
        await closeAll(counted);
      }
    });

    it("from the tag, a line loaded with its order linked: the order moves", async () => {
      const { id, lineId } = await newLine();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift" } as LinkTag);
      await staleAfter(id, async () => {
        const line = await bob
          .getRepository(LinkLine)
          .findOneOrFail({ where: { id: lineId }, relations: { order: true } });
        await bob.getRepository(LinkTag).save({ ...tag, lines: [line] });
      });
    });

    it("from the tag, a line loaded with a stale copy of its order linked: fails, and no link is written", async () => {
      const { id, lineId } = await newLine();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift" } as LinkTag);
      const line = await bob
        .getRepository(LinkLine)
        .findOneOrFail({ where: { id: lineId }, relations: { order: true } });
      const edit = await alice.getRepository(LinkOrder).findOneByOrFail({ id });
      edit.status = "PAID";
      await alice.getRepository(LinkOrder).save(edit);
      expect(await failure(bob.getRepository(LinkTag).save({ ...tag, lines: [line] }))).toBeInstanceOf(
        OptimisticLockError,
      );
      expect(await versionOf(id)).toBe(2);
      const links = await bob
        .getRepository(LinkTag)
        .findOneOrFail({ where: { id: tag.id }, relations: { lines: true } });
      expect(links.lines).toEqual([]);
    });

    it("from the tag, a line loaded without its order linked: the order its row names moves", async () => {
      const { id, lineId } = await newLine();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift" } as LinkTag);
      await staleAfter(id, async () => {
        const line = await bob.getRepository(LinkLine).findOneByOrFail({ id: lineId });
        await bob.getRepository(LinkTag).save({ ...tag, lines: [line] });
      });
    });

    it("from the tag, a line of no order linked: the link is written, no version moves", async () => {
      const line = await alice.getRepository(LinkLine).save({ product: "spare", order: null } as unknown as LinkLine);
      const tag = await alice.getRepository(LinkTag).save({ name: "gift" } as LinkTag);
      const counter = new StatementCounter();
      const counted = await openAlongside(alice, { logger: counter, logging: true });
      installLocking(counted);
      try {
        const spare = await counted.getRepository(LinkLine).findOneByOrFail({ id: line.id });
        counter.reset();
        await counted.getRepository(LinkTag).save({ ...tag, lines: [spare] });
        // The line's row names no order: nothing to move, not even an UPDATE that matches no row.
        expect(counter.statements.filter((sql) => sql.startsWith("UPDATE"))).toEqual([]);
      } finally {
        await closeAll(counted);
      }
      const links = await bob
        .getRepository(LinkTag)
        .findOneOrFail({ where: { id: tag.id }, relations: { lines: true } });
      expect(links.lines!.map((l) => l.id)).toEqual([line.id]);
    });

    it("from the tag, a line unlinked: the order moves", async () => {
      const { id, lineId } = await newLine();
      const tag = await alice.getRepository(LinkTag).save({ name: "gift", lines: [{ id: lineId }] } as LinkTag);
      await staleAfter(id, async () => {
        const theirs = await bob
          .getRepository(LinkTag)
          .findOneOrFail({ where: { id: tag.id }, relations: { lines: true } });
        theirs.lines = [];
        await bob.getRepository(LinkTag).save(theirs);
      });
    });
  });
});
