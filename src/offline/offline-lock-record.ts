import { Column, Entity, Index, PrimaryColumn, type ValueTransformer } from "typeorm";

/** Table of the offline locks; {@link OfflineLockTableMigration} creates it. */
export const OFFLINE_LOCK_TABLE = "typeorm_locking_offline_lock";

/**
 * bigint columns come back as strings from pg and mysql2; the values here stay below 2^53. Both
 * columns it reads are `NOT NULL`, so TypeORM never hands it a null to keep.
 */
const bigintNumber: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | number) => Number(value),
};

/**
 * One row per locked resource (type and id), kept after release so that its fencing token only
 * ever grows. Add it to the DataSource's entities (and run {@link OfflineLockTableMigration}, or
 * let `synchronize` create the table).
 *
 * @example
 * ```ts
 * new DataSource({ type: "postgres", entities: [Order, OfflineLockRecord], migrations: [OfflineLockTableMigration] });
 * ```
 */
@Entity({ name: OFFLINE_LOCK_TABLE })
export class OfflineLockRecord {
  @PrimaryColumn({ name: "lock_type", type: "varchar", length: 100 }) lockType!: string;
  @PrimaryColumn({ name: "lock_id", type: "varchar", length: 150 }) lockId!: string;
  /** The holder's unguessable handle; `null` when free. */
  @Index(`${OFFLINE_LOCK_TABLE}_handle`)
  @Column({ name: "handle", type: "varchar", length: 64, nullable: true })
  handle!: string | null;
  @Column({ name: "owner", type: "varchar", length: 200, nullable: true }) owner!: string | null;
  /** Rises by one every time the lock is taken: a write carrying an older token is stale. */
  @Column({ name: "fencing_token", type: "bigint", transformer: bigintNumber }) fencingToken!: number;
  /** Database clock, ms since 1970 UTC; a lock is held while this is in the future. */
  @Column({ name: "expires_at", type: "bigint", transformer: bigintNumber }) expiresAt!: number;
}
