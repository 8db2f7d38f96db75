/**
 * The two-node Galera cluster started by scripts/test-galera.sh: DataSources on either node, the
 * node's process (for SIGKILL), rejoining a node, and causal reads across nodes.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DataSource, type DataSourceOptions } from "typeorm";

export type NodeNumber = 1 | 2;

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the Galera suite with \`npm run test:galera\`, which starts the cluster`);
  }
  return value;
}

/** Options of a DataSource on one node; the first DataSource of a suite creates the schema. */
export function nodeOptions(node: NodeNumber, entities: Function[], extra: Record<string, unknown> = {}) {
  return {
    type: "mariadb",
    host: "127.0.0.1",
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

/** The node's own view of the cluster: size and whether it is in the primary component. */
export async function clusterState(source: DataSource): Promise<{ size: number; status: string }> {
  const rows: { Variable_name: string; Value: string }[] = await source.query(
    "SHOW STATUS WHERE Variable_name IN ('wsrep_cluster_size', 'wsrep_cluster_status')",
  );
  const value = (name: string) => rows.find((row) => row.Variable_name === name)?.Value ?? "";
  return { size: Number(value("wsrep_cluster_size")), status: value("wsrep_cluster_status") };
}

/** SIGKILLs a node's mariadbd, as a crash or an OOM kill would. */
export function killNode(node: NodeNumber): void {
  const pid = Number(readFileSync(join(required("GALERA_DIR"), `node${node}`, "mysqld.pid"), "utf8").trim());
  process.kill(pid, "SIGKILL");
}

/** Starts a node that died and waits until it has caught up (Synced). */
export function rejoinNode(node: NodeNumber): void {
  execFileSync(
    "bash",
    [join(__dirname, "../../scripts/galera-cluster.sh"), "rejoin", required("GALERA_DIR"), String(node)],
    {
      stdio: ["ignore", "inherit", "inherit"],
      timeout: 120_000,
    },
  );
}
