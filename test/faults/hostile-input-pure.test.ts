/**
 * Hostile input, part 1: the public entry points that touch no database, each given 1,000
 * fast-check inputs in both profiles (they take milliseconds): versions to assertVersion and
 * versionETag, If-Match to the parsers, checkIfMatch and the Express and Fastify middlewares
 * (answered through their error handlers, so the status is the one a client gets), lock modes and
 * options to withLockMode/@Lock/runWithLockMode, retry options to @Retryable, installLocking's
 * options, offline lock handles to runHolding. For every input: the valid ones work, the others
 * get a LockingError subclass (or the documented HTTP status), never a TypeError or a RangeError.
 * The database entry points are in hostile-input-db.test.ts.
 */
import fc from "fast-check";
import { DataSource } from "typeorm";
import { Order } from "../../examples/express/order";
import {
  assertVersion,
  checkIfMatch,
  conflictErrorHandler,
  conflictResponse,
  fastifyConflictHandler,
  fastifyRequireIfMatch,
  ifMatchHolds,
  installLocking,
  isRetryableConflict,
  Lock,
  LockingConfigurationError,
  LockingError,
  type LockMode,
  MalformedIfMatchError,
  mysqlDialect,
  OfflineLockManager,
  OptimisticLockError,
  parseIfMatch,
  Retryable,
  readIfMatch,
  requireIfMatch,
  runWithLockMode,
  StaleVersionError,
  versionETag,
  versionOfETag,
  withLockMode,
} from "../../src";
import {
  count,
  hostileIfMatch,
  hostileLockOptions,
  hostileMode,
  hostileString,
  hostileTimeout,
  hostileVersion,
  isUnhandled,
  notAString,
  outcomeOf,
  PURE_RUNS,
  show,
  thrownBy,
  thrownBySync,
  writeTallies,
} from "./hostile/inputs";
import { validLockOptions, validMode } from "./hostile/oracles";

const CURRENT = 3;
const order = () => Object.assign(new Order(), { id: 1, address: "A", status: "NEW", version: CURRENT });

/** Fails with the input when `error` is not the library's own. */
function expectHandled(entryPoint: string, input: unknown, error: unknown): void {
  if (error !== undefined && isUnhandled(error)) {
    throw new Error(
      `${entryPoint}(${show(input)}) threw an unhandled ${outcomeOf(error)}: ${(error as Error)?.message ?? error}`,
    );
  }
}

/** Whether a held version is one the version helpers take: a safe integer, or its digits. */
function versionValue(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value === "string" && /^\d{1,15}$/.test(value.trim())) return Number(value.trim());
  return undefined;
}

afterAll(() => writeTallies("no database"));

describe("versions", () => {
  it("assertVersion: the current version (number or digits) passes, any other integer is stale, the rest is refused", () => {
    const valid = fc.oneof(fc.constant(CURRENT), fc.constant(String(CURRENT)), fc.constant(` ${CURRENT} `));
    fc.assert(
      fc.property(fc.oneof(hostileVersion, valid), (version) => {
        const error = thrownBySync(() => assertVersion(order(), version as number));
        count("assertVersion", outcomeOf(error));
        expectHandled("assertVersion", version, error);
        const value = versionValue(version);
        if (value === CURRENT) expect(error).toBeUndefined();
        else if (value !== undefined) expect(error).toBeInstanceOf(StaleVersionError);
        else expect(error).toBeInstanceOf(LockingConfigurationError);
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("versionETag builds a strong tag of every version and refuses the rest; versionOfETag reads it back", () => {
    fc.assert(
      fc.property(fc.oneof(hostileVersion, fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 53n })), (version) => {
        let tag: string | undefined;
        const error = thrownBySync(() => {
          tag = versionETag(version as number);
        });
        count("versionETag", outcomeOf(error));
        expectHandled("versionETag", version, error);
        const expected =
          typeof version === "number"
            ? version
            : typeof version === "string" || typeof version === "bigint"
              ? /^\d+$/.test(String(version))
                ? Number(version)
                : Number.NaN
              : Number.NaN;
        if (Number.isSafeInteger(expected) && expected >= 0) {
          expect(tag).toBe(`"${expected}"`);
          expect(versionOfETag(tag as string)).toBe(expected + 0); // -0 reads back as 0
        } else {
          expect(error).toBeInstanceOf(LockingConfigurationError);
        }
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("versionOfETag answers a version or undefined for anything, never throws", () => {
    fc.assert(
      fc.property(fc.oneof(hostileIfMatch, hostileVersion), (tag) => {
        let version: number | undefined;
        const error = thrownBySync(() => {
          version = versionOfETag(tag as string);
        });
        count("versionOfETag", outcomeOf(error));
        expect(error).toBeUndefined();
        if (version !== undefined) {
          expect(Number.isSafeInteger(version) && version >= 0).toBe(true);
          expect((tag as string).trim()).toBe(`"${version}"`);
        }
      }),
      { numRuns: PURE_RUNS },
    );
  });
});

describe("If-Match", () => {
  it("parseIfMatch and ifMatchHolds answer every header, in linear time, and never throw", () => {
    fc.assert(
      fc.property(hostileIfMatch, fc.oneof(fc.nat({ max: 30 }), fc.constant(undefined)), (header, version) => {
        const started = performance.now();
        const error = thrownBySync(() => ifMatchHolds(parseIfMatch(header as string), version));
        count("parseIfMatch + ifMatchHolds", outcomeOf(error));
        expect(error).toBeUndefined();
        // 1 MB in one pass: milliseconds; a backtracking parse would take minutes. Wide for CI.
        expect(performance.now() - started).toBeLessThan(2000);
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("readIfMatch: a parsed header, or MalformedIfMatchError whose message stays short", () => {
    fc.assert(
      fc.property(hostileIfMatch, (header) => {
        const error = thrownBySync(() => readIfMatch(header as string));
        count("readIfMatch", outcomeOf(error));
        expectHandled("readIfMatch", header, error);
        if (error !== undefined) {
          expect(error).toBeInstanceOf(MalformedIfMatchError);
          expect((error as Error).message.length).toBeLessThan(1000);
          expect(
            parseIfMatch(header as string).kind === "invalid" || typeof header === "string" || Array.isArray(header),
          ).toBe(true);
        }
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("checkIfMatch: passes exactly when If-Match names the current version (or *), else 400, 412 or 428", () => {
    fc.assert(
      fc.property(hostileIfMatch, fc.boolean(), (header, required) => {
        const error = thrownBySync(() => checkIfMatch(order(), header as string, { required }));
        count("checkIfMatch", outcomeOf(error));
        expectHandled("checkIfMatch", header, error);
        const parsed = parseIfMatch(header as string);
        if (error === undefined) {
          expect(parsed.kind === "absent" ? !required : ifMatchHolds(parsed, CURRENT)).toBe(true);
        } else {
          const status = conflictResponse(error)?.status;
          expect([400, 412, 428]).toContain(status);
          if (status === 428) expect(parsed.kind).toBe("absent");
          if (status === 412) expect(ifMatchHolds(parsed, CURRENT)).toBe(false);
        }
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("Express requireIfMatch + conflictErrorHandler: next() for a usable header, else 428 or 400 with a JSON body", async () => {
    const middleware = requireIfMatch();
    const handler = conflictErrorHandler();
    await fc.assert(
      fc.asyncProperty(hostileIfMatch, async (header) => {
        const passed: unknown[] = [];
        const error = thrownBySync(() =>
          middleware(
            { headers: { "if-match": header as string }, method: "PUT", originalUrl: "/orders/1" },
            fakeResponse().res,
            (e) => passed.push(e),
          ),
        );
        expectHandled("requireIfMatch", header, error);
        expect(passed).toHaveLength(1);
        const [forwarded] = passed;
        if (forwarded === undefined) {
          count("Express requireIfMatch", "next()");
          expect(readIfMatch(header as string).kind).not.toBe("absent");
          return;
        }
        expectHandled("requireIfMatch", header, forwarded);
        const { res, sent } = fakeResponse();
        const unhandled: unknown[] = [];
        await handler(forwarded, { headers: {} }, res, (e) => unhandled.push(e));
        expect(unhandled).toEqual([]);
        count("Express requireIfMatch", String(sent.status));
        expect([400, 428]).toContain(sent.status);
        expect(JSON.parse(sent.body as string).error).toBe(
          sent.status === 400 ? "malformed-if-match" : "precondition-required",
        );
        expect(sent.headers.ETag).toBeUndefined();
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("Fastify fastifyRequireIfMatch + fastifyConflictHandler: passes a usable header, else 428 or 400", async () => {
    const preHandler = fastifyRequireIfMatch();
    const handler = fastifyConflictHandler();
    await fc.assert(
      fc.asyncProperty(hostileIfMatch, async (header) => {
        const error = await thrownBy(() =>
          preHandler({ headers: { "if-match": header as string }, method: "PUT", url: "/orders/1" }, {}),
        );
        expectHandled("fastifyRequireIfMatch", header, error);
        if (error === undefined) {
          count("Fastify fastifyRequireIfMatch", "passed");
          return;
        }
        const reply = fakeReply();
        await handler(error, { headers: {} }, reply);
        count("Fastify fastifyRequireIfMatch", String(reply.statusCode));
        expect([400, 428]).toContain(reply.statusCode);
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("conflictResponse answers every library error with its status and anything else with undefined", () => {
    const errors = fc.oneof(
      notAString,
      hostileString.map((m) => new Error(m)),
      hostileString.map((m) => new TypeError(m)),
      hostileIfMatch.map((h) => thrownBySync(() => readIfMatch(h as string))),
      hostileVersion.map((v) => thrownBySync(() => assertVersion(order(), v as number))),
      fc.record({ id: fc.anything({ withBigInt: true }), expected: fc.nat(), actual: fc.nat() }).map(
        ({ id, expected, actual }) =>
          new OptimisticLockError({
            entityName: "Order",
            id,
            expectedVersion: expected,
            actualVersion: actual,
            operation: "update",
          }),
      ),
    );
    fc.assert(
      fc.property(errors, (error) => {
        let answer: ReturnType<typeof conflictResponse>;
        const thrown = thrownBySync(() => {
          answer = conflictResponse(error);
        });
        count("conflictResponse", thrown === undefined ? String(answer?.status ?? "undefined") : outcomeOf(thrown));
        expect(thrown).toBeUndefined();
        if (error instanceof LockingError && !(error instanceof LockingConfigurationError))
          expect(answer).toBeDefined();
        if (!(error instanceof LockingError)) expect(answer).toBeUndefined();
      }),
      { numRuns: PURE_RUNS },
    );
  });
});

describe("lock modes and lock options", () => {
  it("withLockMode takes every mode and valid options, and refuses the rest with LockingConfigurationError", () => {
    fc.assert(
      fc.property(hostileMode, hostileLockOptions, (mode, options) => {
        const error = thrownBySync(() => withLockMode(mode as LockMode, options as never));
        count("withLockMode", outcomeOf(error));
        expectHandled("withLockMode", { mode, options }, error);
        if (validMode(mode) && validLockOptions(options)) expect(error).toBeUndefined();
        else expect(error).toBeInstanceOf(LockingConfigurationError);
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("@Lock refuses a bad mode, options or entities when the class is declared, and runs valid ones", async () => {
    const entities = fc.oneof(
      { weight: 4, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constant([Order]) },
      { weight: 1, arbitrary: notAString },
    );
    await fc.assert(
      fc.asyncProperty(hostileMode, hostileLockOptions, entities, async (mode, options, chosen) => {
        const withEntities =
          chosen !== undefined && options !== null && typeof options === "object" && !Array.isArray(options)
            ? { ...options, entities: chosen }
            : options;
        let declared: { find(): Promise<string> } | undefined;
        const error = thrownBySync(() => {
          class Service {
            @Lock(mode as LockMode, withEntities as never)
            async find() {
              return "ran";
            }
          }
          declared = new Service();
        });
        count("@Lock", outcomeOf(error));
        expectHandled("@Lock", { mode, options: withEntities }, error);
        const validEntities =
          withEntities === undefined ||
          withEntities === null ||
          typeof withEntities !== "object" ||
          (withEntities as { entities?: unknown }).entities === undefined ||
          (Array.isArray((withEntities as { entities?: unknown }).entities) &&
            ((withEntities as { entities: unknown[] }).entities as unknown[]).every((e) => typeof e === "function"));
        if (validMode(mode) && validLockOptions(options) && validEntities) {
          expect(error).toBeUndefined();
          expect(await declared?.find()).toBe("ran");
        } else {
          expect(error).toBeInstanceOf(LockingConfigurationError);
        }
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("runWithLockMode runs the work under valid settings and refuses the rest before running it", () => {
    fc.assert(
      fc.property(hostileMode, hostileLockOptions, (mode, options) => {
        let ran = false;
        const error = thrownBySync(() =>
          runWithLockMode(mode as LockMode, options as never, () => {
            ran = true;
          }),
        );
        count("runWithLockMode", outcomeOf(error));
        expectHandled("runWithLockMode", { mode, options }, error);
        const valid = validMode(mode) && validLockOptions(options);
        expect(ran).toBe(valid);
        if (!valid) expect(error).toBeInstanceOf(LockingConfigurationError);
      }),
      { numRuns: PURE_RUNS },
    );
  });
});

describe("retry and installation options", () => {
  const retryOptions = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record(
        {
          attempts: fc.oneof(fc.integer({ min: 1, max: 9 }), hostileTimeout),
          budgetMs: hostileTimeout,
          backoff: fc.oneof(
            fc.record(
              { initialMs: hostileTimeout, maxMs: hostileTimeout, multiplier: hostileTimeout, jitter: fc.anything() },
              { requiredKeys: [] },
            ),
            notAString,
          ),
          retryLockTimeouts: fc.oneof(fc.boolean(), notAString),
          isolation: fc.oneof(
            fc.constantFrom("READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"),
            fc.constantFrom("SERIALIZABLE; DROP TABLE tl_order", "serializable", ""),
            hostileString,
            notAString,
          ),
          onRetry: fc.oneof(
            fc.constant(() => undefined),
            notAString,
          ),
        },
        { requiredKeys: [] },
      ),
    },
    { weight: 1, arbitrary: notAString },
  );

  it("@Retryable: valid options decorate and run, the rest is LockingConfigurationError when declared", async () => {
    await fc.assert(
      fc.asyncProperty(retryOptions, async (options) => {
        let declared: { run(): Promise<string> } | undefined;
        const error = thrownBySync(() => {
          class Service {
            @Retryable(options as never)
            async run() {
              return "ran";
            }
          }
          declared = new Service();
        });
        count("@Retryable", outcomeOf(error));
        expectHandled("@Retryable", options, error);
        if (error === undefined) expect(await declared?.run()).toBe("ran");
        else expect(error).toBeInstanceOf(LockingConfigurationError);
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("isRetryableConflict answers a boolean for anything", () => {
    fc.assert(
      fc.property(fc.oneof(notAString, hostileVersion), retryOptions, (error, options) => {
        let answer: unknown;
        const thrown = thrownBySync(() => {
          answer = isRetryableConflict(error, (options ?? undefined) as never);
        });
        count("isRetryableConflict", thrown === undefined ? String(answer) : outcomeOf(thrown));
        expect(thrown).toBeUndefined();
        expect(answer).toBe(false);
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("installLocking: valid options install, the rest is LockingConfigurationError, never a TypeError", () => {
    const options = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record(
          {
            versionColumns: fc.oneof(fc.constantFrom("checked", "unchecked"), hostileString, notAString),
            exclude: fc.oneof(fc.constantFrom([], [Order], ["Order"]), notAString),
            lockTimeout: hostileTimeout,
            dialect: fc.oneof(fc.constant(mysqlDialect), fc.constant({ ...mysqlDialect }), notAString),
            galera: fc.oneof(
              fc.record({ pessimistic: fc.oneof(fc.constantFrom("refuse", "node-local"), hostileString, notAString) }),
              notAString,
            ),
          },
          { requiredKeys: [] },
        ),
      },
      { weight: 1, arbitrary: notAString },
    );
    fc.assert(
      fc.property(options, (given) => {
        const dataSource = new DataSource({ type: "better-sqlite3", database: ":memory:", entities: [Order] });
        const error = thrownBySync(() => installLocking(dataSource, given as never));
        count("installLocking", outcomeOf(error));
        expectHandled("installLocking", given, error);
        if (error !== undefined) expect(error).toBeInstanceOf(LockingConfigurationError);
        else expect(given === undefined || given === null || typeof given === "object").toBe(true);
      }),
      { numRuns: PURE_RUNS },
    );
  });

  it("OfflineLockManager.runHolding takes a handle (object or string) and refuses anything else", () => {
    const manager = new OfflineLockManager(new DataSource({ type: "better-sqlite3", database: ":memory:" }));
    const handles = fc.oneof(
      hostileString,
      notAString,
      fc.record({ handle: fc.oneof(hostileString, notAString), lockType: hostileString, lockId: hostileString }),
    );
    fc.assert(
      fc.property(
        handles,
        fc.oneof(
          fc.constant(() => "ran"),
          notAString,
        ),
        (handle, work) => {
          let result: unknown;
          const error = thrownBySync(() => {
            result = manager.runHolding(handle as never, work as () => string);
          });
          count("OfflineLockManager.runHolding", outcomeOf(error));
          expectHandled("runHolding", handle, error);
          const value = typeof handle === "string" ? handle : (handle as { handle?: unknown } | null)?.handle;
          if (typeof value === "string" && value !== "" && typeof work === "function") expect(result).toBe(work());
          else expect(error).toBeInstanceOf(LockingConfigurationError);
        },
      ),
      { numRuns: PURE_RUNS },
    );
  });
});

/** An Express-shaped response that records what was sent. */
function fakeResponse() {
  const sent: { status?: number; headers: Record<string, string>; body?: unknown } = { headers: {} };
  const res = {
    status(code: number) {
      sent.status = code;
      return res;
    },
    setHeader(name: string, value: string) {
      sent.headers[name] = value;
    },
    removeHeader(name: string) {
      delete sent.headers[name];
    },
    json(body: unknown) {
      sent.body = JSON.stringify(body);
    },
    end(chunk: string) {
      sent.body = chunk;
    },
  };
  return { res, sent };
}

/** A Fastify-shaped reply that records the status. */
function fakeReply() {
  const reply = {
    statusCode: 200,
    sent: false,
    code(status: number) {
      reply.statusCode = status;
      return reply;
    },
    header() {
      return reply;
    },
    removeHeader() {
      return reply;
    },
    send() {
      reply.sent = true;
      return reply;
    },
  };
  return reply;
}
