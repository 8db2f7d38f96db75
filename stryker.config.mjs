// `npm run test:mutation`: Stryker over src/ (docs/testing.md). Run it through
// scripts/test-mutation.mjs, which starts the databases once for all of Stryker's jest runs.
// LOCKING_MUTATION_REPORT names the reports (default `mutation`): a run on a few files with
// narrowed tests keeps its own incremental file and does not overwrite the full run's.
const report = `reports/mutation/${process.env.LOCKING_MUTATION_REPORT ?? "mutation"}`;

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: "npm",
  // Stryker's jest runner, loading only the test files that hold a mutant's covering tests, with
  // databases of its own per runner process: see scripts/stryker/jest-covering-files.mjs.
  testRunner: "jest-covering-files",
  // One TypeORM line, the databases LOCKING_DATABASES selects: see jest.stryker.config.js.
  jest: { configFile: "jest.stryker.config.js", enableFindRelatedTests: false },
  // Mutants that do not compile are discarded before any test runs.
  checkers: ["typescript"],
  tsconfigFile: "tsconfig.json",
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  // Each mutant runs only the tests that reach it.
  coverageAnalysis: "perTest",
  mutate: ["src/**/*.ts"],
  // No mutants in the wording of error messages: see scripts/stryker/message-strings.mjs.
  plugins: ["@stryker-mutator/*", "./scripts/stryker/message-strings.mjs", "./scripts/stryker/jest-covering-files.mjs"],
  ignorers: ["message-strings"],
  // A mutant reached while the test files start (at import, or in a beforeAll: installLocking(),
  // mostly) is "static": Stryker runs it against every test, with the whole suite's time as its
  // timeout, stopping at the first failure (scripts/stryker/). With ignoreStatic, one also reached
  // by some test bodies ran against those only: often not the tests that fail, and often none at
  // all (what an afterAll reaches is counted for the test that started last, one of a database not
  // selected, skipped). On 2026-12-05, 31 mutants were reported Survived with no test run that way;
  // three applied by hand failed at once. The runs of that day had no mutant that was static only.
  ignoreStatic: false,
  // A shared 2-core machine; override with --concurrency.
  concurrency: 2,
  timeoutMS: 20_000,
  // The initial run is the whole jest suite with coverage, on a loaded machine.
  dryRunTimeoutMinutes: 40,
  // A rerun only tests the mutants whose code or covering tests changed.
  incremental: true,
  incrementalFile: `${report}-incremental.json`,
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
  reporters: ["html", "json", "clear-text", "progress"],
  htmlReporter: { fileName: `${report}.html` },
  jsonReporter: { fileName: `${report}.json` },
};
