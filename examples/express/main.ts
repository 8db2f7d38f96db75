/**
 * Runs the example API on an in-memory SQLite database with one order:
 *
 *   npx ts-node --project tsconfig.json examples/express/main.ts     (PORT=3000 by default)
 *   curl -i localhost:3000/orders/1
 *   curl -i -X PUT localhost:3000/orders/1/address -H 'If-Match: "1"' -H 'Content-Type: application/json' -d '{"address":"New Street 2"}'
 */
import "reflect-metadata";
import { DataSource } from "typeorm";
import { installLocking } from "../../src";
import { createApp } from "./app";
import { Order } from "./order";

async function main(): Promise<void> {
  const dataSource = installLocking(
    new DataSource({ type: "better-sqlite3", database: ":memory:", entities: [Order], synchronize: true }),
  );
  await dataSource.initialize();
  await dataSource.getRepository(Order).save({ address: "Old Street 1", status: "NEW" });
  const port = Number(process.env.PORT ?? 3000);
  createApp(dataSource).listen(port, "127.0.0.1", () => {
    console.log(`example API on http://127.0.0.1:${port}: GET /orders/1, PUT /orders/1/address with If-Match`);
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
