/**
 * The `If-Match` request header (RFC 9110 §13.1.1): absent, `*`, or a list of entity tags. A
 * server evaluates it with the *strong* comparison (§8.8.3.2), so a weak tag never matches.
 */
import { versionOfETag } from "./etag";

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
 * - `invalid`: not the header's syntax; it matches nothing (412), as no tag can be read from it.
 *
 * @example
 * ```ts
 * parseIfMatch('"6", "7"'); // { kind: "tags", tags: [{ weak: false, opaque: "6" }, { weak: false, opaque: "7" }] }
 * ```
 */
export type IfMatch =
  | { kind: "absent" }
  | { kind: "any" }
  | { kind: "tags"; tags: EntityTag[] }
  | { kind: "invalid"; header: string };

// entity-tag = [ W/ ] DQUOTE *etagc DQUOTE ; etagc = %x21 / %x23-7E / obs-text (no DQUOTE, no space)
const ENTITY_TAG = /^\s*(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)/;

/**
 * Parses `If-Match` as a Node or Express request has it (a string, a list of repeated header
 * lines, or `undefined`). Repeated lines are one comma-separated list (RFC 9110 §5.3); empty list
 * elements are ignored (§5.6.1).
 *
 * @example
 * ```ts
 * parseIfMatch(req.headers["if-match"]);
 * parseIfMatch("*");        // { kind: "any" }
 * parseIfMatch(undefined);  // { kind: "absent" }
 * ```
 */
export function parseIfMatch(header: string | readonly string[] | undefined): IfMatch {
  if (header === undefined) return { kind: "absent" };
  const value = (typeof header === "string" ? header : header.join(", ")).trim();
  if (value === "") return { kind: "absent" };
  if (value === "*") return { kind: "any" };
  const tags: EntityTag[] = [];
  let rest = value;
  while (rest.length > 0) {
    const empty = /^\s*,/.exec(rest);
    if (empty) {
      rest = rest.slice(empty[0].length);
      continue;
    }
    const match = ENTITY_TAG.exec(rest);
    if (!match) return { kind: "invalid", header: value };
    tags.push({ weak: match[1] !== undefined, opaque: match[2] });
    rest = rest.slice(match[0].length);
  }
  return tags.length > 0 ? { kind: "tags", tags } : { kind: "absent" };
}

/**
 * Whether `If-Match` holds for a resource at `currentVersion` (`undefined`: the resource does not
 * exist). Strong comparison: weak tags never match; `*` matches any existing resource; an
 * absent header holds (whether one is required is the route's decision, see `requireIfMatch`).
 *
 * @example
 * ```ts
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
  return tag.weak ? undefined : versionOfETag(`"${tag.opaque}"`);
}
