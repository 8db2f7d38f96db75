/**
 * Ambiguous commits (issue 18): a connection lost after COMMIT was sent leaves the outcome
 * unknown. A TCP proxy between the client and the server (test/support/fault-proxy.ts) cuts the
 * connection at the COMMIT, either after forwarding it and swallowing the answer (committed, the
 * client does not know) or before forwarding it (not committed). Both must give
 * CommitOutcomeUnknownError, which retryOnConflict does not retry unless told to, and the data
 * (read through a second, direct connection) must show which it was. Its neighbours: save()'s own
 * transaction, an autocommit write, a connection lost before COMMIT (rolled back: not ambiguous),
 * the pool recovering afterwards, and the idempotency key of docs/ambiguous-commits.md.
 */
import { Column, type DataSource, Entity, type EntityManager, PrimaryColumn, QueryFailedError } from "typeorm";
import {
  ClusterNodeNotReadyError,
  CommitOutcomeUnknownError,
  galeraDialect,
  installLocking,
  isRetryableConflict,
  LockingConfigurationError,
  LockingError,
  LockMode,
  LockTimeoutError,
  mariadbDialect,
  mysqlDialect,
  oracleDialect,
  postgresDialect,
  retryOnConflict,
  sqliteDialect,
  sqlserverDialect,
  Versioned,
  withLockMode,
} from "../src";
import { closeAll, describeEachDatabase, openAlongside, openDataSources } from "./support/databases";
import { type FaultProxy, startFaultProxy } from "./support/fault-proxy";

@Entity({ name: "tl_ambiguous_account" })
class Wallet {
  @PrimaryColumn() id!: number;
  @Column() balance!: number;
  @Versioned() version!: number;
}

/** The idempotency key: one row per operation, written in the operation's own transaction. */
@Entity({ name: "tl_ambiguous_payment" })
class Payment {
  @PrimaryColumn({ type: "varchar", length: 64 }) operationId!: string;
  @Column() walletId!: number;
  @Column() amount!: number;
}

/** Unversioned, for writes outside a transaction. */
@Entity({ name: "tl_ambiguous_tally" })
class Tally {
  @PrimaryColumn() id!: number;
  @Column() value!: number;
}

/** An entity whose table's name holds the word COMMIT, as a version-control app's would. */
@Entity({ name: "tl_ambiguous_commit" })
class Commit {
  @PrimaryColumn() id!: number;
  @Column() message!: string;
}

const ENTITIES = [Wallet, Payment, Tally, Commit];

describe("connection loss, by dialect (no server)", () => {
  const lost = (message: string, extra: Record<string, unknown> = {}) =>
    new QueryFailedError("COMMIT", [], Object.assign(new Error(message), extra));

  it("PostgreSQL: node-postgres' own messages, class 08, a terminated backend, a reset socket", () => {
    expect(postgresDialect.isConnectionLoss(lost("Connection terminated unexpectedly"))).toBe(true);
    expect(
      postgresDialect.isConnectionLoss(lost("Client has encountered a connection error and is not queryable")),
    ).toBe(true);
    expect(postgresDialect.isConnectionLoss(lost("terminating connection", { code: "57P01" }))).toBe(true);
    expect(postgresDialect.isConnectionLoss(lost("x", { code: "08006" }))).toBe(true);
    expect(postgresDialect.isConnectionLoss(lost("read ECONNRESET", { code: "ECONNRESET" }))).toBe(true);
    expect(postgresDialect.isConnectionLoss(lost("terminating connection", { code: "57P02" }))).toBe(true);
    expect(postgresDialect.isConnectionLoss(lost("Client was closed and is not queryable"))).toBe(true);
    // The wording counts only as node-postgres' own message, not quoted inside a server's answer.
    expect(
      postgresDialect.isConnectionLoss(lost('relation "Connection terminated" does not exist', { code: "42P01" })),
    ).toBe(false);
    // A failure the server answered is no loss: a lock timeout, a unique violation, a refused connect.
    expect(postgresDialect.isConnectionLoss(lost("canceling statement", { code: "55P03" }))).toBe(false);
    expect(postgresDialect.isConnectionLoss(lost("duplicate key", { code: "23505" }))).toBe(false);
    expect(postgresDialect.isConnectionLoss(lost("connect ECONNREFUSED", { code: "ECONNREFUSED" }))).toBe(false);
  });

  it("MySQL/MariaDB: a fatal driver error, a lost or killed session; not a refused connect or a deadlock", () => {
    for (const dialect of [mysqlDialect, mariadbDialect]) {
      expect(dialect.isConnectionLoss(lost("Connection lost", { code: "PROTOCOL_CONNECTION_LOST", fatal: true }))).toBe(
        true,
      );
      expect(
        dialect.isConnectionLoss(lost("Can't add new command when connection is in closed state", { fatal: true })),
      ).toBe(true);
      expect(dialect.isConnectionLoss(lost("Connection was killed", { errno: 1927 }))).toBe(true);
      expect(dialect.isConnectionLoss(lost("Deadlock found", { errno: 1213, code: "ER_LOCK_DEADLOCK" }))).toBe(false);
      expect(dialect.isConnectionLoss(lost("connect ECONNREFUSED", { code: "ECONNREFUSED", fatal: true }))).toBe(false);
      // mysql (not mysql2) reports a lost connection by its code alone.
      expect(dialect.isConnectionLoss(lost("Connection lost", { code: "PROTOCOL_CONNECTION_LOST" }))).toBe(true);
      // A connection that was never made sent nothing, fatal or not.
      for (const code of ["ENOTFOUND", "EAI_AGAIN", "ER_ACCESS_DENIED_ERROR"]) {
        expect([code, dialect.isConnectionLoss(lost(code, { code, fatal: true }))]).toEqual([code, false]);
      }
    }
  });

  it("every dialect: a socket of an established connection reset, closed or timed out", () => {
    const socketLosses = ["ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT", "ESOCKET", "ECONNCLOSED"];
    for (const dialect of [postgresDialect, mysqlDialect, mariadbDialect, sqlserverDialect, oracleDialect]) {
      for (const code of socketLosses) {
        expect([dialect.name, code, dialect.isConnectionLoss(lost(code, { code }))]).toEqual([
          dialect.name,
          code,
          true,
        ]);
      }
      expect(dialect.isConnectionLoss(lost("connect ECONNREFUSED", { code: "ECONNREFUSED" }))).toBe(false);
    }
  });

  it("Oracle: ORA-03113, ORA-03114, ORA-03135 by number or in the message, node-oracledb's NJS-500 and DPI-1080", () => {
    for (const errorNum of [3113, 3114, 3135])
      expect(oracleDialect.isConnectionLoss(lost("x", { errorNum }))).toBe(true);
    expect(oracleDialect.isConnectionLoss(lost("ORA-03113: end-of-file on communication channel"))).toBe(true);
    expect(oracleDialect.isConnectionLoss(lost("NJS-500: connection to the Oracle Database was broken"))).toBe(true);
    expect(oracleDialect.isConnectionLoss(lost("DPI-1080: connection was closed by ORA-3113"))).toBe(true);
    // A failure the server answered: a lock wait, a deadlock, a constraint.
    expect(oracleDialect.isConnectionLoss(lost("x", { errorNum: 54 }))).toBe(false);
    expect(oracleDialect.isConnectionLoss(lost("ORA-00060: deadlock detected while waiting for resource"))).toBe(false);
    expect(oracleDialect.isConnectionLoss(lost("ORA-00001: unique constraint violated"))).toBe(false);
  });

  it("SQLite runs in the process: no error is a connection loss", () => {
    expect(sqliteDialect.isConnectionLoss(lost("SQLITE_IOERR", { code: "SQLITE_IOERR" }))).toBe(false);
  });

  // What a Galera node answered a COMMIT in flight when it was cut off (test/galera/commit-outcome.test.ts).
  const notReplicated = (message: string) => lost(message, { errno: 1180, code: "ER_ERROR_DURING_COMMIT" });
  const cutOff = notReplicated(
    "Error while appending streaming replication fragment(provider status: Not connected to Primary Component)",
  );

  it("Galera 1180 at COMMIT (not connected to the primary component): a replication loss on every MySQL-family dialect", () => {
    for (const dialect of [mysqlDialect, mariadbDialect, galeraDialect]) {
      expect(dialect.isReplicationLoss?.(cutOff)).toBe(true);
      expect(dialect.isConnectionLoss(cutOff)).toBe(false);
    }
    // MariaDB 10.4-10.5 word it with the provider's status number (6: connection failed): only a
    // server known to be a Galera node reads it so; on a plain server it is a storage engine's error.
    const older = notReplicated('Got error 6 "No such device or address" during COMMIT');
    expect(galeraDialect.isReplicationLoss?.(older)).toBe(true);
    expect(mariadbDialect.isReplicationLoss?.(older)).toBe(false);
    expect(mysqlDialect.isReplicationLoss?.(older)).toBe(false);
    // A certification failure is 1213, a conflict: nothing was written, and it is retried.
    const certification = lost("Deadlock found", { errno: 1213, code: "ER_LOCK_DEADLOCK" });
    expect(galeraDialect.isReplicationLoss?.(certification)).toBe(false);
    // Only 1180 is a commit's replication loss, whatever another error's text says.
    const wordedLikeIt = lost("provider status: Not connected to Primary Component", { errno: 1213 });
    for (const dialect of [mysqlDialect, mariadbDialect, galeraDialect]) {
      expect(dialect.isReplicationLoss?.(wordedLikeIt)).toBe(false);
    }
    expect(postgresDialect.isReplicationLoss).toBeUndefined();
  });

  it("a replication loss is a CommitOutcomeUnknownError that says the cluster, not the connection, was lost", () => {
    const error = new CommitOutcomeUnknownError({ dialect: "galera", statement: "COMMIT", lost: "cluster" }, cutOff);
    expect(error.lost).toBe("cluster");
    expect(error.retryable).toBe(false);
    expect(isRetryableConflict(error, { retryLockTimeouts: true })).toBe(false);
    expect(error.message).toMatch(/lost its cluster .* replicated COMMIT \[galera\]: the other nodes may or may not/);
    expect(new CommitOutcomeUnknownError({ dialect: "mysql", statement: "COMMIT" }).lost).toBe("connection");
  });

  it("the error is a LockingError, never retryable, and isRetryableConflict says no", () => {
    const driverError = new Error("gone");
    const error = new CommitOutcomeUnknownError({ dialect: "postgres", statement: "COMMIT" }, driverError);
    expect(error).toBeInstanceOf(LockingError);
    expect(error.cause).toBe(driverError);
    expect(error).toMatchObject({ dialect: "postgres", statement: "COMMIT", lost: "connection" });
    expect(error.retryable).toBe(false);
    expect(isRetryableConflict(error, { retryLockTimeouts: true })).toBe(false);
    expect(error.message).toMatch(/after COMMIT was sent .* may or may not have committed/);
  });
});

describeEachDatabase(
  (db) => {
    let direct: DataSource;
    let faulty: DataSource;
    let proxy: FaultProxy;

    beforeAll(async () => {
      [direct] = await openDataSources(db, ENTITIES);
      installLocking(direct);
      const options = direct.options as { host: string; port: number };
      proxy = await startFaultProxy(db.family === "postgres" ? "postgres" : "mysql", {
        host: options.host,
        port: options.port,
      });
      faulty = await openAlongside(direct, { host: proxy.host, port: proxy.port, poolSize: 2 });
      installLocking(faulty);
    });
    afterAll(async () => {
      await closeAll(faulty, direct);
      await proxy?.close();
    });

    let nextId = 1;
    async function newWallet(balance = 100): Promise<number> {
      const id = nextId++;
      await direct.getRepository(Wallet).insert({ id, balance, version: 1 });
      return id;
    }
    const balanceOf = async (id: number) => (await direct.getRepository(Wallet).findOneByOrFail({ id })).balance;

    async function deposit(manager: EntityManager, walletId: number, amount: number): Promise<void> {
      const wallet = await manager.findOneByOrFail(Wallet, { id: walletId });
      wallet.balance += amount;
      await manager.save(wallet);
    }

    /** The pool lost a connection: the next transactions through the proxy must work. */
    async function expectPoolRecovers(walletId: number): Promise<void> {
      const before = await balanceOf(walletId);
      for (let i = 0; i < 3; i++) await faulty.transaction((manager) => deposit(manager, walletId, 1));
      expect(await balanceOf(walletId)).toBe(before + 3);
    }

    for (const [point, committed] of [
      ["after-forward", true],
      ["before-forward", false],
    ] as const) {
      const outcome = committed ? "committed" : "not committed";
      it(`COMMIT cut ${point}: CommitOutcomeUnknownError, the data shows ${outcome}, the pool recovers`, async () => {
        const id = await newWallet();
        const cut = proxy.arm(point);
        const error = await faulty.transaction((manager) => deposit(manager, id, 10)).catch((e: unknown) => e);
        expect(await cut).toMatch(/^COMMIT$/i);
        expect(error).toBeInstanceOf(CommitOutcomeUnknownError);
        const unknown = error as CommitOutcomeUnknownError;
        expect(unknown.statement).toBe("COMMIT");
        expect(unknown.dialect).toEqual(
          db.family === "postgres" ? "postgres" : expect.stringMatching(/^(mysql|mariadb)$/),
        );
        expect(unknown.cause).toBeInstanceOf(QueryFailedError);
        expect(await balanceOf(id)).toBe(committed ? 110 : 100);
        await expectPoolRecovers(id);
      });

      it(`COMMIT cut ${point}: retryOnConflict runs the work once and passes the error on (${outcome})`, async () => {
        const id = await newWallet();
        let attempts = 0;
        const cut = proxy.arm(point);
        const error = await retryOnConflict(faulty, (manager) => {
          attempts++;
          return deposit(manager, id, 10);
        }).catch((e: unknown) => e);
        await cut;
        expect(error).toBeInstanceOf(CommitOutcomeUnknownError);
        expect(attempts).toBe(1);
        expect(await balanceOf(id)).toBe(committed ? 110 : 100);
      });

      it(`COMMIT cut ${point}: with retryOutcomeUnknown and an idempotency key, the deposit applies exactly once`, async () => {
        const id = await newWallet();
        const operationId = `deposit-${db.name}-${id}-${point}`;
        let attempts = 0;
        const cut = proxy.arm(point);
        const result = await retryOnConflict(
          faulty,
          async (manager) => {
            attempts++;
            if (await manager.existsBy(Payment, { operationId })) return "already applied";
            await manager.insert(Payment, { operationId, walletId: id, amount: 10 });
            await deposit(manager, id, 10);
            return "applied";
          },
          { retryOutcomeUnknown: true },
        );
        await cut;
        expect(attempts).toBe(2);
        expect(result).toBe(committed ? "already applied" : "applied");
        expect(await balanceOf(id)).toBe(110);
        expect(await direct.getRepository(Payment).countBy({ operationId })).toBe(1);
      });
    }

    it("save()'s own transaction: a COMMIT cut after forwarding is CommitOutcomeUnknownError, the version moved", async () => {
      const id = await newWallet();
      const wallet = await faulty.getRepository(Wallet).findOneByOrFail({ id });
      wallet.balance = 5;
      const cut = proxy.arm("after-forward");
      await expect(faulty.getRepository(Wallet).save(wallet)).rejects.toBeInstanceOf(CommitOutcomeUnknownError);
      await cut;
      const row = await direct.getRepository(Wallet).findOneByOrFail({ id });
      expect(row).toMatchObject({ balance: 5, version: 2 });
    });

    it("a connection lost before COMMIT (during the flush) rolls back: the driver's error, not retried, nothing written", async () => {
      const id = await newWallet();
      let attempts = 0;
      const cut = proxy.arm("before-forward", /^\s*UPDATE\b/i);
      const error = await retryOnConflict(faulty, (manager) => {
        attempts++;
        return deposit(manager, id, 10);
      }).catch((e: unknown) => e);
      expect(await cut).toMatch(/^UPDATE/i);
      expect(error).toBeInstanceOf(QueryFailedError);
      expect(error).not.toBeInstanceOf(LockingError);
      expect(attempts).toBe(1);
      expect(await balanceOf(id)).toBe(100);
      await expectPoolRecovers(id);
    });

    for (const [point, committed] of [
      ["after-forward", true],
      ["before-forward", false],
    ] as const) {
      it(`an autocommit write (no transaction) cut ${point} is CommitOutcomeUnknownError too; a read cut is not`, async () => {
        const id = nextId++;
        await direct.getRepository(Tally).insert({ id, value: 0 });
        const cut = proxy.arm(point, /^\s*UPDATE\b/i);
        const error = await faulty
          .getRepository(Tally)
          .increment({ id }, "value", 1)
          .catch((e: unknown) => e);
        await cut;
        expect(error).toBeInstanceOf(CommitOutcomeUnknownError);
        expect((error as CommitOutcomeUnknownError).statement).toMatch(/^UPDATE/i);
        expect((await direct.getRepository(Tally).findOneByOrFail({ id })).value).toBe(committed ? 1 : 0);

        const readCut = proxy.arm(point, /^\s*SELECT\b.*tl_ambiguous_tally/is);
        const readError = await faulty
          .getRepository(Tally)
          .findOneBy({ id })
          .catch((e: unknown) => e);
        await readCut;
        expect(readError).toBeInstanceOf(QueryFailedError);
      });
    }

    it("a write whose statement names a table commit, cut inside its transaction, rolls back: the driver's error", async () => {
      // Only a statement that is a COMMIT leaves the outcome unknown, not one that mentions the word.
      const id = nextId++;
      const cut = proxy.arm("before-forward", /^\s*INSERT\b.*tl_ambiguous_commit/is);
      const error = await faulty
        .transaction((manager) => manager.insert(Commit, { id, message: "fix" }))
        .catch((e: unknown) => e);
      await cut;
      expect(error).toBeInstanceOf(QueryFailedError);
      expect(error).not.toBeInstanceOf(LockingError);
      expect(await direct.getRepository(Commit).countBy({ id })).toBe(0);
    });

    it.each([
      ["a SELECT written on several lines", "\n      SELECT id FROM tl_ambiguous_tally\n    "],
      ["START TRANSACTION sent by hand", "START TRANSACTION"],
      ["START TRANSACTION sent by hand on two lines", "START\n      TRANSACTION"],
    ])("%s outside a transaction, cut, is the driver's error: it writes nothing", async (_, sql) => {
      const cut = proxy.arm("before-forward", /^\s*(SELECT\b.*tl_ambiguous_tally|START\s+TRANSACTION)/is);
      const error = await faulty.query(sql).catch((e: unknown) => e);
      expect(await cut).toBe(sql);
      expect(error).toBeInstanceOf(QueryFailedError);
      expect(error).not.toBeInstanceOf(LockingError);
    });

    // A Galera node's answers after it lost the primary component, given by the proxy in the
    // node's place (test/galera/commit-outcome.test.ts sees the same on a real cluster).
    if (db.family === "mysql") {
      it("a node outside the cluster refuses COMMIT and ROLLBACK (1047) and keeps the transaction: ClusterNodeNotReadyError, and the session ends, so the connection's next transaction commits none of it", async () => {
        const node = await openAlongside(direct, { host: proxy.host, port: proxy.port, poolSize: 1 });
        try {
          installLocking(node);
          const id = await newWallet();
          const refused = proxy.refuse(
            { errno: 1047, sqlState: "08S01", message: "WSREP has not yet prepared node for application use" },
            "session",
          );
          const error = await node.transaction((manager) => deposit(manager, id, 10)).catch((e: unknown) => e);
          expect(await refused).toMatch(/^COMMIT$/i);
          expect(error).toBeInstanceOf(ClusterNodeNotReadyError);
          proxy.heal();
          // The pool's one connection again: had it kept the refused transaction, its START
          // TRANSACTION would commit the deposit now.
          await node.transaction((manager) => manager.query("SELECT 1"));
          expect(await balanceOf(id)).toBe(100);
          await node.transaction((manager) => deposit(manager, id, 1));
          expect(await balanceOf(id)).toBe(101);
        } finally {
          proxy.heal();
          await closeAll(node);
        }
      });

      it("a COMMIT the node could not replicate (1180, not connected to the primary component) is CommitOutcomeUnknownError naming the cluster, run once", async () => {
        const id = await newWallet();
        let attempts = 0;
        const refused = proxy.refuse(
          {
            errno: 1180,
            sqlState: "HY000",
            message:
              "Error while appending streaming replication fragment(provider status: Not connected to Primary Component)",
          },
          "statement",
        );
        const error = await retryOnConflict(faulty, (manager) => {
          attempts++;
          return deposit(manager, id, 10);
        }).catch((e: unknown) => e);
        expect(await refused).toMatch(/^COMMIT$/i);
        expect(error).toBeInstanceOf(CommitOutcomeUnknownError);
        expect(error).toMatchObject({ lost: "cluster", statement: "COMMIT" });
        expect(attempts).toBe(1);
        // This node rolled it back; the nodes that kept the primary component may not have.
        expect(await balanceOf(id)).toBe(100);
        await expectPoolRecovers(id);
      });

      /** How `work` ended, or STILL_RUNNING after `ms`: a failure that keeps explaining itself never ends. */
      const STILL_RUNNING = "still running after the bound";
      async function endingWithin(ms: number, work: Promise<unknown>): Promise<unknown> {
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise((resolve) => {
          timer = setTimeout(() => resolve(STILL_RUNNING), ms);
        });
        try {
          return await Promise.race([work.catch((error: unknown) => error), bound]);
        } finally {
          clearTimeout(timer);
        }
      }

      // Until the library knows what the server is (MySQL, MariaDB or a Galera node), it asks with
      // a SHOW, also on the failure path to read the failure as that server would. A server that
      // refuses that SHOW as well must not make the library ask again about the refusal of its own
      // question, and again.
      for (const [refusal, expected] of [
        [
          { errno: 1047, sqlState: "08S01", message: "WSREP has not yet prepared node for application use" },
          ClusterNodeNotReadyError,
        ],
        [
          { errno: 1205, sqlState: "HY000", message: "Lock wait timeout exceeded; try restarting transaction" },
          LockTimeoutError,
        ],
      ] as const) {
        it(`a server refusing every statement, SHOW included (${refusal.errno}), before the library knew its dialect: a read ends at once in ${expected.name}; once healed it reads`, async () => {
          const node = await openAlongside(direct, { host: proxy.host, port: proxy.port, poolSize: 1 });
          try {
            installLocking(node);
            const id = await newWallet();
            const refused = proxy.refuse(refusal, "everything", /^\s*SELECT\b.*tl_ambiguous_account/is);
            const seenBefore = proxy.statementsSeen;
            const error = await endingWithin(5_000, node.getRepository(Wallet).findOneBy({ id }));
            expect(await refused).toMatch(/^SELECT/i);
            expect(error).toBeInstanceOf(expected);
            // The read and at most a question or two about the server, not a stream of them.
            expect(proxy.statementsSeen - seenBefore).toBeLessThanOrEqual(3);
            proxy.heal();
            expect(await node.getRepository(Wallet).findOneByOrFail({ id })).toMatchObject({ balance: 100 });
          } finally {
            proxy.heal();
            await closeAll(node);
          }
        });
      }

      it("a server refusing every statement from the library's own SHOW on (1047): a pessimistic lock on a fresh DataSource ends at once in ClusterNodeNotReadyError", async () => {
        // The SHOW asked before the lock runs through the query the library translates: its
        // refusal is explained, which must not ask the same SHOW again through that query.
        const node = await openAlongside(direct, { host: proxy.host, port: proxy.port, poolSize: 1 });
        try {
          installLocking(node);
          const id = await newWallet();
          const refused = proxy.refuse(
            { errno: 1047, sqlState: "08S01", message: "WSREP has not yet prepared node for application use" },
            "everything",
            /^\s*SHOW\b/i,
          );
          const error = await endingWithin(
            5_000,
            node.transaction((manager) =>
              manager.findOne(Wallet, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) }),
            ),
          );
          expect(await refused).toMatch(/^SHOW/i);
          expect(error).toBeInstanceOf(ClusterNodeNotReadyError);
          proxy.heal();
          await node.transaction((manager) => deposit(manager, id, 1));
          expect(await balanceOf(id)).toBe(101);
        } finally {
          proxy.heal();
          await closeAll(node);
        }
      });
    }

    it("retryOutcomeUnknown must be a boolean", async () => {
      await expect(
        retryOnConflict(faulty, async () => 1, { retryOutcomeUnknown: "yes" as unknown as boolean }),
      ).rejects.toBeInstanceOf(LockingConfigurationError);
    });
  },
  // SQLite runs in the process: no connection to lose (see the dialect test above and the docs).
  ["postgres-embedded", "postgres", "mariadb", "mysql"],
);

describeEachDatabase((db) => {
  let source: DataSource;
  beforeAll(async () => {
    [source] = await openDataSources(db, [Tally]);
    installLocking(source);
  });

  it("a write outside a transaction that the server refuses (a duplicate key) is the server's own error", async () => {
    // The server answered: nothing about the outcome is unknown, whatever the dialect.
    await source.getRepository(Tally).insert({ id: 1, value: 0 });
    const error = await source
      .getRepository(Tally)
      .insert({ id: 1, value: 1 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueryFailedError);
    expect(error).not.toBeInstanceOf(LockingError);
  });
});
