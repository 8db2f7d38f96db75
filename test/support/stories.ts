import type { ObjectLiteral, Repository } from "typeorm";

/** An order-like row: the customer edits `address`, the operator edits `status`. */
interface OrderLike extends ObjectLiteral {
  id: number;
  address: string;
  status: string;
}

/**
 * The mission's story: operator and customer both load order `id`; the customer saves a new
 * address ("B"); then the operator saves a status change ("SHIPPED") from its now stale copy.
 * The two repositories may belong to two connections. Returns what the operator's save threw,
 * or `undefined` if it was accepted.
 */
export async function operatorSavesAfterCustomer<T extends OrderLike>(
  operatorRepo: Repository<T>,
  customerRepo: Repository<T>,
  id: number,
): Promise<unknown> {
  const operator = await operatorRepo.findOneByOrFail({ id } as never);
  const customer = await customerRepo.findOneByOrFail({ id } as never);
  customer.address = "B";
  await customerRepo.save(customer);
  operator.status = "SHIPPED";
  return operatorRepo.save(operator).then(
    () => undefined,
    (error: unknown) => error,
  );
}
