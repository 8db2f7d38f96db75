/**
 * The history checker's main run (issue 18 §1): 16 clients, 20 orders, every kind of operation,
 * half of them inside retryOnConflict, on every database of the matrix; the checker must find
 * nothing lost, nothing failed-but-written, nothing twice, and every ok write in the versions.
 */
import { LOCKED_MODEL, reportRun, runHistory } from "./history";
import { bySize } from "./profile";
import { describeHistoryRuns, historyTarget, lockTimeoutFor } from "./targets";

const OPERATIONS = bySize(10_000, 300);

describeHistoryRuns((db) => {
  it(`${OPERATIONS} operations of 16 clients on 20 aggregates: nothing lost, nothing failed-but-written`, async () => {
    const result = await runHistory({
      model: LOCKED_MODEL,
      ...historyTarget(db, LOCKED_MODEL),
      operations: OPERATIONS,
      retry: { retryLockTimeouts: true },
      lockTimeoutMs: lockTimeoutFor(db),
    });
    reportRun("history", db.name, result);
    expect(result.check.violations.slice(0, 20)).toEqual([]);
    expect(result.operations).toBe(OPERATIONS);
    // the run must have been a real contest, not a queue: conflicts happened and were survived
    expect(result.ok).toBeGreaterThan(OPERATIONS / 4);
    expect(result.failed + result.retries).toBeGreaterThan(0);
    // no fault is injected here: every operation either returned or threw a library error
    expect(result.errors.unknown).toEqual([]);
  });
});
