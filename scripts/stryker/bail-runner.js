// The jest runner of `npm run test:mutation` (jest.stryker.config.js): jest's own in-band runner,
// which in a mutant's run stops loading test files once a test has failed. bail-environment.js
// already skips the tests of the files after a failure, but jest still required each of those
// files (TypeORM, the entities, the library: about a second each) to find nothing to run; a
// mutant of src/typeorm/ is covered by most of the suite's files. Outside a mutant's run (the dry
// run, a plain jest run) it is jest's runner unchanged.
//
// It reads the run the failure happened in from bail-environment.js, loaded in this process too
// (jest runs in band: maxWorkers 1).
const TestRunner = require("jest-runner").default;
const { failedRun } = require("./bail-environment.js");

class BailRunner extends TestRunner {
  async runTests(tests, watcher, options) {
    const run = process.env.LOCKING_MUTATION_RUN;
    if (!run || !options.serial) return super.runTests(tests, watcher, options);
    // One file at a time, so that none is started after one has failed.
    for (const test of tests) {
      if (failedRun() === run) return;
      await super.runTests([test], watcher, options);
    }
  }
}

module.exports = BailRunner;
