/**
 * Aggregate consistency on every database, with two clients on two connections: a change
 * anywhere inside an order's aggregate (a line, a note of a line, the embedded address, a tag
 * link, an added or removed line) moves the order's version once per flush, so two people editing
 * different parts of one order conflict, and the loser's flush writes nothing.
 */
import {
  Column,
  DataSource,
  type DataSourceOptions,
  Entity,
  ManyToOne,
  OneToMany,
  PrimaryGeneratedColumn,
  VersionColumn,
} from "typeorm";
import {
  installLocking,
  LockingConfigurationError,
  LockMode,
  MissingVersionError,
  OptimisticLockError,
  OptimisticLockExcluded,
  Versioned,
  VersionedBy,
  withLockMode,
} from "../src";
import { aggregateLinkOf, isLockExcludedEntity } from "../src/aggregate";
import { AGGREGATE_ENTITIES, AggLine, AggNote, AggOrder, AggTag } from "./fixtures/aggregate-entities";
import { closeAll, describeEachDatabase, openAlongside, openDataSources, StatementCounter } from "./support/databases";

describeEachDatabase((db) => {
  let alice: DataSource;
  let bob: DataSource;
  let plain: DataSource;
  const aliceCounter = new StatementCounter();
  const plainCounter = new StatementCounter();

  beforeAll(async () => {
    [alice] = await openDataSources(db, AGGREGATE_ENTITIES, { extra: { logger: aliceCounter, logging: true } });
    bob = await openAlongside(alice, { logger: undefined, logging: false });
    // Plain TypeORM: the same tables mapped without the library's decorators (a DataSource with
    // @Versioned() or @VersionedBy entities is checked whether installed or not).
    plain = await openAlongside(alice, { entities: [PlainOrder, PlainLine], logger: plainCounter, logging: true });
    installLocking(alice);
    installLocking(bob);
    await alice.getRepository(AggTag).save([
      { id: 1, name: "gift" },
      { id: 2, name: "express" },
    ]);
  });
  afterAll(() => closeAll(alice, bob, plain));

  async function seed(): Promise<number> {
    const order = await alice.getRepository(AggOrder).save({
      status: "NEW",
      address: { street: "Old Street 1", city: "Seoul" },
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
  const line = (order: AggOrder, product: string) => order.lines!.find((l) => l.product === product)!;
  const saveOrder = (source: DataSource, order: AggOrder) => source.getRepository(AggOrder).save(order);
  const failure = (work: Promise<unknown>) =>
    work.then(
      () => undefined,
      (error: unknown) => error,
    );

  /** Both load version n; `first` saves and wins (n + 1); `second` fails and writes nothing. */
  async function race(
    id: number,
    first: (order: AggOrder) => Promise<unknown>,
    second: (order: AggOrder) => Promise<unknown>,
  ): Promise<{ before: number; after: AggOrder }> {
    const a = await load(alice, id);
    const b = await load(bob, id);
    expect(b.version).toBe(a.version);
    await first(a);
    const error = await failure(second(b));
    expect(error).toBeInstanceOf(OptimisticLockError);
    const after = await load(alice, id);
    expect(after.version).toBe(a.version === undefined ? Number.NaN : b.version + 1);
    return { before: b.version, after };
  }

  it("two clients change different lines: the first wins (root n + 1), the second fails and its line is unchanged", async () => {
    const id = await seed();
    const { after } = await race(
      id,
      (o) => {
        line(o, "pen").quantity = 10;
        return saveOrder(alice, o);
      },
      (o) => {
        line(o, "ink").quantity = 20;
        return saveOrder(bob, o);
      },
    );
    expect(line(after, "pen").quantity).toBe(10);
    expect(line(after, "ink").quantity).toBe(2);
  });

  it("adding a line vs changing the address (an embedded value object)", async () => {
    const id = await seed();
    const { after } = await race(
      id,
      (o) => {
        o.lines!.push({ product: "paper", quantity: 5 } as AggLine);
        return saveOrder(alice, o);
      },
      (o) => {
        o.address.street = "New Street 2";
        return saveOrder(bob, o);
      },
    );
    expect(after.lines!.map((l) => l.product)).toEqual(["pen", "ink", "paper"]);
    expect(after.address.street).toBe("Old Street 1");
  });

  it("changing the address vs adding a line: the loser's new line is not inserted", async () => {
    const id = await seed();
    const { after } = await race(
      id,
      (o) => {
        o.address.city = "Busan";
        return saveOrder(alice, o);
      },
      (o) => {
        o.lines!.push({ product: "paper", quantity: 5 } as AggLine);
        return saveOrder(bob, o);
      },
    );
    expect(after.address.city).toBe("Busan");
    expect(after.lines!.map((l) => l.product)).toEqual(["pen", "ink"]);
  });

  it("removing a line (orphan deleted) vs changing another line", async () => {
    const id = await seed();
    const { after } = await race(
      id,
      (o) => {
        o.lines = o.lines!.filter((l) => l.product !== "pen");
        return saveOrder(alice, o);
      },
      (o) => {
        line(o, "ink").quantity = 99;
        return saveOrder(bob, o);
      },
    );
    expect(after.lines!.map((l) => [l.product, l.quantity])).toEqual([["ink", 2]]);
  });

  it("changing a line vs removing another line: the orphan clean-up of the loser is not done", async () => {
    const id = await seed();
    const { after } = await race(
      id,
      (o) => {
        line(o, "ink").quantity = 7;
        return saveOrder(alice, o);
      },
      (o) => {
        o.lines = o.lines!.filter((l) => l.product !== "pen");
        return saveOrder(bob, o);
      },
    );
    expect(after.lines!.map((l) => [l.product, l.quantity])).toEqual([
      ["pen", 1],
      ["ink", 7],
    ]);
  });

  it("a line saved through its own repository vs the root saved with its cascade", async () => {
    const id = await seed();
    const lineId = line(await load(alice, id), "pen").id;
    const own = await bob.getRepository(AggLine).findOneOrFail({ where: { id: lineId }, relations: { order: true } });
    const a = await load(alice, id);
    line(a, "ink").quantity = 30;
    await saveOrder(alice, a);
    own.quantity = 40;
    expect(await failure(bob.getRepository(AggLine).save(own))).toBeInstanceOf(OptimisticLockError);
    const after = await load(alice, id);
    expect([line(after, "pen").quantity, line(after, "ink").quantity, after.version]).toEqual([1, 30, 2]);

    // And the other way round: the line through its repository first, then the stale root.
    const fresh = await bob.getRepository(AggLine).findOneOrFail({ where: { id: lineId }, relations: { order: true } });
    const stale = await load(alice, id);
    fresh.quantity = 50;
    await bob.getRepository(AggLine).save(fresh);
    expect((await load(alice, id)).version).toBe(3);
    line(stale, "ink").quantity = 60;
    expect(await failure(saveOrder(alice, stale))).toBeInstanceOf(OptimisticLockError);
    expect(line(await load(alice, id), "ink").quantity).toBe(30);
  });

  it("a grandchild (a note of a line) vs a line: the note's chain resolves to the order", async () => {
    const id = await seed();
    const { after } = await race(
      id,
      (o) => {
        line(o, "pen").notes![0].text = "red";
        return saveOrder(alice, o);
      },
      (o) => {
        line(o, "ink").quantity = 8;
        return saveOrder(bob, o);
      },
    );
    expect(line(after, "pen").notes![0].text).toBe("red");
    expect(line(after, "ink").quantity).toBe(2);
    // A note saved alone, loaded with its line and the line's order, checks the order too.
    const note = await bob.getRepository(AggNote).findOneOrFail({
      where: { id: line(after, "pen").notes![0].id },
      relations: { line: { order: true } },
    });
    const b = await load(bob, id);
    b.status = "PAID";
    await saveOrder(bob, b);
    note.text = "green";
    expect(await failure(bob.getRepository(AggNote).save(note))).toBeInstanceOf(OptimisticLockError);
  });

  it("a many-to-many link added vs the status changed", async () => {
    const id = await seed();
    const { after } = await race(
      id,
      (o) => {
        o.tags!.push({ id: 2 } as AggTag);
        return saveOrder(alice, o);
      },
      (o) => {
        o.status = "PAID";
        return saveOrder(bob, o);
      },
    );
    expect(after.tags!.map((t) => t.id).sort()).toEqual([1, 2]);
    expect(after.status).toBe("NEW");
    // A link removed is a change too.
    const { after: again } = await race(
      id,
      (o) => {
        o.status = "SHIPPED";
        return saveOrder(alice, o);
      },
      (o) => {
        o.tags = o.tags!.filter((t) => t.id !== 1);
        return saveOrder(bob, o);
      },
    );
    expect(again.tags!.map((t) => t.id).sort()).toEqual([1, 2]);
  });

  it("the root moves once per flush however many members changed, and not at all when nothing changed", async () => {
    const id = await seed();
    const o = await load(alice, id);
    line(o, "pen").quantity = 3;
    line(o, "ink").quantity = 4;
    line(o, "pen").notes![0].text = "black";
    o.lines!.push({ product: "paper", quantity: 1 } as AggLine);
    await saveOrder(alice, o);
    expect(o.version).toBe(2);
    expect((await load(alice, id)).version).toBe(2);
    await saveOrder(alice, await load(alice, id));
    expect((await load(alice, id)).version).toBe(2);
  });

  it("@OptimisticLockExcluded: a change only to it neither bumps nor conflicts", async () => {
    const id = await seed();
    const a = await load(alice, id);
    const b = await load(bob, id);
    b.viewCount = 5;
    await saveOrder(bob, b);
    expect(await load(alice, id)).toMatchObject({ viewCount: 5, version: 1 });
    a.status = "PAID";
    await saveOrder(alice, a); // not overtaken: the view counter moved no version
    // Excluded means unchecked: TypeORM writes every column that differs from the row, so the
    // stale copy's counter goes back too (as in Hibernate without dynamic update).
    expect(await load(alice, id)).toMatchObject({ status: "PAID", viewCount: 0, version: 2 });
  });

  it("statements: a member-only change costs one UPDATE of the root over plain TypeORM; none when the root row is updated anyway", async () => {
    const id = await seed();
    const count = async (source: DataSource, counter: StatementCounter, edit: (o: AggOrder) => void) => {
      const target = source === plain ? PlainOrder : AggOrder;
      const o = (await source.getRepository(target).findOneOrFail({
        where: { id },
        relations: { lines: true },
      })) as AggOrder;
      edit(o);
      counter.reset();
      await source.getRepository(target).save(o);
      return counter.statements.filter((s) => /^(INSERT|UPDATE|DELETE)/i.test(s));
    };
    const memberOnly = (o: AggOrder) => {
      line(o, "pen").quantity += 1;
    };
    const withRoot = (o: AggOrder) => {
      line(o, "pen").quantity += 1;
      o.status = `S${o.version}`;
    };
    const plainMember = await count(plain, plainCounter, memberOnly);
    const oursMember = await count(alice, aliceCounter, memberOnly);
    expect(oursMember.length - plainMember.length).toBe(1);
    expect(oursMember.find((s) => /^UPDATE\s+["`]?tl_agg_order["`]?/i.test(s))).toMatch(/version/i);
    const plainRoot = await count(plain, plainCounter, withRoot);
    const oursRoot = await count(alice, aliceCounter, withRoot);
    expect(oursRoot.length).toBe(plainRoot.length);
  });

  it("a line saved alone while its order is locked PESSIMISTIC_WRITE in the same transaction still moves the order's version", async () => {
    const id = await seed();
    const stale = await load(bob, id);
    await alice.transaction(async (manager) => {
      const order = await manager.findOneOrFail(AggOrder, {
        where: { id },
        ...withLockMode(LockMode.PESSIMISTIC_WRITE),
      });
      const pen = await manager.findOneOrFail(AggLine, { where: { order: { id } }, order: { id: "ASC" } });
      pen.order = order;
      pen.quantity = 77;
      await manager.save(pen);
      expect(order.version).toBe(2);
    });
    line(stale, "ink").quantity = 5;
    expect(await failure(saveOrder(bob, stale))).toBeInstanceOf(OptimisticLockError);
  });

  it("an order read under OPTIMISTIC, then a line saved with another copy of that order: its own bump is no conflict at commit", async () => {
    const id = await seed();
    await alice.transaction(async (manager) => {
      await manager.findOneOrFail(AggOrder, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
      const pen = await manager.findOneOrFail(AggLine, {
        where: { order: { id } },
        relations: { order: true },
        order: { id: "ASC" },
      });
      pen.quantity = 78;
      await manager.save(pen);
    });
    const after = await load(alice, id);
    expect([after.version, line(after, "pen").quantity]).toEqual([2, 78]);
  });

  it("a member saved without its root loaded is refused with what to load", async () => {
    const id = await seed();
    const pen = await alice.getRepository(AggLine).findOneOrFail({ where: { order: { id } }, order: { id: "ASC" } });
    pen.quantity = 2;
    await expect(alice.getRepository(AggLine).save(pen)).rejects.toThrow(
      /AggOrder it belongs to is not loaded.*relations: \{ order: true \}/,
    );
    expect((await load(alice, id)).version).toBe(1);
  });

  it("a member saved with its root given by id only (no version to check) is refused with MissingVersionError, nothing written", async () => {
    const id = await seed();
    const before = await load(alice, id);
    const pen = await alice.getRepository(AggLine).findOneOrFail({ where: { order: { id } }, order: { id: "ASC" } });
    pen.quantity = 2;
    pen.order = { id } as AggOrder;
    const added = { product: "paper", quantity: 1, order: { id } } as AggLine;
    for (const write of [
      () => alice.getRepository(AggLine).save(pen),
      () => alice.getRepository(AggLine).save(added),
    ]) {
      const error = await failure(write());
      expect(error).toBeInstanceOf(MissingVersionError);
      expect(error).toMatchObject({
        entityName: "AggOrder",
        id: { id },
        versionProperty: "version",
        operation: "aggregate change",
      });
    }
    expect(await load(alice, id)).toEqual(before);
  });
});

/** tl_agg_order and tl_agg_line as plain TypeORM maps them, for statement counts. */
@Entity({ name: "tl_agg_order" })
class PlainOrder {
  @PrimaryGeneratedColumn() id!: number;
  @Column() status!: string;
  @VersionColumn() version!: number;
  @OneToMany(
    () => PlainLine,
    (line) => line.order,
    { cascade: true },
  )
  lines?: PlainLine[];
}

@Entity({ name: "tl_agg_line" })
class PlainLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() product!: string;
  @Column() quantity!: number;
  @ManyToOne(
    () => PlainOrder,
    (order) => order.lines,
  )
  order!: PlainOrder;
}

describe("aggregate declarations are checked at installLocking()", () => {
  async function install(entities: Function[]) {
    const source = new DataSource({
      type: "better-sqlite3",
      database: ":memory:",
      entities,
      synchronize: true,
    } as DataSourceOptions);
    installLocking(source);
    try {
      await source.initialize();
    } finally {
      if (source.isInitialized) await source.destroy();
    }
  }

  it("@VersionedBy without a parent entity or a path, with the class itself, or a path that follows no property, is refused as declared", () => {
    class Root {}
    class Member {
      root?: Root;
    }
    const refused = /@VersionedBy on Member: pass the parent entity and the path to it/;
    expect(() => VersionedBy({} as never, (m: Member) => m.root)(Member)).toThrow(refused);
    expect(() => VersionedBy(() => Root, "root" as never)(Member)).toThrow(refused);
    // The class where a function returning it belongs: refused before anything calls it.
    expect(() => VersionedBy(Root as never, (m: Member) => m.root)(Member)).toThrow(
      /@VersionedBy on Member: pass the parent entity as a function, @VersionedBy\(\(\) => Root, \.\.\.\)/,
    );
    expect(() => VersionedBy(undefined as never, undefined as never)(Member)).toThrow(LockingConfigurationError);
    expect(() =>
      VersionedBy(
        () => Root,
        (m: Member) => m,
      )(Member),
    ).toThrow(/@VersionedBy on Member: the path must follow a relation/);
    expect(aggregateLinkOf(Member)).toBeUndefined();
  });

  it("@VersionedBy on an entity class applies to the classes that extend it", () => {
    class Root {}
    @VersionedBy(
      () => Root,
      (m: Member) => m.root,
    )
    class Member {
      root?: Root;
    }
    class SpecialMember extends Member {}
    expect(aggregateLinkOf(SpecialMember)).toEqual({ parent: expect.any(Function), path: ["root"] });
    expect(aggregateLinkOf(SpecialMember)).toBe(aggregateLinkOf(Member));
    expect(aggregateLinkOf(Root)).toBeUndefined();
  });

  it("@OptimisticLockExcluded on an entity class applies to the classes that extend it, not to its parents", () => {
    class Base {}
    @OptimisticLockExcluded()
    class Legacy extends Base {}
    class LegacyImport extends Legacy {}
    expect([Legacy, LegacyImport, Base].map(isLockExcludedEntity)).toEqual([true, true, false]);
  });

  it("a root without a version", async () => {
    const { Entity, PrimaryGeneratedColumn, ManyToOne, OneToMany } = await import("typeorm");
    @Entity({ name: "bad_root_a" })
    class Root {
      @PrimaryGeneratedColumn() id!: number;
      @OneToMany(
        () => Member,
        (m) => m.root,
      )
      members?: Member[];
    }
    @Entity({ name: "bad_member_a" })
    @VersionedBy(
      () => Root,
      (m: Member) => m.root,
    )
    class Member {
      @PrimaryGeneratedColumn() id!: number;
      @ManyToOne(
        () => Root,
        (r) => r.members,
      )
      root!: Root;
    }
    await expect(install([Root, Member])).rejects.toThrow(/aggregate root Root has no checked version.*@Versioned/);
  });

  it("a path that does not lead to the declared root, and a path through a column", async () => {
    const { Entity, PrimaryGeneratedColumn, ManyToOne, Column } = await import("typeorm");
    @Entity({ name: "bad_root_b" })
    class Root {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
    }
    @Entity({ name: "bad_other_b" })
    class Other {
      @PrimaryGeneratedColumn() id!: number;
    }
    @Entity({ name: "bad_member_b" })
    @VersionedBy(
      () => Root,
      (m: Member) => m.other,
    )
    class Member {
      @PrimaryGeneratedColumn() id!: number;
      @ManyToOne(() => Other) other!: Other;
    }
    @Entity({ name: "bad_member_c" })
    @VersionedBy(
      () => Root,
      (m: ColumnMember) => m.rootId,
    )
    class ColumnMember {
      @PrimaryGeneratedColumn() id!: number;
      @Column() rootId!: number;
    }
    await expect(install([Root, Other, Member])).rejects.toThrow(/"other" leads to Other, not to Root/);
    await expect(install([Root, ColumnMember])).rejects.toThrow(/ColumnMember.rootId is not one/);
  });

  it("a path through a one-to-many or a many-to-many relation to the root is refused, naming the entity", async () => {
    // Both lead to the declared root, but a member reaches one root only up many-to-one/one-to-one.
    const { Entity, PrimaryGeneratedColumn, ManyToOne, OneToMany, ManyToMany, JoinTable } = await import("typeorm");
    @Entity({ name: "bad_root_e" })
    class Root {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
      @ManyToOne(
        () => ManyMember,
        (m) => m.roots,
      )
      owner?: object;
    }
    @Entity({ name: "bad_member_e" })
    @VersionedBy(
      () => Root,
      (m: ManyMember) => m.roots,
    )
    class ManyMember {
      @PrimaryGeneratedColumn() id!: number;
      @OneToMany(
        () => Root,
        (r) => r.owner,
      )
      roots?: Root[];
    }
    @Entity({ name: "bad_root_f" })
    class OtherRoot {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
    }
    @Entity({ name: "bad_member_f" })
    @VersionedBy(
      () => OtherRoot,
      (m: JoinedMember) => m.roots,
    )
    class JoinedMember {
      @PrimaryGeneratedColumn() id!: number;
      @ManyToMany(() => OtherRoot)
      @JoinTable({ name: "bad_member_f_root" })
      roots?: OtherRoot[];
    }
    const oneToMany = install([Root, ManyMember]);
    await expect(oneToMany).rejects.toThrow(LockingConfigurationError);
    await expect(oneToMany).rejects.toThrow(/ManyMember\.roots is not one/);
    const manyToMany = install([OtherRoot, JoinedMember]);
    await expect(manyToMany).rejects.toThrow(LockingConfigurationError);
    await expect(manyToMany).rejects.toThrow(/JoinedMember\.roots is not one/);
  });

  it("a cycle", async () => {
    const { Entity, PrimaryGeneratedColumn, ManyToOne } = await import("typeorm");
    @Entity({ name: "bad_a_d" })
    @VersionedBy(
      () => B,
      (a: { b: unknown }) => a.b,
    )
    class A {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
      @ManyToOne(() => B) b!: object;
    }
    @Entity({ name: "bad_b_d" })
    @VersionedBy(
      () => A,
      (b: { a: unknown }) => b.a,
    )
    class B {
      @PrimaryGeneratedColumn() id!: number;
      @ManyToOne(() => A) a!: object;
    }
    await expect(install([A, B])).rejects.toThrow(LockingConfigurationError);
    await expect(install([A, B])).rejects.toThrow(/loops back/);
  });
});
