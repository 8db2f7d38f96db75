/**
 * The OpenTelemetry example (examples/opentelemetry) on every database: a provoked conflict and a
 * provoked lock timeout show up as spans and metrics, through the SDK's in-memory exporters.
 */
import type { DataPoint, Histogram, MetricData } from "@opentelemetry/sdk-metrics";
import type { DataSource } from "typeorm";
import { startTelemetry, type Telemetry } from "../examples/opentelemetry/telemetry";
import { installLocking, LockMode, LockTimeoutError, OptimisticLockError, retryOnConflict, withLockMode } from "../src";
import { Account, LOCK_ENTITIES } from "./fixtures/lock-entities";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";
import { deferred } from "./support/interleaving";

describeEachDatabase((db) => {
  let one: DataSource;
  let two: DataSource;
  let telemetry: Telemetry;

  beforeAll(async () => {
    [one, two] = await openDataSources(db, LOCK_ENTITIES, { count: 2 });
    installLocking(one);
    installLocking(two);
  });
  beforeEach(() => {
    telemetry = startTelemetry({ exporters: "memory" });
  });
  afterEach(() => telemetry.shutdown());
  afterAll(() => closeAll(one, two));

  let nextId = 1;
  async function account(): Promise<number> {
    const id = nextId++;
    await one.getRepository(Account).save({ id, balance: 100 });
    return id;
  }

  /** The metric named `name` as last exported. */
  async function metric(name: string): Promise<MetricData | undefined> {
    await telemetry.flush();
    const exported = telemetry.metrics!.getMetrics().at(-1);
    return exported?.scopeMetrics.flatMap((scope) => scope.metrics).find((m) => m.descriptor.name === name);
  }
  const points = (data: MetricData | undefined) =>
    (data?.dataPoints ?? []).map((p: DataPoint<unknown>) => ({ attributes: p.attributes, value: p.value }));

  it("a provoked conflict counts in typeorm_locking.conflicts by entity and kind; retries and exhaustion count", async () => {
    const id = await account();
    const stale = await one.getRepository(Account).findOneByOrFail({ id });
    await two.getRepository(Account).save({ ...stale, balance: 1 });
    stale.balance = 2;
    await expect(one.getRepository(Account).save(stale)).rejects.toThrow(OptimisticLockError);
    await expect(
      retryOnConflict(
        one,
        async (manager) => {
          const mine = await manager.findOneByOrFail(Account, { id });
          const theirs = await two.getRepository(Account).findOneByOrFail({ id });
          await two.getRepository(Account).save({ ...theirs, balance: theirs.balance + 1 });
          mine.balance = 0;
          await manager.save(mine);
        },
        // Every attempt must conflict: `two` writes the row inside it, which a hot-row lock would block.
        { attempts: 2, backoff: { initialMs: 0 }, lockHotRows: false },
      ),
    ).rejects.toThrow(/Gave up after 2 attempts/);

    // The save's conflict, then one per attempt (found by the read or by the write, by isolation
    // level); SQLite refuses an attempt's write from a stale snapshot instead (a lock failure).
    const conflicts = points(await metric("typeorm_locking.conflicts"));
    expect(conflicts).toContainEqual({ attributes: { entity: "Account", kind: "load" }, value: expect.any(Number) });
    const total = conflicts.reduce((sum, point) => sum + Number(point.value), 0);
    expect(total).toBe(db.family === "sqlite" ? 1 : 3);
    expect(points(await metric("typeorm_locking.retries"))).toEqual([
      { attributes: { where: "retryOnConflict()" }, value: 1 },
    ]);
    expect(points(await metric("typeorm_locking.retries.exhausted"))).toEqual([
      { attributes: { where: "retryOnConflict()", reason: "attempts" }, value: 1 },
    ]);
  });

  it("a provoked lock timeout is an error span covering the wait, a lock.wait point and a lock failure", async () => {
    const id = await account();
    const held = deferred();
    const release = deferred();
    const holder = two.transaction(async (m) => {
      await m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
      held.resolve();
      await release.promise;
    });
    await held.promise;
    try {
      await expect(
        one.transaction((m) =>
          m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 0 }) }),
        ),
      ).rejects.toThrow(LockTimeoutError);
    } finally {
      release.resolve();
      await holder;
    }
    await telemetry.flush();
    const spans = telemetry.spans!.getFinishedSpans();
    expect(spans.map((s) => [s.name, s.attributes["typeorm_locking.lock.outcome"], s.status.code])).toEqual([
      ["typeorm-locking.lock PESSIMISTIC_WRITE Account", "acquired", 0],
      ["typeorm-locking.lock PESSIMISTIC_WRITE Account", "timeout", 2],
    ]);
    expect(spans[1].events.map((e) => e.name)).toEqual(["exception"]);
    expect(spans[1].attributes).toMatchObject({
      "typeorm_locking.lock.timeout": "nowait",
      "typeorm_locking.entity": "Account",
    });

    const waits = (await metric("typeorm_locking.lock.wait"))!.dataPoints as DataPoint<Histogram>[];
    expect(waits.map((p) => [p.attributes.outcome, p.value.count])).toEqual([
      ["acquired", 1],
      ["timeout", 1],
    ]);
    expect(points(await metric("typeorm_locking.lock.failures"))).toEqual([
      { attributes: expect.objectContaining({ kind: "timeout" }), value: 1 },
    ]);
  });
});
