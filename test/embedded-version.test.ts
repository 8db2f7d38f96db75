/**
 * A version declared inside an embedded value (`@Column(() => Audit) audit`, with `@Versioned()`
 * or, in checked mode, `@VersionColumn` on `Audit.version`) is the entity's version like one
 * declared on the entity itself: every write is conditional on it, on two real connections. Found
 * by mutation testing (issue 23): `@Versioned()` there was left unchecked, and a stale save was
 * written and set the version back.
 */
import "reflect-metadata";
import { Column, type DataSource, Entity, PrimaryColumn, VersionColumn } from "typeorm";
import { installLocking, OptimisticLockError, updateVersioned, Versioned } from "../src";
import { closeAll, describeEachDatabase, openDataSources, type TestDatabase } from "./support/databases";

class Audit {
  @Versioned() version!: number;
  @Column({ default: "" }) by!: string;
}

@Entity("ev_shipment")
class Shipment {
  @PrimaryColumn() id!: number;
  @Column() status!: string;
  @Column(() => Audit) audit!: Audit;
}

class CheckedAudit {
  @VersionColumn() version!: number;
  @Column({ default: "" }) by!: string;
}

@Entity("ev_parcel")
class Parcel {
  @PrimaryColumn() id!: number;
  @Column() status!: string;
  @Column(() => CheckedAudit) audit!: CheckedAudit;
}

/** The primary key and the version in one embedded value: the id map and the version map share `key`. */
class CrateKey {
  @PrimaryColumn() id!: number;
  @Versioned() version!: number;
}

@Entity("ev_crate")
class Crate {
  @Column(() => CrateKey) key!: CrateKey;
  @Column() status!: string;
}

describeEachDatabase((db: TestDatabase) => {
  it("without installLocking(), an embedded @Versioned() is checked, as one on the entity is", async () => {
    const [carol, dave] = await openDataSources(db, [Shipment], { count: 2 });
    try {
      await carol.getRepository(Shipment).save(Object.assign(new Shipment(), { id: 1, status: "new", audit: {} }));
      const stale = await carol.getRepository(Shipment).findOneByOrFail({ id: 1 });
      const fresh = await dave.getRepository(Shipment).findOneByOrFail({ id: 1 });
      fresh.status = "by dave";
      await dave.getRepository(Shipment).save(fresh);
      stale.status = "by carol";
      await expect(carol.getRepository(Shipment).save(stale)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await dave.getRepository(Shipment).findOneByOrFail({ id: 1 })).toMatchObject({ status: "by dave" });
    } finally {
      await closeAll(carol, dave);
    }
  });

  for (const [label, entity, options] of [
    ["@Versioned() in an embedded value", Shipment, {}],
    ['@VersionColumn in an embedded value, versionColumns: "checked"', Parcel, { versionColumns: "checked" }],
  ] as const) {
    describe(label, () => {
      let alice: DataSource;
      let bob: DataSource;
      beforeAll(async () => {
        [alice, bob] = await openDataSources(db, [Shipment, Parcel], { count: 2 });
        installLocking(alice, options);
        installLocking(bob, options);
      });
      afterAll(() => closeAll(alice, bob));

      let nextId = 1;
      async function seeded(): Promise<Shipment | Parcel> {
        const row = Object.assign(new entity(), { id: nextId++, status: "new", audit: { by: "seed" } });
        return alice.getRepository<Shipment | Parcel>(entity).save(row);
      }

      it("a save moves the version in the embedded value by one", async () => {
        const row = await seeded();
        expect(row.audit.version).toBe(1);
        row.status = "packed";
        await alice.getRepository<Shipment | Parcel>(entity).save(row);
        expect(row.audit.version).toBe(2);
        expect(await bob.getRepository<Shipment | Parcel>(entity).findOneByOrFail({ id: row.id })).toMatchObject({
          status: "packed",
          audit: { version: 2 },
        });
      });

      it("a stale copy's save and remove are refused; the other change and its version stay", async () => {
        const row = await seeded();
        const stale = await alice.getRepository<Shipment | Parcel>(entity).findOneByOrFail({ id: row.id });
        const fresh = await bob.getRepository<Shipment | Parcel>(entity).findOneByOrFail({ id: row.id });
        fresh.status = "by bob";
        await bob.getRepository<Shipment | Parcel>(entity).save(fresh);
        stale.status = "by alice";
        await expect(alice.getRepository<Shipment | Parcel>(entity).save(stale)).rejects.toBeInstanceOf(
          OptimisticLockError,
        );
        await expect(alice.getRepository<Shipment | Parcel>(entity).remove(stale)).rejects.toBeInstanceOf(
          OptimisticLockError,
        );
        expect(await bob.getRepository<Shipment | Parcel>(entity).findOneByOrFail({ id: row.id })).toMatchObject({
          status: "by bob",
          audit: { version: 2 },
        });
      });

      it("a remove deletes the row, checked against the version in the embedded value", async () => {
        const [row, kept] = [await seeded(), await seeded()];
        const { id } = row; // remove() clears the entity's id
        await alice.getRepository<Shipment | Parcel>(entity).remove(row);
        expect(await bob.getRepository<Shipment | Parcel>(entity).findOneBy({ id })).toBeNull();
        expect(await bob.getRepository<Shipment | Parcel>(entity).findOneBy({ id: kept.id })).not.toBeNull();
      });

      it("updateVersioned() checks the version held in the embedded value", async () => {
        const row = await seeded();
        const repository = alice.getRepository<Shipment | Parcel>(entity);
        await expect(updateVersioned(repository, row.id, 1, { status: "sent" })).resolves.toBe(2);
        await expect(updateVersioned(repository, row.id, 1, { status: "lost" })).rejects.toThrow(/version/i);
        expect(await bob.getRepository<Shipment | Parcel>(entity).findOneByOrFail({ id: row.id })).toMatchObject({
          status: "sent",
          audit: { version: 2 },
        });
      });
    });
  }

  describe("the primary key and @Versioned() in one embedded value", () => {
    let alice: DataSource;
    let bob: DataSource;
    beforeAll(async () => {
      [alice, bob] = await openDataSources(db, [Crate], { count: 2 });
      installLocking(alice);
      installLocking(bob);
    });
    afterAll(() => closeAll(alice, bob));

    let nextId = 1;
    async function seeded(count = 1): Promise<Crate[]> {
      const rows = Array.from({ length: count }, () =>
        Object.assign(new Crate(), { key: { id: nextId++ }, status: "new" }),
      );
      return alice.getRepository(Crate).save(rows);
    }
    const rowOf = (id: number) => bob.getRepository(Crate).findOneBy({ key: { id } });

    it("a save moves the version by one and keeps the entity's key", async () => {
      const [row] = await seeded();
      expect(row.key.version).toBe(1);
      row.status = "packed";
      await alice.getRepository(Crate).save(row);
      expect(row.key).toEqual({ id: row.key.id, version: 2 });
      expect(await rowOf(row.key.id)).toMatchObject({ status: "packed", key: { id: row.key.id, version: 2 } });
      // The entity saved again is checked against, and moves, the version it now holds.
      row.status = "sent";
      await alice.getRepository(Crate).save(row);
      expect(await rowOf(row.key.id)).toMatchObject({ status: "sent", key: { version: 3 } });
    });

    it("a save of several rows moves each one's version and keeps each one's key", async () => {
      const rows = await seeded(2);
      for (const row of rows) row.status = "packed";
      await alice.getRepository(Crate).save(rows);
      expect(rows.map((r) => r.key)).toEqual(rows.map((r) => ({ id: r.key.id, version: 2 })));
      for (const row of rows) {
        expect(await rowOf(row.key.id)).toMatchObject({ status: "packed", key: { version: 2 } });
      }
    });

    it("a stale copy's save and remove are refused: nothing written, the version not set back", async () => {
      const [row] = await seeded();
      const stale = await alice.getRepository(Crate).findOneByOrFail({ key: { id: row.key.id } });
      const fresh = await bob.getRepository(Crate).findOneByOrFail({ key: { id: row.key.id } });
      fresh.status = "by bob";
      await bob.getRepository(Crate).save(fresh);
      stale.status = "by alice";
      await expect(alice.getRepository(Crate).save(stale)).rejects.toBeInstanceOf(OptimisticLockError);
      await expect(alice.getRepository(Crate).remove(stale)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await rowOf(row.key.id)).toMatchObject({ status: "by bob", key: { version: 2 } });
    });

    it("a remove deletes its own row only, next to rows holding the same version", async () => {
      const [gone, kept, alsoGone, alsoKept] = await seeded(4);
      const ids = [gone, kept, alsoGone, alsoKept].map((row) => row.key.id); // remove() clears the entity's id
      await alice.getRepository(Crate).remove(gone);
      await alice.getRepository(Crate).remove([alsoGone]);
      expect(await Promise.all(ids.map(rowOf))).toEqual([
        null,
        expect.objectContaining({ key: { id: ids[1], version: 1 } }),
        null,
        expect.objectContaining({ key: { id: ids[3], version: 1 } }),
      ]);
    });

    it("a remove of several rows in one call deletes them, and only them", async () => {
      const rows = await seeded(3);
      const ids = rows.map((row) => row.key.id); // remove() clears the entity's id
      await alice.getRepository(Crate).remove(rows.slice(0, 2));
      expect(await Promise.all(ids.map(rowOf))).toEqual([
        null,
        null,
        expect.objectContaining({ key: { id: ids[2], version: 1 } }),
      ]);
    });
  });
});
