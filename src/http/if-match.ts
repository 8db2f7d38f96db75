/**
 * The `If-Match` request header (RFC 9110 §13.1.1): absent, `*`, or a list of entity tags. A
 * server evaluates it with the *strong* comparison (§8.8.3.2), so a weak tag never matches.
 */
import { versionOfOpaque } from "./etag";

/** One entity tag of an `If-Match` list, as sent. */
export interface EntityTag {
  weak: boolean;
  /** The opaque part, without quotes. */
  opaque: string;
}

/**
 * A parsed `If-Match` header.
 * - `absent`: no header (a route that requires one answers 428).
 * - `any`: `*`, "the resource exists, whatever its state".
 * - `tags`: the listed tags; the precondition holds when one is a strong tag of the current version.
 * - `invalid`: not the header's syntax; `reason` says what is wrong. It matches nothing; the
 *   helpers (`checkIfMatch`, `requireIfMatch`) refuse it as `MalformedIfMatchError` (400).
 *
 * @example
 * ```ts
 * parseIfMatch('"6", "7"'); // { kind: "tags", tags: [{ weak: false, opaque: "6" }, { weak: false, opaque: "7" }] }
 * parseIfMatch("7");        // { kind: "invalid", header: "7", reason: "..." }
 * ```
 */
export type IfMatch =
  | { kind: "absent" }
  | { kind: "any" }
  | { kind: "tags"; tags: EntityTag[] }
  | { kind: "invalid"; header: string; reason: string };

/**
 * Parses `If-Match` as a Node or Express request has it (a string, a list of repeated header
 * lines, or `undefined`). Repeated lines are one comma-separated list (RFC 9110 §5.3); empty list
 * elements are ignored (§5.6.1). Anything else (bad syntax, a value that is not a string) is
 * `invalid` with the reason. One pass over the header, no backtracking: linear in its length.
 *
 * @example
 * ```ts
 * import { parseIfMatch } from "typeorm-locking";
 * parseIfMatch('"7"');      // { kind: "tags", tags: [{ weak: false, opaque: "7" }] }
 * parseIfMatch("*");        // { kind: "any" }
 * parseIfMatch(undefined);  // { kind: "absent" }
 * ```
 */
export function parseIfMatch(header: string | readonly string[] | undefined): IfMatch {
  if (header === undefined) return { kind: "absent" };
  let joined: string;
  if (typeof header === "string") joined = header;
  else if (Array.isArray(header) && header.every((line) => typeof line === "string")) joined = header.join(", ");
  else {
    // Stryker disable next-line StringLiteral: the reason's wording, and the header as the error shows it (docs/testing.md)
    return { kind: "invalid", header: `(${typeof header})`, reason: "the header is not text" };
  }
  const value = trimOws(joined);
  if (value === "") return { kind: "absent" };
  if (value === "*") return { kind: "any" };
  const parsed = parseTagList(value);
  if (typeof parsed === "string") return { kind: "invalid", header: value, reason: parsed };
  return parsed.length > 0 ? { kind: "tags", tags: parsed } : { kind: "absent" };
}

/**
 * Whether `If-Match` holds for a resource at `currentVersion` (`undefined`: the resource does not
 * exist). Strong comparison: weak tags never match; `*` matches any existing resource; an
 * absent header holds (whether one is required is the route's decision, see `requireIfMatch`).
 *
 * @example
 * ```ts
 * import { ifMatchHolds, parseIfMatch } from "typeorm-locking";
 * ifMatchHolds(parseIfMatch('"7"'), 7);   // true
 * ifMatchHolds(parseIfMatch('W/"7"'), 7); // false: weak tags never match If-Match
 * ifMatchHolds(parseIfMatch("*"), undefined); // false: nothing to match
 * ```
 */
export function ifMatchHolds(ifMatch: IfMatch, currentVersion: number | undefined): boolean {
  switch (ifMatch.kind) {
    case "absent":
      return true;
    case "any":
      return currentVersion !== undefined;
    case "invalid":
      return false;
    case "tags":
      return currentVersion !== undefined && ifMatch.tags.some((tag) => versionOfTag(tag) === currentVersion);
  }
}

/** The version a listed tag names, or `undefined` for a weak or foreign one (neither ever matches). @internal */
export function versionOfTag(tag: EntityTag): number | undefined {
  return tag.weak ? undefined : versionOfOpaque(tag.opaque);
}

const SP = 0x20;
const HTAB = 0x09;
const COMMA = 0x2c;
const DQUOTE = 0x22;

/** Strips optional whitespace (space and tab only, RFC 9110 §5.6.3) at both ends. */
function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isOws(value.charCodeAt(start))) start++;
  while (end > start && isOws(value.charCodeAt(end - 1))) end--;
  return value.slice(start, end);
}

function isOws(code: number): boolean {
  return code === SP || code === HTAB;
}

/** etagc = %x21 / %x23-7E / obs-text (%x80-FF): no space, no DQUOTE, no control character. */
function isEtagChar(code: number): boolean {
  return code === 0x21 || (code >= 0x23 && code <= 0x7e) || (code >= 0x80 && code <= 0xff);
}

/**
 * `1#entity-tag` with empty elements allowed (RFC 9110 §5.6.1, §8.8.3):
 * entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE. Returns the tags, or what is wrong as a sentence.
 */
function parseTagList(value: string): EntityTag[] | string {
  const tags: EntityTag[] = [];
  const length = value.length;
  let i = 0;
  for (;;) {
    while (i < length && (isOws(value.charCodeAt(i)) || value.charCodeAt(i) === COMMA)) i++;
    if (i >= length) return tags;
    const start = i;
    let weak = false;
    if (value.startsWith("W/", i)) {
      weak = true;
      i += 2;
    }
    if (value.charCodeAt(i) !== DQUOTE) {
      // Stryker disable next-line StringLiteral: the reason's wording
      if (value.charCodeAt(start) === 0x2a) return "* stands alone; it cannot be part of a list of entity tags";
      // Stryker disable next-line StringLiteral,ArithmeticOperator: the reason's wording
      return `an entity tag is quoted ("7" or W/"7"), but character ${i + 1} is ${describeChar(value, i)}`;
    }
    i++;
    const opaqueStart = i;
    while (i < length && value.charCodeAt(i) !== DQUOTE) {
      if (!isEtagChar(value.charCodeAt(i))) {
        // Stryker disable next-line StringLiteral,ArithmeticOperator: the reason's wording
        return `character ${i + 1}, ${describeChar(value, i)}, is not allowed inside an entity tag`;
      }
      i++;
    }
    // Stryker disable next-line StringLiteral: the reason's wording
    if (i >= length) return `the entity tag opened at character ${opaqueStart} has no closing quote`;
    tags.push({ weak, opaque: value.slice(opaqueStart, i) });
    i++;
    while (i < length && isOws(value.charCodeAt(i))) i++;
    if (i < length && value.charCodeAt(i) !== COMMA) {
      // Stryker disable next-line StringLiteral,ArithmeticOperator: the reason's wording
      return `entity tags are separated by commas, but character ${i + 1} is ${describeChar(value, i)}`;
    }
  }
}

/** A character for an error message: printable ASCII as itself, anything else as U+XXXX. */
function describeChar(value: string, index: number): string {
  if (index >= value.length) return "the end of the header";
  const code = value.codePointAt(index) ?? 0;
  if (code > 0x20 && code < 0x7f) return `'${String.fromCharCode(code)}'`;
  return `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}
