/**
 * Forgetting installLocking() is never silent: the library's own decorators (`@Versioned()`,
 * `@VersionedBy`) and lock requests (`withLockMode`, `lockQuery`, `@Lock`, `lock()`, OPTIMISTIC
 * and force increments) are enforced on DataSources never passed to it, which behave as
 * `installLocking(dataSource)` with the default options. A TypeORM `@VersionColumn` there stays
 * plain TypeORM: that is the switch an existing app adopts the library by.
 */
import "reflect-metadata";
import {
  Column,
  DataSource,
  Entity,
  type EntityManager,
  EntitySchema,
  ManyToOne,
  type MigrationInterface,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  QueryFailedError,
  type QueryRunner,
  Repository,
  VersionColumn,
} from "typeorm";
import {
  installLocking,
  Lock,
  LockingConfigurationError,
  LockingError,
  LockMode,
  LockTimeoutError,
  lock,
  lockQuery,
  OptimisticLockError,
  Retryable,
  SerializationError,
  Versioned,
  VersionedBy,
  withLockMode,
} from "../src";
import { AGGREGATE_ENTITIES, AggLine, AggOrder } from "./fixtures/aggregate-entities";
import { ALL_ENTITIES, LegacyOrder, Order } from "./fixtures/entities";
import { Job } from "./fixtures/lock-entities";
import {
  closeAll,
  deferred,
  describeEachDatabase,
  openAlongside,
  openDataSources,
  StatementCounter,
} from "./support/databases";
import { waitUntilBlocked } from "./support/interleaving";
import { operatorSavesAfterCustomer } from "./support/stories";

/** A Spring-Data-style repository of an entity without any library decorator. */
class JobRepository extends Repository<Job> {
  @Lock(LockMode.PESSIMISTIC_WRITE, { timeout: 0 })
  findForWork(id: number): Promise<Job | null> {
    return this.findOneBy({ id });
  }
}

describeEachDatabase((db) => {
  const sqlite = db.family === "sqlite";
  const counter = new StatementCounter();
  /** Two clients of one database whose entities use @Versioned()/@VersionedBy; never installed. */
  let alice: DataSource;
  let bob: DataSource;
  /** Two clients that map only entities without library decorators; never installed. */
  let plainOne: DataSource;
  let plainTwo: DataSource;
  let nextJob = 1;

  beforeAll(async () => {
    [alice, bob] = await openDataSources(db, [...ALL_ENTITIES, ...AGGREGATE_ENTITIES, Job], { count: 2 });
    plainOne = await openAlongside(alice, { entities: [Job, LegacyOrder], logger: counter, logging: true });
    plainTwo = await openAlongside(alice, { entities: [Job, LegacyOrder], logger: undefined, logging: false });
  });
  afterAll(() => closeAll(alice, bob, plainOne, plainTwo));

  const newOrder = () => alice.getRepository(Order).save({ address: "A", status: "NEW" } as Order);

  describe("@Versioned() and @VersionedBy on a DataSource never passed to installLocking()", () => {
    it("save(): a stale save from a second DataSource fails and the version never goes back", async () => {
      const { id } = await newOrder();
      const error = await operatorSavesAfterCustomer(bob.getRepository(Order), alice.getRepository(Order), id);
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(error).toMatchObject({ entityName: "Order", expectedVersion: 1 });
      expect(await alice.getRepository(Order).findOneByOrFail({ id })).toMatchObject({
        address: "B",
        status: "NEW",
        version: 2,
      });
    });

    it("remove() and softRemove() of a stale copy fail and leave the row", async () => {
      const { id } = await newOrder();
      const staleForRemove = await bob.getRepository(Order).findOneByOrFail({ id });
      const staleForSoftRemove = await bob.getRepository(Order).findOneByOrFail({ id });
      const fresh = await alice.getRepository(Order).findOneByOrFail({ id });
      fresh.status = "PAID";
      await alice.getRepository(Order).save(fresh);
      await expect(bob.getRepository(Order).remove(staleForRemove)).rejects.toBeInstanceOf(OptimisticLockError);
      await expect(bob.getRepository(Order).softRemove(staleForSoftRemove)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await alice.getRepository(Order).findOneBy({ id })).toMatchObject({ status: "PAID", version: 2 });
    });

    it("an aggregate member's change moves its root's version, and a stale root's flush fails", async () => {
      const orders = (source: DataSource) => source.getRepository(AggOrder);
      const { id } = await orders(alice).save({
        status: "NEW",
        address: { street: "Old Street 1", city: "Seoul" },
        lines: [
          { product: "pen", quantity: 1, notes: [] },
          { product: "ink", quantity: 2, notes: [] },
        ],
      } as unknown as AggOrder);
      const load = (source: DataSource) =>
        orders(source).findOneOrFail({ where: { id }, relations: { lines: true }, order: { lines: { id: "ASC" } } });
      const mine = await load(alice);
      const theirs = await load(bob);
      theirs.lines![0].quantity = 10;
      await orders(bob).save(theirs);
      expect((await load(alice)).version).toBe(2);
      mine.lines![1].quantity = 20;
      await expect(orders(alice).save(mine)).rejects.toBeInstanceOf(OptimisticLockError);
      const after = await load(alice);
      expect(after.lines!.map((l) => l.quantity)).toEqual([10, 2]);
      expect(after.version).toBe(2);
    });

    it("a plain @VersionColumn entity keeps TypeORM's behaviour, beside library entities or not", async () => {
      for (const source of [alice, plainOne]) {
        const legacy = source.getRepository(LegacyOrder);
        const { id } = await legacy.save(legacy.create({ address: "A", status: "NEW" }));
        expect(await operatorSavesAfterCustomer(legacy, legacy, id)).toBeUndefined(); // TypeORM's lost update
        expect(await legacy.findOneByOrFail({ id })).toMatchObject({ address: "A", status: "SHIPPED", version: 1 });
      }
    });
  });

  describe("which queries activate a DataSource never passed to installLocking()", () => {
    /**
     * The error of a raw statement that the database refuses as a lock failure. PostgreSQL and
     * MariaDB raise the lock timeout's own error code; SQLite's is a real one, behind a writer
     * that holds the file.
     */
    async function rawLockFailure(source: DataSource): Promise<unknown> {
      if (db.family === "postgres") {
        return source
          .query("DO $$ BEGIN RAISE EXCEPTION 'row is locked' USING ERRCODE = '55P03'; END $$")
          .catch((e: unknown) => e);
      }
      if (db.family === "mysql") {
        return source
          .query("SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1205, MESSAGE_TEXT = 'row is locked'")
          .catch((e: unknown) => e);
      }
      const writer = plainTwo.createQueryRunner();
      await writer.query("BEGIN IMMEDIATE");
      try {
        return await source.query("BEGIN IMMEDIATE").catch((e: unknown) => e);
      } finally {
        await writer.query("ROLLBACK");
        await writer.release();
      }
    }
    /** A client of the same database nothing has queried yet; SQLite gives up on a held file at once. */
    const fresh = (entities: Function[]) =>
      openAlongside(alice, { entities, logger: undefined, logging: false, timeout: 50 });

    it("a DataSource with @Versioned() entities is activated by its first query runner, a raw query's", async () => {
      const source = await fresh([...ALL_ENTITIES, ...AGGREGATE_ENTITIES, Job]);
      try {
        expect(await rawLockFailure(source)).toBeInstanceOf(LockTimeoutError);
      } finally {
        await closeAll(source);
      }
    });

    it("a DataSource without library decorators stays plain TypeORM through its plain reads and writes", async () => {
      const source = await fresh([Job, LegacyOrder]);
      try {
        await source.getRepository(Job).find();
        await source.getRepository(LegacyOrder).save({ address: "A", status: "NEW" } as LegacyOrder);
        const error = await rawLockFailure(source);
        expect(error).toBeInstanceOf(QueryFailedError);
        expect(error).not.toBeInstanceOf(LockingError);
      } finally {
        await closeAll(source);
      }
    });

    it("an entity write inside initialize(), a migration's, is the library's: the line it adds moves its order's version", async () => {
      const order = await alice.getRepository(AggOrder).save({
        status: "NEW",
        address: { street: "Old Street 1", city: "Seoul" },
      } as AggOrder);
      const name = `AddLine${Date.now()}`;
      class AddLine implements MigrationInterface {
        name = name;
        async up(runner: QueryRunner): Promise<void> {
          await runner.manager.save(AggLine, {
            product: "pen",
            quantity: 1,
            order: { id: order.id, version: order.version },
          } as AggLine);
        }
        async down(): Promise<void> {}
      }
      const source = await openAlongside(alice, {
        entities: [...AGGREGATE_ENTITIES],
        migrations: [AddLine],
        migrationsRun: true,
        logger: undefined,
        logging: false,
      });
      try {
        expect(await alice.getRepository(AggLine).countBy({ order: { id: order.id } })).toBe(1);
        expect((await alice.getRepository(AggOrder).findOneByOrFail({ id: order.id })).version).toBe(2);
      } finally {
        await closeAll(source);
      }
    });

    it("a lock request of the library on such a DataSource's read installs it", async () => {
      const source = await fresh([Job, LegacyOrder]);
      try {
        await source.transaction((m) => m.find(Job, withLockMode(LockMode.PESSIMISTIC_WRITE)));
        expect(await rawLockFailure(source)).toBeInstanceOf(LockTimeoutError);
      } finally {
        await closeAll(source);
      }
    });
  });

  describe("lock requests on a DataSource without any library entity, never installed", () => {
    async function job(): Promise<number> {
      const id = nextJob++;
      await plainOne.getRepository(Job).save({ id, state: "ready" });
      return id;
    }

    /** Holds PESSIMISTIC_WRITE on `id` through `plainTwo` (lockQuery) until released. */
    async function holdLock(id: number) {
      const held = deferred();
      const release = deferred();
      const done = plainTwo.transaction(async (manager) => {
        await lockQuery(
          manager.createQueryBuilder(Job, "job").where("job.id = :id", { id }),
          LockMode.PESSIMISTIC_WRITE,
        ).getOne();
        held.resolve();
        await release.promise;
      });
      await Promise.race([held.promise, done]);
      return {
        release: async () => {
          release.resolve();
          await done;
        },
      };
    }

    async function timed<T>(work: () => Promise<T>): Promise<{ error: unknown; elapsed: number }> {
      const started = Date.now();
      const error = await work().then(
        () => undefined,
        (e: unknown) => e,
      );
      return { error, elapsed: Date.now() - started };
    }

    it("withLockMode(PESSIMISTIC_WRITE, { timeout: 500 }) locks the row and bounds the wait", async () => {
      const id = await job();
      const holder = await holdLock(id);
      try {
        counter.reset();
        const { error, elapsed } = await timed(() =>
          plainOne.transaction((m) =>
            m.findOne(Job, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 500 }) }),
          ),
        );
        expect(error).toBeInstanceOf(LockTimeoutError);
        expect(elapsed).toBeGreaterThanOrEqual(450);
        expect(elapsed).toBeLessThan(1900);
        if (!sqlite) expect(counter.statements.join("\n")).toMatch(/FOR UPDATE/i);
      } finally {
        await holder.release();
      }
    });

    // SQLite's lock is the database write lock, proven by the timeout above; here a row lock.
    if (!sqlite)
      it("the lock taken by withLockMode blocks another connection's write until the transaction ends", async () => {
        const id = await job();
        const locked = deferred();
        const release = deferred();
        const holding = plainOne.transaction(async (m) => {
          await m.findOne(Job, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 500 }) });
          locked.resolve();
          await release.promise;
          await m.update(Job, { id }, { state: "mine" });
        });
        await Promise.race([locked.promise, holding]);
        let written = false;
        const writing = plainTwo
          .query(
            db.family === "postgres"
              ? "UPDATE tl_job SET state = 'theirs' WHERE id = $1"
              : "UPDATE tl_job SET state = 'theirs' WHERE id = ?",
            [id],
          )
          .then(() => {
            written = true;
          });
        await waitUntilBlocked(db, alice);
        expect(written).toBe(false);
        release.resolve();
        await holding;
        await writing;
        expect(await plainOne.getRepository(Job).findOneByOrFail({ id })).toMatchObject({ state: "theirs" });
      });

    it("@Lock on a repository method and lock() are honoured too", async () => {
      const id = await job();
      const holder = await holdLock(id);
      try {
        const viaDecorator = await timed(() =>
          plainOne.transaction((m) => m.withRepository(new JobRepository(Job, m)).findForWork(id)),
        );
        expect(viaDecorator.error).toBeInstanceOf(LockTimeoutError);
        expect(viaDecorator.elapsed).toBeLessThan(1000);
        const viaLock = await timed(() =>
          plainOne.transaction(async (m: EntityManager) => {
            const row = await m.findOneByOrFail(Job, { id });
            await lock(m, row, LockMode.PESSIMISTIC_WRITE, { timeout: 0 });
          }),
        );
        expect(viaLock.error).toBeInstanceOf(LockTimeoutError);
      } finally {
        await holder.release();
      }
    });

    it("a conflict at the first lock request, in a transaction open before @Retryable was called, is not retried inside it", async () => {
      // A DataSource never installed, whose runner class another DataSource's activation patched:
      // its transaction was numbered when it began, before the lock request activates the library.
      const late = await openAlongside(alice, { entities: [LegacyOrder], logger: undefined, logging: false });
      try {
        await alice.getRepository(Order).count();
        const legacy = late.getRepository(LegacyOrder);
        const { id } = await legacy.save(legacy.create({ address: "A", status: "NEW" }));
        const stale = await legacy.findOneByOrFail({ id });
        await plainTwo.query(
          `UPDATE tl_legacy_order SET version = version + 1 WHERE id = ${db.family === "postgres" ? "$1" : "?"}`,
          [id],
        );
        class Shipping {
          calls = 0;
          @Retryable({ attempts: 3, backoff: { initialMs: 1 }, lockHotRows: false })
          async claim(manager: EntityManager, order: LegacyOrder): Promise<void> {
            this.calls++;
            await lock(manager, order, LockMode.PESSIMISTIC_WRITE);
          }
        }
        const shipping = new Shipping();
        const error = await late.transaction((m) => shipping.claim(m, stale)).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LockingConfigurationError);
        expect((error as Error).cause).toBeInstanceOf(OptimisticLockError);
        expect(shipping.calls).toBe(1);
      } finally {
        await closeAll(late);
      }
    });

    it("OPTIMISTIC is re-checked and OPTIMISTIC_FORCE_INCREMENT incremented at commit, on a @VersionColumn entity", async () => {
      const legacy = plainOne.getRepository(LegacyOrder);
      const { id } = await legacy.save(legacy.create({ address: "A", status: "NEW" }));
      const error = await plainOne
        .transaction(async (m) => {
          await m.findOne(LegacyOrder, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
          const other = await plainTwo.getRepository(LegacyOrder).findOneByOrFail({ id });
          other.status = "PAID";
          await plainTwo.getRepository(LegacyOrder).save(other);
        })
        .catch((e: unknown) => e);
      // SQLite refuses the check's write on the transaction's old snapshot before it runs.
      expect(error).toBeInstanceOf(sqlite ? SerializationError : OptimisticLockError);
      await plainOne.transaction((m) =>
        m.findOne(LegacyOrder, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC_FORCE_INCREMENT) }),
      );
      expect(await legacy.findOneByOrFail({ id })).toMatchObject({ status: "PAID", version: 3 });
    });
  });
});

describe("set-up errors of a DataSource never passed to installLocking()", () => {
  @Entity({ name: "tl_unversioned_root" })
  class UnversionedRoot {
    @PrimaryGeneratedColumn() id!: number;
  }
  @Entity({ name: "tl_member_of_unversioned" })
  @VersionedBy(
    () => UnversionedRoot,
    (member: MemberOfUnversioned) => member.root,
  )
  class MemberOfUnversioned {
    @PrimaryColumn() id!: number;
    @Column() note!: string;
    @ManyToOne(() => UnversionedRoot) root!: UnversionedRoot;
  }
  @Entity({ name: "tl_both_versions" })
  class BothVersions {
    @PrimaryGeneratedColumn() id!: number;
    @Versioned() version!: number;
    @VersionColumn() revision!: number;
  }

  const sqlite = (entities: Function[], synchronize: boolean) =>
    new DataSource({ type: "better-sqlite3", database: ":memory:", entities, synchronize });

  it("a broken @VersionedBy fails the first query (and every later one), naming the entities", async () => {
    const ds = await sqlite([UnversionedRoot, MemberOfUnversioned], false).initialize();
    try {
      for (let i = 0; i < 2; i++) {
        await expect(ds.getRepository(MemberOfUnversioned).save({ id: 1, note: "x" })).rejects.toThrow(
          /@VersionedBy on MemberOfUnversioned: its aggregate root UnversionedRoot has no checked version/,
        );
      }
      await expect(ds.getRepository(MemberOfUnversioned).find()).rejects.toBeInstanceOf(LockingConfigurationError);
    } finally {
      await ds.destroy();
    }
  });

  it("@Versioned beside @VersionColumn: initialize() may synchronize, the first query after it fails", async () => {
    const ds = await sqlite([BothVersions], true).initialize();
    try {
      for (let i = 0; i < 2; i++) {
        await expect(ds.getRepository(BothVersions).find()).rejects.toThrow(
          /BothVersions declares @Versioned\(\) on "version" and @VersionColumn on "revision"/,
        );
      }
    } finally {
      await ds.destroy();
    }
  });

  @Entity({ name: "tl_late_doc" })
  class LateDoc {
    @PrimaryGeneratedColumn() id!: number;
    @Column() note!: string;
    @Versioned() version!: number;
  }
  @Entity({ name: "tl_early_plain" })
  class EarlyPlain {
    @PrimaryGeneratedColumn() id!: number;
  }

  /** A stale copy of a LateDoc saved after a fresh one is refused (then the DataSource is destroyed). */
  async function expectStaleSaveRefused(ds: DataSource): Promise<void> {
    try {
      const docs = ds.getRepository(LateDoc);
      const { id } = await docs.save({ note: "a" });
      const stale = await docs.findOneByOrFail({ id });
      const fresh = await docs.findOneByOrFail({ id });
      fresh.note = "b";
      await docs.save(fresh);
      stale.note = "c";
      await expect(docs.save(stale)).rejects.toBeInstanceOf(OptimisticLockError);
    } finally {
      await ds.destroy();
    }
  }

  it.each([
    ["no entity", []],
    ["only plain entities", [EarlyPlain]],
  ])("a DataSource that had %s is judged again once a new initialize() gave it @Versioned() ones", async (_, first) => {
    const ds = await sqlite(first, true).initialize();
    await ds.query("SELECT 1");
    await ds.destroy();
    ds.setOptions({ entities: [EarlyPlain, LateDoc] });
    await ds.initialize();
    await expectStaleSaveRefused(ds);
  });

  it("a DataSource whose set-up failed is judged again once a new initialize() gave it fixed entities", async () => {
    const ds = await sqlite([BothVersions], true).initialize();
    await expect(ds.getRepository(BothVersions).find()).rejects.toBeInstanceOf(LockingConfigurationError);
    await ds.destroy();
    ds.setOptions({ entities: [LateDoc] });
    await ds.initialize();
    await expectStaleSaveRefused(ds);
  });

  class Stamp {
    @Versioned() version!: number;
  }
  interface SchemaDoc {
    id: number;
    note: string;
    stamp: Stamp;
  }
  /** An EntitySchema without a class (its target is its name), its version in a @Versioned() value. */
  const schemaDocs = new EntitySchema<SchemaDoc>({
    name: "tl_schema_doc",
    columns: { id: { type: Number, primary: true, generated: true }, note: { type: String } },
    embeddeds: {
      stamp: {
        schema: new EntitySchema<Stamp>({
          name: "Stamp",
          target: Stamp,
          columns: { version: { type: Number, version: true } },
        }),
      },
    },
  });

  it.each([
    ["never installed", (ds: DataSource) => ds],
    ["installed", (ds: DataSource) => installLocking(ds)],
  ])("an EntitySchema entity versioned by a @Versioned() embedded class is checked, %s", async (_, install) => {
    const ds = install(await sqlite([schemaDocs as unknown as Function], true).initialize());
    try {
      const docs = ds.getRepository<SchemaDoc>("tl_schema_doc");
      const { id } = await docs.save({ note: "a", stamp: {} } as SchemaDoc);
      const stale = await docs.findOneByOrFail({ id });
      const fresh = await docs.findOneByOrFail({ id });
      fresh.note = "b";
      await docs.save(fresh);
      stale.note = "c";
      await expect(docs.save(stale)).rejects.toBeInstanceOf(OptimisticLockError);
      expect(await docs.findOneByOrFail({ id })).toMatchObject({ note: "b", stamp: { version: 2 } });
    } finally {
      await ds.destroy();
    }
  });

  @Entity({ name: "tl_legacy_root" })
  class LegacyRoot {
    @PrimaryGeneratedColumn() id!: number;
    @Column() note!: string;
    @VersionColumn() version!: number;
  }
  @Entity({ name: "tl_legacy_member" })
  @VersionedBy(
    () => LegacyRoot,
    (member: LegacyMember) => member.root,
  )
  class LegacyMember {
    @PrimaryGeneratedColumn() id!: number;
    @Column() note!: string;
    @ManyToOne(() => LegacyRoot) root!: LegacyRoot;
  }

  it.each([
    ["a new DataSource", async () => sqlite([LegacyRoot, LegacyMember], true).initialize()],
    [
      "one the library installed in its earlier life",
      async () => {
        const ds = await sqlite([LateDoc], true).initialize();
        await ds.getRepository(LateDoc).save({ note: "a" });
        await ds.destroy();
        ds.setOptions({ entities: [LegacyRoot, LegacyMember] });
        return ds.initialize();
      },
    ],
  ])("installLocking(checked) right after a synchronizing initialize() adopts a @VersionColumn root of @VersionedBy members: %s", async (_, initialized) => {
    // initialize() runs schema queries; they must not install the defaults, under which this
    // @VersionColumn root is unchecked and its members' declaration an error.
    const ds = await initialized();
    try {
      installLocking(ds, { versionColumns: "checked" });
      const root = await ds.getRepository(LegacyRoot).save({ note: "r" });
      await ds.getRepository(LegacyMember).save({ note: "m", root });
      expect((await ds.getRepository(LegacyRoot).findOneByOrFail({ id: root.id })).version).toBe(2);
    } finally {
      await ds.destroy();
    }
  });

  it.each([
    [
      "installLocking() before initialize()",
      async (ds: DataSource) => {
        await installLocking(ds).initialize();
      },
    ],
    [
      "installLocking() after initialize()",
      async (ds: DataSource) => {
        installLocking(await ds.initialize());
      },
    ],
    [
      "installed by the library at its first write",
      async (ds: DataSource) => {
        await ds.initialize();
      },
    ],
  ])("a DataSource %s goes by the entities of its next initialize(): a new line moves its order's version", async (_, firstLife) => {
    const ds = sqlite([LateDoc], true);
    await firstLife(ds);
    await ds.getRepository(LateDoc).save({ note: "a" });
    await ds.destroy();
    ds.setOptions({ entities: [...AGGREGATE_ENTITIES] });
    await ds.initialize();
    try {
      const order = await ds
        .getRepository(AggOrder)
        .save({ status: "NEW", address: { street: "Old Street 1", city: "Seoul" } } as AggOrder);
      await ds.getRepository(AggLine).save({ product: "pen", quantity: 1, order } as AggLine);
      expect((await ds.getRepository(AggOrder).findOneByOrFail({ id: order.id })).version).toBe(2);
    } finally {
      await ds.destroy();
    }
  });

  it("installLocking(checked) over the library's own installation outlasts the next initialize()", async () => {
    const ds = await sqlite([LateDoc], true).initialize();
    await ds.getRepository(LateDoc).save({ note: "a" });
    installLocking(ds, { versionColumns: "checked" });
    await ds.destroy();
    ds.setOptions({ entities: [LegacyRoot, LegacyMember] });
    await ds.initialize();
    try {
      const root = await ds.getRepository(LegacyRoot).save({ note: "r" });
      await ds.getRepository(LegacyMember).save({ note: "m", root });
      expect((await ds.getRepository(LegacyRoot).findOneByOrFail({ id: root.id })).version).toBe(2);
    } finally {
      await ds.destroy();
    }
  });

  it("the same DataSource never installed: its first write fails, naming the root and checked mode", async () => {
    const ds = await sqlite([LegacyRoot, LegacyMember], true).initialize();
    try {
      await expect(ds.getRepository(LegacyRoot).save({ note: "r" })).rejects.toThrow(
        /LegacyMember: its aggregate root LegacyRoot has no checked version/,
      );
    } finally {
      await ds.destroy();
    }
  });
});
