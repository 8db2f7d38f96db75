/**
 * The README's 30-second example, runnable as it is: SQLite in memory, the table created by
 * `synchronize`, one seeded order. Run it with `npm run quick-start` (or
 * `npx ts-node --project tsconfig.json examples/quick-start.ts`); test/quick-start.test.ts runs it
 * on both TypeORM lines. In your app, import from "typeorm-locking" instead of "../src".
 */
import "reflect-metadata";
import { Column, DataSource, Entity, PrimaryGeneratedColumn } from "typeorm";
import { installLocking, OptimisticLockError, Versioned } from "../src";

@Entity({ name: "quick_start_order" })
export class Order {
  @PrimaryGeneratedColumn() id!: number;
  @Column() address!: string;
  @Column() status!: string;
  @Versioned() version!: number; // inserted as 1, checked and incremented on every write
}

/** What the story ends with: the error the stale save got, and the row as it is afterwards. */
export interface QuickStartOutcome {
  error: OptimisticLockError;
  row: Order;
}

export async function quickStart(log: (line: string) => void = console.log): Promise<QuickStartOutcome> {
  const dataSource = installLocking(
    new DataSource({ type: "better-sqlite3", database: ":memory:", entities: [Order], synchronize: true }),
  );
  await dataSource.initialize();
  try {
    const orders = dataSource.getRepository(Order);
    const { id } = await orders.save(orders.create({ address: "1 Old Street", status: "NEW" })); // the seed row

    const operatorCopy = await orders.findOneByOrFail({ id }); // version 1
    const customerCopy = await orders.findOneByOrFail({ id }); // version 1
    customerCopy.address = "2 New Road";
    await orders.save(customerCopy); // UPDATE ... WHERE id = 1 AND version = 1 -> version 2
    log(`customer saved the new address; the order is at version ${customerCopy.version}`);

    operatorCopy.status = "SHIPPED";
    try {
      await orders.save(operatorCopy); // WHERE ... AND version = 1 matches nothing
    } catch (error) {
      if (error instanceof OptimisticLockError) {
        // nothing was written: reload, re-apply, or answer 409 Conflict
        const row = await orders.findOneByOrFail({ id });
        log(`operator's stale save refused: ${error.message}`);
        log(`the row: ${JSON.stringify(row)}`);
        return { error, row };
      }
      throw error;
    }
    throw new Error("the stale save went through: typeorm-locking is not installed on this DataSource");
  } finally {
    await dataSource.destroy();
  }
}

if (require.main === module) {
  quickStart().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
