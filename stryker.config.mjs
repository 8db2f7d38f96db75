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
  // Module-level code runs once at import: its mutants would need the whole suite each.
  ignoreStatic: true,
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
