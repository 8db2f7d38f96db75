// `npm run test:mutation:scores [-- report.json ...] [--check]`: the table of scores per file that
// docs/testing.md holds, from Stryker's JSON reports (default: every reports/mutation/*.json).
//
// A run is often split (src/typeorm/, then the rest) and reruns narrowed to one file write reports
// of their own: where two reports hold the same file, the newer report's mutants of it count.
// Score = (killed + timed out) / (killed + timed out + survived + not covered), as Stryker counts
// it; mutants that do not compile, and those an ignorer left out, are not counted.
//
// --check exits 1 when a file under the paths the issue names is below 90 %, or src/ below 85 %.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

const STRICT = [/^src\/typeorm\//, /^src\/retry\.ts$/, /^src\/offline\//, /^src\/http\//];
const STRICT_MIN = 90;
const OVERALL_MIN = 85;

const args = process.argv.slice(2);
const check = args.includes("--check");
let reports = args.filter((arg) => !arg.startsWith("--"));
if (reports.length === 0) {
  const folder = "reports/mutation";
  reports = readdirSync(folder)
    .filter((name) => name.endsWith(".json") && !name.endsWith("-incremental.json"))
    .map((name) => path.join(folder, name));
}
// Oldest first, so a newer report's copy of a file replaces an older one's.
reports.sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);

const files = new Map();
for (const report of reports) {
  const { files: reported } = JSON.parse(readFileSync(report, "utf8"));
  for (const [file, { mutants }] of Object.entries(reported)) files.set(file, { report, mutants });
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
console.log(`\nreports: ${reports.join(", ")}`);
if (below.length) console.log(`below the bar:\n  ${below.join("\n  ")}`);
if (check && below.length) process.exit(1);
