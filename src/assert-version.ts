import { getMetadataArgsStorage, type ObjectLiteral } from "typeorm";
import { LockingConfigurationError, MissingVersionError, StaleVersionError } from "./errors";
import { raisedIn } from "./transaction-numbers";
import { parseVersion } from "./version-codec";
import { toVersionNumber } from "./version-value";

/**
 * Checks the version a client sent back (a form field, an HTTP `If-Match`, a CQRS command's
 * `expectedVersion`) against a freshly loaded entity, before anything is changed or written.
 * Throws {@link StaleVersionError} when they differ: the client edited an old copy.
 *
 * The later `save()` is still checked at write time, so a change slipping in between this check
 * and the write is caught too (as {@link OptimisticLockError}).
 *
 * @param entity an instance of an entity with `@Versioned()` or `@VersionColumn`.
 * @param expected the version the client holds: a number or a string of digits.
 * @example
 * ```ts
 * const order = await orders.findOneByOrFail({ id: cmd.orderId });
 * assertVersion(order, cmd.expectedVersion);
 * order.address = cmd.address;
 * await orders.save(order);
 * ```
 */
export function assertVersion(entity: ObjectLiteral, expected: number | string): void {
  const { entityName, id, version: actual } = heldVersionOf(entity, "assertVersion()");
  // Stryker disable next-line StringLiteral: wording (the value a refusal names)
  const expectedVersion = toVersionNumber(expected, `The expected version of ${entityName}`);
  if (expectedVersion === undefined) {
    throw new LockingConfigurationError(
      `assertVersion(): no expected version was given for ${entityName}. Pass the version the client sent.`,
    );
  }
  if (actual !== expectedVersion) {
    const stale = new StaleVersionError({ entityName, id, expectedVersion, actualVersion: actual, operation: "check" });
    throw raisedIn(undefined, stale, "client");
  }
}

/**
 * The version a loaded entity holds, with its class name and id map, for checks against a
 * version a client sent. `where` names the public function in errors.
 *
 * @internal
 */
export function heldVersionOf(
  entity: ObjectLiteral,
  where: string,
): { entityName: string; id: Record<string, unknown>; version: number } {
  // Stryker disable next-line StringLiteral: wording (an object of no class, refused below)
  const entityName = entity.constructor?.name ?? "entity";
  const { version, primary } = versionAndPrimaryProperties(entity.constructor);
  if (version === undefined) {
    throw new LockingConfigurationError(`${where}: ${entityName} has no version property; mark one with @Versioned().`);
  }
  const id = Object.fromEntries(primary.map((p) => [p, entity[p]]));
  const actual = parseVersion(entity[version], entityName, version);
  if (actual === undefined) {
    throw new MissingVersionError({ entityName, id, versionProperty: version, operation: "check" });
  }
  return { entityName, id, version: actual };
}

/** Reads the version and primary-key properties from TypeORM's decorator records (class and parents). */
function versionAndPrimaryProperties(entityClass: unknown): { version?: string; primary: string[] } {
  const chain: Function[] = [];
  // The walk ends past Function.prototype (a function too), whose parent is no function.
  for (let c = entityClass; typeof c === "function"; c = Object.getPrototypeOf(c)) {
    chain.push(c as Function);
  }
  const columns = getMetadataArgsStorage().columns.filter((c) => chain.includes(c.target as Function));
  return {
    version: columns.find((c) => c.mode === "version")?.propertyName,
    primary: columns.filter((c) => c.options.primary).map((c) => c.propertyName),
  };
}
