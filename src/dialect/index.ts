import { galeraDialect } from "./galera";
import type { LockDialect } from "./lock-dialect";
import { mariadbDialect } from "./mariadb";
import { mysqlDialect } from "./mysql";
import { oracleDialect } from "./oracle";
import { postgresDialect } from "./postgres";
import { sqliteDialect } from "./sqlite";
import { sqlserverDialect } from "./sqlserver";

export type {
  BatchedColumn,
  BatchedDeleteShape,
  BatchedDeleteSql,
  BatchedUpdateShape,
  BatchedUpdateSql,
  LockDialect,
  LockRendering,
  LockStrength,
  ProbeQuery,
  TimeoutPlan,
  TimeoutStyle,
  WaitPolicy,
} from "./lock-dialect";
export { galeraDialect, mariadbDialect, mysqlDialect, oracleDialect, postgresDialect, sqliteDialect, sqlserverDialect };

const BY_TYPE: Record<string, LockDialect> = {
  postgres: postgresDialect,
  "aurora-postgres": postgresDialect,
  mysql: mysqlDialect,
  "aurora-mysql": mysqlDialect,
  mariadb: mariadbDialect,
  "better-sqlite3": sqliteDialect,
  sqlite: sqliteDialect,
  capacitor: sqliteDialect,
  cordova: sqliteDialect,
  expo: sqliteDialect,
  nativescript: sqliteDialect,
  "react-native": sqliteDialect,
  sqljs: sqliteDialect,
  mssql: sqlserverDialect,
  oracle: oracleDialect,
};

/**
 * The dialect of a TypeORM driver type, or `undefined` for a database the library cannot lock.
 * MySQL and MariaDB are told apart by the server, not by the configured type: see
 * {@link dialectForServer}.
 */
export function dialectForType(type: string): LockDialect | undefined {
  return BY_TYPE[type];
}

/** What a MySQL-family server says about itself: its version and whether it is a Galera node. */
export interface ServerFacts {
  /** `SELECT VERSION()`, e.g. "10.11.19-MariaDB-0+deb12u1". */
  version: string;
  /** `@@wsrep_on`: the server replicates through Galera (MariaDB Galera, Percona XtraDB Cluster). */
  wsrepOn: boolean;
}

/**
 * The query whose rows tell the dialect apart from a sibling sharing its driver type (MySQL,
 * MariaDB, a Galera node), or `undefined` when the driver type alone decides. `SHOW VARIABLES`
 * answers on MySQL and MariaDB alike, with or without Galera, in one round trip.
 */
export function serverFactsQuery(type: string): string | undefined {
  const dialect = dialectForType(type);
  return dialect === mysqlDialect || dialect === mariadbDialect
    ? "SHOW VARIABLES WHERE Variable_name IN ('version', 'wsrep_on')"
    : undefined;
}

/** Reads the rows of {@link serverFactsQuery} (`Variable_name`, `Value`). */
export function serverFactsOf(rows: readonly Record<string, unknown>[]): ServerFacts {
  const value = (name: string) =>
    // Stryker disable next-line StringLiteral: equivalent (docs/testing.md); a fallback text names no MariaDB and is not ON
    String(rows.find((row) => String(row.Variable_name).toLowerCase() === name)?.Value ?? "");
  return { version: value("version"), wsrepOn: value("wsrep_on").toUpperCase() === "ON" };
}

/**
 * MariaDB answers its version as e.g. "10.11.19-MariaDB-0+deb12u1"; a MariaDB with
 * `wsrep_on = ON` is a Galera node. (Percona XtraDB Cluster, Galera on MySQL, is not told apart:
 * it gets the MySQL dialect, untested here.)
 */
export function dialectForServer(type: string, facts: ServerFacts | undefined): LockDialect | undefined {
  const dialect = dialectForType(type);
  if (dialect !== mysqlDialect && dialect !== mariadbDialect) return dialect;
  if (facts === undefined) return dialect;
  if (!/mariadb/i.test(facts.version)) return mysqlDialect;
  return facts.wsrepOn ? galeraDialect : mariadbDialect;
}
