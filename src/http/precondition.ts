import type { ObjectLiteral } from "typeorm";
import { heldVersionOf } from "../assert-version";
import { MalformedIfMatchError, PreconditionRequiredError, StaleVersionError } from "../errors";
import { raisedIn } from "../transaction-numbers";
import { versionOfOpaque } from "./etag";
import { type IfMatch, ifMatchHolds, parseIfMatch, versionOfTag } from "./if-match";

/**
 * Evaluates `If-Match` against a freshly loaded entity, before anything is changed: throws
 * {@link StaleVersionError} (HTTP 412) when it does not hold, {@link PreconditionRequiredError}
 * (HTTP 428) when it is absent and `required`, {@link MalformedIfMatchError} (HTTP 400) when it
 * cannot be evaluated (see {@link readIfMatch}). The later `save()` is still checked at write
 * time, so a change slipping in after this check fails as `OptimisticLockError` (HTTP 409).
 *
 * A weak tag (`W/"7"`) is well formed but never matches (RFC 9110 §13.1.1 prescribes the strong
 * comparison): 412, with a message saying to send the strong ETag; as no version was named, the
 * error's `expectedVersion` is -1.
 *
 * @example
 * ```ts
 * const order = await orders.findOneByOrFail({ id });
 * checkIfMatch(order, req.headers["if-match"], { required: true });
 * order.address = req.body.address;
 * await orders.save(order);
 * ```
 */
export function checkIfMatch(
  entity: ObjectLiteral,
  header: string | readonly string[] | undefined,
  options: { required?: boolean } = {},
): void {
  const ifMatch = readIfMatch(header);
  // Stryker disable next-line StringLiteral: names the caller in a message
  const { entityName, id, version } = heldVersionOf(entity, "checkIfMatch()");
  if (ifMatch.kind === "absent") {
    if (options.required) throw new PreconditionRequiredError(`A change of ${entityName}`);
    return;
  }
  if (ifMatchHolds(ifMatch, version)) return;
  const tags = ifMatch.kind === "tags" ? ifMatch.tags : [];
  let named: number | undefined;
  for (let i = 0; named === undefined && i < tags.length; i++) named = versionOfTag(tags[i]);
  const error = new StaleVersionError({
    entityName,
    id,
    expectedVersion: named ?? -1,
    actualVersion: version,
    operation: "request (If-Match)",
    // A version it names gets the mismatch message (behind or ahead of the row); weak tags only: below.
    detail:
      named === undefined
        ? `is at version ${version} (ETag "${version}"), which If-Match: ${describe(tags)} does not name`
        : undefined,
  });
  if (named === undefined) {
    // Only weak tags: no version was expected, so the usual "version N was expected" wording
    // would be wrong. Say what the client must change instead.
    error.message =
      `${entityName} is at version ${version} (ETag "${version}"); If-Match: ${describe(tags)} lists only weak ` +
      "tags, which never match If-Match (RFC 9110 §13.1.1 uses the strong comparison). Send the strong ETag " +
      "the resource was read with.";
  }
  throw raisedIn(undefined, error, "client");
}

/**
 * Parses `If-Match` and refuses what cannot be evaluated, as {@link MalformedIfMatchError}: bad
 * syntax (see `parseIfMatch`), and a strong tag that names no version (`"abc"`, `""`, `"07"`),
 * since this server's ETags are quoted versions (`versionETag`): a client sending another one
 * has a bug, not a stale copy. Weak tags are left in (they never match: 412).
 *
 * @example
 * ```ts
 * import { readIfMatch } from "typeorm-locking";
 * readIfMatch('"7"'); // { kind: "tags", tags: [{ weak: false, opaque: "7" }] }
 * readIfMatch("7");   // throws MalformedIfMatchError
 * ```
 */
export function readIfMatch(header: string | readonly string[] | undefined): IfMatch {
  const ifMatch = parseIfMatch(header);
  if (ifMatch.kind === "invalid") throw new MalformedIfMatchError(ifMatch.header, ifMatch.reason);
  if (ifMatch.kind === "tags") {
    const foreign = ifMatch.tags.find((tag) => !tag.weak && versionOfOpaque(tag.opaque) === undefined);
    if (foreign) {
      const tag = foreign.opaque.length > 40 ? `${foreign.opaque.slice(0, 40)}...` : foreign.opaque;
      throw new MalformedIfMatchError(
        typeof header === "string" ? header : (header ?? []).join(", "),
        `the entity tag "${tag}" names no version: this server's ETags are quoted version numbers such as "7"`,
      );
    }
  }
  return ifMatch;
}

/** "PUT /orders/1", what a 428 names (frameworks' request objects may lack either part). @internal */
export function describeRequest(method: string | undefined, url: string | undefined): string {
  return `${method ?? "This request"} ${url ?? ""}`.trim();
}

function describe(tags: readonly { weak: boolean; opaque: string }[]): string {
  if (tags.length === 0) return "*";
  const shown = tags.slice(0, 5).map((t) => `${t.weak ? "W/" : ""}"${t.opaque.slice(0, 40)}"`);
  return tags.length > 5 ? `${shown.join(", ")}, ... (${tags.length} tags)` : shown.join(", ");
}
