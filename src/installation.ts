import type { DataSource } from "typeorm";
import { LockingConfigurationError } from "./errors";
import { type VersionColumnMode, VersionPolicies } from "./version-policy";

const VERSION_COLUMN_MODES: readonly VersionColumnMode[] = ["checked", "unchecked"];

/** Options of `installLocking()`. */
export interface LockingOptions {
  /**
   * What to do with TypeORM `@VersionColumn`s. `"checked"`: every write of an entity with a
   * `@VersionColumn` is version-checked exactly as `@Versioned()` is, with no change to entity
   * code (for existing apps). `"unchecked"` (the default): they keep TypeORM's own behaviour.
   * `@Versioned()` properties are always checked.
   */
  versionColumns?: VersionColumnMode;
}

/** What the library keeps per DataSource it was installed on. */
export interface Installation {
  readonly options: Required<LockingOptions>;
  readonly policies: VersionPolicies;
}

const installations = new WeakMap<DataSource, Installation>();

/** Records (or replaces) the installation of a DataSource. */
export function recordInstallation(dataSource: DataSource, options: LockingOptions): Installation {
  const versionColumns = options.versionColumns ?? "unchecked";
  if (!VERSION_COLUMN_MODES.includes(versionColumns)) {
    throw new LockingConfigurationError(
      `installLocking(): versionColumns must be "checked" or "unchecked", got ${JSON.stringify(versionColumns)}.`,
    );
  }
  const resolved: Required<LockingOptions> = { versionColumns };
  const previous = installations.get(dataSource);
  if (previous && previous.options.versionColumns === resolved.versionColumns) return previous;
  const installation = { options: resolved, policies: new VersionPolicies(resolved.versionColumns) };
  installations.set(dataSource, installation);
  return installation;
}

/** The installation of a DataSource, or `undefined` when the library is not installed on it. */
export function installationOf(dataSource: DataSource): Installation | undefined {
  return installations.get(dataSource);
}
