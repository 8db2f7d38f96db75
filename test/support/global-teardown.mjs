// Jest globalTeardown: stops the embedded PostgreSQL started by global-setup.mjs, removes its
// folder and the probe file. Runs after the reporters' onRunComplete.
import { promises as fs } from "node:fs";
import { stopServer } from "./global-setup.mjs";

const EMBEDDED_KEY = Symbol.for("typeorm-locking.embedded-postgres");

export default async function globalTeardown() {
  const state = globalThis[EMBEDDED_KEY];
  globalThis[EMBEDDED_KEY] = undefined;
  if (state?.server) await stopServer(state.server);
  if (state?.folder) await fs.rm(state.folder, { recursive: true, force: true }).catch(() => undefined);
  const probeFile = process.env.LOCKING_DB_PROBE_FILE;
  if (probeFile) await fs.rm(probeFile, { force: true }).catch(() => undefined);
}
