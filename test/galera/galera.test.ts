/**
 * The library on a MariaDB Galera cluster (scripts/test-galera.sh starts it; nodes 1 and 2 here): what holds
 * across nodes (the write-time version check), what does not (row locks are node-local), and how
 * the cluster's aborts surface (CertificationConflictError, retried by retryOnConflict).
 *
 * Figures (conflicts, retries, latencies) are written to test-results/galera-figures-<line>.json
 * for docs/galera.md; nothing here asserts a speed.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DataSource, type DataSourceOptions, type EntityManager } from "typeorm";
import {
  CertificationConflictError,
  DeadlockError,
  galeraDialect,
  installLocking,
  LockingConfigurationError,
  LockMode,
  OptimisticLockError,
  retryOnConflict,
  SerializationError,
  withLockMode,
} from "../../src";
import { installationOf } from "../../src/installation";
import { serverDialectOf } from "../../src/typeorm/locking-reads";
import { Counter } from "../fixtures/counter";
import { Order, OrderLine } from "../fixtures/entities";
import { Account } from "../fixtures/lock-entities";
import { type Deferred, deferred } from "../support/interleaving";
import { causalQuery, clusterNodes, clusterState, killNode, nodeOptions, openNode, rejoinNode } from "./cluster";

declare const TYPEORM_LINE: string;
const ENTITIES = [Order, OrderLine, Counter, Account];
const figures: Record<string, unknown> = {};

/** The conflict a losing cross-node write may end in: found at the write, or at certification. */
function isCrossNodeConflict(error: unknown): boolean {
  return error instanceof OptimisticLockError || error instanceof CertificationConflictError;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

describe("galera", () => {
  let node1: DataSource;
  let node2: DataSource;
  /** Node 1 with node-local pessimistic locks allowed. */
  let node1Locks: DataSource;

  beforeAll(async () => {
    node1 = installLocking(await openNode(1, ENTITIES, { synchronize: true, dropSchema: true }));
    node2 = installLocking(await openNode(2, ENTITIES));
    node1Locks = installLocking(await openNode(1, ENTITIES), { galera: { pessimistic: "node-local" } });
  });
  afterAll(async () => {
    for (const source of [node1, node2, node1Locks]) if (source?.isInitialized) await source.destroy();
    const folder = join(__dirname, "../../test-results");
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, `galera-figures-${TYPEORM_LINE}.json`), `${JSON.stringify(figures, null, 2)}\n`);
  });

  async function newOrder(): Promise<Order> {
    const order = await node1.getRepository(Order).save({ address: "Old Street 1", status: "NEW" } as Order);
    // Both nodes must see the order before the clients load it.
    await causalQuery(node2, "SELECT 1");
    return order;
  }

  async function orderOn(
    source: DataSource,
    id: number,
  ): Promise<{ address: string; status: string; version: number }> {
    const [row] = await causalQuery<{ address: string; status: string; version: number }>(
      source,
      "SELECT address, status, version FROM tl_order WHERE id = ?",
      [id],
    );
    return { ...row, version: Number(row.version) };
  }

  it("detects the Galera node and refuses a pessimistic lock by default, naming the entity and the opt-in", async () => {
    const runner = node1.createQueryRunner();
    try {
      const installation = installationOf(node1);
      expect(installation).toBeDefined();
      expect(await serverDialectOf(runner, installation!)).toBe(galeraDialect);
    } finally {
      await runner.release();
    }
    const { id } = await newOrder();
    const attempt = node1.transaction((manager) =>
      manager.findOne(Order, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) }),
    );
    await expect(attempt).rejects.toThrow(LockingConfigurationError);
    await expect(attempt).rejects.toThrow(
      /PESSIMISTIC_WRITE on Order: .*Galera.*galera: \{ pessimistic: "node-local" \}/,
    );
  });

  it("the operator/customer story across nodes: the stale save fails, nothing of it is written, the version never goes back", async () => {
    const { id } = await newOrder();
    const operatorCopy = await node1.getRepository(Order).findOneByOrFail({ id });
    const customerCopy = await node2.getRepository(Order).findOneByOrFail({ id });
    expect(customerCopy.version).toBe(operatorCopy.version);

    operatorCopy.status = "SHIPPED";
    await node1.getRepository(Order).save(operatorCopy);
    customerCopy.address = "New Street 2";
    const lost = await node2
      .getRepository(Order)
      .save(customerCopy)
      .then(
        () => undefined,
        (error: unknown) => error,
      );

    expect(isCrossNodeConflict(lost)).toBe(true);
    for (const source of [node1, node2]) {
      expect(await orderOn(source, id)).toEqual({ address: "Old Street 1", status: "SHIPPED", version: 2 });
    }
  });

  it("stale copies saved at the same moment on both nodes: exactly one wins every round", async () => {
    const { id } = await newOrder();
    const kinds = { optimisticLock: 0, certification: 0 };
    const rounds = 20;
    for (let round = 1; round <= rounds; round++) {
      const a = await node1.getRepository(Order).findOneByOrFail({ id });
      await causalQuery(node2, "SELECT 1");
      const b = await node2.getRepository(Order).findOneByOrFail({ id });
      expect(b.version).toBe(a.version);
      a.status = `node1-${round}`;
      b.status = `node2-${round}`;
      const outcomes = await Promise.allSettled([
        node1.getRepository(Order).save(a),
        node2.getRepository(Order).save(b),
      ]);
      const won = outcomes.filter((outcome) => outcome.status === "fulfilled");
      const lost = outcomes.flatMap((outcome) => (outcome.status === "rejected" ? [outcome.reason] : []));
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(isCrossNodeConflict(lost[0])).toBe(true);
      if (lost[0] instanceof CertificationConflictError) kinds.certification++;
      else kinds.optimisticLock++;
      const winner = outcomes[0].status === "fulfilled" ? a : b;
      for (const source of [node1, node2]) {
        expect(await orderOn(source, id)).toMatchObject({ status: winner.status, version: round + 1 });
      }
    }
    figures.simultaneousStaleSaves = { rounds, ...kinds };
  });

  it("node-local truth: FOR UPDATE on node 1 does not block a write on node 2; the lock holder is aborted", async () => {
    const { id } = await newOrder();
    const locked = deferred();
    const written = deferred();
    const holder = node1Locks.transaction(async (manager) => {
      const order = await manager.findOneOrFail(Order, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
      locked.resolve();
      await written.promise;
      order.status = "HELD";
      await manager.save(order);
    });
    await locked.promise;

    const started = performance.now();
    const other = await node2.getRepository(Order).findOneByOrFail({ id });
    other.address = "Written on node 2";
    await node2.getRepository(Order).save(other);
    const writeMs = performance.now() - started;
    // Give node 1 the replicated write: it aborts the local lock holder when it applies it.
    await causalQuery(node1, "SELECT 1");
    written.resolve();

    const failure = await holder.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(CertificationConflictError);
    expect(failure).toBeInstanceOf(SerializationError);
    expect(failure).toMatchObject({ retryable: true, transactionAborted: true, code: "1213", dialect: "galera" });
    expect(String((failure as Error).message)).toMatch(/another cluster node/);
    // The write on node 2 went through while node 1's lock was held (a cluster-wide lock would
    // have kept it waiting until the holder ended, which was after the write).
    expect(await orderOn(node1, id)).toMatchObject({ address: "Written on node 2", status: "NEW", version: 2 });
    figures.writeOnNode2WhileNode1HeldForUpdateMs = Math.round(writeMs);
  });

  it("a local deadlock on one node stays a DeadlockError, told apart from a certification conflict", async () => {
    await node1.getRepository(Account).save([
      { id: 7001, balance: 0 },
      { id: 7002, balance: 0 },
    ] as Account[]);
    const firstHolds = deferred();
    const secondHolds = deferred();
    const cross = (mine: number, theirs: number, holds: Deferred, waitFor: Promise<void>) =>
      node1Locks.transaction(async (manager) => {
        await manager.findOneOrFail(Account, { where: { id: mine }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
        holds.resolve();
        await waitFor;
        await manager.findOneOrFail(Account, { where: { id: theirs }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
      });
    const outcomes = await Promise.allSettled([
      cross(7001, 7002, firstHolds, secondHolds.promise),
      cross(7002, 7001, secondHolds, firstHolds.promise),
    ]);
    const failures = outcomes.flatMap((outcome) => (outcome.status === "rejected" ? [outcome.reason] : []));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(DeadlockError);
    expect(failures[0]).not.toBeInstanceOf(CertificationConflictError);
    expect(String(failures[0].message)).toMatch(/^Deadlock detected/);
  });

  it("4 workers per node x 2 nodes x 25 increments under retryOnConflict: exactly 200 on both nodes, retries counted", async () => {
    const id = 1;
    await node1.getRepository(Counter).insert({ id, value: 0, version: 1 });
    await causalQuery(node2, "SELECT 1");
    const retriedBy: Record<string, number> = {};
    const increment = async (manager: EntityManager) => {
      const counter = await manager.findOneByOrFail(Counter, { id });
      counter.value += 1;
      await manager.save(counter);
    };
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        const source = worker % 2 === 0 ? node1 : node2;
        for (let i = 0; i < 25; i++) {
          await retryOnConflict(source, increment, {
            attempts: 200,
            backoff: { initialMs: 2, maxMs: 50 },
            onRetry: ({ error }) => {
              const kind = (error as Error).constructor.name;
              retriedBy[kind] = (retriedBy[kind] ?? 0) + 1;
            },
          });
        }
      }),
    );
    const elapsedMs = performance.now() - started;
    for (const source of [node1, node2]) {
      const [row] = await causalQuery<{ value: number; version: number }>(
        source,
        "SELECT value, version FROM tl_counter WHERE id = ?",
        [id],
      );
      expect(Number(row.value)).toBe(200);
      expect(Number(row.version)).toBe(201);
    }
    const retries = Object.values(retriedBy).reduce((sum, n) => sum + n, 0);
    expect(retries).toBeGreaterThan(0); // 8 writers on one row: conflicts must have happened
    expect(
      Object.keys(retriedBy).every((kind) => ["OptimisticLockError", "CertificationConflictError"].includes(kind)),
    ).toBe(true);
    figures.counter = { workers: 8, increments: 200, retries, retriedBy, elapsedMs: Math.round(elapsedMs) };
  });

  it("commit latency: a save on a Galera node (certified by both nodes before COMMIT returns) beside a standalone MariaDB, measured", async () => {
    const standalone = installLocking(
      await new DataSource({
        ...nodeOptions(1, ENTITIES),
        port: Number(process.env.LOCKING_MYSQL_PORT ?? 3306),
        database: process.env.LOCKING_MYSQL_DATABASE ?? "test",
        synchronize: true,
      } as DataSourceOptions).initialize(),
    );
    try {
      const saves = async (source: DataSource) => {
        const repository = source.getRepository(Order);
        const { id } = await repository.save({ address: "Old Street 1", status: "NEW" } as Order);
        const timings: number[] = [];
        for (let i = 0; i < 40; i++) {
          const order = await repository.findOneByOrFail({ id });
          order.status = `S${i}`;
          const started = performance.now();
          await repository.save(order);
          timings.push(performance.now() - started);
        }
        return { id, medianMs: Number(median(timings).toFixed(2)), minMs: Number(Math.min(...timings).toFixed(2)) };
      };
      const galera = await saves(node1);
      expect((await orderOn(node2, galera.id)).version).toBe(41);
      const single = await saves(standalone);
      figures.saveLatencyMs = { galeraNode: galera, standaloneMariadb: single };
    } finally {
      await standalone.destroy();
    }
  });

  it("node 2 SIGKILLed mid-run: node 1 keeps accepting checked writes, nothing acknowledged is lost, node 2 catches up", async () => {
    const id = 2;
    await node1.getRepository(Counter).insert({ id, value: 0, version: 1 });
    await causalQuery(node2, "SELECT 1");
    const acknowledged: Record<1 | 2, number> = { 1: 0, 2: 0 };
    let unacknowledgedOnNode2 = 0;
    let acknowledgedAfterKill = 0;
    const longestNode1WriteAfterKillMs = 0;
    let killed = false;
    // Node 1's last writes wait for the kill: on an idle machine node 1 could otherwise finish all
    // 80 before node 2 reaches its 10th, and nothing would show node 1 writing without node 2.
    const kill = deferred<void>();
    const increment = async (manager: EntityManager) => {
      const counter = await manager.findOneByOrFail(Counter, { id });
      counter.value += 1;
      await manager.save(counter);
    };
    const worker = async (node: 1 | 2, source: DataSource) => {
      for (let i = 0; i < 40; i++) {
        if (node === 2 && killed) return;
        if (node === 1 && i === 30) await kill.promise;
        try {
          await retryOnConflict(source, increment, {
            attempts: 100,
            backoff: { initialMs: 2, maxMs: 50 },
            budgetMs: 60_000,
          });
          acknowledged[node]++;
          if (killed && node === 1) acknowledgedAfterKill++;
        } catch (error) {
          if (node === 1) throw error; // the surviving node must keep accepting writes
          unacknowledgedOnNode2++; // the connection died: the increment may or may not have committed
          kill.resolve(); // never leave node 1 waiting for a kill that will not come
          return;
        }
        if (node === 2 && acknowledged[2] === 10 && !killed) {
          killed = true;
          killNode(2);
          kill.resolve();
        }
      }
    };
    await Promise.all([worker(1, node1), worker(1, node1), worker(2, node2), worker(2, node2)]);

    expect(killed).toBe(true);
    expect(acknowledged[1]).toBe(80);
    expect(acknowledgedAfterKill).toBeGreaterThan(0);
    expect(await clusterState(node1)).toEqual({ size: clusterNodes() - 1, status: "Primary" });
    const [row] = await node1.query("SELECT value, version FROM tl_counter WHERE id = ?", [id]);
    const total = acknowledged[1] + acknowledged[2];
    expect(Number(row.value)).toBeGreaterThanOrEqual(total);
    expect(Number(row.value)).toBeLessThanOrEqual(total + unacknowledgedOnNode2);
    expect(Number(row.version)).toBe(Number(row.value) + 1);
    figures.nodeKilled = {
      acknowledged,
      acknowledgedAfterKill,
      unacknowledgedOnNode2,
      finalValue: Number(row.value),
      longestNode1WriteAfterKillMs: Math.round(longestNode1WriteAfterKillMs),
    };

    // Node 2 comes back (incremental state transfer) with every write node 1 took meanwhile.
    await node2.destroy().catch(() => undefined); // its connections died with the node
    rejoinNode(2);
    node2 = installLocking(await openNode(2, ENTITIES));
    const [caughtUp] = await causalQuery<{ value: number }>(node2, "SELECT value FROM tl_counter WHERE id = ?", [id]);
    expect(Number(caughtUp.value)).toBe(Number(row.value));
    expect(await clusterState(node1)).toEqual({ size: clusterNodes(), status: "Primary" });
  });
});
