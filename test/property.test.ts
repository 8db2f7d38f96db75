/**
 * Random interleavings of load / modify / save / remove by several clients (on two connections)
 * against a model of what the row must be. Properties: no accepted write is ever lost, and
 * every rejected one leaves the row exactly as it was.
 */
import fc from "fast-check";
import type { DataSource } from "typeorm";
import { ConcurrencyError, installLocking } from "../src";
import { ALL_ENTITIES, Order } from "./fixtures/entities";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";

const CLIENTS = 3;
type Field = "address" | "status";
type Action =
  | { kind: "load"; client: number }
  | { kind: "modify"; client: number; field: Field; value: string }
  | { kind: "save"; client: number }
  | { kind: "remove"; client: number };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant("load" as const), client: fc.nat(CLIENTS - 1) }),
  fc.record({
    kind: fc.constant("modify" as const),
    client: fc.nat(CLIENTS - 1),
    field: fc.constantFrom<Field>("address", "status"),
    value: fc.constantFrom("a", "b", "c"),
  }),
  fc.record({ kind: fc.constant("save" as const), client: fc.nat(CLIENTS - 1) }),
  fc.record({ kind: fc.constant("remove" as const), client: fc.nat(CLIENTS - 1) }),
);

/** What the database must hold: the result of exactly the accepted writes. */
interface RowModel {
  exists: boolean;
  address: string;
  status: string;
  version: number;
}

/** "accepted", or "rejected" for a conflict; anything else is a failure of the test. */
function outcomeOf(write: Promise<unknown>): Promise<"accepted" | "rejected"> {
  return write.then(
    () => "accepted" as const,
    (e: unknown) => {
      if (!(e instanceof ConcurrencyError)) throw e;
      return "rejected" as const;
    },
  );
}

describeEachDatabase((db) => {
  let connections: DataSource[];
  beforeAll(async () => {
    connections = await openDataSources(db, ALL_ENTITIES, { count: 2 });
    for (const c of connections) installLocking(c);
  });
  afterAll(() => closeAll(...connections));

  it("no accepted write is lost; every rejected write leaves the row as it was", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 1, maxLength: 16 }), async (actions) => {
        const repoOf = (client: number) => connections[client % connections.length].getRepository(Order);
        const { id } = await repoOf(0).save(repoOf(0).create({ address: "a", status: "a" }));
        const model: RowModel = { exists: true, address: "a", status: "a", version: 1 };
        const copies: Array<Order | undefined> = [];
        /** The version each copy was loaded or last saved at, as the model sees it. */
        const heldVersion: Array<number | undefined> = [];

        for (const action of actions) {
          const repo = repoOf(action.client);
          const copy = copies[action.client];
          if (action.kind === "load") {
            copies[action.client] = (await repo.findOneBy({ id })) ?? undefined;
            heldVersion[action.client] = model.exists ? model.version : undefined;
          } else if (action.kind === "modify" && copy) {
            copy[action.field] = action.value;
          } else if (action.kind === "save" && copy) {
            const current = model.exists && heldVersion[action.client] === model.version;
            const changed = copy.address !== model.address || copy.status !== model.status;
            expect(await outcomeOf(repo.save(copy))).toBe(current ? "accepted" : "rejected");
            if (current && changed) {
              Object.assign(model, { address: copy.address, status: copy.status, version: model.version + 1 });
            }
            if (current) heldVersion[action.client] = model.version;
          } else if (action.kind === "remove" && copy) {
            const current = model.exists && heldVersion[action.client] === model.version;
            expect(await outcomeOf(repo.remove(copy))).toBe(current ? "accepted" : "rejected");
            if (current) {
              model.exists = false;
              copies[action.client] = undefined;
            }
          }
          const row = await repoOf(0).findOneBy({ id });
          if (model.exists) {
            expect(row).toMatchObject({ address: model.address, status: model.status, version: model.version });
          } else {
            expect(row).toBeNull();
          }
        }
      }),
      { numRuns: 30 },
    );
  });
});
