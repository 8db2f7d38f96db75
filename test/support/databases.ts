/**
 * The database matrix of the test suite.
 *
 * `typeorm` is mapped by jest.config.js to one TypeORM copy per jest project (0.3 or 1.x), so
 * everything here, the tests and the library code under test share that copy.
 *
 * Which databases are reachable was found once by test/support/global-setup.mjs, which wrote it
 * (with the connection settings and the embedded PostgreSQL's port) to the JSON file named by
 * process.env.LOCKING_DB_PROBE_FILE.
 */
import "reflect-metadata";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataSource, type DataSourceOptions, type Logger } from "typeorm";

export type DatabaseName = "sqlite" | "postgres-embedded" | "postgres" | "mariadb" | "mysql";

export interface TestDatabase {
  name: DatabaseName;
  type: "better-sqlite3" | "postgres" | "mariadb" | "mysql";
  family: "sqlite" | "postgres" | "mysql";
}

/** Every database of the matrix, in the order they are described. */
export const DATABASES: readonly TestDatabase[] = [
  { name: "sqlite", type: "better-sqlite3", family: "sqlite" },
  { name: "postgres-embedded", type: "postgres", family: "postgres" },
  { name: "postgres", type: "postgres", family: "postgres" },
  { name: "mariadb", type: "mariadb", family: "mysql" },
  { name: "mysql", type: "mysql", family: "mysql" },
];

export interface DatabaseStatus {
  reachable: boolean;
  /** false when LOCKING_DATABASES left it out: its tests are skipped, even under CI. */
  selected?: boolean;
  /** Why not, when not reachable. */
  reason?: string;
  serverVersion?: string;
}

interface Connection {
  host: string;
  port: number;
  username: string;
  password: string;
  database: string;
}

interface Probe {
  embeddedPort: number | null;
  databases: Record<DatabaseName, DatabaseStatus>;
  connections: Record<Exclude<DatabaseName, "sqlite">, Connection>;
}

export const PROBE_ENV = "LOCKING_DB_PROBE_FILE";

let probe: Probe | { error: string } | undefined;

function readProbe(): Probe | { error: string } {
  if (probe) return probe;
  const file = process.env[PROBE_ENV];
  if (!file) {
    probe = {
      error: `${PROBE_ENV} is not set: run the tests through jest.config.js (its globalSetup probes the databases)`,
    };
  } else {
    try {
      probe = JSON.parse(readFileSync(file, "utf8")) as Probe;
    } catch (error) {
      probe = { error: `cannot read the probe file ${file}: ${(error as Error).message}` };
    }
  }
  return probe;
}

/** What global setup found out about one database. */
export function databaseStatus(name: DatabaseName): DatabaseStatus {
  const found = readProbe();
  if ("error" in found) return { reachable: false, reason: found.error };
  return found.databases[name] ?? { reachable: false, reason: `${name} was not probed` };
}

/** True when an unreachable database must fail the run instead of being skipped. */
export function allDatabasesRequired(): boolean {
  const ci = process.env.CI;
  const required = process.env.LOCKING_REQUIRE_ALL_DATABASES;
  return (!!ci && ci !== "false" && ci !== "0") || required === "1" || required === "true";
}

/**
 * `describe(db.name, () => fn(db))` for every database (or only those in `only`).
 *
 * A database that is not reachable: when CI is set or LOCKING_REQUIRE_ALL_DATABASES=1, a describe
 * with one failing test `database <name> is reachable` whose error says why; otherwise
 * `describe.skip`, so its tests count as skipped ("not run").
 *
 * DataSources opened by openDataSources() inside the describe and still open after its own
 * afterAll hooks are closed by a last afterAll, so no connection leaks into the next file.
 */
export function describeEachDatabase(fn: (db: TestDatabase) => void, only?: DatabaseName[]): void {
  for (const db of DATABASES) {
    if (only && !only.includes(db.name)) continue;
    const status = databaseStatus(db.name);
    if (status.reachable) {
      describe(db.name, () => {
        fn(db);
        afterAll(() => closeAll(...[...opened].filter((source) => openedFor.get(source) === db.name)));
      });
    } else if (allDatabasesRequired() && status.selected !== false) {
      describe(db.name, () => {
        it(`database ${db.name} is reachable`, () => {
          throw new Error(`database ${db.name} is not reachable: ${status.reason ?? "unknown reason"}`);
        });
      });
    } else {
      describe.skip(db.name, () => fn(db));
    }
  }
}

const opened = new Set<DataSource>();
const openedFor = new WeakMap<DataSource, DatabaseName>();
/** SQLite file of a DataSource, and which open DataSources use each file. */
const sqliteFileOf = new WeakMap<DataSource, string>();
const sqliteUsers = new Map<string, Set<DataSource>>();

function connectionOptions(db: TestDatabase): Record<string, unknown> {
  if (db.family === "sqlite") {
    return { type: "better-sqlite3" };
  }
  const found = readProbe();
  if ("error" in found) throw new Error(found.error);
  const connection = found.connections[db.name as Exclude<DatabaseName, "sqlite">];
  return {
    type: db.type,
    host: connection.host,
    port: connection.port,
    username: connection.username,
    password: connection.password,
    database: connection.database,
    poolSize: 4,
    ...(db.family === "postgres" ? { connectTimeoutMS: 10_000 } : { connectTimeout: 10_000 }),
  };
}

/**
 * Opens `count` (default 1) DataSources, each with its own connection (pool), to one fresh
 * database. The first one synchronizes the schema after dropping everything (dropSchema); the
 * others only connect. SQLite: a new temp file per call in WAL mode with a 2000 ms busy timeout,
 * so two DataSources are two real connections to one file. `extra` is merged into every
 * DataSource's options (logger, logging, subscribers, ...). `beforeInitialize` runs on each
 * DataSource before it connects (e.g. `installLocking()` with options, which must precede the
 * first query of a DataSource whose decorators the library enforces anyway).
 */
export async function openDataSources(
  db: TestDatabase,
  entities: Function[],
  options: { count?: number; extra?: Record<string, unknown>; beforeInitialize?: (source: DataSource) => void } = {},
): Promise<DataSource[]> {
  const count = options.count ?? 1;
  if (!Number.isInteger(count) || count < 1) throw new Error(`count must be a positive integer, got ${count}`);
  const base = connectionOptions(db);
  let file: string | undefined;
  if (db.family === "sqlite") {
    file = join(tmpdir(), `typeorm-locking-${process.pid}-${randomBytes(6).toString("hex")}.sqlite`);
    Object.assign(base, { database: file, enableWAL: true, timeout: 2000 });
  }
  const sources: DataSource[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const first = i === 0;
      const source = new DataSource({
        ...base,
        entities,
        synchronize: first,
        dropSchema: first,
        ...options.extra,
      } as DataSourceOptions);
      track(source, db, file);
      sources.push(source);
      options.beforeInitialize?.(source);
      await source.initialize();
    }
  } catch (error) {
    await closeAll(...sources);
    throw error;
  }
  return sources;
}

function track(source: DataSource, db: TestDatabase, file: string | undefined): void {
  opened.add(source);
  openedFor.set(source, db.name);
  if (file) {
    sqliteFileOf.set(source, file);
    const users = sqliteUsers.get(file) ?? new Set();
    users.add(source);
    sqliteUsers.set(file, users);
  }
}

/**
 * Opens one more DataSource (its own connection or pool) to the database `source` uses, without
 * touching the schema: for a differently configured client of the same tables.
 */
export async function openAlongside(source: DataSource, extra: Record<string, unknown> = {}): Promise<DataSource> {
  const other = new DataSource({
    ...source.options,
    synchronize: false,
    dropSchema: false,
    ...extra,
  } as DataSourceOptions);
  const name = openedFor.get(source);
  const file = sqliteFileOf.get(source);
  if (name) track(other, { name } as TestDatabase, file);
  await other.initialize();
  return other;
}

/** Destroys the given DataSources (undefined and already destroyed ones are ignored) and removes
 * a SQLite temp file once no DataSource uses it. Reports the first failure after closing all. */
export async function closeAll(...sources: (DataSource | undefined | null)[]): Promise<void> {
  let failure: unknown;
  for (const source of sources) {
    if (!source) continue;
    try {
      if (source.isInitialized) await source.destroy();
    } catch (error) {
      failure ??= error;
    }
    opened.delete(source);
    const file = sqliteFileOf.get(source);
    if (file) {
      const users = sqliteUsers.get(file);
      users?.delete(source);
      if (!users?.size) {
        sqliteUsers.delete(file);
        for (const suffix of ["", "-wal", "-shm", "-journal"]) {
          if (existsSync(file + suffix)) rmSync(file + suffix, { force: true });
        }
      }
    }
  }
  if (failure) throw failure;
}

/** A TypeORM Logger that records every SQL statement sent (logQuery), for statement counting.
 * Use it with `extra: { logger: counter, logging: true }`. */
export class StatementCounter implements Logger {
  /** Every statement since the last reset(), in order. */
  statements: string[] = [];
  /** The statements with their parameters. */
  queries: { query: string; parameters?: unknown[] }[] = [];

  get count(): number {
    return this.statements.length;
  }

  reset(): void {
    this.statements = [];
    this.queries = [];
  }

  logQuery(query: string, parameters?: unknown): void {
    this.statements.push(query);
    this.queries.push({ query, parameters: Array.isArray(parameters) ? parameters : undefined });
  }

  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

/** A promise with its resolve/reject exposed. */
export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
  readonly settled: boolean;
}

export function deferred<T = void>(): Deferred<T> {
  let settled = false;
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = (value) => {
      settled = true;
      res(value);
    };
    reject = (reason) => {
      settled = true;
      rej(reason);
    };
  });
  promise.catch(() => undefined); // a rejected Deferred nobody awaits must not crash the run
  return {
    promise,
    resolve,
    reject,
    get settled() {
      return settled;
    },
  };
}

/** Named one-shot gates for interleaving async actors deterministically. */
export interface Barrier {
  /** Resolves once `release(name)` was called (before or after); rejects after `timeoutMs`. */
  wait(name: string, timeoutMs?: number): Promise<void>;
  release(name: string): void;
  isReleased(name: string): boolean;
}

export function barrier(defaultTimeoutMs = 10_000): Barrier {
  const gates = new Map<string, Deferred>();
  const gate = (name: string) => {
    let found = gates.get(name);
    if (!found) {
      found = deferred();
      gates.set(name, found);
    }
    return found;
  };
  return {
    async wait(name, timeoutMs = defaultTimeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`barrier "${name}" was not released within ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      try {
        await Promise.race([gate(name).promise, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    release(name) {
      gate(name).resolve();
    },
    isReleased(name) {
      return gates.get(name)?.settled ?? false;
    },
  };
}
