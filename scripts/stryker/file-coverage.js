// Per-test coverage for what a test file runs outside its tests: at import, while its describe
// blocks are collected, and in its beforeAll and afterAll hooks (installLocking(), the seed rows).
//
// Stryker's jest runner records coverage under the test that is running, and anything else as
// "static": such a mutant runs against the whole suite, with the suite's time as its timeout
// (stryker.config.mjs, ignoreStatic). Seeds in beforeAll reach most of the persistence hooks, so
// 44 % of a run's mutants were static and a surviving one cost the whole suite. Yet jest gives
// each test file a module registry of its own: what a file runs outside its tests can only be
// seen by that file's own tests. So it is counted here for each test of the file that ran, and a
// mutant reached that way runs against those files only (their beforeAll runs again when it does).
// A file none of whose tests ran (a database not selected) covers nothing.
//
// Likewise what a test leaves behind: a module keeps what it works out once (a class's excluded
// properties, a detected dialect) for the rest of the file, so a mutant reached by one test can
// change every later test of the file without them running its line. Each test is counted as
// covering what the tests before it in its file covered. Found on 2026-12-06: `aggregate.ts`'s
// excluded-properties cache made empty survived its 105 covering tests, and applied by hand it
// fails two later tests of aggregate-flushes.test.ts at once. Counted in the coverage (not added
// by the runner), Stryker gives those tests their share of the mutant's timeout.

/** Stryker's name for a test (its jest-runner's mixin builds it this way). */
function fullName(test) {
  return `${blockName(test.parent)} ${test.name}`.trimStart();
}

function blockName(block) {
  return block.parent ? `${blockName(block.parent)} ${block.name}`.trimStart() : "";
}

class FileCoverage {
  /** @param {string} testPath */
  constructor(testPath) {
    this.outsideTests = `typeorm-locking: outside the tests of ${testPath}`;
    this.ran = new Set();
    this.done = false;
  }

  /**
   * Called with every jest-circus event before Stryker's own handler (which sets the running
   * test's id on test_start and clears it on test_done).
   * @param {{ currentTestId?: string, mutantCoverage?: { perTest: Record<string, Record<string, number>> } }} stryker
   */
  handle(event, stryker) {
    if (this.done) return;
    if (event.name === "test_done") this.ran.add(fullName(event.test));
    if (event.name === "run_finish") {
      this.done = true;
      stryker.currentTestId = undefined;
      this.hand(stryker.mutantCoverage?.perTest);
      return;
    }
    // Between tests (and before the first): count what runs under this file.
    if (event.name !== "test_start" && stryker.currentTestId === undefined) stryker.currentTestId = this.outsideTests;
  }

  /** Counts what ran outside the tests, and what each test covered, for every later test of the file that ran. */
  hand(perTest) {
    if (!perTest) return;
    const seen = { ...perTest[this.outsideTests] };
    delete perTest[this.outsideTests];
    // `ran` holds the tests in the order they ran (test_done).
    for (const test of this.ran) {
      const own = perTest[test] ?? {};
      perTest[test] = own;
      const before = { ...seen };
      for (const mutant of Object.keys(own)) seen[mutant] = 1;
      for (const mutant of Object.keys(before)) own[mutant] ??= 1;
    }
  }
}

module.exports = { FileCoverage, fullName };
