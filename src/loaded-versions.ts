/**
 * Remembers, per entity object, the version it had when TypeORM loaded or last saved it.
 *
 * This is how a conflict found before writing is told apart: if the entity still holds the
 * version it was loaded with, the row moved after the load (OptimisticLockError); if the
 * application put another version on it (one a client sent back), the client's copy was stale
 * (StaleVersionError). Weak keys: nothing is kept alive by being remembered.
 */
const versions = new WeakMap<object, number>();

/** Records the version an entity object holds as the one it was loaded (or saved) with. @internal */
export function rememberLoadedVersion(entity: object, version: unknown): void {
  if (typeof version === "number") versions.set(entity, version);
}

/** The version the entity object was loaded or last saved with, if TypeORM loaded it. @internal */
export function loadedVersionOf(entity: object): number | undefined {
  return versions.get(entity);
}
