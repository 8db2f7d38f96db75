/**
 * What the hostile-input fuzzers (test/faults/hostile-input-*.test.ts, `npm run test:faults`)
 * found, one case each, on every database: each input used to escape as a TypeError, a RangeError
 * or a driver error, or to write, and now gets a typed refusal with nothing written.
 */
import { Column, type DataSource, Entity, PrimaryColumn, type Repository } from "typeorm";
import {
  AlreadyLockedError,
  assertVersion,
  installLocking,
  Lock,
  LockingConfigurationError,
  LockMode,
  lockInOrder,
  MissingVersionError,
  OfflineLockLostError,
  OfflineLockManager,
  OfflineLockRecord,
  OptimisticLockError,
  Retryable,
  RowNotFoundError,
  retryOnConflict,
  runWithLockMode,
  StaleVersionError,
  updateVersioned,
  Versioned,
  withLockMode,
} from "../src";
import { TenantCounter } from "./fixtures/counter";
import { Account } from "./fixtures/lock-entities";
import { closeAll, describeEachDatabase, openDataSources, StatementCounter } from "./support/databases";

/** PostgreSQL only: a key of its integer aliases. */
@Entity({ name: "hi_int_alias_keyed" })
class IntAliasKeyed {
  @PrimaryColumn({ type: "int2" }) a!: number;
  @PrimaryColumn({ type: "int4" }) b!: number;
  @PrimaryColumn({ type: "int8" }) c!: string;
  @Column() note!: string;
  @Versioned() version!: number;
}

const caught = (work: () => unknown) =>
  Promise.resolve()
    .then(work)
    .then(
      () => undefined,
      (e: unknown) => e,
    );

describe("values an error message cannot JSON.stringify (a bigint, a cycle)", () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;

  it.each([
    ["a bigint", 5n],
    ["a cycle", cyclic],
  ])("%s is refused with LockingConfigurationError, not a TypeError from the message", async (_, value) => {
    const account = Object.assign(new Account(), { id: 1, balance: 0, version: 1 });
    expect(await caught(() => assertVersion(account, value as never))).toBeInstanceOf(LockingConfigurationError);
    expect(await caught(() => withLockMode(value as never))).toBeInstanceOf(LockingConfigurationError);
    expect(await caught(() => withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: value as never }))).toBeInstanceOf(
      LockingConfigurationError,
    );
    expect(await caught(() => Retryable({ attempts: value as never }))).toBeInstanceOf(LockingConfigurationError);
  });

  it("a conflict about an id that is a cycle, or nested deep, is built all the same (its message cuts the id short)", () => {
    const deep = { a: { b: { c: { d: { e: { f: 1 } } } } } };
    for (const id of [cyclic, [cyclic, cyclic], deep]) {
      const details = { entityName: "Account", id, expectedVersion: 1, actualVersion: 2, operation: "update" };
      for (const error of [
        new OptimisticLockError(details),
        new StaleVersionError(details),
        new RowNotFoundError(details),
        new MissingVersionError({ entityName: "Account", id, versionProperty: "version", operation: "update" }),
      ]) {
        expect(error.id).toBe(id);
        expect(error.message).toContain("...");
      }
    }
  });

  it("lock options that are no object (withLockMode(mode, 1000)) are refused instead of waiting the default", async () => {
    expect(await caught(() => withLockMode(LockMode.PESSIMISTIC_WRITE, 1000 as never))).toBeInstanceOf(
      LockingConfigurationError,
    );
    expect(await caught(() => withLockMode(LockMode.PESSIMISTIC_WRITE, null as never))).toBeUndefined();
  });

  it("runWithLockMode and @Lock refuse work that is no function and entities that are not a list of classes", async () => {
    for (const entities of ["Account", [Account, "Job"], { 0: Account }, [null]]) {
      const options = { entities: entities as never };
      expect(await caught(() => runWithLockMode(LockMode.PESSIMISTIC_WRITE, options, () => 1))).toBeInstanceOf(
        LockingConfigurationError,
      );
      expect(await caught(() => Lock(LockMode.PESSIMISTIC_WRITE, options))).toBeInstanceOf(LockingConfigurationError);
    }
    expect(await caught(() => runWithLockMode(LockMode.PESSIMISTIC_WRITE, {}, "work" as never))).toBeInstanceOf(
      LockingConfigurationError,
    );
    // An accessor is no method to decorate.
    const accessor = { get: () => 1, configurable: true };
    expect(await caught(() => Lock(LockMode.PESSIMISTIC_WRITE)({}, "total", accessor))).toBeInstanceOf(
      LockingConfigurationError,
    );
    expect(runWithLockMode(LockMode.PESSIMISTIC_WRITE, { entities: [Account] }, () => "ran")).toBe("ran");
  });

  it("@Lock with null options runs the method (it threw a TypeError at the call)", async () => {
    class Service {
      @Lock(LockMode.PESSIMISTIC_WRITE, null as never)
      async run() {
        return "ran";
      }
    }
    expect(await new Service().run()).toBe("ran");
  });

  it.each([
    Number.POSITIVE_INFINITY,
    2 ** 31,
    1e21,
  ])("a lock timeout of %d ms is refused: it would reach the SQL as a value the database rejects", async (timeout) => {
    expect(await caught(() => withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout }))).toBeInstanceOf(
      LockingConfigurationError,
    );
  });
});

describeEachDatabase((db) => {
  let source: DataSource;
  let accounts: Repository<Account>;
  const statements = new StatementCounter();
  let nextId = 1;

  beforeAll(async () => {
    const pgOnly = db.family === "postgres" ? [IntAliasKeyed] : [];
    [source] = await openDataSources(db, [Account, TenantCounter, OfflineLockRecord, ...pgOnly], {
      extra: { logger: statements, logging: true },
    });
    installLocking(source);
    accounts = source.getRepository(Account);
  });
  afterAll(() => closeAll(source));

  async function newAccount(): Promise<Account> {
    return accounts.save(accounts.create({ id: nextId++, balance: 100 }));
  }
  const versionOf = async (id: number) => (await accounts.findOneByOrFail({ id })).version;

  describe("updateVersioned with an id from a client", () => {
    it("a list of ids is refused and writes nothing (it wrote every row of the list, then threw)", async () => {
      const [a, b] = [await newAccount(), await newAccount()];
      for (const id of [[a.id, b.id], { id: [a.id, b.id] }, [a.id], []]) {
        const error = await caught(() => updateVersioned(accounts, id as never, 1, { balance: 0 }));
        expect(error).toBeInstanceOf(LockingConfigurationError);
      }
      expect([await versionOf(a.id), await versionOf(b.id)]).toEqual([1, 1]);
      expect((await accounts.findOneByOrFail({ id: a.id })).balance).toBe(100);
    });

    it("a key value no integer key can hold names no row: RowNotFoundError, nothing sent", async () => {
      const a = await newAccount();
      statements.reset();
      expect(await caught(() => updateVersioned(accounts, a.id + 0.5, 1, { balance: 0 }))).toBeInstanceOf(
        RowNotFoundError,
      );
      expect(await caught(() => updateVersioned(accounts, "1 OR 1=1", 1, { balance: 0 }))).toBeInstanceOf(
        RowNotFoundError,
      );
      // Beyond 2^53 a number may stand for its neighbour; beyond 19 digits no 64-bit column holds it.
      for (const id of [2 ** 53, 10n ** 19n, "-10000000000000000000"]) {
        expect(await caught(() => updateVersioned(accounts, id as never, 1, { balance: 0 }))).toBeInstanceOf(
          RowNotFoundError,
        );
      }
      expect(statements.count).toBe(0);
      expect(await caught(() => updateVersioned(accounts, Number.NaN, 1, { balance: 0 }))).toBeInstanceOf(
        LockingConfigurationError,
      );
      expect(await versionOf(a.id)).toBe(1);
      // The id as a map, or its digits, still name the row.
      // Beyond 32 bits: PostgreSQL refused the value (a driver error), the others match no row.
      // Beyond 64 bits: better-sqlite3 refused to bind it (a RangeError in a QueryFailedError).
      for (const id of [2 ** 31, -(2n ** 31n) - 1n, "99999999999", 2n ** 63n, -(2n ** 63n) - 1n, 2n ** 64n]) {
        expect(await caught(() => updateVersioned(accounts, id as never, 1, { balance: 0 }))).toBeInstanceOf(
          RowNotFoundError,
        );
      }
      // A version beyond 32 bits: PostgreSQL refused it for an int version column; it is stale everywhere.
      expect(await caught(() => updateVersioned(accounts, a.id, 2 ** 53 - 1, { balance: 0 }))).toBeInstanceOf(
        StaleVersionError,
      );
      expect(await updateVersioned(accounts, { id: a.id }, 1, { balance: 1 })).toBe(2);
      expect(await updateVersioned(accounts, String(a.id), 2, { balance: 2 })).toBe(3);
      // Digits with spaces around them, as a form or URL may send them, still name it.
      expect(await updateVersioned(accounts, ` ${a.id} `, 3, { balance: 3 })).toBe(4);
    });

    it("digits past 32 bits with spaces around them name no row either: RowNotFoundError on every database", async () => {
      const a = await newAccount();
      // PostgreSQL refuses them for its integer key (a driver error); the others compare them and match no row.
      for (const id of [" 3000000000 ", " -3000000000 ", "\t99999999999\n"]) {
        expect(await caught(() => updateVersioned(accounts, id, 1, { balance: 0 }))).toBeInstanceOf(RowNotFoundError);
      }
      expect(await accounts.findOneByOrFail({ id: a.id })).toMatchObject({ balance: 100, version: 1 });
    });

    it("a patch that is no object of columns (null, a list, a number, text) is refused, nothing sent", async () => {
      const a = await newAccount();
      statements.reset();
      for (const patch of [null, undefined, [], [{ balance: 0 }], 0, "balance = 0"]) {
        const error = await caught(() => updateVersioned(accounts, a.id, 1, patch as never));
        expect(error).toBeInstanceOf(LockingConfigurationError);
      }
      expect(statements.count).toBe(0);
      expect(await versionOf(a.id)).toBe(1);
    });
  });

  describe("updateVersioned of a row with a composite key (text, integer)", () => {
    let counters: Repository<TenantCounter>;
    beforeAll(() => {
      counters = source.getRepository(TenantCounter);
    });
    const newCounter = (tenant: string, id: number) => counters.save(counters.create({ tenant, id, value: 0 }));

    it("a key value alone, or a map missing a part, names no one row: refused, nothing sent", async () => {
      await newCounter("t", 1);
      await newCounter("u", 1);
      statements.reset();
      for (const id of [1, "t", { tenant: "t" }, { id: 1 }, null, [{ tenant: "t", id: 1 }]]) {
        const error = await caught(() => updateVersioned(counters, id as never, 1, { value: 9 }));
        expect(error).toBeInstanceOf(LockingConfigurationError);
      }
      expect(statements.count).toBe(0);
      expect((await counters.find()).filter((c) => c.value !== 0)).toEqual([]);
      expect(await updateVersioned(counters, { tenant: "t", id: 1 }, 1, { value: 9 })).toBe(2);
      expect((await counters.findOneByOrFail({ tenant: "u", id: 1 })).value).toBe(0);
    });

    it("a fraction for its integer part names no row: RowNotFoundError, nothing sent", async () => {
      await newCounter("f", 2);
      statements.reset();
      const error = await caught(() => updateVersioned(counters, { tenant: "f", id: 2.5 }, 1, { value: 9 }));
      expect(error).toBeInstanceOf(RowNotFoundError);
      expect(statements.count).toBe(0);
    });

    it("an integer part beyond 32 bits names no row on every database (PostgreSQL refuses the value)", async () => {
      const error = await caught(() => updateVersioned(counters, { tenant: "f", id: 2 ** 31 }, 1, { value: 9 }));
      expect(error).toBeInstanceOf(RowNotFoundError);
    });
  });

  (db.family === "postgres" ? it : it.skip)(
    "keys typed int2, int4 and int8: a fraction names no row (RowNotFoundError, nothing sent), as for int",
    async () => {
      const keyed = source.getRepository(IntAliasKeyed);
      await keyed.save(keyed.create({ a: 1, b: 1, c: "1", note: "" }));
      statements.reset();
      for (const id of [
        { a: 1.5, b: 1, c: "1" },
        { a: 1, b: 1.5, c: "1" },
        { a: 1, b: 1, c: "1.5" },
      ]) {
        expect(await caught(() => updateVersioned(keyed, id, 1, { note: "x" }))).toBeInstanceOf(RowNotFoundError);
      }
      expect(statements.count).toBe(0);
      expect(await updateVersioned(keyed, { a: 1, b: 1, c: "1" }, 1, { note: "x" })).toBe(2);
    },
  );

  // PostgreSQL refuses a value its column cannot hold; only an id or a version out of the column's
  // range means "no such row": a patch value it cannot hold stays the driver's error, whatever the key.
  (db.family === "postgres" ? it : it.skip)(
    "a patch value the column cannot hold is the driver's error, also for keys at the 32-bit edges or holding digits",
    async () => {
      const edges = [2147483647, -2147483648];
      for (const id of edges) await accounts.save(accounts.create({ id, balance: 1 }));
      for (const id of edges) {
        const error = await caught(() => updateVersioned(accounts, id, 1, { balance: "lots" as never }));
        expect(error).not.toBeInstanceOf(RowNotFoundError);
        expect((error as { driverError?: { code?: string } }).driverError?.code).toBe("22P02");
      }
      const counters = source.getRepository(TenantCounter);
      for (const tenant of ["99999999999x", "x99999999999", "t"]) {
        await counters.save(counters.create({ tenant, id: 3, value: 0 }));
        const error = await caught(() => updateVersioned(counters, { tenant, id: 3 }, 1, { value: "lots" as never }));
        expect((error as { driverError?: { code?: string } }).driverError?.code).toBe("22P02");
      }
      expect((await accounts.findOneByOrFail({ id: edges[0] })).version).toBe(1);
    },
  );

  it("the longest lock wait (2^31-1 ms) reaches every database as SQL it accepts", async () => {
    const a = await newAccount();
    statements.reset();
    const row = await source.transaction((manager) =>
      manager.findOne(Account, {
        where: { id: a.id },
        ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 2 ** 31 - 1 }),
      }),
    );
    expect(row?.id).toBe(a.id);
    expect(statements.statements.join("\n")).not.toMatch(/e\+|Infinity|NaN/);
  });

  it("save() of a copy whose version is a value String() cannot print is refused, not a TypeError", async () => {
    const a = await newAccount();
    const copy = await accounts.findOneByOrFail({ id: a.id });
    copy.version = [Object.assign(Object.create(null), { v: 0n })] as never;
    copy.balance = 1;
    expect(await caught(() => accounts.save(copy))).toBeInstanceOf(LockingConfigurationError);
    expect(await versionOf(a.id)).toBe(1);
  });

  it("lockInOrder with a bigint id beside a number orders them instead of throwing a TypeError", async () => {
    const [a, b] = [await newAccount(), await newAccount()];
    const rows = await source.transaction((manager) =>
      lockInOrder(
        manager,
        [
          { entity: Account, id: BigInt(b.id) },
          { entity: Account, id: a.id },
        ],
        LockMode.PESSIMISTIC_WRITE,
      ),
    );
    expect(rows.map((r) => r?.id)).toEqual([b.id, a.id]);
  });

  it("lockInOrder refuses targets that are not a list of objects, and a bad mode or wait, naming itself, before any lock", async () => {
    const a = await newAccount();
    const refusal = async (targets: unknown, mode: unknown = LockMode.PESSIMISTIC_WRITE, options?: unknown) => {
      statements.reset();
      const error = await caught(() =>
        source.transaction((manager) => lockInOrder(manager, targets as never, mode as never, options as never)),
      );
      expect(statements.statements.filter((s) => /\bFROM\b/i.test(s))).toEqual([]);
      return error;
    };
    for (const targets of ["tl_account", [{ entity: Account, id: a.id }, null], [{ entity: Account, id: a.id }, 7]]) {
      const error = await refusal(targets);
      expect(error).toBeInstanceOf(LockingConfigurationError);
      expect((error as Error).message).toMatch(/^lockInOrder\(\): targets must be a list of \{ entity, id \}/);
    }
    expect(((await refusal([], "WRITE")) as Error).message).toMatch(/lockInOrder\(\)/);
    expect(((await refusal([], LockMode.PESSIMISTIC_WRITE, { timeout: -5 })) as Error).message).toMatch(
      /lockInOrder\(\)/,
    );
    // An empty list is no mistake: nothing to lock.
    expect(await source.transaction((m) => lockInOrder(m, [], LockMode.PESSIMISTIC_WRITE))).toEqual([]);
  });

  it("retryOnConflict refuses an isolation level that is none (TypeORM wrote it into START TRANSACTION)", async () => {
    const a = await newAccount();
    statements.reset();
    let ran = false;
    const error = await caught(() =>
      retryOnConflict(
        source,
        async () => {
          ran = true;
        },
        { isolation: "SERIALIZABLE; UPDATE tl_account SET balance = 0; --" as never },
      ),
    );
    expect(error).toBeInstanceOf(LockingConfigurationError);
    expect(ran).toBe(false);
    expect(statements.count).toBe(0);
    expect((await accounts.findOneByOrFail({ id: a.id })).balance).toBe(100);
  });

  it("retryOnConflict refuses an isolation level the database lacks (SQLite: TypeORM's own TypeORMError escaped)", async () => {
    const a = await newAccount();
    let runs = 0;
    const work = async () => {
      runs++;
    };
    for (const isolation of ["READ COMMITTED", "REPEATABLE READ"] as const) {
      const error = await caught(() => retryOnConflict(source, work, { isolation }));
      if (db.family === "sqlite") expect(error).toBeInstanceOf(LockingConfigurationError);
      else expect(error).toBeUndefined();
    }
    expect(runs).toBe(db.family === "sqlite" ? 0 : 2);
    // SERIALIZABLE and READ UNCOMMITTED (SQLite's PRAGMA read_uncommitted) run everywhere
    await retryOnConflict(source, work, { isolation: "SERIALIZABLE" });
    expect(runs).toBe(db.family === "sqlite" ? 1 : 3);
    await retryOnConflict(source, work, { isolation: "READ UNCOMMITTED" });
    expect(runs).toBe(db.family === "sqlite" ? 2 : 4);
    expect((await accounts.findOneByOrFail({ id: a.id })).balance).toBe(100);
  });

  describe("offline lock keys and owners the columns cannot store", () => {
    const locks = () => new OfflineLockManager(source);

    it.each([
      ["an owner of 201 characters", "Order", "1", "x".repeat(201)],
      ["a type of 101 characters", "T".repeat(101), "1", "kim"],
      ["an id of 151 characters", "Order", "9".repeat(151), "kim"],
      ["a NUL in the id", "Order", "a\u0000b", "kim"],
      ["a lone surrogate in the owner", "Order", "1", "k\ud800m"],
      ["a lone surrogate at the top of the range in the owner", "Order", "1", "k\udfffm"],
      ["a type of blanks only", "   ", "1", "kim"],
    ])("%s is LockingConfigurationError, nothing stored (the driver failed, or SQLite stored it)", async (_, type, id, owner) => {
      const before = await source.getRepository(OfflineLockRecord).count();
      expect(await caught(() => locks().tryLock(type, id, { owner, ttlMs: 60_000 }))).toBeInstanceOf(
        LockingConfigurationError,
      );
      expect(await source.getRepository(OfflineLockRecord).count()).toBe(before);
    });

    it("the longest key and owner are taken as given, unicode included", async () => {
      const id = "\u{1F600}".repeat(150);
      const handle = await locks().tryLock("T".repeat(100), id, { owner: "é".repeat(200), ttlMs: 60_000 });
      expect(handle).toMatchObject({ lockType: "T".repeat(100), lockId: id, owner: "é".repeat(200) });
      await locks().releaseLock(handle);
    });

    it("a TTL past the dates JavaScript holds is refused (the next taker got a RangeError, not AlreadyLockedError)", async () => {
      expect(await caught(() => locks().tryLock("Order", "ttl", { owner: "kim", ttlMs: 9e15 }))).toBeInstanceOf(
        LockingConfigurationError,
      );
      const held = await locks().tryLock("Order", "ttl", { owner: "kim", ttlMs: 10 * 365 * 86_400_000 });
      const second = await caught(() => locks().tryLock("Order", "ttl", { owner: "lee", ttlMs: 1000 }));
      expect(second).toBeInstanceOf(AlreadyLockedError);
      expect((second as AlreadyLockedError).expiresAt.getTime()).toBe(held.expiresAt.getTime());
      await locks().releaseLock(held);
      // Ten years at most, counted as 10 x 366 days: that much is taken, one ms more is not.
      const longest = 10 * 366 * 86_400_000;
      await locks().releaseLock(await locks().tryLock("Order", "ttl", { owner: "kim", ttlMs: longest }));
      expect(await caught(() => locks().tryLock("Order", "ttl", { owner: "kim", ttlMs: longest + 1 }))).toBeInstanceOf(
        LockingConfigurationError,
      );
    });

    it("a handle tryLock() never made holds nothing: OfflineLockLostError, not a driver error, nothing sent", async () => {
      statements.reset();
      const hex = "0123456789abcdef".repeat(2);
      for (const handle of [
        "\u0000",
        "x".repeat(10_000),
        "'; DELETE FROM typeorm_locking_offline_lock; --",
        `g${hex}`,
        `${hex}g`,
      ]) {
        expect(await caught(() => locks().checkLock(handle))).toBeInstanceOf(OfflineLockLostError);
        expect(await caught(() => locks().extendLock(handle, 60_000))).toBeInstanceOf(OfflineLockLostError);
        expect(await caught(() => locks().releaseLock(handle))).toBeInstanceOf(OfflineLockLostError);
      }
      expect(statements.count).toBe(0);
    });
  });
});
