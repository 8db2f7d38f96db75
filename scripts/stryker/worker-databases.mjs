// One set of databases per Stryker test runner process. The tests drop and re-create their
// tables (dropSchema); Stryker runs a second test runner once its TypeScript checker is done
// (and starts a new one after a timeout), and two jest runs on one database would drop each
// other's tables mid-test: a mutant "killed" that way says nothing about the tests.
//
// scripts/test-mutation.mjs starts the servers once and names their probe file in
// LOCKING_DB_PROBE_FILE (test/support/global-setup.mjs). Each runner here creates, on every server
// that file names reachable, a database `<database>_stryker<worker>` and points its own jest runs at
// a copy of the probe file naming it. SQLite needs nothing: every test opens its own temp file.
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const PROBE_ENV = "LOCKING_DB_PROBE_FILE";
const SUFFIX = "_stryker";
const FAMILY = { "postgres-embedded": "postgres", postgres: "postgres", mariadb: "mysql", mysql: "mysql" };

/** Gives this runner process its own databases; does nothing outside a mutation run. */
export async function useWorkerDatabases(worker, log) {
  const file = process.env[PROBE_ENV];
  if (!file || process.env.LOCKING_REUSE_PROBE !== "1") return;
  const probe = JSON.parse(readFileSync(file, "utf8"));
  const created = new Map();
  for (const [name, family] of Object.entries(FAMILY)) {
    const connection = probe.connections?.[name];
    if (!probe.databases?.[name]?.reachable || !connection) continue;
    const database = `${connection.database}${SUFFIX}${worker}`;
    // mariadb and mysql are one server and one database under two drivers.
    const key = `${family} ${connection.host}:${connection.port} ${database}`;
    if (!created.has(key)) created.set(key, createDatabase(family, connection, database));
    await created.get(key);
    probe.connections[name] = { ...connection, database };
  }
  if (created.size === 0) return;
  const own = file.replace(/\.json$/, `${SUFFIX}${worker}.json`);
  writeFileSync(own, `${JSON.stringify(probe, null, 2)}\n`);
  process.env[PROBE_ENV] = own;
  log?.info(`Test runner ${worker} uses its own databases (${own}).`);
}

/**
 * Drops the runners' databases on the machine's servers (the embedded one is thrown away whole)
 * and removes the runners' copies of the probe file.
 */
export async function dropWorkerDatabases(probeFile) {
  const probe = JSON.parse(readFileSync(probeFile, "utf8"));
  const copies = `${path.basename(probeFile, ".json")}${SUFFIX}`;
  for (const name of readdirSync(path.dirname(probeFile))) {
    if (name.startsWith(copies)) rmSync(path.join(path.dirname(probeFile), name), { force: true });
  }
  for (const name of ["postgres", "mariadb"]) {
    const connection = probe.connections?.[name];
    if (!probe.databases?.[name]?.reachable || !connection) continue;
    await withClient(FAMILY[name], connection, async (query) => {
      const like = `${connection.database}${SUFFIX}%`;
      const rows =
        FAMILY[name] === "postgres"
          ? (await query("SELECT datname AS name FROM pg_database WHERE datname LIKE $1", [like])).rows
          : (
              await query("SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", [
                like,
              ])
            )[0];
      for (const { name: database } of rows) {
        await query(FAMILY[name] === "postgres" ? `DROP DATABASE "${database}"` : `DROP DATABASE \`${database}\``);
      }
    });
  }
}

async function createDatabase(family, connection, database) {
  await withClient(family, connection, async (query) => {
    if (family === "mysql") {
      await query(`CREATE DATABASE IF NOT EXISTS \`${database}\``);
      return;
    }
    const { rows } = await query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (rows.length === 0) await query(`CREATE DATABASE "${database}"`);
  });
}

async function withClient(family, connection, work) {
  if (family === "postgres") {
    const { Client } = require("pg");
    const client = new Client({
      host: connection.host,
      port: connection.port,
      user: connection.username,
      password: connection.password,
      database: connection.database,
      connectionTimeoutMillis: 10_000,
    });
    await client.connect();
    try {
      return await work((sql, values) => client.query(sql, values));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  const mysql = require("mysql2/promise");
  const client = await mysql.createConnection({
    host: connection.host,
    port: connection.port,
    user: connection.username,
    password: connection.password,
    database: connection.database,
    connectTimeout: 10_000,
  });
  try {
    return await work((sql, values) => client.query(sql, values));
  } finally {
    await client.end().catch(() => undefined);
  }
}
