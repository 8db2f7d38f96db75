/**
 * Express (4 and 5) integration, typed structurally so that the library does not depend on
 * Express: any framework with Express-shaped `req`/`res`/`next` can use it.
 */
import type { DataSource } from "typeorm";
import { ConcurrencyError, PreconditionRequiredError } from "../errors";
import { type ConflictResponseOptions, conflictResponse, currentVersionOf } from "./conflict-response";
import { parseIfMatch } from "./if-match";

/** The part of an Express request the integration reads. */
export interface RequestLike {
  headers: Record<string, string | string[] | undefined>;
  method?: string;
  originalUrl?: string;
}

/** The part of an Express response the integration writes. */
export interface ResponseLike {
  headersSent?: boolean;
  status(code: number): ResponseLike;
  setHeader(name: string, value: string): unknown;
  json(body: unknown): unknown;
}

/** Express's `next`. */
export type NextLike = (error?: unknown) => void;

/**
 * Middleware for routes that change a resource: a request without `If-Match` is answered 428
 * Precondition Required (through the error handler, as a {@link PreconditionRequiredError}).
 *
 * @example
 * ```ts
 * app.put("/orders/:id/address", requireIfMatch(), updateAddress);
 * ```
 */
export function requireIfMatch(): (req: RequestLike, res: ResponseLike, next: NextLike) => void {
  return (req, _res, next) => {
    if (parseIfMatch(req.headers["if-match"]).kind === "absent") {
      next(new PreconditionRequiredError(`${req.method ?? "This request"} ${req.originalUrl ?? ""}`.trim()));
      return;
    }
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
 * Express error handler answering version conflicts: 428 without a required `If-Match`, 412 (or
 * 409 with `staleStatus: 409`) when `If-Match` did not match, 409 when the write lost the race,
 * each with a JSON body and the current version's `ETag`. Any other error goes to the next handler.
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
    for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
    res.status(answer.status).json(answer.body);
  };
}
