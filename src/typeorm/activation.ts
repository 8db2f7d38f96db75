/**
 * Puts the library's hooks into TypeORM and turns it on per DataSource. The hooks are global
 * (one set per loaded copy of TypeORM) and go in when the package is imported; a DataSource
 * passes through them untouched until it is activated: by `installLocking()`, or, because a
 * `@Versioned()` or `@Lock` written in the code must never be silently ignored, implicitly, with
 * the default options, the first time it meets one of the library's own requests (see
 * `enforcedInstallationOf`).
 */
import type { DataSource, QueryRunner } from "typeorm";
import {
  forgetInstallation,
  type Installation,
  installationOf,
  type LockingOptions,
  recordInstallation,
} from "../installation";
import { lockRequestOf } from "../lock-request";
import { asksForChecks } from "../version-policy";
import { installAggregateHooks, prepareAggregates } from "./aggregate-versions";
import { installCommitChecks } from "./commit-checks";
import { installErrorTranslation } from "./error-translation";
import {
  dataSourceOf,
  type Method,
  type SubjectExecutorLike,
  type TypeormInternals,
  typeormInternals,
  wrap,
} from "./internals";
import { installPersistenceHooks } from "./persistence-hooks";
import { installPreWriteChecks } from "./pre-write-checks";
import { watchRunners } from "./runner-prototypes";
import { installSelectHooks } from "./select-hooks";
import { installSharedRunnerTurns, takeTurnsIfShared } from "./shared-runner-turns";
import { installTransactionHooks, numberOpenTransaction } from "./transaction-hooks";
import { installTreeBookkeeping } from "./tree-bookkeeping";
import { installUncheckedWriteChecks } from "./unchecked-writes";
import { installVersionColumnTypes } from "./version-column-types";

const patched = new WeakSet<object>();

/**
 * Patches the TypeORM copy this package resolves, once. The activation wrappers go in last, so
 * that they run first: a DataSource is activated before any other hook asks for its installation.
 *
 * @internal
 */
export function installHooks(): TypeormInternals {
  const internals = typeormInternals();
  if (patched.has(internals.subjectExecutor)) return internals;
  patched.add(internals.subjectExecutor);
  installPersistenceHooks(internals);
  installPreWriteChecks(internals);
  installUncheckedWriteChecks(internals);
  installSelectHooks(internals);
  installAggregateHooks(internals);
  installTransactionHooks();
  installErrorTranslation();
  installCommitChecks();
  installSharedRunnerTurns(internals);
  installTreeBookkeeping(internals);
  installVersionColumnTypes(internals);
  installActivationHooks(internals);
  return internals;
}

/** Attaches the library to an initialized DataSource under `installation`. */
function activate(dataSource: DataSource, installation: Installation, runner?: QueryRunner): void {
  // Each life of a DataSource may reach another server (setOptions() between destroy() and
  // initialize()): unless installLocking() named the dialect, a MySQL-family server is asked
  // again what it is (MariaDB, MySQL, Galera).
  installation.serverDialect = installation.options.dialect;
  watchRunners(dataSource, runner);
  takeTurnsIfShared(dataSource, installation);
  installation.policies.resolveAll(dataSource.entityMetadatas);
  prepareAggregates(dataSource, installation);
}

/**
 * `installLocking()`'s work: the installation it records replaces any the library made on its
 * own, and lasts over the DataSource's later lives (each initialize() activates it anew).
 *
 * @internal
 */
export function installExplicitly(dataSource: DataSource, options: LockingOptions): void {
  const installation = recordInstallation(dataSource, options);
  implicitlyInstalled.delete(dataSource);
  if (dataSource.isInitialized) activate(dataSource, installation);
}

/**
 * The installation a DataSource's writes and reads go by: the one `installLocking()` recorded,
 * else, when an entity of the DataSource uses the library's decorators (`@Versioned()`,
 * `@VersionedBy`), an implicit one with the default options. `undefined` only for DataSources
 * that use none of them, which then stay plain TypeORM (a `@VersionColumn` included).
 *
 * @internal
 */
export function enforcedInstallationOf(dataSource: DataSource, runner?: QueryRunner): Installation | undefined {
  const installed = installationOf(dataSource);
  if (installed || !usesLibraryDecorators(dataSource)) return installed;
  return installImplicitly(dataSource, runner);
}

/**
 * The installation a lock request (`withLockMode`, `lockQuery`, `@Lock`, `lock()`) runs under: a
 * request for a lock is the library's to honour on any DataSource, never to drop.
 *
 * @internal
 */
export function installationForLockRequest(dataSource: DataSource, runner?: QueryRunner): Installation {
  return installationOf(dataSource) ?? installImplicitly(dataSource, runner);
}

const decoratorUse = new WeakMap<DataSource, boolean>();
/** DataSources whose installation the library made itself (installImplicitly). */
const implicitlyInstalled = new WeakSet<DataSource>();
/** DataSources inside their own initialize(). */
const initializing = new WeakSet<DataSource>();
const failedActivations = new WeakMap<DataSource, unknown>();

/**
 * Whether an entity of the DataSource is `@Versioned()` or an aggregate member (cached until the
 * DataSource initializes again: each initialize() builds the metadata anew, from the entities
 * its options name then).
 */
function usesLibraryDecorators(dataSource: DataSource): boolean {
  const known = decoratorUse.get(dataSource);
  if (known !== undefined) return known;
  // An EntitySchema's target may be its name, its embedded values still @Versioned() classes.
  const uses = dataSource.entityMetadatas.some(asksForChecks);
  decoratorUse.set(dataSource, uses);
  return uses;
}

/**
 * `installLocking(dataSource)` with the default options, done by the library itself. A set-up
 * error (two version columns, a broken `@VersionedBy`) is thrown at this point and
 * again at every later write or lock of the DataSource: never a DataSource left half-checked.
 */
function installImplicitly(dataSource: DataSource, runner: QueryRunner | undefined): Installation {
  if (failedActivations.has(dataSource)) throw failedActivations.get(dataSource);
  const installation = recordInstallation(dataSource, {});
  try {
    activate(dataSource, installation, runner);
  } catch (error) {
    forgetInstallation(dataSource);
    failedActivations.set(dataSource, error);
    throw error;
  }
  // A transaction the runner began before its class was patched was not numbered; numbered now,
  // a conflict in it is retried by an enclosing retryOnConflict as one its attempt began.
  if (runner) numberOpenTransaction(runner);
  implicitlyInstalled.add(dataSource);
  return installation;
}

/**
 * Activates DataSources at the points every query of theirs passes first: a query runner is
 * made (before a transaction begins on it), a flush starts (before its pre-write checks), an
 * entity SELECT runs (where a lock request is seen). A DataSource already decided costs two
 * WeakMap lookups there.
 */
function installActivationHooks(internals: TypeormInternals): void {
  const dataSourcePrototype = (internals.dataSourceClass as { prototype: Record<string, unknown> }).prototype;
  // Schema work inside initialize() (synchronize, dropSchema) writes no entity and takes no lock,
  // and installLocking() may still come right after initialize() with options the implicit
  // installation would lack (versionColumns: "checked" for a @VersionColumn root of @VersionedBy
  // members). So initialize() itself makes no installation; an entity write or a locking read made
  // inside it (a migration's) still activates through the flush and SELECT hooks below. An
  // installation made by installLocking() (before this initialize() or in an earlier life of the
  // DataSource) is activated on the metadata this initialize() built: the aggregates of the old
  // metadata would miss every member of the new one, and their roots' bumps with them.
  wrap(
    dataSourcePrototype,
    "initialize",
    (initialize: Method): Method =>
      async function (this: DataSource, ...args: unknown[]) {
        // setOptions() may have changed the entities since the last life of the DataSource, so
        // what the library decided on its own is decided again.
        decoratorUse.delete(this);
        failedActivations.delete(this);
        if (implicitlyInstalled.delete(this)) forgetInstallation(this);
        initializing.add(this);
        let initialized: unknown;
        try {
          initialized = await initialize.apply(this, args);
        } finally {
          initializing.delete(this);
        }
        const installation = installationOf(this);
        if (installation) activate(this, installation);
        return initialized;
      },
  );
  wrap(
    dataSourcePrototype,
    "createQueryRunner",
    (create: Method): Method =>
      function (this: DataSource, ...args: unknown[]) {
        if (this.isInitialized && !initializing.has(this)) enforcedInstallationOf(this);
        return create.apply(this, args);
      },
  );
  wrap(
    internals.subjectExecutor,
    "execute",
    (execute) =>
      function (this: SubjectExecutorLike, ...args: unknown[]) {
        enforcedInstallationOf(dataSourceOf(this.queryRunner), this.queryRunner);
        return execute.apply(this, args);
      },
  );
  wrap(
    internals.selectQueryBuilder,
    "executeEntitiesAndRawResults",
    (execute) =>
      function (this: Parameters<typeof lockRequestOf>[0], queryRunner: QueryRunner, ...rest: unknown[]) {
        const dataSource = dataSourceOf(queryRunner);
        if (!enforcedInstallationOf(dataSource, queryRunner) && lockRequestOf(this)) {
          installationForLockRequest(dataSource, queryRunner);
        }
        return execute.call(this, queryRunner, ...rest);
      },
  );
}
