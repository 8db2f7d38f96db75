/**
 * The history checker's main run (issue 18 §1): 16 clients, 20 orders, every kind of operation,
 * half of them inside retryOnConflict, on every database of the matrix; the checker must find
 * nothing lost, nothing failed-but-written, nothing twice, and every ok write in the versions.
 */
import type { TestDatabase } from "../support/databases";
import { LOCKED_MODEL, reportRun, runHistory } from "./history";
import { bySize } from "./profile";
import { describeHistoryRuns, historyTarget, lockTimeoutFor } from "./targets";

const OPERATIONS = bySize(10_000, 300);

async function checkedRun(db: TestDatabase, name: string, sqliteConnections: "per-client" | "shared"): Promise<void> {
  const result = await runHistory({
    model: LOCKED_MODEL,
    ...historyTarget(db, LOCKED_MODEL, 16, sqliteConnections),
    operations: OPERATIONS,
    retry: { retryLockTimeouts: true },
    lockTimeoutMs: lockTimeoutFor(db),
  });
  reportRun(name, db.name, result);
  expect(result.check.violations.slice(0, 20)).toEqual([]);
  expect(result.operations).toBe(OPERATIONS);
  // the run must have been a real contest, not a queue: conflicts happened and were survived
  expect(result.ok).toBeGreaterThan(OPERATIONS / 4);
  expect(result.failed + result.retries).toBeGreaterThan(0);
  // no fault is injected here: every operation either returned or threw a library error
  expect(result.errors.unknown).toEqual([]);
}

describeHistoryRuns((db) => {
  it(`${OPERATIONS} operations of 16 clients on 20 aggregates: nothing lost, nothing failed-but-written`, () =>
    checkedRun(db, "history", "per-client"));
});

// SQLite, all 16 clients on ONE DataSource, its one query runner shared (issue 18): the clients
// take turns on it, and a save never joins (and is rolled back with) another client's transaction.
describeHistoryRuns(
  (db) => {
    it(`${OPERATIONS} operations of 16 clients sharing one SQLite DataSource: nothing lost, nothing failed-but-written`, () =>
      checkedRun(db, "history-shared-datasource", "shared"));
  },
  ["sqlite"],
);
