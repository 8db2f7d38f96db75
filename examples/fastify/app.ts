/**
 * The example HTTP API of examples/express, on Fastify: `GET /orders/:id` answers the order with
 * its ETag; `PUT /orders/:id/address` and `PUT /orders/:id/status` need `If-Match` with that ETag.
 *
 *   no If-Match                          -> 428 Precondition Required
 *   malformed If-Match (3, "abc")        -> 400 Bad Request (nothing loaded)
 *   unknown order                        -> 404 Not Found
 *   If-Match of an older version         -> 412 Precondition Failed (nothing written)
 *   another write lands between our load and our save -> 409 Conflict (nothing written)
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { DataSource } from "typeorm";
import { checkIfMatch, fastifyConflictPlugin, fastifyRequireIfMatch, versionETag } from "../../src";
import { Order } from "../express/order";

export interface FastifyAppOptions {
  /** Answer 409 instead of 412 when If-Match does not match (for clients that know only 409). */
  staleStatus?: 409 | 412;
  /**
   * Called between loading the order and saving it: a seam for tests that make another write
   * land exactly there (the race a 409 answers). Not for production code.
   */
  beforeSave?: (order: Order, request: FastifyRequest) => Promise<void>;
}

type OrderRequest = FastifyRequest<{ Params: { id: string }; Body: { address?: unknown; status?: unknown } }>;

/** Builds the Fastify app on a DataSource that has typeorm-locking installed. */
export async function createFastifyApp(
  dataSource: DataSource,
  options: FastifyAppOptions = {},
): Promise<FastifyInstance> {
  const orders = dataSource.getRepository(Order);
  const app = Fastify();
  await app.register(fastifyConflictPlugin, { dataSource, staleStatus: options.staleStatus });

  app.get("/orders/:id", async (request: OrderRequest, reply) => {
    const order = await orders.findOneByOrFail({ id: Number(request.params.id) }); // 404 if unknown
    return reply.header("ETag", versionETag(order.version)).send(order);
  });

  const update = (field: "address" | "status") => async (request: OrderRequest, reply: FastifyReply) => {
    const value = request.body?.[field];
    if (typeof value !== "string" || value === "") {
      return reply.code(400).send({ error: "bad-request", message: `${field} must be a non-empty string` });
    }
    const order = await orders.findOneByOrFail({ id: Number(request.params.id) });
    checkIfMatch(order, request.headers["if-match"], { required: true }); // 412 if it does not match
    order[field] = value;
    await options.beforeSave?.(order, request);
    await orders.save(order); // 409 if someone saved meanwhile
    return reply.header("ETag", versionETag(order.version)).send(order);
  };

  app.put("/orders/:id/address", { preHandler: fastifyRequireIfMatch() }, update("address"));
  app.put("/orders/:id/status", { preHandler: fastifyRequireIfMatch() }, update("status"));
  return app;
}
