/**
 * What a COMMIT on a Galera node cut off from the cluster ends in, on the real three-node cluster
 * (node 3 partitioned by scripts/galera-cluster.sh `cut`), and what was written:
 *
 * - Once node 3 has left the primary component it refuses every statement with 1047, COMMIT and
 *   ROLLBACK included, and keeps the transaction open: a connection handed back to the pool then
 *   committed it at its next START TRANSACTION once node 3 was back (seen here before the library
 *   closed such connections). The library's ClusterNodeNotReadyError says nothing was written, so
 *   the library ends the session, and the server rolls the transaction back.
 * - A COMMIT in flight when node 3 is cut off waits until node 3 leaves the primary component,
 *   then fails with 1180 "... (provider status: Not connected to Primary Component)". Node 3 rolled
 *   it back, but the write set may have been ordered by the other nodes: CommitOutcomeUnknownError,
 *   which retryOnConflict does not retry.
 *
 * Three nodes only (the partition needs node 3). Each cut lasts until node 3 reports non-Primary
 * (about 5 s: evs.suspect_timeout), and node 3 then needs a few seconds to rejoin.
 */
import type { DataSource } from "typeorm";
import { ClusterNodeNotReadyError, CommitOutcomeUnknownError, installLocking, retryOnConflict } from "../../src";
import { Account } from "../fixtures/lock-entities";
import { causalQuery, clusterNodes, cutNode, healNode, nodeState, openNode, waitFor, waitForRejoin } from "./cluster";

// Both TypeORM lines: how a refused COMMIT or ROLLBACK and the release of the connection go is TypeORM's.
const describeThree = clusterNodes() === 3 ? describe : describe.skip;

const failureOf = (work: () => Promise<unknown>) =>
  work().then(
    () => undefined,
    (error: unknown) => error,
  );

/** The driver error under a library error or a QueryFailedError. */
function driverErrorOf(error: unknown): { errno?: number; sqlMessage?: string } {
  const cause = (error as { cause?: { driverError?: object } }).cause ?? error;
  return ((cause as { driverError?: object }).driverError ?? cause) as { errno?: number; sqlMessage?: string };
}

describeThree("a COMMIT on a Galera node cut off from the cluster", () => {
  let node1: DataSource;
  /** Two DataSources on node 3, one connection each: the connection used after the heal is the pool's. */
  let node3a: DataSource;
  let node3b: DataSource;
  let monitor3: DataSource;

  beforeAll(async () => {
    node1 = installLocking(await openNode(1, [Account], { synchronize: true, dropSchema: true }));
    node3a = installLocking(await openNode(3, [Account], { poolSize: 1 }));
    node3b = installLocking(await openNode(3, [Account], { poolSize: 1 }));
    monitor3 = await openNode(3, [], { poolSize: 1 });
    await node1.getRepository(Account).save([1, 2, 3].map((id) => ({ id, balance: 0 })));
  });
  afterAll(async () => {
    for (const source of [node1, node3a, node3b, monitor3]) if (source?.isInitialized) await source.destroy();
  });

  /** Released by the test once node 3 is out of the primary component: the transactions go on. */
  let stepped: Promise<void> = Promise.resolve();
  let step: () => void = () => undefined;
  beforeEach(() => {
    stepped = new Promise<void>((resolve) => {
      step = resolve;
    });
  });

  async function balances(source: DataSource): Promise<number[]> {
    const rows = await causalQuery<{ balance: number }>(source, "SELECT balance FROM tl_account ORDER BY id");
    return rows.map((row) => Number(row.balance));
  }

  async function nonPrimary(): Promise<void> {
    await waitFor(
      () => nodeState(monitor3),
      (state) => state.status !== "Primary",
      60_000,
    );
  }

  async function heal(): Promise<void> {
    healNode(3);
    await waitForRejoin(monitor3, node1, 3, 120_000);
  }

  it("refused with 1047 at COMMIT or at a statement: ClusterNodeNotReadyError, and nothing written, not even by the connection's next transaction after the heal", async () => {
    await balances(node3a); // node 3 has applied the rows
    let commitRefusal: unknown;
    let statementRefusal: unknown;
    try {
      // Both transactions write before the cut; node 3 then refuses COMMIT (a) and the next statement (b).
      const a = failureOf(() =>
        node3a.transaction(async (manager) => {
          await manager.query("UPDATE tl_account SET balance = 7 WHERE id = 1");
          await stepped;
        }),
      );
      const b = failureOf(() =>
        node3b.transaction(async (manager) => {
          await manager.query("UPDATE tl_account SET balance = 8 WHERE id = 2");
          await stepped;
          await manager.query("UPDATE tl_account SET balance = 9 WHERE id = 3");
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, 500)); // both UPDATEs done
      cutNode(3);
      await nonPrimary();
      step();
      [commitRefusal, statementRefusal] = await Promise.all([a, b]);
    } finally {
      step();
      await heal();
    }
    expect(commitRefusal).toBeInstanceOf(ClusterNodeNotReadyError);
    expect(driverErrorOf(commitRefusal).errno).toBe(1047);
    expect(statementRefusal).toBeInstanceOf(ClusterNodeNotReadyError);
    // The same pools after the heal: a new transaction on each (a reused connection's START
    // TRANSACTION would commit the refused one), then what every node holds.
    for (const source of [node3a, node3b]) {
      await source.transaction((manager) => manager.query("SELECT 1"));
    }
    expect(await balances(node1)).toEqual([0, 0, 0]);
    expect(await balances(node3a)).toEqual([0, 0, 0]);
  }, 240_000);

  it("a COMMIT in flight at the cut: 1180 'Not connected to Primary Component' is CommitOutcomeUnknownError, not retried", async () => {
    await balances(node3a);
    let attempts = 0;
    let error: unknown;
    try {
      error = await failureOf(() =>
        retryOnConflict(
          node3a,
          async (manager) => {
            attempts++;
            await manager.query("UPDATE tl_account SET balance = balance + 1 WHERE id = 1");
            // The COMMIT goes out right after the cut: node 3 cannot replicate it.
            cutNode(3);
          },
          { attempts: 5, retryLockTimeouts: true },
        ),
      );
    } finally {
      await heal();
    }
    expect(error).toBeInstanceOf(CommitOutcomeUnknownError);
    expect(error).toMatchObject({ statement: "COMMIT", lost: "cluster" });
    expect(driverErrorOf(error)).toMatchObject({ errno: 1180 });
    expect(driverErrorOf(error).sqlMessage).toMatch(/Not connected to Primary Component/);
    expect(attempts).toBe(1);
    // Unknown means either: here the cut came before the write set left node 3, so the nodes
    // agree on one of the two outcomes.
    const [after] = await balances(node1);
    expect([0, 1]).toContain(after);
    expect((await balances(node3a))[0]).toBe(after);
  }, 240_000);
});
