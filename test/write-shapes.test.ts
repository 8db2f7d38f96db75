/**
 * The version condition in UPDATEs whose WHERE clause TypeORM builds in other shapes than
 * `id = ?`: a composite primary key (a bracketed AND of columns) and single-table inheritance
 * (a discriminator condition beside the key). Each is saved once as it should be, and once with
 * a change committed on a second connection after TypeORM's pre-load, which only the UPDATE's
 * own `AND version = ?` can catch. And a key holding a Date (an object, not a plain value): a
 * remove's version condition keeps it as it is.
 */
import {
  ChildEntity,
  Column,
  type DataSource,
  Entity,
  ManyToOne,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  TableInheritance,
  UpdateQueryBuilder,
} from "typeorm";
import { installLocking, LockingConfigurationError, OptimisticLockError, Versioned } from "../src";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";
import { changeBeforeNextWrite } from "./support/interleaving";

@Entity("shape_tenant_item")
class TenantItem {
  @PrimaryColumn({ type: "varchar", length: 20 }) tenant!: string;
  @PrimaryColumn({ type: "int" }) code!: number;
  @Column({ type: "varchar", length: 40 }) label!: string;
  @Versioned() version!: number;
}

@Entity("shape_reading")
class Reading {
  @PrimaryColumn({ type: "int" }) sensor!: number;
  @PrimaryColumn() at!: Date;
  @Column({ type: "int" }) value!: number;
  @Versioned() version!: number;
}

@Entity("shape_vehicle")
@TableInheritance({ column: { type: "varchar", name: "kind", length: 20 } })
class Vehicle {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: "varchar", length: 40 }) name!: string;
  @Versioned() version!: number;
}

@ChildEntity("car")
class Car extends Vehicle {
  @Column({ type: "int", default: 4 }) doors!: number;
}

/** Two new rows naming each other: TypeORM inserts one without its link, then updates it in. */
@Entity("shape_pair")
class Pair {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @Versioned() version!: number;
  @ManyToOne(() => Pair, { nullable: true, cascade: true }) partner?: Pair | null;
}

describeEachDatabase((db) => {
  let writer: DataSource;
  let other: DataSource;

  beforeAll(async () => {
    [writer, other] = await openDataSources(db, [TenantItem, Reading, Vehicle, Car, Pair], { count: 2 });
    installLocking(writer);
  });
  afterAll(() => closeAll(writer, other));

  describe("a composite primary key", () => {
    const key = (code: number) => ({ tenant: "acme", code });

    it("a current save updates the row and moves the version", async () => {
      const items = writer.getRepository(TenantItem);
      const item = await items.save(items.create({ ...key(1), label: "A" }));
      item.label = "B";
      await items.save(item);
      expect(item.version).toBe(2);
      expect(await items.findOneByOrFail(key(1))).toMatchObject({ label: "B", version: 2 });
    });

    it("a stale copy is refused and the other change survives", async () => {
      const items = writer.getRepository(TenantItem);
      await items.save(items.create({ ...key(2), label: "A" }));
      const stale = await items.findOneByOrFail(key(2));
      await other.getRepository(TenantItem).update(key(2), { label: "OTHER", version: 2 });
      stale.label = "STALE";
      await expect(items.save(stale)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await items.findOneByOrFail(key(2))).toMatchObject({ label: "OTHER", version: 2 });
    });

    if (db.family !== "sqlite") {
      it("a change after TypeORM's pre-load makes the UPDATE match no row", async () => {
        const items = writer.getRepository(TenantItem);
        await items.save(items.create({ ...key(3), label: "A" }));
        const item = await items.findOneByOrFail(key(3));
        changeBeforeNextWrite(writer, TenantItem, "beforeUpdate", () =>
          other.getRepository(TenantItem).update(key(3), { label: "OTHER", version: 2 }),
        );
        item.label = "MINE";
        await expect(items.save(item)).rejects.toBeInstanceOf(OptimisticLockError);
        expect(await items.findOneByOrFail(key(3))).toMatchObject({ label: "OTHER", version: 2 });
      });
    }
  });

  describe("single-table inheritance", () => {
    it("a current save of a child entity updates the row and moves the version", async () => {
      const cars = writer.getRepository(Car);
      const car = await cars.save(cars.create({ name: "A", doors: 3 }));
      car.doors = 5;
      await cars.save(car);
      expect(car.version).toBe(2);
      expect(await cars.findOneByOrFail({ id: car.id })).toMatchObject({ doors: 5, version: 2 });
    });

    if (db.family !== "sqlite") {
      it("a change after TypeORM's pre-load makes the child's UPDATE match no row", async () => {
        const cars = writer.getRepository(Car);
        const { id } = await cars.save(cars.create({ name: "A" }));
        const car = await cars.findOneByOrFail({ id });
        changeBeforeNextWrite(writer, Car, "beforeUpdate", () =>
          other.getRepository(Car).update({ id }, { name: "OTHER", version: 2 }),
        );
        car.doors = 2;
        await expect(cars.save(car)).rejects.toBeInstanceOf(OptimisticLockError);
        expect(await cars.findOneByOrFail({ id })).toMatchObject({ name: "OTHER", doors: 4, version: 2 });
      });
    }
  });

  describe("a primary key holding a Date", () => {
    // Whole seconds: MySQL's DATETIME keeps no milliseconds.
    const key = (sensor: number) => ({ sensor, at: new Date("2026-03-01T10:00:00Z") });

    it("a remove deletes that row and no other", async () => {
      const readings = writer.getRepository(Reading);
      const [gone, kept] = await readings.save([
        readings.create({ ...key(1), value: 1 }),
        readings.create({ ...key(2), value: 2 }),
      ]);
      gone.value = 10;
      await readings.save(gone);
      await readings.remove(gone);
      expect(await readings.findOneBy(key(1))).toBeNull();
      expect(await readings.findOneByOrFail(key(kept.sensor))).toMatchObject({ value: 2, version: 1 });
    });
  });

  // The UPDATE of a row inserted by the same save is not checked: nobody else can have changed it.
  it("two new entities naming each other: inserted, then linked by an UPDATE, each version as written", async () => {
    const a = Object.assign(new Pair(), { name: "a" });
    const b = Object.assign(new Pair(), { name: "b", partner: a });
    a.partner = b;
    await writer.getRepository(Pair).save(a);
    const rows = await other
      .getRepository(Pair)
      .find({ where: [{ id: a.id }, { id: b.id }], relations: { partner: true }, order: { id: "ASC" } });
    expect(rows.map((row) => [row.name, row.partner?.name, row.version])).toEqual([
      ["a", "b", a.version],
      ["b", "a", b.version],
    ]);
    // (Which of them TypeORM links by an UPDATE depends on the dialect: on some, both.)
    a.name = "a2";
    await writer.getRepository(Pair).save(a);
    expect((await other.getRepository(Pair).findOneByOrFail({ id: a.id })).name).toBe("a2");
  });

  // The condition goes where TypeORM's createWhereExpression() ends the WHERE clause: a TypeORM
  // that renders the clause another way must make the save fail, never write it unchecked.
  it("a TypeORM whose UPDATE leaves out the WHERE clause's place: LockingConfigurationError, nothing written", async () => {
    const items = writer.getRepository(TenantItem);
    const item = await items.save(items.create({ tenant: "acme", code: 99, label: "A" }));
    const prototype = UpdateQueryBuilder.prototype as unknown as { createWhereExpression: () => string };
    const hooked = prototype.createWhereExpression;
    prototype.createWhereExpression = function (this: unknown) {
      return hooked.call(this).replace("\u0001", "");
    };
    try {
      item.label = "B";
      await expect(items.save(item)).rejects.toBeInstanceOf(LockingConfigurationError);
    } finally {
      prototype.createWhereExpression = hooked;
    }
    expect(await items.findOneByOrFail({ tenant: "acme", code: 99 })).toMatchObject({ label: "A", version: 1 });
  });
});
