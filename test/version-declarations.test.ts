/**
 * Every version declaration TypeORM accepts is checked (issue 22): a `string` property, and the
 * `bigint` and `decimal` columns of legacy schemas, whose values drivers hand back as strings
 * (node-postgres for int8/numeric, mysql2 for DECIMAL and with bigNumberStrings). Each runs in
 * checked mode (`@VersionColumn`) and with `@Versioned()`, through every write path, on two
 * DataSources; the property keeps its declared type throughout.
 *
 * TypeORM gives every version column the driver's version type (int/int4) when it synchronizes,
 * so the bigint and decimal columns are made the way a legacy app has them: by an ALTER after the
 * schema is created (on SQLite, whose columns take any integer, the tables stay as created).
 */
import "reflect-metadata";
import {
  Column,
  type DataSource,
  DeleteDateColumn,
  Entity,
  In,
  ManyToOne,
  OneToMany,
  PrimaryGeneratedColumn,
  type Repository,
  VersionColumn,
} from "typeorm";
import {
  assertVersion,
  checkIfMatch,
  currentVersionOf,
  installLocking,
  LockMode,
  lock,
  OptimisticLockError,
  StaleVersionError,
  updateVersioned,
  Versioned,
  VersionedBy,
  VersionOutOfRangeError,
  versionETag,
} from "../src";
import { closeAll, describeEachDatabase, openDataSources, type TestDatabase } from "./support/databases";

// --- checked mode: TypeORM's own @VersionColumn -------------------------------------------------

@Entity()
class TextVersionPost {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @DeleteDateColumn({ nullable: true }) deletedAt?: Date | null;
  @OneToMany(
    () => TextVersionLine,
    (line) => line.post,
  )
  lines?: TextVersionLine[];
  @VersionColumn() version!: string;
}

@Entity()
@VersionedBy(
  () => TextVersionPost,
  (line: TextVersionLine) => line.post,
)
class TextVersionLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() text!: string;
  @ManyToOne(
    () => TextVersionPost,
    (post) => post.lines,
  )
  post!: TextVersionPost;
}

@Entity()
class BigintVersionPost {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @DeleteDateColumn({ nullable: true }) deletedAt?: Date | null;
  @OneToMany(
    () => BigintVersionLine,
    (line) => line.post,
  )
  lines?: BigintVersionLine[];
  @VersionColumn() version!: number;
}

@Entity()
@VersionedBy(
  () => BigintVersionPost,
  (line: BigintVersionLine) => line.post,
)
class BigintVersionLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() text!: string;
  @ManyToOne(
    () => BigintVersionPost,
    (post) => post.lines,
  )
  post!: BigintVersionPost;
}

@Entity()
class DecimalVersionPost {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @DeleteDateColumn({ nullable: true }) deletedAt?: Date | null;
  @OneToMany(
    () => DecimalVersionLine,
    (line) => line.post,
  )
  lines?: DecimalVersionLine[];
  @VersionColumn() version!: string;
}

@Entity()
@VersionedBy(
  () => DecimalVersionPost,
  (line: DecimalVersionLine) => line.post,
)
class DecimalVersionLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() text!: string;
  @ManyToOne(
    () => DecimalVersionPost,
    (post) => post.lines,
  )
  post!: DecimalVersionPost;
}

// --- @Versioned() ---------------------------------------------------------------------------------

@Entity()
class TextVersionedPost {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @DeleteDateColumn({ nullable: true }) deletedAt?: Date | null;
  @OneToMany(
    () => TextVersionedLine,
    (line) => line.post,
  )
  lines?: TextVersionedLine[];
  @Versioned() version!: string;
}

@Entity()
@VersionedBy(
  () => TextVersionedPost,
  (line: TextVersionedLine) => line.post,
)
class TextVersionedLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() text!: string;
  @ManyToOne(
    () => TextVersionedPost,
    (post) => post.lines,
  )
  post!: TextVersionedPost;
}

@Entity()
class BigintVersionedPost {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @DeleteDateColumn({ nullable: true }) deletedAt?: Date | null;
  @OneToMany(
    () => BigintVersionedLine,
    (line) => line.post,
  )
  lines?: BigintVersionedLine[];
  @Versioned() version!: string;
}

@Entity()
@VersionedBy(
  () => BigintVersionedPost,
  (line: BigintVersionedLine) => line.post,
)
class BigintVersionedLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() text!: string;
  @ManyToOne(
    () => BigintVersionedPost,
    (post) => post.lines,
  )
  post!: BigintVersionedPost;
}

@Entity()
class DecimalVersionedPost {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @DeleteDateColumn({ nullable: true }) deletedAt?: Date | null;
  @OneToMany(
    () => DecimalVersionedLine,
    (line) => line.post,
  )
  lines?: DecimalVersionedLine[];
  @Versioned() version!: number;
}

@Entity()
@VersionedBy(
  () => DecimalVersionedPost,
  (line: DecimalVersionedLine) => line.post,
)
class DecimalVersionedLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() text!: string;
  @ManyToOne(
    () => DecimalVersionedPost,
    (post) => post.lines,
  )
  post!: DecimalVersionedPost;
}

@Entity()
class BigintPropertyPost {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @DeleteDateColumn({ nullable: true }) deletedAt?: Date | null;
  @OneToMany(
    () => BigintPropertyLine,
    (line) => line.post,
  )
  lines?: BigintPropertyLine[];
  @VersionColumn() version!: bigint;
}

@Entity()
@VersionedBy(
  () => BigintPropertyPost,
  (line: BigintPropertyLine) => line.post,
)
class BigintPropertyLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column() text!: string;
  @ManyToOne(
    () => BigintPropertyPost,
    (post) => post.lines,
  )
  post!: BigintPropertyPost;
}

/** A version property declared as a union (no one design type): it keeps the type it holds. */
@Entity()
class AsHeldPost {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @VersionColumn() version!: number | string;
  @DeleteDateColumn() deletedAt!: Date | null;
}

/** A legacy entity the library cannot check (two version columns), left out with the option. */
@Entity()
class TwoCounters {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @VersionColumn() version!: number;
  @VersionColumn() revision!: number;
}

type Post = { id: number; title: string; version: number | string | bigint; deletedAt?: Date | null };
type Line = { id: number; text: string; post: Post };

interface Declaration {
  name: string;
  post: Function;
  line: Function;
  column: "int" | "bigint" | "decimal";
  declared: "string" | "number" | "bigint";
}

const DECLARATIONS: Declaration[] = [
  {
    name: "@VersionColumn version: string",
    post: TextVersionPost,
    line: TextVersionLine,
    column: "int",
    declared: "string",
  },
  {
    name: "@VersionColumn on a bigint column",
    post: BigintVersionPost,
    line: BigintVersionLine,
    column: "bigint",
    declared: "number",
  },
  {
    name: "@VersionColumn version: string on a decimal column",
    post: DecimalVersionPost,
    line: DecimalVersionLine,
    column: "decimal",
    declared: "string",
  },
  {
    name: "@Versioned() version: string",
    post: TextVersionedPost,
    line: TextVersionedLine,
    column: "int",
    declared: "string",
  },
  {
    name: "@Versioned() version: string on a bigint column",
    post: BigintVersionedPost,
    line: BigintVersionedLine,
    column: "bigint",
    declared: "string",
  },
  {
    name: "@Versioned() version: number on a decimal column",
    post: DecimalVersionedPost,
    line: DecimalVersionedLine,
    column: "decimal",
    declared: "number",
  },
  {
    name: "@VersionColumn version: bigint on a bigint column",
    post: BigintPropertyPost,
    line: BigintPropertyLine,
    column: "bigint",
    declared: "bigint",
  },
];

const ENTITIES = [...DECLARATIONS.flatMap((d) => [d.post, d.line]), TwoCounters, AsHeldPost];
/** A held version as a client sends it back (a bigint travels as its digits). */
const sent = (version: number | string | bigint) => (typeof version === "bigint" ? version.toString() : version);
const BEYOND_SAFE = "9007199254740993"; // 2^53 + 1

/** The ALTER that gives a version column the type a legacy schema has (none on SQLite). */
async function widen(ds: DataSource, db: TestDatabase, entity: Function, column: "bigint" | "decimal"): Promise<void> {
  const metadata = ds.getMetadata(entity);
  const table = ds.driver.escape(metadata.tableName);
  const name = ds.driver.escape(metadata.versionColumn!.databaseName);
  if (db.family === "postgres") {
    await ds.query(
      `ALTER TABLE ${table} ALTER COLUMN ${name} TYPE ${column === "bigint" ? "bigint" : "numeric(20,0)"}`,
    );
  } else if (db.family === "mysql") {
    await ds.query(`ALTER TABLE ${table} MODIFY ${name} ${column === "bigint" ? "BIGINT" : "DECIMAL(20,0)"} NOT NULL`);
  }
}

describeEachDatabase((db) => {
  let a: DataSource;
  let b: DataSource;

  beforeAll(async () => {
    // mysql2 hands BIGINT back as a string only when asked to; DECIMAL always is one.
    const extra = db.family === "mysql" ? { supportBigNumbers: true, bigNumberStrings: true } : {};
    // Installed before initialize(): the @VersionedBy members make the library enforce itself
    // from the first query, and their @VersionColumn roots need checked mode by then.
    let n = 0;
    const beforeInitialize = (source: DataSource) =>
      installLocking(source, { versionColumns: "checked", exclude: n++ === 0 ? [TwoCounters] : ["TwoCounters"] });
    [a, b] = await openDataSources(db, ENTITIES, { count: 2, extra, beforeInitialize });
    for (const d of DECLARATIONS) if (d.column !== "int") await widen(a, db, d.post, d.column);
    await widen(a, db, AsHeldPost, "bigint");
  });
  afterAll(() => closeAll(a, b));

  it("a version property declared as a union keeps the type it holds: the driver's", async () => {
    const posts = a.getRepository(AsHeldPost);
    const { id } = await posts.save(posts.create({ title: "A" }));
    const loaded = await posts.findOneByOrFail({ id });
    const driverType = typeof loaded.version;
    // A bigint column reads as a string on PostgreSQL and MySQL (bigNumberStrings), a number on SQLite.
    expect(driverType).toBe(db.family === "sqlite" ? "number" : "string");
    loaded.title = "B";
    await posts.save(loaded);
    expect(loaded.version).toStrictEqual(driverType === "string" ? "2" : 2);
    const stale = await b.getRepository(AsHeldPost).findOneByOrFail({ id });
    await posts.save(Object.assign(loaded, { title: "C" }));
    stale.title = "D";
    expect(
      await b
        .getRepository(AsHeldPost)
        .save(stale)
        .catch((e: unknown) => e),
    ).toBeInstanceOf(OptimisticLockError);
  });

  // One row goes row by row; two in one call go through the batched statement (batchWrites on, the
  // default) or row by row again (CI's LOCKING_TEST_BATCH_WRITES=0 run). Neither path may hand back
  // a number where the entity held the driver's string, nor write a stale copy.
  it.each([
    1, 2,
  ])("a union-declared version keeps the type it holds through softRemove and recover (%i rows)", async (count) => {
    const posts = a.getRepository(AsHeldPost);
    const saved = await posts.save(Array.from({ length: count }, (_, i) => posts.create({ title: `R${i}` })));
    const ids = saved.map((p) => p.id);
    const loaded = await posts.findBy({ id: In(ids) });
    const stale = await b.getRepository(AsHeldPost).findBy({ id: In(ids) });
    const now = async () =>
      a.getRepository(AsHeldPost).find({ where: { id: In(ids) }, withDeleted: true, order: { id: "ASC" } });
    const versions = async () => (await now()).map((p) => p.version);
    loaded.sort((x, y) => x.id - y.id);

    await posts.softRemove(loaded);
    expect(loaded.map((p) => p.version)).toStrictEqual(await versions());
    expect((await now()).every((p) => p.deletedAt instanceof Date)).toBe(true);
    await posts.recover(loaded);
    expect(loaded.map((p) => p.version)).toStrictEqual(await versions());
    expect((await now()).every((p) => p.deletedAt === null)).toBe(true);
    // The same type as a fresh read, and two steps on: each write moved the version once.
    expect(loaded.map((p) => Number(p.version))).toStrictEqual(ids.map(() => 3));

    // A copy read before both is stale for either.
    for (const write of ["softRemove", "save"] as const) {
      stale[0].title = "stale";
      const error = await b
        .getRepository(AsHeldPost)
        [write](stale)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OptimisticLockError);
    }
    expect(await versions()).toStrictEqual(loaded.map((p) => p.version));
  });

  describe.each(DECLARATIONS)("$name", (d) => {
    let posts: Repository<Post>;
    let otherPosts: Repository<Post>;
    let lines: Repository<Line>;
    /** The version in the property's declared type. */
    const v = (n: number) => (d.declared === "string" ? String(n) : d.declared === "bigint" ? BigInt(n) : n);

    beforeAll(() => {
      posts = a.getRepository(d.post) as Repository<Post>;
      otherPosts = b.getRepository(d.post) as Repository<Post>;
      lines = a.getRepository(d.line) as Repository<Line>;
    });

    async function newPost(): Promise<Post> {
      return posts.save(posts.create({ title: "A" }));
    }

    if (d.column !== "int" && db.family !== "sqlite") {
      it("the driver hands the version back as a string (the case under test)", async () => {
        const { id } = await newPost();
        const metadata = a.getMetadata(d.post);
        const [row] = await a.query(
          `SELECT ${a.driver.escape(metadata.versionColumn!.databaseName)} AS v FROM ${a.driver.escape(metadata.tableName)} WHERE id = ${id}`,
        );
        expect(typeof row.v).toBe("string");
      });
    }

    it("save keeps the declared type through insert, update and reload", async () => {
      const post = await newPost();
      expect(post.version).toStrictEqual(v(1));
      post.title = "B";
      await posts.save(post);
      expect(post.version).toStrictEqual(v(2));
      const loaded = await posts.findOneByOrFail({ id: post.id });
      expect(loaded.version).toStrictEqual(v(2));
      loaded.title = "C";
      await posts.save(loaded);
      expect(loaded.version).toStrictEqual(v(3));
    });

    it("a stale save on another DataSource throws OptimisticLockError and writes nothing", async () => {
      const { id } = await newPost();
      const operator = await otherPosts.findOneByOrFail({ id });
      const customer = await posts.findOneByOrFail({ id });
      customer.title = "CUSTOMER";
      await posts.save(customer);
      operator.title = "OPERATOR";
      const error = await otherPosts.save(operator).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(error).toMatchObject({ expectedVersion: 1 });
      expect(await currentVersionOf(a, error as OptimisticLockError)).toBe(2);
      expect(await posts.findOneByOrFail({ id })).toMatchObject({ title: "CUSTOMER", version: v(2) });
    });

    it("an entity carrying an older version than it was loaded with is refused as stale", async () => {
      const { id } = await newPost();
      const post = await posts.findOneByOrFail({ id });
      await updateVersioned(posts, id, sent(post.version), { title: "MOVED" });
      const loaded = await posts.findOneByOrFail({ id });
      loaded.version = v(1); // what the client sent back
      loaded.title = "CLIENT";
      await expect(posts.save(loaded)).rejects.toBeInstanceOf(StaleVersionError);
      expect(await posts.findOneByOrFail({ id })).toMatchObject({ title: "MOVED", version: v(2) });
    });

    it("remove and softRemove of a stale copy fail; of a fresh copy succeed", async () => {
      const { id } = await newPost();
      const stale = await otherPosts.findOneByOrFail({ id });
      const fresh = await posts.findOneByOrFail({ id });
      fresh.title = "B";
      await posts.save(fresh);
      await expect(otherPosts.remove(stale)).rejects.toBeInstanceOf(OptimisticLockError);
      await expect(otherPosts.softRemove(stale)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await posts.findOneBy({ id })).toMatchObject({ title: "B", version: v(2) });

      await posts.softRemove(fresh);
      expect(fresh.version).toStrictEqual(v(3));
      const deleted = await posts.findOneOrFail({ where: { id }, withDeleted: true });
      expect(deleted.version).toStrictEqual(v(3));
      await posts.recover(deleted);
      expect(deleted.version).toStrictEqual(v(4));
      await posts.remove(deleted);
      expect(await posts.findOne({ where: { id }, withDeleted: true })).toBeNull();
    });

    it("a member change bumps the root, which keeps its type; a stale root fails the member's save", async () => {
      const root = await newPost();
      const line = lines.create({ text: "x" });
      line.post = root; // the root object itself (create() would copy it)
      await lines.save(line);
      expect(root.version).toStrictEqual(v(2));
      const loaded = await lines.findOneOrFail({ where: { id: line.id }, relations: { post: true } });
      expect(loaded.post.version).toStrictEqual(v(2));
      loaded.text = "y";
      await lines.save(loaded);
      expect(loaded.post.version).toStrictEqual(v(3));

      const staleLine = await lines.findOneOrFail({ where: { id: line.id }, relations: { post: true } });
      const other = await otherPosts.findOneByOrFail({ id: root.id });
      other.title = "MOVED";
      await otherPosts.save(other);
      staleLine.text = "z";
      await expect(lines.save(staleLine)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await lines.findOneByOrFail({ id: line.id })).toMatchObject({ text: "y" });
      expect(await posts.findOneByOrFail({ id: root.id })).toMatchObject({ title: "MOVED", version: v(4) });
    });

    it("updateVersioned takes the version as the entity holds it; a stale one fails", async () => {
      const post = await newPost();
      expect(await updateVersioned(posts, post.id, sent(post.version), { title: "B" })).toBe(2);
      // The row is at 2: the version sent is the caller's stale copy (StaleVersionError, never retried).
      const error = await updateVersioned(otherPosts, post.id, sent(post.version), { title: "C" }).catch((e) => e);
      expect(error).toBeInstanceOf(StaleVersionError);
      expect(error).toMatchObject({ expectedVersion: 1, actualVersion: 2 });
      expect(await posts.findOneByOrFail({ id: post.id })).toMatchObject({ title: "B", version: v(2) });
    });

    it("assertVersion and If-Match compare the version the entity holds", async () => {
      const post = await newPost();
      const loaded = await posts.findOneByOrFail({ id: post.id });
      expect(() => assertVersion(loaded, 1)).not.toThrow();
      expect(() => assertVersion(loaded, "1")).not.toThrow();
      expect(() => checkIfMatch(loaded, '"1"')).not.toThrow();
      expect(versionETag(loaded.version)).toBe('"1"');
      expect(() => assertVersion(loaded, 2)).toThrow(StaleVersionError);
      expect(() => checkIfMatch(loaded, '"2"')).toThrow(StaleVersionError);
    });

    it("a force-increment lock writes the version back in its declared type", async () => {
      const { id } = await newPost();
      await a.transaction(async (manager) => {
        const post = (await manager.findOneByOrFail(d.post, { id })) as Post;
        await lock(manager, post, LockMode.PESSIMISTIC_FORCE_INCREMENT);
        expect(post.version).toStrictEqual(v(2));
        await lock(manager, post, LockMode.OPTIMISTIC_FORCE_INCREMENT);
      });
      expect(await posts.findOneByOrFail({ id })).toMatchObject({ version: v(3) });
    });
  });

  describe("a version beyond 2^53-1 in a bigint column", () => {
    for (const entity of [BigintVersionPost, BigintVersionedPost]) {
      it(`${entity.name}: is refused with VersionOutOfRangeError, nothing written`, async () => {
        const posts = a.getRepository(entity) as Repository<Post>;
        const { id } = await posts.save(posts.create({ title: "A" }));
        const metadata = a.getMetadata(entity);
        await a
          .createQueryBuilder()
          .update(entity)
          .set({ version: () => BEYOND_SAFE } as never)
          .where({ id })
          .execute();
        const [row] = await a.query(
          `SELECT ${a.driver.escape(metadata.versionColumn!.databaseName)} AS v FROM ${a.driver.escape(metadata.tableName)} WHERE id = ${id}`,
        );
        const held = String(row.v);
        const post = await posts.findOneByOrFail({ id });
        post.title = "B";
        const error = await posts.save(post).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(VersionOutOfRangeError);
        expect(error).toMatchObject({ entityName: entity.name, versionProperty: "version" });
        expect((error as Error).message).toMatch(/above 2\^53-1.*OptimisticLockExcluded\(\).*exclude/);
        await expect(posts.remove(post)).rejects.toBeInstanceOf(VersionOutOfRangeError);
        const [after] = await a.query(
          `SELECT title, ${a.driver.escape(metadata.versionColumn!.databaseName)} AS v FROM ${a.driver.escape(metadata.tableName)} WHERE id = ${id}`,
        );
        expect(after.title).toBe("A");
        expect(String(after.v)).toBe(held);
      });
    }
  });

  it("an entity left out of checked mode keeps TypeORM's behaviour; the others stay checked", async () => {
    const counters = a.getRepository(TwoCounters);
    const { id } = await counters.save(counters.create({ title: "A" }));
    const stale = await b.getRepository(TwoCounters).findOneByOrFail({ id });
    await counters.save({ id, title: "B" }); // no version held: TypeORM's plain update
    stale.title = "C";
    await b.getRepository(TwoCounters).save(stale); // stale, accepted as plain TypeORM does
    expect(await counters.findOneByOrFail({ id })).toMatchObject({ title: "C" });
  });
});
