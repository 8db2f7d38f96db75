/**
 * The example HTTP API: `GET /orders/:id` answers the order with its ETag; `PUT
 * /orders/:id/address` and `PUT /orders/:id/status` need `If-Match` with that ETag.
 *
 *   no If-Match                          -> 428 Precondition Required
 *   malformed If-Match (3, "abc")        -> 400 Bad Request (nothing loaded)
 *   unknown order                        -> 404 Not Found
 *   If-Match of an older version         -> 412 Precondition Failed (nothing written)
 *   another write lands between our load and our save -> 409 Conflict (nothing written)
 *   each with the current version and ETag, so the client can reload and re-apply its change.
 */
import express, { type Express, type Request } from "express";
import type { DataSource } from "typeorm";
import { checkIfMatch, conflictErrorHandler, requireIfMatch, versionETag } from "../../src";
import { Order } from "./order";

export interface AppOptions {
  /** Answer 409 instead of 412 when If-Match does not match (for clients that know only 409). */
  staleStatus?: 409 | 412;
  /**
   * Called between loading the order and saving it: a seam for tests that make another write
   * land exactly there (the race a 409 answers). Not for production code.
   */
  beforeSave?: (order: Order, req: Request) => Promise<void>;
}

/** Builds the Express app on a DataSource that has typeorm-locking installed. */
export function createApp(dataSource: DataSource, options: AppOptions = {}): Express {
  const orders = dataSource.getRepository(Order);
  const app = express();
  app.use(express.json());

  app.get("/orders/:id", async (req, res, next) => {
    try {
      const order = await orders.findOneByOrFail({ id: Number(req.params.id) }); // 404 if unknown
      res.setHeader("ETag", versionETag(order.version));
      res.json(order);
    } catch (error) {
      next(error);
    }
  });

  /** Loads the order, checks If-Match, applies `change`, saves: the save is version-checked too. */
  const update =
    (field: "address" | "status") => async (req: Request, res: express.Response, next: express.NextFunction) => {
      try {
        const value = req.body?.[field];
        if (typeof value !== "string" || value === "") {
          return void res.status(400).json({ error: "bad-request", message: `${field} must be a non-empty string` });
        }
        const order = await orders.findOneByOrFail({ id: Number(req.params.id) });
        checkIfMatch(order, req.headers["if-match"], { required: true });
        order[field] = value;
        await options.beforeSave?.(order, req);
        await orders.save(order);
        res.setHeader("ETag", versionETag(order.version));
        res.json(order);
      } catch (error) {
        next(error);
      }
    };

  app.put("/orders/:id/address", requireIfMatch(), update("address"));
  app.put("/orders/:id/status", requireIfMatch(), update("status"));
  app.use(conflictErrorHandler({ dataSource, staleStatus: options.staleStatus }));
  return app;
}
