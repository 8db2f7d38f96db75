/**
 * Hostile inputs for the public entry points (issue 18, part 3), as fast-check arbitraries, and
 * the tally of what each entry point answered: how many inputs it was given and which outcomes
 * (returned, or which error class) they had. The tallies of every hostile-input test file are
 * merged into test-results/hostile-input.json and printed as a table after each file.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { LockingError, LockMode } from "../../../src";
import { bySize } from "../profile";

/** Inputs per entry point that touches no database: 1,000 in the full profile, 100 in the reduced one. */
export const PURE_RUNS = bySize(1000, 100);
/** Inputs per entry point and database: 1,000 in the full profile, a quick sample in the reduced one. */
export const DB_RUNS = bySize(1000, 10);

/** Unhandled errors are what the fuzzers hunt: anything thrown that is not the library's own. */
export function isUnhandled(error: unknown): boolean {
  return !(error instanceof LockingError);
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** A string that may hold anything: SQL metacharacters, control characters, NUL, unicode, lone surrogates. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "\t",
    "\u0000",
    "a\u0000b",
    "'",
    '"',
    "`",
    "\\",
    "%",
    "_",
    "'; DROP TABLE tl_order; --",
    '" OR 1=1 --',
    "1' OR '1'='1",
    "$1",
    ":id",
    "?",
    "/*",
    "*/",
    "\r\n",
    "\u{1F600}",
    "\u00e9",
    "e\u0301",
    "\u202e",
    "\ufeff",
    "\ud800",
    "\udfff",
    "x\ud800y",
    "A".repeat(10_000),
    "\u{1F600}".repeat(5_000),
    "'".repeat(10_000),
    "NaN",
    "null",
    "undefined",
    "[object Object]",
  ),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: fc.constantFrom("'", '"', ";", "-", "\\", "\u0000", "%", "a", " "), maxLength: 30 }),
  fc.string({ unit: "binary-ascii", minLength: 90, maxLength: 260 }),
);

/** Values that are no string at all, where the API takes one. */
export const notAString: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(undefined, null, 0, 1, -1, Number.NaN, Number.POSITIVE_INFINITY, true, false, 1n, {}, [], ["a"]),
  fc.constant(Symbol("hostile")),
  fc.constant(() => "x"),
  fc.constant(Object.create(null) as unknown),
  circular(),
  fc.anything({ withBigInt: true, withNullPrototype: true }),
);

/**
 * What a client or caller may send as a version: NaN, -1, 2^53, "1", null, objects, bigint,
 * circular structures, strings of every shape, doubles, huge integers.
 */
export const hostileVersion: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    Number.NaN,
    -1,
    -0,
    2 ** 53,
    2 ** 53 - 1,
    2 ** 53 + 2,
    -(2 ** 53),
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    1.5,
    Number.MIN_VALUE,
    Number.MAX_VALUE,
    "1",
    "",
    " ",
    "01",
    "1e3",
    "0x10",
    "-1",
    "+1",
    "1.0",
    "١",
    "9".repeat(16),
    "9".repeat(400),
    "1; DROP TABLE tl_order",
    null,
    undefined,
    {},
    [],
    [1],
    { valueOf: () => 1 },
    { toString: () => "1" },
    true,
    1n,
    -1n,
    2n ** 64n,
    new Date(1),
    new Number(1),
  ),
  fc.constant(Symbol("version")),
  circular(),
  fc.integer(),
  fc.integer({ min: -3, max: 12 }),
  fc.double(),
  fc.bigInt(),
  fc.nat().map(String),
  hostileString,
  fc.anything({ withBigInt: true, withNullPrototype: true, withBoxedValues: true }),
);

/** Every lock mode, and what is not one. */
export const hostileMode: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...Object.values(LockMode)),
  fc.constantFrom(...Object.keys(LockMode)),
  fc.constantFrom(
    "pessimistic_write",
    "PESSIMISTIC_WRITE ",
    "FOR UPDATE",
    "PESSIMISTIC_WRITE; DROP TABLE tl_order",
    "",
    null,
    undefined,
    1n,
    0,
    {},
  ),
  hostileString,
  notAString,
);

/** Lock timeouts: negative, NaN, Infinity, fractions, huge, wrong types, and the valid ones. */
export const hostileTimeout: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    0,
    -0,
    -1,
    -2,
    -3,
    1,
    500,
    1000,
    1500,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    0.5,
    1e-300,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 53,
    1e21,
    Number.MAX_VALUE,
    "1000",
    "0",
    null,
    true,
    1n,
    {},
    [1000],
  ),
  fc.integer({ min: -5, max: 3000 }),
  fc.double(),
  notAString,
);

const onLocked: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom("wait", "nowait", "skip", "NOWAIT", "Skip", "", "wait; DROP TABLE tl_order", null, 1n),
  notAString,
  hostileString,
);

/** Options of lock(), withLockMode(), lockQuery(), @Lock, lockInOrder: objects of every shape, and non-objects. */
export const hostileLockOptions: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ timeout: hostileTimeout, onLocked }, { requiredKeys: [] }) },
  { weight: 2, arbitrary: fc.record({ timeout: fc.constantFrom(0, 1, 100, 1000, -2) }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.constantFrom(undefined, null, 1000, 0, "nowait", [], 1n, true) },
  { weight: 1, arbitrary: notAString },
);

/** A circular object, which JSON.stringify cannot print. */
function circular(): fc.Arbitrary<unknown> {
  return fc.constant(null).map(() => {
    const value: Record<string, unknown> = { key: 1 };
    value.self = value;
    return value;
  });
}

// ---------------------------------------------------------------------------------------------
// If-Match headers

const tag = fc.oneof(
  fc.nat({ max: 20 }).map((n) => `"${n}"`),
  fc.nat({ max: 20 }).map((n) => `W/"${n}"`),
  fc.constantFrom('"abc"', '""', '"07"', '"-1"', '"1.5"', '"99999999999999999"', '"\u{1F600}"', 'w/"3"', "W/3"),
  fc.string({ unit: "binary-ascii", maxLength: 12 }).map((s) => `"${s}"`),
);

/**
 * `If-Match` as a client may send it: well formed (a list of strong and weak tags, `*`), and
 * malformed (unquoted, unbalanced, control characters, `*` in a list), 1 MB long, 1,000 tags,
 * unicode, repeated header lines (arrays), and values that are not text.
 */
export const hostileIfMatch: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 20, arbitrary: fc.array(tag, { minLength: 1, maxLength: 6 }).map((tags) => tags.join(", ")) },
  { weight: 5, arbitrary: fc.array(tag, { minLength: 1, maxLength: 4 }) },
  {
    weight: 5,
    arbitrary: fc.constantFrom(
      "*",
      " * ",
      '*, "3"',
      '"3", *',
      "3",
      '"3',
      '3"',
      '"3" "4"',
      '"3";"4"',
      "W/",
      'W/ "3"',
      ",",
      " , ,",
      "",
      "\u0000",
      '"\u0000"',
      '"3"\r\n',
      '"\u00ff"',
      "\u{1F600}",
      '"\u{1F600}"',
      '"3"'.repeat(3),
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "3".repeat(1024 * 1024),
      `"${"3".repeat(1024 * 1024)}"`,
      `"${"a".repeat(1024 * 1024)}`,
      `${",".repeat(1024 * 1024)}"3"`,
      Array.from({ length: 1000 }, (_, i) => `"${i + 10}"`).join(", "),
      `${Array.from({ length: 999 }, (_, i) => `"${i + 10}"`).join(", ")}, "3"`,
      Array.from({ length: 1000 }, (_, i) => `W/"${i}"`).join(","),
    ),
  },
  { weight: 10, arbitrary: hostileString },
  {
    weight: 5,
    arbitrary: fc.string({ unit: fc.constantFrom('"', "W", "/", ",", " ", "3", "*", "\t"), maxLength: 20 }),
  },
  { weight: 5, arbitrary: notAString },
);

// ---------------------------------------------------------------------------------------------
// Tally

/** What one entry point was given and answered. */
export interface EntryPointTally {
  inputs: number;
  /** "ok" (returned), an HTTP status ("400"), or the class name of the error thrown. */
  outcomes: Record<string, number>;
}

const tallies = new Map<string, EntryPointTally>();

/** Counts one input of `entryPoint` and its outcome. */
export function count(entryPoint: string, outcome: string): void {
  const tally = tallies.get(entryPoint) ?? { inputs: 0, outcomes: {} };
  tally.inputs++;
  tally.outcomes[outcome] = (tally.outcomes[outcome] ?? 0) + 1;
  tallies.set(entryPoint, tally);
}

/** The outcome name of a thrown value: its class name, or "ok" for undefined. */
export function outcomeOf(error: unknown): string {
  if (error === undefined) return "ok";
  return error instanceof Error ? error.constructor.name : typeof error;
}

/** The tallies of this file, by entry point. */
export function talliesOfThisFile(): ReadonlyMap<string, EntryPointTally> {
  return tallies;
}

/**
 * Merges this file's tallies into test-results/hostile-input.json (or LOCKING_HOSTILE_RESULTS; keyed by TypeORM line,
 * database and entry point, so a rerun replaces its own rows) and prints them as a table.
 */
export function writeTallies(scope: string): void {
  const line = (globalThis as { TYPEORM_LINE?: string }).TYPEORM_LINE ?? "typeorm";
  const file =
    process.env.LOCKING_HOSTILE_RESULTS ?? join(__dirname, "..", "..", "..", "test-results", "hostile-input.json");
  mkdirSync(join(file, ".."), { recursive: true });
  let all: Record<string, EntryPointTally & { line: string; scope: string; entryPoint: string }> = {};
  try {
    all = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    all = {};
  }
  const rows: string[] = [];
  for (const [entryPoint, tally] of tallies) {
    all[`${line} | ${scope} | ${entryPoint}`] = { line, scope, entryPoint, ...tally };
    const outcomes = Object.entries(tally.outcomes)
      .sort((a, b) => b[1] - a[1])
      .map(([name, n]) => `${name} ${n}`)
      .join(", ");
    rows.push(`| ${entryPoint} | ${tally.inputs} | ${outcomes} |`);
  }
  writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
  tallies.clear();
  if (process.env.LOCKING_HOSTILE_QUIET !== "1") {
    console.log(
      `Hostile input, ${line}, ${scope}:\n| entry point | inputs | outcomes |\n|---|---|---|\n${rows.join("\n")}`,
    );
  }
}

/** Runs `work` and returns what it threw (undefined if it returned). */
export async function thrownBy(work: () => unknown): Promise<unknown> {
  try {
    await work();
    return undefined;
  } catch (error) {
    return error === undefined ? new Error("undefined was thrown") : error;
  }
}

/** Runs `work` synchronously and returns what it threw (undefined if it returned). */
export function thrownBySync(work: () => unknown): unknown {
  try {
    work();
    return undefined;
  } catch (error) {
    return error === undefined ? new Error("undefined was thrown") : error;
  }
}

/** A short printable form of an input, for assertion messages. */
export function show(value: unknown): string {
  try {
    if (typeof value === "bigint") return `${value}n`;
    if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value);
    const json = JSON.stringify(value);
    if (json !== undefined) return json.length > 80 ? `${json.slice(0, 80)}...` : json;
  } catch {
    // fall through
  }
  return String(typeof value === "symbol" ? value.toString() : Object.prototype.toString.call(value));
}
