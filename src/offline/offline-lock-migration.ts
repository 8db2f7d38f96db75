import { type MigrationInterface, type QueryRunner, Table, TableIndex } from "typeorm";
import { OFFLINE_LOCK_TABLE } from "./offline-lock-record";

/**
 * Creates the offline lock table on any database TypeORM supports (built with TypeORM's schema
 * API, so the column types are each database's own). Add it to the DataSource's `migrations`.
 *
 * @example
 * ```ts
 * new DataSource({ ..., entities: [OfflineLockRecord], migrations: [OfflineLockTableMigration] });
 * await dataSource.runMigrations();
 * ```
 */
export class OfflineLockTableMigration implements MigrationInterface {
  name = "OfflineLockTable1764000000000";

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: OFFLINE_LOCK_TABLE,
        columns: [
          { name: "lock_type", type: "varchar", length: "100", isPrimary: true },
          { name: "lock_id", type: "varchar", length: "150", isPrimary: true },
          { name: "handle", type: "varchar", length: "64", isNullable: true },
          { name: "owner", type: "varchar", length: "200", isNullable: true },
          { name: "fencing_token", type: "bigint" },
          { name: "expires_at", type: "bigint" },
        ],
      }),
      true,
    );
    await queryRunner.createIndex(
      OFFLINE_LOCK_TABLE,
      new TableIndex({ name: `${OFFLINE_LOCK_TABLE}_handle`, columnNames: ["handle"] }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable(OFFLINE_LOCK_TABLE, true);
  }
}
