/**
 * The diagnostics channels and lockingStatistics() on every database, with real conflicts
 * provoked by a second connection: a conflict found by the read before a write, by the write
 * itself, by a commit-time OPTIMISTIC check and by an aggregate root's bump; a lock timeout
 * while another transaction holds the row, and a lock granted after a measured wait; retries and
 * their exhaustion; offline lock events. And nothing published while nobody listens.
 */
import diagnosticsChannel from "node:diagnostics_channel";
import type { DataSource } from "typeorm";
import {
  AlreadyLockedError,
  assertVersion,
  CONFLICT_CHANNEL,
  type ConflictMessage,
  checkIfMatch,
  installLocking,
  LOCK_FAILURE_CHANNEL,
  LOCK_TRACING_CHANNEL,
  type LockAcquisitionContext,
  type LockFailureMessage,
  LockMode,
  type LockOptions,
  LockTimeoutError,
  lock,
  lockingStatistics,
  OFFLINE_LOCK_CHANNEL,
  OfflineLockLostError,
  OfflineLockManager,
  type OfflineLockMessage,
  OfflineLockRecord,
  OfflineLockRequiredError,
  OptimisticLockError,
  RETRY_CHANNEL,
  RETRY_EXHAUSTED_CHANNEL,
  Retryable,
  RetryExhaustedError,
  type RetryExhaustedMessage,
  type RetryMessage,
  RowNotFoundError,
  retryOnConflict,
  SerializationError,
  StaleVersionError,
  updateVersioned,
  withLockMode,
} from "../src";
import { AGGREGATE_ENTITIES, AggLine, AggOrder } from "./fixtures/aggregate-entities";
import { Order } from "./fixtures/entities";
import { Account, LOCK_ENTITIES } from "./fixtures/lock-entities";
import { closeAll, describeEachDatabase, openAlongside, openDataSources } from "./support/databases";
import { changeBeforeNextWrite, deferred, waitUntilBlocked } from "./support/interleaving";

const ENTITIES = [...LOCK_ENTITIES, ...AGGREGATE_ENTITIES, OfflineLockRecord];

/** Subscribes to a channel for one test; what it received, and how to stop. */
function listen<T>(name: string): { seen: T[]; stop: () => void } {
  const seen: T[] = [];
  const listener = (message: unknown) => seen.push(message as T);
  diagnosticsChannel.subscribe(name, listener);
  return { seen, stop: () => diagnosticsChannel.unsubscribe(name, listener) };
}

/** Every event of the lock TracingChannel, in order, with its context. */
function traceLocks(): { events: [string, LockAcquisitionContext][]; stop: () => void } {
  const events: [string, LockAcquisitionContext][] = [];
  const record = (name: string) => (context: unknown) => events.push([name, context as LockAcquisitionContext]);
  const handlers = {
    start: record("start"),
    end: record("end"),
    asyncStart: record("asyncStart"),
    asyncEnd: record("asyncEnd"),
    error: record("error"),
  };
  const channel = diagnosticsChannel.tracingChannel(LOCK_TRACING_CHANNEL);
  channel.subscribe(handlers);
  return { events, stop: () => channel.unsubscribe(handlers) };
}

const failure = (promise: Promise<unknown>) => promise.then(() => undefined).catch((e: unknown) => e);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeEachDatabase((db) => {
  let one: DataSource;
  let two: DataSource;
  const stops: (() => void)[] = [];
  /** A message with its DataSource named (jest cannot compare DataSources deeply). */
  const label = <T extends { dataSource?: unknown }>(message: T) => ({
    ...message,
    dataSource: message.dataSource === one ? "one" : message.dataSource === two ? "two" : message.dataSource,
  });
  const subscribe = <T>(name: string) => {
    const listening = listen<T>(name);
    stops.push(listening.stop);
    return listening.seen;
  };

  beforeAll(async () => {
    [one, two] = await openDataSources(db, ENTITIES, { count: 2 });
    installLocking(one);
    installLocking(two);
  });
  afterEach(() => {
    for (const stop of stops.splice(0)) stop();
  });
  afterAll(() => closeAll(one, two));

  let nextId = 1;
  async function order(): Promise<number> {
    const saved = await one.getRepository(Order).save({ address: "1 Main St", status: "NEW" });
    return saved.id;
  }
  async function account(): Promise<number> {
    const id = nextId++;
    await one.getRepository(Account).save({ id, balance: 100 });
    return id;
  }

  describe("conflict channel", () => {
    it("a write-time conflict: the UPDATE matched no row; entity, id, versions and kind, no entity data", async () => {
      const seen = subscribe<ConflictMessage>(CONFLICT_CHANNEL);
      const id = await order();
      const mine = await one.getRepository(Order).findOneByOrFail({ id });
      changeBeforeNextWrite(one, Order, "beforeUpdate", () =>
        two.getRepository(Order).save({ ...mine, status: "PAID" }),
      );
      mine.address = "2 Secret Lane";
      const error = await failure(one.getRepository(Order).save(mine));
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(seen).toHaveLength(1);
      const [message] = seen;
      expect(label(message)).toEqual({
        kind: "write",
        entity: "Order",
        id: { id },
        versionHeld: 1,
        versionFound: undefined,
        operation: "update",
        error,
        dataSource: "one",
      });
      const { error: _e, dataSource: _d, ...rest } = message;
      expect(JSON.stringify(rest)).not.toMatch(/Secret|Main St|PAID|NEW/);
    });

    it("a conflict found by the read before the write (load) carries the version found; a deleted row says so", async () => {
      const seen = subscribe<ConflictMessage>(CONFLICT_CHANNEL);
      const id = await order();
      const mine = await one.getRepository(Order).findOneByOrFail({ id });
      await two.getRepository(Order).save({ ...mine, status: "PAID" });
      mine.status = "CANCELLED";
      const stale = await failure(one.getRepository(Order).save(mine));
      expect(stale).toBeInstanceOf(OptimisticLockError);
      expect(seen).toMatchObject([{ kind: "load", entity: "Order", versionHeld: 1, versionFound: 2 }]);
      // One row, one conflict: the message carries the very error the save threw (batchWrites or not).
      expect(seen[0].error).toBe(stale);

      const gone = await one.getRepository(Order).findOneByOrFail({ id: await order() });
      await two.getRepository(Order).delete({ id: gone.id });
      gone.status = "CANCELLED";
      const goneError = await failure(one.getRepository(Order).save(gone));
      expect(goneError).toBeInstanceOf(OptimisticLockError);
      expect(seen[1]).toMatchObject({ kind: "load", id: { id: gone.id }, versionHeld: 1, versionFound: "deleted" });
      expect(seen[1].error).toBe(goneError);

      // A client's copy of the deleted row, and a soft remove of it: the row is gone, each says so.
      const fromClient = one.getRepository(Order).create({ ...gone, version: 1 });
      expect(await failure(one.getRepository(Order).save(fromClient))).toBeInstanceOf(RowNotFoundError);
      expect(seen[2]).toMatchObject({ kind: "client", operation: "update", versionFound: "deleted" });
      expect(await failure(one.getRepository(Order).softRemove(gone))).toBeInstanceOf(OptimisticLockError);
      expect(seen[3]).toMatchObject({
        kind: "load",
        operation: "soft-remove",
        versionHeld: 1,
        versionFound: "deleted",
      });
      // Each conflict once: the error that names the soft remove's conflicts (batchWrites) is not a second one.
      expect(seen).toHaveLength(4);
    });

    it("updateVersioned's conflicts name the operation; a key no row can have, or beyond its column, is a deleted row", async () => {
      const seen = subscribe<ConflictMessage>(CONFLICT_CHANNEL);
      const orders = one.getRepository(Order);
      const id = await order();
      expect(await failure(updateVersioned(orders, id + 0.5, 1, { status: "X" }))).toBeInstanceOf(RowNotFoundError);
      // PostgreSQL refuses the value for an integer key; the others match no row.
      expect(await failure(updateVersioned(orders, 2 ** 31, 1, { status: "X" }))).toBeInstanceOf(RowNotFoundError);
      await updateVersioned(orders, id, 1, { status: "PAID" });
      expect(await failure(updateVersioned(orders, id, 1, { status: "X" }))).toBeInstanceOf(StaleVersionError);
      expect(seen).toMatchObject([
        { kind: "client", operation: "update", versionHeld: 1, versionFound: "deleted" },
        { kind: "client", operation: "update", versionHeld: 1, versionFound: "deleted" },
        { kind: "client", operation: "update", versionHeld: 1, versionFound: 2 },
      ]);
    });

    it("a remove of one row changed by another connection after the read: the message carries the error thrown", async () => {
      const seen = subscribe<ConflictMessage>(CONFLICT_CHANNEL);
      const id = await order();
      const mine = await one.getRepository(Order).findOneByOrFail({ id });
      await two.getRepository(Order).save({ ...mine, status: "PAID" });
      const error = await failure(one.getRepository(Order).remove(mine));
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(seen).toMatchObject([{ kind: "load", operation: "remove", versionHeld: 1, versionFound: 2 }]);
      expect(seen).toHaveLength(1);
      expect(seen[0].error).toBe(error);
      expect(await two.getRepository(Order).countBy({ id })).toBe(1);
    });

    it("a remove of two rows, one changed by another connection after the read: one load conflict, not one more for the error naming it", async () => {
      const seen = subscribe<ConflictMessage>(CONFLICT_CHANNEL);
      const ids = [await order(), await order()];
      const mine = await Promise.all(ids.map((id) => one.getRepository(Order).findOneByOrFail({ id })));
      await two.getRepository(Order).save({ ...mine[1], status: "PAID" });
      const error = await failure(one.getRepository(Order).remove(mine));
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(seen.map(label)).toEqual([
        expect.objectContaining({
          kind: "load",
          entity: "Order",
          id: { id: ids[1] },
          versionHeld: 1,
          versionFound: 2,
          operation: "remove",
          dataSource: "one",
        }),
      ]);
      expect(await two.getRepository(Order).countBy(ids.map((id) => ({ id })))).toBe(2);
    });

    it("an update of two rows, one changed by another connection after the read: one load conflict, and the save's error is it", async () => {
      const seen = subscribe<ConflictMessage>(CONFLICT_CHANNEL);
      const ids = [await order(), await order()];
      const mine = await Promise.all(ids.map((id) => one.getRepository(Order).findOneByOrFail({ id })));
      await two.getRepository(Order).save({ ...mine[1], status: "PAID" });
      for (const row of mine) row.status = "CANCELLED";
      const error = await failure(one.getRepository(Order).save(mine));
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(seen.map(label)).toEqual([
        expect.objectContaining({
          kind: "load",
          entity: "Order",
          id: { id: ids[1] },
          versionHeld: 1,
          versionFound: 2,
          operation: "update",
          dataSource: "one",
        }),
      ]);
      expect((await two.getRepository(Order).findBy(ids.map((id) => ({ id })))).map((o) => o.status).sort()).toEqual([
        "NEW",
        "PAID",
      ]);
    });

    it("an update of three rows, two changed by another connection after the read: one load conflict each, none more", async () => {
      const seen = subscribe<ConflictMessage>(CONFLICT_CHANNEL);
      const ids = [await order(), await order(), await order()];
      const mine = await Promise.all(ids.map((id) => one.getRepository(Order).findOneByOrFail({ id })));
      await two.getRepository(Order).save({ ...mine[0], status: "PAID" });
      await two.getRepository(Order).save({ ...mine[2], status: "PAID" });
      for (const row of mine) row.status = "CANCELLED";
      const error = await failure(one.getRepository(Order).save(mine));
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect((error as OptimisticLockError).conflicts).toHaveLength(2);
      expect(seen.map((m) => [m.kind, m.id])).toEqual([
        ["load", { id: ids[0] }],
        ["load", { id: ids[2] }],
      ]);
    });

    it("updateVersioned with a version the row no longer has, or no row, and assertVersion: client conflicts", async () => {
      const seen = subscribe<ConflictMessage>(CONFLICT_CHANNEL);
      const id = await account();
      await updateVersioned(two.getRepository(Account), id, 1, { balance: 1 });
      const error = await failure(updateVersioned(one.getRepository(Account), id, 1, { balance: 2 }));
      expect(error).toBeInstanceOf(StaleVersionError);
      await two.getRepository(Account).delete({ id });
      expect(await failure(updateVersioned(one.getRepository(Account), id, 2, { balance: 2 }))).toBeInstanceOf(
        RowNotFoundError,
      );
      const fresh = await one.getRepository(Account).findOneByOrFail({ id: await account() });
      expect(() => assertVersion(fresh, 7)).toThrow(StaleVersionError);
      expect(seen.map(label)).toMatchObject([
        { kind: "client", entity: "Account", id: { id }, versionHeld: 1, versionFound: 2, dataSource: "one" },
        { kind: "client", versionHeld: 2, versionFound: "deleted", dataSource: "one" },
        { kind: "client", entity: "Account", versionHeld: 7, versionFound: 1, dataSource: undefined },
      ]);
      expect(seen[2].error).toBeInstanceOf(StaleVersionError);
    });

    it("a commit-time OPTIMISTIC check: the row moved between the read and the commit", async () => {
      const seen = subscribe<ConflictMessage>(CONFLICT_CHANNEL);
      const id = await account();
      const held = await one.getRepository(Account).findOneByOrFail({ id });
      await updateVersioned(two.getRepository(Account), id, 1, { balance: 50 }); // theirs, committed
      const error = await failure(one.transaction((m) => lock(m, held, LockMode.OPTIMISTIC)));
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(seen.map(label)).toEqual([
        expect.objectContaining({
          kind: "commit",
          entity: "Account",
          id: { id },
          versionHeld: 1,
          operation: "optimistic check",
          error,
          dataSource: "one",
        }),
      ]);
    });

    it("an aggregate root bump: a member saved alone while another connection moved the root", async () => {
      const seen = subscribe<ConflictMessage>(CONFLICT_CHANNEL);
      const root = await one
        .getRepository(AggOrder)
        .save({ status: "NEW", address: { street: "s", city: "c" }, lines: [{ product: "pen", quantity: 1 }] });
      const line = await two
        .getRepository(AggLine)
        .findOneOrFail({ where: { order: { id: root.id } }, relations: { order: true } });
      const theirs = await one.getRepository(AggOrder).findOneByOrFail({ id: root.id });
      theirs.status = "PAID";
      await one.getRepository(AggOrder).save(theirs);
      line.quantity = 2;
      const error = await failure(two.getRepository(AggLine).save(line));
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(seen.map(label)).toEqual([
        expect.objectContaining({
          kind: "aggregate-root",
          entity: "AggOrder",
          id: { id: root.id },
          versionHeld: 1,
          operation: "aggregate change",
          dataSource: "two",
        }),
      ]);
    });
  });

  describe("conflict channel: the other write paths and checks", () => {
    it("softRemove whose UPDATE matched no row, lock()'s re-read, OPTIMISTIC_FORCE_INCREMENT at commit, checkIfMatch", async () => {
      const seen = subscribe<ConflictMessage>(CONFLICT_CHANNEL);
      const id = await order();
      const mine = await one.getRepository(Order).findOneByOrFail({ id });
      changeBeforeNextWrite(one, Order, "beforeSoftRemove", () =>
        two.getRepository(Order).save({ ...mine, status: "PAID" }),
      );
      expect(await failure(one.getRepository(Order).softRemove(mine))).toBeInstanceOf(OptimisticLockError);

      const accountId = await account();
      const held = await one.getRepository(Account).findOneByOrFail({ id: accountId });
      await updateVersioned(two.getRepository(Account), accountId, 1, { balance: 5 });
      expect(await failure(one.transaction((m) => lock(m, held, LockMode.PESSIMISTIC_WRITE)))).toBeInstanceOf(
        OptimisticLockError,
      );
      expect(await failure(one.transaction((m) => lock(m, held, LockMode.OPTIMISTIC_FORCE_INCREMENT)))).toBeInstanceOf(
        OptimisticLockError,
      );
      const fresh = await one.getRepository(Account).findOneByOrFail({ id: accountId });
      expect(() => checkIfMatch(fresh, '"1"')).toThrow(StaleVersionError);

      expect(
        seen.map(({ kind, entity, operation, versionHeld, versionFound }) => ({
          kind,
          entity,
          operation,
          versionHeld,
          versionFound,
        })),
      ).toEqual([
        { kind: "write", entity: "Order", operation: "soft-remove", versionHeld: 1, versionFound: undefined },
        { kind: "load", entity: "Account", operation: "lock", versionHeld: 1, versionFound: 2 },
        { kind: "commit", entity: "Account", operation: "force increment", versionHeld: 1, versionFound: undefined },
        { kind: "client", entity: "Account", operation: "request (If-Match)", versionHeld: 1, versionFound: 2 },
      ]);
    });
  });

  describe("lock tracing channel", () => {
    /** Holds PESSIMISTIC_WRITE on account `id` through `two` until released. */
    function holdLock(id: number) {
      const held = deferred();
      const release = deferred();
      const done = two.transaction(async (manager) => {
        await manager.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
        held.resolve();
        await release.promise;
      });
      return { held: held.promise, release: () => release.resolve(), done };
    }
    const lockAccount = (id: number, options?: LockOptions) =>
      one.transaction((m) =>
        m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, options) }),
      );

    it("a lock timeout while the second connection holds the row: one trace ending in timeout, and a lock failure", async () => {
      const id = await account();
      const holder = holdLock(id);
      await holder.held;
      const trace = traceLocks();
      stops.push(trace.stop);
      const failures = subscribe<LockFailureMessage>(LOCK_FAILURE_CHANNEL);
      let error: unknown;
      try {
        error = await failure(lockAccount(id, { timeout: 0 }));
      } finally {
        holder.release();
        await holder.done;
      }
      expect(error).toBeInstanceOf(LockTimeoutError);
      const ours = trace.events.filter(([, context]) => context.dataSource === one);
      expect(ours.map(([name]) => name)).toEqual(["start", "end", "error", "asyncStart", "asyncEnd"]);
      const context = ours[0][1];
      expect(ours.every(([, c]) => c === context)).toBe(true);
      expect(context).toMatchObject({
        entity: "Account",
        mode: "PESSIMISTIC_WRITE",
        timeout: "nowait",
        outcome: "timeout",
        error,
      });
      expect(context.waitMs).toBeGreaterThanOrEqual(0);
      expect(failures.map(label)).toEqual([
        expect.objectContaining({ kind: "timeout", error, dataSource: "one", code: (error as LockTimeoutError).code }),
      ]);
    });

    it("a granted lock: outcome, rows, the timeout asked, and no rows read in the context", async () => {
      const id = await account();
      const trace = traceLocks();
      stops.push(trace.stop);
      await lockAccount(id, { timeout: 1500 });
      const [[, context]] = trace.events;
      expect(context).toMatchObject({ entity: "Account", outcome: "acquired", rows: 1, timeout: 1500 });
      expect((context as { result?: unknown }).result).toBeUndefined();
      expect(JSON.stringify({ ...context, dataSource: undefined })).not.toMatch(/balance/);
    });

    if (db.family !== "sqlite") {
      it("a lock granted after the holder commits: the trace spans the wait", async () => {
        const id = await account();
        const holder = holdLock(id);
        await holder.held;
        const trace = traceLocks();
        stops.push(trace.stop);
        const waiting = lockAccount(id, { timeout: 10_000 });
        await waitUntilBlocked(db, two);
        await sleep(150);
        holder.release();
        await holder.done;
        await waiting;
        const ends = trace.events.filter(([name, c]) => name === "asyncEnd" && c.dataSource === one);
        expect(ends).toHaveLength(1);
        expect(ends[0][1]).toMatchObject({ outcome: "acquired", rows: 1 });
        expect(ends[0][1].waitMs).toBeGreaterThanOrEqual(140);
      });
    }
  });

  describe("retry channels", () => {
    it("each retry with its attempt, error and delay, then the exhaustion", async () => {
      const retries = subscribe<RetryMessage>(RETRY_CHANNEL);
      const exhausted = subscribe<RetryExhaustedMessage>(RETRY_EXHAUSTED_CHANNEL);
      const id = await account();
      const error = await failure(
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
          { attempts: 3, backoff: { initialMs: 1, jitter: false }, lockHotRows: false },
        ),
      );
      expect(error).toBeInstanceOf(RetryExhaustedError);
      expect(retries).toHaveLength(2);
      expect(retries.map((r) => [r.attempt, r.delayMs, r.where, label(r).dataSource])).toEqual([
        [1, 1, "retryOnConflict()", "one"],
        [2, 2, "retryOnConflict()", "one"],
      ]);
      // SQLite: the write from the attempt's snapshot is refused first (SerializationError).
      for (const retry of retries) {
        expect(retry.error).toBeInstanceOf(db.family === "sqlite" ? SerializationError : OptimisticLockError);
      }
      expect(exhausted.map(label)).toEqual([
        {
          attempts: 3,
          elapsedMs: (error as RetryExhaustedError).elapsedMs,
          reason: "attempts",
          error,
          where: "retryOnConflict()",
          dataSource: "one",
        },
      ]);
    });
  });

  describe("retry channels: @Retryable and the time budget", () => {
    it("@Retryable names its method and no DataSource; a budget that runs out gives reason budget", async () => {
      const retries = subscribe<RetryMessage>(RETRY_CHANNEL);
      const exhausted = subscribe<RetryExhaustedMessage>(RETRY_EXHAUSTED_CHANNEL);
      const conflict = () =>
        new OptimisticLockError({ entityName: "Account", id: { id: 0 }, expectedVersion: 1, operation: "update" });
      class Payments {
        @Retryable({ attempts: 2, backoff: { initialMs: 0 } })
        async pay(): Promise<void> {
          throw conflict();
        }
      }
      await failure(new Payments().pay());
      await failure(
        retryOnConflict(one, () => Promise.reject(conflict()), {
          attempts: 10,
          budgetMs: 5,
          backoff: { initialMs: 50, jitter: false },
          lockHotRows: false, // else the first retry, on a newly hot row, would not wait
        }),
      );
      expect(retries.map((r) => [r.where, r.dataSource, r.attempt])).toEqual([
        ["@Retryable() on Payments.pay", undefined, 1],
      ]);
      expect(exhausted.map((e) => [e.where, e.reason, e.attempts, label(e).dataSource])).toEqual([
        ["@Retryable() on Payments.pay", "attempts", 2, undefined],
        ["retryOnConflict()", "budget", 1, "one"],
      ]);
    });
  });

  describe("offline lock channel", () => {
    it("a lost handle given as a string names no resource, and publishes no handle", async () => {
      const seen = subscribe<OfflineLockMessage>(OFFLINE_LOCK_CHANNEL);
      const locks = new OfflineLockManager(one);
      const handle = await locks.tryLock("Document", `doc-${nextId++}`, { owner: "kim", ttlMs: 60_000 });
      await locks.releaseLock(handle.handle);
      expect(await failure(locks.checkLock(handle.handle))).toBeInstanceOf(OfflineLockLostError);
      // The lost event names the operation that found the handle lost, a forged string's included.
      expect(await failure(locks.extendLock(handle.handle, 60_000))).toBeInstanceOf(OfflineLockLostError);
      expect(await failure(locks.extendLock("forged", 60_000))).toBeInstanceOf(OfflineLockLostError);
      expect(await failure(locks.releaseLock("forged"))).toBeInstanceOf(OfflineLockLostError);
      expect(
        seen.map(({ event, lockType, lockId, owner, operation }) => ({ event, lockType, lockId, owner, operation })),
      ).toEqual([
        { event: "acquired", lockType: "Document", lockId: handle.lockId, owner: "kim", operation: undefined },
        { event: "released", lockType: "(resource)", lockId: "", owner: undefined, operation: undefined },
        { event: "lost", lockType: "(resource)", lockId: "", owner: undefined, operation: "checkLock()" },
        { event: "lost", lockType: "(resource)", lockId: "", owner: undefined, operation: "extendLock()" },
        { event: "lost", lockType: "(resource)", lockId: "", owner: undefined, operation: "extendLock()" },
        { event: "lost", lockType: "(resource)", lockId: "", owner: undefined, operation: "releaseLock()" },
      ]);
      expect(JSON.stringify(seen.map((m) => ({ ...m, error: undefined, dataSource: undefined })))).not.toContain(
        handle.handle,
      );
    });

    it("acquired, refused, extended, released, lost, taken over after expiry, and a save refused by protect()", async () => {
      const seen = subscribe<OfflineLockMessage>(OFFLINE_LOCK_CHANNEL);
      const mine = new OfflineLockManager(one);
      const theirs = new OfflineLockManager(two);
      const resource = `doc-${nextId++}`;
      const kim = await mine.tryLock("Document", resource, { owner: "kim", ttlMs: 60_000 });
      expect(await failure(theirs.tryLock("Document", resource, { owner: "lee", ttlMs: 60_000 }))).toBeInstanceOf(
        AlreadyLockedError,
      );
      await mine.extendLock(kim, 120_000);
      await mine.releaseLock(kim);
      await failure(mine.releaseLock(kim));
      const brief = await mine.tryLock("Document", resource, { owner: "kim", ttlMs: 50 });
      await sleep(1100); // databases that count expiry in whole seconds
      await theirs.tryLock("Document", resource, { owner: "lee", ttlMs: 60_000 });

      const protectedSource = await openAlongside(one);
      try {
        installLocking(protectedSource);
        new OfflineLockManager(protectedSource).protect(Order);
        const saved = await protectedSource.getRepository(Order).save({ address: "a", status: "NEW" });
        saved.status = "PAID";
        expect(await failure(protectedSource.getRepository(Order).save(saved))).toBeInstanceOf(
          OfflineLockRequiredError,
        );
      } finally {
        await closeAll(protectedSource);
      }
      expect(brief.owner).toBe("kim");
      const events = seen.map(({ event, lockType, lockId, owner, previousOwner, operation, dataSource }) => ({
        event,
        lockType,
        lockId,
        owner,
        previousOwner,
        operation,
        source: dataSource === one ? "one" : dataSource === two ? "two" : "protected",
      }));
      const doc = { lockType: "Document", lockId: resource, previousOwner: undefined, operation: undefined };
      expect(events).toEqual([
        { ...doc, event: "acquired", owner: "kim", source: "one" },
        { ...doc, event: "refused", owner: "kim", source: "two" },
        { ...doc, event: "extended", owner: "kim", source: "one" },
        { ...doc, event: "released", owner: "kim", source: "one" },
        { ...doc, event: "lost", owner: "kim", operation: "releaseLock()", source: "one" },
        { ...doc, event: "acquired", owner: "kim", source: "one" },
        { ...doc, event: "taken-over", owner: "lee", previousOwner: "kim", source: "two" },
        {
          event: "write-refused",
          lockType: "Order",
          lockId: expect.any(String),
          owner: undefined,
          previousOwner: undefined,
          operation: "Order",
          source: "protected",
        },
      ]);
      for (const message of seen)
        expect(JSON.stringify({ ...message, error: undefined, dataSource: undefined })).not.toMatch(/[0-9a-f]{32}/);
      expect(seen[1].error).toBeInstanceOf(AlreadyLockedError);
    });
  });

  describe("lockingStatistics", () => {
    it("counts conflicts by entity and kind, retries, exhaustion, lock waits, timeouts; reset and stop", async () => {
      const stats = lockingStatistics(one);
      stops.push(stats.stop);
      expect(lockingStatistics(one)).toBe(stats);
      const id = await account();
      // A load-time conflict on `one`, and one on `two` that `one`'s statistics do not count.
      for (const [writer, other] of [
        [one, two],
        [two, one],
      ]) {
        const stale = await writer.getRepository(Account).findOneByOrFail({ id });
        await updateVersioned(other.getRepository(Account), id, stale.version, { balance: 7 });
        stale.balance = 9;
        await failure(writer.getRepository(Account).save(stale));
      }
      // Two retries, then exhaustion.
      await failure(
        retryOnConflict(
          one,
          async (manager) => {
            const mine = await manager.findOneByOrFail(Account, { id });
            await updateVersioned(two.getRepository(Account), id, mine.version, { balance: 1 });
            mine.balance = 2;
            await manager.save(mine);
          },
          // Every attempt must conflict: `two` writes the row inside it, which a hot-row lock would block.
          { attempts: 3, backoff: { initialMs: 0 }, lockHotRows: false },
        ),
      );
      // A granted lock, and a lock timeout.
      await one.transaction((m) => m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) }));
      const held = deferred();
      const release = deferred();
      const holder = two.transaction(async (m) => {
        await m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) });
        held.resolve();
        await release.promise;
      });
      await held.promise;
      await failure(
        one.transaction((m) =>
          m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 0 }) }),
        ),
      );
      release.resolve();
      await holder;

      const snapshot = stats.snapshot();
      // Each attempt's conflict is found by the read before the write (READ COMMITTED) or by the
      // write (MySQL's REPEATABLE READ snapshot); SQLite refuses the write from a stale snapshot.
      const attemptConflicts = db.family === "sqlite" ? 0 : 3;
      const { load = 0, write = 0, ...others } = snapshot.conflicts.byEntity.Account;
      expect([load + write, others]).toEqual([1 + attemptConflicts, {}]);
      expect(snapshot.conflicts.total).toBe(1 + attemptConflicts);
      expect(snapshot.serializationFailures).toBe(3 - attemptConflicts);
      expect(snapshot).toMatchObject({ retries: 2, retriesExhausted: 1, lockTimeouts: 1, deadlocks: 0 });
      expect(snapshot.lockWaits.count).toBe(2);
      expect(snapshot.lockWaits.histogram.reduce((sum, bucket) => sum + bucket.count, 0)).toBe(2);
      expect(snapshot.lockWaits.maxMs).toBeGreaterThanOrEqual(0);
      expect(snapshot.lockWaits.histogram.at(-1)!.upToMs).toBe(Number.POSITIVE_INFINITY);

      snapshot.retries = 99; // a copy
      expect(stats.snapshot().retries).toBe(2);
      stats.reset();
      expect(stats.snapshot()).toMatchObject({ retries: 0, conflicts: { total: 0, byEntity: {} } });
      stats.stop();
      const next = lockingStatistics(one);
      expect(next).not.toBe(stats);
      // A stale handle stopped again leaves the counters that replaced it running.
      stats.stop();
      expect(lockingStatistics(one)).toBe(next);
      next.stop();
    });
  });

  describe("with nobody subscribed", () => {
    it("no channel publishes and no lock is traced: each point stops at hasSubscribers", async () => {
      const channels = [
        CONFLICT_CHANNEL,
        LOCK_FAILURE_CHANNEL,
        RETRY_CHANNEL,
        RETRY_EXHAUSTED_CHANNEL,
        OFFLINE_LOCK_CHANNEL,
      ];
      for (const name of channels) expect(diagnosticsChannel.hasSubscribers(name)).toBe(false);
      // The lock trace's events: a TracingChannel object is made per call, its channels are shared.
      const traceEvents = ["start", "end", "asyncStart", "asyncEnd", "error"].map(
        (event) => `tracing:${LOCK_TRACING_CHANNEL}:${event}`,
      );
      const spies = [...channels, ...traceEvents].map((name) =>
        jest.spyOn(diagnosticsChannel.channel(name), "publish"),
      );
      try {
        const id = await account();
        await one.transaction((m) =>
          m.findOne(Account, { where: { id }, ...withLockMode(LockMode.PESSIMISTIC_WRITE) }),
        );
        const stale = await one.getRepository(Account).findOneByOrFail({ id });
        await updateVersioned(two.getRepository(Account), id, 1, { balance: 1 });
        stale.balance = 3;
        expect(await failure(one.getRepository(Account).save(stale))).toBeInstanceOf(OptimisticLockError);
        await failure(
          retryOnConflict(
            one,
            () =>
              Promise.reject(
                new OptimisticLockError({ entityName: "X", id: 1, expectedVersion: 1, operation: "update" }),
              ),
            {
              attempts: 2,
              backoff: { initialMs: 0 },
            },
          ),
        );
        const locks = new OfflineLockManager(one);
        const handle = await locks.tryLock("Document", `quiet-${id}`, { owner: "kim", ttlMs: 60_000 });
        await locks.releaseLock(handle);
        for (const spy of spies) expect(spy).not.toHaveBeenCalled();
      } finally {
        for (const spy of spies) spy.mockRestore();
      }
    });
  });
});
