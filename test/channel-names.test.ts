/**
 * The diagnostics channels' names are public: a subscriber (an APM agent, OpenTelemetry, a log
 * shipper) may name them as text, without importing this package. Each exported constant must
 * hold the name docs/observability.md gives it, and the names must be distinct.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import * as library from "../src";

const documented = new Map(
  [
    ...readFileSync(path.join(__dirname, "..", "docs", "observability.md"), "utf8").matchAll(
      /^\| `([A-Z_]+_CHANNEL)` \| `([^`]+)`/gm,
    ),
  ].map(([, constant, name]) => [constant, name]),
);

describe("diagnostics channel names", () => {
  it("docs/observability.md names every exported channel", () => {
    const exported = Object.keys(library).filter((key) => key.endsWith("_CHANNEL"));
    expect(exported.length).toBeGreaterThanOrEqual(6);
    expect([...documented.keys()].sort()).toEqual(exported.sort());
  });

  it.each([...documented])("%s is the documented %s, under the package's prefix", (constant, name) => {
    expect((library as unknown as Record<string, unknown>)[constant]).toBe(name);
    expect(name.startsWith("typeorm-locking:")).toBe(true);
  });

  it("no two channels share a name", () => {
    expect(new Set(documented.values()).size).toBe(documented.size);
  });
});
