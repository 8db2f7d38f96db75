/**
 * How the Galera dialect tells a local deadlock from a certification conflict (both come as 1213):
 * it asks InnoDB (`SHOW ENGINE INNODB STATUS`) whether the failed connection was the victim of the
 * latest deadlock, a moment ago. Shown here with a real InnoDB deadlock on the MariaDB server (a
 * Galera node's InnoDB reports its local deadlocks the same way); the certification side, with a
 * real cluster, is in test/galera/. MySQL-family servers only: the other databases have no Galera.
 */
import type { DataSource, QueryRunner } from "typeorm";
import { CertificationConflictError, DeadlockError, galeraDialect, LockTimeoutError } from "../src";
import { latestDeadlockVictim } from "../src/dialect/galera";
import type { ProbeQuery } from "../src/dialect/lock-dialect";
import { Counter } from "./fixtures/counter";
import { closeAll, describeEachDatabase, openAlongside, openDataSources, type TestDatabase } from "./support/databases";
import { waitUntilBlocked } from "./support/interleaving";

describeEachDatabase((db: TestDatabase) => {
  const onMysqlFamily = db.family === "mysql" ? it : it.skip;
  let one: DataSource;
  let two: DataSource;

  beforeAll(async () => {
    [one] = await openDataSources(db, [Counter]);
    two = await openAlongside(one);
  });
  afterAll(() => closeAll(two, one));

  const explain = (failure: Error, statement: string, probe: ProbeQuery) =>
    galeraDialect.explainFailure!(failure as DeadlockError, statement, probe);
  const probeOn =
    (runner: QueryRunner): ProbeQuery =>
    (sql) =>
      runner.query(sql);

  let nextId = 1;
  /** Two transactions that deadlock for real: the victim's runner, the other's, and the victim's error. */
  async function deadlock(): Promise<{ victim: QueryRunner; survivor: QueryRunner; failure: DeadlockError }> {
    const [x, y] = [nextId++, nextId++];
    await one.getRepository(Counter).insert([x, y].map((id) => ({ id, value: 0, version: 1 })));
    const [a, b] = [one.createQueryRunner(), two.createQueryRunner()];
    await a.startTransaction();
    await b.startTransaction();
    const bump = (runner: QueryRunner, id: number) =>
      runner.query(`UPDATE ${runner.connection.driver.escape("tl_counter")} SET value = value + 1 WHERE id = ?`, [id]);
    await bump(a, x);
    await bump(b, y);
    const first = bump(a, y); // waits for b
    first.catch(() => undefined);
    await waitUntilBlocked(db, one, { orUntil: first });
    const outcomes = await Promise.allSettled([first, bump(b, x)]);
    const lost = outcomes.findIndex((outcome) => outcome.status === "rejected");
    expect(lost).toBeGreaterThanOrEqual(0);
    // The library, active on this DataSource, already read it as MariaDB's: the driver's error is its cause.
    const { reason } = outcomes[lost] as PromiseRejectedResult;
    expect(reason).toBeInstanceOf(DeadlockError);
    const failure = galeraDialect.classifyError((reason as DeadlockError).cause);
    expect(failure).toBeInstanceOf(DeadlockError);
    return { victim: [a, b][lost], survivor: [a, b][1 - lost], failure: failure as DeadlockError };
  }

  async function finish(...runners: QueryRunner[]): Promise<void> {
    for (const runner of runners) {
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      await runner.release();
    }
  }

  onMysqlFamily(
    "the victim's own local deadlock stays a DeadlockError; at COMMIT, or seen from the other side, it is certification",
    async () => {
      const { victim, survivor, failure } = await deadlock();
      try {
        expect(await explain(failure, "UPDATE `tl_counter` SET value = 1", probeOn(victim))).toBe(failure);
        // A statement that only names a table `commit` is no COMMIT.
        expect(await explain(failure, "INSERT INTO `commit` (id) VALUES (1)", probeOn(victim))).toBe(failure);
        // A 1213 at COMMIT is always the cluster's: a local deadlock happens at a statement.
        const atCommit = await explain(failure, "  COMMIT", probeOn(victim));
        expect(atCommit).toBeInstanceOf(CertificationConflictError);
        expect(atCommit).toMatchObject({ code: failure.code, cause: failure.cause });
        // A connection that was not the victim of InnoDB's latest deadlock was aborted by the cluster.
        expect(await explain(failure, "UPDATE `tl_counter` SET value = 1", probeOn(survivor))).toBeInstanceOf(
          CertificationConflictError,
        );
      } finally {
        await finish(victim, survivor);
      }
    },
  );

  onMysqlFamily("the deadlock must be a moment old: up to 10 s, and not from the server's future", async () => {
    const { victim, survivor, failure } = await deadlock();
    try {
      const [status] = await victim.query("SHOW ENGINE INNODB STATUS");
      const at = latestDeadlockVictim(String(status.Status))?.at;
      expect(at).toBeDefined();
      /** The victim's probe, with the server's "now" read as `seconds` after the deadlock. */
      const nowAfter =
        (seconds: number): ProbeQuery =>
        async (sql) => {
          const rows = await victim.query(sql);
          if (/CONNECTION_ID\(\)/.test(sql)) {
            const shifted = new Date(Date.parse(`${String(at).replace(" ", "T")}Z`) + seconds * 1000);
            rows[0].now = shifted.toISOString().slice(0, 19).replace("T", " ");
          }
          return rows;
        };
      const statement = "UPDATE `tl_counter` SET value = 1";
      expect(await explain(failure, statement, nowAfter(0))).toBe(failure);
      expect(await explain(failure, statement, nowAfter(10))).toBe(failure);
      expect(await explain(failure, statement, nowAfter(11))).toBeInstanceOf(CertificationConflictError);
      expect(await explain(failure, statement, nowAfter(-1))).toBeInstanceOf(CertificationConflictError);
    } finally {
      await finish(victim, survivor);
    }
  });

  onMysqlFamily(
    "a server that will not say (no PROCESS privilege) leaves it the DeadlockError its code says",
    async () => {
      const failure = new DeadlockError({ dialect: "galera", code: "1213", retryable: true, transactionAborted: true });
      const refused: ProbeQuery = async () => {
        throw new Error("Access denied; you need (at least one of) the PROCESS privilege(s) for this operation");
      };
      expect(await explain(failure, "UPDATE `tl_counter` SET value = 1", refused)).toBe(failure);
    },
  );

  onMysqlFamily(
    "a node whose InnoDB shows no deadlock (or no status at all): the 1213 came from the cluster",
    async () => {
      const failure = new DeadlockError({ dialect: "galera", code: "1213", retryable: true, transactionAborted: true });
      /** The server's own answers, but for SHOW ENGINE INNODB STATUS, which answers `status`. */
      const showing =
        (status: Record<string, unknown>[]): ProbeQuery =>
        async (sql) =>
          /INNODB STATUS/.test(sql) ? status : one.query(sql);
      const [real] = await one.query("SHOW ENGINE INNODB STATUS");
      const withoutDeadlock = String(real.Status).replace(/LATEST DETECTED DEADLOCK\n[\s\S]*?\n-{8,}\n/, "");
      for (const status of [[{ ...real, Status: withoutDeadlock }], [{ Status: null }], []]) {
        expect(await explain(failure, "UPDATE `tl_counter` SET value = 1", showing(status))).toBeInstanceOf(
          CertificationConflictError,
        );
      }
    },
  );

  onMysqlFamily("a failure that is no deadlock is not looked into", async () => {
    const timeout = new LockTimeoutError({
      dialect: "galera",
      code: "1205",
      retryable: true,
      transactionAborted: false,
    });
    const probed: string[] = [];
    const probe: ProbeQuery = async (sql) => {
      probed.push(sql);
      return [];
    };
    expect(await explain(timeout, "UPDATE `tl_counter` SET value = 1", probe)).toBe(timeout);
    expect(await explain(timeout, "COMMIT", probe)).toBe(timeout);
    expect(probed).toEqual([]);
  });
});
