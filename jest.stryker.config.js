// The jest run of `npm run test:mutation` (stryker.config.mjs): one TypeORM line (1.x) and the
// databases scripts/test-mutation.mjs selects (LOCKING_DATABASES: SQLite and the embedded
// PostgreSQL by default), since Stryker runs the covering tests once per mutant.
//
// LOCKING_MUTATION_TESTS (comma-separated test file names without `.test.ts`, e.g.
// `retry,retry-options`) narrows the tests to those files, for a quick run on one source file;
// the scores of docs/testing.md come from runs over every test.
//
// Not run: the tests of the package and the docs (they build or compile everything and check no
// behaviour of src/ that the behaviour tests do not).
const base = require("./jest.config.js");

const typeorm1 = base.projects.find((project) => project.displayName === "typeorm-1");
const only = (process.env.LOCKING_MUTATION_TESTS ?? "")
  .split(",")
  .map((name) => name.trim())
  .filter(Boolean);

/** @type {import('jest').Config} */
module.exports = {
  ...typeorm1,
  testMatch: only.length ? only.map((name) => `<rootDir>/test/${name}.test.ts`) : typeorm1.testMatch,
  testPathIgnorePatterns: [
    ...typeorm1.testPathIgnorePatterns,
    "<rootDir>/test/docs-compile.test.ts",
    "<rootDir>/test/package.test.ts",
  ],
  transform: {
    // Transpile only: Stryker's TypeScript checker has already rejected the mutants that do not
    // compile, and a full type-check of the program per jest run would cost more than the tests.
    "^.+\\.ts$": ["ts-jest", { tsconfig: "<rootDir>/tsconfig.json", isolatedModules: true }],
  },
  // A mutant's run loads only the test files its covering tests are in, and stops at its first
  // failed test (scripts/stryker/).
  testSequencer: "<rootDir>/scripts/stryker/covering-files-sequencer.js",
  // An absolute path: Stryker loads the environment itself, without resolving <rootDir>.
  testEnvironment: `${__dirname}/scripts/stryker/bail-environment.js`,
  // ... and loads no test file after that failure.
  runner: `${__dirname}/scripts/stryker/bail-runner.js`,
  maxWorkers: 1,
  testTimeout: base.testTimeout,
  globalSetup: base.globalSetup,
  globalTeardown: base.globalTeardown,
};
