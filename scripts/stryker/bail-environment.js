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
// the file's tests (file-coverage.js). In a mutant's run, it notes the name of each test that
// ran, so that the test runner can tell a covering test that did not run (see ranTests()).
const { TestEnvironment } = require("jest-environment-node");
const { FileCoverage, fullName } = require("./file-coverage");
const { resetChannels } = require("./channel-reset");

let failedRun;
// On the process's global: the Stryker test runner (an ES module, maybe loaded from another copy
// of this directory than the one jest loads this file from) reads it.
const RAN = Symbol.for("typeorm-locking.mutation.ranTests");
globalThis[RAN] ??= { run: undefined, names: new Set() };

/** The mutant run whose first test file cleared the channels (channel-reset.js). */
let resetForRun;

class BailEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.fileCoverage = new FileCoverage(context.testPath);
    const run = process.env.LOCKING_MUTATION_RUN;
    if (run && resetForRun !== run) {
      resetForRun = run;
      resetChannels();
    }
  }

  handleTestEvent(event, state) {
    const run = process.env.LOCKING_MUTATION_RUN;
    if (!run) {
      // Stryker's context, once its environment mixin has set it (absent in a plain jest run).
      const stryker = this.global[this.global.__strykerGlobalNamespace__ ?? "__stryker__"];
      if (stryker) this.fileCoverage.handle(event, stryker);
      return;
    }
    if (event.name === "test_done") noteRan(run, fullName(event.test));
    if (event.name === "test_done" && event.test.errors.length > 0) failedRun = run;
    if (failedRun !== run) return;
    // A file started after the failure: no test enabled, so none of its beforeAll hooks run either.
    if (event.name === "run_start") skipAll(state.rootDescribeBlock);
    if (event.name === "test_start") event.test.mode = "skip";
  }
}

function noteRan(run, name) {
  const ran = globalThis[RAN];
  if (ran.run !== run) Object.assign(ran, { run, names: new Set() });
  ran.names.add(name);
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
