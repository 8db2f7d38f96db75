import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import type { DataSource, ObjectLiteral } from "typeorm";
import { type OfflineLockMessage, offlineLockChannel } from "../channels";
import {
  AlreadyLockedError,
  describeValue,
  LockingConfigurationError,
  OfflineLockBypassError,
  OfflineLockLostError,
  OfflineLockRequiredError,
} from "../errors";
import { installationOf } from "../installation";
import { LockMode } from "../lock-mode";
import { lockQuery } from "../lock-request";
import { installationForLockRequest } from "../typeorm/activation";
import {
  aggregateRootOf,
  type ChangedRoot,
  existingRootsChangedBy,
  isSavedSide,
  type JunctionSide,
  junctionSides,
} from "../typeorm/aggregate-versions";
import { knownDialectOf } from "../typeorm/error-translation";
import { dataSourceOf, type SubjectExecutorLike, type SubjectLike } from "../typeorm/internals";
import { addPreWriteCheck } from "../typeorm/pre-write-checks";
import { addUncheckedWriteCheck, type UncheckedWrite } from "../typeorm/unchecked-writes";
import { OFFLINE_LOCK_TABLE, OfflineLockRecord } from "./offline-lock-record";

/**
 * A held offline lock: pass it (or its `handle` string, e.g. kept in a session) to check, extend
 * and release the lock, and to `runHolding` for writes that require it.
 *
 * @example
 * ```ts
 * const lock = await locks.tryLock("Order", 42, { owner: "kim", ttlMs: 300_000 });
 * session.orderLock = lock.handle; // unguessable; the only way to act on the lock
 * ```
 */
export interface OfflineLockHandle {
  /** Unguessable id of this hold (128 random bits, hex). */
  readonly handle: string;
  readonly lockType: string;
  readonly lockId: string;
  readonly owner: string;
  /**
   * Rises every time the lock is taken: a downstream system that remembers the highest token it
   * has seen can refuse a write carrying a lower one (a holder that paused past its expiry).
   */
  readonly fencingToken: number;
  /** Expiry by the database's clock. */
  readonly expiresAt: Date;
}

/**
 * Options of {@link OfflineLockManager.tryLock}.
 *
 * @example
 * ```ts
 * await locks.tryLock("Order", id, { owner: user.email, ttlMs: 10 * 60_000 } satisfies TryLockOptions);
 * ```
 */
export interface TryLockOptions {
  /** Who takes the lock, shown to others in `AlreadyLockedError` (a user name or id). */
  owner: string;
  /** How long the lock lasts unless extended, in ms (a positive integer). */
  ttlMs: number;
}

/**
 * How a protected entity maps to its lock.
 *
 * @example
 * ```ts
 * locks.protect(OrderLine, { lockType: "Order", lockIdOf: (line: OrderLine) => line.orderId });
 * ```
 */
export interface ProtectOptions<T> {
  /** The lock type; default: the entity's name. */
  lockType?: string;
  /**
   * The lock id of an entity; default: its primary key value(s), joined with ",". Must give an id
   * for every entity written (nothing for a member of a protected root is fine: the root's lock
   * covers it).
   */
  lockIdOf?: (entity: T) => string | number | null | undefined;
}

interface Protection {
  lockType: string;
  lockIdOf: (entity: ObjectLiteral) => string | number | null | undefined;
}

/**
 * A handle in scope of `runHolding`: the handle object (its lock known), or only its string (its
 * lock is then found by the check, which reads the row anyway).
 */
interface HeldHandle {
  handle: string;
  lockType?: string;
  lockId?: string;
}

/** One lock a flush needs, and the entity that needs it (for the error). */
interface Requirement {
  entityName: string;
  lockType: string;
  lockId: string;
}

const MAX_TAKE_ATTEMPTS = 5;
const held = new AsyncLocalStorage<readonly HeldHandle[]>();
const protections = new WeakMap<DataSource, Map<Function, Protection>>();

/**
 * Pessimistic offline locks (Fowler's Pessimistic Offline Lock): a lock on a resource that
 * outlives a transaction, e.g. while an editor form is open for minutes. Stored in the
 * application's database (table {@link OfflineLockRecord}), expiring by the database's clock, and
 * acted on only through the unguessable handle `tryLock` returns.
 *
 * Exactly one of any number of concurrent `tryLock` calls wins: taking a lock is one conditional
 * UPDATE (`... WHERE expires_at <= now`), which the database serializes on the row.
 *
 * @example
 * ```ts
 * const locks = new OfflineLockManager(dataSource).protect(Order);
 * const lock = await locks.tryLock("Order", 42, { owner: "kim", ttlMs: 5 * 60_000 }); // or AlreadyLockedError
 * // ... minutes later, the form is submitted:
 * await locks.runHolding(lock, async () => {
 *   const order = await orders.findOneByOrFail({ id: 42 });
 *   order.address = form.address;
 *   await orders.save(order); // refused (OfflineLockRequiredError) if the lock lapsed meanwhile
 * });
 * await locks.releaseLock(lock);
 * ```
 */
export class OfflineLockManager {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * Takes the lock on `type`/`id` for `ttlMs`, if it is free or expired. Throws
   * {@link AlreadyLockedError} naming the holder and expiry otherwise.
   */
  tryLock(type: string, id: string | number, options: TryLockOptions): Promise<OfflineLockHandle> {
    return this.orMissingTable(() => this.take(type, id, options));
  }

  private async take(type: string, id: string | number, options: TryLockOptions): Promise<OfflineLockHandle> {
    const lockType = storable(type, "tryLock() type", 100);
    if (!(typeof id === "string" || typeof id === "bigint" || (typeof id === "number" && Number.isFinite(id)))) {
      throw new LockingConfigurationError(
        `tryLock() id must be a string or a finite number (the resource's id), got ${describeValue(id)}.`,
      );
    }
    const lockId = storable(String(id), "tryLock() id", 150);
    const owner = storable(options?.owner, "tryLock() owner", 200);
    const ttlMs = positiveMs(options?.ttlMs, "tryLock() ttlMs");
    const handle = randomBytes(16).toString("hex");
    const now = this.now();
    const repository = this.repository();
    for (let attempt = 1; attempt <= MAX_TAKE_ATTEMPTS; attempt++) {
      // The row is created free once and kept forever, so the fencing token never restarts.
      await repository
        .createQueryBuilder()
        .insert()
        .into(OfflineLockRecord)
        .values({ lockType, lockId, handle: null, owner: null, fencingToken: 0, expiresAt: 0 })
        .orIgnore()
        .execute();
      // Only an observer needs to know whose expired lock is about to be taken over.
      const before = offlineLockChannel.hasSubscribers ? await repository.findOneBy({ lockType, lockId }) : null;
      const taken = await repository
        .createQueryBuilder()
        .update(OfflineLockRecord)
        .set({ handle, owner, fencingToken: () => "fencing_token + 1", expiresAt: () => `${now} + ${ttlMs}` })
        .where("lock_type = :lockType AND lock_id = :lockId", { lockType, lockId })
        .andWhere(`expires_at <= ${now}`)
        .execute();
      if (taken.affected === 1) {
        const lock = await this.checkLock(handle);
        if (offlineLockChannel.hasSubscribers) {
          const previousOwner = before?.owner ?? undefined;
          const event = previousOwner === undefined ? "acquired" : "taken-over";
          this.publish({ event, lockType, lockId, owner, previousOwner });
        }
        return lock;
      }
      const current = await repository.findOneBy({ lockType, lockId });
      if (current?.handle && current.owner !== null) {
        const holder = await this.heldRecord(current.handle);
        if (holder)
          throw this.refused(
            new AlreadyLockedError({ lockType, lockId, owner: holder.owner!, expiresAt: new Date(holder.expiresAt) }),
          );
      }
      // Released or expired between our UPDATE and our look: try again.
    }
    throw this.refused(new AlreadyLockedError({ lockType, lockId, owner: "(contended)", expiresAt: new Date() }));
  }

  /** The lock as it stands if `handle` still holds it; {@link OfflineLockLostError} if not. */
  checkLock(handle: OfflineLockHandle | string): Promise<OfflineLockHandle> {
    return this.orMissingTable(async () => {
      const value = handleOf(handle);
      // A string tryLock() never made (a forged or mangled session value) holds nothing: no query.
      const record = isHandle(value) ? await this.heldRecord(value) : null;
      if (!record) throw this.lost(handle, "checkLock()");
      return toHandle(record);
    });
  }

  /** Moves the expiry to `ttlMs` from now (database clock); {@link OfflineLockLostError} if no longer held. */
  extendLock(handle: OfflineLockHandle | string, ttlMs: number): Promise<OfflineLockHandle> {
    return this.orMissingTable(async () => {
      const ms = positiveMs(ttlMs, "extendLock() ttlMs");
      if (!isHandle(handleOf(handle))) throw this.lost(handle, "extendLock()");
      const now = this.now();
      const result = await this.repository()
        .createQueryBuilder()
        .update(OfflineLockRecord)
        .set({ expiresAt: () => `${now} + ${ms}` })
        .where("handle = :handle", { handle: handleOf(handle) })
        .andWhere(`expires_at > ${now}`)
        .execute();
      if (result.affected !== 1) throw this.lost(handle, "extendLock()");
      const lock = await this.checkLock(handle);
      if (offlineLockChannel.hasSubscribers) this.publish({ event: "extended", ...lockNames(lock) });
      return lock;
    });
  }

  /**
   * Frees the lock. {@link OfflineLockLostError} if the handle no longer held it: whatever was
   * done under it after it lapsed was not protected.
   */
  releaseLock(handle: OfflineLockHandle | string): Promise<void> {
    return this.orMissingTable(async () => {
      if (!isHandle(handleOf(handle))) throw this.lost(handle, "releaseLock()");
      const now = this.now();
      const result = await this.repository()
        .createQueryBuilder()
        .update(OfflineLockRecord)
        .set({ handle: null, owner: null, expiresAt: 0 })
        .where("handle = :handle", { handle: handleOf(handle) })
        .andWhere(`expires_at > ${now}`)
        .execute();
      if (result.affected !== 1) throw this.lost(handle, "releaseLock()");
      if (offlineLockChannel.hasSubscribers) this.publish({ event: "released", ...lockNames(handle) });
    });
  }

  /**
   * Makes every update and removal of `entity` through the library require its offline lock:
   * the write must run inside {@link runHolding} with a handle for that entity, and the handle
   * must still hold, checked inside the save's transaction (the lock row is row-locked until
   * commit, so it cannot be taken over between the check and the write). Inserts are not
   * checked: a new entity has no lock yet. Enforced on any initialized DataSource: one never passed
   * to `installLocking()` is activated with the default options.
   *
   * On an aggregate root (`@VersionedBy` members), the lock covers the whole aggregate with no
   * further declaration: every member change that moves the root's version (a member inserted,
   * changed or removed by cascade or through its own repository, an orphan deleted, a
   * many-to-many link added or removed) needs the root's lock. Writes that name no entity
   * (`repository.update()`/`delete()`/`upsert()`, query-builder writes) of a protected entity,
   * of a member of a protected root or of their junction tables are refused with
   * {@link OfflineLockBypassError}, since they cannot be checked.
   */
  protect<T extends ObjectLiteral>(entity: new (...args: never[]) => T, options: ProtectOptions<T> = {}): this {
    if (!installationOf(this.dataSource)) {
      if (!this.dataSource.isInitialized) {
        throw new LockingConfigurationError(
          `OfflineLockManager.protect(${entity.name}): initialize the DataSource (or call installLocking(dataSource)) first.`,
        );
      }
      // A lock the code asked for is enforced, installLocking() or not (default options).
      installationForLockRequest(this.dataSource);
    }
    const map = protections.get(this.dataSource) ?? new Map<Function, Protection>();
    protections.set(this.dataSource, map);
    map.set(entity, {
      lockType: options.lockType ?? entity.name,
      lockIdOf: (options.lockIdOf as Protection["lockIdOf"]) ?? primaryKeyOf(this.dataSource, entity),
    });
    addPreWriteCheck(requireHeldLocks, "refusal");
    addUncheckedWriteCheck(refuseUncheckedWrites);
    return this;
  }

  /**
   * Runs `work` holding `handle`: writes of protected entities inside it (awaited calls included)
   * are checked against it. Nested calls add their handles to the outer ones. Takes the handle
   * object or its `handle` string (e.g. from a session); anything else is refused with
   * {@link LockingConfigurationError}, never ignored.
   *
   * @example
   * ```ts
   * await locks.runHolding(session.orderLock, () => orders.save(order)); // the handle string
   * ```
   */
  runHolding<R>(handle: OfflineLockHandle | string, work: () => R): R {
    const value = handleOf(handle, "runHolding()");
    if (typeof work !== "function") {
      throw new LockingConfigurationError("OfflineLockManager.runHolding(): pass the work to run as a function.");
    }
    const entry: HeldHandle =
      typeof handle === "string"
        ? { handle: value }
        : { handle: value, lockType: handle.lockType, lockId: handle.lockId };
    return held.run([...(held.getStore() ?? []), entry], work);
  }

  private repository() {
    if (!this.dataSource.hasMetadata(OfflineLockRecord)) {
      throw new LockingConfigurationError(
        "OfflineLockManager: the DataSource does not know OfflineLockRecord. Add it to `entities` and create " +
          "its table (OfflineLockTableMigration in `migrations`, or synchronize).",
      );
    }
    return this.dataSource.getRepository(OfflineLockRecord);
  }

  private now(): string {
    return clockOf(this.dataSource);
  }

  private orMissingTable<R>(work: () => Promise<R>): Promise<R> {
    return orMissingTable(this.dataSource, work);
  }

  private heldRecord(handle: string): Promise<OfflineLockRecord | null> {
    return this.repository()
      .createQueryBuilder("lock")
      .where("lock.handle = :handle", { handle })
      .andWhere(`lock.expires_at > ${this.now()}`)
      .getOne();
  }

  private lost(handle: OfflineLockHandle | string, operation: string): OfflineLockLostError {
    const known = typeof handle === "string" ? undefined : handle;
    const error = new OfflineLockLostError({
      handle: handleOf(handle),
      lockType: known?.lockType ?? "(resource)",
      lockId: known?.lockId ?? "",
      operation,
    });
    if (offlineLockChannel.hasSubscribers) this.publish({ event: "lost", ...lockNames(handle), operation, error });
    return error;
  }

  private refused(error: AlreadyLockedError): AlreadyLockedError {
    if (offlineLockChannel.hasSubscribers) {
      const { lockType, lockId, owner } = error;
      this.publish({ event: "refused", lockType, lockId, owner, error });
    }
    return error;
  }

  /** Publishes an offline lock event; call only when the channel has subscribers. */
  private publish(message: Omit<OfflineLockMessage, "dataSource">): void {
    offlineLockChannel.publish({ ...message, dataSource: this.dataSource } satisfies OfflineLockMessage);
  }
}

/** The resource and holder of a handle, as far as it says (a handle string says nothing). */
function lockNames(handle: OfflineLockHandle | string): Pick<OfflineLockMessage, "lockType" | "lockId" | "owner"> {
  if (typeof handle === "string") return { lockType: "(resource)", lockId: "" };
  return { lockType: handle.lockType, lockId: handle.lockId, owner: handle.owner };
}

/**
 * The pre-write check `protect()` registers: every protected entity the flush updates or removes,
 * every protected root whose aggregate it changes, and every protected entity whose many-to-many
 * links it changes, needs a held lock.
 */
async function requireHeldLocks(executor: SubjectExecutorLike): Promise<void> {
  const dataSource = dataSourceOf(executor.queryRunner);
  const map = protections.get(dataSource);
  if (!map) return;
  const required = new Map<string, Requirement>();
  const need = (protection: Protection, entityName: string, lockId: string) =>
    required.set(`${protection.lockType}\u0000${lockId}`, { entityName, lockType: protection.lockType, lockId });

  for (const subject of [
    ...executor.updateSubjects,
    ...executor.removeSubjects,
    ...executor.softRemoveSubjects,
    ...executor.recoverSubjects,
  ]) {
    const protection = map.get(subject.metadata.target as Function);
    const entity = subject.entity ?? subject.identifier;
    if (!protection || !entity) continue;
    const lockId = lockIdOf(protection, entity);
    if (lockId !== undefined) need(protection, subject.metadata.name, lockId);
    else if (!coveredByProtectedRoot(dataSource, subject, map)) throw noLockId(subject, protection);
    // An update that changes the lock id itself (an order moved from one city's lock to another's)
    // takes the entity out of the resource it was in: that one's holder must be asked too, as for a
    // member moved between roots. TypeORM's pre-load already holds the row as it was.
    const before = subject.databaseEntity ? lockIdBefore(protection, subject.databaseEntity) : undefined;
    if (before !== undefined) need(protection, subject.metadata.name, before);
  }
  // Many-to-many links: the junction row belongs to the entity being saved (a new one needs none).
  const inserted = new Set(executor.insertSubjects);
  for (const subject of [...executor.insertSubjects, ...executor.removeSubjects]) {
    const owner = subject.metadata.isJunction ? subject.parentSubject : undefined;
    const protection = owner?.entity ? map.get(owner.metadata.target as Function) : undefined;
    if (!owner?.entity || !protection || inserted.has(owner)) continue;
    const lockId = lockIdOf(protection, owner.entity);
    if (lockId === undefined) throw noLockId(owner, protection);
    need(protection, owner.metadata.name, lockId);
  }
  // The other side of a junction row: a link added or removed from the inverse side changes the
  // protected entity's links too (as a bypassing write of the junction row counts for either side).
  for (const subject of [...executor.insertSubjects, ...executor.removeSubjects]) {
    if (!subject.metadata.isJunction) continue;
    for (const side of junctionSides(subject)) {
      const protection = map.get(side.metadata.target as Function);
      if (!protection || isSavedSide(side, subject.parentSubject) || isInserted(side, executor)) continue;
      const lockId = lockIdOf(protection, side.entity) ?? (await lockIdOfStoredRoot(executor, protection, side));
      if (lockId === undefined) throw noLockId(side, protection);
      need(protection, side.metadata.name, lockId);
    }
  }
  // The aggregates the flush changes through their members, as the version bump sees them.
  for (const root of await existingRootsChangedBy(executor)) {
    const protection = map.get(root.metadata.target as Function);
    if (!protection) continue;
    const lockId = lockIdOf(protection, root.entity) ?? (await lockIdOfStoredRoot(executor, protection, root));
    if (lockId === undefined) throw noLockId({ metadata: root.metadata }, protection);
    need(protection, root.metadata.name, lockId);
  }
  for (const requirement of required.values()) await requireHeld(executor, requirement);
}

/** Checks one lock inside the flush's transaction, and keeps it row-locked until commit. */
async function requireHeld(executor: SubjectExecutorLike, { entityName, lockType, lockId }: Requirement) {
  const dataSource = dataSourceOf(executor.queryRunner);
  const refuse = (reason: string) => {
    const error = new OfflineLockRequiredError({ entityName, lockType, lockId, reason });
    if (offlineLockChannel.hasSubscribers) {
      const message = { event: "write-refused", lockType, lockId, operation: entityName, error, dataSource } as const;
      offlineLockChannel.publish(message satisfies OfflineLockMessage);
    }
    return error;
  };
  const candidates = (held.getStore() ?? []).filter(
    (h) => h.lockType === undefined || (h.lockType === lockType && h.lockId === lockId),
  );
  if (candidates.length === 0) throw refuse("this write holds no handle for it (write inside runHolding(handle, ...))");
  // Only strings tryLock() could have made can hold a lock; others are not sent to the database.
  const handles = candidates.map((h) => h.handle).filter(isHandle);
  if (handles.length === 0) throw refuse("no handle it runs with is one tryLock() returned");
  // The check holds the lock's row until the write commits; without a transaction the lock could
  // be taken over between the check and the write.
  if (!executor.queryRunner.isTransactionActive) {
    throw new LockingConfigurationError(
      `${entityName} is protected by the offline lock ${lockType}: a write of it is checked against the lock ` +
        "inside its transaction, and save(..., { transaction: false }) has none. Leave the transaction on, or " +
        "save inside dataSource.transaction(async (manager) => ...) within runHolding().",
    );
  }
  // Locked until this transaction ends: a take-over waits for our commit, then sees our expiry.
  const record = await orMissingTable(dataSource, () =>
    lockQuery(
      executor.queryRunner.manager
        .createQueryBuilder(OfflineLockRecord, "lock")
        .where("lock.handle IN (:...handles) AND lock.lock_type = :lockType AND lock.lock_id = :lockId", {
          handles,
          lockType,
          lockId,
        })
        .andWhere(`lock.expires_at > ${clockOf(dataSource)}`),
      LockMode.PESSIMISTIC_WRITE,
    ).getOne(),
  );
  if (record) return;
  throw refuse(
    candidates.some((h) => h.lockType !== undefined)
      ? "the handle no longer holds it (it expired, was released, or was taken over)"
      : "no handle string it runs with holds it (each is for another resource, or expired, was released, or was taken over)",
  );
}

/** The rule `protect()` registers for writes past the persistence layer: see OfflineLockBypassError. */
function refuseUncheckedWrites({ dataSource, metadata, kind }: UncheckedWrite): void {
  const map = protections.get(dataSource);
  if (!map) return;
  // A junction row links two entities: it is a change of either side.
  const sides = metadata.isJunction ? metadata.foreignKeys.map((fk) => fk.referencedEntityMetadata) : [metadata];
  for (const side of sides) {
    const own = map.get(side.target as Function);
    // A new entity has no lock yet: a plain insert of a protected entity is fine (as with save()).
    if (own && (kind !== "insert" || metadata.isJunction)) {
      throw new OfflineLockBypassError({
        entityName: metadata.name,
        lockType: own.lockType,
        operation: kind,
        coveredBy: `protect(${side.name}) requires`,
      });
    }
    const root = aggregateRootOf(dataSource, side);
    const protection = root && root !== side ? map.get(root.target as Function) : undefined;
    if (root && protection) {
      throw new OfflineLockBypassError({
        entityName: metadata.name,
        lockType: protection.lockType,
        operation: kind,
        coveredBy: `protect(${root.name}) requires for its whole aggregate`,
      });
    }
  }
}

/** The lock id of an entity, or `undefined` when `lockIdOf` cannot tell (e.g. a relation not set). */
function lockIdOf(protection: Protection, entity: ObjectLiteral): string | undefined {
  const id = protection.lockIdOf(entity);
  return id === undefined || id === null || String(id) === "" ? undefined : String(id);
}

/**
 * The lock id a row had before this write, from TypeORM's pre-load. `undefined` when `lockIdOf`
 * cannot tell from it: the pre-load holds only the relations the entity saved carries, and a
 * `lockIdOf` written for the application's entities may throw on the rest; the id the entity is
 * written with is required anyway.
 */
function lockIdBefore(protection: Protection, row: ObjectLiteral): string | undefined {
  try {
    return lockIdOf(protection, row);
  } catch {
    return undefined;
  }
}

/**
 * The lock id of a root as its row holds it, for a root the flush knows by id only (a member
 * moving out of it was loaded without it) whose `lockIdOf` reads another column than the key.
 * Read inside the flush's transaction; `undefined` when the row has no id to give either.
 */
async function lockIdOfStoredRoot(
  executor: SubjectExecutorLike,
  protection: Protection,
  root: ChangedRoot,
): Promise<string | undefined> {
  const id = root.metadata.getEntityIdMap(root.entity);
  if (!id) return undefined;
  const row = await executor.queryRunner.manager
    .getRepository(root.metadata.target)
    .createQueryBuilder()
    .setFindOptions({ loadEagerRelations: false, withDeleted: true })
    .whereInIds(id)
    .getOne();
  return row ? lockIdOf(protection, row) : undefined;
}

/**
 * Whether a junction end is inserted by the same flush (a new entity has no lock yet). TypeORM
 * writes a junction end as the flush's subject of that entity whenever there is one, so an
 * inserted end is always its subject (an end given as a plain object or an id has none).
 */
function isInserted(side: JunctionSide, executor: SubjectExecutorLike): boolean {
  return executor.insertSubjects.some((s) => s === side.subject);
}

/**
 * Whether a member whose own lock id cannot be told (a custom `lockIdOf` reading a relation
 * that a cascade leaves unset) belongs to a protected root: the root's check covers it then.
 */
function coveredByProtectedRoot(dataSource: DataSource, subject: SubjectLike, map: Map<Function, Protection>): boolean {
  const root = aggregateRootOf(dataSource, subject.metadata);
  return root !== undefined && root !== subject.metadata && map.has(root.target as Function);
}

function noLockId(subject: Pick<SubjectLike, "metadata">, protection: Protection): LockingConfigurationError {
  return new LockingConfigurationError(
    `OfflineLockManager: the lockIdOf given to protect(${subject.metadata.name}) returned no id for a ` +
      `${subject.metadata.name} being written (lock ${protection.lockType}), so its lock cannot be checked. ` +
      "Read the id from a column that is always set, or, for a @VersionedBy member, protect its root " +
      "instead: protect(Root) covers the whole aggregate.",
  );
}

/** Runs `work`; a missing offline lock table becomes a LockingConfigurationError saying how to create it. */
async function orMissingTable<R>(dataSource: DataSource, work: () => Promise<R>): Promise<R> {
  try {
    return await work();
  } catch (error) {
    if (!knownDialectOf(dataSource)?.isMissingTable(error)) throw error;
    throw new LockingConfigurationError(
      `OfflineLockManager: the table ${OFFLINE_LOCK_TABLE} does not exist. Create it once: add ` +
        "OfflineLockTableMigration to the DataSource's `migrations` and run them (dataSource.runMigrations(), " +
        "or `typeorm migration:run`), or let `synchronize: true` create it with OfflineLockRecord among the entities.",
      { cause: error },
    );
  }
}

function clockOf(dataSource: DataSource): string {
  const dialect = knownDialectOf(dataSource);
  if (!dialect) {
    throw new LockingConfigurationError(
      `OfflineLockManager: no clock expression for a "${String(dataSource.options.type)}" database.`,
    );
  }
  return dialect.nowMillis;
}

function primaryKeyOf(dataSource: DataSource, entity: Function): (value: ObjectLiteral) => string {
  return (value) => {
    const metadata = dataSource.getMetadata(entity);
    return metadata.primaryColumns.map((column) => String(column.getEntityValue(value))).join(",");
  };
}

function toHandle(record: OfflineLockRecord): OfflineLockHandle {
  return {
    handle: record.handle!,
    lockType: record.lockType,
    lockId: record.lockId,
    owner: record.owner!,
    fencingToken: record.fencingToken,
    expiresAt: new Date(record.expiresAt),
  };
}

function handleOf(handle: OfflineLockHandle | string, where = "OfflineLockManager"): string {
  const value = typeof handle === "string" ? handle : handle?.handle;
  if (typeof value !== "string" || value === "") {
    throw new LockingConfigurationError(
      `${where}: pass the handle tryLock() returned (or its \`handle\` string), got ${describe(handle)}.`,
    );
  }
  return value;
}

function describe(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : value === null ? "null" : typeof value;
}

/** What `tryLock()` hands out: 128 random bits in hex. */
function isHandle(value: string): boolean {
  return /^[0-9a-f]{32}$/.test(value);
}

/**
 * A lock type, id or owner as its column can store it on every database: a non-empty string of
 * at most `max` characters (the column's length), with no NUL (PostgreSQL refuses it) and no
 * lone UTF-16 surrogate (the drivers would store U+FFFD instead, so two ids would share a lock).
 */
function storable(value: unknown, what: string, max: number): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new LockingConfigurationError(`${what} must be a non-empty string, got ${describeValue(value)}.`);
  }
  let length = 0;
  for (const char of value) {
    length++;
    const code = char.codePointAt(0) ?? 0;
    if (code === 0 || (code >= 0xd800 && code <= 0xdfff)) {
      throw new LockingConfigurationError(
        `${what} must be text a database column can store: it holds ${code === 0 ? "a NUL character" : "a lone UTF-16 surrogate"} ` +
          `at character ${length}. Got ${describeValue(value)}.`,
      );
    }
  }
  if (length > max) {
    throw new LockingConfigurationError(
      `${what} must be at most ${max} characters (the length of its column in ${OFFLINE_LOCK_TABLE}), got ${length}.`,
    );
  }
  return value;
}

/**
 * The longest offline lock, in ms: ten years. Far longer than any edit, and far inside the dates
 * JavaScript can hold (an expiry past year 275760 would be an Invalid Date).
 */
const MAX_TTL_MS = 10 * 366 * 24 * 60 * 60 * 1000;

function positiveMs(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0 || value > MAX_TTL_MS) {
    throw new LockingConfigurationError(
      `${what} must be a positive whole number of ms, at most ${MAX_TTL_MS} (ten years), got ${describeValue(value)}.`,
    );
  }
  return value;
}
