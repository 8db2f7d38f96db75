import type { DataSource } from "typeorm";
import { LockingConfigurationError } from "./errors";
import type { LockingOptions } from "./installation";
import { installExplicitly, installHooks } from "./typeorm/activation";

// The hooks go in when the package is loaded, so that an entity's @Versioned() and a @Lock
// request are enforced on every DataSource, installLocking() or not (docs/optimistic-locking.md).
installHooks();

/**
 * Turns typeorm-locking on for one DataSource, with options: every `save()`, `remove()`,
 * `softRemove()` and `recover()` of a versioned entity is conditional on the version the entity
 * holds. Call it before or after `initialize()`; calling it again is harmless (the latest
 * options win). The options apply to this DataSource only.
 *
 * `@Versioned()`, `@VersionedBy` and lock requests are enforced without it too: a DataSource
 * never passed here behaves as `installLocking(dataSource)` with the default options as soon as it
 * meets one of them, so forgetting the call never silently turns a check off. A DataSource using
 * none of them stays plain TypeORM (a `@VersionColumn` included, unless `versionColumns: "checked"`).
 *
 * Entity set-up errors (a version property of a type that holds no number, two version columns, `@Versioned` beside
 * `@VersionColumn`) are thrown here if the DataSource is initialized, else by `initialize()`.
 * The installation outlives `destroy()`: a later `initialize()` applies it to the entities the
 * DataSource has then.
 *
 * @example
 * ```ts
 * const dataSource = installLocking(new DataSource({ type: "postgres", entities: [Order] }));
 * await dataSource.initialize();
 * // existing app with @VersionColumn everywhere:
 * installLocking(legacyDataSource, { versionColumns: "checked" });
 * ```
 */
export function installLocking<T extends DataSource>(dataSource: T, options: LockingOptions = {}): T {
  const internals = installHooks();
  if (!(dataSource instanceof internals.dataSourceClass)) {
    throw new LockingConfigurationError(
      "installLocking() was given something that is not a DataSource of the typeorm package " +
        "typeorm-locking resolves. If the app has two copies of typeorm installed, dedupe them " +
        "(npm ls typeorm) so that the library hooks the copy the DataSource uses.",
    );
  }
  installExplicitly(dataSource, options);
  return dataSource;
}
