/**
 * `LOCKING_TEST_BATCH_WRITES=1 npx jest ...` runs the suite with `batchWrites: true` on every
 * DataSource the library installs itself on (explicitly or implicitly), unless a test asks for
 * something else: the whole matrix then checks that batching changes no outcome.
 */
import * as installation from "../../src/installation";

if (process.env.LOCKING_TEST_BATCH_WRITES === "1") {
  const record = installation.recordInstallation;
  (installation as { recordInstallation: typeof record }).recordInstallation = (dataSource, options) =>
    record(dataSource, { batchWrites: true, ...options });
}
