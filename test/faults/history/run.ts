/**
 * Runs a list-append history: N clients issue random operations against the model's aggregates,
 * each recorded with its outcome, under the given faults; then the final state is read and
 * checked against the history.
 *
 * ```ts
 * const result = await runHistory({
 *   model: LOCKED_MODEL,
 *   openDataSource: (i) => openClientDataSource(i), // one per node, or one for all clients
 *   dataSources: 3,
 *   operations: 10_000,
 *   faults: [new ConnectionKiller({ statementChance: 0.002, commitChance: 0.01 })],
 * });
 * expect(result.check.violations).toEqual([]);
 * ```
 */
import type { DataSource, EntityManager } from "typeorm";
import { OfflineLockManager, type RetryOptions, retryOnConflict } from "../../../src";
import { type CheckResult, checkHistory, type FinalAggregate, readFinalState } from "./checker";
import type { FaultInjector } from "./faults";
import { ALL_KINDS, type Operation, OperationGenerator, type OperationKind, TYPEORM_KINDS } from "./generator";
import type { HistoryModel } from "./model";
import { NEEDS_TRANSACTION, OPERATIONS, type OperationContext } from "./operations";
import { HistoryRecorder, type KindSummary, saysNothingWritten } from "./recorder";

export interface HistoryRunOptions {
  model: HistoryModel;
  /**
   * Opens the run's `index`-th DataSource: initialized, with `model.entities`, the schema in place.
   * Index 0 is opened first and alone (it may create the schema); the others after it.
   */
  openDataSource: (index: number) => Promise<DataSource>;
  /** How many DataSources to open; client `c` uses number `c % dataSources`. Default 1. */
  dataSources?: number;
  /** Closes a DataSource the run opened. Default `destroy()`. */
  closeDataSource?: (dataSource: DataSource) => Promise<void>;
  /** Which DataSource (index) creates the aggregates and reads the final state. Default 0. */
  readerIndex?: number;
  /** Total operations of the run, all clients together. */
  operations: number;
  /**
   * Ends the run before `operations` once it returns true (asked before each operation): for a
   * run that must last as long as a fault's timeline (a partition and its healing), not a count.
   */
  until?: () => boolean;
  /** Concurrent clients. Default 16. */
  clients?: number;
  /** Orders (aggregates). Default 20. */
  aggregates?: number;
  /** Operation kinds to draw from. Default every kind (library models), TypeORM's own (plain). */
  kinds?: readonly OperationKind[];
  /** Share of operations run inside `retryOnConflict`. Default 0.5. */
  retriedShare?: number;
  seed?: number;
  faults?: readonly FaultInjector[];
  /** `PESSIMISTIC_WRITE` timeout in ms. Default 1000. */
  lockTimeoutMs?: number;
  /** Longest pause between a read and its write, in ms. Default 3. */
  thinkMs?: number;
  /** Most lines per order. Default 4. */
  maxLines?: number;
  /** Options of `retryOnConflict` for retried operations (onRetry is the recorder's). */
  retry?: Omit<RetryOptions, "onRetry">;
  /** Which errors mean "nothing was written" (failed); others are unknown. Default {@link saysNothingWritten}. */
  isFailure?: (error: unknown) => boolean;
  /**
   * How long a client pauses after an operation of unknown outcome (its connection died, the
   * server is down), doubled for each further one in a row up to 2 s, as a real client backs off
   * instead of spinning on a dead server. Default 100 ms.
   */
  pauseAfterUnknownMs?: number;
  /** How long to keep trying to read the final state after the run (a server coming back). Default 60 s. */
  readTimeoutMs?: number;
}

export interface HistoryRunResult {
  model: string;
  seed: number;
  clients: number;
  aggregates: number;
  operations: number;
  durationMs: number;
  opsPerSecond: number;
  ok: number;
  failed: number;
  unknown: number;
  /** Retries made inside `retryOnConflict`. */
  retries: number;
  byKind: Record<string, KindSummary>;
  /** Faults injected, per injector and kind. */
  faults: Record<string, Record<string, number>>;
  check: CheckResult;
  /** The most frequent errors of failed and unknown operations. */
  errors: { failed: { error: string; count: number }[]; unknown: { error: string; count: number }[] };
  /** The full history, for a closer look at a violation. */
  recorder: HistoryRecorder;
}

export async function runHistory(options: HistoryRunOptions): Promise<HistoryRunResult> {
  const model = options.model;
  const clients = options.clients ?? 16;
  const aggregates = options.aggregates ?? 20;
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const kinds = options.kinds ?? (model.library ? ALL_KINDS : TYPEORM_KINDS);
  if (!model.library && kinds.some((kind) => !TYPEORM_KINDS.includes(kind))) {
    throw new Error(`runHistory: the ${model.name} model runs TypeORM's own operations only`);
  }
  const faults = options.faults ?? [];
  const close = options.closeDataSource ?? ((dataSource: DataSource) => dataSource.destroy());
  const count = options.dataSources ?? 1;
  const sources: DataSource[] = [];
  const recorder = new HistoryRecorder(options.isFailure ?? saysNothingWritten);
  let durationMs = 0;
  try {
    for (let i = 0; i < count; i++) sources.push(await options.openDataSource(i));
    const reader = sources[options.readerIndex ?? 0];
    const initialVersions = await createAggregates(reader, model, aggregates);

    const offline = new Map<DataSource, OfflineLockManager>();
    const offlineOf = (dataSource: DataSource) => {
      const known = offline.get(dataSource);
      if (known) return known;
      const manager = new OfflineLockManager(dataSource);
      offline.set(dataSource, manager);
      return manager;
    };
    const retry: RetryOptions = {
      attempts: 5,
      backoff: { initialMs: 5, maxMs: 200 },
      ...options.retry,
      onRetry: () => {
        recorder.retries++;
      },
    };

    let issued = 0;
    let ended = 0;
    const execute = async (dataSource: DataSource, ctx: OperationContext, op: Operation) => {
      const body = OPERATIONS[op.kind];
      let attempts = 0;
      let did: OperationKind = op.kind;
      const once = async (manager: EntityManager) => {
        attempts++;
        did = await body(ctx, manager, op.aggregate, op.token);
      };
      const run = (): Promise<void> => {
        if (op.retried) return retryOnConflict(dataSource, once, retry);
        if (NEEDS_TRANSACTION.has(op.kind)) return dataSource.transaction(once);
        return once(dataSource.manager);
      };
      const begun = recorder.now();
      try {
        if (op.kind === "offline-lock") {
          const locks = offlineOf(dataSource);
          const handle = await locks.tryLock("HistoryOrder", op.aggregate, {
            owner: `client ${op.client}`,
            ttlMs: 5_000,
          });
          try {
            await locks.runHolding(handle, run);
          } finally {
            await locks.releaseLock(handle).catch(() => undefined);
          }
        } else {
          await run();
        }
        recorder.ok(op, did, attempts, begun);
      } catch (error) {
        if (recorder.threw(op, did, attempts, begun, error) === "unknown") return "unknown";
      }
      return "known";
    };

    for (const fault of faults) await fault.start({ dataSources: sources, seed });
    const t0 = performance.now();
    const clientsDone = Promise.all(
      Array.from({ length: clients }, async (_, client) => {
        const dataSource = sources[client % sources.length];
        const generator = new OperationGenerator(client, seed, aggregates, kinds, options.retriedShare);
        const ctx: OperationContext = {
          model,
          random: generator.random,
          thinkMs: options.thinkMs ?? 3,
          lockTimeoutMs: options.lockTimeoutMs ?? 1_000,
          maxLines: options.maxLines ?? 4,
        };
        let unknownInARow = 0;
        while (issued < options.operations && !options.until?.()) {
          issued++;
          if ((await execute(dataSource, ctx, generator.next())) === "unknown") {
            const pause = Math.min((options.pauseAfterUnknownMs ?? 100) * 2 ** unknownInARow++, 2_000);
            await new Promise((resolve) => setTimeout(resolve, pause));
          } else {
            unknownInARow = 0;
          }
          ended++;
          for (const fault of faults) fault.progress?.(ended, options.operations);
        }
      }),
    );
    // Clients never throw (every operation's error is recorded), so the faults always get stopped.
    await clientsDone;
    durationMs = performance.now() - t0;
    const stops = await Promise.allSettled(faults.map((fault) => fault.stop()));
    const failure = stops.find((stop): stop is PromiseRejectedResult => stop.status === "rejected");
    if (failure) throw failure.reason;

    const finalState = await readWithRetry(reader, model, options.readTimeoutMs ?? 60_000);
    const check = checkHistory(recorder.operations, initialVersions, finalState);
    return {
      model: model.name,
      seed,
      clients,
      aggregates,
      operations: recorder.operations.length,
      durationMs: Math.round(durationMs),
      opsPerSecond: Math.round((recorder.operations.length / durationMs) * 1000),
      ok: recorder.count("ok"),
      failed: recorder.count("failed"),
      unknown: recorder.count("unknown"),
      retries: recorder.retries,
      byKind: recorder.byKind(),
      faults: Object.fromEntries(faults.map((fault) => [fault.name, fault.counts()])),
      check,
      errors: { failed: recorder.topErrors("failed"), unknown: recorder.topErrors("unknown") },
      recorder,
    };
  } finally {
    for (const dataSource of sources) await close(dataSource).catch(() => undefined);
  }
}

/** Creates orders 1..n, each with two empty lines; returns their versions. */
async function createAggregates(dataSource: DataSource, model: HistoryModel, n: number): Promise<Map<number, number>> {
  const versions = new Map<number, number>();
  for (let id = 1; id <= n; id++) {
    const order = new model.order();
    order.id = id;
    order.tokens = "";
    order.lines = [0, 1].map(() => {
      const line = new model.line();
      line.tokens = "";
      return line;
    });
    await dataSource.manager.save(order);
    const saved = await dataSource.manager.findOneByOrFail(model.order, { id });
    versions.set(id, Number(saved.version));
  }
  return versions;
}

async function readWithRetry(
  dataSource: DataSource,
  model: HistoryModel,
  timeoutMs: number,
): Promise<FinalAggregate[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await readFinalState(dataSource, model);
    } catch (error) {
      if (performance.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}
