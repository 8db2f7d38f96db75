/**
 * Aggregate membership: which entities belong to which versioned root, and which properties do
 * not count as changes. The root's version then moves with every change inside the aggregate.
 */
import { LockingConfigurationError } from "./errors";

/** How a member entity reaches its root: the relation properties to follow, in order. @internal */
export interface AggregateLink {
  /** The entity one step up: the root itself or another member. */
  parent: () => Function;
  /** Relation properties from the member to `parent` (`["order"]`, `["line", "order"]`). */
  path: string[];
}

const links = new Map<Function, AggregateLink>();
const excluded = new Map<Function, Set<string>>();

/**
 * Declares an entity a member of an aggregate whose root (or a member above it) is `parent`:
 * every insert, update or removal of it, every orphan and many-to-many link change, bumps the
 * top root's version once per flush, guarded by the version the root was loaded with. A stale
 * root fails the flush with `OptimisticLockError`, and nothing of it is written. A member moved
 * to another root (its link re-pointed or cleared) moves both roots (docs/aggregates.md).
 *
 * `path` follows many-to-one / one-to-one relations from this entity to `parent`; it is read once
 * (on a recording proxy), so it must only access properties. Checked at `installLocking()`: the
 * top root must be `@Versioned()` (or a checked `@VersionColumn`), each step a relation, no cycles.
 *
 * @example
 * ```ts
 * @Entity()
 * @VersionedBy(() => Order, (line: OrderLine) => line.order) // type the parameter: T is not inferred
 * class OrderLine {
 *   @ManyToOne(() => Order, (order) => order.lines) order!: Order;
 * }
 * ```
 */
export function VersionedBy<T>(parent: () => Function, path: (member: T) => unknown): ClassDecorator {
  return (target) => {
    if (typeof parent !== "function" || typeof path !== "function") {
      throw new LockingConfigurationError(
        `@VersionedBy on ${target.name}: pass the parent entity and the path to it, e.g. @VersionedBy(() => Order, (line: OrderLine) => line.order).`,
      );
    }
    // The class itself, not a function returning it: calling it later would throw a TypeError
    // that names neither the library nor the entity.
    // Stryker disable next-line Regex: equivalent (docs/testing.md); an arrow function's source starts with no word "class"
    if (/^class\b/.test(Function.prototype.toString.call(parent))) {
      throw new LockingConfigurationError(
        `@VersionedBy on ${target.name}: pass the parent entity as a function, @VersionedBy(() => ${parent.name}, ...), not the class itself (it may not be defined yet where the decorator runs).`,
      );
    }
    links.set(target, { parent, path: recordPath(target.name, path) });
  };
}

/**
 * Leaves a property out of optimistic locking, as Hibernate's `@OptimisticLock(excluded = true)`:
 * a save that changes only excluded properties neither bumps nor checks the version (of the
 * entity, or of its aggregate root). Use it for counters and caches nobody edits by hand.
 *
 * On a class, it leaves the whole entity out of `versionColumns: "checked"`: its
 * `@VersionColumn` keeps TypeORM's own behaviour (bumped, never checked), and a declaration the
 * library refuses (two version columns, a version property of a type that holds no number) no longer fails the DataSource.
 * The way out for the few entities of a large app that cannot be checked yet; the same as
 * `installLocking(dataSource, { exclude: [Entity] })`. Not allowed beside `@Versioned()` or
 * `@VersionedBy`. Applies to subclasses.
 *
 * @example
 * ```ts
 * @OptimisticLockExcluded() @Column({ default: 0 }) viewCount!: number;
 *
 * @Entity() @OptimisticLockExcluded()
 * class LegacyImport { @VersionColumn({ type: "varchar" }) revision!: string; }
 * ```
 */
export function OptimisticLockExcluded(): ClassDecorator & PropertyDecorator {
  return (target: object, property?: string | symbol) => {
    if (property === undefined) {
      excludedEntities.add(target as Function);
      return;
    }
    const owner = target.constructor;
    const set = excluded.get(owner) ?? new Set<string>();
    set.add(String(property));
    excluded.set(owner, set);
    excludedByClass = new WeakMap();
  };
}

const excludedEntities = new WeakSet<Function>();

/** Whether `@OptimisticLockExcluded()` is on an entity class or one of its parent classes. @internal */
export function isLockExcludedEntity(target: Function): boolean {
  return classChain(target).some((c) => excludedEntities.has(c));
}

/** The aggregate link declared on an entity class (or a parent class), if any. @internal */
export function aggregateLinkOf(target: Function | string): AggregateLink | undefined {
  return classChain(target)
    .map((c) => links.get(c))
    .find((link) => link !== undefined);
}

let excludedByClass = new WeakMap<Function, ReadonlySet<string>>();
const NOTHING_EXCLUDED: ReadonlySet<string> = new Set();

/**
 * The properties of an entity class (parent classes included) excluded from optimistic locking;
 * worked out once per class, since every update asks.
 *
 * @internal
 */
export function lockExcludedPropertiesOf(target: Function | string): ReadonlySet<string> {
  // An EntitySchema without a class (its target is its name) has no decorators to exclude with.
  if (typeof target !== "function") return NOTHING_EXCLUDED;
  let properties = excludedByClass.get(target);
  // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); a cache: worked out again, the same set
  if (!properties) {
    // Stryker disable next-line ArrayDeclaration: equivalent (docs/testing.md); a class with no exclusions adds none, whatever the fallback holds
    properties = new Set(classChain(target).flatMap((c) => [...(excluded.get(c) ?? [])]));
    excludedByClass.set(target, properties);
  }
  return properties;
}

/** The class and its parent classes, nearest first: decorators on a base entity apply to subclasses. */
function classChain(target: Function | string): Function[] {
  const chain: Function[] = [];
  // Stryker disable next-line ConditionalExpression: equivalent (docs/testing.md); Function.prototype carries no decorator, and the walk ends above it anyway
  for (let c: unknown = target; typeof c === "function" && c !== Function.prototype; c = Object.getPrototypeOf(c)) {
    chain.push(c as Function);
  }
  return chain;
}

function recordPath(entityName: string, path: (member: never) => unknown): string[] {
  const steps: string[] = [];
  const recorder: object = new Proxy(
    {},
    {
      get: (_target, property) => {
        if (typeof property === "symbol") return undefined;
        steps.push(property);
        return recorder;
      },
    },
  );
  path(recorder as never);
  if (steps.length === 0) {
    throw new LockingConfigurationError(
      `@VersionedBy on ${entityName}: the path must follow a relation, e.g. (line) => line.order.`,
    );
  }
  return steps;
}
