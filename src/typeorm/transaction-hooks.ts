/**
 * Marks `EntityManager.transaction()` callbacks (and so `DataSource.transaction()` and libraries
 * built on it, such as typeorm-transactional) as transaction scopes, for the retry helpers.
 */
import type { EntityManager } from "typeorm";
import { installationOf } from "../installation";
import { runInTransactionScope } from "../transaction-scope";
import { dataSourceOf, type TypeormInternals, wrap } from "./internals";

const patched = new WeakSet<object>();

/** Patches `EntityManager.prototype.transaction` once per loaded copy of TypeORM. */
export function installTransactionHooks(internals: TypeormInternals): void {
  const proto = internals.entityManager;
  if (patched.has(proto)) return;
  patched.add(proto);
  wrap(
    proto,
    "transaction",
    (transaction) =>
      function (this: EntityManager, isolationOrWork: unknown, maybeWork?: unknown) {
        if (!installationOf(dataSourceOf(this))) return transaction.call(this, isolationOrWork, maybeWork);
        const mark = (work: unknown) =>
          typeof work === "function" ? (manager: EntityManager) => runInTransactionScope(() => work(manager)) : work;
        return typeof isolationOrWork === "function"
          ? transaction.call(this, mark(isolationOrWork))
          : transaction.call(this, isolationOrWork, mark(maybeWork));
      },
  );
}
