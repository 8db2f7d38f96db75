/**
 * A version a client sent that does not match the row is stale (or bad), not a race: every path
 * that takes a client's version (updateVersioned, assertVersion, If-Match, an entity whose
 * version the application set) answers StaleVersionError, not retryable, HTTP 412, with the
 * row's version and a message that says which way the versions differ. A row that is gone is its
 * own case (RowNotFoundError, 404). Races between a load (or check) and the write stay
 * OptimisticLockError (retryable, 409).
 */
import { type DataSource, Entity, PrimaryColumn, type Repository } from "typeorm";
import {
  assertVersion,
  ConcurrencyError,
  checkIfMatch,
  conflictResponse,
  currentVersionOf,
  installLocking,
  isRetryableConflict,
  LockingConfigurationError,
  MissingVersionError,
  OptimisticLockError,
  RetryExhaustedError,
  RowNotFoundError,
  retryOnConflict,
  StaleVersionError,
  updateVersioned,
  Versioned,
  VersionOutOfRangeError,
} from "../src";
import { ALL_ENTITIES, Order } from "./fixtures/entities";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";

describeEachDatabase((db) => {
  let client: DataSource;
  let other: DataSource;
  let orders: Repository<Order>;

  beforeAll(async () => {
    [client, other] = await openDataSources(db, ALL_ENTITIES, { count: 2 });
    installLocking(client);
    installLocking(other);
    orders = client.getRepository(Order);
  });
  afterAll(() => closeAll(client, other));

  /** An order moved to `version` by someone else. */
  async function orderAt(version: number): Promise<number> {
    const { id } = await orders.save(orders.create({ address: "A", status: "NEW" }));
    for (let v = 1; v < version; v++) await updateVersioned(other.getRepository(Order), id, v, { status: `S${v}` });
    return id;
  }

  const caught = (work: Promise<unknown>) =>
    work.then(
      () => undefined,
      (e: unknown) => e,
    );

  describe("updateVersioned with the client's version", () => {
    it("behind the row: StaleVersionError carrying the row's version, not retryable, 412", async () => {
      const id = await orderAt(2);
      const error = await caught(updateVersioned(orders, id, 1, { status: "LOST" }));
      expect(error).toBeInstanceOf(StaleVersionError);
      expect(error).toBeInstanceOf(ConcurrencyError);
      expect(error).toMatchObject({ entityName: "Order", id: { id }, expectedVersion: 1, actualVersion: 2 });
      expect((error as StaleVersionError).retryable).toBe(false);
      expect(isRetryableConflict(error)).toBe(false);
      const message = (error as Error).message;
      expect(message).toMatch(/version mismatch: expected 1, the row is at 2/);
      expect(message).not.toMatch(/after it was loaded/);
      expect(conflictResponse(error)).toMatchObject({
        status: 412,
        headers: { ETag: '"2"' },
        body: { currentVersion: 2 },
      });
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ status: "S1", version: 2 });
    });

    it("ahead of the row: says the version is ahead (a bad or forged version), not a change by someone else", async () => {
      const id = await orderAt(1);
      const error = await caught(updateVersioned(orders, id, 7, { status: "FORGED" }));
      expect(error).toBeInstanceOf(StaleVersionError);
      expect(error).toMatchObject({ expectedVersion: 7, actualVersion: 1 });
      const message = (error as Error).message;
      expect(message).toMatch(/expected 7, but the row is only at 1: the version sent is ahead of the row/);
      expect(message).toMatch(/bad or forged/);
      expect(message).not.toMatch(/changed by someone else|by another transaction/);
      expect(await orders.findOneByOrFail({ id })).toMatchObject({ status: "NEW", version: 1 });
    });

    it("a row deleted meanwhile (or a wrong id): RowNotFoundError, not retryable, 404", async () => {
      const id = await orderAt(1);
      await other.getRepository(Order).delete({ id });
      const error = await caught(updateVersioned(orders, id, 1, { status: "X" }));
      expect(error).toBeInstanceOf(RowNotFoundError);
      expect(error).toMatchObject({ entityName: "Order", id: { id }, expectedVersion: 1, actualVersion: undefined });
      expect((error as RowNotFoundError).retryable).toBe(false);
      expect(isRetryableConflict(error)).toBe(false);
      expect((error as Error).message).toMatch(/does not exist/);
      expect(await currentVersionOf(client, error as RowNotFoundError)).toBeNull();
      expect(conflictResponse(error)).toMatchObject({
        status: 404,
        body: { error: "not-found", currentVersion: null },
      });
    });

    it("retryOnConflict does not retry a stale client version (one attempt, the StaleVersionError itself)", async () => {
      const id = await orderAt(2);
      let attempts = 0;
      const error = await caught(
        retryOnConflict(
          client,
          (manager) => {
            attempts++;
            return updateVersioned(manager.getRepository(Order), id, 1, { status: "LOST" });
          },
          { attempts: 5, backoff: { initialMs: 1, maxMs: 2 } },
        ),
      );
      expect(error).not.toBeInstanceOf(RetryExhaustedError);
      expect(error).toBeInstanceOf(StaleVersionError);
      expect(attempts).toBe(1);
    });

    // MySQL and MariaDB write on the newest row and read on the transaction's snapshot: a change
    // committed after the snapshot is a race the write lost, which a new transaction can win.
    // (PostgreSQL and SQLite refuse such a write with a serialization failure instead.)
    if (db.family === "mysql") {
      it("a change the repeatable-read snapshot does not show stays a retryable OptimisticLockError", async () => {
        const id = await orderAt(1);
        const error = await caught(
          client.transaction("REPEATABLE READ", async (manager) => {
            await manager.findOneByOrFail(Order, { id }); // the snapshot shows version 1
            await updateVersioned(other.getRepository(Order), id, 1, { status: "OTHER" });
            await updateVersioned(manager.getRepository(Order), id, 1, { status: "MINE" });
          }),
        );
        expect(error).toBeInstanceOf(OptimisticLockError);
        expect(isRetryableConflict(error)).toBe(true);
      });
    }
  });

  describe("the other paths that take a client's version", () => {
    it("assertVersion and If-Match: behind is a mismatch, ahead says so", async () => {
      const id = await orderAt(2);
      const order = await orders.findOneByOrFail({ id });
      expect(() => assertVersion(order, 1)).toThrow(/version mismatch: expected 1, the row is at 2/);
      expect(() => assertVersion(order, 7)).toThrow(/expected 7, but the row is only at 2: the version sent is ahead/);
      expect(() => checkIfMatch(order, '"1"')).toThrow(/version mismatch: expected 1, the row is at 2/);
      const ahead = (() => {
        try {
          checkIfMatch(order, '"7"');
        } catch (e) {
          return e;
        }
      })();
      expect(ahead).toBeInstanceOf(StaleVersionError);
      expect((ahead as Error).message).toMatch(/ahead of the row/);
      expect((ahead as Error).message).not.toMatch(/changed by someone else/);
      expect((ahead as StaleVersionError).retryable).toBe(false);
    });

    it("save() of an entity given a client's version: ahead says so; a deleted row is RowNotFoundError", async () => {
      const id = await orderAt(1);
      const ahead = await orders.findOneByOrFail({ id });
      ahead.version = 7;
      ahead.status = "FORGED";
      const error = await caught(orders.save(ahead));
      expect(error).toBeInstanceOf(StaleVersionError);
      expect((error as Error).message).toMatch(/expected 7, but the row is only at 1: the version sent is ahead/);

      await other.getRepository(Order).delete({ id });
      const fromClient = orders.create({ id, address: "A", status: "FROM CLIENT", version: 1 });
      expect(await caught(orders.save(fromClient))).toBeInstanceOf(RowNotFoundError);
      expect(await orders.findOneBy({ id })).toBeNull(); // not re-created
    });

    it("a row deleted after this process loaded it stays a race: OptimisticLockError, retryable", async () => {
      const id = await orderAt(1);
      const loaded = await orders.findOneByOrFail({ id });
      await other.getRepository(Order).delete({ id });
      loaded.status = "LATE";
      const error = await caught(orders.save(loaded));
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(isRetryableConflict(error)).toBe(true);
      expect(await orders.findOneBy({ id })).toBeNull();
    });
  });
});

/** A version declared on a parent class, the key on the entity: both are found through the class chain. */
abstract class VersionedBase {
  @Versioned() version!: number;
}
@Entity({ name: "cv_inherited" })
class Inherited extends VersionedBase {
  @PrimaryColumn() code!: string;
}

describe("assertVersion reads the entity's class chain, and nothing else", () => {
  const thrown = (work: () => unknown) => {
    try {
      work();
    } catch (e) {
      return e;
    }
  };

  it("finds a version and a key declared on different classes of the chain; the error names only the key", () => {
    const held = Object.assign(new Inherited(), { code: "a", version: 2 });
    expect(() => assertVersion(held, 2)).not.toThrow();
    const error = thrown(() => assertVersion(held, 1)) as StaleVersionError;
    expect(error).toBeInstanceOf(StaleVersionError);
    expect(error).toMatchObject({ entityName: "Inherited", expectedVersion: 1, actualVersion: 2, operation: "check" });
    expect(error.id).toEqual({ code: "a" });
  });

  it("an entity whose version holds nothing (undefined, or a null from a nullable column or a client) is MissingVersionError", () => {
    for (const version of [undefined, null]) {
      const error = thrown(() =>
        assertVersion(Object.assign(new Order(), { id: 5, version }), 1),
      ) as MissingVersionError;
      expect(error).toBeInstanceOf(MissingVersionError);
      expect(error).toMatchObject({
        entityName: "Order",
        id: { id: 5 },
        versionProperty: "version",
        operation: "check",
      });
    }
  });

  it("reads a version held as digits (spaces, a decimal's zero fraction) and refuses one that is no integer", () => {
    const held = (version: unknown) => Object.assign(new Order(), { id: 5, version });
    for (const version of ["12", " 12 ", "12.00", "12.", 12, 12n])
      expect(() => assertVersion(held(version), 12)).not.toThrow();
    for (const version of ["x12", "12x", "1 2", "12.5", 12.5, true]) {
      expect(thrown(() => assertVersion(held(version), 12))).toBeInstanceOf(LockingConfigurationError);
    }
    for (const version of [2 ** 53, "9007199254740993", 2n ** 53n]) {
      expect(thrown(() => assertVersion(held(version), 12))).toBeInstanceOf(VersionOutOfRangeError);
    }
  });

  it("an object of no versioned class (a plain object, one without a prototype) is a configuration error", () => {
    for (const value of [{ id: 5, version: 1 }, Object.assign(Object.create(null), { id: 5, version: 1 })]) {
      const error = thrown(() => assertVersion(value, 1));
      expect(error).toBeInstanceOf(LockingConfigurationError);
      expect((error as Error).message).toMatch(/has no version property; mark one with @Versioned\(\)/);
    }
  });
});
