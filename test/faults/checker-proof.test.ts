/**
 * The checker is only worth its "0 lost" if it catches a library that loses writes. Two runs of
 * the same workload that must lose them, on every database:
 *
 * - plain TypeORM (`@VersionColumn`, a DataSource never passed to installLocking()): a stale
 *   save overwrites the row and writes its old version back, a line edit moves no version;
 * - the library with the aggregate root bump switched off (lines without `@VersionedBy`): two
 *   edits of one line both succeed, and the order's version does not see them.
 *
 * Few aggregates and line-heavy operations, so that clients collide often.
 */
import { type HistoryModel, NO_ROOT_BUMP_MODEL, PLAIN_MODEL, reportRun, runHistory } from "./history";
import { bySize } from "./profile";
import { describeHistoryRuns, historyTarget, lockTimeoutFor } from "./targets";

const OPERATIONS = bySize(1_000, 150);

describeHistoryRuns((db) => {
  const run = (model: HistoryModel) =>
    runHistory({
      model,
      ...historyTarget(db, model),
      operations: OPERATIONS,
      aggregates: 3,
      kinds: ["root-save", "line-cascade", "line-repository", "line-add", "line-remove"],
      lockTimeoutMs: lockTimeoutFor(db),
      retry: { retryLockTimeouts: true },
    });

  it("catches plain TypeORM losing tokens (no installLocking, @VersionColumn only)", async () => {
    const result = await run(PLAIN_MODEL);
    reportRun("proof-plain-typeorm", db.name, result);
    expect(result.ok).toBeGreaterThan(0);
    expect(result.check.counts.lost).toBeGreaterThan(0);
    expect(result.check.counts["version-not-moved"]).toBeGreaterThan(0);
  });

  it("catches the library with the aggregate root bump switched off (lines without @VersionedBy)", async () => {
    const result = await runHistory({
      model: NO_ROOT_BUMP_MODEL,
      ...historyTarget(db, NO_ROOT_BUMP_MODEL),
      operations: OPERATIONS,
      aggregates: 3,
      // only the lines change: the order's version is the only guard, and it is switched off
      kinds: ["line-cascade", "line-repository"],
      lockTimeoutMs: lockTimeoutFor(db),
      retry: { retryLockTimeouts: true },
    });
    reportRun("proof-no-root-bump", db.name, result);
    expect(result.ok).toBeGreaterThan(0);
    expect(result.check.counts.lost).toBeGreaterThan(0);
    expect(result.check.counts["version-not-moved"]).toBeGreaterThan(0);
  });
});
