// A jest reporter: at the end of the run, a table of database (rows) x TypeORM line (columns),
// each cell "P passed / F failed / S not run", the reasons why unreachable databases were not
// run, and test-results/summary.json with { passed, failed, skipped, total, matrix, databases }.
//
// Rows: the top-level describe of a test (ancestorTitles[0]), which describeEachDatabase names
// after the database; tests outside any database describe go into "(no database)", and so does
// a test file that failed outside any test (compile error, failing afterAll), counted as one
// failed test.
const fs = require("node:fs");
const path = require("node:path");

const DATABASE_ORDER = ["sqlite", "postgres-embedded", "postgres", "mariadb", "mysql", "galera"];
const NO_DATABASE = "(no database)";
const SKIPPED = new Set(["pending", "skipped", "todo", "disabled"]);

function nameOf(displayName) {
  if (!displayName) return "(default)";
  return typeof displayName === "string" ? displayName : displayName.name;
}

class MatrixReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
    /** @type {Map<string, Map<string, {passed: number, failed: number, skipped: number}>>} */
    this.matrix = new Map();
    this.columns = [];
  }

  cell(row, column) {
    if (!this.columns.includes(column)) this.columns.push(column);
    let cells = this.matrix.get(row);
    if (!cells) {
      cells = new Map();
      this.matrix.set(row, cells);
    }
    let cell = cells.get(column);
    if (!cell) {
      cell = { passed: 0, failed: 0, skipped: 0 };
      cells.set(column, cell);
    }
    return cell;
  }

  onTestResult(test, testResult) {
    const column = nameOf(test?.context?.config?.displayName ?? testResult.displayName);
    for (const assertion of testResult.testResults) {
      const top = assertion.ancestorTitles[0];
      const row = top !== undefined && this.isDatabase(top) ? top : NO_DATABASE;
      const cell = this.cell(row, column);
      if (assertion.status === "passed") cell.passed++;
      else if (assertion.status === "failed") cell.failed++;
      else if (SKIPPED.has(assertion.status)) cell.skipped++;
    }
    if (testResult.testExecError || (testResult.failureMessage && testResult.numFailingTests === 0)) {
      this.cell(NO_DATABASE, column).failed++;
    }
  }

  isDatabase(title) {
    if (DATABASE_ORDER.includes(title)) return true;
    this.probe ??= this.readProbe() ?? null;
    return Boolean(this.probe?.databases && Object.hasOwn(this.probe.databases, title));
  }

  readProbe() {
    const file = process.env.LOCKING_DB_PROBE_FILE;
    if (!file) return undefined;
    try {
      return JSON.parse(fs.readFileSync(file, "utf8"));
    } catch {
      return undefined;
    }
  }

  onRunComplete(_contexts, results) {
    const probe = this.readProbe();
    const rows = [...this.matrix.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const columns = [...this.columns].sort();
    const totals = { passed: 0, failed: 0, skipped: 0 };
    const matrix = {};
    for (const row of rows) {
      matrix[row] = {};
      for (const column of columns) {
        const cell = this.matrix.get(row).get(column) ?? { passed: 0, failed: 0, skipped: 0 };
        matrix[row][column] = cell;
        totals.passed += cell.passed;
        totals.failed += cell.failed;
        totals.skipped += cell.skipped;
      }
    }
    // A run that could not even start a test file (e.g. a broken config) still reports a failure.
    if (results.numRuntimeErrorTestSuites > 0 && totals.failed === 0) totals.failed = results.numRuntimeErrorTestSuites;

    const text = (cell) => `${cell.passed} passed / ${cell.failed} failed / ${cell.skipped} not run`;
    const table = [["database", ...columns]];
    for (const row of rows) table.push([row, ...columns.map((column) => text(matrix[row][column]))]);
    const widths = table[0].map((_, i) => Math.max(...table.map((line) => line[i].length)));
    const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
    const out = ["", "Test matrix (database x TypeORM):", line(table[0])];
    out.push(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
    for (const cells of table.slice(1)) out.push(line(cells));
    if (probe?.databases) {
      for (const name of Object.keys(probe.databases)) {
        const status = probe.databases[name];
        if (!status.reachable) out.push(`${name} not reachable: ${status.reason}`);
      }
    } else if (!process.env.GALERA_DIR) {
      // (the Galera suite has no probe: scripts/test-galera.sh starts its cluster or fails)
      out.push("(no probe file: which databases were reachable is unknown)");
    }
    out.push(
      `Total: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} not run` +
        (probe?.embeddedPort ? ` (embedded PostgreSQL on port ${probe.embeddedPort})` : ""),
      "",
    );
    process.stdout.write(`${out.join("\n")}\n`);

    const summary = {
      ...totals,
      total: totals.passed + totals.failed + totals.skipped,
      matrix,
      databases: probe?.databases ?? null,
    };
    const folder = path.join(this.rootDir, "test-results");
    fs.mkdirSync(folder, { recursive: true });
    // The Galera suite is a second jest run; it writes its own summary beside the main one.
    const file = process.env.LOCKING_SUMMARY_FILE ?? "summary.json";
    fs.writeFileSync(path.join(folder, file), `${JSON.stringify(summary, null, 2)}\n`);
  }
}

function rank(row) {
  const index = DATABASE_ORDER.indexOf(row);
  if (index >= 0) return index;
  return row === NO_DATABASE ? DATABASE_ORDER.length + 1 : DATABASE_ORDER.length;
}

module.exports = MatrixReporter;
