import { AsyncLocalStorage } from "node:async_hooks";
import type { FindOneOptions, ObjectLiteral, SelectQueryBuilder } from "typeorm";
import type { WaitPolicy } from "./dialect/lock-dialect";
import { describeValue, LockingConfigurationError } from "./errors";
import { assertLockMode, type LockMode, type LockOptions, waitPolicyOf } from "./lock-mode";

/** A lock mode and wait asked for one query, or for every query of a `@Lock` method call. @internal */
export interface LockRequest {
  readonly mode: LockMode;
  readonly wait?: WaitPolicy;
  /** Entity classes a `@Lock` scope applies to; `undefined` = every entity. */
  readonly entities?: readonly Function[];
}

// Stryker disable next-line StringLiteral: equivalent (docs/testing.md); any key no other code uses
const LOCK_REQUEST = Symbol.for("typeorm-locking.lock-request");
const scope = new AsyncLocalStorage<LockRequest>();

/**
 * A find-options fragment carrying a lock request (under a private symbol); spread it into
 * `find*()` options, or pass it as the options.
 *
 * @example
 * ```ts
 * const locked: LockModeOption = withLockMode(LockMode.PESSIMISTIC_READ);
 * await manager.find(Order, { where: { status: "NEW" }, ...locked });
 * ```
 */
// `select` is left out: on TypeORM 0.3 `FindOneOptions<any>["select"]` includes `(keyof any)[]`,
// which no entity's options accept, so a spread `...withLockMode()` did not compile there.
// biome-ignore lint/suspicious/noExplicitAny: a fragment that fits the find options of any entity
export type LockModeOption = Omit<FindOneOptions<any>, "select">;

/**
 * A find-options fragment that runs the query under a lock mode: spread it into the options of
 * `find`, `findOne`, `findOneOrFail`, `findBy`... (the `*By` shortcuts take no options: use
 * `findOne({ where })`). TypeORM's own `lock:` option keeps working as before when this is absent.
 *
 * @example
 * ```ts
 * await dataSource.transaction(async (manager) => {
 *   const order = await manager.findOneOrFail(Order, {
 *     where: { id },
 *     ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 1000 }),
 *   });
 * });
 * ```
 */
export function withLockMode(mode: LockMode, options?: LockOptions): LockModeOption {
  return { [LOCK_REQUEST]: makeRequest(mode, options, "withLockMode()") } as LockModeOption;
}

/**
 * Runs a `SelectQueryBuilder` under a lock mode (for `getOne`, `getMany`, `getOneOrFail`,
 * `getRawAndEntities`). Returns the same builder.
 *
 * @example
 * ```ts
 * const jobs = await lockQuery(
 *   manager.createQueryBuilder(Job, "job").where("job.state = :s", { s: "ready" }).limit(10),
 *   LockMode.PESSIMISTIC_WRITE,
 *   { timeout: SKIP_LOCKED },
 * ).getMany();
 * ```
 */
export function lockQuery<Q extends SelectQueryBuilder<ObjectLiteral>>(
  query: Q,
  mode: LockMode,
  options?: LockOptions,
): Q {
  (query.expressionMap as unknown as Record<symbol, LockRequest>)[LOCK_REQUEST] = makeRequest(
    mode,
    options,
    "lockQuery()",
  );
  return query;
}

/**
 * Runs `work` with a lock mode applied to every entity query inside it, including nested awaits
 * (what the {@link Lock} decorator does). Concurrent calls do not see each other's settings.
 *
 * @example
 * ```ts
 * await runWithLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: 0 }, () => orders.findOneBy({ id }));
 * ```
 */
export function runWithLockMode<T>(mode: LockMode, options: LockOptions & { entities?: Function[] }, work: () => T): T {
  const request = makeRequest(mode, options, "runWithLockMode()");
  if (typeof work !== "function") {
    throw new LockingConfigurationError("runWithLockMode(): pass the work to run as a function.");
  }
  return scope.run({ ...request, entities: entitiesOf(options, "runWithLockMode()") }, work);
}

/**
 * Options of {@link Lock}: the wait, and which entities the lock applies to.
 *
 * @example
 * ```ts
 * @Lock(LockMode.PESSIMISTIC_WRITE, { timeout: 0, entities: [Order, OrderLine] })
 * ```
 */
export interface LockDecoratorOptions extends LockOptions {
  /**
   * The entity classes whose queries get the lock. Defaults to the repository's entity when the
   * decorated method belongs to a TypeORM `Repository` subclass, else every entity.
   */
  entities?: Function[];
}

/**
 * Spring Data's `@Lock` + `@QueryHints(lock.timeout)` for TypeORM: every query for the entity
 * run inside a call of the decorated method (nested awaits included) uses the mode and timeout.
 * Outside the call nothing changes; concurrent calls do not see each other's settings.
 *
 * @example
 * ```ts
 * class OrderRepository extends Repository<Order> {
 *   @Lock(LockMode.PESSIMISTIC_WRITE, { timeout: 2000 })
 *   findForShipping(id: number) {
 *     return this.findOneByOrFail({ id });
 *   }
 * }
 * ```
 */
export function Lock(mode: LockMode, options: LockDecoratorOptions = {}): MethodDecorator {
  const request = makeRequest(mode, options, "@Lock()");
  const chosen = entitiesOf(options, "@Lock()");
  return (_target, key, descriptor: PropertyDescriptor) => {
    const method = descriptor.value as (...args: unknown[]) => unknown;
    if (typeof method !== "function") {
      throw new LockingConfigurationError(`@Lock() decorates methods; ${String(key)} is not one.`);
    }
    descriptor.value = function (this: unknown, ...args: unknown[]) {
      const entities = chosen ?? repositoryTargetOf(this);
      return scope.run({ ...request, entities }, () => method.apply(this, args));
    };
    return descriptor;
  };
}

function repositoryTargetOf(self: unknown): Function[] | undefined {
  const target = (self as { metadata?: { target?: unknown } } | undefined)?.metadata?.target;
  return typeof target === "function" ? [target] : undefined;
}

/** The `entities` option, checked: a list of entity classes, or `undefined` for every entity. */
function entitiesOf(options: { entities?: Function[] } | null | undefined, where: string): Function[] | undefined {
  const entities = options?.entities;
  if (entities === undefined) return undefined;
  if (!Array.isArray(entities) || entities.some((e) => typeof e !== "function")) {
    throw new LockingConfigurationError(
      `${where}: entities must be a list of entity classes, e.g. { entities: [Order] }; got ${describeValue(entities)}.`,
    );
  }
  return [...entities];
}

function makeRequest(mode: LockMode, options: LockOptions | null | undefined, where: string): LockRequest {
  assertLockMode(mode, where);
  return { mode, wait: waitPolicyOf(options, where) };
}

/**
 * The lock request that applies to a query: one set on the builder, else one in its find
 * options, else the innermost `@Lock` scope if it covers the query's entity.
 *
 * @internal
 */
export function lockRequestOf(query: {
  expressionMap: { mainAlias?: { hasMetadata: boolean; metadata: { target: unknown } } };
  findOptions?: unknown;
}): LockRequest | undefined {
  const own = (query.expressionMap as unknown as Record<symbol, LockRequest | undefined>)[LOCK_REQUEST];
  if (own) return own;
  const fromFind = (query.findOptions as Record<symbol, LockRequest | undefined> | undefined)?.[LOCK_REQUEST];
  if (fromFind) return fromFind;
  const scoped = scope.getStore();
  if (!scoped || !query.expressionMap.mainAlias?.hasMetadata) return undefined;
  const target = query.expressionMap.mainAlias.metadata.target;
  return !scoped.entities ||
    scoped.entities.some((e) => e === target || (typeof target === "function" && target.prototype instanceof e))
    ? scoped
    : undefined;
}

/** Runs `work` with no `@Lock` scope: for the library's own queries inside a scope. @internal */
export function outsideLockScope<T>(work: () => T): T {
  // exit() switches the async hooks off and on again; most calls have no scope to leave.
  // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); exit() with no scope runs work as it is
  return scope.getStore() === undefined ? work() : scope.exit(work);
}
