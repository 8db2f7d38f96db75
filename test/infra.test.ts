/**
 * Proves the test plumbing on every database and both TypeORM lines: two DataSources are two
 * real connections to one fresh database, the mapped TypeORM copy is the one in use, and
 * StatementCounter sees every statement.
 */
import "reflect-metadata";
import { Column, type DataSource, Entity, PrimaryGeneratedColumn } from "typeorm";
import {
  barrier,
  closeAll,
  deferred,
  describeEachDatabase,
  openDataSources,
  StatementCounter,
} from "./support/databases";

@Entity({ name: "tl_infra_note" })
class Note {
  @PrimaryGeneratedColumn() id!: number;
  @Column() text!: string;
}

describeEachDatabase((db) => {
  const counter = new StatementCounter();
  let writer: DataSource;
  let reader: DataSource;

  beforeAll(async () => {
    [writer, reader] = await openDataSources(db, [Note], {
      count: 2,
      extra: { logger: counter, logging: true },
    });
  });
  afterAll(() => closeAll(writer, reader));

  it("uses the TypeORM line of the jest project and the database's driver type", () => {
    expect(writer.options.type).toBe(db.type);
    expect(typeormVersion()).toMatch(expectedTypeormVersion());
  });

  it("starts from an empty table", async () => {
    expect(await reader.getRepository(Note).count()).toBe(0);
  });

  it("a row inserted through one DataSource is read through the other", async () => {
    const saved = await writer.getRepository(Note).save({ text: "hello" });
    expect(await reader.getRepository(Note).findOneByOrFail({ id: saved.id })).toEqual({
      id: saved.id,
      text: "hello",
    });
  });

  it("the two DataSources are separate connections", async () => {
    const sessionSql = {
      sqlite: undefined,
      postgres: "SELECT pg_backend_pid() AS id",
      mysql: "SELECT CONNECTION_ID() AS id",
    }[db.family];
    if (!sessionSql) {
      // better-sqlite3: one Database handle per DataSource, both on the same file.
      const handle = (source: DataSource) =>
        (source.driver as unknown as { databaseConnection: { name: string } }).databaseConnection;
      expect(handle(writer)).not.toBe(handle(reader));
      expect(handle(writer).name).toBe(handle(reader).name);
      return;
    }
    const [[a], [b]] = await Promise.all([writer.query(sessionSql), reader.query(sessionSql)]);
    expect(Number(a.id)).not.toBe(Number(b.id));
  });

  it("a transaction's uncommitted row is invisible to the other connection until commit", async () => {
    const inserted = deferred();
    const checked = barrier();
    const transaction = writer.transaction(async (manager) => {
      await manager.getRepository(Note).save({ text: "pending" });
      inserted.resolve();
      await checked.wait("reader looked");
    });
    await inserted.promise;
    expect(await reader.getRepository(Note).countBy({ text: "pending" })).toBe(0);
    checked.release("reader looked");
    await transaction;
    expect(await reader.getRepository(Note).countBy({ text: "pending" })).toBe(1);
  });

  it("StatementCounter counts every statement", async () => {
    counter.reset();
    expect(counter.count).toBe(0);
    await writer.query("SELECT 1");
    await reader.query("SELECT 2");
    expect(counter.count).toBe(2);
    expect(counter.statements).toEqual(["SELECT 1", "SELECT 2"]);
    counter.reset();
    await writer.getRepository(Note).find();
    expect(counter.count).toBe(1);
    expect(counter.statements[0]).toMatch(/^SELECT/);
    expect(counter.queries).toHaveLength(1);
  });
});

describeEachDatabase(
  (db) => {
    it("openDataSources drops what the previous call created", async () => {
      const [first] = await openDataSources(db, [Note]);
      await first.getRepository(Note).save({ text: "left over" });
      await closeAll(first);
      const [second] = await openDataSources(db, [Note]);
      try {
        expect(await second.getRepository(Note).count()).toBe(0);
      } finally {
        await closeAll(second);
      }
    });
  },
  ["postgres-embedded", "postgres", "mariadb"],
);

function typeormVersion(): string {
  // The mapped copy: `typeorm/package.json` resolves through moduleNameMapper like `typeorm`.
  return require("typeorm/package.json").version;
}

/** jest.config.js sets the global TYPEORM_LINE to the project's displayName. */
function expectedTypeormVersion(): RegExp {
  const line = (globalThis as { TYPEORM_LINE?: string }).TYPEORM_LINE;
  if (line === "typeorm-0.3") return /^0\.3\./;
  if (line === "typeorm-1") return /^1\./;
  throw new Error(`unknown TYPEORM_LINE ${line}`);
}
