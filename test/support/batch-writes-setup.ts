/**
 * Batching is on by default (`installLocking()`'s `batchWrites`). `LOCKING_TEST_BATCH_WRITES=0 npx
 * jest ...` runs the suite with `batchWrites: false` on every DataSource the library installs
 * itself on (explicitly or implicitly), `=1` with `batchWrites: true`, unless a test asks for
 * something else: the whole matrix then checks that batching changes no outcome, both ways.
 *
 * The library is loaded here only when asked: a setup file runs before the test framework, so
 * what a module does as it loads would be seen by no test, and mutation testing (which counts it
 * for the tests of the file that loads it, scripts/stryker/file-coverage.js) would then run such
 * a mutant against the wrong tests (docs/testing.md).
 */
const mode = process.env.LOCKING_TEST_BATCH_WRITES;
if (mode === "0" || mode === "1") {
  const installation = require("../../src/installation") as typeof import("../../src/installation");
  const record = installation.recordInstallation;
  (installation as { recordInstallation: typeof record }).recordInstallation = (dataSource, options) =>
    record(dataSource, { batchWrites: mode === "1", ...options });
}
