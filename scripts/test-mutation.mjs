// `npm run test:mutation [-- stryker options]`: Stryker over src/ (stryker.config.mjs), on the
// databases LOCKING_DATABASES names (default: SQLite and the embedded PostgreSQL).
//
// Stryker runs jest once per batch of mutants, and jest's globalSetup would start (and its
// teardown stop) the embedded PostgreSQL each time. So the servers are started here, once, and
// every jest run reuses their probe file (LOCKING_REUSE_PROBE=1, see test/support/global-setup.mjs).
//
// Examples:
//   npm run test:mutation                                   # all of src/, incremental
//   npm run test:mutation -- --mutate src/retry.ts          # one file
//   LOCKING_DATABASES=sqlite npm run test:mutation          # SQLite only (faster, kills less)
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { dropWorkerDatabases } from "./stryker/worker-databases.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);
process.env.LOCKING_DATABASES ??= "sqlite,postgres-embedded";
delete process.env.LOCKING_REUSE_PROBE;

const { default: globalSetup } = await import("../test/support/global-setup.mjs");
const { default: globalTeardown } = await import("../test/support/global-teardown.mjs");

await globalSetup();
const started = Date.now();
let code = 1;
try {
  const stryker = spawn(path.join(root, "node_modules", ".bin", "stryker"), ["run", ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, LOCKING_REUSE_PROBE: "1" },
  });
  const forward = (signal) => stryker.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  code = await new Promise((resolve) => stryker.on("exit", (status, signal) => resolve(status ?? (signal ? 1 : 0))));
} finally {
  // Each Stryker test runner made databases of its own (scripts/stryker/worker-databases.mjs).
  await dropWorkerDatabases(process.env.LOCKING_DB_PROBE_FILE).catch((error) =>
    console.error(`test:mutation: could not drop the test runners' databases: ${error.message}`),
  );
  await globalTeardown();
  console.log(`test:mutation: ${Math.round((Date.now() - started) / 1000)} s`);
}
process.exit(code);
