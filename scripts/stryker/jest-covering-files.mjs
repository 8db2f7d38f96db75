// A Stryker test runner, `jest-covering-files`: Stryker's own jest runner, with two changes that
// make a mutant cheap and its result trustworthy (docs/testing.md, "Mutation testing").
//
// 1. Only the test files that hold a covering test are loaded. Stryker's jest runner narrows a
//    mutant's run by test name only (`--testNamePattern`), so jest still requires every test file
//    of the suite (each with TypeORM, its entities and the library) to find that most of them have
//    nothing to run: measured, 7 of the 8 s a one-test mutant took on an idle machine. The dry run
//    tells which file each test is in; a mutant's run hands its files to the jest sequencer
//    (scripts/stryker/covering-files-sequencer.js) through LOCKING_MUTATION_TEST_FILES, which drops
//    the others. A test name it does not know, or a mutant without per-test coverage, runs every
//    file, as before.
// 2. A mutant's run stops at its first failed test (scripts/stryker/bail-environment.js skips the
//    tests left, scripts/stryker/bail-runner.js loads no test file after it): one failure kills
//    it, and the covering tests left would only cost time.
// 3. A mutant that survived although some of its covering tests did not run is reported (a
//    warning naming them): a test whose title prints a value of the code under test (jest's `%s`
//    of a dialect object) is renamed by the mutant, so `--testNamePattern` no longer selects it.
//    Found on 2026-12-06: every mutant of a dialect's name or capabilities survived that way.
// 4. Each test runner process gets its own databases (see worker-databases.mjs): Stryker adds a
//    second test runner once its TypeScript checker is done, and two runners sharing one database
//    drop each other's tables mid-test, which kills mutants that no test would have killed.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { commonTokens, declareFactoryPlugin, PluginKind, tokens } from "@stryker-mutator/api/plugin";
import { strykerPlugins as jestPlugins } from "@stryker-mutator/jest-runner";
import { useWorkerDatabases } from "./worker-databases.mjs";

/** The variable covering-files-sequencer.js reads: a JSON array of test file paths. */
export const TEST_FILES_ENV = "LOCKING_MUTATION_TEST_FILES";
/** The variable bail-environment.js reads: which mutant run this is. */
const RUN_ENV = "LOCKING_MUTATION_RUN";
// In the sandbox (every runner's working directory), so a runner started after the dry run (a
// second runner, or one restarted after a timeout) knows the files too.
const TEST_FILES_OF_TESTS = ".locking-test-files.json";

const jestFactory = jestPlugins.find((plugin) => plugin.name === "jest").factory;

class CoveringFilesRunner {
  /** @type {Map<string, string[]> | undefined} test id -> the files holding a test of that name */
  filesOfTest;
  runs = 0;

  constructor(jest, log) {
    this.jest = jest;
    this.log = log;
  }

  capabilities() {
    return this.jest.capabilities();
  }

  async init() {
    await useWorkerDatabases(process.env.STRYKER_MUTATOR_WORKER ?? "0", this.log);
    await this.jest.init?.();
  }

  async dryRun(options) {
    const result = await this.jest.dryRun(options);
    if (result.status === "complete") {
      const files = {};
      for (const test of result.tests) {
        if (!test.fileName) continue;
        files[test.id] ??= [];
        if (!files[test.id].includes(test.fileName)) files[test.id].push(test.fileName);
      }
      writeFileSync(TEST_FILES_OF_TESTS, JSON.stringify(files));
      this.filesOfTest = new Map(Object.entries(files));
    }
    return result;
  }

  async mutantRun(options) {
    const files = this.coveringFiles(options.testFilter);
    if (files) process.env[TEST_FILES_ENV] = JSON.stringify(files);
    // Names this run for bail-environment.js, which skips the tests left after a failure.
    process.env[RUN_ENV] = String(++this.runs);
    try {
      const result = await this.jest.mutantRun(options);
      if (result.status === "survived") this.warnOfTestsNotRun(options);
      return result;
    } finally {
      delete process.env[TEST_FILES_ENV];
      delete process.env[RUN_ENV];
    }
  }

  /** Warns when a covering test of a surviving mutant did not run (bail-environment.js notes those that did). */
  warnOfTestsNotRun({ testFilter, activeMutant }) {
    const ran = globalThis[Symbol.for("typeorm-locking.mutation.ranTests")];
    if (!testFilter || ran?.run !== process.env[RUN_ENV]) return;
    const missing = testFilter.filter((id) => !ran.names.has(id));
    if (missing.length === 0) return;
    const { fileName, location } = activeMutant;
    this.log.warn(
      `Mutant ${activeMutant.id} (${path.relative(process.cwd(), fileName)}:${location.start.line + 1}) survived, ` +
        `but ${missing.length} of its ${testFilter.length} covering tests did not run (a title that prints what ` +
        `the mutant changed?): ${missing
          .slice(0, 3)
          .map((id) => JSON.stringify(id.slice(0, 120)))
          .join(", ")}`,
    );
  }

  dispose() {
    return this.jest.dispose?.();
  }

  /** The files holding the tests of `testFilter`; undefined (every file) when any is unknown. */
  coveringFiles(testFilter) {
    if (!testFilter) return undefined;
    if (!this.filesOfTest && existsSync(TEST_FILES_OF_TESTS)) {
      this.filesOfTest = new Map(Object.entries(JSON.parse(readFileSync(TEST_FILES_OF_TESTS, "utf8"))));
    }
    const files = new Set();
    for (const id of testFilter) {
      const found = this.filesOfTest?.get(id);
      if (!found) {
        this.log.warn(`No test file known for test "${id}": running every test file for this mutant.`);
        return undefined;
      }
      for (const file of found) files.add(path.resolve(file));
    }
    return [...files];
  }
}

function coveringFilesRunnerFactory(injector) {
  return new CoveringFilesRunner(
    jestFactory(injector),
    injector.resolve(commonTokens.getLogger)("jest-covering-files"),
  );
}
coveringFilesRunnerFactory.inject = tokens(commonTokens.injector);

export const strykerPlugins = [
  declareFactoryPlugin(PluginKind.TestRunner, "jest-covering-files", coveringFilesRunnerFactory),
];
