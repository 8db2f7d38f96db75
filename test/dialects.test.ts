/**
 * The SQL each dialect renders and the errors it classifies, including the databases with no
 * server here (SQL Server, Oracle). No database server needed (one SQLite statement runs in memory).
 */
import { Column, DataSource, Entity, PrimaryGeneratedColumn, VersionColumn } from "typeorm";
import {
  ClusterNodeNotReadyError,
  DeadlockError,
  isRetryableConflict,
  LockTimeoutError,
  mariadbDialect,
  mysqlDialect,
  oracleDialect,
  PessimisticLockError,
  postgresDialect,
  SerializationError,
  sqliteDialect,
  sqlserverDialect,
  type TranslatedDatabaseError,
  type WaitPolicy,
} from "../src";
import { dialectForServer, dialectForType, galeraDialect, serverFactsOf, serverFactsQuery } from "../src/dialect";
import { latestDeadlockVictim } from "../src/dialect/galera";
import { roundWait } from "../src/dialect/lock-dialect";
import { SKIP_LOCKED, waitPolicyOf } from "../src/lock-mode";
import { columnOf, type DriverLike } from "../src/typeorm/batched-writes";

const NOWAIT: WaitPolicy = { kind: "nowait" };
const SKIP: WaitPolicy = { kind: "skip" };
const DEFAULT: WaitPolicy = { kind: "default" };
const wait = (ms: number): WaitPolicy => ({ kind: "wait", ms });

describe("what each dialect is and can do", () => {
  // The name is what errors (`dialect`), lock traces and messages report; the capabilities decide
  // which lock requests are refused before anything is sent.
  // Titles are fixed strings: one that printed the dialect object changed with a mutant of it, and
  // mutation testing then ran no test under the old title.
  it.each([
    ["postgres", postgresDialect, { shared: true, noWait: true, skipLocked: true }],
    ["mysql", mysqlDialect, { shared: true, noWait: true, skipLocked: true }],
    ["mariadb", mariadbDialect, { shared: true, noWait: true, skipLocked: true }],
    ["galera", galeraDialect, { shared: true, noWait: true, skipLocked: true }],
    ["sqlite", sqliteDialect, { shared: false, noWait: true, skipLocked: false }],
    ["mssql", sqlserverDialect, { shared: true, noWait: true, skipLocked: true }],
    ["oracle", oracleDialect, { shared: false, noWait: true, skipLocked: true }],
  ] as const)("%s", (name, dialect, can) => {
    expect(dialect.name).toBe(name);
    expect({
      shared: dialect.supportsSharedLock,
      noWait: dialect.supportsNoWait,
      skipLocked: dialect.supportsSkipLocked,
    }).toEqual(can);
    expect(dialect.nodeLocalLocks === true).toBe(dialect === galeraDialect);
  });

  // Run on their own servers in offline-locks.test.ts; these two have none here.
  it("SQL Server and Oracle read the server's clock in UTC ms since the epoch", () => {
    expect(sqlserverDialect.nowMillis).toBe("DATEDIFF_BIG(millisecond, '1970-01-01', SYSUTCDATETIME())");
    expect(oracleDialect.nowMillis).toBe(
      "ROUND((CAST(SYS_EXTRACT_UTC(SYSTIMESTAMP) AS DATE) - DATE '1970-01-01') * 86400000)",
    );
  });

  it("SQLite's write-lock statement quotes a table name holding a double quote", async () => {
    const sqlite = await new DataSource({ type: "better-sqlite3", database: ":memory:" }).initialize();
    try {
      await sqlite.query(`CREATE TABLE "odd""name" ("my""id" INTEGER PRIMARY KEY)`);
      const statement = sqliteDialect.lockStatement?.("exclusive", 'odd"name', 'my"id');
      expect(statement).toBe('UPDATE "odd""name" SET "my""id" = "my""id" WHERE 0 = 1');
      await expect(sqlite.query(statement as string)).resolves.toBeDefined();
    } finally {
      await sqlite.destroy();
    }
  });
});

describe("lock clauses", () => {
  it.each([
    ["postgres", postgresDialect, "exclusive", DEFAULT, " FOR UPDATE"],
    ["postgres", postgresDialect, "shared", DEFAULT, " FOR SHARE"],
    ["postgres", postgresDialect, "exclusive", NOWAIT, " FOR UPDATE NOWAIT"],
    ["postgres", postgresDialect, "shared", SKIP, " FOR SHARE SKIP LOCKED"],
    ["postgres", postgresDialect, "exclusive", wait(1500), " FOR UPDATE"],
    ["mysql", mysqlDialect, "shared", DEFAULT, " FOR SHARE"],
    ["mysql", mysqlDialect, "exclusive", NOWAIT, " FOR UPDATE NOWAIT"],
    ["mysql", mysqlDialect, "exclusive", SKIP, " FOR UPDATE SKIP LOCKED"],
    ["mysql", mysqlDialect, "exclusive", wait(1500), " FOR UPDATE"],
    ["mariadb", mariadbDialect, "shared", DEFAULT, " LOCK IN SHARE MODE"],
    ["mariadb", mariadbDialect, "exclusive", NOWAIT, " FOR UPDATE NOWAIT"],
    ["mariadb", mariadbDialect, "exclusive", SKIP, " FOR UPDATE SKIP LOCKED"],
    ["mariadb", mariadbDialect, "exclusive", wait(1500), " FOR UPDATE WAIT 2"],
    ["mariadb", mariadbDialect, "shared", wait(1), " LOCK IN SHARE MODE WAIT 1"],
    ["oracle", oracleDialect, "exclusive", DEFAULT, " FOR UPDATE"],
    ["oracle", oracleDialect, "exclusive", NOWAIT, " FOR UPDATE NOWAIT"],
    ["oracle", oracleDialect, "exclusive", SKIP, " FOR UPDATE SKIP LOCKED"],
    ["oracle", oracleDialect, "exclusive", wait(2500), " FOR UPDATE WAIT 3"],
    ["sqlite", sqliteDialect, "exclusive", wait(100), ""],
  ] as const)("%s %s %j -> %j", (_, dialect, strength, w, clause) => {
    expect(dialect.render(strength, w)).toMatchObject({ tableHint: "", clause });
  });

  it("PostgreSQL locks only the queried entity's rows, not joined ones", () => {
    expect(postgresDialect.render("exclusive", NOWAIT, '"order"').clause).toBe(' FOR UPDATE OF "order" NOWAIT');
    expect(postgresDialect.render("shared", DEFAULT, '"o"').clause).toBe(' FOR SHARE OF "o"');
    expect(mariadbDialect.render("exclusive", DEFAULT, "`o`").clause).toBe(" FOR UPDATE");
  });

  it("SQL Server locks with table hints", () => {
    expect(sqlserverDialect.render("exclusive", DEFAULT)).toEqual({
      tableHint: " WITH (UPDLOCK, HOLDLOCK, ROWLOCK)",
      clause: "",
    });
    expect(sqlserverDialect.render("shared", NOWAIT).tableHint).toBe(" WITH (HOLDLOCK, ROWLOCK, NOWAIT)");
    expect(sqlserverDialect.render("exclusive", SKIP).tableHint).toBe(" WITH (UPDLOCK, HOLDLOCK, ROWLOCK, READPAST)");
  });

  it("SQLite takes the database write lock with a write that matches nothing; no shared lock", () => {
    expect(sqliteDialect.lockStatement("exclusive", "order", "id")).toBe('UPDATE "order" SET "id" = "id" WHERE 0 = 1');
    expect(sqliteDialect.lockStatement("shared", "order", "id")).toBeUndefined();
    expect(sqliteDialect.supportsSharedLock).toBe(false);
    expect(postgresDialect.lockStatement("exclusive", "order", "id")).toBeUndefined();
  });
});

describe("a batched UPDATE's failure-path probe", () => {
  // Run on MariaDB in batched-writes.test.ts (MySQL's statements forced there leave JSON columns
  // out: MariaDB has no CAST(.. AS JSON)); no MySQL server here, so its SQL is read.
  const column = (key: string, json = false) => ({ name: `\`${key}\``, key, type: undefined, json });
  const shape = {
    table: "`doc`",
    keys: [column("id")],
    version: column("version"),
    // A JSON column after another one: each compares with its own value cell.
    values: [column("body", true), column("tags"), column("meta", true)],
    stamps: [],
    conditions: [],
    returning: [],
    rows: 2,
    placeholder: () => "?",
  };

  it("MySQL tells a written JSON column by comparing it as JSON; MariaDB's JSON and simple-json are text", () => {
    const mysqlProbe = mysqlDialect.batchedUpdate?.(shape)?.probe;
    expect(mysqlProbe).toContain("`_tl_t`.`body` <=> CAST(`_tl_v`.`c2` AS JSON)");
    expect(mysqlProbe).toContain("`_tl_t`.`tags` <=> `_tl_v`.`c3`");
    expect(mysqlProbe).toContain("`_tl_t`.`meta` <=> CAST(`_tl_v`.`c4` AS JSON)");
    const mariadbProbe = mariadbDialect.batchedUpdate?.(shape)?.probe;
    expect(mariadbProbe).toContain("`_tl_t`.`body` <=> `_tl_v`.`c2`");
    expect(mariadbProbe).toContain("`_tl_t`.`meta` <=> `_tl_v`.`c4`");
    expect(mariadbProbe).not.toContain("AS JSON");
  });
});

describe("a batched statement's columns, from an entity's metadata", () => {
  @Entity({ name: "probe_doc" })
  class ProbeDoc {
    @PrimaryGeneratedColumn() id!: number;
    @Column({ type: "json" }) body!: { state: string };
    @Column("simple-json") tags!: string[];
    @VersionColumn() version!: number;
  }

  it("a JSON column is compared as JSON in MySQL's probe; simple-json is text", async () => {
    const ds = await new DataSource({
      type: "better-sqlite3",
      database: ":memory:",
      entities: [ProbeDoc],
    }).initialize();
    try {
      const metadata = ds.getMetadata(ProbeDoc);
      const of = (property: string) =>
        columnOf(metadata.findColumnWithPropertyName(property)!, ds.driver as unknown as DriverLike);
      expect([of("body").json, of("tags").json]).toEqual([true, false]);
      const probe = mysqlDialect.batchedUpdate?.({
        table: "`probe_doc`",
        keys: [of("id")],
        version: of("version"),
        values: [of("tags"), of("body")],
        stamps: [],
        conditions: [],
        returning: [],
        rows: 2,
        placeholder: () => "?",
      })?.probe;
      expect(probe).toContain('`_tl_t`."body" <=> CAST(`_tl_v`.`c3` AS JSON)');
      expect(probe).toContain('`_tl_t`."tags" <=> `_tl_v`.`c2`');
    } finally {
      await ds.destroy();
    }
  });
});

describe("bounded waits", () => {
  it("PostgreSQL: the locking statement sets lock_timeout in ms, locks, and restores it, all in one statement", () => {
    const rendering = postgresDialect.render("exclusive", wait(1500.2), '"o"');
    expect(rendering.clause).toBe(' FOR UPDATE OF "o"');
    expect(postgresDialect.waitPlan(wait(1500))).toBeUndefined();
    const sql = rendering.boundStatement!('SELECT "o"."id" FROM "order" "o" FOR UPDATE OF "o"');
    expect(sql).toContain("set_config('lock_timeout', '1501ms', true)");
    expect(sql).toContain('(SELECT "o"."id" FROM "order" "o" FOR UPDATE OF "o") "_tl_locked"');
    expect(sql).toMatch(/^WITH .*set_config\('lock_timeout', \(SELECT "value" FROM "_tl_before"\), true\)/);
    expect(postgresDialect.render("exclusive", NOWAIT).boundStatement).toBeUndefined();
    expect(postgresDialect.render("exclusive", DEFAULT).boundStatement).toBeUndefined();
  });

  it("MySQL: session innodb_lock_wait_timeout in whole seconds, rounded up, restored", () => {
    const plan = mysqlDialect.waitPlan(wait(1001))!;
    expect(plan.apply).toEqual(["SET SESSION innodb_lock_wait_timeout = 2"]);
    expect(plan.restore("50")).toEqual(["SET SESSION innodb_lock_wait_timeout = 50"]);
    expect(mysqlDialect.waitPlan(wait(1))!.apply).toEqual(["SET SESSION innodb_lock_wait_timeout = 1"]);
  });

  it("MariaDB and Oracle need no setting: the wait is in the statement", () => {
    expect(mariadbDialect.waitPlan(wait(1000))).toBeUndefined();
    expect(oracleDialect.waitPlan(wait(1000))).toBeUndefined();
  });

  it("SQLite: busy_timeout in ms, 0 for NOWAIT; SQL Server: SET LOCK_TIMEOUT in ms", () => {
    expect(sqliteDialect.waitPlan(wait(250))!.apply).toEqual(["PRAGMA busy_timeout = 250"]);
    expect(sqliteDialect.waitPlan(NOWAIT)!.apply).toEqual(["PRAGMA busy_timeout = 0"]);
    expect(sqliteDialect.waitPlan(SKIP)).toBeUndefined();
    const plan = sqlserverDialect.waitPlan(wait(750))!;
    expect(plan).toMatchObject({ readCurrent: "SELECT @@LOCK_TIMEOUT AS value", apply: ["SET LOCK_TIMEOUT 750"] });
    expect(plan.restore("-1")).toEqual(["SET LOCK_TIMEOUT -1"]);
  });

  it("a wait is never shortened by rounding", () => {
    expect(roundWait(1, 1000)).toBe(1000);
    expect(roundWait(1000, 1000)).toBe(1000);
    expect(roundWait(1001, 1000)).toBe(2000);
    expect(roundWait(7, 1)).toBe(7);
  });

  it("timeouts are validated; SKIP_LOCKED and onLocked are the same thing", () => {
    expect(waitPolicyOf({ timeout: 0 }, "t")).toEqual(NOWAIT);
    expect(waitPolicyOf({ timeout: SKIP_LOCKED }, "t")).toEqual(SKIP);
    // The documented value, as a configuration file or a form would give it.
    expect(waitPolicyOf({ timeout: -2 }, "t")).toEqual(SKIP);
    expect(() => waitPolicyOf({ timeout: Number.NaN }, "here")).toThrow(/here: timeout must be/);
    expect(() => waitPolicyOf({ timeout: "5" as never }, "here")).toThrow(/here: timeout must be/);
    expect(waitPolicyOf({ onLocked: "skip" }, "t")).toEqual(SKIP);
    expect(waitPolicyOf({ onLocked: "nowait" }, "t")).toEqual(NOWAIT);
    expect(waitPolicyOf({ timeout: 300 }, "t")).toEqual(wait(300));
    expect(waitPolicyOf({}, "t")).toBeUndefined();
    expect(() => waitPolicyOf({ timeout: -5 }, "here")).toThrow(/here: timeout must be/);
    expect(() => waitPolicyOf({ onLocked: "later" as never }, "here")).toThrow(/onLocked must be/);
  });

  it('onLocked "wait" is the database\'s own wait, or the timeout given; a timeout asking for another wait is refused', () => {
    expect(waitPolicyOf({ onLocked: "wait" }, "t")).toEqual({ kind: "default" });
    expect(waitPolicyOf({ onLocked: "wait", timeout: 300 }, "t")).toEqual(wait(300));
    expect(waitPolicyOf({ onLocked: "nowait", timeout: 0 }, "t")).toEqual(NOWAIT);
    expect(waitPolicyOf({ onLocked: "skip", timeout: SKIP_LOCKED }, "t")).toEqual(SKIP);
    for (const contradiction of [
      { onLocked: "nowait", timeout: 500 },
      { onLocked: "nowait", timeout: SKIP_LOCKED },
      { onLocked: "skip", timeout: 0 },
      { onLocked: "skip", timeout: 500 },
      { onLocked: "wait", timeout: 0 },
      { onLocked: "wait", timeout: SKIP_LOCKED },
    ] as const) {
      expect(() => waitPolicyOf(contradiction, "here")).toThrow(
        /^here: onLocked "\w+" and timeout -?\d+ ask for different waits/,
      );
    }
  });
});

describe("error classification", () => {
  // The name: `<dialect> <code>`, as the error carries them.
  const cases: Array<
    [string, { classifyError(e: unknown): TranslatedDatabaseError | undefined }, object, Function, boolean]
  > = [
    ["postgres 55P03", postgresDialect, { code: "55P03" }, LockTimeoutError, true],
    ["postgres 40P01", postgresDialect, { code: "40P01" }, DeadlockError, true],
    ["postgres 40001", postgresDialect, { code: "40001" }, SerializationError, true],
    ["mysql 1205", mysqlDialect, { errno: 1205 }, LockTimeoutError, false],
    ["mysql 3572", mysqlDialect, { errno: 3572 }, LockTimeoutError, false],
    ["mysql 1213", mysqlDialect, { errno: 1213 }, DeadlockError, true],
    ["mariadb 1020", mariadbDialect, { errno: 1020 }, SerializationError, true],
    ["sqlite SQLITE_BUSY", sqliteDialect, { code: "SQLITE_BUSY" }, LockTimeoutError, false],
    ["sqlite SQLITE_BUSY_TIMEOUT", sqliteDialect, { code: "SQLITE_BUSY_TIMEOUT" }, LockTimeoutError, false],
    ["sqlite SQLITE_LOCKED", sqliteDialect, { code: "SQLITE_LOCKED" }, LockTimeoutError, false],
    ["sqlite SQLITE_LOCKED_SHAREDCACHE", sqliteDialect, { code: "SQLITE_LOCKED_SHAREDCACHE" }, LockTimeoutError, false],
    ["sqlite SQLITE_BUSY_SNAPSHOT", sqliteDialect, { code: "SQLITE_BUSY_SNAPSHOT" }, SerializationError, false],
    ["mssql 1222", sqlserverDialect, { number: 1222 }, LockTimeoutError, false],
    ["mssql 1205", sqlserverDialect, { originalError: { info: { number: 1205 } } }, DeadlockError, true],
    ["oracle ORA-00054", oracleDialect, { errorNum: 54 }, LockTimeoutError, false],
    [
      "oracle ORA-30006",
      oracleDialect,
      { message: "ORA-30006: resource busy; acquire with WAIT timeout expired" },
      LockTimeoutError,
      false,
    ],
    ["oracle ORA-00060", oracleDialect, { errorNum: 60 }, DeadlockError, false],
    ["oracle ORA-08177", oracleDialect, { errorNum: 8177 }, SerializationError, false],
  ];
  it.each(cases)("%s", (name, dialect, driverError, type, aborted) => {
    // As TypeORM throws it: a QueryFailedError-like wrapper with the driver's error inside.
    const wrapped = Object.assign(new Error("query failed"), { driverError });
    const error = dialect.classifyError(wrapped);
    expect(error).toBeInstanceOf(type);
    expect(error).toBeInstanceOf(PessimisticLockError);
    const [dialectName, code] = name.split(" ");
    expect(error).toMatchObject({
      dialect: dialectName,
      code,
      retryable: true,
      transactionAborted: aborted,
      cause: wrapped,
    });
  });

  // What a Galera node outside the primary component answers (seen in test/galera/partition.test.ts),
  // through every MySQL-family dialect: a DataSource of type mariadb or mysql does not know it is
  // on Galera until the library has asked, and the first refusal may come before that.
  const notReady = { errno: 1047, code: "ER_UNKNOWN_COM_ERROR", sqlState: "08S01" };
  it.each([
    ["mariadb", mariadbDialect],
    ["mysql", mysqlDialect],
    ["galera", galeraDialect],
  ] as const)("%s 1047 WSREP not ready: ClusterNodeNotReadyError, retryable, nothing run", (name, dialect) => {
    const driverError = { ...notReady, sqlMessage: "WSREP has not yet prepared node for application use" };
    const wrapped = Object.assign(new Error("query failed"), { driverError });
    const error = dialect.classifyError(wrapped);
    expect(error).toBeInstanceOf(ClusterNodeNotReadyError);
    expect(error).not.toBeInstanceOf(PessimisticLockError);
    expect(error).toMatchObject({
      dialect: name,
      code: "1047",
      retryable: true,
      transactionAborted: false,
      cause: wrapped,
    });
    expect(String(error?.message)).toMatch(
      new RegExp(`primary component.*nothing of it was executed.*\\[${name} 1047\\]: query failed$`),
    );
    expect(isRetryableConflict(error)).toBe(true);
  });

  it("a certification conflict's 1213 names WSREP too: a deadlock's conflict, not a node that is not ready", () => {
    const certification = { errno: 1213, sqlMessage: "WSREP detected deadlock/conflict and aborted the transaction" };
    for (const dialect of [mariadbDialect, mysqlDialect, galeraDialect]) {
      const error = dialect.classifyError(certification);
      expect(error).toBeInstanceOf(DeadlockError);
      expect(error).not.toBeInstanceOf(ClusterNodeNotReadyError);
    }
  });

  it("a 1047 that names no WSREP (an unknown protocol command on a plain server), or another error naming WSREP, is left alone", () => {
    const unknownCommand = { ...notReady, sqlMessage: "Unknown command" };
    for (const dialect of [mariadbDialect, mysqlDialect, galeraDialect]) {
      expect(dialect.classifyError(unknownCommand)).toBeUndefined();
    }
    expect(isRetryableConflict(Object.assign(new Error("WSREP has not yet prepared node"), notReady))).toBe(false);
    // Nor is another number's error that names WSREP: only 1047 says the node refused before running it.
    const otherWsrep = { errno: 1105, code: "ER_UNKNOWN_ERROR", sqlMessage: "WSREP replication failed" };
    for (const dialect of [mariadbDialect, mysqlDialect, galeraDialect]) {
      expect(dialect.classifyError(otherWsrep)).toBeUndefined();
    }
  });

  it("other errors are left alone", () => {
    expect(postgresDialect.classifyError({ code: "23505" })).toBeUndefined();
    expect(mysqlDialect.classifyError({ errno: 1062 })).toBeUndefined();
    expect(sqliteDialect.classifyError(new Error("x"))).toBeUndefined();
    expect(sqliteDialect.classifyError({ code: "SQLITE_CONSTRAINT_UNIQUE" })).toBeUndefined();
    expect(sqlserverDialect.classifyError({ number: 2627 })).toBeUndefined();
    expect(oracleDialect.classifyError({ errorNum: 1 })).toBeUndefined();
    expect(oracleDialect.classifyError({ message: "ORA-00001: unique constraint violated" })).toBeUndefined();
  });

  it("a thrown value that is no error object (null, text, a number) is no lock failure, no missing table, no loss", () => {
    for (const dialect of [postgresDialect, mysqlDialect, mariadbDialect, galeraDialect, sqliteDialect]) {
      for (const thrown of [null, undefined, "SQLITE_BUSY", 1213, "ORA-00054"]) {
        expect([dialect.name, thrown, dialect.classifyError(thrown)]).toEqual([dialect.name, thrown, undefined]);
        expect(dialect.isMissingTable(thrown)).toBe(false);
        expect(dialect.isConnectionLoss(thrown)).toBe(false);
      }
    }
    for (const dialect of [sqlserverDialect, oracleDialect]) {
      for (const thrown of [null, undefined, 1222]) {
        expect(dialect.classifyError(thrown)).toBeUndefined();
        expect(dialect.isConnectionLoss(thrown)).toBe(false);
      }
    }
  });

  it("a value out of range or of the wrong form is told apart from other failures", () => {
    expect(postgresDialect.isInvalidValue?.({ code: "22P02" })).toBe(true); // invalid_text_representation
    expect(postgresDialect.isInvalidValue?.({ code: "22003" })).toBe(true); // numeric_value_out_of_range
    expect(postgresDialect.isInvalidValue?.({ code: "23505" })).toBe(false);
    // better-sqlite3 refuses to bind an integer past 64 bits with a RangeError "... too big ...".
    const tooBig = Object.assign(new RangeError("The supplied value is too big"), {});
    expect(sqliteDialect.isInvalidValue?.(tooBig)).toBe(true);
    expect(sqliteDialect.isInvalidValue?.(new Error("row too big to fit"))).toBe(false);
    expect(sqliteDialect.isInvalidValue?.(new RangeError("Invalid array length"))).toBe(false);
  });

  it("a missing table is recognised by each database's own code or wording, wrapped by TypeORM or not", () => {
    const wrapped = (driverError: object) => ({ message: "query failed", driverError });
    const missing: Array<[string, { isMissingTable(e: unknown): boolean }, object]> = [
      ["postgres", postgresDialect, { code: "42P01" }],
      ["mysql", mysqlDialect, { errno: 1146, code: "ER_NO_SUCH_TABLE" }],
      ["mariadb", mariadbDialect, { errno: 1146 }],
      ["galera", galeraDialect, { errno: 1146 }],
      ["sqlite", sqliteDialect, { code: "SQLITE_ERROR", message: "no such table: typeorm_locking_offline_lock" }],
      ["mssql", sqlserverDialect, { number: 208 }],
      ["mssql (original error)", sqlserverDialect, { originalError: { info: { number: 208 } } }],
      ["oracle", oracleDialect, { errorNum: 942 }],
      ["oracle (message only)", oracleDialect, { message: "ORA-00942: table or view does not exist" }],
    ];
    for (const [name, dialect, error] of missing) {
      expect([name, dialect.isMissingTable(error)]).toEqual([name, true]);
      expect([name, dialect.isMissingTable(wrapped(error))]).toEqual([name, true]);
    }
    const other: Array<[string, { isMissingTable(e: unknown): boolean }, object]> = [
      ["postgres", postgresDialect, { code: "42703" }], // undefined column
      ["mysql", mysqlDialect, { errno: 1054 }],
      ["sqlite", sqliteDialect, { code: "SQLITE_ERROR", message: "no such column: x" }],
      ["mssql", sqlserverDialect, { number: 207 }],
      ["oracle", oracleDialect, { errorNum: 904 }],
    ];
    for (const [name, dialect, error] of other) expect([name, dialect.isMissingTable(error)]).toEqual([name, false]);
    for (const dialect of [postgresDialect, mysqlDialect, sqliteDialect, sqlserverDialect, oracleDialect]) {
      expect(dialect.isMissingTable(undefined)).toBe(false);
      expect(dialect.isMissingTable("no such table")).toBe(false);
    }
  });

  it("MySQL and MariaDB are told apart by the server, not the configured type", () => {
    const maria = { version: "10.11.19-MariaDB-0+deb12u1", wsrepOn: false };
    expect(dialectForServer("mysql", maria)).toBe(mariadbDialect);
    expect(dialectForServer("mariadb", { version: "8.4.3", wsrepOn: false })).toBe(mysqlDialect);
    expect(dialectForServer("mariadb", { ...maria, wsrepOn: true })).toBe(galeraDialect);
    expect(dialectForServer("postgres", undefined)).toBe(postgresDialect);
    // Facts of a MySQL-family server never make another type's dialect one of the family.
    expect(dialectForServer("postgres", { version: "8.4.3", wsrepOn: false })).toBe(postgresDialect);
    expect(dialectForServer("better-sqlite3", maria)).toBe(sqliteDialect);
    expect(dialectForType("mongodb")).toBeUndefined();
  });

  it("reads the server's facts from SHOW VARIABLES rows, whatever the case of the names", () => {
    expect(serverFactsQuery("postgres")).toBeUndefined();
    expect(serverFactsQuery("mysql")).toMatch(/^SHOW VARIABLES/);
    const rows = [
      { Variable_name: "version", Value: "10.11.19-MariaDB-0+deb12u1" },
      { Variable_name: "wsrep_on", Value: "ON" },
    ];
    expect(serverFactsOf(rows)).toEqual({ version: "10.11.19-MariaDB-0+deb12u1", wsrepOn: true });
    expect(serverFactsOf([{ Variable_name: "VERSION", Value: "8.4.3" }])).toEqual({ version: "8.4.3", wsrepOn: false });
  });

  it("finds the victim of InnoDB's latest deadlock: its time and thread id", () => {
    const status = [
      "=====================================",
      "------------------------",
      "LATEST DETECTED DEADLOCK",
      "------------------------",
      "2026-11-25 02:14:26 0x7f27f0ded6c0",
      "*** (1) TRANSACTION:",
      "TRANSACTION 46, ACTIVE 1 sec starting index read",
      "MariaDB thread id 13, OS thread handle 1, query id 42 127.0.0.1 root Updating",
      "*** (2) TRANSACTION:",
      "TRANSACTION 47, ACTIVE 1 sec starting index read",
      "MariaDB thread id 14, OS thread handle 2, query id 41 127.0.0.1 root Updating",
      "*** WE ROLL BACK TRANSACTION (2)",
      "------------",
      "TRANSACTIONS",
    ].join("\n");
    expect(latestDeadlockVictim(status)).toEqual({ at: "2026-11-25 02:14:26", threadId: 14 });
    expect(latestDeadlockVictim(status.replace("(2)\n", "(1)\n"))).toEqual({ at: "2026-11-25 02:14:26", threadId: 13 });
    expect(latestDeadlockVictim("no deadlock since start")).toBeUndefined();
    // A victim whose block names no thread (a purged or reworded block) is no victim known.
    expect(latestDeadlockVictim(status.replace(/(MariaDB|MySQL) thread id \d+/g, "thread"))).toBeUndefined();
  });
});
