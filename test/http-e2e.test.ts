/**
 * The example Express API (examples/express) on a loopback port, driven with real HTTP requests,
 * on every database: ETags on GET, 428/412/409 on PUT, two clients racing, and a browser-style
 * client that reloads and re-applies its change on a conflict.
 */

import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import type { DataSource } from "typeorm";
import { type AppOptions, createApp } from "../examples/express/app";
import { Order } from "../examples/express/order";
import { conflictErrorHandler, currentVersionOf, installLocking, OptimisticLockError, requireIfMatch } from "../src";
import { describeEachDatabase, openDataSources } from "./support/databases";
import { deferred } from "./support/interleaving";

interface Answer {
  status: number;
  etag: string | null;
  body: Record<string, unknown>;
}

describeEachDatabase((db) => {
  let source: DataSource;
  const servers: Server[] = [];

  beforeAll(async () => {
    [source] = await openDataSources(db, [Order]);
    installLocking(source);
  });
  afterAll(async () => {
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  /** Starts the example app on 127.0.0.1 and an ephemeral port; returns a request function. */
  async function start(options: AppOptions = {}) {
    const server = createApp(source, options).listen(0, "127.0.0.1");
    servers.push(server);
    await new Promise((resolve) => server.once("listening", resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return async (
      method: "GET" | "PUT",
      path: string,
      init: { ifMatch?: string; body?: unknown } = {},
    ): Promise<Answer> => {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (init.ifMatch !== undefined) headers["if-match"] = init.ifMatch;
      const response = await fetch(base + path, {
        method,
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      });
      const text = await response.text(); // Node's own 431 has no body
      return {
        status: response.status,
        etag: response.headers.get("etag"),
        body: (text === "" ? {} : JSON.parse(text)) as Record<string, unknown>,
      };
    };
  }

  async function newOrder(): Promise<number> {
    return (await source.getRepository(Order).save({ address: "Old Street 1", status: "NEW" } as Order)).id;
  }
  const row = (id: number) => source.getRepository(Order).findOneByOrFail({ id });

  it("GET answers the order with the strong ETag of its version; an unknown order is 404 without an ETag", async () => {
    const http = await start();
    const id = await newOrder();
    expect(await http("GET", `/orders/${id}`)).toMatchObject({ status: 200, etag: '"1"', body: { id, version: 1 } });
    expect(await http("GET", "/orders/999999")).toMatchObject({
      status: 404,
      etag: null,
      body: { error: "not-found", entity: "Order" },
    });
  });

  it("a PUT to an unknown order (findOneByOrFail) is 404, not 500, with no ETag", async () => {
    const http = await start();
    const answer = await http("PUT", "/orders/999999/address", { ifMatch: '"1"', body: { address: "Nowhere 1" } });
    expect(answer).toMatchObject({
      status: 404,
      etag: null,
      body: { error: "not-found", entity: "Order", message: "Order was not found." },
    });
  });

  it("a malformed If-Match is 400 saying what is wrong with it, with no ETag, and writes nothing", async () => {
    const http = await start();
    const id = await newOrder();
    for (const [ifMatch, reason] of [
      ["1", "quoted"],
      ['"abc"', '"abc" names no version'],
      ['""', '"" names no version'],
      ['"1", 2', "quoted"],
      ['"1', "no closing quote"],
      ['*, "1"', "stands alone"],
    ]) {
      const answer = await http("PUT", `/orders/${id}/address`, { ifMatch, body: { address: "Malformed 1" } });
      expect(answer).toMatchObject({ status: 400, etag: null, body: { error: "malformed-if-match" } });
      expect(answer.body.message).toContain(reason);
    }
    expect(await row(id)).toMatchObject({ address: "Old Street 1", version: 1 });
    // An unknown order with a malformed header: the header is refused first, before any lookup.
    expect((await http("PUT", "/orders/999999/address", { ifMatch: "1", body: { address: "x" } })).status).toBe(400);
  });

  it("hostile If-Match headers: 1,000 tags are evaluated, one bad member is a 400; a header beyond Node's limit is 431 before the app", async () => {
    const http = await start();
    const id = await newOrder();
    const thousand = Array.from({ length: 1000 }, (_, i) => `"${i + 100}"`);
    expect(
      await http("PUT", `/orders/${id}/address`, { ifMatch: thousand.join(","), body: { address: "x" } }),
    ).toMatchObject({ status: 412, etag: '"1"' });
    expect(
      await http("PUT", `/orders/${id}/address`, {
        ifMatch: [...thousand, '"1"'].join(","),
        body: { address: "Many" },
      }),
    ).toMatchObject({ status: 200, etag: '"2"' });
    const badMember = await http("PUT", `/orders/${id}/address`, {
      ifMatch: [...thousand, '"abc"'].join(","),
      body: { address: "x" },
    });
    expect(badMember).toMatchObject({ status: 400, etag: null, body: { error: "malformed-if-match" } });
    // Node's HTTP parser refuses headers over --max-http-header-size (16 KB) with 431 itself.
    const huge = await http("PUT", `/orders/${id}/address`, { ifMatch: `"${"2".repeat(1 << 20)}"` });
    expect(huge).toMatchObject({ status: 431, etag: null });
    expect(await row(id)).toMatchObject({ address: "Many", version: 2 });
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
      etag: null,
      body: { error: "conflict", entity: "Order", currentVersion: null },
    });
    expect(await source.getRepository(Order).findOneBy({ id })).toBeNull();
  });

  it("a PUT without If-Match is 428 Precondition Required, with no ETag, and writes nothing", async () => {
    const http = await start();
    const id = await newOrder();
    const answer = await http("PUT", `/orders/${id}/address`, { body: { address: "Blind Write 9" } });
    expect(answer).toMatchObject({ status: 428, etag: null, body: { error: "precondition-required" } });
    expect(await row(id)).toMatchObject({ address: "Old Street 1", version: 1 });
  });

  it("If-Match of an older version is 412 with the current version and ETag; a weak tag never matches; * and lists do", async () => {
    const http = await start();
    const id = await newOrder();
    expect((await http("PUT", `/orders/${id}/status`, { ifMatch: '"1"', body: { status: "PAID" } })).status).toBe(200);

    const stale = await http("PUT", `/orders/${id}/address`, { ifMatch: '"1"', body: { address: "Stale Street" } });
    expect(stale).toMatchObject({
      status: 412,
      etag: '"2"',
      body: { error: "precondition-failed", entity: "Order", currentVersion: 2, etag: '"2"' },
    });
    expect((await http("PUT", `/orders/${id}/address`, { ifMatch: 'W/"2"', body: { address: "Weak" } })).status).toBe(
      412,
    );
    expect(await row(id)).toMatchObject({ address: "Old Street 1", status: "PAID", version: 2 });

    expect(
      await http("PUT", `/orders/${id}/address`, { ifMatch: '"1", "2"', body: { address: "Listed" } }),
    ).toMatchObject({
      status: 200,
      etag: '"3"',
    });
    expect(await http("PUT", `/orders/${id}/address`, { ifMatch: "*", body: { address: "Any" } })).toMatchObject({
      status: 200,
      etag: '"4"',
    });
  });

  it("configured to answer 409 for both kinds, a stale If-Match is 409", async () => {
    const http = await start({ staleStatus: 409 });
    const id = await newOrder();
    await http("PUT", `/orders/${id}/status`, { ifMatch: '"1"', body: { status: "PAID" } });
    const answer = await http("PUT", `/orders/${id}/address`, { ifMatch: '"1"', body: { address: "Stale Street" } });
    expect(answer).toMatchObject({ status: 409, etag: '"2"', body: { error: "conflict", currentVersion: 2 } });
  });

  it("a write that lands between our load and our save: 409 Conflict with the current version, nothing of ours written", async () => {
    const customerLoaded = deferred();
    const operatorDone = deferred();
    const http = await start({
      beforeSave: async (_order, req) => {
        if (req.path.endsWith("/address")) {
          customerLoaded.resolve();
          await operatorDone.promise;
        }
      },
    });
    const id = await newOrder();
    const customer = http("PUT", `/orders/${id}/address`, { ifMatch: '"1"', body: { address: "New Street 2" } });
    await customerLoaded.promise; // the customer's request passed If-Match and holds version 1
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

  it("a browser-style client reloads on a conflict and re-applies its change: both people's changes survive", async () => {
    const http = await start();
    const id = await newOrder();
    /** What a form does: GET, edit, PUT with If-Match; on 412/409 reload and apply the edit again. */
    async function editAddress(address: string, page: Answer): Promise<{ reloads: number; final: Answer }> {
      let reloads = 0;
      for (;;) {
        const answer = await http("PUT", `/orders/${id}/address`, { ifMatch: page.etag!, body: { address } });
        if (answer.status !== 412 && answer.status !== 409) return { reloads, final: answer };
        reloads++;
        page = await http("GET", `/orders/${id}`);
      }
    }
    const customerPage = await http("GET", `/orders/${id}`);
    // The operator ships the order while the customer's form is open.
    expect(
      (await http("PUT", `/orders/${id}/status`, { ifMatch: customerPage.etag!, body: { status: "SHIPPED" } })).status,
    ).toBe(200);
    const { reloads, final } = await editAddress("New Street 2", customerPage);
    expect(reloads).toBe(1);
    expect(final).toMatchObject({ status: 200, etag: '"3"' });
    expect(await row(id)).toMatchObject({ address: "New Street 2", status: "SHIPPED", version: 3 });
  });

  /** Serves `app` on 127.0.0.1 and an ephemeral port; returns its base URL. */
  async function serve(app: express.Express): Promise<string> {
    const server = app.listen(0, "127.0.0.1");
    servers.push(server);
    await new Promise((resolve) => server.once("listening", resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it("requireIfMatch() alone answers 428 before the route runs; with If-Match the route runs", async () => {
    let ran = 0;
    const app = express();
    app.put("/blind", requireIfMatch(), (_req, res) => {
      ran++;
      res.json({ ok: true });
    });
    app.use(conflictErrorHandler());
    const base = await serve(app);
    const missing = await fetch(`${base}/blind`, { method: "PUT" });
    expect(missing.status).toBe(428);
    expect(await missing.json()).toMatchObject({ error: "precondition-required" });
    expect(ran).toBe(0);
    expect((await fetch(`${base}/blind`, { method: "PUT", headers: { "if-match": "1" } })).status).toBe(400);
    expect(ran).toBe(0);
    expect((await fetch(`${base}/blind`, { method: "PUT", headers: { "if-match": '"1"' } })).status).toBe(200);
    expect(ran).toBe(1);
  });

  it("a conflict after the answer has started goes on to the next error handler untouched", async () => {
    const conflict = new OptimisticLockError({
      entityName: "Order",
      id: { id: -1 },
      expectedVersion: 1,
      operation: "update",
    });
    const seen: unknown[] = [];
    const app = express();
    app.get("/streaming", (_req, res, next) => {
      res.write("partial");
      next(conflict);
    });
    app.use(conflictErrorHandler({ dataSource: source }));
    app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      seen.push(error);
      res.end();
    });
    const response = await fetch(`${await serve(app)}/streaming`, { signal: AbortSignal.timeout(10_000) });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("partial");
    expect(seen).toEqual([conflict]);
  });

  it("currentVersionOf gives the version an error carries, reads the row's for one that lacks it; undefined for what it cannot read", async () => {
    const id = await newOrder();
    const lost = (errorId: unknown, entityName = "Order") =>
      new OptimisticLockError({ entityName, id: errorId, expectedVersion: 0, operation: "update" });
    expect(await currentVersionOf(source, lost({ id }))).toBe(1);
    expect(await currentVersionOf(source, lost({ id: 999999 }))).toBeNull();
    // A list of ids (a bulk remove), no id, a bare key value: no one row to read.
    for (const errorId of [[{ id }], null, id, String(id)]) {
      expect(await currentVersionOf(source, lost(errorId))).toBeUndefined();
    }
    // An entity the DataSource does not know.
    expect(await currentVersionOf(source, lost({ id }, "NoSuchEntity"))).toBeUndefined();
    // An error that found the version says it, even where no row could be read (a bulk remove,
    // an unknown entity) and though the row has moved on since: the version the conflict saw.
    const found = (errorId: unknown, entityName = "Order") =>
      new OptimisticLockError({ entityName, id: errorId, expectedVersion: 0, actualVersion: 5, operation: "update" });
    for (const [errorId, entityName] of [
      [[{ id }], "Order"],
      [{ id }, "NoSuchEntity"],
      [{ id }, "Order"],
    ] as const) {
      expect(await currentVersionOf(source, found(errorId, entityName))).toBe(5);
    }
  });

  it("an ETag the route set before failing is removed from the error answer", async () => {
    const app = express();
    app.put("/early-etag", (_req, res, next) => {
      res.setHeader("ETag", '"1"');
      next(new OptimisticLockError({ entityName: "Order", id: { id: -1 }, expectedVersion: 1, operation: "update" }));
    });
    app.use(conflictErrorHandler({ dataSource: source }));
    const server = app.listen(0, "127.0.0.1");
    servers.push(server);
    await new Promise((resolve) => server.once("listening", resolve));
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/early-etag`, {
      method: "PUT",
    });
    expect(response.status).toBe(409);
    expect(response.headers.get("etag")).toBeNull();
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(await response.json()).toMatchObject({ error: "conflict", currentVersion: null });
  });
});
