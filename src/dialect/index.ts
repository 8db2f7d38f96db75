import type { LockDialect } from "./lock-dialect";
import { mariadbDialect } from "./mariadb";
import { mysqlDialect } from "./mysql";
import { oracleDialect } from "./oracle";
import { postgresDialect } from "./postgres";
import { sqliteDialect } from "./sqlite";
import { sqlserverDialect } from "./sqlserver";

export type { LockDialect, LockRendering, LockStrength, TimeoutPlan, TimeoutStyle, WaitPolicy } from "./lock-dialect";
export { mariadbDialect, mysqlDialect, oracleDialect, postgresDialect, sqliteDialect, sqlserverDialect };

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

/**
 * The query whose answer tells the dialect apart from a sibling sharing its driver type (MySQL
 * and MariaDB), or `undefined` when the driver type alone decides.
 */
export function serverVersionQuery(type: string): string | undefined {
  const dialect = dialectForType(type);
  return dialect === mysqlDialect || dialect === mariadbDialect ? "SELECT VERSION() AS version" : undefined;
}

/** MariaDB answers `SELECT VERSION()` with e.g. "10.11.19-MariaDB-0+deb12u1". */
export function dialectForServer(type: string, serverVersion: string | undefined): LockDialect | undefined {
  const dialect = dialectForType(type);
  if (dialect !== mysqlDialect && dialect !== mariadbDialect) return dialect;
  if (serverVersion === undefined) return dialect;
  return /mariadb/i.test(serverVersion) ? mariadbDialect : mysqlDialect;
}
