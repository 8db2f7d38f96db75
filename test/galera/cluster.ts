/**
 * The Galera cluster started by scripts/test-galera.sh (three nodes, or two with GALERA_NODES=2):
 * DataSources on any node, the node's process (for SIGKILL), rejoining a node, cutting node 3
 * off the cluster and healing the partition, and causal reads across nodes.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DataSource, type DataSourceOptions } from "typeorm";

export type NodeNumber = 1 | 2 | 3;

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the Galera suite with \`npm run test:galera\`, which starts the cluster`);
  }
  return value;
}

/** How many nodes the cluster was started with (2 or 3). */
export function clusterNodes(): number {
  return Number(process.env.GALERA_NODES ?? 2);
}

/**
 * How `cutNode` partitions a node: `"netns"` (node 3 lives in a network namespace; its
 * replication link silently drops every packet while its clients still reach it) or `"sigstop"`
 * (the node is frozen), as scripts/galera-cluster.sh found this machine to allow.
 */
export function partitionMethod(): "netns" | "sigstop" {
  const method = required("GALERA_PARTITION_METHOD");
  if (method !== "netns" && method !== "sigstop") throw new Error(`no partition on a ${clusterNodes()}-node cluster`);
  return method;
}

/** Options of a DataSource on one node; the first DataSource of a suite creates the schema. */
export function nodeOptions(node: NodeNumber, entities: Function[], extra: Record<string, unknown> = {}) {
  return {
    type: "mariadb",
    host: process.env[`GALERA_NODE${node}_HOST`] ?? "127.0.0.1",
    port: Number(required(`GALERA_NODE${node}_PORT`)),
    username: "root",
    password: "",
    database: "test",
    entities,
    poolSize: 8,
    connectTimeout: 10_000,
    ...extra,
  } as DataSourceOptions;
}

/** Opens and initializes a DataSource on a node. */
export async function openNode(
  node: NodeNumber,
  entities: Function[],
  extra: Record<string, unknown> = {},
): Promise<DataSource> {
  return new DataSource(nodeOptions(node, entities, extra)).initialize();
}

/**
 * Runs a query after the node has applied everything the cluster committed before it
 * (`wsrep_sync_wait = 1`): a read on node 2 then sees node 1's last commit.
 */
export async function causalQuery<T = Record<string, unknown>>(
  source: DataSource,
  sql: string,
  parameters: unknown[] = [],
): Promise<T[]> {
  const runner = source.createQueryRunner();
  try {
    await runner.query("SET SESSION wsrep_sync_wait = 1");
    const rows = (await runner.query(sql, parameters)) as T[];
    await runner.query("SET SESSION wsrep_sync_wait = 0");
    return rows;
  } finally {
    await runner.release();
  }
}

/** The node's own view of the cluster: size, whether it is in the primary component, its state. */
export async function clusterState(source: DataSource): Promise<{ size: number; status: string }> {
  const { size, status } = await nodeState(source);
  return { size, status };
}

/**
 * What a node says of itself: {@link clusterState}, its local state (`Synced`, `Initialized`,
 * `Joined`...) and the number of the cluster view it is in (`wsrep_cluster_conf_id`).
 */
export interface NodeState {
  size: number;
  status: string;
  state: string;
  view: number;
}

/** The node's {@link NodeState}. SHOW works on any node, in the primary component or not. */
export async function nodeState(source: DataSource): Promise<NodeState> {
  const rows: { Variable_name: string; Value: string }[] = await source.query(
    "SHOW STATUS WHERE Variable_name IN ('wsrep_cluster_size', 'wsrep_cluster_status', 'wsrep_local_state_comment', 'wsrep_cluster_conf_id')",
  );
  const value = (name: string) => rows.find((row) => row.Variable_name === name)?.Value ?? "";
  return {
    size: Number(value("wsrep_cluster_size")),
    status: value("wsrep_cluster_status"),
    state: value("wsrep_local_state_comment"),
    view: Number(value("wsrep_cluster_conf_id")),
  };
}

/** Polls until `wanted` holds (it may ask several nodes), or throws after `timeoutMs`. */
export async function waitFor<T>(read: () => Promise<T>, wanted: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await read().catch(() => last);
    if (last !== undefined && wanted(last)) return last;
    if (Date.now() > deadline)
      throw new Error(`not reached within ${timeoutMs} ms; last seen: ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Waits until `rejoining` is back: synced, in the primary component, in the same cluster view as
 * `member` (a node that stayed in it), of `size` nodes. A node frozen by SIGSTOP still reports
 * the view it was frozen in for a moment after SIGCONT: only the view number tells it apart.
 */
export async function waitForRejoin(rejoining: DataSource, member: DataSource, size: number, timeoutMs: number) {
  return waitFor(
    async () => ({ rejoining: await nodeState(rejoining), member: await nodeState(member) }),
    ({ rejoining, member }) =>
      rejoining.state === "Synced" &&
      rejoining.status === "Primary" &&
      member.size === size &&
      rejoining.view === member.view,
    timeoutMs,
  );
}

function clusterScript(...args: string[]): void {
  execFileSync("bash", [join(__dirname, "../../scripts/galera-cluster.sh"), ...args], {
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 120_000,
  });
}

/** SIGKILLs a node's mariadbd, as a crash or an OOM kill would. */
export function killNode(node: NodeNumber): void {
  const pid = Number(readFileSync(join(required("GALERA_DIR"), `node${node}`, "mysqld.pid"), "utf8").trim());
  process.kill(pid, "SIGKILL");
}

/** Starts a node that died and waits until it has caught up (Synced). */
export function rejoinNode(node: NodeNumber): void {
  clusterScript("rejoin", required("GALERA_DIR"), String(node));
}

/** Cuts node 3 off the other nodes ({@link partitionMethod} says how). */
export function cutNode(node: 3): void {
  clusterScript("cut", required("GALERA_DIR"), String(node));
}

/** Ends the partition of node 3; it rejoins by itself (incremental state transfer). */
export function healNode(node: 3): void {
  clusterScript("heal", required("GALERA_DIR"), String(node));
}
