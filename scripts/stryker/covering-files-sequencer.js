// The jest test sequencer of `npm run test:mutation` (jest.stryker.config.js): jest's own order,
// keeping only the test files a mutant's covering tests are in when the Stryker test runner
// (scripts/stryker/jest-covering-files.mjs) names them in LOCKING_MUTATION_TEST_FILES. Without
// that variable (the dry run, a mutant without per-test coverage, a plain jest run) every file runs.
const path = require("node:path");
const Sequencer = require("@jest/test-sequencer").default;

class CoveringFilesSequencer extends Sequencer {
  sort(tests) {
    const sorted = super.sort(tests);
    const named = process.env.LOCKING_MUTATION_TEST_FILES;
    if (!named) return sorted;
    const keep = new Set(JSON.parse(named).map((file) => path.resolve(file)));
    return sorted.filter((test) => keep.has(path.resolve(test.path)));
  }
}

module.exports = CoveringFilesSequencer;
