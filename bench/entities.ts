import "reflect-metadata";
import { Column, Entity, ManyToOne, OneToMany, PrimaryColumn, PrimaryGeneratedColumn, VersionColumn } from "typeorm";
import { Versioned, VersionedBy } from "../src";

/**
 * The benched row. The plain side opens it from the `typeorm-1` copy, which the library never
 * hooks, so there `@Versioned()` is TypeORM's own `@VersionColumn` (bumped, never checked); on the
 * `typeorm` copy it is checked on every write, installLocking() or not.
 */
@Entity({ name: "bench_item" })
export class BenchItem {
  @PrimaryColumn({ type: "int" }) id!: number;
  @Column({ type: "int" }) value!: number;
  @Column({ type: "varchar", length: 100 }) label!: string;
  @Versioned() version!: number;
}

/**
 * The same table mapped with no library decorator: a DataSource of the hooked `typeorm` copy that
 * maps only this stays plain TypeORM (the latency bench's twin pair).
 */
@Entity({ name: "bench_item" })
export class PlainBenchItem {
  @PrimaryColumn({ type: "int" }) id!: number;
  @Column({ type: "int" }) value!: number;
  @Column({ type: "varchar", length: 100 }) label!: string;
  @VersionColumn() version!: number;
}

/** An aggregate for the batched-writes bench: an order whose lines move its version. */
@Entity({ name: "bench_order" })
export class BenchOrder {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: "varchar", length: 100 }) customer!: string;
  @Versioned() version!: number;
  @OneToMany(
    () => BenchOrderLine,
    (line) => line.order,
    { cascade: true },
  )
  lines!: BenchOrderLine[];
}

@Entity({ name: "bench_order_line" })
@VersionedBy(
  () => BenchOrder,
  (line: BenchOrderLine) => line.order,
)
export class BenchOrderLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: "int" }) quantity!: number;
  @Versioned() version!: number;
  @ManyToOne(
    () => BenchOrder,
    (order) => order.lines,
  )
  order!: BenchOrder;
}
