/**
 * The operator/customer story, first on plain TypeORM (the lost update), then with
 * typeorm-locking (the conflict is caught and the customer's change survives), then the
 * expected-version flow a client uses (form field, HTTP If-Match, CQRS command).
 * Runs on an in-memory SQLite database: `npm run demo`.
 */
import "reflect-metadata";
import { Column, DataSource, Entity, PrimaryGeneratedColumn, VersionColumn } from "typeorm";
import {
  assertVersion,
  ConcurrencyError,
  installLocking,
  OptimisticLockError,
  StaleVersionError,
  updateVersioned,
  Versioned,
} from "../src";

@Entity({ name: "plain_order" })
class PlainOrder {
  @PrimaryGeneratedColumn() id!: number;
  @Column() address!: string;
  @Column() status!: string;
  @VersionColumn() version!: number;
}

@Entity({ name: "locked_order" })
class LockedOrder {
  @PrimaryGeneratedColumn() id!: number;
  @Column() address!: string;
  @Column() status!: string;
  @Versioned() version!: number;
}

type Order = PlainOrder | LockedOrder;
const show = (o: Order) => `address=${o.address}, status=${o.status}, version=${o.version}`;
const step = (text: string) => console.log(`  ${text}`);
function catchError(action: () => void): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  return undefined;
}
function expectThat(condition: boolean, failure: string): void {
  if (!condition) throw new Error(`demo: ${failure}`);
}

async function openSqlite(entity: Function): Promise<DataSource> {
  const dataSource = new DataSource({
    type: "better-sqlite3",
    database: ":memory:",
    entities: [entity],
    synchronize: true,
  });
  return dataSource.initialize();
}

async function operatorAndCustomer(dataSource: DataSource, entity: typeof PlainOrder | typeof LockedOrder) {
  const orders = dataSource.getRepository<Order>(entity);
  const { id } = await orders.save(orders.create({ address: "1 Old Street", status: "PLACED" }));
  const operatorCopy = await orders.findOneByOrFail({ id });
  const customerCopy = await orders.findOneByOrFail({ id });
  step(`operator and customer both load order ${id}: ${show(operatorCopy)}`);

  customerCopy.address = "2 New Road";
  await orders.save(customerCopy);
  step(`customer saves a new address            -> ${show(customerCopy)}`);

  operatorCopy.status = "SHIPPED";
  try {
    await orders.save(operatorCopy);
    step("operator saves SHIPPED from the stale copy: accepted");
  } catch (error) {
    if (!(error instanceof OptimisticLockError)) throw error;
    step(`operator saves SHIPPED from the stale copy: rejected with ${error.name}`);
    step(`  "${error.message}"`);
  }
  const row = await orders.findOneByOrFail({ id });
  step(`the row now holds                         -> ${show(row)}`);
  return row;
}

async function main(): Promise<void> {
  console.log("\n1. Plain TypeORM, with @VersionColumn");
  const plain = await openSqlite(PlainOrder);
  const lost = await operatorAndCustomer(plain, PlainOrder);
  expectThat(lost.address === "1 Old Street", "plain TypeORM was expected to lose the update");
  step("LOST UPDATE: the customer's address is gone and the version went backwards.");
  await plain.destroy();

  console.log("\n2. The same story with typeorm-locking (@Versioned + installLocking)");
  const locked = installLocking(await openSqlite(LockedOrder));
  const kept = await operatorAndCustomer(locked, LockedOrder);
  expectThat(kept.address === "2 New Road" && kept.version === 2, "the conflict was not caught");
  step("The customer's address and version 2 survive; the operator reloads and re-applies.");

  console.log("\n3. A client sends back the version it edited (form field / If-Match / command)");
  const orders = locked.getRepository(LockedOrder);
  const current = await orders.findOneByOrFail({ id: kept.id });
  step(`the client edited version 1; the row is at version ${current.version}`);
  const stale = catchError(() => assertVersion(current, 1));
  expectThat(stale instanceof StaleVersionError, "assertVersion did not refuse the stale version");
  step(`assertVersion(order, 1) -> ${(stale as Error).name}: nothing written (HTTP 412/409)`);
  const next = await updateVersioned(orders, kept.id, current.version, { status: "PACKED" });
  step(`updateVersioned(orders, id, ${current.version}, { status: "PACKED" }) -> new version ${next}, one statement`);
  const again = await updateVersioned(orders, kept.id, current.version, { status: "CANCELLED" }).catch(
    (e: unknown) => e,
  );
  expectThat(again instanceof ConcurrencyError, "the second updateVersioned was not refused");
  step(`the same call again with version ${current.version} -> ${(again as Error).name}`);
  await locked.destroy();
  console.log("");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
