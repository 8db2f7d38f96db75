/**
 * The NestJS set-up of docs/nestjs.md (examples/nestjs) booted as a Nest testing module on
 * SQLite and driven over real HTTP on a loopback port: `TypeOrmModule.forRootAsync` with a
 * `dataSourceFactory` that installs the library, a custom repository using `@Lock`, and the
 * exception filter answering 404/400/428/412/409 like the Express handler.
 */

import type { INestApplication } from "@nestjs/common";
import { Test } from "@nestjs/testing";
import { getDataSourceToken } from "@nestjs/typeorm";
import type { DataSource } from "typeorm";
import { AppModule } from "../examples/nestjs/app.module";
import { Order } from "../examples/nestjs/order.entity";
import { OrderRepository } from "../examples/nestjs/order.repository";
import { LockingError, OptimisticLockError } from "../src";
import { describeEachDatabase } from "./support/databases";

interface Answer {
  status: number;
  etag: string | null;
  body: Record<string, unknown>;
}

describeEachDatabase(() => {
  let app: INestApplication;
  let dataSource: DataSource;
  let orders: OrderRepository;
  let base: string;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, "127.0.0.1");
    base = (await app.getUrl()).replace("[::1]", "127.0.0.1");
    dataSource = app.get<DataSource>(getDataSourceToken());
    orders = app.get(OrderRepository);
  });
  afterAll(async () => {
    await app?.close();
  });

  async function http(
    method: "GET" | "PUT",
    path: string,
    init: { ifMatch?: string; body?: unknown } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (init.ifMatch !== undefined) headers["if-match"] = init.ifMatch;
    const response = await fetch(base + path, {
      method,
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    return {
      status: response.status,
      etag: response.headers.get("etag"),
      body: (await response.json()) as Record<string, unknown>,
    };
  }

  const newOrder = async () => (await orders.save(orders.create({ address: "Old Street 1", status: "NEW" }))).id;

  it("the DataSource Nest creates has the library installed: a stale save is a caught OptimisticLockError", async () => {
    const id = await newOrder();
    const operatorCopy = await orders.findOneByOrFail({ id });
    const customerCopy = await orders.findOneByOrFail({ id });
    customerCopy.address = "2 New Road";
    await orders.save(customerCopy);

    operatorCopy.status = "SHIPPED";
    let caught: unknown;
    try {
      await orders.save(operatorCopy);
    } catch (error) {
      if (error instanceof OptimisticLockError) caught = error;
      else throw error;
    }
    expect(caught).toBeInstanceOf(OptimisticLockError);
    expect(caught).toMatchObject({ entityName: "Order", expectedVersion: 1 });
    expect(await orders.findOneByOrFail({ id })).toMatchObject({ address: "2 New Road", status: "NEW", version: 2 });
  });

  it("@Lock on the repository's method applies: outside a transaction the locked read is refused", async () => {
    const id = await newOrder();
    await expect(orders.findForUpdate(id)).rejects.toThrow(LockingError);
    await expect(orders.findForUpdate(id)).rejects.toThrow(/needs a transaction/);
    const order = await dataSource.transaction((manager) => manager.withRepository(orders).findForUpdate(id));
    expect(order).toMatchObject({ id, version: 1 });
  });

  it("GET answers the order with its ETag; an unknown id (EntityNotFoundError) is 404 without an ETag", async () => {
    const id = await newOrder();
    expect(await http("GET", `/orders/${id}`)).toMatchObject({ status: 200, etag: '"1"', body: { id, version: 1 } });
    expect(await http("GET", "/orders/999999")).toMatchObject({
      status: 404,
      etag: null,
      body: { error: "not-found" },
    });
  });

  for (const field of ["address", "status"] as const) {
    describe(`PUT /orders/:id/${field} (${field === "status" ? "under @Lock, in a transaction" : "load, check, save"})`, () => {
      it("with the current ETag: 200, the new ETag, the change written", async () => {
        const id = await newOrder();
        const answer = await http("PUT", `/orders/${id}/${field}`, { ifMatch: '"1"', body: { [field]: "NEW VALUE" } });
        expect(answer).toMatchObject({ status: 200, etag: '"2"', body: { [field]: "NEW VALUE", version: 2 } });
      });

      it("without If-Match: 428, no ETag, nothing written", async () => {
        const id = await newOrder();
        const answer = await http("PUT", `/orders/${id}/${field}`, { body: { [field]: "BLIND" } });
        expect(answer).toMatchObject({ status: 428, etag: null, body: { error: "precondition-required" } });
        expect(await orders.findOneByOrFail({ id })).toMatchObject({ version: 1 });
      });

      it("with the ETag of an older version (StaleVersionError): 412 with the current ETag, nothing written", async () => {
        const id = await newOrder();
        await http("PUT", `/orders/${id}/${field}`, { ifMatch: '"1"', body: { [field]: "FIRST" } });
        const answer = await http("PUT", `/orders/${id}/${field}`, { ifMatch: '"1"', body: { [field]: "SECOND" } });
        expect(answer).toMatchObject({
          status: 412,
          etag: '"2"',
          body: { error: "precondition-failed", entity: "Order", currentVersion: 2 },
        });
        expect(await orders.findOneByOrFail({ id })).toMatchObject({ [field]: "FIRST", version: 2 });
      });

      for (const malformed of ["1", '"abc', "W/", '"1" "2"', '"abc"']) {
        it(`with a malformed If-Match (${malformed}): 400 naming the header, no ETag, nothing written`, async () => {
          const id = await newOrder();
          const answer = await http("PUT", `/orders/${id}/${field}`, { ifMatch: malformed, body: { [field]: "X" } });
          expect(answer).toMatchObject({ status: 400, etag: null, body: { error: "malformed-if-match" } });
          expect(String(answer.body.message)).toContain(malformed);
          expect(await orders.findOneByOrFail({ id })).toMatchObject({ version: 1 });
        });
      }

      it("for an unknown id: 404", async () => {
        const answer = await http("PUT", `/orders/999999/${field}`, { ifMatch: '"1"', body: { [field]: "X" } });
        expect(answer).toMatchObject({ status: 404, etag: null, body: { error: "not-found" } });
      });
    });
  }

  it("a write landing between the service's load and its save: 409 with the current version, nothing of ours written", async () => {
    const id = await newOrder();
    // One-shot: right after the service loaded the order, someone else changes it.
    const subscriber = {
      listenTo: () => Order,
      afterLoad: async () => {
        dataSource.subscribers.splice(dataSource.subscribers.indexOf(subscriber as never), 1);
        await dataSource
          .createQueryBuilder()
          .update(Order)
          .set({ status: "CANCELLED", version: () => "version + 1" })
          .where("id = :id", { id })
          .execute();
      },
    };
    dataSource.subscribers.push(subscriber as never);
    const answer = await http("PUT", `/orders/${id}/address`, { ifMatch: '"1"', body: { address: "LOSER" } });
    expect(answer).toMatchObject({
      status: 409,
      etag: '"2"',
      body: { error: "conflict", entity: "Order", currentVersion: 2 },
    });
    expect(await orders.findOneByOrFail({ id })).toMatchObject({
      address: "Old Street 1",
      status: "CANCELLED",
      version: 2,
    });
  });

  it("errors that are not the library's keep Nest's own answer (ParseIntPipe: 400 from Nest)", async () => {
    const answer = await http("GET", "/orders/not-a-number");
    expect(answer).toMatchObject({ status: 400, body: { statusCode: 400 } });
  });
}, ["sqlite"]);
