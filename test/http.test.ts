/**
 * The framework-agnostic HTTP helpers: version ETags, If-Match parsing and evaluation (RFC 9110),
 * and the status each library error answers. Pure functions; the database side is in
 * http-e2e.test.ts.
 */
import {
  conflictResponse,
  ifMatchHolds,
  OptimisticLockError,
  PreconditionRequiredError,
  parseIfMatch,
  StaleVersionError,
  versionETag,
  versionOfETag,
} from "../src";

describe("version ETags", () => {
  it("are strong, quoted, and read back to the version", () => {
    expect(versionETag(7)).toBe('"7"');
    expect(versionOfETag('"7"')).toBe(7);
    expect(versionOfETag(' "0" ')).toBe(0);
    expect(versionETag(Number.MAX_SAFE_INTEGER)).toBe(`"${Number.MAX_SAFE_INTEGER}"`);
  });

  it("a weak, foreign or malformed tag stands for no version", () => {
    for (const tag of ['W/"7"', '"abc"', '"07"', "7", '"-1"', '"1.5"', '"99999999999999999"']) {
      expect(versionOfETag(tag)).toBeUndefined();
    }
    expect(() => versionETag(-1)).toThrow(TypeError);
    expect(() => versionETag(1.5)).toThrow(TypeError);
  });
});

describe("If-Match", () => {
  it("parses absent, *, lists, weak tags and repeated header lines", () => {
    expect(parseIfMatch(undefined)).toEqual({ kind: "absent" });
    expect(parseIfMatch("  ")).toEqual({ kind: "absent" });
    expect(parseIfMatch("*")).toEqual({ kind: "any" });
    expect(parseIfMatch('"1", W/"2",,"a,b"')).toEqual({
      kind: "tags",
      tags: [
        { weak: false, opaque: "1" },
        { weak: true, opaque: "2" },
        { weak: false, opaque: "a,b" },
      ],
    });
    expect(parseIfMatch(['"1"', '"2"'])).toEqual({
      kind: "tags",
      tags: [
        { weak: false, opaque: "1" },
        { weak: false, opaque: "2" },
      ],
    });
    expect(parseIfMatch("1")).toEqual({ kind: "invalid", header: "1" });
    expect(parseIfMatch('"1" "2"')).toEqual({ kind: "invalid", header: '"1" "2"' });
  });

  it("holds by strong comparison only: a weak tag never matches, * matches what exists", () => {
    expect(ifMatchHolds(parseIfMatch('"7"'), 7)).toBe(true);
    expect(ifMatchHolds(parseIfMatch('"6", "7"'), 7)).toBe(true);
    expect(ifMatchHolds(parseIfMatch('"6"'), 7)).toBe(false);
    expect(ifMatchHolds(parseIfMatch('W/"7"'), 7)).toBe(false);
    expect(ifMatchHolds(parseIfMatch("*"), 7)).toBe(true);
    expect(ifMatchHolds(parseIfMatch("*"), undefined)).toBe(false);
    expect(ifMatchHolds(parseIfMatch('"7"'), undefined)).toBe(false);
    expect(ifMatchHolds(parseIfMatch("garbage"), 7)).toBe(false);
    expect(ifMatchHolds(parseIfMatch(undefined), 7)).toBe(true);
  });
});

describe("conflictResponse", () => {
  const stale = new StaleVersionError({
    entityName: "Order",
    id: { id: 1 },
    expectedVersion: 1,
    actualVersion: 2,
    operation: "check",
  });
  const lost = new OptimisticLockError({ entityName: "Order", id: { id: 1 }, expectedVersion: 2, operation: "update" });

  it("428 for a missing If-Match, 412 for a stale one, 409 for a lost write", () => {
    expect(conflictResponse(new PreconditionRequiredError())?.status).toBe(428);
    expect(conflictResponse(stale)).toMatchObject({
      status: 412,
      headers: { ETag: '"2"' },
      body: { error: "precondition-failed", entity: "Order", id: { id: 1 }, currentVersion: 2, etag: '"2"' },
    });
    expect(conflictResponse(lost, {}, 3)).toMatchObject({
      status: 409,
      headers: { ETag: '"3"' },
      body: { error: "conflict", currentVersion: 3, etag: '"3"' },
    });
    expect(conflictResponse(lost, {}, null)).toMatchObject({
      status: 409,
      headers: {},
      body: { currentVersion: null },
    });
  });

  it("answers 409 for both kinds when asked, and nothing for other errors", () => {
    expect(conflictResponse(stale, { staleStatus: 409 })).toMatchObject({ status: 409, body: { error: "conflict" } });
    expect(conflictResponse(new Error("boom"))).toBeUndefined();
  });
});
