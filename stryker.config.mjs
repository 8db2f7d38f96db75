// `npm run test:mutation`: Stryker over src/ (docs/testing.md). Run it through
// scripts/test-mutation.mjs, which starts the databases once for all of Stryker's jest runs.
//
// The result of every mutant is committed: mutation/stryker-incremental.json. A run reuses each
// result whose code and covering tests did not change, and a run of part of src/ (`--mutate`)
// keeps the other files' results, so the full run accumulates over runs that each fit a sitting
// (the whole of src/ at once takes hours on a 2-core machine). Only a run over every test on the
// default databases (or more: adding MariaDB can only kill more) may write it: a run with
// LOCKING_MUTATION_TESTS or without one of the default databases must name its own report
// (LOCKING_MUTATION_REPORT), whose results stay under reports/.
const DEFAULT_DATABASES = ["sqlite", "postgres-embedded"];
const chosen = (process.env.LOCKING_DATABASES ?? DEFAULT_DATABASES.join(",")).split(",").map((name) => name.trim());
const named = process.env.LOCKING_MUTATION_REPORT;
const narrowed =
  Boolean(process.env.LOCKING_MUTATION_TESTS) || !DEFAULT_DATABASES.every((database) => chosen.includes(database));
if (narrowed && !named) {
  throw new Error(
    "test:mutation: a run with LOCKING_MUTATION_TESTS or without SQLite and the embedded PostgreSQL would record its " +
      "survivors in the committed mutation/stryker-incremental.json; set LOCKING_MUTATION_REPORT=<name> to keep its " +
      "results apart.",
  );
}
const report = `reports/mutation/${named ?? "mutation"}`;

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
  plugins: [
    "@stryker-mutator/*",
    "./scripts/stryker/message-strings.mjs",
    "./scripts/stryker/jest-covering-files.mjs",
    "./scripts/stryker/checkpoint-reporter.mjs",
  ],
  ignorers: ["message-strings"],
  // What a test file runs outside its tests (at import, in a beforeAll: installLocking(), seeds) is
  // counted for that file's tests (scripts/stryker/file-coverage.js): without that, 44 % of a run's
  // mutants were "static" and ran against the whole suite. A mutant still static runs against
  // every test, with the suite's time as its timeout (ignoreStatic: false). With ignoreStatic on,
  // one also reached by some test bodies ran against those only, often none (on 2026-12-05, 31
  // were reported Survived with no test run; three applied by hand failed at once).
  ignoreStatic: false,
  // A shared 2-core machine; override with --concurrency.
  concurrency: 2,
  // A mutant times out (and counts as killed) past factor x its covering tests' time + timeoutMS +
  // the dry run's overhead. On a shared machine a run takes up to twice as long as the dry run did:
  // with Stryker's factor of 1.5, survivors covered by every test were reported as timeouts.
  timeoutFactor: 3,
  timeoutMS: 20_000,
  // The initial run is the whole jest suite with coverage, on a loaded machine.
  dryRunTimeoutMinutes: 40,
  // A rerun only tests the mutants whose code or covering tests changed (`--force` tests them all).
  incremental: true,
  incrementalFile: named ? `${report}-incremental.json` : "mutation/stryker-incremental.json",
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
  // "checkpoint" writes the incremental file every minute while a run is under way, so a run cut
  // short keeps what it measured and the next one resumes (scripts/stryker/checkpoint-reporter.mjs).
  reporters: ["html", "json", "clear-text", "progress", "checkpoint"],
  htmlReporter: { fileName: `${report}.html` },
  jsonReporter: { fileName: `${report}.json` },
};
