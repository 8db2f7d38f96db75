/**
 * Random edits of one order's lines, address and tag links by several clients on two
 * connections, against a model of the aggregate. Properties: every accepted flush that changed
 * anything moved the root's version by exactly one (and one that changed nothing, by none), no
 * accepted change to any part of the aggregate is lost, and a rejected flush leaves all of it as
 * it was.
 */
import fc from "fast-check";
import type { DataSource } from "typeorm";
import { ConcurrencyError, installLocking } from "../src";
import { AGGREGATE_ENTITIES, AggLine, AggOrder, AggTag } from "./fixtures/aggregate-entities";
import { closeAll, describeEachDatabase, openDataSources } from "./support/databases";

const CLIENTS = 3;
const PRODUCTS = ["pen", "ink", "paper"] as const;

type Action =
  | { kind: "load"; client: number }
  | { kind: "quantity"; client: number; line: number; value: number }
  | { kind: "street"; client: number; value: string }
  | { kind: "tag"; client: number; tag: number }
  | { kind: "save"; client: number };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant("load" as const), client: fc.nat(CLIENTS - 1) }),
  fc.record({
    kind: fc.constant("quantity" as const),
    client: fc.nat(CLIENTS - 1),
    line: fc.nat(PRODUCTS.length - 1),
    value: fc.integer({ min: 1, max: 3 }),
  }),
  fc.record({ kind: fc.constant("street" as const), client: fc.nat(CLIENTS - 1), value: fc.constantFrom("a", "b") }),
  fc.record({ kind: fc.constant("tag" as const), client: fc.nat(CLIENTS - 1), tag: fc.constantFrom(1, 2) }),
  fc.record({ kind: fc.constant("save" as const), client: fc.nat(CLIENTS - 1) }),
);

/** The parts of the aggregate the clients edit. */
interface Content {
  street: string;
  quantities: number[];
  tags: number[];
}

function contentOf(order: AggOrder): Content {
  return {
    street: order.address.street,
    quantities: PRODUCTS.map((p) => order.lines!.find((l) => l.product === p)!.quantity),
    tags: order.tags!.map((t) => t.id).sort(),
  };
}

describeEachDatabase((db) => {
  let connections: DataSource[];
  beforeAll(async () => {
    connections = await openDataSources(db, AGGREGATE_ENTITIES, { count: 2 });
    for (const c of connections) installLocking(c);
    await connections[0].getRepository(AggTag).save([
      { id: 1, name: "gift" },
      { id: 2, name: "express" },
    ]);
  });
  afterAll(() => closeAll(...connections));

  it("each accepted flush moves the root once, no accepted change is lost, a rejected one changes nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 4, maxLength: 24 }), async (actions) => {
        const sourceOf = (client: number) => connections[client % connections.length];
        const { id } = await sourceOf(0)
          .getRepository(AggOrder)
          .save({
            status: "NEW",
            address: { street: "a", city: "Seoul" },
            lines: PRODUCTS.map((product) => ({ product, quantity: 1 })),
            tags: [],
          } as unknown as AggOrder);
        const load = (client: number) =>
          sourceOf(client)
            .getRepository(AggOrder)
            .findOneOrFail({ where: { id }, relations: { lines: true, tags: true } });
        let model = { content: contentOf(await load(0)), version: 1 };
        const copies: Array<AggOrder | undefined> = [];
        const held: Array<number | undefined> = [];

        for (const action of actions) {
          const copy = copies[action.client];
          if (action.kind === "load") {
            copies[action.client] = await load(action.client);
            held[action.client] = model.version;
          } else if (!copy) {
            continue;
          } else if (action.kind === "quantity") {
            copy.lines!.find((l) => l.product === PRODUCTS[action.line])!.quantity = action.value;
          } else if (action.kind === "street") {
            copy.address.street = action.value;
          } else if (action.kind === "tag") {
            const has = copy.tags!.some((t) => t.id === action.tag);
            copy.tags = has
              ? copy.tags!.filter((t) => t.id !== action.tag)
              : [...copy.tags!, { id: action.tag } as AggTag];
          } else {
            const current = held[action.client] === model.version;
            const changed = JSON.stringify(contentOf(copy)) !== JSON.stringify(model.content);
            const outcome = await sourceOf(action.client)
              .getRepository(AggOrder)
              .save(copy)
              .then(
                () => "accepted",
                (e: unknown) => {
                  if (!(e instanceof ConcurrencyError)) throw e;
                  return "rejected";
                },
              );
            // A stale copy equal to the aggregate may be refused (TypeORM may still see its old
            // version as a change) or pass writing nothing; either way the check below holds.
            if (current) expect(outcome).toBe("accepted");
            else if (changed) expect(outcome).toBe("rejected");
            if (outcome === "accepted" && changed) model = { content: contentOf(copy), version: model.version + 1 };
            if (current) held[action.client] = model.version;
          }
          const row = await load(0);
          expect({ content: contentOf(row), version: row.version }).toEqual(model);
        }
      }),
      { numRuns: 60 },
    );
  });
});

/**
 * Lines moved between two orders at random, beside quantity edits: a client holds both orders
 * (loaded together), moves a line through the line's own repository (`line.order = other`), or
 * saves one order with its cascade. Properties: a move is accepted exactly when both orders the
 * client holds are current, and moves both by one; a save of a current order is accepted, of a
 * stale one that differs is rejected; the database always equals the model, so no move is
 * undone by a stale order put back over it.
 */
type MoveAction =
  | { kind: "load"; client: number }
  | { kind: "quantity"; client: number; line: number; value: number }
  | { kind: "move"; client: number; line: number }
  | { kind: "save"; client: number; order: number };

const moveActionArb: fc.Arbitrary<MoveAction> = fc.oneof(
  fc.record({ kind: fc.constant("load" as const), client: fc.nat(CLIENTS - 1) }),
  fc.record({
    kind: fc.constant("quantity" as const),
    client: fc.nat(CLIENTS - 1),
    line: fc.nat(PRODUCTS.length - 1),
    value: fc.integer({ min: 1, max: 3 }),
  }),
  fc.record({ kind: fc.constant("move" as const), client: fc.nat(CLIENTS - 1), line: fc.nat(PRODUCTS.length - 1) }),
  fc.record({ kind: fc.constant("save" as const), client: fc.nat(CLIENTS - 1), order: fc.nat(1) }),
);

/** An order's lines as "product:quantity", sorted. */
const linesOf = (order: AggOrder) => order.lines!.map((l) => `${l.product}:${l.quantity}`).sort();

describeEachDatabase((db) => {
  let connections: DataSource[];
  beforeAll(async () => {
    connections = await openDataSources(db, AGGREGATE_ENTITIES, { count: 2 });
    for (const c of connections) installLocking(c);
  });
  afterAll(() => closeAll(...connections));

  it("lines moved between orders: both move once, a stale order never puts a moved line back", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(moveActionArb, { minLength: 4, maxLength: 24 }), async (actions) => {
        const sourceOf = (client: number) => connections[client % connections.length];
        const orders = sourceOf(0).getRepository(AggOrder);
        const create = (products: readonly string[]) =>
          orders.save({
            status: "NEW",
            address: { street: "a", city: "Seoul" },
            lines: products.map((product) => ({ product, quantity: 1 })),
          } as unknown as AggOrder);
        const ids = [(await create(PRODUCTS.slice(0, 2))).id, (await create(PRODUCTS.slice(2))).id];
        const load = (client: number, order: number) =>
          sourceOf(client)
            .getRepository(AggOrder)
            .findOneOrFail({ where: { id: ids[order] }, relations: { lines: true } });
        const model = {
          lines: [await load(0, 0), await load(0, 1)].map(linesOf),
          versions: [1, 1],
        };
        const copies: Array<AggOrder[] | undefined> = [];
        const held: number[][] = [];
        const holding = (client: number, product: string) => {
          const pair = copies[client]!;
          const order = pair.findIndex((o) => o.lines!.some((l) => l.product === product));
          return { order, line: pair[order]?.lines?.find((l) => l.product === product) };
        };

        for (const action of actions) {
          const pair = copies[action.client];
          const mine = held[action.client];
          if (action.kind === "load") {
            copies[action.client] = [await load(action.client, 0), await load(action.client, 1)];
            held[action.client] = [...model.versions];
          } else if (!pair || !mine) {
            continue;
          } else if (action.kind === "quantity") {
            const { line } = holding(action.client, PRODUCTS[action.line]);
            if (line) line.quantity = action.value;
          } else if (action.kind === "move") {
            const { order: from, line } = holding(action.client, PRODUCTS[action.line]);
            if (!line) continue;
            const to = 1 - from;
            const current = mine[0] === model.versions[0] && mine[1] === model.versions[1];
            const product = PRODUCTS[action.line];
            // Unchanged when the line is already where it is moved to, with this quantity.
            const changed = !model.lines[to].includes(`${product}:${line.quantity}`);
            line.order = pair[to];
            const outcome = await sourceOf(action.client)
              .getRepository(AggLine)
              .save(line)
              .then(
                () => "accepted",
                (e: unknown) => {
                  if (!(e instanceof ConcurrencyError)) throw e;
                  return "rejected";
                },
              );
            delete (line as Partial<AggLine>).order;
            if (current) expect(outcome).toBe("accepted");
            else if (changed) expect(outcome).toBe("rejected");
            if (outcome === "accepted") {
              pair[from].lines = pair[from].lines!.filter((l) => l !== line);
              pair[to].lines!.push(line);
            }
            if (outcome === "accepted" && changed) {
              // Only a current pair gets here: the line left `from` and joined `to`.
              const others = (lines: string[]) => lines.filter((l) => !l.startsWith(`${product}:`));
              model.lines[from] = others(model.lines[from]);
              model.lines[to] = [...others(model.lines[to]), `${product}:${line.quantity}`].sort();
              model.versions = model.versions.map((v) => v + 1);
            }
            if (current) held[action.client] = [...model.versions];
          } else {
            const copy = pair[action.order];
            const current = mine[action.order] === model.versions[action.order];
            const changed = JSON.stringify(linesOf(copy)) !== JSON.stringify(model.lines[action.order]);
            const outcome = await sourceOf(action.client)
              .getRepository(AggOrder)
              .save(copy)
              .then(
                () => "accepted",
                (e: unknown) => {
                  if (!(e instanceof ConcurrencyError)) throw e;
                  return "rejected";
                },
              );
            if (current) expect(outcome).toBe("accepted");
            else if (changed) expect(outcome).toBe("rejected");
            if (outcome === "accepted" && changed) {
              model.lines[action.order] = linesOf(copy);
              model.versions[action.order] += 1;
            }
            if (current) mine[action.order] = model.versions[action.order];
          }
          const rows = [await load(0, 0), await load(0, 1)];
          expect({ lines: rows.map(linesOf), versions: rows.map((o) => o.version) }).toEqual(model);
        }
      }),
      { numRuns: Number(process.env.MOVE_RUNS ?? 40) },
    );
  });
});
