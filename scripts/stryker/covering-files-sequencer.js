// The jest test sequencer of `npm run test:mutation` (jest.stryker.config.js): keeps only the test
// files a mutant's covering tests are in when the Stryker test runner
// (scripts/stryker/jest-covering-files.mjs) names them in LOCKING_MUTATION_TEST_FILES. Without
// that variable (the dry run, a mutant without per-test coverage, a plain jest run) every file runs,
// in jest's own order.
//
// A mutant's files run the file that failed last first (it killed the mutant before, and
// neighbouring mutants tend to fall to the same tests), then the quickest first: the run stops at
// the first failure (bail-runner.js), so a killed mutant costs what runs before its killing file.
const path = require("node:path");
const Sequencer = require("@jest/test-sequencer").default;

class CoveringFilesSequencer extends Sequencer {
  sort(tests) {
    const sorted = super.sort(tests);
    const named = process.env.LOCKING_MUTATION_TEST_FILES;
    if (!named) return sorted;
    const keep = new Set(JSON.parse(named).map((file) => path.resolve(file)));
    const failed = (test) => (this.hasFailed(test) ? 0 : 1);
    // super.sort() set each test's duration from jest's cache (undefined when never run).
    const duration = (test) => test.duration ?? Number.POSITIVE_INFINITY;
    return sorted
      .filter((test) => keep.has(path.resolve(test.path)))
      .sort((a, b) => failed(a) - failed(b) || duration(a) - duration(b));
  }
}

module.exports = CoveringFilesSequencer;
