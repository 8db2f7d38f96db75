export {
  type ConflictBody,
  type ConflictResponse,
  type ConflictResponseOptions,
  conflictResponse,
  currentVersionOf,
} from "./conflict-response";
export { versionETag, versionOfETag } from "./etag";
export {
  type ConflictErrorHandlerOptions,
  conflictErrorHandler,
  type NextLike,
  type RequestLike,
  type ResponseLike,
  requireIfMatch,
} from "./express";
export {
  type FastifyConflictOptions,
  type FastifyConflictPlugin,
  type FastifyInstanceLike,
  type FastifyReplyLike,
  type FastifyRequestLike,
  fastifyConflictHandler,
  fastifyConflictPlugin,
  fastifyRequireIfMatch,
} from "./fastify";
export { type EntityTag, type IfMatch, ifMatchHolds, parseIfMatch } from "./if-match";
export { checkIfMatch, readIfMatch } from "./precondition";
