/**
 * Fastify integration (tested with Fastify 5), typed structurally so that the library neither
 * imports nor depends on Fastify: the plugin is a plain function with Fastify's `skip-override`
 * flag set (what `fastify-plugin` does), so its error handler applies to the scope it is
 * registered in.
 */
import type { DataSource } from "typeorm";
import { ConcurrencyError, PreconditionRequiredError } from "../errors";
import { type ConflictResponseOptions, conflictResponse, currentVersionOf } from "./conflict-response";
import { describeRequest, readIfMatch } from "./precondition";

/** The part of a Fastify request the integration reads. */
export interface FastifyRequestLike {
  headers: Record<string, string | string[] | undefined>;
  method?: string;
  url?: string;
}

/** The part of a Fastify reply the integration writes. */
export interface FastifyReplyLike {
  sent?: boolean;
  code(statusCode: number): FastifyReplyLike;
  header(name: string, value: string): FastifyReplyLike;
  removeHeader(name: string): FastifyReplyLike;
  send(payload?: unknown): FastifyReplyLike;
}

/** The part of a Fastify instance the plugin uses. */
export interface FastifyInstanceLike {
  setErrorHandler(handler: (error: unknown, request: FastifyRequestLike, reply: FastifyReplyLike) => unknown): unknown;
}

/**
 * Options of {@link fastifyConflictPlugin} and {@link fastifyConflictHandler}.
 *
 * @example
 * ```ts
 * import type { FastifyConflictOptions } from "typeorm-locking";
 * const options: FastifyConflictOptions = { staleStatus: 409 };
 * ```
 */
export interface FastifyConflictOptions extends ConflictResponseOptions {
  /** Reads the row's current version for a 409 whose error does not carry it (one SELECT). */
  dataSource?: DataSource;
}

/**
 * Fastify error handler answering what the library's errors mean in HTTP: 400 for a malformed
 * `If-Match`, 404 for TypeORM's `EntityNotFoundError` (`findOneByOrFail`), 412 (or 409 with
 * `staleStatus: 409`) when `If-Match` did not match, 409 when the write lost the race, 428 without
 * a required `If-Match`; JSON bodies as {@link conflictResponse} builds them. The only ETag sent is
 * the resource's current one, when known (one a route set before failing is removed). Any other
 * error is thrown on to the parent scope's error handler (Fastify's default at the root).
 *
 * @example
 * ```ts
 * import Fastify from "fastify";
 * import { fastifyConflictHandler } from "typeorm-locking";
 * const app = Fastify();
 * app.setErrorHandler(fastifyConflictHandler());
 * ```
 */
export function fastifyConflictHandler(
  options: FastifyConflictOptions = {},
): (error: unknown, request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<FastifyReplyLike> {
  return async (error, _request, reply) => {
    if (reply.sent) throw error;
    let current: number | null | undefined;
    if (options.dataSource && error instanceof ConcurrencyError) {
      current = await currentVersionOf(options.dataSource, error).catch(() => undefined);
    }
    const answer = conflictResponse(error, options, current);
    if (!answer) throw error;
    if (answer.headers.ETag === undefined) reply.removeHeader("etag");
    for (const [name, value] of Object.entries(answer.headers)) reply.header(name, value);
    return reply.code(answer.status).send(answer.body);
  };
}

/** A Fastify plugin function, flagged to share its registering scope (`fastify-plugin`'s flag). */
export type FastifyConflictPlugin = ((
  instance: FastifyInstanceLike,
  options: FastifyConflictOptions,
) => Promise<void>) & {
  [key: symbol]: unknown;
};

/**
 * The Fastify plugin: sets {@link fastifyConflictHandler} as the error handler of the scope it is
 * registered in (register it on the root, before the routes). Fastify 5 refuses a second
 * `setErrorHandler` in one scope: an app with its own root handler calls
 * `fastifyConflictHandler(options)` from it instead of registering the plugin.
 *
 * @example
 * ```ts
 * import Fastify from "fastify";
 * import { fastifyConflictPlugin, fastifyRequireIfMatch } from "typeorm-locking";
 * const app = Fastify();
 * app.register(fastifyConflictPlugin, { staleStatus: 412 });
 * app.put("/orders/:id/address", { preHandler: fastifyRequireIfMatch() }, async () => ({}));
 * ```
 */
export const fastifyConflictPlugin: FastifyConflictPlugin = Object.assign(
  async (instance: FastifyInstanceLike, options: FastifyConflictOptions) => {
    instance.setErrorHandler(fastifyConflictHandler(options));
  },
  { [Symbol.for("skip-override")]: true, [Symbol.for("fastify.display-name")]: "typeorm-locking" },
);

/**
 * `preHandler` hook for routes that change a resource: a request without `If-Match` fails with
 * {@link PreconditionRequiredError} (428), one with a malformed `If-Match` with
 * `MalformedIfMatchError` (400), before the handler loads anything.
 *
 * @example
 * ```ts
 * import Fastify from "fastify";
 * import { fastifyRequireIfMatch } from "typeorm-locking";
 * const app = Fastify();
 * app.put("/orders/:id/address", { preHandler: fastifyRequireIfMatch() }, async () => ({}));
 * ```
 */
export function fastifyRequireIfMatch(): (request: FastifyRequestLike, reply: unknown) => Promise<void> {
  return async (request) => {
    if (readIfMatch(request.headers["if-match"]).kind === "absent") {
      throw new PreconditionRequiredError(describeRequest(request.method, request.url));
    }
  };
}
