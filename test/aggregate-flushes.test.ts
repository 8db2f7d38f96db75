/**
 * Aggregate versions when one flush holds more than one aggregate, and when a change touches
 * properties excluded from optimistic locking: on every database.
 *
 * - `save([shelfA, shelfB])` with a member of each changed moves each root once: every root of
 *   the flush is bumped (and checked) on its own, whatever their versions, and a stale one fails
 *   the whole flush.
 * - `@OptimisticLockExcluded()` on a root's embedded value or scalar, or on a member's property:
 *   a change only to such properties moves no version; mixed with a checked change it moves the
 *   root exactly once.
 */
import {
  Column,
  type DataSource,
  DeleteDateColumn,
  Entity,
  type EntityManager,
  ManyToOne,
  OneToMany,
  PrimaryGeneratedColumn,
} from "typeorm";
import { installLocking, OptimisticLockError, OptimisticLockExcluded, Versioned, VersionedBy } from "../src";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";

/** Counters nobody edits by hand, embedded in the shelf's row. */
class ShelfStats {
  @Column({ default: 0 }) views!: number;
  @Column({ default: 0 }) likes!: number;
}

@Entity({ name: "tl_flush_shelf" })
class Shelf {
  @PrimaryGeneratedColumn() id!: number;
  @Column() label!: string;
  @OptimisticLockExcluded() @Column(() => ShelfStats) stats!: ShelfStats;
  @OptimisticLockExcluded() @Column({ default: "" }) lastViewedBy!: string;
  @Versioned() version!: number;
  @OneToMany(
    () => Book,
    (book) => book.shelf,
    { cascade: true },
  )
  books?: Book[];
}

@Entity({ name: "tl_flush_book" })
@VersionedBy(
  () => Shelf,
  (book: Book) => book.shelf,
)
class Book {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  /** How often it was lent: bookkeeping that must not conflict with edits of the shelf. */
  @OptimisticLockExcluded() @Column({ default: 0 }) lent!: number;
  @ManyToOne(
    () => Shelf,
    (shelf) => shelf.books,
    { onDelete: "CASCADE" },
  )
  shelf!: Shelf;
}

/** No aggregate: a row of its own, with a counter excluded from locking. */
@Entity({ name: "tl_flush_poster" })
class Poster {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @OptimisticLockExcluded() @Column({ default: 0 }) views!: number;
  @DeleteDateColumn({ nullable: true }) hiddenAt?: Date | null;
  @Versioned() version!: number;
}

describeEachDatabase((db) => {
  let alice: DataSource;
  let bob: DataSource;

  beforeAll(async () => {
    [alice, bob] = await openDataSources(db, [Shelf, Book, Poster], { count: 2 });
    installLocking(alice);
    installLocking(bob);
  });
  afterAll(() => closeAll(alice, bob));

  async function newShelf(label: string, books = 2): Promise<number> {
    const shelf = await alice.getRepository(Shelf).save({
      label,
      stats: { views: 0, likes: 0 },
      books: Array.from({ length: books }, (_, i) => ({ title: `${label} ${i + 1}` })),
    } as Shelf);
    return shelf.id;
  }
  const load = (source: DataSource, id: number) =>
    source
      .getRepository(Shelf)
      .findOneOrFail({ where: { id }, relations: { books: true }, order: { books: { id: "ASC" } } });
  const failure = (work: Promise<unknown>) =>
    work.then(
      () => undefined,
      (error: unknown) => error,
    );
  const versionOf = async (id: number) => (await bob.getRepository(Shelf).findOneByOrFail({ id })).version;

  describe("two aggregates in one flush", () => {
    it("a member of each changed: each root moves once", async () => {
      const [a, b] = [await newShelf("A"), await newShelf("B")];
      const shelves = [await load(alice, a), await load(alice, b)];
      shelves[0].books![0].title = "A 1, second edition";
      shelves[1].books![1].title = "B 2, second edition";
      await alice.getRepository(Shelf).save(shelves);
      expect(shelves.map((s) => s.version)).toEqual([2, 2]);
      expect([await versionOf(a), await versionOf(b)]).toEqual([2, 2]);
      expect((await load(bob, b)).books!.map((book) => book.title)).toEqual(["B 1", "B 2, second edition"]);
    });

    it("roots at different versions: each is checked against its own and moves once", async () => {
      const [a, b] = [await newShelf("A"), await newShelf("B")];
      const moved = await load(bob, b);
      moved.label = "B, renamed";
      await bob.getRepository(Shelf).save(moved); // b at 2
      const shelves = [await load(alice, a), await load(alice, b)];
      shelves[0].books![0].title = "A 1*";
      shelves[1].books![0].title = "B 1*";
      await alice.getRepository(Shelf).save(shelves);
      expect([await versionOf(a), await versionOf(b)]).toEqual([2, 3]);
    });

    it("one root overtaken since its load: the whole flush fails, the other aggregate's change is not written", async () => {
      const [a, b] = [await newShelf("A"), await newShelf("B")];
      const shelves = [await load(alice, a), await load(alice, b)];
      const theirs = await load(bob, b);
      theirs.books![0].title = "B 1 by Bob";
      await bob.getRepository(Shelf).save(theirs); // b at 2
      shelves[0].books![0].title = "A 1 by Alice";
      shelves[1].books![1].title = "B 2 by Alice";
      const error = await failure(alice.getRepository(Shelf).save(shelves));
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(error).toMatchObject({ entityName: "Shelf", id: { id: b } });
      expect([await versionOf(a), await versionOf(b)]).toEqual([1, 2]);
      expect((await load(bob, a)).books![0].title).toBe("A 1");
      expect((await load(bob, b)).books!.map((book) => book.title)).toEqual(["B 1 by Bob", "B 2"]);
    });

    it("the first root overtaken: the same (neither root is skipped, whichever comes first)", async () => {
      const [a, b] = [await newShelf("A"), await newShelf("B")];
      const shelves = [await load(alice, a), await load(alice, b)];
      const theirs = await load(bob, a);
      theirs.books![1].title = "A 2 by Bob";
      await bob.getRepository(Shelf).save(theirs);
      shelves[0].books![0].title = "A 1 by Alice";
      shelves[1].books![0].title = "B 1 by Alice";
      expect(await failure(alice.getRepository(Shelf).save(shelves))).toBeInstanceOf(OptimisticLockError);
      expect([await versionOf(a), await versionOf(b)]).toEqual([2, 1]);
    });
  });

  describe("two copies of one root in one flush (books saved together, each loaded with its own copy of the shelf)", () => {
    const loadBook = (id: number) =>
      alice.getRepository(Book).findOneOrFail({ where: { id }, relations: { shelf: true } });

    it.each([
      [["older", "newer"]],
      [["newer", "older"]],
      [["newer", "older", "newer"]],
    ])("at different versions (copies %j): OptimisticLockError at the older version, nothing written", async (copies) => {
      const id = await newShelf("S", copies.length);
      const ids = (await load(bob, id)).books!.map((book) => book.id);
      const books: Book[] = [];
      for (const [i, copy] of copies.entries()) if (copy === "older") books[i] = await loadBook(ids[i]); // shelf at 1
      const theirs = await load(bob, id);
      theirs.label = "S, renamed by Bob";
      await bob.getRepository(Shelf).save(theirs); // at 2
      for (const [i, copy] of copies.entries()) if (copy === "newer") books[i] = await loadBook(ids[i]); // shelf at 2
      for (const book of books) book.title += " by Alice";
      const error = await failure(alice.getRepository(Book).save(books));
      expect(error).toBeInstanceOf(OptimisticLockError);
      expect(error).toMatchObject({
        entityName: "Shelf",
        id: { id },
        expectedVersion: 1,
        operation: "aggregate change",
      });
      expect(await versionOf(id)).toBe(2);
      expect((await load(bob, id)).books!.map((book) => book.title)).toEqual(copies.map((_, i) => `S ${i + 1}`));
      expect(books.map((book) => book.shelf.version)).toEqual(copies.map((copy) => (copy === "older" ? 1 : 2)));
    });

    it("at the same version: the shelf moves once, and both copies hold the new version", async () => {
      const id = await newShelf("S");
      const [first, second] = (await load(bob, id)).books!.map((book) => book.id);
      const books = [await loadBook(first), await loadBook(second)];
      books[0].title = "S 1*";
      books[1].title = "S 2*";
      await alice.getRepository(Book).save(books);
      expect(await versionOf(id)).toBe(2);
      expect(books.map((book) => book.shelf.version)).toEqual([2, 2]);
      expect((await load(bob, id)).books!.map((book) => book.title)).toEqual(["S 1*", "S 2*"]);
    });
  });

  describe("@OptimisticLockExcluded properties", () => {
    // Excluded changes exempt an UPDATE only: a remove or soft remove is checked whatever the copy changed.
    it.each([
      ["remove", (copy: Poster) => alice.getRepository(Poster).remove(copy)],
      ["softRemove", (copy: Poster) => alice.getRepository(Poster).softRemove(copy)],
    ])("%s of a stale copy whose only change is excluded: checked, refused, the row as the other left it", async (_, write) => {
      const posters = alice.getRepository(Poster);
      const { id } = await posters.save({ title: "P" });
      const copy = await posters.findOneByOrFail({ id });
      await bob.getRepository(Poster).save({ ...copy, title: "P, moved" });
      copy.views = 5;
      expect(await failure(write(copy))).toBeInstanceOf(OptimisticLockError);
      expect(await bob.getRepository(Poster).findOneOrFail({ where: { id }, withDeleted: true })).toMatchObject({
        title: "P, moved",
        views: 0,
        hiddenAt: null,
        version: 2,
      });
    });

    // A current copy whose only change is excluded: its remove is still guarded by its version, so
    // a change landing after TypeORM's pre-load (here by the flush's own transaction) is caught.
    it.each([
      ["remove", "beforeRemove", (copy: Poster) => alice.getRepository(Poster).remove(copy)],
      ["softRemove", "beforeSoftRemove", (copy: Poster) => alice.getRepository(Poster).softRemove(copy)],
    ] as const)("%s of a current copy whose only change is excluded, the row moved after the pre-load: refused", async (_, event, write) => {
      const posters = alice.getRepository(Poster);
      const { id } = await posters.save({ title: "P" });
      const copy = await posters.findOneByOrFail({ id });
      const subscriber = {
        listenTo: () => Poster,
        [event]: async ({ manager }: { manager: EntityManager }) => {
          alice.subscribers.splice(alice.subscribers.indexOf(subscriber as never), 1);
          await manager
            .createQueryBuilder()
            .update(Poster)
            .set({ title: "P, moved", version: () => "version + 1" })
            .where("id = :id", { id })
            .execute();
        },
      };
      alice.subscribers.push(subscriber as never);
      copy.views = 5;
      expect(await failure(write(copy))).toBeInstanceOf(OptimisticLockError);
      expect(await bob.getRepository(Poster).findOneOrFail({ where: { id }, withDeleted: true })).toMatchObject({
        title: "P",
        hiddenAt: null,
        version: 1,
      });
    });

    // Excluded changes exempt an UPDATE only: a remove deletes the row whatever the copy changed.
    it("a remove of a stale copy whose only change is excluded: checked, refused, the row stays", async () => {
      const id = await newShelf("S", 0);
      const stale = await load(alice, id);
      const moved = await load(bob, id);
      moved.label = "S, moved";
      await bob.getRepository(Shelf).save(moved);
      stale.lastViewedBy = "alice";
      expect(await failure(alice.getRepository(Shelf).remove(stale))).toBeInstanceOf(OptimisticLockError);
      expect(await versionOf(id)).toBe(2);
    });

    it("a change only to a root's excluded embedded value moves no version and does not conflict", async () => {
      const id = await newShelf("S");
      const editor = await load(alice, id);
      const viewer = await load(bob, id);
      viewer.stats.views = 10;
      viewer.lastViewedBy = "bob";
      await bob.getRepository(Shelf).save(viewer);
      expect(await versionOf(id)).toBe(1);
      editor.label = "S, renamed";
      await alice.getRepository(Shelf).save(editor); // not overtaken: only excluded columns moved
      expect(await versionOf(id)).toBe(2);
    });

    it("an excluded change with a checked one on the root and a member change: the root moves exactly once", async () => {
      const id = await newShelf("S");
      const shelf = await load(alice, id);
      shelf.stats.likes = 3;
      shelf.label = "S, renamed";
      shelf.books![0].title = "S 1*";
      await alice.getRepository(Shelf).save(shelf);
      expect(shelf.version).toBe(2);
      expect(await versionOf(id)).toBe(2);
      const again = await load(bob, id);
      expect(again).toMatchObject({ label: "S, renamed", stats: { likes: 3 } });
    });

    it("an excluded-only change to the root with a member change: the root moves once, guarded", async () => {
      const id = await newShelf("S");
      const stale = await load(alice, id);
      const fresh = await load(bob, id);
      fresh.books![1].title = "by Bob";
      await bob.getRepository(Shelf).save(fresh);
      expect(await versionOf(id)).toBe(2);
      // The root's own UPDATE sets only excluded columns and moves nothing: the member's change
      // must still move the root, guarded by the version this copy was loaded with.
      stale.stats.likes = 5;
      stale.books![0].title = "by Alice";
      expect(await failure(alice.getRepository(Shelf).save(stale))).toBeInstanceOf(OptimisticLockError);
      const after = await load(bob, id);
      expect(after.books!.map((b) => b.title)).toEqual(["S 1", "by Bob"]);
      const current = await load(alice, id);
      current.stats.likes = 6;
      current.books![0].title = "by Alice";
      await alice.getRepository(Shelf).save(current);
      expect(current.version).toBe(3);
      expect(await versionOf(id)).toBe(3);
    });

    it("an excluded and a checked root change, nothing else: checked (a stale copy conflicts) and moved once", async () => {
      const id = await newShelf("S");
      const stale = await load(alice, id);
      const fresh = await load(bob, id);
      fresh.stats.views = 1;
      fresh.label = "by Bob";
      await bob.getRepository(Shelf).save(fresh);
      expect(await versionOf(id)).toBe(2);
      stale.stats.views = 2;
      stale.label = "by Alice";
      expect(await failure(alice.getRepository(Shelf).save(stale))).toBeInstanceOf(OptimisticLockError);
      expect(await bob.getRepository(Shelf).findOneByOrFail({ id })).toMatchObject({ label: "by Bob", version: 2 });
    });

    it("a change only to a member's excluded property moves no root version and does not conflict", async () => {
      const id = await newShelf("S");
      const editor = await load(alice, id);
      const lender = await load(bob, id);
      lender.books![0].lent = 4;
      await bob.getRepository(Shelf).save(lender);
      expect(await versionOf(id)).toBe(1);
      // Saved through the member's own repository: the same.
      const book = await bob
        .getRepository(Book)
        .findOneOrFail({ where: { id: lender.books![1].id }, relations: { shelf: true } });
      book.lent = 1;
      await bob.getRepository(Book).save(book);
      expect(await versionOf(id)).toBe(1);
      editor.books![1].title = "S 2*";
      await alice.getRepository(Shelf).save(editor);
      expect(await versionOf(id)).toBe(2);
      // Excluded means unchecked, not untouched: TypeORM writes every column of the stale copy that
      // differs from the row, so its counters go back (as in Hibernate without dynamic update).
      expect((await load(bob, id)).books!.map((b) => [b.title, b.lent])).toEqual([
        ["S 1", 0],
        ["S 2*", 0],
      ]);
    });

    it("a member's excluded change with a checked one moves the root once, and a stale copy conflicts", async () => {
      const id = await newShelf("S");
      const stale = await load(alice, id);
      const fresh = await load(bob, id);
      fresh.books![0].lent = 5;
      fresh.books![0].title = "S 1 by Bob";
      await bob.getRepository(Shelf).save(fresh);
      expect(await versionOf(id)).toBe(2);
      stale.books![1].title = "S 2 by Alice";
      expect(await failure(alice.getRepository(Shelf).save(stale))).toBeInstanceOf(OptimisticLockError);
      expect(await versionOf(id)).toBe(2);
    });
  });
});
