/**
 * The checker: reads the final state of every aggregate and compares it with the history.
 *
 * Fails on: an ok token missing (a lost update), a failed token present (a write from a call that
 * reported that nothing was written), a token present twice, a token nobody wrote or in another
 * aggregate than its operation's, an aggregate whose version moved fewer times than it had ok
 * writes (a write the version did not see) or more times than its ok and unknown writes together.
 * Unknown tokens may be present (once) or absent.
 */
import type { DataSource } from "typeorm";
import type { HistoryModel } from "./model";
import type { RecordedOperation } from "./recorder";

/** The state of one aggregate as read after the run. */
export interface FinalAggregate {
  id: number;
  version: number;
  /** Every token of the order and of its lines, with where it was found. */
  tokens: { token: string; where: string }[];
}

export type ViolationKind =
  | "lost"
  | "failed-but-written"
  | "duplicate"
  | "foreign"
  | "wrong-aggregate"
  | "version-not-moved"
  | "version-moved-too-far";

export interface Violation {
  kind: ViolationKind;
  aggregate: number;
  token?: string;
  detail: string;
}

export interface CheckResult {
  violations: Violation[];
  /** Violations per kind (all kinds listed, 0 included). */
  counts: Record<ViolationKind, number>;
  /** Unknown operations whose token was found (so they did commit). */
  unknownPresent: number;
  unknownAbsent: number;
  aggregates: number;
  tokensFound: number;
}

/** Splits a token list as the workload writes it (space-separated). */
export function tokensOf(list: string | null | undefined): string[] {
  return (list ?? "").split(" ").filter((token) => token !== "");
}

/** Reads every aggregate of the model (orders with their lines). */
export async function readFinalState(dataSource: DataSource, model: HistoryModel): Promise<FinalAggregate[]> {
  const orders = await dataSource.getRepository(model.order).find({ relations: { lines: true }, order: { id: "ASC" } });
  return orders.map((order) => ({
    id: order.id,
    version: Number(order.version),
    tokens: [
      ...tokensOf(order.tokens).map((token) => ({ token, where: `order ${order.id}` })),
      ...(order.lines ?? []).flatMap((line) =>
        tokensOf(line.tokens).map((token) => ({ token, where: `line ${line.id}` })),
      ),
    ],
  }));
}

const KINDS: ViolationKind[] = [
  "lost",
  "failed-but-written",
  "duplicate",
  "foreign",
  "wrong-aggregate",
  "version-not-moved",
  "version-moved-too-far",
];

/**
 * Checks a final state against a history. `initialVersions` are the orders' versions before the
 * first operation (id -> version).
 */
export function checkHistory(
  operations: readonly RecordedOperation[],
  initialVersions: ReadonlyMap<number, number>,
  finalState: readonly FinalAggregate[],
): CheckResult {
  const violations: Violation[] = [];
  const byToken = new Map<string, RecordedOperation>();
  for (const op of operations) byToken.set(op.token, op);

  const seen = new Map<string, { aggregate: number; where: string }>();
  for (const aggregate of finalState) {
    for (const { token, where } of aggregate.tokens) {
      const earlier = seen.get(token);
      if (earlier) {
        violations.push({
          kind: "duplicate",
          aggregate: aggregate.id,
          token,
          detail: `${token} is in ${earlier.where} of order ${earlier.aggregate} and in ${where}`,
        });
        continue;
      }
      seen.set(token, { aggregate: aggregate.id, where });
      const op = byToken.get(token);
      if (!op) {
        violations.push({ kind: "foreign", aggregate: aggregate.id, token, detail: `${token} was written by nobody` });
      } else if (op.aggregate !== aggregate.id) {
        violations.push({
          kind: "wrong-aggregate",
          aggregate: aggregate.id,
          token,
          detail: `${token} (${op.did} of order ${op.aggregate}) is in ${where} of order ${aggregate.id}`,
        });
      } else if (op.outcome === "failed") {
        violations.push({
          kind: "failed-but-written",
          aggregate: aggregate.id,
          token,
          detail: `${token} (${op.did}${op.retried ? ", retried" : ""}) failed with ${op.error} but is in ${where}`,
        });
      }
    }
  }

  let unknownPresent = 0;
  let unknownAbsent = 0;
  const okWrites = new Map<number, number>();
  const unknownWrites = new Map<number, number>();
  for (const op of operations) {
    const present = seen.has(op.token);
    if (op.outcome === "ok") {
      okWrites.set(op.aggregate, (okWrites.get(op.aggregate) ?? 0) + 1);
      if (!present) {
        violations.push({
          kind: "lost",
          aggregate: op.aggregate,
          token: op.token,
          detail: `${op.token} (${op.did}${op.retried ? ", retried" : ""}, ${op.attempts} attempt(s)) returned ok but is not in order ${op.aggregate}`,
        });
      }
    } else if (op.outcome === "unknown") {
      unknownWrites.set(op.aggregate, (unknownWrites.get(op.aggregate) ?? 0) + 1);
      if (present) unknownPresent++;
      else unknownAbsent++;
    }
  }

  for (const aggregate of finalState) {
    const initial = initialVersions.get(aggregate.id);
    if (initial === undefined) continue;
    const moved = aggregate.version - initial;
    const ok = okWrites.get(aggregate.id) ?? 0;
    const unknown = unknownWrites.get(aggregate.id) ?? 0;
    if (moved < ok) {
      violations.push({
        kind: "version-not-moved",
        aggregate: aggregate.id,
        detail: `order ${aggregate.id} had ${ok} ok writes but its version moved ${moved} times (${initial} -> ${aggregate.version})`,
      });
    } else if (moved > ok + unknown) {
      violations.push({
        kind: "version-moved-too-far",
        aggregate: aggregate.id,
        detail: `order ${aggregate.id} had ${ok} ok and ${unknown} unknown writes but its version moved ${moved} times`,
      });
    }
  }
  for (const id of initialVersions.keys()) {
    if (!finalState.some((aggregate) => aggregate.id === id)) {
      violations.push({ kind: "lost", aggregate: id, detail: `order ${id} is gone` });
    }
  }

  const counts = Object.fromEntries(KINDS.map((kind) => [kind, 0])) as Record<ViolationKind, number>;
  for (const violation of violations) counts[violation.kind]++;
  return {
    violations,
    counts,
    unknownPresent,
    unknownAbsent,
    aggregates: finalState.length,
    tokensFound: seen.size,
  };
}
