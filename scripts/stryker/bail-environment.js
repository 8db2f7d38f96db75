// The jest test environment of `npm run test:mutation` (jest.stryker.config.js): jest's node
// environment that, in a mutant's run, skips every test left once one has failed. One failed test
// kills the mutant; the rest of its covering tests (often hundreds, on several databases) would
// only cost time. Stryker's jest runner cannot bail itself (jest's `bail` exits the process when
// run programmatically). Outside a mutant's run (the dry run, a plain jest run) nothing changes.
//
// The mutant's run is told apart by LOCKING_MUTATION_RUN, a number the Stryker test runner
// (scripts/stryker/jest-covering-files.mjs) sets afresh for each; the environment is loaded once
// per process, so the run a failure happened in outlives the test file it happened in.
//
// In the dry run (per-test coverage), it also counts what the file runs outside its tests for
// the file's tests (file-coverage.js).
const { TestEnvironment } = require("jest-environment-node");
const { FileCoverage } = require("./file-coverage");

let failedRun;

class BailEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.fileCoverage = new FileCoverage(context.testPath);
  }

  handleTestEvent(event, state) {
    const run = process.env.LOCKING_MUTATION_RUN;
    if (!run) {
      // Stryker's context, once its environment mixin has set it (absent in a plain jest run).
      const stryker = this.global[this.global.__strykerGlobalNamespace__ ?? "__stryker__"];
      if (stryker) this.fileCoverage.handle(event, stryker);
      return;
    }
    if (event.name === "test_done" && event.test.errors.length > 0) failedRun = run;
    if (failedRun !== run) return;
    // A file started after the failure: no test enabled, so none of its beforeAll hooks run either.
    if (event.name === "run_start") skipAll(state.rootDescribeBlock);
    if (event.name === "test_start") event.test.mode = "skip";
  }
}

function skipAll(block) {
  for (const child of block.children) {
    if (child.type === "describeBlock") skipAll(child);
    else child.mode = "skip";
  }
}

module.exports = BailEnvironment;
/** The mutant run in which a test failed last (bail-runner.js then starts no more test files). */
module.exports.failedRun = () => failedRun;
