/**
 * Set-up errors: clear, early, naming the entity and the property. These need no concurrency,
 * so they run on an in-memory SQLite database for each TypeORM line.
 */
import "reflect-metadata";
import { Column, DataSource, Entity, PrimaryGeneratedColumn, VersionColumn } from "typeorm";
import {
  installLocking,
  LockingConfigurationError,
  LockingError,
  OptimisticLockError,
  RowNotFoundError,
  updateVersioned,
  Versioned,
} from "../src";

function sqlite(entities: Function[]): DataSource {
  return new DataSource({ type: "better-sqlite3", database: ":memory:", entities, synchronize: true });
}

describe("set-up errors", () => {
  it("@Versioned on a non-number property fails at class definition, naming entity and property", () => {
    expect(() => {
      class Invoice {
        @Versioned() revision!: string;
      }
      return Invoice;
    }).toThrow(/@Versioned\(\) on Invoice\.revision needs an integer property.*String/);
  });

  it("two @Versioned properties on one entity fail at class definition", () => {
    const define = () => {
      class Twice {
        @Versioned() a!: number;
        @Versioned() b!: number;
      }
      return Twice;
    };
    expect(define).toThrow(LockingConfigurationError);
    expect(define).toThrow(/Twice has two @Versioned\(\) properties \("a" and "b"\)/);
  });

  it("@Versioned beside @VersionColumn fails at initialize() when installed before it", async () => {
    @Entity()
    class Both {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
      @VersionColumn() revision!: number;
    }
    const ds = installLocking(sqlite([Both]));
    await expect(ds.initialize()).rejects.toThrow(
      /Both declares @Versioned\(\) on "version" and @VersionColumn on "revision"/,
    );
    if (ds.isInitialized) await ds.destroy();
  });

  it("@Versioned beside @VersionColumn fails at installLocking() on an initialized DataSource", async () => {
    @Entity()
    class BothLater {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
      @VersionColumn() revision!: number;
    }
    // Without synchronize: its schema work would meet the entity first (and fail the same way).
    const ds = await new DataSource({
      type: "better-sqlite3",
      database: ":memory:",
      entities: [BothLater],
    }).initialize();
    try {
      expect(() => installLocking(ds)).toThrow(LockingConfigurationError);
    } finally {
      await ds.destroy();
    }
  });

  it("a checked @VersionColumn on a non-number property is refused, naming it", async () => {
    @Entity()
    class TextVersion {
      @PrimaryGeneratedColumn() id!: number;
      @VersionColumn() version!: string;
    }
    const ds = await sqlite([TextVersion]).initialize();
    try {
      expect(() => installLocking(ds, { versionColumns: "checked" })).toThrow(
        /TextVersion\.version is the version but is declared as String/,
      );
      expect(() => installLocking(ds, { versionColumns: "unchecked" })).not.toThrow();
    } finally {
      await ds.destroy();
    }
  });

  it("two checked @VersionColumns on one entity are refused", async () => {
    @Entity()
    class TwoColumns {
      @PrimaryGeneratedColumn() id!: number;
      @VersionColumn() a!: number;
      @VersionColumn() b!: number;
    }
    const ds = await sqlite([TwoColumns]).initialize();
    try {
      expect(() => installLocking(ds, { versionColumns: "checked" })).toThrow(/TwoColumns has 2 version columns/);
    } finally {
      await ds.destroy();
    }
  });

  it("an unknown versionColumns value and a non-DataSource are refused", () => {
    const ds = sqlite([]);
    expect(() => installLocking(ds, { versionColumns: "yes" as never })).toThrow(/versionColumns must be/);
    expect(() => installLocking({} as never)).toThrow(/not a DataSource/);
  });

  it("updateVersioned refuses an entity without version, a patch that sets the version, and a bad version", async () => {
    @Entity()
    class Unversioned {
      @PrimaryGeneratedColumn() id!: number;
      @Column() name!: string;
    }
    @Entity()
    class Doc {
      @PrimaryGeneratedColumn() id!: number;
      @Column() name!: string;
      @Versioned() version!: number;
    }
    const ds = installLocking(await sqlite([Unversioned, Doc]).initialize());
    try {
      await expect(updateVersioned(ds.getRepository(Unversioned), 1, 1, { name: "x" })).rejects.toThrow(
        /Unversioned has no version column/,
      );
      const docs = ds.getRepository(Doc);
      await expect(updateVersioned(docs, 1, 1, { version: 7 })).rejects.toThrow(/must not be in the patch/);
      await expect(updateVersioned(docs, 1, "v1", { name: "x" })).rejects.toThrow(LockingConfigurationError);
      await expect(updateVersioned(docs, 1, 1, { name: "x" })).rejects.toBeInstanceOf(RowNotFoundError);
    } finally {
      await ds.destroy();
    }
  });
});

describe("installation", () => {
  @Entity({ name: "install_item" })
  class Item {
    @PrimaryGeneratedColumn() id!: number;
    @Column() name!: string;
    @Versioned() version!: number;
  }

  it("works when installed before initialize()", async () => {
    const ds = installLocking(sqlite([Item]));
    await ds.initialize();
    try {
      const items = ds.getRepository(Item);
      const { id } = await items.save(items.create({ name: "a" }));
      const stale = await items.findOneByOrFail({ id });
      await updateVersioned(items, id, 1, { name: "b" });
      stale.name = "c";
      const error = await items.save(stale).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(error).toBeInstanceOf(LockingError);
      expect(await items.findOneByOrFail({ id })).toMatchObject({ name: "b", version: 2 });
    } finally {
      await ds.destroy();
    }
  });

  it("a version written to the entity by hand is never written to the row", async () => {
    const ds = installLocking(await sqlite([Item]).initialize());
    try {
      const items = ds.getRepository(Item);
      const item = await items.save(items.create({ name: "a" }));
      item.version = 99;
      item.name = "b";
      await expect(items.save(item)).rejects.toThrow(
        /version mismatch: expected 99, but the row is only at 1: the version sent is ahead of the row/,
      );
      expect(await items.findOneByOrFail({ id: item.id })).toMatchObject({ name: "a", version: 1 });
    } finally {
      await ds.destroy();
    }
  });
});
