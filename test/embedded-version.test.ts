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
});
