/**
 * The memory of hot rows across retry loops (src/hot-rows.ts), on its own: which conflicts a loop
 * notes and remembers, for how long, on which DataSource, and the bound on how many rows one
 * DataSource remembers. The reads that lock these rows, on real databases, are in hot-rows.test.ts;
 * here time is jest's fake clock (it drives `performance.now()` too), so a window's end is exact.
 * No database: the memory is plain data.
 */
import { DeadlockError, LockTimeoutError, OptimisticLockError, SerializationError, StaleVersionError } from "../src";
import {
  anyRememberedHotRows,
  forgetHotRows,
  hotIdsOf,
  newHotRows,
  noteHotRows,
  rememberHotRows,
} from "../src/hot-rows";

const MAX_REMEMBERED = 1024;

const conflictOn = (id: unknown, entityName = "Counter") =>
  new OptimisticLockError({ entityName, id, expectedVersion: 1, operation: "update" });
/** The ids `entityName`'s reads lock on `dataSource` in a loop that uses the memory (and met no conflict yet). */
const rememberedOn = (dataSource: object, entityName = "Counter") =>
  hotIdsOf(newHotRows(undefined, undefined), dataSource, entityName);

// One fake clock for the file: the memory's "until when" outlives a test, and a clock reset to 0
// would put every earlier window back in the future.
beforeAll(() => jest.useFakeTimers());
afterAll(() => jest.useRealTimers());

describe("a retry loop's own hot rows (noteHotRows)", () => {
  it("notes the rows a retryable conflict names, once each: a row already hot is no news", () => {
    const hot = newHotRows(undefined, undefined);
    expect(noteHotRows(hot, conflictOn({ id: 1 }))).toBe(true);
    expect(noteHotRows(hot, conflictOn({ id: 1 }))).toBe(false);
    expect(noteHotRows(hot, conflictOn([{ id: 1 }, { id: 2 }]))).toBe(true);
    expect(noteHotRows(hot, conflictOn([{ id: 2 }, { id: 1 }]))).toBe(false);
    expect(noteHotRows(hot, conflictOn({ id: 1 }, "Order"))).toBe(true);
    expect(Object.fromEntries(hot.rows)).toEqual({ Counter: [{ id: 1 }, { id: 2 }], Order: [{ id: 1 }] });
  });

  it("a key value given as a bigint is one row, noted once (JSON has no bigint)", () => {
    const hot = newHotRows(undefined, undefined);
    expect(noteHotRows(hot, conflictOn({ tenant: "acme", id: 5n }))).toBe(true);
    expect(noteHotRows(hot, conflictOn({ tenant: "acme", id: 5n }))).toBe(false);
    expect(noteHotRows(hot, conflictOn({ tenant: "acme", id: 6n }))).toBe(true);
  });

  it.each([
    ["no id", undefined],
    ["a null id", null],
    ["a bare value, not an id map", 7],
    ["a list of bare values", [7, null, "x"]],
  ])("a conflict naming its row by %s names no row: nothing to lock", (_, id) => {
    const hot = newHotRows(undefined, undefined);
    expect(noteHotRows(hot, conflictOn(id))).toBe(false);
    expect(hot.rows.size).toBe(0);
  });

  it("errors that name no row, or are not retryable, note nothing", () => {
    const hot = newHotRows(undefined, undefined);
    const failure = { dialect: "postgres", code: "40P01", retryable: true, transactionAborted: true };
    const stale = new StaleVersionError({
      entityName: "Counter",
      id: { id: 1 },
      expectedVersion: 1,
      operation: "update",
    });
    for (const error of [
      new DeadlockError(failure),
      new SerializationError({ ...failure, code: "40001" }),
      new LockTimeoutError({ ...failure, code: "55P03" }),
      stale,
      new Error("not a conflict"),
      { entityName: "Counter", id: { id: 1 }, retryable: true },
    ]) {
      expect(noteHotRows(hot, error)).toBe(false);
    }
    expect(hot.rows.size).toBe(0);
  });
});

describe("rows remembered for later loops (rememberHotRows)", () => {
  beforeEach(() => jest.advanceTimersByTime(60_000)); // every earlier test's window is over

  it("a later loop on the same DataSource locks them until the window ends, exactly", () => {
    const dataSource = {};
    expect(anyRememberedHotRows()).toBe(false);
    rememberHotRows(dataSource, conflictOn([{ id: 1 }, { id: 2 }]), 100);
    expect(anyRememberedHotRows()).toBe(true);
    expect(rememberedOn(dataSource)).toEqual([{ id: 1 }, { id: 2 }]);
    jest.advanceTimersByTime(99);
    expect(rememberedOn(dataSource)).toEqual([{ id: 1 }, { id: 2 }]);
    expect(anyRememberedHotRows()).toBe(true);
    jest.advanceTimersByTime(1);
    expect(rememberedOn(dataSource)).toBeUndefined();
    expect(anyRememberedHotRows()).toBe(false);
  });

  it("a new conflict on a row starts its window again; the others keep theirs", () => {
    const dataSource = {};
    rememberHotRows(dataSource, conflictOn([{ id: 1 }, { id: 2 }]), 100);
    jest.advanceTimersByTime(60);
    rememberHotRows(dataSource, conflictOn({ id: 2 }), 100);
    jest.advanceTimersByTime(40);
    expect(rememberedOn(dataSource)).toEqual([{ id: 2 }]);
    jest.advanceTimersByTime(60);
    expect(rememberedOn(dataSource)).toBeUndefined();
  });

  it("only on that DataSource, for that entity", () => {
    const dataSource = {};
    rememberHotRows(dataSource, conflictOn({ id: 1 }), 100);
    expect(rememberedOn({})).toBeUndefined();
    expect(rememberedOn(dataSource, "Order")).toBeUndefined();
    rememberHotRows(undefined, conflictOn({ id: 3 }), 100); // a conflict of no known DataSource
    expect(rememberedOn(dataSource)).toEqual([{ id: 1 }]);
  });

  it.each([
    ["no id", undefined],
    ["a null id", null],
    ["a bare value", 7],
    ["a list of bare values", [7, null]],
  ])("a conflict naming its row by %s remembers nothing (and no loop starts looking)", (_, id) => {
    const dataSource = {};
    rememberHotRows(dataSource, conflictOn(id), 100);
    expect(rememberedOn(dataSource)).toBeUndefined();
    expect(anyRememberedHotRows()).toBe(false);
  });

  it("a deadlock, a stale version the caller held or a window of 0 ms remembers nothing", () => {
    const dataSource = {};
    const failure = { dialect: "postgres", code: "40P01", retryable: true, transactionAborted: true };
    rememberHotRows(dataSource, new DeadlockError(failure), 100);
    rememberHotRows(
      dataSource,
      new StaleVersionError({ entityName: "Counter", id: { id: 1 }, expectedVersion: 1, operation: "update" }),
      100,
    );
    rememberHotRows(dataSource, conflictOn({ id: 2 }), 0);
    expect(rememberedOn(dataSource)).toBeUndefined();
    expect(anyRememberedHotRows()).toBe(false);
  });

  it("a loop's own rows and the remembered ones are both locked; with rememberMs 0 only its own", () => {
    const dataSource = {};
    rememberHotRows(dataSource, conflictOn({ id: 1 }), 100);
    const using = newHotRows({ rememberMs: 50 }, undefined);
    noteHotRows(using, conflictOn({ id: 2 }));
    expect(hotIdsOf(using, dataSource, "Counter")).toEqual([{ id: 2 }, { id: 1 }]);
    const apart = newHotRows({ rememberMs: 0 }, undefined);
    expect(hotIdsOf(apart, dataSource, "Counter")).toBeUndefined();
    noteHotRows(apart, conflictOn({ id: 2 }));
    expect(hotIdsOf(apart, dataSource, "Counter")).toEqual([{ id: 2 }]);
    // Its own rows stay hot for the loop after the memory forgot them.
    jest.advanceTimersByTime(100);
    expect(hotIdsOf(using, dataSource, "Counter")).toEqual([{ id: 2 }]);
  });

  it("forgetHotRows() forgets a DataSource's rows, and only its", () => {
    const [one, two] = [{}, {}];
    rememberHotRows(one, conflictOn({ id: 1 }), 100);
    rememberHotRows(two, conflictOn({ id: 1 }), 100);
    forgetHotRows(one);
    expect(rememberedOn(one)).toBeUndefined();
    expect(rememberedOn(two)).toEqual([{ id: 1 }]);
  });

  describe(`at most ${MAX_REMEMBERED} rows per DataSource: the least recently conflicted go first`, () => {
    const ids = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ id: from + i }));

    it("a conflict past the bound evicts the oldest rows, and only as many as it adds", () => {
      const dataSource = {};
      rememberHotRows(dataSource, conflictOn(ids(1, MAX_REMEMBERED)), 1000);
      expect(rememberedOn(dataSource)).toHaveLength(MAX_REMEMBERED);
      rememberHotRows(dataSource, conflictOn(ids(MAX_REMEMBERED + 1, 3)), 1000);
      expect(rememberedOn(dataSource)).toEqual(ids(4, MAX_REMEMBERED));
    });

    it("a row that conflicts again counts as new: the next oldest goes instead", () => {
      const dataSource = {};
      rememberHotRows(dataSource, conflictOn(ids(1, MAX_REMEMBERED)), 1000);
      rememberHotRows(dataSource, conflictOn({ id: 1 }), 1000);
      rememberHotRows(dataSource, conflictOn({ id: MAX_REMEMBERED + 1 }), 1000);
      const kept = rememberedOn(dataSource) ?? [];
      expect(kept).toHaveLength(MAX_REMEMBERED);
      expect(kept).toContainEqual({ id: 1 });
      expect(kept).not.toContainEqual({ id: 2 });
    });

    it("the bound is over all entities of the DataSource, not per entity", () => {
      const dataSource = {};
      rememberHotRows(dataSource, conflictOn(ids(1, MAX_REMEMBERED - 2), "Counter"), 1000);
      rememberHotRows(dataSource, conflictOn(ids(1, 5), "Order"), 1000);
      expect(rememberedOn(dataSource, "Order")).toEqual(ids(1, 5));
      expect(rememberedOn(dataSource, "Counter")).toEqual(ids(4, MAX_REMEMBERED - 5));
    });

    it("a window of 0 ms evicts nothing", () => {
      const dataSource = {};
      rememberHotRows(dataSource, conflictOn(ids(1, MAX_REMEMBERED)), 1000);
      rememberHotRows(dataSource, conflictOn({ id: MAX_REMEMBERED + 1 }), 0);
      expect(rememberedOn(dataSource)).toEqual(ids(1, MAX_REMEMBERED));
    });
  });
});
