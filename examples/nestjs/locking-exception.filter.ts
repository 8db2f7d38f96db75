import { type ArgumentsHost, Catch, Injectable } from "@nestjs/common";
import { BaseExceptionFilter } from "@nestjs/core";
import type { Response } from "express";
import { DataSource, EntityNotFoundError } from "typeorm";
import { ConcurrencyError, conflictResponse, currentVersionOf, LockingError } from "../../src";

/**
 * Answers the library's errors with the statuses of its Express `conflictErrorHandler`:
 * 428 without a required If-Match, 412 when If-Match names another version (StaleVersionError),
 * 409 when the write lost a race (OptimisticLockError), 400 for a malformed If-Match, and 404 for
 * TypeORM's EntityNotFoundError (`findOneByOrFail`). Any other error goes to Nest's own handling.
 */
@Injectable()
@Catch(LockingError, EntityNotFoundError)
export class LockingExceptionFilter extends BaseExceptionFilter {
  constructor(private readonly dataSource: DataSource) {
    super();
  }

  override async catch(error: LockingError | EntityNotFoundError, host: ArgumentsHost): Promise<void> {
    const response = host.switchToHttp().getResponse<Response>();
    // conflictResponse answers MalformedIfMatchError (400), EntityNotFoundError (404, naming the
    // entity, not the criteria), PreconditionRequiredError (428), StaleVersionError (412) and
    // OptimisticLockError (409). The row's version now, for the 409 body and ETag when the error
    // does not carry it:
    const current =
      error instanceof ConcurrencyError
        ? await currentVersionOf(this.dataSource, error).catch(() => undefined)
        : undefined;
    const answer = conflictResponse(error, {}, current);
    if (!answer) return super.catch(error, host); // a lock timeout, a deadlock...: Nest's 500
    send(response, answer.status, answer.headers, answer.body);
  }
}

/** `end()`, not `json()`: Express's `json()` would add a weak ETag of the error body itself. */
function send(response: Response, status: number, headers: Record<string, string>, body: object): void {
  response.status(status).set(headers).type("application/json").end(JSON.stringify(body));
}
