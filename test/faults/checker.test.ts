/**
 * The checker's rules on hand-made histories (no database): each kind of violation is found,
 * and what is allowed (an unknown token present or absent) is not reported.
 */
import {
  CertificationConflictError,
  ClusterNodeNotReadyError,
  CommitOutcomeUnknownError,
  OptimisticLockError,
} from "../../src";
import {
  checkHistory,
  type FinalAggregate,
  type RecordedOperation,
  saysNothingWritten,
  type ViolationKind,
} from "./history";

function op(token: string, outcome: RecordedOperation["outcome"], aggregate = 1): RecordedOperation {
  return {
    client: 0,
    seq: 0,
    token,
    aggregate,
    kind: "root-save",
    did: "root-save",
    retried: false,
    outcome,
    attempts: 1,
    startedMs: 0,
    endedMs: 1,
  };
}

function state(id: number, version: number, ...tokens: string[]): FinalAggregate {
  return { id, version, tokens: tokens.map((token) => ({ token, where: `order ${id}` })) };
}

const initial = new Map([
  [1, 1],
  [2, 1],
]);

describe("history checker", () => {
  it("accepts ok tokens present, failed absent, unknown either way, versions moved once per ok write", () => {
    const history = [op("a", "ok"), op("b", "failed"), op("c", "unknown"), op("d", "unknown"), op("e", "ok", 2)];
    const result = checkHistory(history, initial, [state(1, 3, "a", "c"), state(2, 2, "e")]);
    expect(result.violations).toEqual([]);
    expect(result.unknownPresent).toBe(1);
    expect(result.unknownAbsent).toBe(1);
  });

  it.each([
    ["lost", [op("a", "ok")], [state(1, 2), state(2, 1)]],
    ["failed-but-written", [op("a", "failed")], [state(1, 1, "a"), state(2, 1)]],
    ["duplicate", [op("a", "ok")], [state(1, 2, "a", "a"), state(2, 1)]],
    ["foreign", [], [state(1, 1, "zz"), state(2, 1)]],
    ["wrong-aggregate", [op("a", "unknown", 2)], [state(1, 1, "a"), state(2, 1)]],
    ["version-not-moved", [op("a", "ok"), op("b", "ok")], [state(1, 2, "a", "b"), state(2, 1)]],
    ["version-moved-too-far", [op("a", "ok"), op("b", "unknown")], [state(1, 4, "a"), state(2, 1)]],
    ["lost", [], [state(2, 1)]], // an order gone
  ] as [ViolationKind, RecordedOperation[], FinalAggregate[]][])("reports %s", (kind, history, final) => {
    const result = checkHistory(history, initial, final);
    expect(result.violations.map((v) => v.kind)).toEqual([kind]);
    expect(result.counts[kind]).toBe(1);
  });

  it("counts a Galera node's refusal (1047) as failed, and a COMMIT it could not replicate (1180) as unknown", () => {
    const refused = new ClusterNodeNotReadyError({ dialect: "galera", code: "1047" });
    expect(saysNothingWritten(refused)).toBe(true);
    const notReplicated = new CommitOutcomeUnknownError({ dialect: "galera", statement: "COMMIT", lost: "cluster" });
    expect(saysNothingWritten(notReplicated)).toBe(false);
    const certification = new CertificationConflictError({
      dialect: "galera",
      code: "1213",
      retryable: true,
      transactionAborted: true,
    });
    expect(saysNothingWritten(certification)).toBe(true);
    expect(saysNothingWritten(new Error("Connection lost"))).toBe(false);
    expect(
      saysNothingWritten(
        new OptimisticLockError({ entityName: "HistOrder", id: { id: 1 }, expectedVersion: 1, operation: "update" }),
      ),
    ).toBe(true);
  });
});
