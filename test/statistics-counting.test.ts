/**
 * What `lockingStatistics()` makes of the events it receives, exactly: each event published on
 * the library's channels as the library publishes it (the real-database test of the same counts,
 * with real conflicts and lock waits, is in observability.test.ts). No database is needed: the
 * statistics only listen.
 */
import diagnosticsChannel from "node:diagnostics_channel";
import { DataSource } from "typeorm";
import {
  CONFLICT_CHANNEL,
  LOCK_FAILURE_CHANNEL,
  LOCK_TRACING_CHANNEL,
  LOCK_WAIT_BUCKETS_MS,
  lockingStatistics,
  OFFLINE_LOCK_CHANNEL,
  RETRY_CHANNEL,
  RETRY_EXHAUSTED_CHANNEL,
} from "../src";

const publish = (channel: string, message: object) => diagnosticsChannel.channel(channel).publish(message);
const lockWaitEnded = (message: object) => publish(`tracing:${LOCK_TRACING_CHANNEL}:asyncEnd`, message);
const newDataSource = () => new DataSource({ type: "better-sqlite3", database: ":memory:" });

describe("lockingStatistics counts what it receives", () => {
  const ours = newDataSource();
  const theirs = newDataSource();
  const stats = lockingStatistics(ours);
  afterAll(() => stats.stop());
  beforeEach(() => stats.reset());

  it("conflicts by kind and entity; those of another DataSource are not counted, those of none are", () => {
    publish(CONFLICT_CHANNEL, { entity: "Order", kind: "write", dataSource: ours });
    publish(CONFLICT_CHANNEL, { entity: "Order", kind: "write", dataSource: ours });
    publish(CONFLICT_CHANNEL, { entity: "Order", kind: "load", dataSource: ours });
    publish(CONFLICT_CHANNEL, { entity: "Line", kind: "client" });
    publish(CONFLICT_CHANNEL, { entity: "Order", kind: "commit", dataSource: theirs });
    const { conflicts } = stats.snapshot();
    expect(conflicts).toEqual({
      total: 4,
      byKind: { load: 1, write: 2, commit: 0, "aggregate-root": 0, client: 1 },
      byEntity: { Order: { write: 2, load: 1 }, Line: { client: 1 } },
    });
  });

  it("retries and exhausted retries, of this DataSource or of none", () => {
    for (const dataSource of [ours, undefined, theirs, ours]) {
      publish(RETRY_CHANNEL, { dataSource });
      publish(RETRY_EXHAUSTED_CHANNEL, { dataSource });
    }
    expect(stats.snapshot()).toMatchObject({ retries: 3, retriesExhausted: 3 });
  });

  it("lock waits: count, total, longest, and each in the first bucket that holds it (bounds inclusive)", () => {
    const waits = [0.5, 1, 7, 10, 10.5, 20_000];
    for (const waitMs of waits) lockWaitEnded({ waitMs, dataSource: ours });
    lockWaitEnded({ waitMs: 50_000, dataSource: theirs });
    lockWaitEnded({ dataSource: ours }); // a wait not measured counts as 0 ms
    const { lockWaits } = stats.snapshot();
    expect(lockWaits.count).toBe(waits.length + 1);
    expect(lockWaits.totalMs).toBeCloseTo(waits.reduce((a, b) => a + b, 0));
    expect(lockWaits.maxMs).toBe(20_000);
    const counted = Object.fromEntries(lockWaits.histogram.filter((b) => b.count > 0).map((b) => [b.upToMs, b.count]));
    expect(counted).toEqual({ 1: 3, 10: 2, 25: 1, Infinity: 1 });
    expect(lockWaits.histogram.map((b) => b.upToMs)).toEqual([...LOCK_WAIT_BUCKETS_MS, Number.POSITIVE_INFINITY]);
    expect(LOCK_WAIT_BUCKETS_MS.length).toBeGreaterThan(0);
  });

  it("lock failures by kind and offline lock events by event", () => {
    for (const kind of ["timeout", "timeout", "deadlock", "serialization", "certification"]) {
      publish(LOCK_FAILURE_CHANNEL, { kind, dataSource: ours });
    }
    publish(LOCK_FAILURE_CHANNEL, { kind: "deadlock", dataSource: theirs });
    publish(OFFLINE_LOCK_CHANNEL, { event: "acquired", dataSource: ours });
    publish(OFFLINE_LOCK_CHANNEL, { event: "lost" });
    publish(OFFLINE_LOCK_CHANNEL, { event: "refused", dataSource: theirs });
    const snapshot = stats.snapshot();
    expect(snapshot).toMatchObject({ lockTimeouts: 2, deadlocks: 1, serializationFailures: 2 });
    expect(snapshot.offlineLocks).toMatchObject({ acquired: 1, lost: 1, refused: 0 });
  });

  it("a snapshot is a copy; reset starts again from zero; after stop nothing is counted", () => {
    publish(RETRY_CHANNEL, { dataSource: ours });
    const before = stats.snapshot();
    publish(RETRY_CHANNEL, { dataSource: ours });
    expect(before.retries).toBe(1);
    expect(stats.snapshot().retries).toBe(2);
    stats.reset();
    expect(stats.snapshot().retries).toBe(0);
    const other = lockingStatistics(theirs);
    other.stop();
    publish(RETRY_CHANNEL, { dataSource: theirs });
    expect(other.snapshot().retries).toBe(0);
    expect(lockingStatistics(theirs)).not.toBe(other);
    lockingStatistics(theirs).stop();
  });
});
