/**
 * Versioned tree entities (`@Tree("materialized-path" | "closure-table" | "nested-set")`): the
 * statements TypeORM runs to keep a tree's bookkeeping (the materialized path, the closure rows,
 * the nested-set bounds) leave the version alone, so a node is saved, saved again and moved like
 * any other entity, and only a real concurrent change conflicts. Found while measuring the
 * batched writes (issue 23): TypeORM writes a new node's materialized path with a query-builder
 * UPDATE, which added `version = version + 1`, so the row stood at 2 while the entity held 1, and
 * the node's next save failed with an OptimisticLockError although nobody else had touched it.
 */
import "reflect-metadata";
import {
  Column,
  type DataSource,
  Entity,
  PrimaryGeneratedColumn,
  Tree,
  TreeChildren,
  TreeParent,
  VersionColumn,
} from "typeorm";
import { installLocking, type LockingOptions, OfflineLockRequiredError, OptimisticLockError, Versioned } from "../src";
import { OfflineLockManager, OfflineLockRecord } from "../src/offline";
import { closeAll, describeEachDatabase, openDataSources, type TestDatabase } from "./support/databases";

type TreeKind = "materialized-path" | "closure-table" | "nested-set";

interface TreeNode {
  id: number;
  name: string;
  version: number;
  parent?: TreeNode | null;
  children?: TreeNode[];
}

/** One entity class per tree kind and version declaration, each with its own table. */
function treeEntity(kind: TreeKind, declaredBy: "versioned" | "version-column"): new () => TreeNode {
  const table = `tr_${kind.replace("-", "_")}_${declaredBy === "versioned" ? "v" : "vc"}`;
  const version = declaredBy === "versioned" ? Versioned() : VersionColumn();
  @Entity(table)
  @Tree(kind)
  class Node implements TreeNode {
    @PrimaryGeneratedColumn() id!: number;
    @Column() name!: string;
    version!: number;
    @TreeParent() parent?: Node | null;
    @TreeChildren({ cascade: true }) children?: Node[];
  }
  version(Node.prototype, "version");
  Object.defineProperty(Node, "name", { value: `${kind}/${declaredBy}` });
  return Node;
}

const KINDS: TreeKind[] = ["materialized-path", "closure-table", "nested-set"];
const CASES = KINDS.flatMap((kind) =>
  (["versioned", "version-column"] as const).map((declaredBy) => ({
    kind,
    declaredBy,
    entity: treeEntity(kind, declaredBy),
  })),
);
const INSTALLS: Array<[string, LockingOptions]> = [
  ["one statement per row", { versionColumns: "checked" }],
  ["batchWrites", { versionColumns: "checked", batchWrites: true }],
];

describeEachDatabase((db: TestDatabase) => {
  describe.each(INSTALLS)("%s", (_, options) => {
    let alice: DataSource;
    let bob: DataSource;
    beforeAll(async () => {
      [alice, bob] = await openDataSources(
        db,
        CASES.map((c) => c.entity),
        { count: 2, beforeInitialize: (source) => installLocking(source, options) },
      );
    });
    afterAll(() => closeAll(alice, bob));

    for (const { kind, declaredBy, entity } of CASES) {
      describe(`${kind}, ${declaredBy === "versioned" ? "@Versioned()" : '@VersionColumn, versionColumns: "checked"'}`, () => {
        const repo = (source: DataSource) => source.getTreeRepository(entity);
        const versionOf = async (id: number) => (await repo(bob).findOneByOrFail({ id })).version;

        /** A fresh subtree of the one root (a nested set allows one): top > a > a1, top > b. */
        let trunk: TreeNode | undefined;
        async function plant() {
          trunk ??= await repo(alice).save(Object.assign(new entity(), { name: "trunk" }));
          const root = await repo(alice).save(Object.assign(new entity(), { name: "top", parent: trunk }));
          const a = await repo(alice).save(Object.assign(new entity(), { name: "a", parent: root }));
          const a1 = await repo(alice).save(Object.assign(new entity(), { name: "a1", parent: a }));
          const b = await repo(alice).save(Object.assign(new entity(), { name: "b", parent: root }));
          return { root, a, a1, b };
        }

        async function childrenOf(node: TreeNode): Promise<string[]> {
          const tree = await repo(bob).findDescendantsTree(await repo(bob).findOneByOrFail({ id: node.id }));
          return (tree.children ?? []).map((c) => c.name).sort();
        }

        it("a new node's row holds the version its entity holds", async () => {
          const { root, a, a1, b } = await plant();
          for (const node of [root, a, a1, b]) {
            expect(node.version).toBe(1);
            expect(await versionOf(node.id)).toBe(1);
          }
        });

        it("a node inserted as a parent's cascaded child holds its row's version too", async () => {
          const { b } = await plant();
          const parent = await repo(alice).findOneByOrFail({ id: b.id });
          parent.children = [Object.assign(new entity(), { name: "b1" })];
          await repo(alice).save(parent);
          const child = parent.children[0];
          expect(child.version).toBe(1);
          expect(await versionOf(child.id)).toBe(1);
          expect(await childrenOf(b)).toEqual(["b1"]);
        });

        it("a node is loaded, changed and saved, then saved again from the same object", async () => {
          const { a } = await plant();
          const loaded = await repo(alice).findOneByOrFail({ id: a.id });
          loaded.name = "a renamed";
          await repo(alice).save(loaded);
          expect(loaded.version).toBe(2);
          a.name = "a from the inserted object";
          await expect(repo(alice).save(a)).rejects.toBeInstanceOf(OptimisticLockError);
          loaded.name = "a again";
          await repo(alice).save(loaded);
          expect(loaded.version).toBe(3);
          expect(await repo(bob).findOneByOrFail({ id: a.id })).toMatchObject({ name: "a again", version: 3 });
        });

        it("a move bumps the moved node's version once and leaves its subtree's and parents' alone", async () => {
          const { root, a, a1, b } = await plant();
          const moving = await repo(alice).findOneByOrFail({ id: a.id });
          moving.parent = await repo(alice).findOneByOrFail({ id: b.id });
          await repo(alice).save(moving);
          expect(moving.version).toBe(2);
          expect(await versionOf(a.id)).toBe(2);
          for (const untouched of [root, a1, b]) expect(await versionOf(untouched.id)).toBe(1);
          expect(await childrenOf(b)).toEqual(["a"]);
          expect(await childrenOf(a)).toEqual(["a1"]);
          expect(await childrenOf(root)).toEqual(["b"]);
        });

        it("a holder of a node in the moved subtree saves it without a conflict", async () => {
          const { a, a1, b } = await plant();
          const held = await repo(bob).findOneByOrFail({ id: a1.id });
          const moving = await repo(alice).findOneByOrFail({ id: a.id });
          moving.parent = await repo(alice).findOneByOrFail({ id: b.id });
          await repo(alice).save(moving);
          held.name = "a1 by bob";
          await repo(bob).save(held);
          expect(await repo(alice).findOneByOrFail({ id: a1.id })).toMatchObject({ name: "a1 by bob", version: 2 });
          expect(await childrenOf(a)).toEqual(["a1 by bob"]);
        });

        it("a stale move conflicts and moves nothing: the tree stays as the other change left it", async () => {
          const { root, a, b } = await plant();
          const stale = await repo(alice).findOneByOrFail({ id: a.id });
          const fresh = await repo(bob).findOneByOrFail({ id: a.id });
          fresh.name = "a by bob";
          await repo(bob).save(fresh);
          stale.parent = await repo(alice).findOneByOrFail({ id: b.id });
          await expect(repo(alice).save(stale)).rejects.toBeInstanceOf(OptimisticLockError);
          expect(await repo(bob).findOneByOrFail({ id: a.id })).toMatchObject({ name: "a by bob", version: 2 });
          expect(await childrenOf(root)).toEqual(["a by bob", "b"]);
          expect(await childrenOf(a)).toEqual(["a1"]);
          expect(await childrenOf(b)).toEqual([]);
        });
      });
    }
  });

  it("a @VersionColumn tree the library does not guard is left to TypeORM, its own increment included", async () => {
    const entity = CASES.find((c) => c.kind === "materialized-path" && c.declaredBy === "version-column")!.entity;
    const [plain] = await openDataSources(db, [entity], { beforeInitialize: (source) => installLocking(source) });
    try {
      const repo = plain.getTreeRepository(entity);
      const root = await repo.save(Object.assign(new entity(), { name: "root" }));
      // TypeORM's UPDATE of the new node's path adds `version = version + 1`; unguarded, it stays.
      expect(root.version).toBe(1);
      expect((await repo.findOneByOrFail({ id: root.id })).version).toBe(2);
    } finally {
      await closeAll(plain);
    }
  });

  it("an offline-protected node is saved and moved by its lock's holder: the path upkeep is no bypass", async () => {
    const entity = CASES.find((c) => c.kind === "materialized-path" && c.declaredBy === "versioned")!.entity;
    const [carol, dave] = await openDataSources(db, [entity, OfflineLockRecord], {
      count: 2,
      beforeInitialize: (source) => installLocking(source),
    });
    try {
      const carolLocks = new OfflineLockManager(carol).protect(entity);
      new OfflineLockManager(dave).protect(entity);
      const repo = (source: DataSource) => source.getTreeRepository(entity);
      const make = (name: string, parent?: TreeNode) => Object.assign(new entity(), { name, parent });
      // New nodes need no lock (nobody can hold one yet).
      const root = await repo(carol).save(make("root"));
      const [a, b] = [await repo(carol).save(make("a", root)), await repo(carol).save(make("b", root))];
      const leaf = await repo(carol).save(make("leaf", a));
      const moving = await repo(dave).findOneByOrFail({ id: leaf.id });
      moving.parent = await repo(dave).findOneByOrFail({ id: b.id });
      await expect(repo(dave).save(moving)).rejects.toBeInstanceOf(OfflineLockRequiredError);
      const lock = await carolLocks.tryLock(entity.name, leaf.id, { owner: "carol", ttlMs: 60_000 });
      const mine = await repo(carol).findOneByOrFail({ id: leaf.id });
      mine.parent = await repo(carol).findOneByOrFail({ id: b.id });
      mine.name = "leaf moved";
      await carolLocks.runHolding(lock, () => repo(carol).save(mine));
      expect(mine.version).toBe(2);
      const tree = await repo(dave).findDescendantsTree(await repo(dave).findOneByOrFail({ id: b.id }));
      expect((tree.children ?? []).map((c) => [c.name, c.version])).toEqual([["leaf moved", 2]]);
      await carolLocks.releaseLock(lock);
    } finally {
      await closeAll(carol, dave);
    }
  });
});
