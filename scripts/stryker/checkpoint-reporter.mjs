// A Stryker reporter that keeps a run's results while it runs, so a run cut short (a signal, the
// end of a sitting) keeps what it measured. Stryker writes its incremental file only when a run
// ends; a run over all of src/ takes longer than a sitting on a 2-core machine, and was lost twice.
//
// Every minute it writes the incremental file Stryker reads at the start of a run
// (`incrementalFile`) with the results known so far: those reused from the last run and those
// tested since. The next run reuses them by Stryker's own rules (a mutant's code unchanged, its
// killing test unchanged, no test added that covers a survivor) and tests the rest, so a run
// resumed at the same commit ends where one uncut run would have. Stryker reads that file before
// the dry run and writes its own at the end, after every mutant has been reported; this one
// writes only when a mutant is reported, so always in between. The file carries
// `checkpoint: { results, of, at }` until the run's own report replaces it, so a partial file is
// never taken for a full run's (scripts/stryker/score-table.mjs).
//
// The shape is the one Stryker writes (mutation-test-report-helper.js in @stryker-mutator/core):
// each mutated file's source and mutants, each test file's source and tests, test ids renumbered.
// Sources are read from the project when the plan is ready (after the dry run), so a file must
// not be edited while a run is under way (the run itself tests the sandbox's copy of the start).
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { commonTokens, declareClassPlugin, PluginKind } from "@stryker-mutator/api/plugin";

const EVERY_MS = Number(process.env.LOCKING_MUTATION_CHECKPOINT_MS ?? 60_000);

class CheckpointReporter {
  static inject = [commonTokens.options, commonTokens.logger];

  constructor(options, log) {
    this.file = options.incremental ? options.incrementalFile : undefined;
    this.thresholds = options.thresholds;
    this.log = log;
    this.tests = [];
    this.results = [];
    this.planned = 0;
    this.sources = new Map();
    this.lastWrite = Date.now();
  }

  onDryRunCompleted({ result }) {
    this.tests = result.tests ?? [];
  }

  onMutationTestingPlanReady({ mutantPlans }) {
    this.planned = mutantPlans.length;
    const files = new Set([
      ...mutantPlans.map(({ mutant }) => mutant.fileName),
      ...this.tests.map(({ fileName }) => fileName).filter(Boolean),
    ]);
    for (const file of files) this.sources.set(relative(file), readFileSync(file, "utf8"));
  }

  onMutantTested(result) {
    this.results.push(result);
    if (this.file && Date.now() - this.lastWrite >= EVERY_MS) this.write();
  }

  write() {
    this.lastWrite = Date.now();
    try {
      const report = this.report();
      mkdirSync(path.dirname(this.file), { recursive: true });
      const partial = `${this.file}.partial`;
      writeFileSync(partial, JSON.stringify(report, null, 2));
      renameSync(partial, this.file);
    } catch (error) {
      this.log.warn(`checkpoint: could not write ${this.file}: ${error.message}`);
    }
  }

  report() {
    const ids = new Map(this.tests.map((test, index) => [test.id, String(index)]));
    const testFiles = {};
    for (const test of this.tests) {
      const file = test.fileName ? relative(test.fileName) : "";
      testFiles[file] ??= { source: this.sources.get(file), tests: [] };
      testFiles[file].tests.push({
        id: ids.get(test.id),
        name: test.name,
        location: test.startPosition
          ? { start: { line: test.startPosition.line + 1, column: test.startPosition.column + 1 } }
          : undefined,
      });
    }
    const files = {};
    let results = 0;
    for (const { fileName, killedBy, coveredBy, ...mutant } of this.results) {
      const killers = killedBy?.map((id) => ids.get(id));
      // A killing test this run does not know (a test the last run had, carried over by Stryker)
      // cannot be checked next time: leave the mutant out, so the next run tests it again.
      if (killers?.includes(undefined)) continue;
      const file = relative(fileName);
      files[file] ??= { language: "typescript", source: this.sources.get(file), mutants: [] };
      files[file].mutants.push({
        ...mutant,
        killedBy: killers,
        coveredBy: coveredBy?.map((id) => ids.get(id)).filter((id) => id !== undefined),
      });
      results += 1;
    }
    return {
      files,
      schemaVersion: "1.0",
      thresholds: this.thresholds,
      testFiles,
      projectRoot: process.cwd(),
      checkpoint: { results, of: this.planned, at: new Date().toISOString() },
    };
  }
}

const relative = (file) => path.relative(process.cwd(), file).split(path.sep).join("/");

export const strykerPlugins = [declareClassPlugin(PluginKind.Reporter, "checkpoint", CheckpointReporter)];
