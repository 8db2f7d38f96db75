/**
 * Hostile input, part 2: the public entry points that reach the database, on every database of
 * the matrix, 1,000 fast-check inputs each in the full profile (a sample in the reduced one):
 * client versions and ids to updateVersioned and to save() of an edited copy, lock modes and
 * options to lock()/lockQuery()/withLockMode()/lockInOrder(), retry options to retryOnConflict,
 * offline lock types, ids, owners, TTLs and handles, and If-Match through the example Express
 * (real HTTP) and Fastify (inject) apps. For every input, checked on the database:
 * - the valid ones work (and write what they should);
 * - the others get a LockingError subclass or the documented HTTP status, never a TypeError,
 *   RangeError or driver error, and write nothing (the rows and versions are read back);
 * - no SQL text is built from the input: string inputs carry a marker, and no statement sent
 *   (captured by a TypeORM logger) contains it; numbers rendered into SQL (lock waits) are digits.
 */

import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import type { FastifyInstance } from "fastify";
import type { DataSource, Repository } from "typeorm";
import { createApp } from "../../examples/express/app";
import { Order } from "../../examples/express/order";
import { createFastifyApp } from "../../examples/fastify/app";
import {
  AlreadyLockedError,
  installLocking,
  LockingConfigurationError,
  LockingError,
  LockMode,
  lock,
  lockInOrder,
  lockQuery,
  OfflineLockLostError,
  OfflineLockManager,
  OfflineLockRecord,
  retryOnConflict,
  StaleVersionError,
  updateVersioned,
  withLockMode,
} from "../../src";
import { Account } from "../fixtures/lock-entities";
import { closeAll, describeEachDatabase, openDataSources, StatementCounter } from "../support/databases";
import {
  count,
  DB_RUNS,
  hostileIfMatch,
  hostileLockOptions,
  hostileMode,
  hostileString,
  hostileTimeout,
  hostileVersion,
  isUnhandled,
  notAString,
  outcomeOf,
  show,
  thrownBy,
  writeTallies,
} from "./hostile/inputs";
import { validLockOptions, validMode } from "./hostile/oracles";

/** Marks string inputs: a statement whose text contains it was built from the input. */
const MARK = "Zq7Xw";
const marked = hostileString.map((s) => MARK + s);
/** A stand-in the fuzzers replace with the row's current version: the valid input. */
const CURRENT = Symbol("current version");

describeEachDatabase((db) => {
  let source: DataSource;
  let accounts: Repository<Account>;
  const statements = new StatementCounter();
  const entryPoint = (name: string) => `${name} [${db.name}]`;

  beforeAll(async () => {
    [source] = await openDataSources(db, [Account, Order, OfflineLockRecord], {
      extra: { logger: statements, logging: true },
    });
    installLocking(source);
    accounts = source.getRepository(Account);
  });
  afterAll(async () => {
    writeTallies(db.name);
    await closeAll(source);
  });

  /** Fails with the input when `error` is not the library's own. */
  function expectHandled(name: string, input: unknown, error: unknown): void {
    if (error !== undefined && isUnhandled(error)) {
      throw new Error(`${name}(${show(input)}) on ${db.name} threw an unhandled ${outcomeOf(error)}: ${String(error)}`);
    }
  }

  /** No statement since the last reset carries the marker, nor renders a number as NaN/Infinity/1e+21. */
  function expectNoSqlFromInput(input: unknown): void {
    for (const sql of statements.statements) {
      if (sql.includes(MARK)) throw new Error(`SQL built from the input ${show(input)}: ${sql.slice(0, 300)}`);
      if (/NaN|Infinity|\de[+-]\d|undefined/.test(sql)) {
        throw new Error(`SQL with a number that is no number, from ${show(input)}: ${sql.slice(0, 300)}`);
      }
    }
  }

  /** Every account's version, by id. */
  async function versions(): Promise<Map<number, number>> {
    return new Map((await accounts.find()).map((a) => [a.id, a.version]));
  }

  async function account(id: number): Promise<Account> {
    return accounts.findOneByOrFail({ id });
  }

  let nextId = 1;
  async function newAccount(): Promise<Account> {
    const id = nextId++;
    await accounts.save(accounts.create({ id, balance: 100 }));
    return account(id);
  }

  /** The version a client value stands for, the way the version helpers read it. */
  function versionValue(value: unknown): number | undefined {
    if (typeof value === "number") return Number.isSafeInteger(value) ? value : undefined;
    if (typeof value === "string" && /^\d{1,15}$/.test(value.trim())) return Number(value.trim());
    return undefined;
  }

  it("updateVersioned with a client's version: the row's version writes once, any other integer is stale, the rest refused", async () => {
    const target = await newAccount();
    const bystander = await newAccount();
    let current = target.version;
    await fc.assert(
      fc.asyncProperty(fc.oneof(hostileVersion, marked, fc.constant(CURRENT)), async (given) => {
        const version = given === CURRENT ? current : given;
        statements.reset();
        const error = await thrownBy(() => updateVersioned(accounts, target.id, version as number, { balance: 7 }));
        count(entryPoint("updateVersioned (version)"), outcomeOf(error));
        expectHandled("updateVersioned", version, error);
        expectNoSqlFromInput(version);
        const value = versionValue(version);
        const row = await account(target.id);
        if (value === current) {
          expect(error).toBeUndefined();
          expect(row.version).toBe(++current);
        } else {
          expect(error).toBeInstanceOf(value === undefined ? LockingConfigurationError : StaleVersionError);
          expect(row.version).toBe(current);
        }
        expect((await account(bystander.id)).version).toBe(bystander.version);
      }),
      { numRuns: DB_RUNS },
    );
  });

  it("updateVersioned with a client's id: one row or a typed refusal, never a write to another row (a list of ids writes none)", async () => {
    const target = await newAccount();
    const bystander = await newAccount();
    let current = target.version;
    const ids = fc.oneof(
      { weight: 2, arbitrary: fc.constant(CURRENT) },
      {
        weight: 4,
        arbitrary: fc.constantFrom(
          [target.id, bystander.id],
          [target.id],
          { id: [target.id, bystander.id] },
          { id: { $gt: 0 } },
          {},
          { balance: 100 },
          [],
          `${target.id} OR 1=1`,
          `${target.id}; UPDATE tl_account SET balance = 0`,
          target.id + 0.5,
          Number.NaN,
          Number.POSITIVE_INFINITY,
          -1,
          String(target.id),
          { id: String(target.id) },
          { id: target.id, balance: 0 },
        ),
      },
      { weight: 2, arbitrary: marked },
      { weight: 2, arbitrary: notAString },
    );
    await fc.assert(
      fc.asyncProperty(ids, async (given) => {
        const id = given === CURRENT ? target.id : given;
        const before = await versions();
        statements.reset();
        const error = await thrownBy(() => updateVersioned(accounts, id as number, current, { balance: 9 }));
        count(entryPoint("updateVersioned (id)"), outcomeOf(error));
        expectHandled("updateVersioned", id, error);
        expectNoSqlFromInput(id);
        // Exactly one row written (+1) when it returned, none when it threw: the id named one row.
        const after = await versions();
        const moved = [...after].filter(([key, v]) => v !== before.get(key));
        if (error === undefined) {
          expect(moved).toHaveLength(1);
          expect(moved[0][1]).toBe((before.get(moved[0][0]) as number) + 1);
          if (moved[0][0] === target.id) current++;
        } else {
          expect(error).toBeInstanceOf(LockingError);
          expect(moved).toEqual([]);
        }
        if (given === CURRENT) expect(error).toBeUndefined();
        if (Array.isArray(id)) expect(error).toBeInstanceOf(LockingConfigurationError);
      }),
      { numRuns: DB_RUNS },
    );
  });

  it("save() of an edited copy carrying the client's version: the row's version writes, others are refused, nothing written", async () => {
    const target = await newAccount();
    let current = target.version;
    await fc.assert(
      fc.asyncProperty(fc.oneof(hostileVersion, marked, fc.constant(CURRENT)), async (given) => {
        const version = given === CURRENT ? current : given;
        const copy = await account(target.id);
        copy.version = version as number;
        copy.balance = 1 + (current % 50);
        statements.reset();
        const error = await thrownBy(() => accounts.save(copy));
        count(entryPoint("save() with a client version"), outcomeOf(error));
        expectHandled("save", version, error);
        expectNoSqlFromInput(version);
        const row = await account(target.id);
        if (error === undefined) {
          expect(row.version).toBe(++current);
          expect(row.balance).toBe(copy.balance);
        } else {
          expect(row.version).toBe(current);
          if (versionValue(version) === current) throw new Error(`the current version ${show(version)} was refused`);
        }
      }),
      { numRuns: DB_RUNS },
    );
  });

  /** Mode and options that must work on this database (SQLite has no shared lock and no SKIP LOCKED). */
  function supported(mode: unknown, options: unknown): boolean {
    if (!validMode(mode) || !validLockOptions(options)) return false;
    if (db.family !== "sqlite") return true;
    const o = (options ?? {}) as { timeout?: unknown; onLocked?: unknown };
    return mode !== LockMode.PESSIMISTIC_READ && o.timeout !== -2 && o.onLocked !== "skip";
  }

  const lockEntryPoints = {
    "lock()": (manager: import("typeorm").EntityManager, row: Account, mode: unknown, options: unknown) =>
      lock(manager, row, mode as LockMode, options as never),
    "lockQuery()": (manager: import("typeorm").EntityManager, row: Account, mode: unknown, options: unknown) =>
      lockQuery(
        manager.createQueryBuilder(Account, "a").where("a.id = :id", { id: row.id }),
        mode as LockMode,
        options as never,
      ).getOne(),
    "withLockMode() find": (manager: import("typeorm").EntityManager, row: Account, mode: unknown, options: unknown) =>
      manager.findOne(Account, { where: { id: row.id }, ...withLockMode(mode as LockMode, options as never) }),
    "lockInOrder()": (manager: import("typeorm").EntityManager, row: Account, mode: unknown, options: unknown) =>
      lockInOrder(manager, [{ entity: Account, id: row.id }], mode as LockMode, options as never),
  };

  for (const [name, run] of Object.entries(lockEntryPoints)) {
    it(`${name} with hostile modes and options: valid ones lock, the rest LockingConfigurationError, no version moved`, async () => {
      const row = await newAccount();
      let current = row.version;
      await fc.assert(
        fc.asyncProperty(hostileMode, hostileLockOptions, async (mode, options) => {
          statements.reset();
          const error = await thrownBy(() =>
            source.transaction(async (manager) => {
              const held = await manager.findOneByOrFail(Account, { id: row.id });
              await run(manager, held, mode, options);
            }),
          );
          count(entryPoint(name), outcomeOf(error));
          expectHandled(name, { mode, options }, error);
          expectNoSqlFromInput({ mode, options });
          const after = (await account(row.id)).version;
          const forced =
            error === undefined &&
            (mode === LockMode.OPTIMISTIC_FORCE_INCREMENT || mode === LockMode.PESSIMISTIC_FORCE_INCREMENT);
          if (forced) current++;
          expect(after).toBe(current);
          if (supported(mode, options)) {
            if (error !== undefined) throw new Error(`valid ${show({ mode, options })} failed: ${String(error)}`);
          } else if (!validMode(mode) || !validLockOptions(options)) {
            expect(error).toBeInstanceOf(LockingConfigurationError);
          }
        }),
        { numRuns: DB_RUNS },
      );
    });
  }

  it("retryOnConflict with hostile options: valid ones run the work once, the rest are refused before it runs", async () => {
    const row = await newAccount();
    let current = row.version;
    const options = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record(
          {
            attempts: fc.oneof(fc.integer({ min: 1, max: 5 }), hostileTimeout),
            budgetMs: hostileTimeout,
            backoff: fc.oneof(
              fc.record(
                { initialMs: hostileTimeout, maxMs: hostileTimeout, multiplier: hostileTimeout },
                { requiredKeys: [] },
              ),
              notAString,
            ),
            isolation: fc.oneof(
              fc.constantFrom(undefined, "READ COMMITTED", "SERIALIZABLE"),
              marked,
              fc.constant(`SERIALIZABLE; UPDATE tl_account SET balance = 0; --${MARK}`),
              notAString,
            ),
          },
          { requiredKeys: [] },
        ),
      },
      { weight: 1, arbitrary: notAString },
    );
    await fc.assert(
      fc.asyncProperty(options, async (given) => {
        let runs = 0;
        statements.reset();
        const error = await thrownBy(() =>
          retryOnConflict(
            source,
            async (manager) => {
              runs++;
              await updateVersioned(manager.getRepository(Account), row.id, current, { balance: runs });
            },
            given as never,
          ),
        );
        count(entryPoint("retryOnConflict"), outcomeOf(error));
        expectHandled("retryOnConflict", given, error);
        expectNoSqlFromInput(given);
        const after = (await account(row.id)).version;
        if (error === undefined) {
          expect(runs).toBe(1);
          expect(after).toBe(++current);
        } else {
          expect(runs).toBe(0);
          expect(after).toBe(current);
          // SQLite knows only SERIALIZABLE and READ UNCOMMITTED: the others are refused too.
          expect(error).toBeInstanceOf(LockingConfigurationError);
        }
      }),
      { numRuns: DB_RUNS },
    );
  });

  it("offline locks with hostile types, ids, owners and TTLs: taken as given, or refused with nothing stored", async () => {
    const locks = new OfflineLockManager(source);
    const records = source.getRepository(OfflineLockRecord);
    let n = 0;
    const text = fc.oneof(
      { weight: 3, arbitrary: marked },
      { weight: 1, arbitrary: hostileString },
      { weight: 1, arbitrary: notAString },
    );
    const ttl = fc.oneof(fc.integer({ min: 1, max: 600_000 }), hostileTimeout, fc.constant(9e15));
    await fc.assert(
      fc.asyncProperty(text, fc.oneof(text, fc.integer()), text, ttl, async (rawType, rawId, owner, ttlMs) => {
        // Unique per input, so that one input's lock is not another's (the hostile part follows).
        const unique = (value: unknown) =>
          typeof value === "string" && value.startsWith(MARK) ? `${MARK}${n++}${value.slice(MARK.length)}` : value;
        const type = unique(rawType);
        const id = unique(rawId);
        const before = await records.count();
        statements.reset();
        let handle: Awaited<ReturnType<OfflineLockManager["tryLock"]>> | undefined;
        const error = await thrownBy(async () => {
          handle = await locks.tryLock(type as string, id as string, {
            owner: owner as string,
            ttlMs: ttlMs as number,
          });
        });
        count(entryPoint("OfflineLockManager.tryLock"), outcomeOf(error));
        expectHandled("tryLock", { type, id, owner, ttlMs }, error);
        expectNoSqlFromInput({ type, id, owner });
        // A TTL of a few ms may lapse before tryLock reads its lock back: lost, as it should be.
        if (error instanceof OfflineLockLostError && (ttlMs as number) < 5000) return;
        if (error !== undefined) {
          // A key not made unique (an integer id, a type without the marker) may be an earlier input's.
          if (error instanceof AlreadyLockedError) return;
          expect(error).toBeInstanceOf(LockingConfigurationError);
          expect(await records.count()).toBe(before);
          return;
        }
        const held = handle!;
        expect(held).toMatchObject({ lockType: type, lockId: String(id), owner });
        expect(Number.isNaN(held.expiresAt.getTime())).toBe(false);
        if ((ttlMs as number) < 5000) return; // may lapse any moment: nothing more to assert
        // Taken again while held: AlreadyLockedError naming the holder, not a RangeError.
        const again = await thrownBy(() =>
          locks.tryLock(type as string, id as string, { owner: "other", ttlMs: 1000 }),
        );
        count(entryPoint("OfflineLockManager.tryLock"), outcomeOf(again));
        expect(again).toBeInstanceOf(AlreadyLockedError);
        expect((again as AlreadyLockedError).owner).toBe(owner);
        await locks.releaseLock(held);
      }),
      { numRuns: DB_RUNS },
    );
  });

  it("offline lock handles: checkLock/extendLock/releaseLock answer OfflineLockLostError or LockingConfigurationError", async () => {
    const locks = new OfflineLockManager(source);
    const handles = fc.oneof(
      marked,
      hostileString,
      notAString,
      fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 32, maxLength: 32 }),
      fc.record({ handle: fc.oneof(marked, notAString), lockType: hostileString, lockId: hostileString }),
    );
    const operations = fc.constantFrom("checkLock", "extendLock", "releaseLock");
    await fc.assert(
      fc.asyncProperty(handles, operations, hostileTimeout, async (handle, operation, ttl) => {
        statements.reset();
        const error = await thrownBy(() =>
          operation === "checkLock"
            ? locks.checkLock(handle as string)
            : operation === "extendLock"
              ? locks.extendLock(handle as string, ttl as number)
              : locks.releaseLock(handle as string),
        );
        count(entryPoint(`OfflineLockManager.${operation}`), outcomeOf(error));
        expectHandled(operation, handle, error);
        expectNoSqlFromInput(handle);
        expect(error instanceof OfflineLockLostError || error instanceof LockingConfigurationError).toBe(true);
      }),
      { numRuns: DB_RUNS },
    );
  });

  describe("If-Match through the example apps", () => {
    let servers: Server[] = [];
    let fastify: FastifyInstance | undefined;
    const orders = () => source.getRepository(Order);
    afterAll(async () => {
      for (const server of servers) await new Promise((resolve) => server.close(resolve));
      servers = [];
      await fastify?.close();
    });

    /** What a client can put in a header line: text without control characters (else fetch refuses to send). */
    const sendable = (header: unknown): header is string =>
      typeof header === "string" && /^[\x20-\x7e\x80-\xff\t]*$/.test(header) && header.trim() === header;

    async function checkStatus(
      name: string,
      header: unknown,
      status: number,
      etag: string | null,
      id: number,
      before: number,
    ) {
      const after = (await orders().findOneByOrFail({ id })).version;
      count(entryPoint(name), String(status));
      // 431: Node refuses a header section above 16 KB before the app sees it.
      expect([200, 400, 412, 428, 431]).toContain(status);
      if (status === 200) {
        expect(after).toBe(before + 1);
        expect(etag).toBe(`"${after}"`);
      } else {
        expect(after).toBe(before);
        if (etag !== null) expect(etag).toBe(`"${before}"`);
      }
      if (status === 428) expect(header === undefined || String(header).replace(/[ \t,]/g, "") === "").toBe(true);
    }

    it("Express, real HTTP: 200 exactly for the current ETag, else 400/412/428 and the row unchanged", async () => {
      const server = createApp(source).listen(0, "127.0.0.1");
      servers.push(server);
      await new Promise((resolve) => server.once("listening", resolve));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const { id } = await orders().save(orders().create({ address: "A", status: "NEW" }));
      await fc.assert(
        fc.asyncProperty(fc.oneof(hostileIfMatch, fc.constant(CURRENT)), async (given) => {
          const before = (await orders().findOneByOrFail({ id })).version;
          const header = given === CURRENT ? `"${before}"` : given;
          const headers: Record<string, string> = { "content-type": "application/json" };
          if (sendable(header)) headers["if-match"] = header;
          else if (header !== undefined) return; // not HTTP: the direct middleware fuzz covers it
          const response = await fetch(`${base}/orders/${id}/status`, {
            method: "PUT",
            headers,
            body: JSON.stringify({ status: `S${before}` }), // a change, so that a 200 writes
          });
          await response.text();
          await checkStatus(
            "Express PUT with If-Match",
            header,
            response.status,
            response.headers.get("etag"),
            id,
            before,
          );
          if (given === CURRENT) expect(response.status).toBe(200);
        }),
        { numRuns: DB_RUNS },
      );
    });

    it("Fastify, inject: 200 exactly for the current ETag, else 400/412/428 and the row unchanged", async () => {
      fastify = await createFastifyApp(source);
      const app = fastify;
      const { id } = await orders().save(orders().create({ address: "A", status: "NEW" }));
      await fc.assert(
        fc.asyncProperty(fc.oneof(hostileIfMatch, fc.constant(CURRENT)), async (given) => {
          const before = (await orders().findOneByOrFail({ id })).version;
          const header = given === CURRENT ? `"${before}"` : given;
          // A list of header lines is what a client can send only if each line is (light-my-request
          // itself throws a TypeError on a list holding a null-prototype object).
          const lines = Array.isArray(header) && header.every(sendable);
          if (header !== undefined && !sendable(header) && !lines) return;
          const response = await app.inject({
            method: "PUT",
            url: `/orders/${id}/status`,
            headers: (header === undefined ? {} : { "if-match": header }) as Record<string, string>,
            payload: { status: `S${before}` },
          });
          await checkStatus(
            "Fastify PUT with If-Match",
            header,
            response.statusCode,
            (response.headers.etag as string | undefined) ?? null,
            id,
            before,
          );
          if (given === CURRENT) expect(response.statusCode).toBe(200);
        }),
        { numRuns: DB_RUNS },
      );
    });
  });
});
