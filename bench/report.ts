/** The bench's results as Markdown, and the contention plot as SVG. */
import type { BatchedRow } from "./batched";
import type { ContentionRow } from "./contention";
import type { LatencyResult } from "./latency";
import type { LockWaitRow } from "./lock-wait";
import type { MemoryResult } from "./memory";
import type { StatementRow } from "./statements";
import { formatSummary } from "./stats";

export interface DatabaseResults {
  name: string;
  server: string;
  statements?: StatementRow[];
  latency?: LatencyResult;
  contention?: ContentionRow[];
  lockWaits?: LockWaitRow[];
  batched?: BatchedRow[];
}

const table = (header: string[], rows: (string | number)[][]) =>
  [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");

export function statementsTable(results: DatabaseResults[]): string {
  const withRows = results.filter((r) => r.statements);
  if (withRows.length === 0) return "";
  const operations = withRows[0].statements!.map((s) => s.operation);
  return table(
    ["operation (plain / ours)", ...withRows.map((r) => r.name)],
    operations.map((operation) => [
      operation,
      ...withRows.map((r) => {
        const row = r.statements!.find((s) => s.operation === operation)!;
        return `${row.plain ?? "–"} / ${row.ours}`;
      }),
    ]),
  );
}

/** Batched writes: statements and ms per save, plain / ours per row / ours batched. */
export function batchedTable(results: DatabaseResults[]): string {
  const rows: (string | number)[][] = [];
  for (const r of results.filter((x) => x.batched)) {
    for (const row of r.batched!) {
      const [plain, perRow, batched] = row.sides;
      rows.push([
        r.name,
        row.shape,
        `${plain.statements} / ${perRow.statements} / **${batched.statements}**`,
        formatSummary(plain.ms),
        formatSummary(perRow.ms),
        formatSummary(batched.ms),
        (perRow.ms.median / plain.ms.median).toFixed(2),
        `**${(batched.ms.median / plain.ms.median).toFixed(2)}**`,
      ]);
    }
  }
  return table(
    [
      "database",
      "save() of",
      "statements: plain / per row / batched",
      "plain ms",
      "ours per row ms",
      "ours batched ms",
      "per row / plain",
      "batched / plain",
    ],
    rows,
  );
}

const signed = (value: number) => (value >= 0 ? `+${value.toFixed(0)}` : `−${(-value).toFixed(0)}`);

export function latencyTable(results: DatabaseResults[]): string {
  return table(
    [
      "database",
      "plain ms/save",
      "ours ms/save",
      "ours / plain",
      "plain / plain (noise)",
      "client CPU µs/save, plain → ours",
      "plain saves/s",
      "ours saves/s",
    ],
    results
      .filter((r) => r.latency)
      .map((r) => {
        const l = r.latency!;
        return [
          r.name,
          formatSummary(l.plainMs, 3),
          formatSummary(l.oursMs, 3),
          `**${formatSummary(l.ratio, 3)}**`,
          formatSummary(l.noiseRatio, 3),
          `${l.plainCpuUs.median.toFixed(0)} → ${l.oursCpuUs.median.toFixed(0)} (${signed(l.oursCpuUs.median - l.plainCpuUs.median)})`,
          formatSummary(l.plainPerSecond, 0),
          formatSummary(l.oursPerSecond, 0),
        ];
      }),
  );
}

export function contentionTable(result: DatabaseResults): string {
  return table(
    ["mode", "rows", "clients", "committed/s", "committed", "conflicts retried", "failed", "lost updates"],
    (result.contention ?? []).map((c) => [
      c.mode,
      c.rows,
      c.clients,
      c.committedPerSecond.toFixed(0),
      c.committed,
      c.retries,
      c.failed,
      c.mode === "plain TypeORM" ? c.lost : `**${c.lost}**`,
    ]),
  );
}

export function lockWaitTable(results: DatabaseResults[]): string {
  const rows: (string | number)[][] = [];
  for (const r of results) {
    for (const w of r.lockWaits ?? []) rows.push([r.name, w.requestedMs, formatSummary(w.observedMs, 0), w.error]);
  }
  return table(["database", "requested ms", "failed after ms", "error"], rows);
}

export function memoryTable(memory: MemoryResult): string {
  return table(
    ["saves done", ...memory.samplesMb.map((_, i) => `${i * 10}%`)],
    [["heap MB after GC", ...memory.samplesMb.map((mb) => mb.toFixed(1))]],
  );
}

const COLORS: Record<string, string> = {
  "optimistic + retry": "#1b7837",
  "optimistic + retry, no hot-row locks": "#a6dba0",
  PESSIMISTIC_WRITE: "#2166ac",
  "plain TypeORM": "#b2182b",
};

/** One panel per database: committed updates per second against clients, same row (solid) and distinct rows (dashed). */
export function contentionSvg(results: DatabaseResults[]): string {
  const panels = results.filter((r) => r.contention?.length);
  const width = 360;
  const height = 260;
  const pad = { left: 56, right: 12, top: 28, bottom: 40 };
  const svg: string[] = [];
  panels.forEach((panel, index) => {
    const ox = index * width;
    const rows = panel.contention!;
    const clients = [...new Set(rows.map((r) => r.clients))].sort((a, b) => a - b);
    const maxY = Math.max(1, ...rows.map((r) => r.committedPerSecond));
    const x = (n: number) =>
      ox + pad.left + (clients.indexOf(n) / Math.max(1, clients.length - 1)) * (width - pad.left - pad.right);
    const y = (v: number) => pad.top + (1 - v / maxY) * (height - pad.top - pad.bottom);
    svg.push(`<text x="${ox + width / 2}" y="16" text-anchor="middle" font-weight="bold">${panel.name}</text>`);
    svg.push(`<line x1="${ox + pad.left}" y1="${y(0)}" x2="${ox + width - pad.right}" y2="${y(0)}" stroke="#888"/>`);
    svg.push(`<line x1="${ox + pad.left}" y1="${pad.top}" x2="${ox + pad.left}" y2="${y(0)}" stroke="#888"/>`);
    for (const n of clients) {
      svg.push(`<text x="${x(n)}" y="${y(0) + 16}" text-anchor="middle">${n}</text>`);
    }
    svg.push(`<text x="${ox + width / 2}" y="${height - 6}" text-anchor="middle">clients</text>`);
    for (const fraction of [0, 0.5, 1]) {
      svg.push(
        `<text x="${ox + pad.left - 6}" y="${y(maxY * fraction) + 4}" text-anchor="end">${(maxY * fraction).toFixed(0)}</text>`,
      );
    }
    for (const mode of Object.keys(COLORS)) {
      for (const kind of ["same row", "distinct rows"] as const) {
        const line = rows.filter((r) => r.mode === mode && r.rows === kind).sort((a, b) => a.clients - b.clients);
        if (line.length === 0) continue;
        const points = line.map((r) => `${x(r.clients).toFixed(1)},${y(r.committedPerSecond).toFixed(1)}`).join(" ");
        const dash = kind === "distinct rows" ? ' stroke-dasharray="5,4"' : "";
        svg.push(`<polyline points="${points}" fill="none" stroke="${COLORS[mode]}" stroke-width="2"${dash}/>`);
      }
    }
  });
  const legendY = height + 8;
  // Legend entries side by side, each as wide as its label (about 6 px a character at 11 px).
  let legendX = 20;
  for (const [mode, color] of Object.entries(COLORS)) {
    svg.push(`<rect x="${legendX}" y="${legendY}" width="14" height="4" fill="${color}"/>`);
    svg.push(`<text x="${legendX + 20}" y="${legendY + 6}">${mode}</text>`);
    legendX += 20 + mode.length * 6 + 24;
  }
  svg.push(`<text x="${legendX}" y="${legendY + 6}">solid: one shared row · dashed: a row per client</text>`);
  const totalWidth = Math.max(panels.length * width, legendX + 300);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${totalWidth}" height="${height + 24}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...svg,
    "</svg>",
    "",
  ].join("\n");
}
