/**
 * Run in a fresh Node process by test/shared-connection.test.ts: a transaction begun by hand is
 * the process's very first use of the library's turn-taking (no AsyncLocalStorage has followed an
 * async context yet), and another caller then saves. Prints what that save ended in.
 */
import "reflect-metadata";
import { DataSource } from "typeorm";
import { installLocking, SharedConnectionBusyError } from "../../src";
import { Order, OrderLine } from "../fixtures/entities";

async function main(): Promise<void> {
  const source = new DataSource({
    type: "better-sqlite3",
    database: ":memory:",
    entities: [Order, OrderLine],
    synchronize: true,
  });
  installLocking(source, { lockTimeout: 200 });
  await source.initialize();
  const runner = source.createQueryRunner();
  const leak = async () => {
    await Promise.resolve();
    await runner.startTransaction();
  };
  await leak();
  const outcome = await source
    .getRepository(Order)
    .save(Object.assign(new Order(), { address: "other caller", status: "x" }))
    .then(
      () => "saved",
      (e: unknown) => (e instanceof SharedConnectionBusyError ? "SharedConnectionBusyError" : String(e)),
    );
  await runner.rollbackTransaction();
  await source.destroy();
  process.stdout.write(outcome);
}

void main();
