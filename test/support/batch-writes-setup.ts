/**
 * Batching is on by default (`installLocking()`'s `batchWrites`). `LOCKING_TEST_BATCH_WRITES=0 npx
 * jest ...` runs the suite with `batchWrites: false` on every DataSource the library installs
 * itself on (explicitly or implicitly), `=1` with `batchWrites: true`, unless a test asks for
 * something else: the whole matrix then checks that batching changes no outcome, both ways.
 */
import * as installation from "../../src/installation";

const mode = process.env.LOCKING_TEST_BATCH_WRITES;
if (mode === "0" || mode === "1") {
  const record = installation.recordInstallation;
  (installation as { recordInstallation: typeof record }).recordInstallation = (dataSource, options) =>
    record(dataSource, { batchWrites: mode === "1", ...options });
}
