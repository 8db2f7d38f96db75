// `npm run test:mutation:scores [-- report.json ...] [--check]`: the table of scores per file that
// docs/testing.md holds. By default it reads the committed results of every mutant
// (mutation/stryker-incremental.json, which each `npm run test:mutation` updates); given reports
// (Stryker's JSON reports, or other incremental files), it reads those instead, and where two hold
// the same file, the newer one's mutants of it count.
// Score = (killed + timed out) / (killed + timed out + survived + not covered), as Stryker counts
// it; mutants that do not compile, and those an ignorer left out, are not counted.
//
// --check exits 1 when a file under the paths the issue names is below 90 %, src/ is below 85 %,
// a file of src/ has no result at all (a file never run is not a file that passed), or a report is
// a cut run's checkpoint.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import ts from "typescript";

const STRICT = [/^src\/typeorm\//, /^src\/retry\.ts$/, /^src\/offline\//, /^src\/http\//];
const STRICT_MIN = 90;
const OVERALL_MIN = 85;
const BASELINE = "mutation/stryker-incremental.json";

const args = process.argv.slice(2);
const check = args.includes("--check");
let reports = args.filter((arg) => !arg.startsWith("--"));
if (reports.length === 0) reports = [BASELINE];
// Oldest first, so a newer report's copy of a file replaces an older one's.
reports.sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);

const files = new Map();
const partial = [];
for (const report of reports) {
  const { files: reported, checkpoint } = JSON.parse(readFileSync(report, "utf8"));
  for (const [file, { mutants }] of Object.entries(reported)) files.set(file, { report, mutants });
  // Written while a run was under way (scripts/stryker/checkpoint-reporter.mjs): the mutants it
  // had not reached yet are missing, so its scores are not a run's.
  if (checkpoint)
    partial.push(`${report}: a run cut at ${checkpoint.results} of ${checkpoint.of} results (${checkpoint.at})`);
}

const COUNTED = ["Killed", "Timeout", "Survived", "NoCoverage"];
// A mutant reached while the test files load or in their beforeAll (Stryker: "static") that
// Stryker reports Survived with no test run was not measured: see docs/testing.md. It is counted
// as survived in the score, as Stryker counts it, and shown apart so it can be checked by hand.
const unmeasured = (mutant) => mutant.status === "Survived" && mutant.static === true && !mutant.testsCompleted;
const count = (mutants) => {
  const by = Object.fromEntries([...COUNTED, "CompileError"].map((status) => [status, 0]));
  for (const mutant of mutants) if (mutant.status in by) by[mutant.status] += 1;
  const detected = by.Killed + by.Timeout;
  const valid = detected + by.Survived + by.NoCoverage;
  return {
    ...by,
    valid,
    unmeasured: mutants.filter(unmeasured).length,
    score: valid === 0 ? 100 : (100 * detected) / valid,
  };
};
const percent = (score) => `${Math.floor(score * 10) / 10} %`;

const rows = [...files.entries()].sort(([a], [b]) => a.localeCompare(b));
const below = [];
console.log("| file | killed | timed out | survived (no test ran) | no coverage | not compiling | score |");
console.log("|---|---|---|---|---|---|---|");
const all = [];
for (const [file, { mutants }] of rows) {
  const c = count(mutants);
  all.push(...mutants);
  const strict = STRICT.some((pattern) => pattern.test(file));
  if (strict && c.score < STRICT_MIN) below.push(`${file} ${percent(c.score)} (< ${STRICT_MIN} %)`);
  console.log(
    `| \`${file}\` | ${c.Killed} | ${c.Timeout} | ${c.Survived}${c.unmeasured ? ` (${c.unmeasured})` : ""} | ${c.NoCoverage} | ${c.CompileError} | ${strict ? "**" : ""}${percent(c.score)}${strict ? "**" : ""} |`,
  );
}
const total = count(all);
console.log(
  `| all files above | ${total.Killed} | ${total.Timeout} | ${total.Survived} (${total.unmeasured}) | ${total.NoCoverage} | ${total.CompileError} | ${percent(total.score)} |`,
);
if (total.score < OVERALL_MIN) below.push(`all files ${percent(total.score)} (< ${OVERALL_MIN} %)`);
// Files with no mutant at all (types only) never appear in a report; the others must.
const unmeasuredFiles = sourceFiles("src").filter((file) => !files.has(file) && hasCode(file));
if (unmeasuredFiles.length) below.push(`not measured: ${unmeasuredFiles.join(", ")}`);
below.push(...partial.map((report) => `partial: ${report}; run \`npm run test:mutation\` again to finish it`));
console.log(`\nreports: ${reports.join(", ")}`);
if (below.length) console.log(`below the bar:\n  ${below.join("\n  ")}`);
if (check && below.length) process.exit(1);

function sourceFiles(folder) {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const file = path.posix.join(folder, entry.name);
    if (entry.isDirectory()) return sourceFiles(file);
    return file.endsWith(".ts") && !file.endsWith(".d.ts") ? [file] : [];
  });
}

/** Whether a file holds anything Stryker could mutate: more than imports, re-exports and types. */
function hasCode(file) {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest);
  const declaresOnly = new Set([
    ts.SyntaxKind.ImportDeclaration,
    ts.SyntaxKind.ExportDeclaration,
    ts.SyntaxKind.InterfaceDeclaration,
    ts.SyntaxKind.TypeAliasDeclaration,
  ]);
  return source.statements.some((statement) => !declaresOnly.has(statement.kind));
}
