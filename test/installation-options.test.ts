/**
 * installLocking()'s options: each malformed one is refused, naming it, before anything changes;
 * each well-formed one is taken; installing again with other options puts them in effect, and
 * with the same ones keeps what the library learnt (the server's dialect). No concurrency: an
 * in-memory SQLite database.
 */
import "reflect-metadata";
import { Column, DataSource, Entity, PrimaryGeneratedColumn, VersionColumn } from "typeorm";
import {
  installLocking,
  LockingConfigurationError,
  type LockingOptions,
  mariadbDialect,
  OptimisticLockError,
  sqliteDialect,
  Versioned,
} from "../src";
import { installationOf } from "../src/installation";

@Entity({ name: "opt_item" })
class Item {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @Versioned() version!: number;
}

@Entity({ name: "opt_legacy_a" })
class LegacyA {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @VersionColumn() version!: number;
}

@Entity({ name: "opt_legacy_b" })
class LegacyB {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @VersionColumn() version!: number;
}

/** Every SQL statement the DataSource sends. */
const statements: string[] = [];
let ds: DataSource;

beforeAll(async () => {
  ds = await new DataSource({
    type: "better-sqlite3",
    database: ":memory:",
    entities: [Item, LegacyA, LegacyB],
    synchronize: true,
    logging: ["query"],
    logger: {
      logQuery: (query: string) => statements.push(query),
      logQueryError: () => undefined,
      logQuerySlow: () => undefined,
      logSchemaBuild: () => undefined,
      logMigration: () => undefined,
      log: () => undefined,
    },
  }).initialize();
});
afterAll(() => ds.destroy());
beforeEach(() => installLocking(ds));

const dialectLike = { ...sqliteDialect };

/** A function named like a dialect, carrying every other member of one (a function's name is read-only). */
function functionWithMembers(): Function {
  const { name: _name, ...members } = sqliteDialect;
  return Object.assign(function sqlite() {}, members);
}
const withoutMember = (member: string) => {
  const copy: Record<string, unknown> = { ...sqliteDialect };
  delete copy[member];
  return copy;
};

describe("a malformed option is refused, naming it, and the installation before it stays", () => {
  it.each<[string, unknown, RegExp]>([
    ["options that are a number", 5, /options are an object/],
    ["options that are a string", "checked", /options are an object/],
    ["options that are a list", [], /options are an object/],
    ["versionColumns unknown", { versionColumns: "always" }, /versionColumns/],
    ["galera not an object", { galera: "node-local" }, /galera is an object/],
    ["galera a list", { galera: ["node-local"] }, /galera is an object/],
    ["galera.pessimistic unknown", { galera: { pessimistic: "cluster" } }, /galera\.pessimistic/],
    ["exclude not a list", { exclude: "LegacyA" }, /exclude must be a list/],
    ["exclude holding a number", { exclude: [LegacyA, 5] }, /exclude must be a list/],
    ["exclude holding null", { exclude: [null] }, /exclude must be a list/],
    ["dialect an empty object", { dialect: {} }, /dialect must be a LockDialect/],
    ["dialect a string", { dialect: "mysql" }, /dialect must be a LockDialect/],
    ["dialect null", { dialect: null }, /dialect must be a LockDialect/],
    ["dialect without a name", { dialect: withoutMember("name") }, /dialect must be a LockDialect/],
    ["dialect without nowMillis", { dialect: withoutMember("nowMillis") }, /dialect must be a LockDialect/],
    [
      "dialect without timeoutGranularityMs",
      { dialect: withoutMember("timeoutGranularityMs") },
      /dialect must be a LockDialect/,
    ],
    ["dialect without render", { dialect: withoutMember("render") }, /dialect must be a LockDialect/],
    [
      "dialect without isConnectionLoss",
      { dialect: withoutMember("isConnectionLoss") },
      /dialect must be a LockDialect/,
    ],
    ["dialect with a render that is no function", { dialect: { ...sqliteDialect, render: "x" } }, /dialect must be/],
    // A dialect is an object (as the message says); a function that carries the members is not one.
    [
      "dialect a function with a dialect's members",
      { dialect: functionWithMembers() },
      /dialect must be a LockDialect/,
    ],
    ["lockTimeout negative", { lockTimeout: -1 }, /lockTimeout/],
    ["lockTimeout a string", { lockTimeout: "5" }, /lockTimeout/],
    ["batchWrites a string", { batchWrites: "yes" }, /batchWrites must be/],
    ["batchWrites a number", { batchWrites: 1 }, /batchWrites must be/],
    ["batchWrites null", { batchWrites: null }, /batchWrites must be/],
    ["batchWrites a list", { batchWrites: [] }, /batchWrites must be/],
    ["maxRowsPerStatement 1", { batchWrites: { maxRowsPerStatement: 1 } }, /batchWrites must be/],
    ["maxRowsPerStatement a fraction", { batchWrites: { maxRowsPerStatement: 2.5 } }, /batchWrites must be/],
    ["maxRowsPerStatement a string", { batchWrites: { maxRowsPerStatement: "4" } }, /batchWrites must be/],
  ])("%s", (_, options, names) => {
    const before = installationOf(ds);
    expect(() => installLocking(ds, options as LockingOptions)).toThrow(LockingConfigurationError);
    expect(() => installLocking(ds, options as LockingOptions)).toThrow(names);
    expect(installationOf(ds)).toBe(before);
  });
});

describe("a well-formed option is taken", () => {
  it.each<[string, unknown]>([
    ["no options", undefined],
    ["options null", null],
    ["options empty", {}],
    ["galera null", { galera: null }],
    ["galera empty", { galera: {} }],
    ["galera node-local", { galera: { pessimistic: "node-local" } }],
    ["exclude by class and by name", { versionColumns: "checked", exclude: [LegacyA, "LegacyB"] }],
    ["a dialect copied from one the package exports", { dialect: dialectLike }],
    ["lockTimeout 0 (NOWAIT)", { lockTimeout: 0 }],
    ["batchWrites false", { batchWrites: false }],
    ["batchWrites {}", { batchWrites: {} }],
    ["maxRowsPerStatement 2", { batchWrites: { maxRowsPerStatement: 2 } }],
  ])("%s", (_, options) => {
    expect(() => installLocking(ds, options as LockingOptions)).not.toThrow();
  });

  it("what each option becomes", () => {
    installLocking(ds, {
      lockTimeout: 250,
      galera: { pessimistic: "node-local" },
      batchWrites: { maxRowsPerStatement: 7 },
    });
    expect(installationOf(ds)).toMatchObject({
      options: { versionColumns: "unchecked", lockTimeout: 250, galera: { pessimistic: "node-local" } },
      defaultWait: { kind: "wait", ms: 250 },
      batching: { maxRows: 7 },
    });
    installLocking(ds, { batchWrites: false, lockTimeout: 0 });
    expect(installationOf(ds)).toMatchObject({ defaultWait: { kind: "nowait" }, batching: undefined });
    installLocking(ds, { batchWrites: true });
    expect(installationOf(ds)?.batching).toEqual({ maxRows: undefined });
    expect(installationOf(ds)?.defaultWait).toBeUndefined();
  });
});

describe("installing again", () => {
  it.each<[string, LockingOptions, LockingOptions]>([
    ["lockTimeout", { lockTimeout: 100 }, { lockTimeout: 200 }],
    ["dialect", { dialect: sqliteDialect }, { dialect: dialectLike }],
    ["galera.pessimistic", { galera: { pessimistic: "refuse" } }, { galera: { pessimistic: "node-local" } }],
    ["batchWrites", { batchWrites: true }, { batchWrites: false }],
    ["versionColumns", { versionColumns: "unchecked" }, { versionColumns: "checked" }],
    ["exclude, one entity for another", { exclude: [LegacyA] }, { exclude: [LegacyB] }],
    ["exclude, one more", { exclude: [LegacyA] }, { exclude: [LegacyA, LegacyB] }],
  ])("with another %s: the new options are in effect; with the same ones, nothing changes", (_, first, second) => {
    installLocking(ds, first);
    const firstInstallation = installationOf(ds);
    installLocking(ds, { ...first });
    expect(installationOf(ds)).toBe(firstInstallation);
    installLocking(ds, second);
    expect(installationOf(ds)).not.toBe(firstInstallation);
    expect(installationOf(ds)?.options).toEqual({ versionColumns: "unchecked", ...second });
  });

  it("batchWrites: false after true: three rows are three UPDATEs, not one", async () => {
    const items = ds.getRepository(Item);
    const rows = await items.save(["a", "b", "c"].map((name) => items.create({ name })));
    const updates = async () => {
      for (const row of rows) row.name += "!";
      statements.length = 0;
      await items.save(rows);
      return statements.filter((s) => /^\s*UPDATE/i.test(s)).length;
    };
    installLocking(ds, { batchWrites: true });
    expect(await updates()).toBe(1);
    installLocking(ds, { batchWrites: false });
    expect(await updates()).toBe(3);
  });

  it("exclude: [LegacyA], then [LegacyB]: LegacyA is checked again, LegacyB is left to TypeORM", async () => {
    /** Whether saving a copy of a row someone changed since is refused. */
    const refusesStale = async (entity: typeof LegacyA | typeof LegacyB) => {
      const repository = ds.getRepository<LegacyA>(entity);
      const { id } = await repository.save(repository.create({ name: "a" }));
      const stale = await repository.findOneByOrFail({ id });
      await repository.update({ id }, { name: "other", version: 2 });
      stale.name = "mine";
      return (await repository.save(stale).catch((e: unknown) => e)) instanceof OptimisticLockError;
    };
    installLocking(ds, { versionColumns: "checked", exclude: [LegacyA] });
    expect([await refusesStale(LegacyA), await refusesStale(LegacyB)]).toEqual([false, true]);
    installLocking(ds, { versionColumns: "checked", exclude: [LegacyB] });
    expect([await refusesStale(LegacyA), await refusesStale(LegacyB)]).toEqual([true, false]);
  });

  it("asks the server again what it is, unless a dialect is given: another server may be behind the new options", () => {
    installLocking(ds, {});
    installationOf(ds)!.serverDialect = mariadbDialect; // as a lock on a MySQL-family server records it
    installLocking(ds, { lockTimeout: 100 });
    expect(installationOf(ds)?.serverDialect).toBeUndefined();
    installLocking(ds, { dialect: dialectLike });
    expect(installationOf(ds)?.serverDialect).toBe(dialectLike);
    installLocking(ds, {});
    expect(installationOf(ds)?.serverDialect).toBeUndefined();
  });
});
