import type { ObjectLiteral } from "typeorm";
import { heldVersionOf } from "../assert-version";
import { PreconditionRequiredError, StaleVersionError } from "../errors";
import { type IfMatch, ifMatchHolds, parseIfMatch, versionOfTag } from "./if-match";

/**
 * Evaluates `If-Match` against a freshly loaded entity, before anything is changed: throws
 * {@link StaleVersionError} (HTTP 412) when it does not hold, {@link PreconditionRequiredError}
 * (HTTP 428) when it is absent and `required`. The later `save()` is still checked at write time,
 * so a change slipping in after this check fails as `OptimisticLockError` (HTTP 409).
 *
 * When the header names no version of ours (a weak tag, a foreign tag, bad syntax), the error's
 * `expectedVersion` is -1.
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
  const ifMatch = parseIfMatch(header);
  const { entityName, id, version } = heldVersionOf(entity, "checkIfMatch()");
  if (ifMatch.kind === "absent") {
    if (options.required) throw new PreconditionRequiredError(`A change of ${entityName}`);
    return;
  }
  if (ifMatchHolds(ifMatch, version)) return;
  const named = ifMatch.kind === "tags" ? ifMatch.tags.map(versionOfTag) : [];
  const expectedVersion = named.find((v) => v !== undefined) ?? -1;
  throw new StaleVersionError({
    entityName,
    id,
    expectedVersion,
    actualVersion: version,
    operation: "request (If-Match)",
    // A version it names gets the mismatch message (behind or ahead of the row); else say what it held.
    detail:
      expectedVersion < 0
        ? `is at version ${version} (ETag "${version}"), which If-Match: ${describe(ifMatch)} does not name`
        : undefined,
  });
}

function describe(ifMatch: IfMatch): string {
  if (ifMatch.kind === "tags") return ifMatch.tags.map((t) => `${t.weak ? "W/" : ""}"${t.opaque}"`).join(", ");
  return ifMatch.kind === "invalid" ? ifMatch.header : "*";
}
