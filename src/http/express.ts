/**
 * Express (4 and 5) integration, typed structurally so that the library does not depend on
 * Express: any framework with Express-shaped `req`/`res`/`next` can use it.
 */
import type { DataSource } from "typeorm";
import { ConcurrencyError, jsonOf, PreconditionRequiredError } from "../errors";
import {
  type ConflictResponse,
  type ConflictResponseOptions,
  conflictResponse,
  currentVersionOf,
} from "./conflict-response";
import { describeRequest, readIfMatch } from "./precondition";

/** The part of an Express request the integration reads. */
export interface RequestLike {
  headers: Record<string, string | string[] | undefined>;
  method?: string;
  originalUrl?: string;
}

/**
 * The part of an Express response the integration writes. `removeHeader` and `end` (Node's) are
 * used when present, so that an error answer carries no ETag but the resource's.
 */
export interface ResponseLike {
  headersSent?: boolean;
  status(code: number): ResponseLike;
  setHeader(name: string, value: string): unknown;
  json(body: unknown): unknown;
  removeHeader?(name: string): unknown;
  end?(chunk: string): unknown;
}

/** Express's `next`. */
export type NextLike = (error?: unknown) => void;

/**
 * Middleware for routes that change a resource: a request without `If-Match` is answered 428
 * Precondition Required (through the error handler, as a {@link PreconditionRequiredError}), one
 * whose `If-Match` cannot be evaluated 400 (`MalformedIfMatchError`), before anything is loaded.
 *
 * @example
 * ```ts
 * app.put("/orders/:id/address", requireIfMatch(), updateAddress);
 * ```
 */
export function requireIfMatch(): (req: RequestLike, res: ResponseLike, next: NextLike) => void {
  return (req, _res, next) => {
    let absent: boolean;
    try {
      absent = readIfMatch(req.headers["if-match"]).kind === "absent";
    } catch (error) {
      return next(error);
    }
    if (absent) return next(new PreconditionRequiredError(describeRequest(req.method, req.originalUrl)));
    next();
  };
}

/**
 * Options of {@link conflictErrorHandler}.
 *
 * @example
 * ```ts
 * app.use(conflictErrorHandler({ dataSource, staleStatus: 409 }));
 * ```
 */
export interface ConflictErrorHandlerOptions extends ConflictResponseOptions {
  /** Reads the row's current version for a 409 whose error does not carry it (one SELECT). */
  dataSource?: DataSource;
}

/**
 * Express error handler answering version conflicts: 428 without a required `If-Match`, 400 for
 * a malformed one, 412 (or 409 with `staleStatus: 409`) when `If-Match` did not match, 409 when
 * the write lost the race, 404 for TypeORM's `EntityNotFoundError` (`findOneByOrFail`), each with
 * a JSON body. The only ETag it sends is the resource's current one, when known: neither one the
 * route set before failing nor the weak tag Express computes for a body.
 * Any other error goes to the next handler.
 *
 * @example
 * ```ts
 * app.use(conflictErrorHandler({ dataSource }));
 * ```
 */
export function conflictErrorHandler(
  options: ConflictErrorHandlerOptions = {},
): (error: unknown, req: RequestLike, res: ResponseLike, next: NextLike) => Promise<void> {
  return async (error, _req, res, next) => {
    if (res.headersSent) return next(error);
    let current: number | null | undefined;
    if (options.dataSource && error instanceof ConcurrencyError) {
      current = await currentVersionOf(options.dataSource, error).catch(() => undefined);
    }
    const answer = conflictResponse(error, options, current);
    if (!answer) return next(error);
    send(res, answer);
  };
}

function send(res: ResponseLike, answer: ConflictResponse): void {
  if (answer.headers.ETag === undefined) res.removeHeader?.("ETag");
  for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
  res.status(answer.status);
  if (typeof res.end !== "function") return void res.json(answer.body);
  // Not res.json(): Express's res.send() adds a weak ETag of the body when none is set, and an
  // error body is no representation of the resource for a client to send back in If-Match.
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.end(jsonOf(answer.body)); // an id may hold a bigint
}
