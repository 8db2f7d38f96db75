// Which mutants the message rule (message-strings.mjs) ignores, as Stryker's own instrumenter
// decides it: `node scripts/stryker/ignored-mutants.mjs src/a.ts [src/b.ts ...]` prints one JSON
// line per mutant, { file, line, column, mutator, ignored }. Without running a mutation run, it
// shows what a change to the rule or to a message does; test/mutation-message-rule.test.ts runs it.
//
// Through the instrumenter, not a plain babel walk: the instrumenter places each node's mutants
// when it leaves the node, so the code a rule looks at above the current node is already
// rewritten (a plain walk showed a rule seeing a helper's messages that a run did not).
import { readFileSync } from "node:fs";
import path from "node:path";
import { Instrumenter } from "@stryker-mutator/instrumenter";
import { strykerPlugins } from "./message-strings.mjs";

const quiet = { debug() {}, info() {}, warn: console.warn, error: console.error, isDebugEnabled: () => false };
const files = process.argv.slice(2).map((name) => ({ name, mutate: true, content: readFileSync(name, "utf8") }));
const { mutants } = await new Instrumenter(quiet).instrument(files, {
  plugins: null,
  ignorers: [strykerPlugins[0].value],
  excludedMutations: [],
  noHeader: true,
});
for (const mutant of mutants) {
  const { start } = mutant.location;
  console.log(
    JSON.stringify({
      file: path.relative(process.cwd(), mutant.fileName),
      line: start.line + 1,
      column: start.column + 1,
      mutator: mutant.mutatorName,
      replacement: mutant.replacement,
      ignored: mutant.status === "Ignored",
    }),
  );
}
