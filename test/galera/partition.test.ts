/**
 * Galera under a network partition (issue 18): the history checker's list-append workload
 * (test/faults/history: 16 clients, 20 order aggregates, every kind of operation, half of them in
 * retryOnConflict) runs with its clients spread over the three nodes, through both MySQL-family
 * driver types, while node 3 is cut off from the other two for 15 s (scripts/galera-cluster.sh
 * `cut`: a silent packet drop on node 3's replication link when a network namespace can hold it,
 * SIGSTOP otherwise). The checker then reads the final state: no ok token lost, no failed token
 * written, no token twice, every order's version moved for every ok write.
 *
 * What a node outside the primary component answers (1047 "WSREP has not yet prepared node for
 * application use") must reach the application as ClusterNodeNotReadyError, which says nothing was
 * written, and retryOnConflict retries it. Figures go to test-results/galera-partition-<line>.json
 * (and the faults report) for docs/reliability.md.
 *
 * Size (LOCKING_FAULTS_PROFILE, as `npm run test:faults`): "full" (the default) runs 10,000
 * operations on both TypeORM lines; "reduced" (.ci/run) runs on typeorm-1 only, until node 3 has
 * been back for 5 s.
 */
import diagnosticsChannel from "node:diagnostics_channel";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DataSource } from "typeorm";
import { installLocking, RETRY_CHANNEL, type RetryMessage } from "../../src";
import {
  ALL_KINDS,
  type HistoryRunResult,
  LOCKED_MODEL,
  type RecordedOperation,
  reportRun,
  runHistory,
  saysNothingWritten,
} from "../faults/history";
import { faultsProfile } from "../faults/profile";
import { clusterNodes, type NodeNumber, openNode, partitionMethod } from "./cluster";
import { GaleraPartition } from "./partition-fault";

declare const TYPEORM_LINE: string;

/** The run's DataSources: client `c` uses number `c % 6`, so every node has five or six clients. */
const TARGETS: { node: NodeNumber; type: "mariadb" | "mysql" }[] = [
  { node: 1, type: "mariadb" },
  { node: 2, type: "mariadb" },
  { node: 3, type: "mariadb" },
  { node: 1, type: "mysql" },
  { node: 2, type: "mysql" },
  { node: 3, type: "mysql" },
];
const CLIENTS = 16;
const FULL = faultsProfile() === "full";
/** Full: the 10,000 operations of issue 18. Reduced: a cap; the run ends AFTER_REJOIN_MS after node 3's return. */
const OPERATIONS = FULL ? 10_000 : 100_000;
const CUT_AFTER_MS = 3_000;
const CUT_MS = 15_000;
const AFTER_REJOIN_MS = 5_000;
/** 10,000 operations take 3-5 min on a loaded 2-core machine. */
const TIMEOUT_MS = FULL ? 20 * 60_000 : 5 * 60_000;
/** What retryOnConflict may retry here: conflicts, lock timeouts (opted in) and a node's refusals. */
const RETRYABLE = [
  "OptimisticLockError",
  "CertificationConflictError",
  "DeadlockError",
  "SerializationError",
  "LockTimeoutError",
  "ClusterNodeNotReadyError",
];

function count<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

const line = (globalThis as { TYPEORM_LINE?: string }).TYPEORM_LINE;
const describeRun = FULL || line === "typeorm-1" ? describe : describe.skip;

describeRun("galera partition", () => {
  let monitors: { node1: DataSource; node2: DataSource; node3: DataSource };

  beforeAll(async () => {
    if (clusterNodes() !== 3) throw new Error("the partition run needs the three-node cluster: GALERA_NODES=3");
    // One connection per node for watching the cluster, apart from the clients' pools.
    const [node1, node2, node3] = await Promise.all(
      ([1, 2, 3] as const).map((node) => openNode(node, [], { poolSize: 1 })),
    );
    monitors = { node1, node2, node3 };
  });
  afterAll(async () => {
    for (const source of Object.values(monitors ?? {})) await source.destroy().catch(() => undefined);
  });

  it(
    "node 3 cut off for 15 s mid-run: its refusals are typed and retried, the majority keeps writing, 0 lost",
    async () => {
      const method = partitionMethod();
      const partition = new GaleraPartition({ monitors, afterMs: CUT_AFTER_MS, cutMs: CUT_MS });
      // What retryOnConflict retried, by error class, as the library's own retry channel tells it.
      const retriedBy: Record<string, number> = {};
      const onRetry = (message: unknown) => {
        const name = ((message as RetryMessage).error as Error)?.constructor?.name ?? "unknown";
        retriedBy[name] = (retriedBy[name] ?? 0) + 1;
      };
      diagnosticsChannel.subscribe(RETRY_CHANNEL, onRetry);
      const result: HistoryRunResult = await runHistory({
        model: LOCKED_MODEL,
        dataSources: TARGETS.length,
        openDataSource: async (index) => {
          const { node, type } = TARGETS[index];
          const fresh = index === 0 ? { synchronize: true, dropSchema: true } : {};
          const source = await openNode(node, LOCKED_MODEL.entities, { type, poolSize: 4, ...fresh });
          // Node-local pessimistic locks: the workload's PESSIMISTIC_WRITE operations run, and a
          // write from another node aborts their holder (CertificationConflictError, nothing written).
          return installLocking(source, { galera: { pessimistic: "node-local" } });
        },
        clients: CLIENTS,
        operations: OPERATIONS,
        until: FULL
          ? undefined
          : () => {
              const back = partition.timeline.rejoinedAt;
              return back !== undefined && performance.now() > back + AFTER_REJOIN_MS;
            },
        kinds: ALL_KINDS,
        faults: [partition],
        // saysNothingWritten counts ClusterNodeNotReadyError (a refused statement, its transaction rolled back) as failed.
        isFailure: saysNothingWritten,
        // Long enough to outlast the cut: a retried operation on node 3 waits for its return.
        retry: {
          attempts: 1_000,
          backoff: { initialMs: 10, maxMs: 500 },
          budgetMs: CUT_MS + 30_000,
          retryLockTimeouts: true,
        },
        pauseAfterUnknownMs: 100,
      }).finally(() => diagnosticsChannel.unsubscribe(RETRY_CHANNEL, onRetry));
      // The recorder's clock starts at the run; the partition's is performance.now().
      const offset = performance.now() - result.recorder.now();
      const { cutAt, healedAt, rejoinedAt } = partition.timeline;
      const phaseOf = (op: RecordedOperation) => {
        const ended = op.endedMs + offset;
        if (cutAt === undefined || ended < cutAt) return "before";
        if (rejoinedAt === undefined || ended < rejoinedAt) return "during";
        return "after";
      };
      const nodeOf = (op: RecordedOperation) => TARGETS[op.client % TARGETS.length].node;
      const ops = result.recorder.operations;
      const okByNodeAndPhase = count(
        ops.filter((op) => op.outcome === "ok"),
        (op) => `node${nodeOf(op)} ${phaseOf(op)}`,
      );
      const errorClass = (error = "") => error.replace(/^(\w+).*$/s, "$1");
      const errorsByType = count(
        ops.filter((op) => op.error),
        (op) => `${errorClass(op.error)} (${op.outcome})`,
      );
      const refusalsOnNode3 = ops.filter(
        (op) => nodeOf(op) === 3 && op.error?.startsWith("ClusterNodeNotReadyError"),
      ).length;
      reportRun("galera-partition", "galera", result);
      const figures = {
        partitionMethod: method,
        nodes: 3,
        clients: result.clients,
        aggregates: result.aggregates,
        seed: result.seed,
        operations: result.operations,
        durationMs: result.durationMs,
        opsPerSecond: result.opsPerSecond,
        outcomes: { ok: result.ok, failed: result.failed, unknown: result.unknown },
        unknownPresent: result.check.unknownPresent,
        retries: result.retries,
        retriedBy,
        violations: result.check.counts,
        partition: {
          ...partition.counts(),
          cutAfterMs: Math.round((cutAt ?? 0) - (offset + (ops[0]?.startedMs ?? 0))),
          node3StatusesDuringCut: [...partition.node3StatusesDuringCut],
        },
        okByNodeAndPhase,
        errorsByType,
        refusalsOnNode3,
        errors: result.errors,
        byKind: result.byKind,
      };
      const folder = join(__dirname, "../../test-results");
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, `galera-partition-${TYPEORM_LINE}.json`), `${JSON.stringify(figures, null, 2)}\n`);
      console.log(`galera partition (${TYPEORM_LINE}): ${JSON.stringify({ ...figures, byKind: undefined })}`);

      expect(result.check.violations.slice(0, 20)).toEqual([]);
      // Nothing else was retried: not the 1180 of a COMMIT in flight at the cut (its outcome is unknown).
      expect(Object.keys(retriedBy).filter((name) => !RETRYABLE.includes(name))).toEqual([]);
      // The run was a run under the fault, not beside it: the cut happened and healed, the majority
      // (nodes 1 and 2) committed while node 3 was away, node 3 committed before and after.
      expect(cutAt).toBeDefined();
      expect(healedAt! - cutAt!).toBeGreaterThanOrEqual(CUT_MS);
      expect(rejoinedAt).toBeDefined();
      expect((okByNodeAndPhase["node1 during"] ?? 0) + (okByNodeAndPhase["node2 during"] ?? 0)).toBeGreaterThan(0);
      expect(okByNodeAndPhase["node3 before"] ?? 0).toBeGreaterThan(0);
      expect(okByNodeAndPhase["node3 after"] ?? 0).toBeGreaterThan(0);
      if (method === "netns") {
        // With a real partition node 3 still answers its clients, from outside the primary component,
        // and every such refusal reached them typed (none was left a raw driver error).
        expect([...partition.node3StatusesDuringCut]).toContain("non-Primary");
        expect(retriedBy.ClusterNodeNotReadyError ?? 0).toBeGreaterThan(0);
        expect(
          ops.filter((op) => /WSREP has not yet prepared/.test(op.error ?? "") && op.outcome === "unknown"),
        ).toEqual([]);
      }
    },
    TIMEOUT_MS,
  );
});
