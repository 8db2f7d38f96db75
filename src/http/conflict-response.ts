import { type DataSource, EntityNotFoundError, type ObjectLiteral } from "typeorm";
import {
  type ConcurrencyError,
  MalformedIfMatchError,
  OptimisticLockError,
  PreconditionRequiredError,
  RowNotFoundError,
  StaleVersionError,
} from "../errors";
import { versionCodecOf } from "../version-codec";
import { versionETag } from "./etag";

/**
 * The HTTP answer to a version conflict (or a request the helpers refuse), ready to send: status,
 * headers (`ETag` of the current version when known, and no other ETag: an error body is not a
 * representation of the resource) and a JSON body.
 *
 * @example
 * ```ts
 * const answer = conflictResponse(error);
 * if (answer) return res.status(answer.status).set(answer.headers).json(answer.body);
 * ```
 */
export interface ConflictResponse {
  status: 400 | 404 | 409 | 412 | 428;
  headers: Record<string, string>;
  body: ConflictBody;
}

/**
 * The JSON body of a conflict answer: what a client needs to reload and re-apply its change.
 *
 * @example
 * ```ts
 * // 409: { "error": "conflict", "entity": "Order", "id": { "id": 1 }, "currentVersion": 8, "etag": "\"8\"", "message": "..." }
 * ```
 */
export interface ConflictBody {
  error: "conflict" | "precondition-failed" | "precondition-required" | "malformed-if-match" | "not-found";
  message: string;
  entity?: string;
  id?: unknown;
  /** The resource's version now, when known (`null`: it is gone). */
  currentVersion?: number | null;
  /** The strong ETag of `currentVersion`. */
  etag?: string;
}

/**
 * How version conflicts map to statuses.
 *
 * @example
 * ```ts
 * conflictResponse(error, { staleStatus: 409 }); // clients that only know 409
 * ```
 */
export interface ConflictResponseOptions {
  /**
   * The status for a request whose `If-Match` (or sent version) did not match before anything
   * was written: 412 Precondition Failed (RFC 9110 §15.5.13, the default) or 409 Conflict, for
   * clients that expect one status for every conflict.
   */
  staleStatus?: 412 | 409;
}

/**
 * The HTTP answer to a library error, or `undefined` for any other error:
 * - {@link MalformedIfMatchError} → 400 Bad Request (the header is wrong, not the client's copy);
 * - TypeORM's `EntityNotFoundError` (`findOneByOrFail` of an unknown id) → 404 Not Found;
 * - {@link PreconditionRequiredError} → 428 Precondition Required (RFC 6585 §3);
 * - {@link StaleVersionError} (If-Match or a sent version did not match, nothing written) → 412
 *   Precondition Failed (RFC 9110 §15.5.13), or 409 with `staleStatus: 409`;
 * - {@link RowNotFoundError} (the sent version names a row that is gone) → 404 Not Found;
 * - {@link OptimisticLockError} (the write itself lost the race) → 409 Conflict (RFC 9110
 *   §15.5.10).
 * `currentVersion` overrides the version the error carries (see {@link currentVersionOf}).
 *
 * @example
 * ```ts
 * try { await updateAddress(req); } catch (e) {
 *   const answer = conflictResponse(e, {}, e instanceof ConcurrencyError ? await currentVersionOf(dataSource, e) : undefined);
 *   if (!answer) throw e;
 *   reply.code(answer.status).headers(answer.headers).send(answer.body);
 * }
 * ```
 */
export function conflictResponse(
  error: unknown,
  options: ConflictResponseOptions = {},
  currentVersion?: number | null,
): ConflictResponse | undefined {
  if (error instanceof MalformedIfMatchError) {
    return { status: 400, headers: {}, body: { error: "malformed-if-match", message: error.message } };
  }
  if (error instanceof EntityNotFoundError) {
    // Not TypeORM's message: it prints the whole where-criteria, which need not be the client's to see.
    const entity = nameOf(error.entityClass);
    return {
      status: 404,
      headers: {},
      body: { error: "not-found", entity, message: `${entity ?? "The resource"} was not found.` },
    };
  }
  if (error instanceof PreconditionRequiredError) {
    return { status: 428, headers: {}, body: { error: "precondition-required", message: error.message } };
  }
  if (error instanceof RowNotFoundError) {
    const body: ConflictBody = {
      error: "not-found",
      message: error.message,
      entity: error.entityName,
      id: error.id,
      currentVersion: null,
    };
    return { status: 404, headers: {}, body };
  }
  if (!(error instanceof StaleVersionError || error instanceof OptimisticLockError)) return undefined;
  const stale = error instanceof StaleVersionError;
  const status = stale ? (options.staleStatus ?? 412) : 409;
  const version = currentVersion !== undefined ? currentVersion : (error.actualVersion ?? undefined);
  const body: ConflictBody = {
    error: status === 412 ? "precondition-failed" : "conflict",
    message: error.message,
    entity: error.entityName,
    id: error.id,
  };
  const headers: Record<string, string> = {};
  if (version !== undefined) {
    body.currentVersion = version;
    if (version !== null) headers.ETag = body.etag = versionETag(version);
  }
  return { status, headers, body };
}

/**
 * The version the conflicting row has now (`null` if it is gone), read with one SELECT, for the
 * 409 body when the error does not carry it. `undefined` when it cannot be read (a bulk remove,
 * an entity the DataSource does not know).
 *
 * @example
 * ```ts
 * const version = await currentVersionOf(dataSource, error); // 8
 * ```
 */
export async function currentVersionOf(
  dataSource: DataSource,
  error: ConcurrencyError,
): Promise<number | null | undefined> {
  if (error.actualVersion !== undefined) return error.actualVersion;
  if (error.id === null || typeof error.id !== "object" || Array.isArray(error.id)) return undefined;
  if (!dataSource.hasMetadata(error.entityName)) return undefined;
  const metadata = dataSource.getMetadata(error.entityName);
  const column = metadata.versionColumn;
  if (!column) return undefined;
  const row: ObjectLiteral | null = await dataSource.getRepository(metadata.target).findOne({
    where: error.id as ObjectLiteral,
    withDeleted: true,
  });
  if (!row) return null;
  return versionCodecOf(column).parse(column.getEntityValue(row)) ?? null;
}

/** The entity name of `EntityNotFoundError.entityClass` (a class, an EntitySchema or a name). */
function nameOf(target: unknown): string | undefined {
  if (typeof target === "string") return target;
  if (typeof target === "function") return target.name;
  const schemaName = (target as { options?: { name?: unknown } } | null)?.options?.name;
  return typeof schemaName === "string" ? schemaName : undefined;
}
