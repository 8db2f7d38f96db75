/**
 * The databases a bench run uses: the test suite's own set-up starts an embedded PostgreSQL and
 * probes the machine's PostgreSQL and MariaDB, so the bench measures on exactly what `npm test`
 * tests on, with no set-up of its own.
 */
import type { DataSource } from "typeorm";
import {
  DATABASES,
  type DatabaseName,
  databaseStatus,
  openDataSources,
  type TestDatabase,
} from "../test/support/databases";

/** The rows a bench reports: the suite's databases but `mysql`, which is the MariaDB server again. */
const BENCHED: DatabaseName[] = ["sqlite", "postgres-embedded", "postgres", "mariadb"];

// TypeScript compiles import() to require() under CommonJS; the set-up is an ES module.
const importModule = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<{
  default: () => Promise<void>;
}>;

/** Starts the embedded PostgreSQL and probes the others; returns what answered and what did not. */
export async function startDatabases(
  only: DatabaseName[] | undefined,
): Promise<{ used: TestDatabase[]; skipped: { name: string; reason: string }[] }> {
  const setup = await importModule(require.resolve("../test/support/global-setup.mjs"));
  await setup.default();
  const used: TestDatabase[] = [];
  const skipped: { name: string; reason: string }[] = [];
  for (const db of DATABASES) {
    if (!BENCHED.includes(db.name) || (only && !only.includes(db.name))) continue;
    const status = databaseStatus(db.name);
    if (status.reachable) used.push(db);
    else skipped.push({ name: db.name, reason: status.reason ?? "not reachable" });
  }
  return { used, skipped };
}

/** Stops the embedded PostgreSQL and removes its folder. */
export async function stopDatabases(): Promise<void> {
  const teardown = await importModule(require.resolve("../test/support/global-teardown.mjs"));
  await teardown.default();
}

/** The server's version string, for the report. */
export async function serverVersion(source: DataSource): Promise<string> {
  if (source.options.type === "better-sqlite3") {
    const [row] = await source.query("SELECT sqlite_version() AS version");
    return `SQLite ${row.version}`;
  }
  const [row] = await source.query("SELECT version() AS version");
  return String(row.version).split(" on ")[0].split(",")[0];
}

export { openDataSources, type TestDatabase };
