/**
 * A fault injector for the history checker (test/faults/history): cuts node 3 of the three-node
 * Galera cluster off the other two for a while, mid-run, then heals the partition and waits until
 * node 3 is back in the cluster. How the cut is made is the cluster script's (cluster.ts
 * `partitionMethod()`: a silent packet drop on node 3's replication link, or SIGSTOP).
 */
import type { DataSource } from "typeorm";
import type { FaultContext, FaultInjector } from "../faults/history";
import { causalQuery, cutNode, healNode, type NodeState, nodeState, waitForRejoin } from "./cluster";

export interface GaleraPartitionOptions {
  /** A connection to node 3 (SHOW works on it in any state) and one to each node that stays. */
  monitors: { node1: DataSource; node2: DataSource; node3: DataSource };
  /** When the cut starts, in ms after the run's first operation. */
  afterMs: number;
  /** How long node 3 stays cut off, in ms. */
  cutMs: number;
}

/** When things happened, in `performance.now()` ms. */
export interface PartitionTimeline {
  cutAt?: number;
  healedAt?: number;
  /** When node 3 was synced again, in the same cluster view as node 1. */
  rejoinedAt?: number;
}

export class GaleraPartition implements FaultInjector {
  readonly name = "galera-partition";
  readonly timeline: PartitionTimeline = {};
  /** Node 3's cluster status as it reported it during the cut (each distinct value once). */
  readonly node3StatusesDuringCut = new Set<string>();
  private cutTimer?: NodeJS.Timeout;
  private healTimer?: NodeJS.Timeout;
  private watching?: Promise<void>;
  private rejoining?: Promise<void>;

  constructor(private readonly options: GaleraPartitionOptions) {}

  async start(_ctx: FaultContext): Promise<void> {
    // Every node has applied the run's aggregates before the first client loads one.
    const { node1, node2, node3 } = this.options.monitors;
    for (const source of [node1, node2, node3]) await causalQuery(source, "SELECT 1");
    this.cutTimer = setTimeout(() => this.cut(), this.options.afterMs);
  }

  private cut(): void {
    cutNode(3);
    this.timeline.cutAt = performance.now();
    this.healTimer = setTimeout(() => this.heal(), this.options.cutMs);
    this.watching = this.watchNode3();
  }

  private heal(): void {
    if (this.timeline.cutAt === undefined || this.timeline.healedAt !== undefined) return;
    healNode(3);
    this.timeline.healedAt = performance.now();
    // Noted while the run goes on, so that the operations after node 3's return can be told apart.
    const { node1, node3 } = this.options.monitors;
    this.rejoining = waitForRejoin(node3, node1, 3, 90_000).then(() => {
      this.timeline.rejoinedAt = performance.now();
    });
    this.rejoining.catch(() => undefined); // awaited (and thrown) by stop()
  }

  /** Notes what node 3 says of itself while it is cut off. */
  private async watchNode3(): Promise<void> {
    while (this.timeline.healedAt === undefined) {
      const state: NodeState | undefined = await nodeState(this.options.monitors.node3).catch(() => undefined);
      if (state && this.timeline.healedAt === undefined) this.node3StatusesDuringCut.add(state.status);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Heals (if the run ended first), waits for node 3's return and for every node to have applied every commit. */
  async stop(): Promise<void> {
    clearTimeout(this.cutTimer);
    clearTimeout(this.healTimer);
    this.heal();
    await this.watching;
    await this.rejoining;
    const { node1, node2, node3 } = this.options.monitors;
    for (const source of [node1, node2, node3]) await causalQuery(source, "SELECT 1");
  }

  counts(): Record<string, number> {
    return {
      cuts: this.timeline.cutAt === undefined ? 0 : 1,
      cutMs:
        this.timeline.healedAt && this.timeline.cutAt ? Math.round(this.timeline.healedAt - this.timeline.cutAt) : 0,
      rejoinAfterHealMs:
        this.timeline.rejoinedAt && this.timeline.healedAt
          ? Math.round(this.timeline.rejoinedAt - this.timeline.healedAt)
          : 0,
    };
  }
}
