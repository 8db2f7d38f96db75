/**
 * What the library's diagnostics messages say, for the cases a real database rarely produces on
 * cue: each kind of lock failure (a Galera certification conflict, a serialization failure, an
 * error that is no lock failure at all), an id holding a Date or built without a prototype, and
 * the measured wait of a lock trace. The same messages from real locks and conflicts are tested
 * in observability.test.ts. No database: the channels only carry what they are given.
 */
import diagnosticsChannel from "node:diagnostics_channel";
import { DataSource } from "typeorm";
import {
  CertificationConflictError,
  CONFLICT_CHANNEL,
  type ConflictMessage,
  DeadlockError,
  LOCK_FAILURE_CHANNEL,
  LOCK_TRACING_CHANNEL,
  type LockAcquisitionContext,
  type LockFailureMessage,
  LockTimeoutError,
  OptimisticLockError,
  SerializationError,
  SharedConnectionBusyError,
} from "../src";
import { publishRaised, traceLockAcquisition } from "../src/channels";

const failure = { dialect: "mariadb", code: "1213", retryable: true, transactionAborted: true };

function listen<T>(channel: string): { messages: T[]; stop: () => void } {
  const messages: T[] = [];
  const onMessage = (message: unknown) => messages.push(message as T);
  diagnosticsChannel.subscribe(channel, onMessage);
  return { messages, stop: () => diagnosticsChannel.unsubscribe(channel, onMessage) };
}

const kinds: [string, Error, string][] = [
  ["a Galera certification conflict", new CertificationConflictError({ ...failure, code: "1213" }), "certification"],
  [
    "a serialization failure",
    new SerializationError({ ...failure, dialect: "postgres", code: "40001" }),
    "serialization",
  ],
  ["a deadlock", new DeadlockError(failure), "deadlock"],
  ["a lock timeout", new LockTimeoutError({ ...failure, code: "1205", transactionAborted: false }), "timeout"],
  ["a busy shared connection", new SharedConnectionBusyError("sqlite", 5000), "timeout"],
];

describe("lock failures are published with the kind they are", () => {
  it.each(kinds)("%s", (_, error, kind) => {
    const failures = listen<LockFailureMessage>(LOCK_FAILURE_CHANNEL);
    try {
      publishRaised(undefined, error, undefined);
    } finally {
      failures.stop();
    }
    expect(failures.messages).toEqual([expect.objectContaining({ kind, error })]);
  });
});

describe("a lock trace's outcome and wait", () => {
  const tracing = diagnosticsChannel.tracingChannel(LOCK_TRACING_CHANNEL);
  const ended: LockAcquisitionContext[] = [];
  const handlers = {
    start() {},
    end() {},
    asyncStart() {},
    asyncEnd(context: object) {
      ended.push(context as LockAcquisitionContext);
    },
    error() {},
  };
  beforeAll(() => tracing.subscribe(handlers));
  afterAll(() => tracing.unsubscribe(handlers));
  beforeEach(() => {
    ended.length = 0;
  });

  const newContext = (): LockAcquisitionContext => ({
    entity: "Account",
    mode: "PESSIMISTIC_WRITE",
    timeout: 1000,
    dialect: "postgres",
    dataSource: new DataSource({ type: "better-sqlite3", database: ":memory:" }),
  });
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it.each([
    ...kinds,
    ["an error that is no lock failure (a lost connection, a bad statement)", new Error("Connection lost"), "error"],
  ])("failing with %s", async (_, error, outcome) => {
    const context = newContext();
    await expect(
      traceLockAcquisition(context, async () => {
        throw error;
      }),
    ).rejects.toBe(error);
    expect(ended).toEqual([expect.objectContaining({ outcome, error })]);
  });

  it("the wait is the time from asking to having the lock: measured, not a clock reading", async () => {
    const context = newContext();
    const before = performance.now();
    const result = await traceLockAcquisition(context, async () => {
      await pause(40);
      return { entities: [{}, {}] };
    });
    const elapsed = performance.now() - before;
    expect(result.entities).toHaveLength(2);
    expect(context).toMatchObject({ outcome: "acquired", rows: 2 });
    expect(context.waitMs).toBeGreaterThanOrEqual(35);
    expect(context.waitMs).toBeLessThanOrEqual(elapsed);
  });
});

describe("a conflict's id, as published", () => {
  function published(id: unknown): unknown {
    const conflicts = listen<ConflictMessage>(CONFLICT_CHANNEL);
    try {
      publishRaised(
        undefined,
        new OptimisticLockError({ entityName: "Reading", id, expectedVersion: 1, operation: "update" }),
        "write",
      );
    } finally {
      conflicts.stop();
    }
    expect(conflicts.messages).toHaveLength(1);
    return conflicts.messages[0].id;
  }
  const guard = Symbol("a write's guard");

  it("keeps the key's values as they are: a Date stays that Date, a Buffer that Buffer", () => {
    const taken = new Date("2026-12-06T00:00:00Z");
    const sensor = Buffer.from([1, 2, 3]);
    const id = published({ sensor, taken, [guard]: "kept out" }) as Record<string | symbol, unknown>;
    expect(id.taken).toBe(taken);
    expect(id.sensor).toBe(sensor);
    expect(Object.getOwnPropertySymbols(id)).toEqual([]);
  });

  it("copies an id map made without a prototype, without what the library keeps under symbols", () => {
    const bare = Object.assign(Object.create(null) as Record<string | symbol, unknown>, { id: 7, [guard]: "kept out" });
    const id = published(bare) as Record<string | symbol, unknown>;
    expect(id).not.toBe(bare);
    expect({ ...id }).toEqual({ id: 7 });
    expect(Object.getOwnPropertySymbols(id)).toEqual([]);
  });

  it("copies each id map of a list", () => {
    const ids = published([{ id: 1, [guard]: 1 }, { id: 2 }]) as object[];
    expect(ids).toEqual([{ id: 1 }, { id: 2 }]);
    expect(ids.flatMap((id) => Object.getOwnPropertySymbols(id))).toEqual([]);
  });
});
