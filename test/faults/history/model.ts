/**
 * The workload's entities: an order (the aggregate root) whose lines are its members, as in
 * docs/aggregates.md, with a list of tokens on the root and on every line. Three copies of the
 * same shape, so one workload runs against the library and against the two set-ups the checker
 * must catch losing writes:
 *
 * - `LOCKED_MODEL`: `@Versioned()` root, `@VersionedBy` lines (what a user of the library writes);
 * - `PLAIN_MODEL`: TypeORM's own `@VersionColumn`, no library decorator (on a DataSource never
 *   passed to `installLocking()`, plain TypeORM);
 * - `NO_ROOT_BUMP_MODEL`: `@Versioned()` root but lines without `@VersionedBy`, so a change of a
 *   line does not move (nor check) the order's version.
 */
import "reflect-metadata";
import {
  Column,
  Entity,
  type EntityTarget,
  ManyToOne,
  OneToMany,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  VersionColumn,
} from "typeorm";
import { OfflineLockRecord, Versioned, VersionedBy } from "../../../src";

/** What every model's root looks like to the workload. */
export interface HistoryOrder {
  id: number;
  /** Space-separated tokens appended to the order itself. */
  tokens: string;
  version: number;
  lines?: HistoryLine[];
}

/** What every model's line looks like to the workload. */
export interface HistoryLine {
  id: number;
  tokens: string;
  order: HistoryOrder;
}

/** One copy of the workload's entities. */
export interface HistoryModel {
  name: string;
  order: EntityTarget<HistoryOrder> & (new () => HistoryOrder);
  line: EntityTarget<HistoryLine> & (new () => HistoryLine);
  /** Every entity a DataSource running this model needs (the offline lock table included). */
  entities: Function[];
  /** Whether the library's own entry points (updateVersioned, locks, offline locks) apply. */
  library: boolean;
}

@Entity({ name: "tl_hist_order" })
export class HistOrder implements HistoryOrder {
  @PrimaryColumn() id!: number;
  @Column({ type: "text" }) tokens!: string;
  @Versioned() version!: number;
  @OneToMany(
    () => HistLine,
    (line) => line.order,
    { cascade: true },
  )
  lines?: HistLine[];
}

@Entity({ name: "tl_hist_line" })
@VersionedBy(
  () => HistOrder,
  (line: HistLine) => line.order,
)
export class HistLine implements HistoryLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: "text" }) tokens!: string;
  @ManyToOne(
    () => HistOrder,
    (order) => order.lines,
    { orphanedRowAction: "delete", onDelete: "CASCADE" },
  )
  order!: HistOrder;
}

@Entity({ name: "tl_hist_plain_order" })
export class PlainHistOrder implements HistoryOrder {
  @PrimaryColumn() id!: number;
  @Column({ type: "text" }) tokens!: string;
  @VersionColumn() version!: number;
  @OneToMany(
    () => PlainHistLine,
    (line) => line.order,
    { cascade: true },
  )
  lines?: PlainHistLine[];
}

@Entity({ name: "tl_hist_plain_line" })
export class PlainHistLine implements HistoryLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: "text" }) tokens!: string;
  @ManyToOne(
    () => PlainHistOrder,
    (order) => order.lines,
    { orphanedRowAction: "delete", onDelete: "CASCADE" },
  )
  order!: PlainHistOrder;
}

@Entity({ name: "tl_hist_nobump_order" })
export class NoBumpHistOrder implements HistoryOrder {
  @PrimaryColumn() id!: number;
  @Column({ type: "text" }) tokens!: string;
  @Versioned() version!: number;
  @OneToMany(
    () => NoBumpHistLine,
    (line) => line.order,
    { cascade: true },
  )
  lines?: NoBumpHistLine[];
}

/** A line that is not declared a member: the order's version does not cover it. */
@Entity({ name: "tl_hist_nobump_line" })
export class NoBumpHistLine implements HistoryLine {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: "text" }) tokens!: string;
  @ManyToOne(
    () => NoBumpHistOrder,
    (order) => order.lines,
    { orphanedRowAction: "delete", onDelete: "CASCADE" },
  )
  order!: NoBumpHistOrder;
}

export const LOCKED_MODEL: HistoryModel = {
  name: "locked",
  order: HistOrder,
  line: HistLine,
  entities: [HistOrder, HistLine, OfflineLockRecord],
  library: true,
};

export const PLAIN_MODEL: HistoryModel = {
  name: "plain-typeorm",
  order: PlainHistOrder,
  line: PlainHistLine,
  entities: [PlainHistOrder, PlainHistLine],
  library: false,
};

export const NO_ROOT_BUMP_MODEL: HistoryModel = {
  name: "no-root-bump",
  order: NoBumpHistOrder,
  line: NoBumpHistLine,
  entities: [NoBumpHistOrder, NoBumpHistLine, OfflineLockRecord],
  library: true,
};
