import "reflect-metadata";
import { Column, Entity, PrimaryColumn } from "typeorm";
import { Versioned } from "../src";

/**
 * The benched row. The plain DataSource (no `installLocking`) treats `@Versioned()` as TypeORM's
 * own `@VersionColumn` (bumped, never checked); the installed one checks it on every write.
 */
@Entity({ name: "bench_item" })
export class BenchItem {
  @PrimaryColumn({ type: "int" }) id!: number;
  @Column({ type: "int" }) value!: number;
  @Column({ type: "varchar", length: 100 }) label!: string;
  @Versioned() version!: number;
}
