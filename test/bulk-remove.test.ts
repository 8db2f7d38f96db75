/**
 * With `batchWrites: false`, `remove([a, b, c])` deletes the three rows with TypeORM's one DELETE, each row guarded by the version its
 * entity holds. A change that lands after TypeORM's pre-load (which would have refused a stale
 * copy before writing) and before that DELETE is caught by the DELETE's row count: the whole
 * remove fails with OptimisticLockError naming every entity of the statement and how many rows
 * had moved, and deletes nothing (the flush's transaction rolls back). On every database: the
 * change comes from the same transaction (an entity subscriber, as an application's own hook
 * would), and, where a second connection can commit while the remove's transaction is open (not
 * SQLite, whose second writer waits for the remove's transaction), from another connection.
 */
import type { DataSource, EntityManager } from "typeorm";
import { installLocking, OptimisticLockError } from "../src";
import { Counter } from "./fixtures/counter";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";

/** Runs `change` once, in the next beforeRemove of a Counter on `writer`, with that flush's manager. */
function changeBeforeNextRemove(writer: DataSource, change: (manager: EntityManager) => Promise<unknown>): void {
  const subscriber = {
    listenTo: () => Counter,
    beforeRemove: async (event: { manager: EntityManager }) => {
      writer.subscribers.splice(writer.subscribers.indexOf(subscriber as never), 1);
      await change(event.manager);
    },
  };
  writer.subscribers.push(subscriber as never);
}

describeEachDatabase((db) => {
  let writer: DataSource;
  let other: DataSource;

  beforeAll(async () => {
    [writer, other] = await openDataSources(db, [Counter], { count: 2 });
    // TypeORM's own one DELETE, row-count checked: batchWrites (the default) deletes with its own
    // statement and names each stale row (test/batched-writes.test.ts).
    installLocking(writer, { batchWrites: false });
    installLocking(other);
  });
  afterAll(() => closeAll(writer, other));

  let nextId = 1;
  async function counters(n: number): Promise<Counter[]> {
    const ids = Array.from({ length: n }, () => nextId++);
    await writer.getRepository(Counter).insert(ids.map((id) => ({ id, value: 0, version: 1 })));
    return writer.getRepository(Counter).find({ where: ids.map((id) => ({ id })), order: { id: "ASC" } });
  }
  /** The rows left of `ids`, as [id, version]. (A successful remove() clears the entities' ids.) */
  const remaining = async (ids: number[]) =>
    (await other.getRepository(Counter).find({ where: ids.map((id) => ({ id })), order: { id: "ASC" } })).map((c) => [
      c.id,
      c.version,
    ]);
  const idsOf = (rows: Counter[]) => rows.map(({ id }) => id);

  it("all three current: all three removed", async () => {
    const rows = await counters(3);
    const ids = idsOf(rows);
    await writer.getRepository(Counter).remove(rows);
    expect(await remaining(ids)).toEqual([]);
  });

  it("one of three moved in the same transaction before the DELETE: OptimisticLockError for the statement, nothing deleted", async () => {
    const rows = await counters(3);
    const [a, b, c] = rows;
    changeBeforeNextRemove(writer, (manager) =>
      manager
        .createQueryBuilder()
        .update(Counter)
        .set({ value: 9, version: () => "version + 1" })
        .where("id = :id", { id: b.id })
        .execute(),
    );
    const error = await writer
      .getRepository(Counter)
      .remove(rows)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OptimisticLockError);
    // Every entity of the one statement is named: which one moved, the row count cannot tell.
    expect(error).toMatchObject({
      entityName: "Counter",
      id: [{ id: a.id }, { id: b.id }, { id: c.id }],
      expectedVersion: 1,
      operation: "remove",
      retryable: true,
    });
    expect(await remaining(idsOf(rows))).toEqual([
      [a.id, 1],
      [b.id, 1],
      [c.id, 1],
    ]);
  });

  it("one of two deleted in the same transaction before the DELETE: the same (a vanished row is a moved row)", async () => {
    const rows = await counters(2);
    changeBeforeNextRemove(writer, (manager) => manager.delete(Counter, { id: rows[1].id }));
    const error = await writer
      .getRepository(Counter)
      .remove(rows)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OptimisticLockError);
    expect((error as OptimisticLockError).id).toEqual([{ id: rows[0].id }, { id: rows[1].id }]);
    expect(await remaining(idsOf(rows))).toHaveLength(2);
  });

  if (db.family !== "sqlite") {
    it("one of three moved by another connection after the pre-load: OptimisticLockError, nothing deleted, the other change kept", async () => {
      const rows = await counters(3);
      changeBeforeNextRemove(writer, () =>
        other
          .createQueryBuilder()
          .update(Counter)
          .set({ value: 7, version: () => "version + 1" })
          .where("id = :id", { id: rows[2].id })
          .execute(),
      );
      const error = await writer
        .getRepository(Counter)
        .remove(rows)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect((error as OptimisticLockError).id).toHaveLength(3);
      expect(await remaining(idsOf(rows))).toEqual([
        [rows[0].id, 1],
        [rows[1].id, 1],
        [rows[2].id, 2],
      ]);
    });
  }

  it("a single remove whose row moved in the same transaction: OptimisticLockError naming that one entity", async () => {
    const [only] = await counters(1);
    changeBeforeNextRemove(writer, (manager) =>
      manager
        .createQueryBuilder()
        .update(Counter)
        .set({ version: () => "version + 1" })
        .where("id = :id", { id: only.id })
        .execute(),
    );
    const error = await writer
      .getRepository(Counter)
      .remove(only)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OptimisticLockError);
    expect(error).toMatchObject({ expectedVersion: 1, operation: "remove" });
    // The id as the application knows it: a plain copy, comparable with toEqual and holding nothing
    // of the library's (no reference to the DataSource).
    expect((error as OptimisticLockError).id).toEqual({ id: only.id });
    expect(await remaining([only.id])).toEqual([[only.id, 1]]);
  });

  // The application's own DELETE by a list of ids carries no version: the library neither checks
  // its row count nor touches its arguments, whichever DataSource (batching or not) runs it.
  it.each([
    ["without batching", () => writer],
    ["with batching", () => other],
  ])("an application's own DELETE of an id list some of whose rows are gone (%s): TypeORM's result", async (_, source) => {
    const [kept, gone] = await counters(2);
    await other.getRepository(Counter).delete({ id: gone.id });
    const result = await source()
      .createQueryBuilder()
      .delete()
      .from(Counter)
      .where([{ id: kept.id }, { id: gone.id }])
      .execute();
    expect(result.affected).toBe(1);
    expect(await remaining([kept.id, gone.id])).toEqual([]);
  });

  it("an application's DELETE with an empty id in its list: TypeORM's own error", () => {
    const typeormError = (where: unknown) => {
      try {
        writer
          .createQueryBuilder()
          .delete()
          .from(Counter)
          .where(where as never);
      } catch (error) {
        return error;
      }
      throw new Error("TypeORM took an empty condition");
    };
    // A single null is refused by TypeORM alone (the library looks at lists only).
    const expected = typeormError(null);
    expect(typeormError([{ id: 1 }, null])).toEqual(expected);
    expect(typeormError([undefined])).toEqual(expected);
  });

  it.each([
    ["two, with batching", () => other, 2],
    ["one, without batching", () => writer, 1],
  ])("a remove of entities that were never saved (%s): TypeORM's own error, nothing deleted", async (_, source, count) => {
    const [saved] = await counters(1);
    const unsaved = Array.from({ length: count }, (_, i) => Object.assign(new Counter(), { value: i, version: 1 }));
    const error = await source()
      .getRepository(Counter)
      .remove(unsaved)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe("SubjectWithoutIdentifierError");
    expect(await remaining([saved.id])).toEqual([[saved.id, 1]]);
  });
});
