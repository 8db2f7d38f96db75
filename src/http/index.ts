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
export { type EntityTag, type IfMatch, ifMatchHolds, parseIfMatch } from "./if-match";
export { checkIfMatch } from "./precondition";
