/**
 * The example API on Fastify (examples/fastify), driven with `fastify.inject` on every database:
 * the same story as the Express one (http-e2e.test.ts): ETags on GET and on success, 428 without
 * If-Match, 400 for a malformed one, 404 for an unknown order, 412 on a stale ETag, 409 when a
 * write lands between load and save (or the row is deleted there), and no ETag on any error but
 * the resource's current one.
 */

import type { FastifyInstance } from "fastify";
import Fastify from "fastify";
import type { DataSource } from "typeorm";
import { Order } from "../examples/express/order";
import { createFastifyApp, type FastifyAppOptions } from "../examples/fastify/app";
import {
  checkIfMatch,
  fastifyConflictHandler,
  fastifyConflictPlugin,
  fastifyRequireIfMatch,
  installLocking,
  OptimisticLockError,
} from "../src";
import { describeEachDatabase, openDataSources } from "./support/databases";
import { deferred } from "./support/interleaving";

interface Answer {
  status: number;
  etag: string | undefined;
  body: Record<string, unknown>;
}

describeEachDatabase((db) => {
  let source: DataSource;
  const apps: FastifyInstance[] = [];

  beforeAll(async () => {
    [source] = await openDataSources(db, [Order]);
    installLocking(source);
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
  });

  async function start(options: FastifyAppOptions = {}) {
    const app = await createFastifyApp(source, options);
    apps.push(app);
    return async (
      method: "GET" | "PUT",
      url: string,
      init: { ifMatch?: string | string[]; body?: unknown } = {},
    ): Promise<Answer> => {
      const headers: Record<string, string | string[]> = {};
      if (init.ifMatch !== undefined) headers["if-match"] = init.ifMatch;
      const response = await app.inject({ method, url, headers, payload: init.body as Record<string, unknown> });
      return {
        status: response.statusCode,
        etag: response.headers.etag as string | undefined,
        body: response.json() as Record<string, unknown>,
      };
    };
  }

  async function newOrder(): Promise<number> {
    return (await source.getRepository(Order).save({ address: "Old Street 1", status: "NEW" } as Order)).id;
  }
  const row = (id: number) => source.getRepository(Order).findOneByOrFail({ id });

  it("GET answers the order with its strong ETag; an unknown order is 404 with no ETag", async () => {
    const http = await start();
    const id = await newOrder();
    expect(await http("GET", `/orders/${id}`)).toMatchObject({ status: 200, etag: '"1"', body: { id, version: 1 } });
    expect(await http("GET", "/orders/999999")).toMatchObject({
      status: 404,
      etag: undefined,
      body: { error: "not-found", entity: "Order" },
    });
  });

  it("a PUT with the current ETag is 200 with the new ETag; without If-Match 428 with no ETag, nothing written", async () => {
    const http = await start();
    const id = await newOrder();
    const missing = await http("PUT", `/orders/${id}/address`, { body: { address: "Blind Write 9" } });
    expect(missing).toMatchObject({ status: 428, etag: undefined, body: { error: "precondition-required" } });
    expect(missing.body.message).toContain(`PUT /orders/${id}/address`);
    expect(await row(id)).toMatchObject({ address: "Old Street 1", version: 1 });
    expect(
      await http("PUT", `/orders/${id}/address`, { ifMatch: '"1"', body: { address: "New Street 2" } }),
    ).toMatchObject({ status: 200, etag: '"2"', body: { address: "New Street 2", version: 2 } });
  });

  it("a malformed If-Match is 400 saying what is wrong, with no ETag, before any lookup", async () => {
    const http = await start();
    const id = await newOrder();
    for (const [ifMatch, reason] of [
      ["1", "quoted"],
      ['"abc"', '"abc" names no version'],
      ['""', '"" names no version'],
      ['"1", "x"', '"x" names no version'],
      ['"1" "2"', "separated by commas"],
      ['"1', "no closing quote"],
    ]) {
      const answer = await http("PUT", `/orders/${id}/address`, { ifMatch, body: { address: "Malformed 1" } });
      expect(answer).toMatchObject({ status: 400, etag: undefined, body: { error: "malformed-if-match" } });
      expect(answer.body.message).toContain(reason);
    }
    // Repeated If-Match lines are one list; a bad member in any line is a 400.
    expect((await http("PUT", `/orders/${id}/address`, { ifMatch: ['"1"', "2"], body: { address: "x" } })).status).toBe(
      400,
    );
    expect((await http("PUT", "/orders/999999/address", { ifMatch: "1", body: { address: "x" } })).status).toBe(400);
    expect(await row(id)).toMatchObject({ address: "Old Street 1", version: 1 });
  });

  it("hostile If-Match headers: 1,000 tags are evaluated, a 1 MB header is a 400, in linear time (seconds, not the minutes a backtracking parser takes)", async () => {
    const http = await start();
    const id = await newOrder();
    const thousand = Array.from({ length: 1000 }, (_, i) => `"${i + 100}"`);
    const started = performance.now();
    expect(
      (await http("PUT", `/orders/${id}/address`, { ifMatch: thousand.join(", "), body: { address: "x" } })).status,
    ).toBe(412);
    expect(
      await http("PUT", `/orders/${id}/address`, {
        ifMatch: [...thousand, '"1"'].join(","),
        body: { address: "Many" },
      }),
    ).toMatchObject({ status: 200, etag: '"2"' });
    for (const ifMatch of [`"${"2".repeat(1 << 20)}"`, `"${"a".repeat(1 << 20)}`, "\u00e9".repeat(1 << 20)]) {
      const answer = await http("PUT", `/orders/${id}/address`, { ifMatch, body: { address: "Hostile" } });
      expect(answer).toMatchObject({ status: 400, etag: undefined, body: { error: "malformed-if-match" } });
      expect((answer.body.message as string).length).toBeLessThan(1000);
    }
    // The bound only separates a linear parse (milliseconds) from a super-linear one on 1 MB
    // (minutes); it is wide because CI machines run this under load.
    expect(performance.now() - started).toBeLessThan(5000);
    expect(await row(id)).toMatchObject({ address: "Many", version: 2 });
  });

  it("a PUT to an unknown order is 404, not 500", async () => {
    const http = await start();
    expect(
      await http("PUT", "/orders/999999/address", { ifMatch: '"1"', body: { address: "Nowhere 1" } }),
    ).toMatchObject({ status: 404, etag: undefined, body: { error: "not-found", message: "Order was not found." } });
  });

  it("a stale If-Match is 412 with the current ETag (409 when configured); weak never matches; * and lists do", async () => {
    const http = await start();
    const id = await newOrder();
    expect((await http("PUT", `/orders/${id}/status`, { ifMatch: '"1"', body: { status: "PAID" } })).status).toBe(200);
    expect(
      await http("PUT", `/orders/${id}/address`, { ifMatch: '"1"', body: { address: "Stale Street" } }),
    ).toMatchObject({
      status: 412,
      etag: '"2"',
      body: { error: "precondition-failed", entity: "Order", currentVersion: 2, etag: '"2"' },
    });
    const weak = await http("PUT", `/orders/${id}/address`, { ifMatch: 'W/"2"', body: { address: "Weak" } });
    expect(weak).toMatchObject({ status: 412, etag: '"2"' });
    expect(weak.body.message).toContain("weak");
    expect(await row(id)).toMatchObject({ address: "Old Street 1", status: "PAID", version: 2 });
    expect(
      await http("PUT", `/orders/${id}/address`, { ifMatch: '"1", "2"', body: { address: "Listed" } }),
    ).toMatchObject({ status: 200, etag: '"3"' });
    expect(await http("PUT", `/orders/${id}/address`, { ifMatch: "*", body: { address: "Any" } })).toMatchObject({
      status: 200,
      etag: '"4"',
    });

    const only409 = await start({ staleStatus: 409 });
    expect(
      await only409("PUT", `/orders/${id}/address`, { ifMatch: '"1"', body: { address: "Stale Street" } }),
    ).toMatchObject({ status: 409, etag: '"4"', body: { error: "conflict", currentVersion: 4 } });
  });

  it("a write that lands between our load and our save: 409 with the current version, nothing of ours written", async () => {
    const customerLoaded = deferred();
    const operatorDone = deferred();
    const http = await start({
      beforeSave: async (_order, request) => {
        if (request.url.endsWith("/address")) {
          customerLoaded.resolve();
          await operatorDone.promise;
        }
      },
    });
    const id = await newOrder();
    const customer = http("PUT", `/orders/${id}/address`, { ifMatch: '"1"', body: { address: "New Street 2" } });
    await customerLoaded.promise;
    const operator = await http("PUT", `/orders/${id}/status`, { ifMatch: '"1"', body: { status: "SHIPPED" } });
    operatorDone.resolve();
    expect(operator).toMatchObject({ status: 200, etag: '"2"' });
    expect(await customer).toMatchObject({
      status: 409,
      etag: '"2"',
      body: { error: "conflict", entity: "Order", currentVersion: 2, etag: '"2"' },
    });
    expect(await row(id)).toMatchObject({ address: "Old Street 1", status: "SHIPPED", version: 2 });
  });

  it("a row deleted between our load and our save: 409 with currentVersion null and no ETag", async () => {
    const customerLoaded = deferred();
    const deleted = deferred();
    const http = await start({
      beforeSave: async () => {
        customerLoaded.resolve();
        await deleted.promise;
      },
    });
    const id = await newOrder();
    const customer = http("PUT", `/orders/${id}/address`, { ifMatch: '"1"', body: { address: "New Street 2" } });
    await customerLoaded.promise;
    await source.getRepository(Order).delete({ id });
    deleted.resolve();
    expect(await customer).toMatchObject({
      status: 409,
      etag: undefined,
      body: { error: "conflict", currentVersion: null },
    });
    expect(await source.getRepository(Order).findOneBy({ id })).toBeNull();
  });

  it("two clients racing with the same ETag: one 200, the other 412 or 409, and the loser's change is not written", async () => {
    const http = await start();
    for (let round = 0; round < 5; round++) {
      const id = await newOrder();
      const { etag } = await http("GET", `/orders/${id}`);
      const answers = await Promise.all([
        http("PUT", `/orders/${id}/address`, { ifMatch: etag!, body: { address: "Customer Street" } }),
        http("PUT", `/orders/${id}/status`, { ifMatch: etag!, body: { status: "OPERATOR" } }),
      ]);
      const statuses = answers.map((a) => a.status);
      expect(statuses.filter((s) => s === 200)).toHaveLength(1);
      expect(statuses.filter((s) => s === 412 || s === 409)).toHaveLength(1);
      const saved = await row(id);
      expect(saved.version).toBe(2);
      if (answers[0].status === 200) expect(saved).toMatchObject({ address: "Customer Street", status: "NEW" });
      else expect(saved).toMatchObject({ address: "Old Street 1", status: "OPERATOR" });
    }
  });

  it("an ETag a route set before failing is removed; other errors go on to Fastify's own handler", async () => {
    const app = Fastify();
    apps.push(app);
    await app.register(fastifyConflictPlugin, { dataSource: source });
    app.put("/early-etag", { preHandler: fastifyRequireIfMatch() }, async (_request, reply) => {
      reply.header("ETag", '"1"');
      throw new OptimisticLockError({ entityName: "Order", id: { id: -1 }, expectedVersion: 1, operation: "update" });
    });
    app.get("/boom", async () => {
      throw Object.assign(new Error("teapot"), { statusCode: 418 });
    });
    const conflict = await app.inject({ method: "PUT", url: "/early-etag", headers: { "if-match": '"1"' } });
    expect(conflict.statusCode).toBe(409);
    expect(conflict.headers.etag).toBeUndefined();
    expect(conflict.json()).toMatchObject({ error: "conflict", currentVersion: null });
    const other = await app.inject({ method: "GET", url: "/boom" });
    expect(other.statusCode).toBe(418);
    expect(other.json()).toMatchObject({ message: "teapot" });
  });

  it("fastifyConflictHandler composes into an app's own error handler", async () => {
    const app = Fastify();
    apps.push(app);
    const conflicts = fastifyConflictHandler();
    app.setErrorHandler(async (error, request, reply) => {
      if (error instanceof Error && error.message === "mine") return reply.code(503).send({ mine: true });
      return conflicts(error, request, reply);
    });
    const order = Object.assign(new Order(), { id: 1, address: "a", status: "NEW", version: 3 });
    app.put("/check", async (request) => {
      checkIfMatch(order, request.headers["if-match"], { required: true });
      return { ok: true };
    });
    app.get("/mine", async () => {
      throw new Error("mine");
    });
    expect((await app.inject({ method: "PUT", url: "/check", headers: { "if-match": '"3"' } })).statusCode).toBe(200);
    expect((await app.inject({ method: "PUT", url: "/check", headers: { "if-match": '"2"' } })).statusCode).toBe(412);
    expect((await app.inject({ method: "PUT", url: "/check", headers: { "if-match": "3" } })).statusCode).toBe(400);
    expect((await app.inject({ method: "PUT", url: "/check" })).statusCode).toBe(428);
    expect((await app.inject({ method: "GET", url: "/mine" })).statusCode).toBe(503);
  });
});
