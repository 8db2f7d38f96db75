/**
 * Fault injectors: what goes wrong during a run. Each is started once the clients' DataSources
 * are open and stopped after the last operation, and counts what it did per kind.
 */
import type { DataSource, QueryRunner } from "typeorm";
import { pick, randomSource } from "./generator";

/** What an injector is given when the run starts. */
export interface FaultContext {
  /** The clients' DataSources (every one the run uses). */
  dataSources: readonly DataSource[];
  /** The run's seed, for injectors that draw random numbers. */
  seed: number;
}

/** Something that goes wrong during a run. */
export interface FaultInjector {
  /** A short name for reports. */
  readonly name: string;
  start(ctx: FaultContext): Promise<void> | void;
  /** Told after each operation how many of the run's operations have ended. */
  progress?(ended: number, total: number): void;
  /** Ends the faults; the database must be reachable again when it resolves. */
  stop(): Promise<void>;
  /** Faults injected so far, per kind. */
  counts(): Record<string, number>;
}

/** Options of {@link ConnectionKiller}. */
export interface ConnectionKillerOptions {
  /** Chance that a statement sent inside a transaction (a flush's INSERT/UPDATE/DELETE/SELECT) kills its connection first. */
  statementChance?: number;
  /** Chance that a COMMIT kills its connection while it is under way (the kill is sent as the COMMIT is). */
  commitChance?: number;
  /** Also kill one connection the run used, at random, this often (ms); 0: never. */
  randomEveryMs?: number;
  /**
   * The first random kill this soon (ms), then every `randomEveryMs`: a short run on a fast
   * machine may end before the first full interval.
   */
  firstRandomAfterMs?: number;
  /**
   * Once this share of the run's operations has ended (0.5: half), each kind that has not
   * killed yet kills at its next chance regardless of the odds: a short run's few COMMITs may
   * otherwise draw no kill at all, and a run meant to kill during COMMIT would prove nothing.
   */
  everyKindBy?: number;
}

interface Admin {
  kill(id: number): Promise<void>;
  close(): Promise<void>;
}

/** The connection's server-side id: PostgreSQL's backend pid, MySQL/MariaDB's thread id. */
function serverIdOf(runner: QueryRunner | undefined): number | undefined {
  const connection = (runner as { databaseConnection?: { processID?: number; threadId?: number } } | undefined)
    ?.databaseConnection;
  const id = connection?.processID ?? connection?.threadId;
  return typeof id === "number" && Number.isInteger(id) && id > 0 ? id : undefined;
}

const WRITE_OR_READ = /^\s*(INSERT|UPDATE|DELETE|SELECT)\b/i;

/**
 * Kills the clients' connections from a separate admin connection: PostgreSQL
 * `pg_terminate_backend(pid)`, MySQL/MariaDB `KILL CONNECTION id`. At three kinds of points:
 * between the statements of a transaction (the kill completes before the statement is sent: the
 * statement meets a dead connection), during COMMIT (the kill is sent as the COMMIT goes out: it
 * lands before, during or after it, and the client cannot tell which), and at random on any
 * connection the run used (idle in the pool, or busy).
 */
export class ConnectionKiller implements FaultInjector {
  readonly name = "connection-kills";
  private readonly killed: Record<string, number> = { statement: 0, commit: 0, random: 0 };
  private admin?: Promise<Admin>;
  private readonly seen = new Set<number>();
  private timer?: NodeJS.Timeout;
  private firstTimer?: NodeJS.Timeout;
  private random: () => number = Math.random;
  private stopped = false;
  private readonly pending = new Set<Promise<void>>();
  private source?: DataSource;
  /** Kinds sent at least once (counted when sent: a kill that fails is still not retried by force). */
  private readonly sent = new Set<string>();
  private forceMissing = false;

  constructor(private readonly options: ConnectionKillerOptions = {}) {}

  start(ctx: FaultContext): void {
    this.random = randomSource(ctx.seed ^ 0x5eed);
    this.source = ctx.dataSources[0];
    const family = this.source.options.type;
    if (family !== "postgres" && family !== "mysql" && family !== "mariadb") {
      throw new Error(`ConnectionKiller: cannot kill connections of a ${family} DataSource`);
    }
    const killer = this;
    for (const dataSource of ctx.dataSources) {
      dataSource.subscribers.push({
        beforeQuery(event: { query: string; queryRunner?: QueryRunner }) {
          return killer.beforeQuery(event.query, event.queryRunner);
        },
      } as never);
    }
    const every = this.options.randomEveryMs ?? 0;
    if (every > 0) {
      const killOne = () => {
        const ids = [...this.seen];
        if (ids.length > 0) this.track(this.kill(ids[pick(this.random, ids.length)], "random"));
      };
      this.firstTimer = setTimeout(killOne, Math.min(every, this.options.firstRandomAfterMs ?? every));
      this.timer = setInterval(killOne, every);
    }
  }

  progress(ended: number, total: number): void {
    const by = this.options.everyKindBy;
    if (by === undefined || this.forceMissing || ended < by * total) return;
    this.forceMissing = true;
    const ids = [...this.seen];
    if ((this.options.randomEveryMs ?? 0) > 0 && !this.sent.has("random") && ids.length > 0) {
      this.track(this.kill(ids[pick(this.random, ids.length)], "random"));
    }
  }

  /** A kill of this kind now: by chance, or forced when the kind is still missing past `everyKindBy`. */
  private draw(kind: string, chance: number | undefined): boolean {
    if (this.random() < (chance ?? 0)) return true;
    return this.forceMissing && (chance ?? 0) > 0 && !this.sent.has(kind);
  }

  private beforeQuery(query: string, runner: QueryRunner | undefined): Promise<void> | undefined {
    if (this.stopped) return undefined;
    const id = serverIdOf(runner);
    if (id === undefined) return undefined;
    this.seen.add(id);
    if (!runner?.isTransactionActive) return undefined;
    if (/^\s*COMMIT\b/i.test(query)) {
      if (this.draw("commit", this.options.commitChance)) this.track(this.kill(id, "commit"));
      return undefined;
    }
    if (WRITE_OR_READ.test(query) && this.draw("statement", this.options.statementChance)) {
      return this.kill(id, "statement");
    }
    return undefined;
  }

  private track(kill: Promise<void>): void {
    this.pending.add(kill);
    void kill.finally(() => this.pending.delete(kill));
  }

  private async kill(id: number, kind: string): Promise<void> {
    this.seen.delete(id);
    this.sent.add(kind);
    try {
      const admin = await this.adminConnection();
      await admin.kill(id);
      this.killed[kind]++;
    } catch {
      // the admin connection itself died (a server restart): open a new one next time
      const admin = this.admin;
      this.admin = undefined;
      await admin?.then((a) => a.close()).catch(() => undefined);
    }
  }

  private adminConnection(): Promise<Admin> {
    this.admin ??= openAdmin(this.source!);
    // a failed open is not kept
    this.admin.catch(() => {
      this.admin = undefined;
    });
    return this.admin;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.firstTimer) clearTimeout(this.firstTimer);
    await Promise.allSettled([...this.pending]);
    const admin = this.admin;
    this.admin = undefined;
    await admin?.then((a) => a.close()).catch(() => undefined);
  }

  counts(): Record<string, number> {
    return { ...this.killed };
  }
}

async function openAdmin(source: DataSource): Promise<Admin> {
  const options = source.options as {
    type: string;
    host?: string;
    port?: number;
    username?: string;
    password?: string;
    database?: string;
  };
  if (options.type === "postgres") {
    const { Client } = require("pg") as { Client: new (config: object) => PgClient };
    const client = new Client({
      host: options.host,
      port: options.port,
      user: options.username,
      password: options.password,
      database: options.database,
      connectionTimeoutMillis: 5_000,
    });
    client.on("error", () => undefined);
    await client.connect();
    return {
      kill: async (pid) => {
        await client.query("SELECT pg_terminate_backend($1)", [pid]);
      },
      close: () => client.end(),
    };
  }
  const mysql = require("mysql2/promise") as typeof import("mysql2/promise");
  const connection = await mysql.createConnection({
    host: options.host,
    port: options.port,
    user: options.username,
    password: options.password,
    database: options.database,
    connectTimeout: 5_000,
  });
  connection.on("error", () => undefined);
  return {
    kill: async (id) => {
      if (!Number.isSafeInteger(id)) throw new Error(`not a thread id: ${id}`);
      try {
        await connection.query(`KILL CONNECTION ${id}`);
      } catch (error) {
        // 1094 unknown thread: it ended already
        if ((error as { errno?: number }).errno !== 1094) throw error;
      }
    },
    close: () => connection.end(),
  };
}

interface PgClient {
  connect(): Promise<void>;
  query(text: string, values?: unknown[]): Promise<unknown>;
  end(): Promise<void>;
  on(event: "error", listener: (error: Error) => void): void;
}

/** Options of {@link ServerRestart}. */
export interface ServerRestartOptions {
  /** When to restart, as shares of the run's operations ended (0.3: after 30 %), one restart each. */
  at: readonly number[];
  /** Stops the server (resolves once it is down). */
  stopServer: () => Promise<void>;
  /** Starts it again on the same data and port (resolves once it accepts connections). */
  startServer: () => Promise<void>;
  /** How long it stays down, in ms. */
  downMs?: number;
}

/**
 * Stops the database server mid-run and starts it again on the same data directory and port;
 * the clients' pools must reconnect by themselves.
 */
export class ServerRestart implements FaultInjector {
  readonly name = "server-restarts";
  private restarts = 0;
  private next = 0;
  private running: Promise<void> = Promise.resolve();
  /** An error from stopping or starting, rethrown by stop(). */
  private failure: unknown;

  constructor(private readonly options: ServerRestartOptions) {}

  start(): void {}

  progress(ended: number, total: number): void {
    const at = [...this.options.at].sort((a, b) => a - b);
    while (this.next < at.length && ended >= at[this.next] * total) {
      this.next++;
      this.running = this.running.then(() => this.restart());
    }
  }

  private async restart(): Promise<void> {
    try {
      await this.options.stopServer();
      await new Promise((resolve) => setTimeout(resolve, this.options.downMs ?? 1_000));
      await this.options.startServer();
      this.restarts++;
    } catch (error) {
      this.failure ??= error;
    }
  }

  async stop(): Promise<void> {
    await this.running;
    if (this.failure) throw this.failure;
  }

  counts(): Record<string, number> {
    return { restart: this.restarts };
  }
}
