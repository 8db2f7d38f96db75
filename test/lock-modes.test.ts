/**
 * Lock modes, timeouts and typed lock errors on real concurrent transactions.
 */
import {
  Column,
  type DataSource,
  DeleteDateColumn,
  Entity,
  type EntityManager,
  ManyToOne,
  OneToMany,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from "typeorm";
import {
  ConcurrencyError,
  DeadlockError,
  installLocking,
  Lock,
  type LockDialect,
  LockingConfigurationError,
  LockingError,
  type LockingOptions,
  LockMode,
  type LockOptions,
  type LockTarget,
  LockTimeoutError,
  lock,
  lockInOrder,
  lockQuery,
  mariadbDialect,
  mysqlDialect,
  OptimisticLockError,
  PessimisticLockError,
  postgresDialect,
  runWithLockMode,
  SerializationError,
  SKIP_LOCKED,
  StaleVersionError,
  sqliteDialect,
  type TimeoutPlan,
  updateVersioned,
  Versioned,
  withLockMode,
} from "../src";
import { LegacyOrder, Order } from "./fixtures/entities";
import { Account, AccountRepository, Job, LOCK_ENTITIES, SavingsAccount } from "./fixtures/lock-entities";
import {
  closeAll,
  type Deferred,
  deferred,
  describeEachDatabase,
  openAlongside,
  openDataSources,
  StatementCounter,
} from "./support/databases";
import { waitUntilBlocked } from "./support/interleaving";

/** Stamped by TypeORM at every update: a lock is no update, so a force increment leaves it. */
@Entity({ name: "tl_stamped_note" })
class StampedNote {
  @PrimaryColumn() id!: number;
  @Column() text!: string;
  @UpdateDateColumn() updatedAt!: Date;
  @Versioned() version!: number;
}

/** An unversioned parent whose versioned parts are a lazy relation, loaded with it by `relations`. */
@Entity({ name: "tl_lazy_bin" })
class LazyBin {
  @PrimaryColumn() id!: number;
  @OneToMany(
    () => LazyPart,
    (part) => part.bin,
    { lazy: true },
  )
  parts!: Promise<LazyPart[]>;
}

@Entity({ name: "tl_lazy_part" })
class LazyPart {
  @PrimaryColumn() id!: number;
  @Column() label!: string;
  @Versioned() version!: number;
  @ManyToOne(() => LazyBin)
  bin!: LazyBin;
}

// Declared before the tests: their case tables name the classes when the file loads.
/** A parent whose children, dropped from its collections, TypeORM nulls, deletes or soft-deletes. */
@Entity({ name: "tl_crate" })
class Crate {
  @PrimaryGeneratedColumn() id!: number;
  @Column() label!: string;
  @Versioned() version!: number;
  @OneToMany(
    () => LooseItem,
    (item) => item.crate,
    { cascade: true },
  )
  loose?: LooseItem[];
  @OneToMany(
    () => BoundItem,
    (item) => item.crate,
    { cascade: true },
  )
  bound?: BoundItem[];
  @OneToMany(
    () => ShedItem,
    (item) => item.crate,
    { cascade: true },
  )
  shed?: ShedItem[];
}

/** What the three kinds of child have in common. */
interface CrateItem {
  id: number;
  name: string;
  version: number;
  crateId: number | null;
  deletedAt?: Date | null;
}

@Entity({ name: "tl_loose_item" })
class LooseItem implements CrateItem {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @Versioned() version!: number;
  @Column({ nullable: true }) crateId!: number | null;
  @ManyToOne(
    () => Crate,
    (crate) => crate.loose,
    { nullable: true, orphanedRowAction: "nullify", onDelete: "CASCADE" },
  )
  crate?: Crate | null;
}

@Entity({ name: "tl_bound_item" })
class BoundItem implements CrateItem {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @Versioned() version!: number;
  @Column({ nullable: true }) crateId!: number | null;
  @ManyToOne(
    () => Crate,
    (crate) => crate.bound,
    { orphanedRowAction: "delete", onDelete: "CASCADE" },
  )
  crate?: Crate;
}

@Entity({ name: "tl_shed_item" })
class ShedItem implements CrateItem {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @Versioned() version!: number;
  @DeleteDateColumn({ nullable: true }) deletedAt?: Date | null;
  @Column({ nullable: true }) crateId!: number | null;
  @ManyToOne(
    () => Crate,
    (crate) => crate.shed,
    { orphanedRowAction: "soft-delete", onDelete: "CASCADE" },
  )
  crate?: Crate;
}

describeEachDatabase((db) => {
  const counter = new StatementCounter();
  let one: DataSource;
  let two: DataSource;
  const sqlite = db.family === "sqlite";
  let nextId = 1;

  beforeAll(async () => {
    [one, two] = await openDataSources(
      db,
      [...LOCK_ENTITIES, LegacyOrder, Shelf, Crate, LooseItem, BoundItem, ShedItem, StampedNote, LazyBin, LazyPart],
      {
        count: 2,
        extra: { logger: counter, logging: true },
      },
    );
    installLocking(one);
    installLocking(two);
  });
  afterAll(() => closeAll(one, two));

  async function account(balance = 100): Promise<number> {
    const id = nextId++;
    await one.getRepository(Account).save({ id, balance });
    return id;
  }

  /** Holds a PESSIMISTIC_WRITE lock on `id` through `two` until `release` resolves. */
  function holdLock(id: number) {
    const held = deferred();
    const release = deferred();
    const done = two.transaction(async (manager) => {
      await manager.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
      held.resolve();
      await release.promise;
    });
    return { held: held.promise, release: () => release.resolve(), done };
  }

  /** Asks for PESSIMISTIC_WRITE on `id` through `source` while `two` holds it; how it ended and how long it took. */
  async function lockWhileHeld(source: DataSource, id: number, options?: LockOptions) {
    const holder = holdLock(id);
    await holder.held;
    const started = Date.now();
    try {
      const error = await source
        .transaction((m) => m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, options) }))
        .catch((e: unknown) => e);
      return { error, elapsed: Date.now() - started };
    } finally {
      holder.release();
      await holder.done;
    }
  }

  describe("pessimistic modes", () => {
    it.each<[string, LockOptions]>([
      ["timeout 0", { timeout: 0 }],
      ['onLocked "nowait"', { onLocked: "nowait" }],
    ])("PESSIMISTIC_WRITE with %s fails at once with LockTimeoutError while another transaction holds the row", async (_, options) => {
      const { error, elapsed } = await lockWhileHeld(one, await account(), options);
      expect(error).toBeInstanceOf(LockTimeoutError);
      expect(error).toBeInstanceOf(PessimisticLockError);
      expect(error).toBeInstanceOf(LockingError);
      expect((error as LockTimeoutError).cause).toBeDefined();
      expect(elapsed).toBeLessThan(500);
    });

    it.each<[string, LockOptions]>([
      ["timeout 1000", { timeout: 1000 }],
      ['onLocked "wait" and timeout 1000', { onLocked: "wait", timeout: 1000 }],
    ])("PESSIMISTIC_WRITE with %s fails after at least 1000 ms and well before 2000 ms", async (_, options) => {
      const { error, elapsed } = await lockWhileHeld(one, await account(), options);
      expect(error).toBeInstanceOf(LockTimeoutError);
      expect(elapsed).toBeGreaterThanOrEqual(1000);
      expect(elapsed).toBeLessThan(1900);
      // PostgreSQL aborts the whole transaction on any error; MySQL/MariaDB and SQLite only the statement.
      expect((error as LockTimeoutError).transactionAborted).toBe(db.family === "postgres");
      expect((error as LockTimeoutError).retryable).toBe(true);
    });

    it('onLocked "wait" waits for the lock even where installLocking\'s lockTimeout says NOWAIT', async () => {
      const withDefault = await openAlongside(one, { logger: undefined, logging: false });
      try {
        installLocking(withDefault, { lockTimeout: 0 });
        const id = await account();
        if (sqlite) {
          // better-sqlite3 waits synchronously, so the holder (in this process) cannot let go
          // meanwhile: the wait is the connection's busy timeout (2000 ms), where NOWAIT fails at once.
          const { error, elapsed } = await lockWhileHeld(withDefault, id, { onLocked: "wait" });
          expect(error).toBeInstanceOf(LockTimeoutError);
          expect(elapsed).toBeGreaterThanOrEqual(1900);
          return;
        }
        const holder = holdLock(id);
        await holder.held;
        const started = Date.now();
        setTimeout(holder.release, 400);
        const locked = await withDefault.transaction((m) =>
          m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { onLocked: "wait" }) }),
        );
        await holder.done;
        expect(locked?.id).toBe(id);
        expect(Date.now() - started).toBeGreaterThanOrEqual(350);
      } finally {
        await closeAll(withDefault);
      }
    });

    it("installLocking's lockTimeout is the default wait of locks that give none", async () => {
      const withDefault = await openAlongside(one, { logger: undefined, logging: false });
      try {
        installLocking(withDefault, { lockTimeout: 0 });
        const { error, elapsed } = await lockWhileHeld(withDefault, await account());
        expect(error).toBeInstanceOf(LockTimeoutError);
        expect(elapsed).toBeLessThan(500);
      } finally {
        await closeAll(withDefault);
      }
    });

    it("lock failures of any query on an installed DataSource are typed, the driver error kept as cause", async () => {
      const id = await account();
      const holder = holdLock(id);
      await holder.held;
      const raw = sqlite
        ? "UPDATE tl_account SET balance = balance WHERE id = ?"
        : db.family === "postgres"
          ? "SELECT * FROM tl_account WHERE id = $1 FOR UPDATE NOWAIT"
          : "SELECT * FROM tl_account WHERE id = ? FOR UPDATE NOWAIT";
      const error = await one
        .transaction(async (m) => {
          if (sqlite) await m.query("PRAGMA busy_timeout = 0");
          try {
            await m.query(raw, [id]);
          } finally {
            if (sqlite) await m.query("PRAGMA busy_timeout = 2000");
          }
        })
        .catch((e: unknown) => e);
      holder.release();
      await holder.done;
      expect(error).toBeInstanceOf(LockTimeoutError);
      expect((error as LockTimeoutError).cause).toBeInstanceOf(Error);
      expect((error as LockTimeoutError).code).toMatch(/^(55P03|1205|3572|SQLITE_BUSY)$/);
    });

    // SQLite's lock is the database's: the other row could not be locked either.
    if (!sqlite)
      it("a lock refused inside a transaction and caught by the work leaves the transaction usable: it goes on and commits", async () => {
        const busy = await account();
        const free = await account();
        const holder = holdLock(busy);
        await holder.held;
        try {
          await one.transaction(async (m) => {
            // In a savepoint: PostgreSQL aborts the whole transaction at a failed statement.
            const refused = await m
              .transaction((inner) =>
                inner.findOne(Account, {
                  where: { id: busy },
                  ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 0 }),
                }),
              )
              .catch((e: unknown) => e);
            expect(refused).toBeInstanceOf(LockTimeoutError);
            const other = await m.findOneOrFail(Account, {
              where: { id: free },
              ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 0 }),
            });
            other.balance = 5;
            await m.save(other);
          });
        } finally {
          holder.release();
          await holder.done;
        }
        expect(await one.getRepository(Account).findOneByOrFail({ id: free })).toMatchObject({
          balance: 5,
          version: 2,
        });
      });

    it("the lock is held to the end of the transaction, then granted", async () => {
      const id = await account();
      const holder = holdLock(id);
      await holder.held;
      const waiting = one.transaction(async (m) => {
        const a = await m.findOneOrFail(Account, {
          where: { id },
          ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 5000 }),
        });
        a.balance += 1;
        await m.save(a);
      });
      if (!sqlite) await waitUntilBlocked(db, one);
      holder.release();
      await holder.done;
      await waiting;
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ balance: 101, version: 2 });
    });

    it("a pessimistic lock outside a transaction is a clear LockingError, not a silent no-lock", async () => {
      const id = await account();
      const error = await one
        .getRepository(Account)
        .findOne({ where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockingError);
      expect((error as Error).message).toMatch(/PESSIMISTIC_WRITE on Account needs a transaction/);
    });

    it("LockMode.NONE needs no transaction: it reads plainly, with no lock clause", async () => {
      const id = await account();
      counter.reset();
      const found = await one.getRepository(Account).findOne({ where: { id }, ...withLockMode(LockMode.NONE) });
      expect(found).toMatchObject({ id, balance: 100 });
      expect(counter.statements.join("\n")).not.toMatch(/FOR UPDATE|FOR SHARE|LOCK IN SHARE/);
    });

    it("an unknown lock mode is refused, naming it", () => {
      expect(() => withLockMode("FOR_UPDATE" as never)).toThrow(/"FOR_UPDATE" is not a lock mode/);
    });

    if (sqlite) {
      it("SQLite refuses PESSIMISTIC_READ and SKIP LOCKED, naming the database and the mode", async () => {
        const id = await account();
        await expect(
          one.transaction((m) => m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_READ) })),
        ).rejects.toThrow(/PESSIMISTIC_READ on Account: sqlite has no shared row lock/);
        await expect(
          one.transaction((m) =>
            m.find(Job, { ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: SKIP_LOCKED }) }),
          ),
        ).rejects.toBeInstanceOf(LockingConfigurationError);
      });
    } else {
      it("PESSIMISTIC_READ: two shared locks coexist; a write lock waits for them", async () => {
        const id = await account();
        const readLock = (m: EntityManager, timeout?: number) =>
          m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_READ, { timeout }) });
        const held = deferred();
        const release = deferred();
        const reader = two.transaction(async (m) => {
          await readLock(m);
          held.resolve();
          await release.promise;
        });
        await held.promise;
        await one.transaction((m) => readLock(m, 0)); // shared + shared: granted at once
        const writer = await one
          .transaction((m) =>
            m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 0 }) }),
          )
          .catch((e: unknown) => e);
        release.resolve();
        await reader;
        expect(writer).toBeInstanceOf(LockTimeoutError);
      });

      it.each<[string, LockOptions]>([
        ["timeout SKIP_LOCKED", { timeout: SKIP_LOCKED }],
        ['onLocked "skip"', { onLocked: "skip" }],
      ])("%s leaves out the rows another transaction holds", async (_, options) => {
        const jobs = one.getRepository(Job);
        const base = nextId;
        nextId += 3;
        await jobs.save([0, 1, 2].map((i) => ({ id: base + i, state: "ready" })));
        const held = deferred();
        const release = deferred();
        const worker = two.transaction(async (m) => {
          await lockQuery(
            m.createQueryBuilder(Job, "job").where("job.id = :id", { id: base }),
            LockMode.PESSIMISTIC_WRITE,
          ).getOne();
          held.resolve();
          await release.promise;
        });
        await held.promise;
        const free = await one.transaction((m) =>
          lockQuery(
            m.createQueryBuilder(Job, "job").where("job.id >= :base", { base }).orderBy("job.id"),
            LockMode.PESSIMISTIC_WRITE,
            options,
          ).getMany(),
        );
        release.resolve();
        await worker;
        expect(free.map((j) => j.id)).toEqual([base + 1, base + 2]);
      });
    }

    it("PESSIMISTIC_WRITE on an aggregate loaded with its relations locks the root row", async () => {
      const orders = one.getRepository(Order);
      const { id } = await orders.save(
        orders.create({ address: "A", status: "NEW", lines: [{ product: "tea", quantity: 1 }] }),
      );
      const order = await one.transaction(async (m) => {
        const o = await m.findOneOrFail(Order, {
          where: { id },
          relations: { lines: true },
          ...withLockMode(LockMode.PESSIMISTIC_WRITE),
        });
        const other = await two
          .transaction((m2) =>
            m2.findOne(Order, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 0 }) }),
          )
          .catch((e: unknown) => e);
        expect(other).toBeInstanceOf(LockTimeoutError);
        return o;
      });
      expect(order.lines).toHaveLength(1);
    });

    it("PESSIMISTIC_FORCE_INCREMENT locks and increments the version at once", async () => {
      const id = await account();
      await one.transaction(async (m) => {
        const a = await m.findOneOrFail(Account, {
          where: { id },
          ...withLockMode(LockMode.PESSIMISTIC_FORCE_INCREMENT),
        });
        expect(a.version).toBe(2);
        expect(await m.findOneByOrFail(Account, { id })).toMatchObject({ version: 2 });
      });
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 2, balance: 100 });
    });
    it("a force increment leaves @UpdateDateColumn as it was: locking a row is not changing it", async () => {
      const id = nextId++;
      const stamp = new Date("2020-01-02T03:04:05.000Z");
      await one
        .createQueryBuilder()
        .insert()
        .into(StampedNote)
        .values({ id, text: "n", version: 1, updatedAt: stamp })
        .execute();
      const before = await one.getRepository(StampedNote).findOneByOrFail({ id });
      expect(before.updatedAt.getUTCFullYear()).toBe(2020);
      await one.transaction(async (m) => {
        const note = await m.findOneOrFail(StampedNote, {
          where: { id },
          ...withLockMode(LockMode.PESSIMISTIC_FORCE_INCREMENT),
        });
        await lock(m, note, LockMode.PESSIMISTIC_FORCE_INCREMENT);
      });
      await one.transaction((m) =>
        m.findOneOrFail(StampedNote, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC_FORCE_INCREMENT) }),
      );
      const after = await one.getRepository(StampedNote).findOneByOrFail({ id });
      expect(after.version).toBe(4);
      expect(after.updatedAt.getTime()).toBe(before.updatedAt.getTime());
    });
    // The version the library knows without a read; the stamp only TypeORM's read after the UPDATE brings.
    it("a save of a stamped entity: the entity holds the row's new @UpdateDateColumn and version", async () => {
      const id = nextId++;
      const stamp = new Date("2020-01-02T03:04:05.000Z");
      await one
        .createQueryBuilder()
        .insert()
        .into(StampedNote)
        .values({ id, text: "n", version: 1, updatedAt: stamp })
        .execute();
      const note = await one.getRepository(StampedNote).findOneByOrFail({ id });
      note.text = "changed";
      await one.getRepository(StampedNote).save(note);
      const row = await one.getRepository(StampedNote).findOneByOrFail({ id });
      expect(row.updatedAt.getUTCFullYear()).toBeGreaterThan(2020);
      expect([note.version, note.updatedAt.getTime()]).toEqual([2, row.updatedAt.getTime()]);
    });

    it("a force increment is no update of the entity for subscribers: no beforeUpdate or afterUpdate", async () => {
      const id = await account();
      const seen: string[] = [];
      const audit = {
        listenTo: () => Account,
        beforeUpdate: () => seen.push("beforeUpdate"),
        afterUpdate: () => seen.push("afterUpdate"),
      };
      one.subscribers.push(audit as never);
      try {
        await one.transaction(async (m) => {
          const a = await m.findOneOrFail(Account, {
            where: { id },
            ...withLockMode(LockMode.PESSIMISTIC_FORCE_INCREMENT),
          });
          await lock(m, a, LockMode.PESSIMISTIC_FORCE_INCREMENT);
        });
        await one.transaction((m) =>
          m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC_FORCE_INCREMENT) }),
        );
        expect(seen).toEqual([]);
        // The same subscriber does see a change saved.
        const a = await one.getRepository(Account).findOneByOrFail({ id });
        a.balance = 1;
        await one.getRepository(Account).save(a);
        expect(seen).toEqual(["beforeUpdate", "afterUpdate"]);
      } finally {
        one.subscribers.splice(one.subscribers.indexOf(audit as never), 1);
      }
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 5, balance: 1 });
    });
  });

  describe("optimistic modes", () => {
    it("OPTIMISTIC: a change by another transaction between read and commit fails the commit; nothing is written", async () => {
      const id = await account();
      const other = await account();
      const error = await one
        .transaction(async (m) => {
          await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
          await updateVersioned(two.getRepository(Account), id, 1, { balance: 50 }); // theirs, committed
          // SQLite: a write after the other commit would already fail (stale snapshot); keep it read-only.
          if (!sqlite) await updateVersioned(m.getRepository(Account), other, 1, { balance: 0 }); // ours
        })
        .catch((e: unknown) => e);
      // SQLite refuses the commit-time check itself: the snapshot predates the other commit.
      expect(error).toBeInstanceOf(sqlite ? SerializationError : OptimisticLockError);
      if (!sqlite) expect(error).toBeInstanceOf(ConcurrencyError);
      expect(await one.getRepository(Account).findOneByOrFail({ id: other })).toMatchObject({
        balance: 100,
        version: 1,
      });
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ balance: 50, version: 2 });
    });

    if (!sqlite) {
      it("OPTIMISTIC leaves no window between the commit-time check and the commit", async () => {
        const id = await account();
        let armed = false;
        let writerBlocked = false;
        let writer: Promise<number> | undefined;
        // Runs beside the library's own beforeTransactionCommit, i.e. while the check is in flight.
        const probe = {
          async beforeTransactionCommit() {
            if (!armed) return;
            armed = false;
            // Wait until the check holds the row: a NOWAIT lock attempt from another connection fails.
            for (let tries = 0; ; tries++) {
              const attempt = await two
                .transaction((m) =>
                  m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 0 }) }),
                )
                .then(
                  () => undefined,
                  (e: unknown) => e,
                );
              if (attempt instanceof LockTimeoutError) break;
              if (tries > 200) throw new Error("the optimistic check never locked the row");
              await new Promise((r) => setTimeout(r, 10));
            }
            // A concurrent writer now must wait for our commit instead of slipping in before it.
            writer = updateVersioned(two.getRepository(Account), id, 1, { balance: 77 });
            await waitUntilBlocked(db, two);
            writerBlocked = true;
          },
        };
        one.subscribers.push(probe as never);
        try {
          await one.transaction(async (m) => {
            await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
            armed = true;
          });
        } finally {
          one.subscribers.splice(one.subscribers.indexOf(probe as never), 1);
        }
        expect(writerBlocked).toBe(true);
        expect(await writer).toBe(2); // it ran after our commit, against the version we had checked
        expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ balance: 77, version: 2 });
      });
    }

    it("OPTIMISTIC with no concurrent change commits and bumps nothing", async () => {
      const id = await account();
      await one.transaction((m) => m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.READ) }));
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 1 });
    });

    it("OPTIMISTIC_FORCE_INCREMENT increments once per entity per transaction, even when unchanged", async () => {
      const id = await account();
      await one.transaction(async (m) => {
        await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC_FORCE_INCREMENT) });
        await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.WRITE) });
      });
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 2 });
      await one.transaction(async (m) => {
        const a = await m.findOneOrFail(Account, {
          where: { id },
          ...withLockMode(LockMode.OPTIMISTIC_FORCE_INCREMENT),
        });
        a.balance = 7;
        await m.save(a); // the save's own increment is the one owed
      });
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 3, balance: 7 });
    });

    if (!sqlite) {
      it("a row read twice under OPTIMISTIC and changed by another transaction between the reads fails at commit", async () => {
        // The check is against the first read: the second copy already holds the other's version.
        const id = await account();
        const error = await one
          .transaction(async (m) => {
            await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
            await updateVersioned(two.getRepository(Account), id, 1, { balance: 50 });
            await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
          })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(OptimisticLockError);
        expect(error).toMatchObject({ expectedVersion: 1 });
      });

      it("a savepoint rolled back inside the transaction keeps the outer read's OPTIMISTIC check", async () => {
        const id = await account();
        const error = await one
          .transaction(async (m) => {
            await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
            await m
              .transaction(async () => {
                throw new Error("the nested unit gives up");
              })
              .catch(() => undefined);
            await updateVersioned(two.getRepository(Account), id, 1, { balance: 50 });
          })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(OptimisticLockError);
      });
    }

    describe("this transaction's own write of the row, through another copy of it, is no conflict at commit", () => {
      const writes: Array<[string, (m: EntityManager, id: number) => Promise<unknown>]> = [
        [
          "a second copy read under OPTIMISTIC, saved",
          async (m, id) => {
            const copy = await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
            copy.balance = 5;
            return m.save(copy);
          },
        ],
        [
          "a copy read without a lock, saved twice",
          async (m, id) => {
            const copy = await m.findOneByOrFail(Account, { id });
            copy.balance = 5;
            await m.save(copy);
            copy.balance = 6;
            return m.save(copy);
          },
        ],
        [
          "a copy read with PESSIMISTIC_FORCE_INCREMENT",
          (m, id) => m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_FORCE_INCREMENT) }),
        ],
        [
          "lock(copy, PESSIMISTIC_FORCE_INCREMENT)",
          async (m, id) => lock(m, await m.findOneByOrFail(Account, { id }), LockMode.PESSIMISTIC_FORCE_INCREMENT),
        ],
        [
          "updateVersioned() with the version a copy holds",
          async (m, id) => {
            const { version } = await m.findOneByOrFail(Account, { id });
            return updateVersioned(m.getRepository(Account), id, version, { balance: 5 });
          },
        ],
        [
          "updateVersioned() naming the row by its key as text (from a URL)",
          async (m, id) => {
            const { version } = await m.findOneByOrFail(Account, { id });
            return updateVersioned(m.getRepository(Account), String(id), version, { balance: 5 });
          },
        ],
        [
          "updateVersioned() naming the row by an id map holding a bigint",
          async (m, id) => {
            const { version } = await m.findOneByOrFail(Account, { id });
            return updateVersioned(m.getRepository(Account), { id: BigInt(id) }, version, { balance: 5 });
          },
        ],
        [
          "updateVersioned() of a list of rows, with the version a copy holds",
          async (m, id) => {
            const { version } = await m.findOneByOrFail(Account, { id });
            return updateVersioned(m.getRepository(Account), [{ id, version, patch: { balance: 5 } }]);
          },
        ],
      ];

      it.each(writes)("OPTIMISTIC read, then %s: the commit succeeds", async (_, write) => {
        const id = await account();
        await one.transaction(async (m) => {
          await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
          await write(m, id);
        });
        const row = await one.getRepository(Account).findOneByOrFail({ id });
        expect(row.version).toBeGreaterThan(1);
      });

      it.each(writes)("OPTIMISTIC_FORCE_INCREMENT read, then %s: no increment beyond the write's", async (_, write) => {
        const id = await account();
        let written = 0;
        await one.transaction(async (m) => {
          await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC_FORCE_INCREMENT) });
          await write(m, id);
          written = (await m.findOneByOrFail(Account, { id })).version;
        });
        expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: written });
      });

      it("OPTIMISTIC reads of two rows, then copies of both saved in one save() (one batched UPDATE): the commit succeeds", async () => {
        const ids = [await account(), await account()];
        await one.transaction(async (m) => {
          for (const id of ids) {
            await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
          }
          const copies = await m.find(Account, { where: ids.map((id) => ({ id })), order: { id: "ASC" } });
          for (const copy of copies) copy.balance = 9;
          await m.save(copies);
        });
        const rows = await one.getRepository(Account).find({ where: ids.map((id) => ({ id })), order: { id: "ASC" } });
        expect(rows.map((r) => [r.version, r.balance])).toEqual([
          [2, 9],
          [2, 9],
        ]);
      });

      it("a write inside a savepoint that was rolled back is undone: the row is checked against the version read", async () => {
        const id = await account();
        await one.transaction(async (m) => {
          await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
          await m
            .transaction(async (inner) => {
              await writes[0][1](inner, id);
              throw new Error("the nested unit gives up");
            })
            .catch(() => undefined);
        });
        expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 1, balance: 100 });
      });

      it("the locked copy itself saved inside a savepoint that was rolled back: checked against the version read", async () => {
        const id = await account();
        await one.transaction(async (m) => {
          const a = await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
          await m
            .transaction(async (inner) => {
              a.balance = 5;
              await inner.save(a); // a now holds version 2, which the rollback undoes in the row
              throw new Error("the nested unit gives up");
            })
            .catch(() => undefined);
        });
        expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 1, balance: 100 });
      });

      it("OPTIMISTIC read, a copy saved, then the row read again under OPTIMISTIC: the commit succeeds", async () => {
        const id = await account();
        await one.transaction(async (m) => {
          await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
          await writes[1][1](m, id);
          await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
        });
        expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 3, balance: 6 });
      });

      if (!sqlite) {
        it("a write of a copy read after another transaction moved the row does not hide that move: the commit fails", async () => {
          const id = await account();
          const error = await one
            .transaction(async (m) => {
              await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
              await updateVersioned(two.getRepository(Account), id, 1, { balance: 50 });
              await writes[1][1](m, id); // a fresh copy: at version 2 where reads see the other's commit
            })
            .catch((e: unknown) => e);
          expect(error).toBeInstanceOf(OptimisticLockError);
          expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 2, balance: 50 });
        });
      }

      it("a write inside a savepoint that was released counts, even after a later savepoint is rolled back", async () => {
        const id = await account();
        await one.transaction(async (m) => {
          await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
          await m.transaction((inner) => writes[0][1](inner, id));
          await m.transaction(async () => Promise.reject(new Error("gives up"))).catch(() => undefined);
        });
        expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 2, balance: 5 });
      });

      describe("the other write paths", () => {
        const modes = [LockMode.OPTIMISTIC, LockMode.OPTIMISTIC_FORCE_INCREMENT];
        let unbatched: DataSource;
        let checked: DataSource;

        beforeAll(async () => {
          unbatched = installLocking(await openAlongside(one, { logger: undefined, logging: false }), {
            batchWrites: false,
          });
          // TypeORM's own @VersionColumn, checked by the library.
          checked = installLocking(await openAlongside(one, { logger: undefined, logging: false }), {
            versionColumns: "checked",
          });
        });
        afterAll(() => closeAll(unbatched, checked));

        const sources: Array<[string, () => DataSource]> = [
          ["batched", () => one],
          ["batchWrites: false", () => unbatched],
        ];
        const cases = modes.flatMap((mode) => sources.map(([name, source]) => [mode, name, source] as const));

        async function accounts(n: number): Promise<number[]> {
          const ids: number[] = [];
          for (let i = 0; i < n; i++) ids.push(await account());
          return ids;
        }
        const rowsOf = (ids: number[]) =>
          one.getRepository(Account).find({ where: ids.map((id) => ({ id })), order: { id: "ASC" } });

        it.each(
          cases,
        )("%s reads of two rows, copies of both saved in one save() (%s): one write each", async (mode, _, source) => {
          const ids = await accounts(2);
          await source().transaction(async (m) => {
            for (const id of ids) await m.findOneOrFail(Account, { where: { id }, ...withLockMode(mode) });
            const copies = await m.find(Account, { where: ids.map((id) => ({ id })), order: { id: "ASC" } });
            for (const copy of copies) copy.balance = 9;
            await m.save(copies);
          });
          expect((await rowsOf(ids)).map((r) => [r.version, r.balance])).toEqual([
            [2, 9],
            [2, 9],
          ]);
        });

        it.each(
          modes,
        )("%s reads of two rows, then updateVersioned() of both in one call: one write each", async (mode) => {
          const ids = await accounts(2);
          await one.transaction(async (m) => {
            const read = [];
            for (const id of ids) read.push(await m.findOneOrFail(Account, { where: { id }, ...withLockMode(mode) }));
            const rows = read.map(({ id, version }) => ({ id, version, patch: { balance: 9 } }));
            await updateVersioned(m.getRepository(Account), rows);
          });
          expect((await rowsOf(ids)).map((r) => [r.version, r.balance])).toEqual([
            [2, 9],
            [2, 9],
          ]);
        });

        const removals: Array<[string, (m: EntityManager, locked: Account) => Promise<unknown>]> = [
          ["the locked copy removed", (m, locked) => m.remove(locked)],
          ["another copy removed", async (m, locked) => m.remove(await m.findOneByOrFail(Account, { id: locked.id }))],
        ];

        it.each(
          modes.flatMap((mode) => removals.map(([name, remove]) => [mode, name, remove] as const)),
        )("%s read, then %s: the commit succeeds, the row is gone", async (mode, _, remove) => {
          const id = await account();
          await one.transaction(async (m) => {
            await remove(m, await m.findOneOrFail(Account, { where: { id }, ...withLockMode(mode) }));
          });
          expect(await one.getRepository(Account).findOneBy({ id })).toBeNull();
        });

        it.each(
          cases,
        )("%s reads of two rows, copies of both removed in one remove() (%s): the commit succeeds", async (mode, _, source) => {
          const ids = await accounts(2);
          await source().transaction(async (m) => {
            for (const id of ids) await m.findOneOrFail(Account, { where: { id }, ...withLockMode(mode) });
            await m.remove(await m.find(Account, { where: ids.map((id) => ({ id })) }));
          });
          expect(await rowsOf(ids)).toEqual([]);
        });

        it.each(
          removals,
        )("%s inside a savepoint that was rolled back: the OPTIMISTIC_FORCE_INCREMENT is still owed", async (_, remove) => {
          const id = await account();
          await one.transaction(async (m) => {
            const locked = await m.findOneOrFail(Account, {
              where: { id },
              ...withLockMode(LockMode.OPTIMISTIC_FORCE_INCREMENT),
            });
            await m
              .transaction(async (inner) => {
                await remove(inner, locked);
                throw new Error("the nested unit gives up");
              })
              .catch(() => undefined);
          });
          expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 2, balance: 100 });
        });

        if (!sqlite) {
          it("a copy read after another transaction moved the row, removed: that move still fails the commit", async () => {
            const id = await account();
            const error = await one
              .transaction(async (m) => {
                await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
                await updateVersioned(two.getRepository(Account), id, 1, { balance: 50 });
                await m.remove(await m.findOneByOrFail(Account, { id }));
              })
              .catch((e: unknown) => e);
            expect(error).toBeInstanceOf(OptimisticLockError);
            expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 2, balance: 50 });
          });
        }

        // Each write increments the version once; the force increment owes none beyond them.
        // From which version such a write moved the row is not known: it may hide another's change.
        const unguarded: Array<[string, (m: EntityManager, id: number) => Promise<unknown>]> = [
          ["repository.update()", (m, id) => m.getRepository(Account).update(id, { balance: 5 })],
          ["repository.delete()", (m, id) => m.getRepository(Account).delete(id)],
        ];

        it.each(
          unguarded,
        )("OPTIMISTIC read, then %s, which the library does not guard: the commit fails", async (_, write) => {
          const id = await account();
          const error = await one
            .transaction(async (m) => {
              await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
              await write(m, id);
            })
            .catch((e: unknown) => e);
          expect(error).toBeInstanceOf(OptimisticLockError);
          expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 1, balance: 100 });
        });

        const softWrites: Array<[string, (m: EntityManager, id: number) => Promise<unknown>, number, boolean]> = [
          ["soft-removed", async (m, id) => m.softRemove(await m.findOneByOrFail(Order, { id })), 2, true],
          [
            "soft-removed, then recovered",
            async (m, id) => {
              const copy = await m.findOneByOrFail(Order, { id });
              await m.softRemove(copy);
              return m.recover(copy);
            },
            3,
            false,
          ],
        ];

        it.each(
          modes.flatMap((mode) => softWrites.map((entry) => [mode, ...entry] as const)),
        )("%s read of an order, then a copy %s: the commit succeeds", async (mode, _, write, version, deleted) => {
          const { id } = await one.getRepository(Order).save({ address: "Main St 1", status: "new" });
          await one.transaction(async (m) => {
            await m.findOneOrFail(Order, { where: { id }, ...withLockMode(mode) });
            await write(m, id);
          });
          const order = await one.getRepository(Order).findOneOrFail({ where: { id }, withDeleted: true });
          expect([order.version, order.deletedAt != null]).toEqual([version, deleted]);
        });

        // TypeORM writes a child dropped from its parent's collection through a subject of its own,
        // with no copy of the child: the write must still count as this transaction's.
        const orphanings = [
          [
            "nullify",
            LooseItem,
            "loose",
            (row: CrateItem | null) => row && [row.version, row.crateId, !!row.deletedAt],
          ],
          ["delete", BoundItem, "bound", (row: CrateItem | null) => row],
          [
            "soft-delete",
            ShedItem,
            "shed",
            (row: CrateItem | null) => row && [row.version, row.crateId, !!row.deletedAt],
          ],
        ] as const;
        type Orphaning = (typeof orphanings)[number];

        async function crateOf([, , relation]: Orphaning, names: string[]) {
          const crate = await one
            .getRepository(Crate)
            .save({ label: "c", [relation]: names.map((name) => ({ name })) });
          return { id: crate.id, items: (crate[relation] as CrateItem[]).map((item) => item.id) };
        }
        /** Drops the items from a copy of the crate read in `m` and saves the crate. */
        async function drop(m: EntityManager, [, , relation]: Orphaning, crateId: number, items: number[]) {
          const copy = await m.findOneOrFail(Crate, { where: { id: crateId }, relations: { [relation]: true } });
          copy[relation] = (copy[relation] as CrateItem[]).filter((item) => !items.includes(item.id)) as never;
          return m.save(copy);
        }
        const rowOf = ([, entity]: Orphaning, id: number) =>
          one.getRepository<CrateItem>(entity).findOne({ where: { id }, withDeleted: true });

        it.each(
          modes.flatMap((mode) =>
            orphanings.flatMap((orphaning) =>
              sources.map(([name, source]) => [mode, orphaning[0], name, orphaning, source] as const),
            ),
          ),
        )("%s reads of two children, both dropped from the parent's collection (orphanedRowAction %s, %s): the commit succeeds", async (mode, _, __, orphaning, source) => {
          const crate = await crateOf(orphaning, ["a", "b", "c"]);
          const dropped = crate.items.slice(0, 2);
          await source().transaction(async (m) => {
            for (const id of dropped) await m.findOneOrFail(orphaning[1], { where: { id }, ...withLockMode(mode) });
            await drop(m, orphaning, crate.id, dropped);
          });
          const [action, , , stateOf] = orphaning;
          const expected =
            action === "delete" ? null : [2, action === "nullify" ? null : crate.id, action === "soft-delete"];
          for (const id of dropped) expect(stateOf(await rowOf(orphaning, id))).toEqual(expected);
          expect(stateOf(await rowOf(orphaning, crate.items[2]))).toEqual(
            action === "delete" ? expect.anything() : [1, crate.id, false],
          );
        });

        it.each(
          orphanings.map((orphaning) => [orphaning[0], orphaning] as const),
        )("OPTIMISTIC read of a child, dropped from the parent's collection (orphanedRowAction %s): the commit succeeds", async (_, orphaning) => {
          const crate = await crateOf(orphaning, ["a", "b"]);
          const [id] = crate.items;
          await one.transaction(async (m) => {
            await m.findOneOrFail(orphaning[1], { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
            await drop(m, orphaning, crate.id, [id]);
          });
          const [action, , , stateOf] = orphaning;
          expect(stateOf(await rowOf(orphaning, id))).toEqual(
            action === "delete" ? null : [2, action === "nullify" ? null : crate.id, action === "soft-delete"],
          );
        });

        it.each(
          orphanings.flatMap((orphaning) =>
            sources.map(([name, source]) => [orphaning[0], name, orphaning, source] as const),
          ),
        )("of two children dropped from the parent's collection, one read under OPTIMISTIC (orphanedRowAction %s, %s): the commit succeeds", async (action, _, orphaning, source) => {
          const crate = await crateOf(orphaning, ["a", "b"]);
          await source().transaction(async (m) => {
            await m.findOneOrFail(orphaning[1], {
              where: { id: crate.items[0] },
              ...withLockMode(LockMode.OPTIMISTIC),
            });
            await drop(m, orphaning, crate.id, crate.items);
          });
          const expected =
            action === "delete" ? null : [2, action === "nullify" ? null : crate.id, action === "soft-delete"];
          for (const id of crate.items) expect(orphaning[3](await rowOf(orphaning, id))).toEqual(expected);
        });

        it.each(
          orphanings.map((orphaning) => [orphaning[0], orphaning] as const),
        )("OPTIMISTIC read of a child, a copy of it saved, then the child dropped from the parent's collection (orphanedRowAction %s): the commit succeeds", async (action, orphaning) => {
          const crate = await crateOf(orphaning, ["a", "b"]);
          const [id] = crate.items;
          await one.transaction(async (m) => {
            await m.findOneOrFail(orphaning[1], { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
            const copy = await m.findOneByOrFail<CrateItem>(orphaning[1], { id });
            copy.name = "renamed";
            await m.save(orphaning[1], copy);
            await drop(m, orphaning, crate.id, [id]);
          });
          const row = await rowOf(orphaning, id);
          expect(row && [row.version, row.name, row.crateId, !!row.deletedAt]).toEqual(
            action === "delete"
              ? null
              : [3, "renamed", action === "nullify" ? null : crate.id, action === "soft-delete"],
          );
        });

        it.each(
          orphanings.map((orphaning) => [orphaning[0], orphaning] as const),
        )("OPTIMISTIC_FORCE_INCREMENT read of a child dropped from the parent's collection inside a savepoint that was rolled back (orphanedRowAction %s): the increment is still owed", async (_, orphaning) => {
          const crate = await crateOf(orphaning, ["a", "b"]);
          const [id] = crate.items;
          await one.transaction(async (m) => {
            await m.findOneOrFail(orphaning[1], {
              where: { id },
              ...withLockMode(LockMode.OPTIMISTIC_FORCE_INCREMENT),
            });
            await m
              .transaction(async (inner) => {
                await drop(inner, orphaning, crate.id, [id]);
                throw new Error("the nested unit gives up");
              })
              .catch(() => undefined);
          });
          const row = await rowOf(orphaning, id);
          expect(row && [row.version, row.crateId, !!row.deletedAt]).toEqual([2, crate.id, false]);
        });

        if (!sqlite) {
          it.each(
            orphanings.flatMap((orphaning) =>
              sources.map(([name, source]) => [orphaning[0], name, orphaning, source] as const),
            ),
          )("OPTIMISTIC reads of two children, one then changed by another transaction, both dropped from the parent's collection (orphanedRowAction %s, %s): the save fails, the other's change stays", async (_, __, orphaning, source) => {
            const crate = await crateOf(orphaning, ["a", "b"]);
            const [id, other] = crate.items;
            let saveFailed = false;
            const error = await source()
              .transaction(async (m) => {
                for (const read of crate.items) {
                  await m.findOneOrFail(orphaning[1], { where: { id: read }, ...withLockMode(LockMode.OPTIMISTIC) });
                }
                await updateVersioned(two.getRepository<CrateItem>(orphaning[1]), id, 1, { name: "changed" });
                // The write over the other's change is refused itself, not only the commit after it.
                await drop(m, orphaning, crate.id, crate.items).catch((e: unknown) => {
                  saveFailed = true;
                  throw e;
                });
              })
              .catch((e: unknown) => e);
            expect(error).toBeInstanceOf(OptimisticLockError);
            expect(saveFailed).toBe(true);
            const row = await rowOf(orphaning, id);
            expect(row && [row.version, row.name, row.crateId, !!row.deletedAt]).toEqual([
              2,
              "changed",
              crate.id,
              false,
            ]);
            const untouched = await rowOf(orphaning, other);
            expect(untouched && [untouched.version, untouched.crateId, !!untouched.deletedAt]).toEqual([
              1,
              crate.id,
              false,
            ]);
          });
        }

        const paid = { version: 2, status: "paid" };
        const legacyWrites: Array<
          [string, (m: EntityManager, order: LegacyOrder) => Promise<unknown>, typeof paid | null]
        > = [
          [
            "a copy saved",
            async (m, order) => {
              const copy = await m.findOneByOrFail(LegacyOrder, { id: order.id });
              copy.status = "paid";
              return m.save(copy);
            },
            paid,
          ],
          [
            "updateVersioned()",
            (m, order) => updateVersioned(m.getRepository(LegacyOrder), order.id, order.version, { status: "paid" }),
            paid,
          ],
          [
            "a copy removed",
            async (m, order) => m.remove(await m.findOneByOrFail(LegacyOrder, { id: order.id })),
            null,
          ],
        ];

        it.each(
          modes.flatMap((mode) => legacyWrites.map((entry) => [mode, ...entry] as const)),
        )("@VersionColumn (versionColumns: checked): %s read, then %s: the commit succeeds", async (mode, _, write, after) => {
          const { id } = await checked.getRepository(LegacyOrder).save({ address: "Main St 1", status: "new" });
          await checked.transaction(async (m) => {
            await write(m, await m.findOneOrFail(LegacyOrder, { where: { id }, ...withLockMode(mode) }));
          });
          const row = await checked.getRepository(LegacyOrder).findOneBy({ id });
          expect(row && { version: row.version, status: row.status }).toEqual(after);
        });
      });
    });

    it("OPTIMISTIC_FORCE_INCREMENT then OPTIMISTIC on the same row: the force increment is kept", async () => {
      const id = await account();
      await one.transaction(async (m) => {
        await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC_FORCE_INCREMENT) });
        await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
      });
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 2 });
    });

    it("OPTIMISTIC_FORCE_INCREMENT read, saved, then read again: the save's increment is the one owed", async () => {
      const id = await account();
      await one.transaction(async (m) => {
        const a = await m.findOneOrFail(Account, {
          where: { id },
          ...withLockMode(LockMode.OPTIMISTIC_FORCE_INCREMENT),
        });
        a.balance = 4;
        await m.save(a);
        await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
      });
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 2, balance: 4 });
    });

    it("an entity whose version property was cleared after its OPTIMISTIC read is checked against the version it was read with", async () => {
      const id = await account();
      await one.transaction(async (m) => {
        const a = await m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
        (a as { version?: number }).version = undefined; // e.g. stripped by a mapping to a DTO
      });
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 1 });
    });

    it("OPTIMISTIC_FORCE_INCREMENT read in a nested transaction and saved after it: one increment, at the outer commit", async () => {
      const id = await account();
      await one.transaction(async (m) => {
        const a = await m.transaction((inner) =>
          inner.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC_FORCE_INCREMENT) }),
        );
        a.balance = 3;
        await m.save(a); // the save's own increment is the one owed
      });
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 2, balance: 3 });
    });

    it("the checks of a rolled-back transaction do not follow its query runner into its next transaction", async () => {
      const id = await account();
      const runner = one.createQueryRunner();
      try {
        await runner.startTransaction();
        await runner.manager.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.OPTIMISTIC) });
        await runner.rollbackTransaction();
        await updateVersioned(two.getRepository(Account), id, 1, { balance: 50 });
        await runner.startTransaction();
        await runner.commitTransaction();
      } finally {
        await runner.release();
      }
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 2, balance: 50 });
    });

    it("optimistic modes need a transaction and a version column", async () => {
      const id = await account();
      await expect(
        one.getRepository(Account).findOne({ where: { id }, ...withLockMode(LockMode.OPTIMISTIC) }),
      ).rejects.toThrow(/OPTIMISTIC on Account needs a transaction/);
      for (const mode of [
        LockMode.OPTIMISTIC,
        LockMode.OPTIMISTIC_FORCE_INCREMENT,
        LockMode.PESSIMISTIC_FORCE_INCREMENT,
      ]) {
        const error = await one.transaction((m) => m.find(Job, { ...withLockMode(mode) })).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LockingConfigurationError);
        expect((error as Error).message).toContain(`${mode} on Job needs a version column`);
      }
      // The modes that need none lock (or read) a row without a version.
      for (const mode of [LockMode.PESSIMISTIC_WRITE, LockMode.NONE]) {
        await expect(one.transaction((m) => m.find(Job, { ...withLockMode(mode) }))).resolves.toBeInstanceOf(Array);
      }
    });
  });

  describe("lock() on an entity already loaded", () => {
    it("re-reads with the lock and fails with OptimisticLockError if the version moved", async () => {
      const id = await account();
      const loaded = await one.getRepository(Account).findOneByOrFail({ id });
      await updateVersioned(two.getRepository(Account), id, 1, { balance: 1 });
      const error = await one.transaction((m) => lock(m, loaded, LockMode.PESSIMISTIC_WRITE)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(error).toMatchObject({ expectedVersion: 1, actualVersion: 2, operation: "lock" });
    });

    it("takes the lock (another transaction cannot) and force-increments when asked", async () => {
      const id = await account();
      const loaded = await one.getRepository(Account).findOneByOrFail({ id });
      await one.transaction(async (m) => {
        await lock(m, loaded, LockMode.PESSIMISTIC_FORCE_INCREMENT);
        expect(loaded.version).toBe(2);
        const other = await two
          .transaction((m2) =>
            m2.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 0 }) }),
          )
          .catch((e: unknown) => e);
        expect(other).toBeInstanceOf(LockTimeoutError);
      });
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ version: 2 });
    });

    it("after a force increment, the entity counts as loaded at the new version: a later race on it is retryable", async () => {
      const id = await account();
      const loaded = await one.getRepository(Account).findOneByOrFail({ id });
      await one.transaction((m) => lock(m, loaded, LockMode.PESSIMISTIC_FORCE_INCREMENT));
      expect(loaded.version).toBe(2);
      await updateVersioned(two.getRepository(Account), id, 2, { balance: 3 });
      loaded.balance = 7;
      const error = await one
        .getRepository(Account)
        .save(loaded)
        .catch((e: unknown) => e);
      // The row moved after this process last had it: a race (OptimisticLockError), not a stale
      // version handed in by a client (StaleVersionError, which no retry helper retries).
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(error).not.toBeInstanceOf(StaleVersionError);
      expect(error).toMatchObject({ expectedVersion: 2, retryable: true });
    });

    it("NONE needs no transaction and sends nothing; PESSIMISTIC_WRITE leaves the version as it is", async () => {
      const id = await account();
      const loaded = await one.getRepository(Account).findOneByOrFail({ id });
      counter.reset();
      expect(await lock(one.manager, loaded, LockMode.NONE)).toBe(loaded);
      expect(counter.statements).toEqual([]);
      await one.transaction((m) => lock(m, loaded, LockMode.PESSIMISTIC_WRITE));
      expect(loaded.version).toBe(1);
      expect((await two.getRepository(Account).findOneByOrFail({ id })).version).toBe(1);
    });

    if (!sqlite) {
      it("PESSIMISTIC_READ is a shared lock: two transactions hold it at once, a writer's lock cannot", async () => {
        const id = await account();
        const first = await one.getRepository(Account).findOneByOrFail({ id });
        const second = await two.getRepository(Account).findOneByOrFail({ id });
        await one.transaction(async (m) => {
          await lock(m, first, LockMode.PESSIMISTIC_READ);
          // A second reader gets its shared lock at once (NOWAIT); a writer's lock would wait.
          await two.transaction((m2) => lock(m2, second, LockMode.PESSIMISTIC_READ, { timeout: 0 }));
          const writer = await two
            .transaction((m2) => lock(m2, second, LockMode.PESSIMISTIC_WRITE, { timeout: 0 }))
            .catch((e: unknown) => e);
          expect(writer).toBeInstanceOf(LockTimeoutError);
        });
      });
    }

    it("OPTIMISTIC lock() is checked at commit", async () => {
      const id = await account();
      const error = await one
        .transaction(async (m) => {
          const a = await m.findOneByOrFail(Account, { id });
          await lock(m, a, LockMode.OPTIMISTIC);
          await updateVersioned(two.getRepository(Account), id, 1, { balance: 9 });
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(sqlite ? SerializationError : OptimisticLockError);
    });
  });

  describe("@Lock on a repository method", () => {
    const repoOf = (m: EntityManager) => new AccountRepository(Account, m, m.queryRunner);

    it("queries inside the call use the mode and timeout; a concurrent plain call does not", async () => {
      const id = await account();
      counter.reset();
      await Promise.all([
        one.transaction((m) => repoOf(m).findForUpdate(id)),
        two.transaction((m) => repoOf(m).plainFind(id)),
      ]);
      const accountSelects = counter.statements.filter((s) => /^SELECT/i.test(s) && s.includes("tl_account"));
      expect(accountSelects).toHaveLength(2);
      if (sqlite) {
        expect(counter.statements.filter((s) => /WHERE 0 = 1/.test(s))).toHaveLength(1);
      } else {
        expect(accountSelects.filter((s) => /FOR UPDATE/.test(s))).toHaveLength(1);
      }

      const holder = holdLock(id);
      await holder.held;
      const error = await one.transaction((m) => repoOf(m).findForUpdate(id)).catch((e: unknown) => e);
      holder.release();
      await holder.done;
      expect(error).toBeInstanceOf(LockTimeoutError); // { timeout: 0 } reached the database
    });

    it("outside the call nothing changes; the decorated call itself needs a transaction", async () => {
      const id = await account();
      const repo = repoOf(one.manager);
      expect(await repo.plainFind(id)).toMatchObject({ id });
      await expect(repo.findForUpdate(id)).rejects.toThrow(/PESSIMISTIC_WRITE on Account needs a transaction/);
    });

    it("TypeORM's own reads inside save() are not put under the scope's lock mode", async () => {
      const id = await account();
      const a = await one.getRepository(Account).findOneByOrFail({ id });
      a.balance = 5;
      await one.transaction((m) => runWithLockMode(LockMode.OPTIMISTIC, {}, () => m.save(a)));
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ balance: 5, version: 2 });
    });

    it("a save inside a PESSIMISTIC_FORCE_INCREMENT scope: TypeORM's pre-load of the row takes no increment", async () => {
      // Were the pre-load under the scope, it would bump the row before the save's UPDATE, whose
      // version check would then fail on the application's own write.
      const id = await account();
      const a = await one.getRepository(Account).findOneByOrFail({ id });
      a.balance = 6;
      await one.transaction((m) => runWithLockMode(LockMode.PESSIMISTIC_FORCE_INCREMENT, {}, () => m.save(a)));
      expect(await one.getRepository(Account).findOneByOrFail({ id })).toMatchObject({ balance: 6, version: 2 });
    });

    it("a query builder run under a scope, then again outside it, runs unlocked the second time", async () => {
      const id = await account();
      await one.transaction(async (m) => {
        const query = m.createQueryBuilder(Account, "a").where("a.id = :id", { id });
        await runWithLockMode(LockMode.PESSIMISTIC_WRITE, {}, () => query.getOne());
        counter.reset();
        expect(await query.getOne()).toMatchObject({ id });
      });
      const select = counter.statements.find((s) => /^SELECT/i.test(s) && s.includes("tl_account"));
      expect(select).toBeDefined();
      expect(select).not.toMatch(/FOR UPDATE|LOCK IN SHARE/);
      expect(counter.statements.some((s) => /WHERE 0 = 1/.test(s))).toBe(false);
    });

    it("@Lock with entities locks the queries of any entity named, and only those, in a class that is no repository", async () => {
      class Service {
        @Lock(LockMode.PESSIMISTIC_WRITE, { entities: [Job, Account] })
        both(m: EntityManager, id: number) {
          return m.findOneBy(Account, { id });
        }
        @Lock(LockMode.PESSIMISTIC_WRITE, { entities: [Job] })
        jobsOnly(m: EntityManager, id: number) {
          return m.findOneBy(Account, { id });
        }
        /** An entity that extends one named is covered; the one it extends is not covered by naming it. */
        @Lock(LockMode.PESSIMISTIC_WRITE, { entities: [Account] })
        savingsThroughAccount(m: EntityManager, id: number) {
          return m.findOneBy(SavingsAccount, { id });
        }
        @Lock(LockMode.PESSIMISTIC_WRITE, { entities: [SavingsAccount] })
        accountThroughSavings(m: EntityManager, id: number) {
          return m.findOneBy(Account, { id });
        }
      }
      const id = await account();
      await one.getRepository(SavingsAccount).save({ id, balance: 0, rate: 2 });
      const lockedReads = async (table: string, work: (m: EntityManager) => Promise<unknown>) => {
        counter.reset();
        await one.transaction(work);
        return sqlite
          ? counter.statements.filter((s) => new RegExp(`^UPDATE "${table}" SET .* WHERE 0 = 1`).test(s)).length
          : counter.statements.filter(
              (s) => /^SELECT/i.test(s) && new RegExp(`\\b${table}\\b`).test(s) && /FOR UPDATE/.test(s),
            ).length;
      };
      expect(await lockedReads("tl_account", (m) => new Service().both(m, id))).toBe(1);
      expect(await lockedReads("tl_account", (m) => new Service().jobsOnly(m, id))).toBe(0);
      expect(await lockedReads("tl_savings_account", (m) => new Service().savingsThroughAccount(m, id))).toBe(1);
      expect(await lockedReads("tl_account", (m) => new Service().accountThroughSavings(m, id))).toBe(0);
    });

    it("runWithLockMode applies to nested awaits and only to the entities named", async () => {
      const id = await account();
      counter.reset();
      await one.transaction((m) =>
        runWithLockMode(LockMode.PESSIMISTIC_WRITE, { entities: [Account] }, async () => {
          await new Promise((r) => setTimeout(r, 1));
          await m.findOneBy(Account, { id });
          await m.find(Job);
        }),
      );
      const accountSelect = counter.statements.find((s) => /^SELECT/i.test(s) && s.includes("tl_account"))!;
      const jobSelect = counter.statements.find((s) => /^SELECT/i.test(s) && s.includes("tl_job"))!;
      if (sqlite) {
        expect(counter.statements.some((s) => /^UPDATE "tl_account" SET .* WHERE 0 = 1/.test(s))).toBe(true);
      } else {
        expect(accountSelect).toMatch(/FOR UPDATE/);
      }
      expect(jobSelect).not.toMatch(/FOR UPDATE|LOCK IN SHARE/);
    });
  });

  it("a DataSource asks a MySQL-family server what it is once per life, and again after destroy() and initialize()", async () => {
    // The next life may reach another server (setOptions() in between): MariaDB, MySQL or Galera.
    const id = await account();
    const source = installLocking(await openAlongside(one, { logger: counter, logging: true }));
    const lockedRead = () =>
      source.transaction((m) =>
        m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) }),
      );
    const asked = () => counter.statements.filter((s) => /^SHOW VARIABLES/i.test(s)).length;
    const perLife = db.family === "mysql" ? 1 : 0;
    try {
      counter.reset();
      await lockedRead();
      await lockedRead();
      expect(asked()).toBe(perLife);
      await source.destroy();
      await source.initialize();
      await lockedRead();
      expect(asked()).toBe(2 * perLife);
    } finally {
      if (source.isInitialized) await source.destroy();
    }
  });

  it("a versioned entity loaded through a lazy relation named in `relations`, deleted by another transaction, is an OptimisticLockError", async () => {
    // Loaded by this process, not sent by a client: the race is retryable, not a RowNotFoundError.
    const id = nextId++;
    await one.getRepository(LazyBin).save({ id });
    await one.getRepository(LazyPart).save({ id, label: "a", bin: { id } });
    const bin = await one.getRepository(LazyBin).findOneOrFail({ where: { id }, relations: { parts: true } });
    const [part] = await bin.parts;
    await two.getRepository(LazyPart).delete({ id });
    part!.label = "c";
    await expect(one.getRepository(LazyPart).save(part!)).rejects.toBeInstanceOf(OptimisticLockError);
  });

  it("a versioned entity loaded with a relation that is empty (null) loads, the empty relation not walked", async () => {
    const id = nextId++;
    await one.getRepository(LazyPart).save({ id, label: "loose" });
    const part = await one.getRepository(LazyPart).findOneOrFail({ where: { id }, relations: { bin: true } });
    expect(part).toMatchObject({ id, label: "loose", version: 1, bin: null });
  });

  it("a dialect's table hint goes into the locking SELECT after the table, as SQL Server's hints must", async () => {
    // A comment stands in for a hint: every database here takes it where SQL Server takes WITH (...).
    const base: LockDialect = sqlite ? sqliteDialect : db.family === "postgres" ? postgresDialect : mariadbDialect;
    const hinted = installLocking(await openAlongside(one, { logger: counter, logging: true }), {
      dialect: { ...base, render: (...args) => ({ ...base.render(...args), tableHint: " /* hinted */" }) },
    });
    try {
      const id = await account();
      counter.reset();
      await hinted.transaction((m) =>
        m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) }),
      );
      const select = counter.statements.find((s) => /^SELECT/i.test(s) && s.includes("tl_account"));
      expect(select).toMatch(/tl_account\W+\s*\S+ \/\* hinted \*\//);
    } finally {
      await hinted.destroy();
    }
  });

  describe("settings never leak into the pooled connection", () => {
    const settingSql =
      db.family === "postgres"
        ? "SELECT current_setting('lock_timeout') AS value"
        : db.family === "sqlite"
          ? "PRAGMA busy_timeout"
          : "SELECT @@SESSION.innodb_lock_wait_timeout AS value";
    const read = async (m: EntityManager) => String(Object.values((await m.query(settingSql))[0])[0]);

    beforeAll(() => {
      // MariaDB's own dialect puts the wait in the statement (WAIT n); the MySQL dialect sets and
      // restores a session variable: run it against this server to test that path for real.
      if (db.family === "mysql") installLocking(one, { dialect: mysqlDialect });
    });
    afterAll(() => {
      if (db.family === "mysql") installLocking(one);
    });

    it("after a locked query that succeeded, the connection reads the setting it had", async () => {
      const id = await account();
      await one.transaction(async (m) => {
        const before = await read(m);
        counter.reset();
        await m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 1500 }) });
        expect(counter.statements.join("\n")).toMatch(/lock_timeout|innodb_lock_wait_timeout|busy_timeout/);
        expect(await read(m)).toBe(before);
      });
    });

    it("after a locked query that timed out, too (or the transaction, and its setting, is gone)", async () => {
      const id = await account();
      const holder = holdLock(id);
      await holder.held;
      let before: string | undefined;
      let after: string | undefined;
      const error = await one
        .transaction(async (m) => {
          before = await read(m);
          const e = await m
            .findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 1000 }) })
            .catch((x: unknown) => x);
          if (e instanceof LockTimeoutError && !e.transactionAborted) after = await read(m);
          throw e;
        })
        .catch((e: unknown) => e);
      holder.release();
      await holder.done;
      expect(error).toBeInstanceOf(LockTimeoutError);
      if ((error as LockTimeoutError).transactionAborted) expect(db.family).toBe("postgres");
      else expect(after).toBe(before);
    });

    /** Sets the wait setting the way an application would, before our locked read. */
    const setSql = (value: number) =>
      db.family === "postgres"
        ? `SET LOCAL lock_timeout = '${value}ms'`
        : db.family === "sqlite"
          ? `PRAGMA busy_timeout = ${value}`
          : `SET SESSION innodb_lock_wait_timeout = ${value}`;

    it("a value the application set before the locked read is the value it reads after, even when no row matched", async () => {
      const id = await account();
      await one.transaction(async (m) => {
        const baseline = Number(await read(m));
        await m.query(setSql(7));
        const before = await read(m);
        expect(before).toMatch(/^7/);
        await m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 1500 }) });
        expect(await read(m)).toBe(before);
        const none = await m.findOne(Account, {
          where: { id: -1 },
          ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 1500 }),
        });
        expect(none).toBeNull();
        expect(await read(m)).toBe(before);
        if (db.family !== "postgres") await m.query(setSql(baseline)); // a session value outlives the transaction
      });
    });

    it("a bounded locked read returns the rows, in order, and relations that the unbounded one does", async () => {
      const orders = one.getRepository(Order);
      const ids: number[] = [];
      for (const address of ["x", "y", "z"]) {
        const saved = await orders.save(
          orders.create({ address, status: "BOUND", lines: [{ product: address, quantity: 1 }] }),
        );
        ids.push(saved.id);
      }
      const find = (m: EntityManager, options: LockOptions) =>
        m.find(Order, {
          where: ids.map((id) => ({ id })),
          relations: { lines: true },
          order: { id: "DESC" },
          ...withLockMode(LockMode.PESSIMISTIC_WRITE, options),
        });
      // A page of an aggregate with its relations is two queries in TypeORM (ids, then rows).
      const page = (m: EntityManager, options: LockOptions) =>
        m.find(Order, {
          where: ids.map((id) => ({ id })),
          relations: { lines: true },
          order: { id: "DESC" },
          skip: 1,
          take: 2,
          ...withLockMode(LockMode.PESSIMISTIC_WRITE, options),
        });
      const [plain, bounded, first, plainPage, boundedPage] = await one.transaction(async (m) => [
        await find(m, {}),
        await find(m, { timeout: 1500 }),
        await m.findOne(Order, {
          where: { id: ids[1] },
          relations: { lines: true },
          ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 1500 }),
        }),
        await page(m, {}),
        await page(m, { timeout: 1500 }),
      ]);
      expect(plain.map((o) => o.id)).toEqual([...ids].reverse());
      expect(bounded).toEqual(plain);
      expect(plainPage.map((o) => o.id)).toEqual([ids[1], ids[0]]);
      expect(boundedPage).toEqual(plainPage);
      expect(first).toMatchObject({ id: ids[1], address: "y", lines: [{ product: "y" }] });
    });

    it("every pooled connection afterwards reads the server default", async () => {
      const baseline = await read(two.manager);
      const runners = [0, 1, 2, 3].map(() => one.createQueryRunner());
      try {
        for (const runner of runners) expect(await read(runner.manager)).toBe(baseline);
      } finally {
        for (const runner of runners) await runner.release();
      }
    });
  });

  describe("what the dialect given to installLocking cannot do is refused, not done wrong", () => {
    /** This database's own dialect, so the queries it renders run here. */
    const own: LockDialect = sqlite ? sqliteDialect : db.family === "postgres" ? postgresDialect : mariadbDialect;

    async function installedWith<T>(options: LockingOptions, work: (source: DataSource) => Promise<T>): Promise<T> {
      const source = installLocking(await openAlongside(one, { logger: undefined, logging: false }), options);
      try {
        return await work(source);
      } finally {
        await closeAll(source);
      }
    }

    const lockWrite = (source: DataSource, id: number, options?: LockOptions) =>
      source.transaction((m) =>
        m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, options) }),
      );

    it("a dialect without NOWAIT refuses timeout 0, and still locks with the database's own wait", async () => {
      const id = await account();
      await installedWith({ dialect: { ...own, supportsNoWait: false } }, async (source) => {
        const error = await lockWrite(source, id, { timeout: 0 }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LockingConfigurationError);
        expect((error as Error).message).toMatch(/PESSIMISTIC_WRITE on Account: .*cannot fail without waiting/);
        expect(await lockWrite(source, id)).toMatchObject({ id });
      });
    });

    it("a node whose row locks are node-local (Galera) refuses a pessimistic lock unless opted in", async () => {
      const id = await account();
      const nodeLocal: LockDialect = { ...own, nodeLocalLocks: true };
      await installedWith({ dialect: nodeLocal }, async (source) => {
        const error = await lockWrite(source, id).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LockingConfigurationError);
        expect((error as Error).message).toMatch(/PESSIMISTIC_WRITE on Account: this server is a Galera cluster node/);
      });
      await installedWith({ dialect: nodeLocal, galera: { pessimistic: "node-local" } }, async (source) => {
        expect(await lockWrite(source, id)).toMatchObject({ id });
      });
    });

    it("a wait setting that cannot be restored fails the query loudly, the restore's error kept as cause", async () => {
      const id = await account();
      const plan: TimeoutPlan = {
        readCurrent: "SELECT 1 AS value",
        apply: [],
        restore: () => ["SELECT * FROM tl_no_such_setting_table"],
      };
      await installedWith({ dialect: { ...own, waitPlan: () => plan } }, async (source) => {
        const error = await lockWrite(source, id).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LockingError);
        expect((error as Error).message).toMatch(/Could not restore the lock timeout \(SELECT 1 AS value\) to 1/);
        expect(String((error as Error).cause)).toMatch(/tl_no_such_setting_table/);
      });
    });
  });

  describe("deadlocks", () => {
    it("A,B / B,A with a timeout: exactly one fails with a typed error within the bound, the other commits", async () => {
      const a = await account();
      const b = await account();
      const firstHolds = deferred();
      const secondHolds = deferred();
      const take = (m: EntityManager, id: number) =>
        m.findOneOrFail(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 2000 }) });
      const transfer = (source: DataSource, from: number, to: number, mine: Deferred, theirs: Deferred) =>
        source.transaction(async (m) => {
          const x = await take(m, from);
          mine.resolve();
          await theirs.promise;
          const y = await take(m, to);
          x.balance -= 10;
          y.balance += 10;
          await m.save([x, y]);
        });
      const started = Date.now();
      const results = await Promise.allSettled([
        transfer(one, a, b, firstHolds, secondHolds),
        sqlite
          ? (async () => {
              await firstHolds.promise; // SQLite: the second cannot even take its first lock
              secondHolds.resolve();
              return transfer(two, b, a, deferred(), deferred());
            })()
          : transfer(two, b, a, secondHolds, firstHolds),
      ]);
      const elapsed = Date.now() - started;
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      const rows = await one.getRepository(Account).findBy([{ id: a }, { id: b }]);
      // SQLite: one writer at a time, and better-sqlite3 waits synchronously (the whole thread
      // sleeps in the busy handler), so the second transaction cannot get its first lock while the
      // first holds the database: it fails with LockTimeoutError after its timeout, the first commits.
      expect(failed).toHaveLength(1);
      const reason = failed[0].reason;
      expect(reason instanceof LockTimeoutError || reason instanceof DeadlockError).toBe(true);
      expect(elapsed).toBeLessThan(4000);
      // The survivor moved 10 one way; nothing of the failed transfer is there.
      expect(rows.map((r) => r.balance).sort()).toEqual([110, 90].sort());
    });

    /** The rows lockInOrder() locked, in the order it locked them: each lock statement's table and key values. */
    async function lockOrderOf(targets: LockTarget[]): Promise<string[]> {
      counter.reset();
      await one.transaction((m) => lockInOrder(m, targets, LockMode.PESSIMISTIC_WRITE));
      return counter.queries
        .filter((q) => /^SELECT|^WITH/i.test(q.query) && /\blocked\b/.test(q.query))
        .map(({ query, parameters = [] }) => {
          // SQLite's statements carry integers written in; the others, every value as a parameter.
          let next = 0;
          const where = query
            .slice(query.search(/\bWHERE\b/))
            .replace(/\$(\d+)|\?/g, (_, n) => String(parameters[n ? Number(n) - 1 : next++]));
          const table = /tl_(shelf|job|account)/.exec(query)![1];
          return `${table} ${[...where.matchAll(/(?:=|\bIN\s*\()\s*([^\s)]+)/gi)].map((m) => m[1]).join(",")}`;
        });
    }

    it("lockInOrder locks by table, then by key value (9 before 10 however the key is spelled), in any order asked", async () => {
      const asked: LockTarget[] = [
        { entity: Job, id: 1 },
        { entity: Account, id: 10n },
        { entity: Account, id: "9" },
        { entity: Account, id: { id: 11 } },
        { entity: Account, id: 8 },
      ];
      const expected = ["account 8", "account 9", "account 10", "account 11", "job 1"];
      expect(await lockOrderOf(asked)).toEqual(expected);
      expect(await lockOrderOf([...asked].reverse())).toEqual(expected);
    });

    it("lockInOrder with a null id beside others locks the others and gives null for it", async () => {
      const id = await account();
      const rows = await one.transaction((m) =>
        lockInOrder(
          m,
          [
            { entity: Account, id: null },
            { entity: Account, id },
          ],
          LockMode.PESSIMISTIC_WRITE,
        ),
      );
      expect(rows.map((row) => row?.id ?? null)).toEqual([null, id]);
    });

    it("lockInOrder locks a composite key by its columns in order; digit strings by value, other text after them", async () => {
      const rows: Array<[string, number]> = [
        ["b", 1],
        ["a", 10],
        ["10", 1],
        ["a9", 1],
        ["a", 9],
        ["9", 1],
        ["-1", 1],
        ["9a", 1],
        ["09", 1],
        ["-a", 1],
      ];
      const asked = rows.map(([code, slot]) => ({ entity: Shelf, id: { code, slot } }));
      const expected = [
        "shelf -1,1",
        "shelf 09,1",
        "shelf 9,1",
        "shelf 10,1",
        // Text after every digit string, even text whose characters sort before digits.
        "shelf -a,1",
        "shelf 9a,1",
        "shelf a,9",
        "shelf a,10",
        "shelf a9,1",
        "shelf b,1",
      ];
      expect(await lockOrderOf(asked)).toEqual(expected);
      expect(await lockOrderOf([...asked].reverse())).toEqual(expected);
    });

    it("lockInOrder: T2 asking for B,A waits for A without taking B, so T1 gets B and both commit", async () => {
      const a = await account();
      const b = await account();
      const lockAll = (m: EntityManager, ids: number[], timeout: number) =>
        lockInOrder(
          m,
          ids.map((id) => ({ entity: Account, id })),
          LockMode.PESSIMISTIC_WRITE,
          { timeout },
        ) as Promise<Account[]>;
      const t1HoldsA = deferred();
      const t2Waiting = deferred();
      const t1 = one.transaction(async (m) => {
        const [accA] = await lockAll(m, [a], 5000);
        t1HoldsA.resolve();
        await t2Waiting.promise;
        // T2 asked for [B, A]; had it locked B first (the naive order), this NOWAIT would fail.
        const [accB] = await lockAll(m, [b], 0);
        accA.balance -= 1;
        accB.balance += 1;
        await m.save([accA, accB]);
      });
      await t1HoldsA.promise;
      if (sqlite) {
        // better-sqlite3 waits for a lock synchronously, blocking the thread that would release it;
        // SQLite has one writer, so no deadlock is possible: T2 runs after T1.
        t2Waiting.resolve();
        await t1;
      }
      const t2 = two.transaction(async (m) => {
        const accounts = await lockAll(m, [b, a], 5000);
        expect(accounts.map((x) => x.id)).toEqual([b, a]); // returned in the order asked for
        for (const acc of accounts) acc.balance += 10;
        await m.save(accounts);
      });
      if (!sqlite) {
        await waitUntilBlocked(db, one);
        t2Waiting.resolve();
      }
      await Promise.all([t1, t2]);
      const rows = await one.getRepository(Account).findBy([{ id: a }, { id: b }]);
      expect(rows.sort((x, y) => x.id - y.id).map((r) => r.balance)).toEqual([109, 111]);
    });
  });

  describe("TypeORM-native lock options keep working", () => {
    if (!sqlite) {
      it("lock: { mode: 'pessimistic_write' } still locks as before", async () => {
        const id = await account();
        counter.reset();
        await one.transaction((m) => m.findOne(Account, { where: { id }, lock: { mode: "pessimistic_write" } }));
        expect(counter.statements.some((s) => /FOR UPDATE/.test(s))).toBe(true);
      });
    }
  });
});

/** A composite key, text then number, for the order lockInOrder() takes. */
@Entity({ name: "tl_shelf" })
class Shelf {
  @PrimaryColumn() code!: string;
  @PrimaryColumn() slot!: number;
  @Column({ default: "" }) label!: string;
}
