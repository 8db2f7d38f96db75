/**
 * Set-up errors: clear, early, naming the entity and the property. These need no concurrency,
 * so they run on an in-memory SQLite database for each TypeORM line.
 */
import "reflect-metadata";
import {
  Column,
  DataSource,
  Entity,
  EntitySchema,
  ManyToOne,
  PrimaryGeneratedColumn,
  type Repository,
  VersionColumn,
} from "typeorm";
import {
  installLocking,
  LockingConfigurationError,
  LockingError,
  OptimisticLockError,
  OptimisticLockExcluded,
  RowNotFoundError,
  updateVersioned,
  Versioned,
  VersionedBy,
} from "../src";

function sqlite(entities: Array<Function | EntitySchema>): DataSource {
  return new DataSource({ type: "better-sqlite3", database: ":memory:", entities, synchronize: true });
}

describe("set-up errors", () => {
  it("@Versioned on a property that cannot hold a version fails at class definition, naming it", () => {
    expect(() => {
      class Invoice {
        @Versioned() revision!: boolean;
      }
      return Invoice;
    }).toThrow(/@Versioned\(\) on Invoice\.revision needs a property that holds a version number.*Boolean/);
    expect(() => {
      class Receipt {
        @Versioned() revision!: Date;
      }
      return Receipt;
    }).toThrow(/Receipt\.revision.*Date/);
  });

  it("@Versioned on a string, an any or a bigint property is accepted (issue 22)", () => {
    expect(() => {
      class Ticket {
        @Versioned() a!: string;
      }
      class Stub {
        // biome-ignore lint/suspicious/noExplicitAny: what a legacy entity may declare
        @Versioned() a!: any;
      }
      class Wide {
        @Versioned() a!: bigint;
      }
      return [Ticket, Stub, Wide];
    }).not.toThrow();
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

  it("a checked @VersionColumn on a property that cannot hold a version is refused, naming it and the opt-out", async () => {
    @Entity()
    class DateVersion {
      @PrimaryGeneratedColumn() id!: number;
      @VersionColumn() version!: Date;
    }
    const ds = await sqlite([DateVersion]).initialize();
    try {
      expect(() => installLocking(ds, { versionColumns: "checked" })).toThrow(
        /DateVersion\.version is the version but is declared as Date.*@OptimisticLockExcluded\(\) on its class or installLocking\(dataSource, \{ versionColumns: "checked", exclude: \[DateVersion\] \}\)/,
      );
      expect(() => installLocking(ds, { versionColumns: "unchecked" })).not.toThrow();
    } finally {
      await ds.destroy();
    }
  });

  it("a checked @VersionColumn in an embedded value, on a property that cannot hold a version, is refused too", async () => {
    class Stamp {
      @VersionColumn() version!: Date;
    }
    @Entity()
    class EmbeddedDateVersion {
      @PrimaryGeneratedColumn() id!: number;
      @Column(() => Stamp) stamp!: Stamp;
    }
    class NumberStamp {
      @VersionColumn() version!: number;
    }
    @Entity()
    class EmbeddedNumberVersion {
      @PrimaryGeneratedColumn() id!: number;
      @Column(() => NumberStamp) stamp!: NumberStamp;
    }
    const ds = await sqlite([EmbeddedDateVersion, EmbeddedNumberVersion]).initialize();
    try {
      expect(() => installLocking(ds, { versionColumns: "checked" })).toThrow(
        /^EmbeddedDateVersion\.stamp\.version is the version but is declared as Date/,
      );
      expect(() => installLocking(ds, { versionColumns: "checked", exclude: [EmbeddedDateVersion] })).not.toThrow();
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
      expect(() => installLocking(ds, { versionColumns: "checked" })).toThrow(
        /TwoColumns has 2 version columns.*@OptimisticLockExcluded\(\).*exclude: \[TwoColumns\]/,
      );
      // Unchecked, they are TypeORM's to bump, as without the library.
      expect(() => installLocking(ds, { versionColumns: "unchecked" })).not.toThrow();
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

describe("leaving entities out of checked mode (issue 22)", () => {
  @Entity({ name: "optout_checked" })
  class Checked {
    @PrimaryGeneratedColumn() id!: number;
    @Column() name!: string;
    @VersionColumn() version!: number;
  }

  @Entity({ name: "optout_two" })
  class TwoVersions {
    @PrimaryGeneratedColumn() id!: number;
    @Column() name!: string;
    @VersionColumn() version!: number;
    @VersionColumn() revision!: number;
  }

  @Entity({ name: "optout_marked" })
  @OptimisticLockExcluded()
  class Marked {
    @PrimaryGeneratedColumn() id!: number;
    @Column() name!: string;
    @VersionColumn() version!: Date;
  }

  /** A stale save of `entity` on `ds`: undefined when accepted, the error when refused. */
  async function staleSave(ds: DataSource, entity: Function | EntitySchema): Promise<unknown> {
    const repo = ds.getRepository(entity) as Repository<{ id: number; name: string }>;
    const { id } = await repo.save(repo.create({ name: "a" }));
    const stale = await repo.findOneByOrFail({ id });
    const fresh = await repo.findOneByOrFail({ id });
    fresh.name = "b";
    await repo.save(fresh);
    stale.name = "c";
    return repo.save(stale).then(
      () => undefined,
      (e: unknown) => e,
    );
  }

  it("@OptimisticLockExcluded() on the class leaves that entity to TypeORM; the others stay checked", async () => {
    const ds = installLocking(await sqlite([Checked, Marked]).initialize(), { versionColumns: "checked" });
    try {
      expect(await staleSave(ds, Marked)).toBeUndefined();
      expect(await staleSave(ds, Checked)).toBeInstanceOf(OptimisticLockError);
    } finally {
      await ds.destroy();
    }
  });

  it('exclude: [Entity] or ["Name"] does the same for entities whose code you do not own', async () => {
    for (const exclude of [[TwoVersions], ["TwoVersions"]]) {
      const ds = await sqlite([Checked, TwoVersions]).initialize();
      try {
        expect(() => installLocking(ds, { versionColumns: "checked" })).toThrow(/TwoVersions has 2 version columns/);
        installLocking(ds, { versionColumns: "checked", exclude });
        expect(await staleSave(ds, TwoVersions)).toBeUndefined();
        expect(await staleSave(ds, Checked)).toBeInstanceOf(OptimisticLockError);
      } finally {
        await ds.destroy();
      }
    }
  });

  it("exclude applies to the entities of an excluded base class, and to changes of the list on re-install", async () => {
    abstract class LegacyBase {
      @PrimaryGeneratedColumn() id!: number;
      @Column() name!: string;
      @VersionColumn() version!: number;
    }
    @Entity({ name: "optout_child" })
    class Child extends LegacyBase {}
    const ds = await sqlite([Child]).initialize();
    try {
      installLocking(ds, { versionColumns: "checked", exclude: [LegacyBase] });
      expect(await staleSave(ds, Child)).toBeUndefined();
    } finally {
      await ds.destroy();
    }
    const again = await sqlite([Child, Checked]).initialize();
    try {
      installLocking(again, { versionColumns: "checked", exclude: [Checked] });
      installLocking(again, { versionColumns: "checked", exclude: [] });
      expect(await staleSave(again, Checked)).toBeInstanceOf(OptimisticLockError);
    } finally {
      await again.destroy();
    }
  });

  it("every entity that cannot be checked is named in one error, with the exclude list that leaves them out", async () => {
    @Entity({ name: "optout_bool" })
    class BoolVersion {
      @PrimaryGeneratedColumn() id!: number;
      @VersionColumn() version!: boolean;
    }
    const ds = await sqlite([Checked, TwoVersions, BoolVersion]).initialize();
    try {
      let message = "";
      try {
        installLocking(ds, { versionColumns: "checked" });
      } catch (error) {
        expect(error).toBeInstanceOf(LockingConfigurationError);
        message = (error as Error).message;
      }
      expect(message).toMatch(/^2 entities cannot be version-checked:/);
      expect(message).toMatch(/- TwoVersions has 2 version columns/);
      expect(message).toMatch(/- BoolVersion\.version is the version but is declared as Boolean/);
      expect(message).toMatch(/exclude: \[TwoVersions, BoolVersion\] \}\)\.$/);
      installLocking(ds, { versionColumns: "checked", exclude: [TwoVersions, BoolVersion] });
      expect(await staleSave(ds, Checked)).toBeInstanceOf(OptimisticLockError);
    } finally {
      await ds.destroy();
    }
  });

  it("that exclude list leaves out the @Versioned() entities (they cannot be excluded); with only those, there is none", async () => {
    @Entity({ name: "optout_both" })
    class Both {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
      @VersionColumn() other!: number;
    }
    @Entity({ name: "optout_versioned_excluded" })
    @OptimisticLockExcluded()
    class VersionedExcluded {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
    }
    @Entity({ name: "optout_bool_too" })
    class BoolToo {
      @PrimaryGeneratedColumn() id!: number;
      @VersionColumn() version!: boolean;
    }
    const refusal = async (entities: Function[]) => {
      const ds = await sqlite(entities).initialize();
      try {
        installLocking(ds, { versionColumns: "checked" });
      } catch (error) {
        expect(error).toBeInstanceOf(LockingConfigurationError);
        return (error as Error).message;
      } finally {
        await ds.destroy();
      }
      throw new Error("installLocking() took the entities");
    };
    const mixed = await refusal([Both, BoolToo]);
    expect(mixed).toMatch(/^2 entities cannot be version-checked:/);
    expect(mixed).toMatch(/- Both declares @Versioned\(\) on "version" and @VersionColumn on "other"/);
    expect(mixed).toMatch(/exclude: \[BoolToo\] \}\)\.$/);
    const versionedOnly = await refusal([Both, VersionedExcluded]);
    expect(versionedOnly).toMatch(/^2 entities cannot be version-checked:/);
    expect(versionedOnly).toMatch(
      /- VersionedExcluded declares @Versioned\(\) on "version" and is excluded by @OptimisticLockExcluded\(\)/,
    );
    expect(versionedOnly).not.toMatch(/exclude: \[/);
  });

  it("an exclude list naming no entity of the DataSource, or not a list, is refused", async () => {
    const ds = await sqlite([Checked]).initialize();
    try {
      expect(() => installLocking(ds, { versionColumns: "checked", exclude: ["Chekced"] })).toThrow(
        /exclude names "Chekced", which is not an entity of this DataSource/,
      );
      expect(() => installLocking(ds, { versionColumns: "checked", exclude: [TwoVersions] })).toThrow(
        /exclude names TwoVersions/,
      );
      expect(() => installLocking(ds, { versionColumns: "checked", exclude: "Checked" as never })).toThrow(
        /exclude must be a list/,
      );
    } finally {
      await ds.destroy();
    }
  });

  it('an EntitySchema entity is excluded by its name: exclude: ["LegacyRow"]', async () => {
    const legacyRows = new EntitySchema<{ id: number; name: string; version: number; revision: number }>({
      name: "LegacyRow",
      tableName: "optout_schema",
      columns: {
        id: { type: Number, primary: true, generated: true },
        name: { type: String },
        version: { type: Number, version: true },
        revision: { type: Number, version: true },
      },
    });
    const ds = await sqlite([Checked, legacyRows]).initialize();
    try {
      expect(() => installLocking(ds, { versionColumns: "checked" })).toThrow(/LegacyRow has 2 version columns/);
      installLocking(ds, { versionColumns: "checked", exclude: ["LegacyRow"] });
      expect(await staleSave(ds, legacyRows)).toBeUndefined();
      expect(await staleSave(ds, Checked)).toBeInstanceOf(OptimisticLockError);
    } finally {
      await ds.destroy();
    }
  });

  it("exclude: [Entity] leaves an EntitySchema entity (its target is its name, no class) checked", async () => {
    const schemaRows = new EntitySchema<{ id: number; name: string; version: number }>({
      name: "SchemaRow",
      tableName: "optout_schema_checked",
      columns: {
        id: { type: Number, primary: true, generated: true },
        name: { type: String },
        version: { type: Number, version: true },
      },
    });
    const ds = await sqlite([Checked, schemaRows]).initialize();
    try {
      // A class entry is looked for among the schema entity's parent classes, which it has none of.
      installLocking(ds, { versionColumns: "checked", exclude: [Checked] });
      expect(await staleSave(ds, schemaRows)).toBeInstanceOf(OptimisticLockError);
      expect(await staleSave(ds, Checked)).toBeUndefined();
    } finally {
      await ds.destroy();
    }
  });

  it("exclude beside @Versioned() is refused, as @OptimisticLockExcluded() is: by class, by name, by a parent class", async () => {
    abstract class Base {
      @PrimaryGeneratedColumn() id!: number;
      @Column() name!: string;
    }
    @Entity({ name: "optout_versioned_by_option" })
    class Asked extends Base {
      @Versioned() version!: number;
    }
    const ds = await sqlite([Asked, Checked]).initialize();
    try {
      for (const exclude of [[Asked], ["Asked"], [Base]]) {
        expect(() => installLocking(ds, { versionColumns: "checked", exclude })).toThrow(
          /Asked declares @Versioned\(\) on "version" and is excluded by installLocking\(\)'s exclude option/,
        );
      }
      installLocking(ds, { versionColumns: "checked", exclude: [] });
      expect(await staleSave(ds, Asked)).toBeInstanceOf(OptimisticLockError);
    } finally {
      await ds.destroy();
    }
  });

  it("exclude of a @VersionedBy member is refused, as @OptimisticLockExcluded() on its class is", async () => {
    @Entity({ name: "optout_option_root" })
    class Root {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
    }
    abstract class MemberBase {
      @PrimaryGeneratedColumn() id!: number;
    }
    @Entity({ name: "optout_option_member" })
    @VersionedBy(
      () => Root,
      (m: Member) => m.root,
    )
    class Member extends MemberBase {
      @ManyToOne(() => Root) root!: Root;
    }
    const ds = await sqlite([Root, Member]).initialize();
    try {
      for (const exclude of [[Member], ["Member"], [MemberBase]]) {
        expect(() => installLocking(ds, { exclude })).toThrow(
          /Member has @VersionedBy and is excluded by installLocking\(\)'s exclude option: a member of an aggregate is checked through its root/,
        );
      }
      installLocking(ds);
      // Still a member: its insert moves the root, so a stale copy of the root is refused.
      const root = await ds.getRepository(Root).save(ds.getRepository(Root).create());
      const stale = await ds.getRepository(Root).findOneByOrFail({ id: root.id });
      await ds.getRepository(Member).save(ds.getRepository(Member).create({ root }));
      await expect(ds.getRepository(Root).save(stale)).rejects.toBeInstanceOf(OptimisticLockError);
    } finally {
      await ds.destroy();
    }
  });

  it("a member that cannot be checked is refused without offering an exclusion (it cannot have one)", async () => {
    @Entity({ name: "optout_refused_root" })
    class Root {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
    }
    @Entity({ name: "optout_refused_member" })
    @VersionedBy(
      () => Root,
      (m: TwoVersionMember) => m.root,
    )
    class TwoVersionMember {
      @PrimaryGeneratedColumn() id!: number;
      @ManyToOne(() => Root) root!: Root;
      @VersionColumn() version!: number;
      @VersionColumn() revision!: number;
    }
    const ds = await sqlite([Root, TwoVersionMember, TwoVersions]).initialize();
    try {
      let combined = "";
      try {
        installLocking(ds, { versionColumns: "checked" });
      } catch (error) {
        expect(error).toBeInstanceOf(LockingConfigurationError);
        combined = (error as Error).message;
      }
      expect(combined).toMatch(/^2 entities cannot be version-checked:/);
      expect(combined).toMatch(/- TwoVersionMember has 2 version columns .*Remove all but one\.\n/);
      expect(combined).toMatch(/exclude: \[TwoVersions\] \}\)\.$/);
      installLocking(ds, { versionColumns: "checked", exclude: [TwoVersions] });
    } catch (error) {
      expect(error).toBeInstanceOf(LockingConfigurationError);
      expect((error as Error).message).toMatch(/^TwoVersionMember has 2 version columns .*Remove all but one\.$/);
      return;
    } finally {
      await ds.destroy();
    }
    throw new Error("installLocking() took the member");
  });

  it("@OptimisticLockExcluded() on a class with @Versioned() or @VersionedBy is refused", async () => {
    @Entity({ name: "optout_versioned" })
    @OptimisticLockExcluded()
    class Contradiction {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
    }
    // The library enforces @Versioned() from the DataSource's first query after initialize().
    const ds = await sqlite([Contradiction]).initialize();
    try {
      await expect(ds.getRepository(Contradiction).save({})).rejects.toThrow(
        /Contradiction declares @Versioned\(\).*@OptimisticLockExcluded\(\)/,
      );
    } finally {
      await ds.destroy();
    }

    @Entity({ name: "optout_root" })
    class Root {
      @PrimaryGeneratedColumn() id!: number;
      @Versioned() version!: number;
    }
    @Entity({ name: "optout_member" })
    @OptimisticLockExcluded()
    @VersionedBy(
      () => Root,
      (m: Member) => m.root,
    )
    class Member {
      @PrimaryGeneratedColumn() id!: number;
      @ManyToOne(() => Root) root!: Root;
    }
    const members = await sqlite([Root, Member]).initialize();
    try {
      await expect(members.getRepository(Root).find()).rejects.toThrow(
        /Member has @VersionedBy and is excluded by @OptimisticLockExcluded\(\) on its class/,
      );
    } finally {
      await members.destroy();
    }
  });
});

describe("a TypeORM build the library cannot hook is refused at import, naming what is missing", () => {
  /**
   * Imports the library into a fresh module registry (its own copy of TypeORM) after `prepare`
   * changed that copy; the error the import threw, with the registry's own error classes.
   */
  function importAfter(prepare: () => void): { error: unknown; errors: typeof import("../src/errors") } {
    let error: unknown;
    let errors: typeof import("../src/errors") | undefined;
    jest.isolateModules(() => {
      errors = require("../src/errors");
      prepare();
      try {
        require("../src");
      } catch (thrown) {
        error = thrown;
      }
    });
    return { error, errors: errors as typeof import("../src/errors") };
  }

  // One method of each hooked class: a release that drops any of them leaves writes unchecked.
  it.each([
    ["subjectExecutor", "executeRecoverOperations", "persistence/SubjectExecutor.js", "SubjectExecutor"],
    ["updateQueryBuilder", "whereEntity", "query-builder/UpdateQueryBuilder.js", "UpdateQueryBuilder"],
    [
      "softDeleteQueryBuilder",
      "createWhereExpression",
      "query-builder/SoftDeleteQueryBuilder.js",
      "SoftDeleteQueryBuilder",
    ],
    ["deleteQueryBuilder", "where", "query-builder/DeleteQueryBuilder.js", "DeleteQueryBuilder"],
    ["insertQueryBuilder", "execute", "query-builder/InsertQueryBuilder.js", "InsertQueryBuilder"],
    ["returningUpdator", "update", "query-builder/ReturningResultsEntityUpdator.js", "ReturningResultsEntityUpdator"],
    ["selectQueryBuilder", "createLockExpression", "query-builder/SelectQueryBuilder.js", "SelectQueryBuilder"],
    ["entityPersistExecutor", "execute", "persistence/EntityPersistExecutor.js", "EntityPersistExecutor"],
    [
      "subjectDatabaseEntityLoader",
      "load",
      "persistence/SubjectDatabaseEntityLoader.js",
      "SubjectDatabaseEntityLoader",
    ],
    ["queryExpressionMap", "clone", "query-builder/QueryExpressionMap.js", "QueryExpressionMap"],
    [
      "materializedPathExecutor",
      "update",
      "persistence/tree/MaterializedPathSubjectExecutor.js",
      "MaterializedPathSubjectExecutor",
    ],
    ["dataSource", "buildMetadatas", "data-source/DataSource.js", "DataSource"],
  ])("%s.%s missing", (key, method, path, className) => {
    const { error, errors } = importAfter(() => {
      const prototype = require(`typeorm/${path}`)[className].prototype;
      // An own property hides an inherited method too, and only this class loses it.
      Object.defineProperty(prototype, method, { value: undefined, configurable: true, writable: true });
    });
    expect(error).toBeInstanceOf(errors.LockingConfigurationError);
    expect((error as Error).message).toMatch(new RegExp(`${key}\\.${method} is missing`));
  });

  const moved = "typeorm/query-builder/InsertQueryBuilder.js";
  afterEach(() => jest.dontMock(moved));

  /** `typeormInternals()` of a fresh registry in which `path` fails to load or lacks its class. */
  function internalsWith(path: string, factory: () => unknown) {
    let error: unknown;
    let errors: typeof import("../src/errors") | undefined;
    jest.isolateModules(() => {
      jest.doMock(path, factory);
      errors = require("../src/errors");
      try {
        require("../src/typeorm/internals").typeormInternals();
      } catch (thrown) {
        error = thrown;
      }
    });
    return { error, errors: errors as typeof import("../src/errors") };
  }

  // TypeORM's own index loads these too: a release that moved one fails at TypeORM's import, or
  // here, for the paths only the library loads.
  it("a module that fails to load is refused, with the load error as cause", () => {
    const failure = new Error("moved away");
    const { error, errors } = internalsWith(moved, () => {
      throw failure;
    });
    expect(error).toBeInstanceOf(errors.LockingConfigurationError);
    expect((error as Error).message).toMatch(/cannot load typeorm\//);
    expect((error as Error).cause).toBe(failure);
  });

  it("a module without the expected class is refused", () => {
    const { error, errors } = internalsWith(moved, () => ({}));
    expect(error).toBeInstanceOf(errors.LockingConfigurationError);
    expect((error as Error).message).toMatch(/InsertQueryBuilder\.js has no InsertQueryBuilder/);
  });

  it("the TypeORM build of this test run is accepted", () => {
    expect(importAfter(() => {}).error).toBeUndefined();
  });
});
