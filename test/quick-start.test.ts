/**
 * examples/quick-start.ts, the README's example made runnable, runs as it is: the stale save is a
 * caught OptimisticLockError and the customer's change is the one the row keeps.
 */
import { quickStart } from "../examples/quick-start";
import { OptimisticLockError } from "../src";
import { describeEachDatabase } from "./support/databases";

describeEachDatabase(() => {
  it("examples/quick-start.ts: the operator's stale save is refused, the customer's address stays", async () => {
    const lines: string[] = [];
    const { error, row } = await quickStart((line) => lines.push(line));
    expect(error).toBeInstanceOf(OptimisticLockError);
    expect(error).toMatchObject({ entityName: "Order", expectedVersion: 1 });
    expect(row).toMatchObject({ address: "2 New Road", status: "NEW", version: 2 });
    expect(lines.join("\n")).toContain("operator's stale save refused");
  });
}, ["sqlite"]);
