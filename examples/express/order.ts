import "reflect-metadata";
import { Column, Entity, PrimaryGeneratedColumn } from "typeorm";
import { Versioned } from "../../src";

/** The order of the story: the customer edits its address, the operator its status. */
@Entity({ name: "example_order" })
export class Order {
  @PrimaryGeneratedColumn() id!: number;
  @Column() address!: string;
  @Column() status!: string;
  @Versioned() version!: number;
}
