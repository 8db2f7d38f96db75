/**
 * Versions as HTTP entity tags (RFC 9110 §8.8.3): a strong tag whose opaque part is the version,
 * `"7"`. Strong, because the version changes with every write of the representation's source, so
 * two representations with one tag are byte-for-byte the same resource state.
 */
import { describeValue, LockingConfigurationError } from "../errors";

/**
 * The strong ETag of a version: `7` becomes `"7"` (quotes included, ready for the header). Takes
 * the version as the entity holds it: a number, or the digits of a `string` or `bigint` version.
 * Anything else (a negative or fractional number, NaN, a version beyond 2^53-1, `null`) is no
 * version: {@link LockingConfigurationError}.
 *
 * @example
 * ```ts
 * res.setHeader("ETag", versionETag(order.version)); // ETag: "7"
 * ```
 */
export function versionETag(held: number | string | bigint): string {
  const version =
    typeof held === "number"
      ? held
      : (typeof held === "string" || typeof held === "bigint") && /^\d+$/.test(String(held))
        ? Number(held)
        : Number.NaN;
  if (!Number.isSafeInteger(version) || version < 0) {
    throw new LockingConfigurationError(
      `versionETag(): a version is a non-negative integer up to 2^53-1, got ${describeValue(held)}.`,
    );
  }
  return `"${version}"`;
}

/**
 * The version a strong ETag stands for, or `undefined` for a weak tag (`W/"7"`) or a tag that is
 * not one of ours (`"abc"`): such a tag can never match a version.
 *
 * @example
 * ```ts
 * versionOfETag('"7"');   // 7
 * versionOfETag('W/"7"'); // undefined
 * ```
 */
export function versionOfETag(tag: string): number | undefined {
  if (typeof tag !== "string") return undefined;
  const match = /^"(.*)"$/s.exec(tag.trim());
  return match ? versionOfOpaque(match[1]) : undefined;
}

/** The version an entity tag's opaque part (`7` of `"7"`) stands for, or `undefined`. @internal */
export function versionOfOpaque(opaque: string): number | undefined {
  if (opaque.length > 16 || !/^(0|[1-9]\d*)$/.test(opaque)) return undefined;
  const version = Number(opaque);
  return Number.isSafeInteger(version) ? version : undefined;
}
