/**
 * Numbers each transaction a query runner begins (see transaction-numbers.ts), whoever begins it:
 * `transaction()`, `save()`, typeorm-transactional or `queryRunner.startTransaction()` by hand.
 */
import type { QueryRunner } from "typeorm";
import { isNumbered, noteTransactionBegins } from "../transaction-numbers";
import type { Method } from "./internals";
import { patchRunnerPrototypes } from "./runner-prototypes";

/** Makes every query runner class number the transactions it begins. @internal */
export function installTransactionHooks(): void {
  patchRunnerPrototypes(numberTransactions);
}

function numberTransactions(proto: Record<string, unknown>): void {
  const start = proto.startTransaction as Method;
  proto.startTransaction = function (this: QueryRunner, ...args: unknown[]) {
    // A nested call opens a savepoint: it stays part of the transaction already numbered.
    if (!this.isTransactionActive) noteTransactionBegins(this);
    return start.apply(this, args);
  };
}

/** Numbers the transaction a runner has open if it began before its class was patched. @internal */
export function numberOpenTransaction(runner: QueryRunner): void {
  if (runner.isTransactionActive && !isNumbered(runner)) noteTransactionBegins(runner);
}
