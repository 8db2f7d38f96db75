/**
 * `@Versioned({ type })`: the version column has the declared type in the database (TypeORM
 * alone gives every version column its driver's type, whatever `@VersionColumn` says), the schema
 * stays in step with the metadata (no migration to generate), and a type the database does not
 * have is refused when the DataSource starts. On every database.
 */
import "reflect-metadata";
import { Column, type DataSource, Entity, PrimaryGeneratedColumn, VersionColumn } from "typeorm";
import { installLocking, LockingConfigurationError, OptimisticLockError, Versioned } from "../src";
import { closeAll, describeEachDatabase, openAlongside, openDataSources, type TestDatabase } from "./support/databases";

@Entity({ name: "vct_small" })
class Small {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @Versioned({ type: "smallint" }) version!: number;
}

@Entity({ name: "vct_default" })
class Default {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @Versioned() version!: number;
}

/** A subclass keeps the type its parent declared. */
@Entity({ name: "vct_small_child" })
class SmallChild extends Small {
  @Column({ default: "" }) note!: string;
}

/** An embedded value holding the version: the entity's version, with the type it declares. */
class Audit {
  @Column({ default: "" }) by!: string;
  @Versioned({ type: "smallint" }) version!: number;
}

@Entity({ name: "vct_embedded" })
class WithAudit {
  @PrimaryGeneratedColumn() id!: number;
  @Column(() => Audit) audit!: Audit;
}

/**
 * TypeORM's own decorator asking for a text column: TypeORM gives it the driver's integer type all
 * the same, which is why the library checks no version column's type (version-policy.ts). If a
 * TypeORM release kept the declared type, the test below fails first.
 */
@Entity({ name: "vct_text_asked" })
class TextAsked {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @VersionColumn({ type: "varchar" }) version!: number;
}

/** `@Versioned()`'s column name and comment reach the table. */
@Entity({ name: "vct_named" })
class Named {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @Versioned({ name: "row_version", comment: "guards every write" }) version!: number;
}

/** The comment of a table's column as the database keeps it (SQLite keeps none). */
async function storedComment(source: DataSource, db: TestDatabase, table: string, column: string): Promise<unknown> {
  const [row] = await source.query(
    db.family === "postgres"
      ? "SELECT col_description(c.oid, a.attnum) AS c FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid " +
          "WHERE c.relname = $1 AND a.attname = $2"
      : "SELECT COLUMN_COMMENT AS c FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?",
    [table, column],
  );
  return row?.c;
}

/** The type the database reports for a table's `version` column, lower case. */
async function storedType(source: DataSource, db: TestDatabase, table: string, column = "version"): Promise<string> {
  if (db.family === "sqlite") {
    const columns: Array<{ name: string; type: string }> = await source.query(`PRAGMA table_info("${table}")`);
    return String(columns.find((c) => c.name === column)?.type).toLowerCase();
  }
  const [row] = await source.query(
    db.family === "postgres"
      ? "SELECT data_type AS t FROM information_schema.columns WHERE table_name = $1 AND column_name = $2"
      : "SELECT DATA_TYPE AS t FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?",
    [table, column],
  );
  return String(row.t).toLowerCase();
}

describeEachDatabase((db) => {
  let a: DataSource;
  let b: DataSource;

  beforeAll(async () => {
    [a] = await openDataSources(db, [Small, Default, SmallChild, WithAudit, TextAsked, Named], {
      beforeInitialize: (s) => installLocking(s, { versionColumns: "checked" }),
    });
    b = await openAlongside(a);
    installLocking(b, { versionColumns: "checked" });
  });
  afterAll(() => closeAll(b, a));

  it("the declared type is the column's; without one, the driver's default", async () => {
    expect(await storedType(a, db, "vct_small")).toBe("smallint");
    expect(await storedType(a, db, "vct_small_child")).toBe("smallint");
    expect(await storedType(a, db, "vct_embedded", "auditVersion")).toBe("smallint");
    const driverDefault = { sqlite: "integer", postgres: "integer", mysql: "int" }[db.family];
    expect(await storedType(a, db, "vct_default")).toBe(driverDefault);
    expect(await storedType(a, db, "vct_text_asked")).toBe(driverDefault);
  });

  it("the column name and comment @Versioned() gives are the table's", async () => {
    const driverDefault = { sqlite: "integer", postgres: "integer", mysql: "int" }[db.family];
    expect(await storedType(a, db, "vct_named", "row_version")).toBe(driverDefault);
    if (db.family !== "sqlite")
      expect(await storedComment(a, db, "vct_named", "row_version")).toBe("guards every write");
  });

  it("the schema matches the metadata: synchronize has nothing left to do", async () => {
    const { upQueries } = await a.driver.createSchemaBuilder().log();
    expect(upQueries.map((q) => q.query)).toEqual([]);
  });

  it.each([
    ["a smallint @Versioned()", Small],
    ["a @VersionColumn that asked for text", TextAsked],
    ["a @Versioned() with a column name of its own", Named],
  ])("%s is checked like any other: a stale save is refused, nothing written", async (_, entity) => {
    const mine = a.getRepository<{ id: number; name: string }>(entity);
    const theirs = b.getRepository<{ id: number; name: string }>(entity);
    const { id } = await mine.save(mine.create({ name: "a" }));
    const stale = await theirs.findOneByOrFail({ id });
    const fresh = await mine.findOneByOrFail({ id });
    fresh.name = "b";
    await mine.save(fresh);
    stale.name = "c";
    expect(await theirs.save(stale).catch((e: unknown) => e)).toBeInstanceOf(OptimisticLockError);
    expect(await mine.findOneByOrFail({ id })).toMatchObject({ name: "b", version: 2 });
  });

  // SQLite takes any type name; PostgreSQL has no MEDIUMINT, MySQL and MariaDB no INT2.
  (db.family === "sqlite" ? it.skip : it)(
    "a declared type the database does not have is refused when the DataSource starts, naming the entity",
    async () => {
      const missing = db.family === "postgres" ? "mediumint" : "int2";
      @Entity({ name: "vct_missing" })
      class Missing {
        @PrimaryGeneratedColumn() id!: number;
        @Versioned({ type: missing as "int2" }) version!: number;
      }
      const error = await openDataSources(db, [Missing]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockingConfigurationError);
      expect((error as Error).message).toContain("Missing.version");
    },
  );
});

describe("@Versioned({ type })", () => {
  it("a type that is no integer column type is refused where it is declared", () => {
    expect(() => {
      class Float {
        @Versioned({ type: "float" as "int" }) version!: number;
      }
      return Float;
    }).toThrow(LockingConfigurationError);
  });
});
