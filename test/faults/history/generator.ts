/**
 * The operation generator: a seeded random stream of operations, each appending one unique token
 * to one aggregate, so a failing run can be replayed from its seed (the op sequence per client
 * is the same; the interleaving is the database's).
 */

/** What an operation does to its aggregate; every kind appends its token somewhere in it. */
export type OperationKind =
  /** Load the order, append to its own tokens, `save()` the loaded copy. */
  | "root-save"
  /** Load the order with its lines, append to one line, `save()` the order (the cascade). */
  | "line-cascade"
  /** Load a line with its order, append to it, `save()` the line through its own repository. */
  | "line-repository"
  /** Load the order with its lines, add a line holding the token, `save()` the order. */
  | "line-add"
  /** Load the order with its lines, remove one (orphan delete), move its tokens and the new one to another line. */
  | "line-remove"
  /** Load the order, hold its version a moment, `updateVersioned()` its tokens with that version. */
  | "update-versioned"
  /** Lock the order `PESSIMISTIC_WRITE` with a timeout, append to a line, save, in one transaction. */
  | "pessimistic-write"
  /** Take the order's offline lock, append to the order under `runHolding`, release. */
  | "offline-lock";

export const ALL_KINDS: readonly OperationKind[] = [
  "root-save",
  "line-cascade",
  "line-repository",
  "line-add",
  "line-remove",
  "update-versioned",
  "pessimistic-write",
  "offline-lock",
];

/** The kinds that only use TypeORM's own API (what a plain-TypeORM run can do). */
export const TYPEORM_KINDS: readonly OperationKind[] = [
  "root-save",
  "line-cascade",
  "line-repository",
  "line-add",
  "line-remove",
];

/** One planned operation. */
export interface Operation {
  client: number;
  /** The client's operation number, from 0. */
  seq: number;
  /** Unique in the run, without spaces: `c<client>n<seq>`. */
  token: string;
  /** The order it writes to (its id). */
  aggregate: number;
  kind: OperationKind;
  /** Run inside `retryOnConflict` (true) or once (false). */
  retried: boolean;
}

/** mulberry32: a small, fast, seedable PRNG (plenty for picking operations). */
export function randomSource(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A uniformly random integer in [0, n). */
export function pick(random: () => number, n: number): number {
  return Math.floor(random() * n);
}

/** The stream of one client's operations. */
export class OperationGenerator {
  private seq = 0;
  readonly random: () => number;

  constructor(
    readonly client: number,
    seed: number,
    private readonly aggregates: number,
    private readonly kinds: readonly OperationKind[],
    private readonly retriedShare = 0.5,
  ) {
    if (kinds.length === 0) throw new Error("OperationGenerator: no operation kinds");
    this.random = randomSource(seed * 7919 + client);
  }

  next(): Operation {
    const seq = this.seq++;
    return {
      client: this.client,
      seq,
      token: `c${this.client}n${seq}`,
      aggregate: 1 + pick(this.random, this.aggregates),
      kind: this.kinds[pick(this.random, this.kinds.length)],
      retried: this.random() < this.retriedShare,
    };
  }
}
