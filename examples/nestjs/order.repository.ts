import { Repository } from "typeorm";
import { Lock, LockMode } from "../../src";
import type { Order } from "./order.entity";

/**
 * A custom repository whose `findForUpdate` locks the row (`SELECT ... FOR UPDATE`, SQLite: the
 * database write lock) and waits at most 2 s for it. It keeps TypeORM's constructor, so that
 * `manager.withRepository(orders)` gives the same methods on a transaction's manager.
 */
export class OrderRepository extends Repository<Order> {
  @Lock(LockMode.PESSIMISTIC_WRITE, { timeout: 2000 })
  findForUpdate(id: number): Promise<Order> {
    return this.findOneByOrFail({ id });
  }
}
