import type { DataSource } from "typeorm";
import type { LockDialect, WaitPolicy } from "./dialect/lock-dialect";
import { describeValue, LockingConfigurationError } from "./errors";
import { waitPolicyOf } from "./lock-mode";
import { type VersionColumnMode, VersionPolicies } from "./version-policy";

const VERSION_COLUMN_MODES: readonly VersionColumnMode[] = ["checked", "unchecked"];

/**
 * Options of `installLocking()`.
 *
 * @example
 * ```ts
 * installLocking(dataSource, { versionColumns: "checked", lockTimeout: 2000 });
 * ```
 */
export interface LockingOptions {
  /**
   * What to do with TypeORM `@VersionColumn`s. `"checked"`: every write of an entity with a
   * `@VersionColumn` is version-checked exactly as `@Versioned()` is, with no change to entity
   * code (for existing apps). `"unchecked"` (the default): they keep TypeORM's own behaviour.
   * `@Versioned()` properties are always checked.
   */
  versionColumns?: VersionColumnMode;
  /**
   * Entities (classes or entity names) left out of `versionColumns: "checked"`: their
   * `@VersionColumn` keeps TypeORM's own behaviour, and a version the library would refuse does
   * not fail the DataSource. The same as `@OptimisticLockExcluded()` on the class; for entities
   * whose code you do not own. `@Versioned()` entities and `@VersionedBy` members cannot be
   * excluded: naming one (or a parent class of one) is refused.
   */
  exclude?: ReadonlyArray<Function | string>;
  /**
   * Default wait of pessimistic locks that give no `timeout`, in ms (same meaning as
   * `LockOptions.timeout`: 0 = NOWAIT). Absent: the database's own default.
   */
  lockTimeout?: number;
  /**
   * The lock dialect to use instead of the one detected from the driver and server, for
   * compatible servers the detection does not know (e.g. a MySQL-protocol database).
   */
  dialect?: LockDialect;
  /**
   * On a MariaDB Galera node, row locks exclude only transactions of the same node, so the
   * pessimistic modes are refused by default (`pessimistic: "refuse"`). `"node-local"` allows them
   * knowing that a writer on another node is not blocked: the lock holder is aborted instead
   * (`CertificationConflictError`) when its row changes on another node.
   */
  galera?: { pessimistic?: GaleraPessimisticPolicy };
  /**
   * Writes the rows one flush (`save()`/`remove()`, cascades and aggregate members included)
   * updates in one table with the same set of changed columns as one guarded UPDATE per group
   * (split below the database's parameter limit, or every `maxRowsPerStatement` rows) instead of
   * one per row. Same guarantees: all or nothing, listeners see each entity, each entity gets its
   * new version; a conflict throws OptimisticLockError listing every stale row of the statement
   * (`conflicts`). A `remove()` of many rows is one guarded DELETE per table and chunk, naming every
   * stale row too. Shapes it cannot batch are written row by row (docs/optimistic-locking.md).
   * On by default; `batchWrites: false` writes every row with its own statement, as TypeORM does.
   */
  batchWrites?: boolean | BatchWritesOptions;
}

/**
 * Options of `batchWrites`.
 *
 * @example
 * ```ts
 * installLocking(dataSource, { batchWrites: { maxRowsPerStatement: 500 } satisfies BatchWritesOptions });
 * ```
 */
export interface BatchWritesOptions {
  /** The most rows one batched statement writes; larger groups are split (default: the parameter limit). */
  maxRowsPerStatement?: number;
}

/**
 * What pessimistic lock modes do on a Galera node: refuse (the default), or take node-local locks.
 *
 * @example
 * ```ts
 * installLocking(dataSource, { galera: { pessimistic: "node-local" satisfies GaleraPessimisticPolicy } });
 * ```
 */
export type GaleraPessimisticPolicy = "refuse" | "node-local";
const GALERA_POLICIES: readonly GaleraPessimisticPolicy[] = ["refuse", "node-local"];

/** What the library keeps per DataSource it was installed on. @internal */
export interface Installation {
  readonly options: Required<Pick<LockingOptions, "versionColumns">> & LockingOptions;
  readonly policies: VersionPolicies;
  /** The default wait of pessimistic locks, from `lockTimeout`. */
  readonly defaultWait?: WaitPolicy;
  /** `batchWrites`, resolved: `undefined` when off, else the most rows per statement (if bounded). */
  readonly batching?: { maxRows?: number };
  /**
   * The dialect, once the server has been asked which one it is (MySQL vs MariaDB), or the one
   * `installLocking()` was given. Each activation (a life of the DataSource) sets it afresh.
   */
  serverDialect?: LockDialect;
}

const installations = new WeakMap<DataSource, Installation>();

/** Records (or replaces) the installation of a DataSource. @internal */
export function recordInstallation(dataSource: DataSource, given: LockingOptions | null): Installation {
  // `installLocking(ds, undefined)` arrives as its default `{}`; `null` is taken for no options.
  if (given !== null && !isOptionObject(given)) {
    throw new LockingConfigurationError(
      `installLocking(): the options are an object such as { versionColumns: "checked" }, got ${describeValue(given)}.`,
    );
  }
  const options: LockingOptions = given ?? {};
  const versionColumns = options.versionColumns ?? "unchecked";
  if (!VERSION_COLUMN_MODES.includes(versionColumns)) {
    throw new LockingConfigurationError(
      `installLocking(): versionColumns must be "checked" or "unchecked", got ${describeValue(versionColumns)}.`,
    );
  }
  if (options.galera !== undefined && options.galera !== null && !isOptionObject(options.galera)) {
    throw new LockingConfigurationError(
      `installLocking(): galera is an object such as { pessimistic: "node-local" }, got ${describeValue(options.galera)}.`,
    );
  }
  const galeraPessimistic = options.galera?.pessimistic ?? "refuse";
  if (!GALERA_POLICIES.includes(galeraPessimistic)) {
    throw new LockingConfigurationError(
      `installLocking(): galera.pessimistic must be "refuse" or "node-local", got ${describeValue(galeraPessimistic)}.`,
    );
  }
  const exclude = options.exclude ?? [];
  if (!Array.isArray(exclude) || exclude.some((e) => typeof e !== "function" && typeof e !== "string")) {
    throw new LockingConfigurationError(
      "installLocking(): exclude must be a list of entity classes or entity names, e.g. { exclude: [LegacyImport] }.",
    );
  }
  if (options.dialect !== undefined && !isLockDialect(options.dialect)) {
    throw new LockingConfigurationError(
      "installLocking(): dialect must be a LockDialect, e.g. { dialect: mysqlDialect } (one of the dialects the " +
        `package exports, or an object with the same members); got ${describeValue(options.dialect)}.`,
    );
  }
  // Stryker disable next-line StringLiteral: the wording of the refusal's message (docs/testing.md)
  const defaultWait = waitPolicyOf({ timeout: options.lockTimeout }, "installLocking() lockTimeout");
  const { batchWrites } = options;
  const maxRows = isOptionObject(batchWrites) ? batchWrites.maxRowsPerStatement : undefined;
  if (
    (batchWrites !== undefined && typeof batchWrites !== "boolean" && !isOptionObject(batchWrites)) ||
    (maxRows !== undefined && !(Number.isInteger(maxRows) && maxRows >= 2))
  ) {
    throw new LockingConfigurationError(
      "installLocking(): batchWrites must be true, false or { maxRowsPerStatement: n } with an integer n >= 2.",
    );
  }
  const previous = installations.get(dataSource);
  if (
    previous &&
    previous.options.versionColumns === versionColumns &&
    previous.options.lockTimeout === options.lockTimeout &&
    previous.options.dialect === options.dialect &&
    previous.options.galera?.pessimistic === options.galera?.pessimistic &&
    previous.options.batchWrites === batchWrites &&
    sameEntries(previous.options.exclude ?? [], exclude)
  ) {
    return previous;
  }
  const installation: Installation = {
    options: { ...options, versionColumns },
    policies: new VersionPolicies(versionColumns, [...exclude]),
    defaultWait,
    // On unless turned off: `undefined` (not given) batches.
    batching: batchWrites === false ? undefined : { maxRows },
  };
  installations.set(dataSource, installation);
  return installation;
}

/** An object of options, not `null` or a list (`typeof` says "object" for both). */
function isOptionObject<T>(value: T): value is T & object {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Whether a value has the members of a {@link LockDialect} the library calls. */
function isLockDialect(value: unknown): value is LockDialect {
  if (value === null || typeof value !== "object") return false;
  const dialect = value as Record<string, unknown>;
  return (
    typeof dialect.name === "string" &&
    typeof dialect.nowMillis === "string" &&
    typeof dialect.timeoutGranularityMs === "number" &&
    ["render", "waitPlan", "lockStatement", "classifyError", "isMissingTable", "isConnectionLoss"].every(
      (member) => typeof dialect[member] === "function",
    )
  );
}

function sameEntries(a: ReadonlyArray<unknown>, b: ReadonlyArray<unknown>): boolean {
  return a.length === b.length && a.every((entry, i) => entry === b[i]);
}

/** The installation of a DataSource, or `undefined` when the library is not installed on it. @internal */
export function installationOf(dataSource: DataSource): Installation | undefined {
  return installations.get(dataSource);
}

/** Forgets the installation of a DataSource (an implicit one whose activation failed). @internal */
export function forgetInstallation(dataSource: DataSource): void {
  installations.delete(dataSource);
}
