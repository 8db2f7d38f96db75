import { Injectable } from "@nestjs/common";
import { DataSource } from "typeorm";
import { checkIfMatch } from "../../src";
import { OrderRepository } from "./order.repository";

@Injectable()
export class OrdersService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly orders: OrderRepository,
  ) {}

  /** The order; TypeORM's EntityNotFoundError (404 through the filter) if there is none. */
  get(id: number) {
    return this.orders.findOneByOrFail({ id });
  }

  /** Loads, checks If-Match, saves: a write landing between load and save fails the save (409). */
  async setAddress(id: number, address: string, ifMatch: string | undefined) {
    const order = await this.orders.findOneByOrFail({ id });
    checkIfMatch(order, ifMatch, { required: true }); // absent: 428; another version: 412
    order.address = address;
    return this.orders.save(order); // OptimisticLockError if the row moved since it was loaded
  }

  /** The same under a row lock held to the end of the transaction: no one can write in between. */
  setStatus(id: number, status: string, ifMatch: string | undefined) {
    return this.dataSource.transaction(async (manager) => {
      const orders = manager.withRepository(this.orders);
      const order = await orders.findForUpdate(id);
      checkIfMatch(order, ifMatch, { required: true });
      order.status = status;
      return orders.save(order);
    });
  }
}
