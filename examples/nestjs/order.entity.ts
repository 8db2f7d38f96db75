import { Column, Entity, PrimaryGeneratedColumn } from "typeorm";
import { Versioned } from "../../src";

@Entity({ name: "nest_order" })
export class Order {
  @PrimaryGeneratedColumn() id!: number;
  @Column() address!: string;
  @Column() status!: string;
  @Versioned() version!: number;
}
