/**
 * The embedded PostgreSQL 18 restarted mid-run (issue 18 §2), twice (once in the reduced profile): stopped (fast shutdown: open
 * transactions roll back, connections drop), down for a second, started again on the same data
 * directory and port. The clients' pools reconnect by themselves, the run completes, and the
 * checker finds 0 lost and 0 failed-but-written tokens.
 */
import { startEmbeddedPostgres, stopEmbeddedPostgres } from "../support/embedded-postgres";
import { LOCKED_MODEL, reportRun, runHistory, ServerRestart } from "./history";
import { bySize } from "./profile";
import { describeHistoryRuns, historyTarget } from "./targets";

const OPERATIONS = bySize(2_000, 300);
/** When the server restarts, as shares of the run's operations. */
const RESTARTS = bySize([0.3, 0.6], [0.4]);

describeHistoryRuns(
  (db) => {
    it(`${OPERATIONS} operations with the server stopped and started again ${RESTARTS.length} time(s)`, async () => {
      const restart = new ServerRestart({
        at: RESTARTS,
        downMs: 1_000,
        stopServer: stopEmbeddedPostgres,
        startServer: startEmbeddedPostgres,
      });
      const result = await runHistory({
        model: LOCKED_MODEL,
        ...historyTarget(db, LOCKED_MODEL),
        operations: OPERATIONS,
        faults: [restart],
        retry: { retryLockTimeouts: true },
      });
      reportRun("postgres-restart", db.name, result);
      expect(result.check.violations.slice(0, 20)).toEqual([]);
      expect(restart.counts().restart).toBe(RESTARTS.length);
      expect(result.unknown).toBeGreaterThan(0);
      // the clients reconnected: the operations after the last restart commit again
      const last = result.recorder.operations.slice(-Math.ceil(OPERATIONS / 10));
      expect(last.filter((op) => op.outcome === "ok").length).toBeGreaterThan(last.length / 4);
    });
  },
  ["postgres-embedded"],
);
