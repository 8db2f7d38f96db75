/**
 * The mutation run's message rule (scripts/stryker/message-strings.mjs) decides which mutants are
 * only the wording of an error message and so are not mutated (docs/testing.md). A message it
 * misses is mutated and then killed by a test that reads the wording, which the score counts as a
 * test that bites; a behaviour string it wrongly takes for a message is never tested. Both are
 * checked here through Stryker's own instrumenter, as a run decides them (scripts/stryker/
 * ignored-mutants.mjs): on 2026-12-07 a plain walk of the syntax tree saw the messages of a
 * `const refuse = (reason) => ...` helper that a run did not, because the run had already
 * rewritten the helper's declaration when it reached the calls below it.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

interface Decision {
  line: number;
  mutator: string;
  replacement: string;
  ignored: boolean;
}

const SOURCE = `
export class LockingConfigurationError extends Error {}

export function check(metadata: { name: string }, rows: unknown[], kind: string): void {
  const refuse = (reason: string) => new LockingConfigurationError(metadata.name + ": " + reason);
  if (rows.length === 0) throw refuse("give a non-empty list"); // MARK arrow-helper-above
  if (kind === "update") return; // MARK compared-operation
  handleOf(rows[0], "runHolding()"); // MARK defaulted-where
  later(kind, "tryLock() id"); // MARK hoisted-below
  record(kind, "remove"); // MARK operation-argument
  throw new LockingConfigurationError(\`unknown kind \${kind}\`); // MARK error-constructor
}

function handleOf(value: unknown, where = "OfflineLockManager"): string {
  if (typeof value !== "string") throw new LockingConfigurationError(where);
  return value;
}

function record(kind: string, operation: string): string[] {
  return [kind, operation];
}

function describeRows(rows: number): string {
  return \`of \${rows} rows\`; // MARK describe-body
}

function later(kind: string, what: string): string {
  return kind + what + describeRows(1);
}
`;

let decisions: Decision[];
let lines: string[];

beforeAll(() => {
  const dir = mkdtempSync(path.join(tmpdir(), "message-rule-"));
  try {
    const file = path.join(dir, "fixture.ts");
    writeFileSync(file, SOURCE);
    const script = path.join(__dirname, "..", "scripts", "stryker", "ignored-mutants.mjs");
    const output = execFileSync(process.execPath, [script, file], { encoding: "utf8" });
    decisions = output
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Decision);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  lines = SOURCE.split("\n");
});

/** The string mutants ("" for a text) on the line carrying `// MARK <mark>`. */
function stringMutantsAt(mark: string): Decision[] {
  const line = lines.findIndex((text) => text.includes(`// MARK ${mark}`)) + 1;
  expect(line).toBeGreaterThan(0);
  const found = decisions.filter((d) => d.line === line && d.mutator === "StringLiteral");
  expect(found.length).toBeGreaterThan(0);
  return found;
}

describe("the mutation run's message rule, as Stryker's instrumenter applies it", () => {
  test.each([
    ["arrow-helper-above", "a message given to a `const refuse = (reason) => ...` helper declared above the call"],
    ["defaulted-where", "an argument for a parameter `where = ...` (a default does not hide its name)"],
    ["hoisted-below", "an argument for a `what` parameter of a function declared below the call"],
    ["error-constructor", "the message of `new SomethingError(...)`"],
    ["describe-body", "the text a `describe...` function renders"],
  ])("ignores %s: %s", (mark) => {
    for (const decision of stringMutantsAt(mark)) expect(decision).toMatchObject({ ignored: true });
  });

  test.each([
    ["compared-operation", "an operation name the code compares"],
    ["operation-argument", "an argument for a parameter that is not a message's (`operation`)"],
  ])("mutates %s: %s", (mark) => {
    for (const decision of stringMutantsAt(mark)) expect(decision).toMatchObject({ ignored: false });
  });

  test("mutates the code around a message: the condition that throws it is behaviour", () => {
    const line = lines.findIndex((text) => text.includes("// MARK arrow-helper-above")) + 1;
    const conditions = decisions.filter((d) => d.line === line && d.mutator === "ConditionalExpression");
    expect(conditions.length).toBeGreaterThan(0);
    for (const decision of conditions) expect(decision.ignored).toBe(false);
  });
});
