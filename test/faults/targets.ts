/**
 * Opens the DataSources of a history run on one database of the test matrix: the first with a
 * fresh schema, the others alongside it (each its own pool; on SQLite, its own connection to the
 * same file), with `installLocking()` for the library's models and nothing for plain TypeORM.
 */
import type { DataSource } from "typeorm";
import { installLocking } from "../../src";
import {
  closeAll,
  type DatabaseName,
  describeEachDatabase,
  openAlongside,
  openDataSources,
  type TestDatabase,
} from "../support/databases";
import type { HistoryModel, HistoryRunOptions } from "./history";
import { faultsProfile } from "./profile";

/** Pool size per DataSource on server databases: the 16 clients share it. */
const POOL_SIZE = 10;

/**
 * `openDataSource`, `dataSources` and `closeDataSource` of a run of `clients` clients on `db`.
 *
 * SQLite, by `sqlite`: `"per-client"` (default), one DataSource (one connection) per client, the
 * clients contending through the database file's lock; `"shared"`, one DataSource for all clients:
 * TypeORM gives it a single query runner that every caller shares, and the library makes the
 * clients take turns on it, so that a save never joins another client's transaction and is
 * rolled back with it (issue 18, docs/reliability.md).
 */
export function historyTarget(
  db: TestDatabase,
  model: HistoryModel,
  clients = 16,
  sqliteConnections: "per-client" | "shared" = "per-client",
): Pick<HistoryRunOptions, "openDataSource" | "dataSources" | "closeDataSource"> {
  let first: DataSource | undefined;
  const sqlite = db.family === "sqlite";
  // SQLite: better-sqlite3 waits for a lock synchronously, so the holder (in the same thread)
  // cannot finish meanwhile: a wait is wasted time; fail at once and let the retry wait.
  const extra: Record<string, unknown> = sqlite ? { timeout: 0 } : { poolSize: POOL_SIZE };
  if (db.family === "postgres") extra.applicationName = "typeorm-locking-history";
  const install = (source: DataSource) => {
    if (model.library) installLocking(source);
  };
  return {
    dataSources: sqlite && sqliteConnections === "per-client" ? clients : 1,
    openDataSource: async (index) => {
      if (index === 0 || !first) {
        [first] = await openDataSources(db, model.entities, { extra, beforeInitialize: install });
        return first;
      }
      const other = await openAlongside(first, { ...extra });
      if (model.library) installLocking(other);
      return other;
    },
    closeDataSource: (source) => closeAll(source),
  };
}

/**
 * The `PESSIMISTIC_WRITE` timeout of the workload: 1 s, but 0 (no wait) on SQLite, where
 * better-sqlite3 waits synchronously and stalls every client of the process while it waits.
 */
export function lockTimeoutFor(db: TestDatabase): number {
  return db.family === "sqlite" ? 0 : 1_000;
}

/**
 * `describeEachDatabase` for the history runs: in the reduced profile (.ci/run) on the typeorm-1
 * line only, to stay within CI's time (the runs exercise the library's hooks, which the main
 * suite tests on both lines); in the full profile on both.
 */
export function describeHistoryRuns(fn: (db: TestDatabase) => void, only?: DatabaseName[]): void {
  const line = (globalThis as { TYPEORM_LINE?: string }).TYPEORM_LINE;
  if (faultsProfile() === "reduced" && line !== undefined && line !== "typeorm-1") {
    describe.skip(`history runs on ${line} (the reduced profile runs them on typeorm-1 only)`, () => {
      it("runs in the full profile", () => undefined);
    });
    return;
  }
  describeEachDatabase(fn, only);
}
