/**
 * What each operation kind does, given an EntityManager (a transaction's when the operation runs
 * inside `retryOnConflict` or needs one, else the DataSource's own). Each returns the kind it
 * really did: an order with one line cannot lose one, and one with many gets no more.
 */
import type { EntityManager } from "typeorm";
import { LockMode, updateVersioned, withLockMode } from "../../../src";
import { type OperationKind, pick } from "./generator";
import type { HistoryLine, HistoryModel, HistoryOrder } from "./model";

/** What an operation needs besides its manager. */
export interface OperationContext {
  model: HistoryModel;
  /** The client's random source (which line, how long to think). */
  random: () => number;
  /** Longest pause between a read and the write that depends on it, in ms. */
  thinkMs: number;
  /** Timeout of `PESSIMISTIC_WRITE`, in ms. */
  lockTimeoutMs: number;
  /** Most lines an order gets; a `line-add` on a full order removes one instead. */
  maxLines: number;
}

export type OperationBody = (
  ctx: OperationContext,
  manager: EntityManager,
  aggregate: number,
  token: string,
) => Promise<OperationKind>;

/** `list` with `token` appended. */
export function append(list: string, token: string): string {
  if (token === "") return list;
  return list ? `${list} ${token}` : token;
}

/** A pause of 0..thinkMs ms between a read and its write, so that clients overlap. */
export function think(ctx: OperationContext): Promise<void> {
  const ms = pick(ctx.random, ctx.thinkMs + 1);
  return new Promise((resolve) => (ms === 0 ? setImmediate(resolve) : setTimeout(resolve, ms)));
}

function loadOrder(ctx: OperationContext, manager: EntityManager, id: number, lines: boolean): Promise<HistoryOrder> {
  return manager.findOneOrFail(ctx.model.order, { where: { id }, relations: lines ? { lines: true } : {} });
}

function newLine(ctx: OperationContext, tokens: string, order?: HistoryOrder): HistoryLine {
  const line = new ctx.model.line();
  line.tokens = tokens;
  if (order) line.order = order;
  return line;
}

const rootSave: OperationBody = async (ctx, manager, id, token) => {
  const order = await loadOrder(ctx, manager, id, false);
  await think(ctx);
  order.tokens = append(order.tokens, token);
  await manager.save(order);
  return "root-save";
};

const lineCascade: OperationBody = async (ctx, manager, id, token) => {
  const order = await loadOrder(ctx, manager, id, true);
  const lines = order.lines ?? [];
  if (lines.length === 0) return lineAdd(ctx, manager, id, token);
  await think(ctx);
  const line = lines[pick(ctx.random, lines.length)];
  line.tokens = append(line.tokens, token);
  await manager.save(order);
  return "line-cascade";
};

const lineRepository: OperationBody = async (ctx, manager, id, token) => {
  const lines = await manager.find(ctx.model.line, { where: { order: { id } }, relations: { order: true } });
  if (lines.length === 0) return lineAdd(ctx, manager, id, token);
  await think(ctx);
  const line = lines[pick(ctx.random, lines.length)];
  line.tokens = append(line.tokens, token);
  await manager.getRepository(ctx.model.line).save(line);
  return "line-repository";
};

const lineAdd: OperationBody = async (ctx, manager, id, token) => {
  const order = await loadOrder(ctx, manager, id, true);
  const lines = order.lines ?? [];
  if (lines.length >= ctx.maxLines) return removeFrom(ctx, manager, order, token);
  await think(ctx);
  if (ctx.random() < 0.5) {
    // through the order's cascade
    order.lines = [...lines, newLine(ctx, token)];
    await manager.save(order);
  } else {
    // through the line's own repository, its order (as loaded) set on it
    delete order.lines;
    await manager.getRepository(ctx.model.line).save(newLine(ctx, token, order));
  }
  return "line-add";
};

/** Removes one line of a loaded order (orphan delete) and moves its tokens, and `token`, to another. */
async function removeFrom(
  ctx: OperationContext,
  manager: EntityManager,
  order: HistoryOrder,
  token: string,
): Promise<OperationKind> {
  const lines = order.lines ?? [];
  await think(ctx);
  const victim = lines[pick(ctx.random, lines.length)];
  const rest = lines.filter((line) => line !== victim);
  const survivor = rest[pick(ctx.random, rest.length)];
  survivor.tokens = append(append(survivor.tokens, victim.tokens), token);
  order.lines = rest;
  await manager.save(order);
  return "line-remove";
}

const lineRemove: OperationBody = async (ctx, manager, id, token) => {
  const order = await loadOrder(ctx, manager, id, true);
  if ((order.lines ?? []).length < 2) return lineAdd(ctx, manager, id, token);
  return removeFrom(ctx, manager, order, token);
};

const updateVersionedOp: OperationBody = async (ctx, manager, id, token) => {
  const order = await loadOrder(ctx, manager, id, false);
  await think(ctx); // the version is held a moment, as a client holds it between read and write
  await updateVersioned(manager.getRepository(ctx.model.order), id, order.version, {
    tokens: append(order.tokens, token),
  });
  return "update-versioned";
};

/** Runs inside a transaction (the caller's): lock, read, change a line (or the order), save. */
const pessimisticWrite: OperationBody = async (ctx, manager, id, token) => {
  const order = await manager.findOneOrFail(ctx.model.order, {
    where: { id },
    ...withLockMode(LockMode.PESSIMISTIC_WRITE, { timeout: ctx.lockTimeoutMs }),
  });
  const lines = await manager.find(ctx.model.line, { where: { order: { id } } });
  await think(ctx);
  if (lines.length === 0) {
    order.tokens = append(order.tokens, token);
  } else {
    const line = lines[pick(ctx.random, lines.length)];
    line.tokens = append(line.tokens, token);
    order.lines = lines;
  }
  await manager.save(order);
  return "pessimistic-write";
};

/** The body of an `offline-lock` operation: the runner takes and releases the lock around it. */
const offlineEdit: OperationBody = async (ctx, manager, id, token) => {
  await rootSave(ctx, manager, id, token);
  return "offline-lock";
};

export const OPERATIONS: Record<OperationKind, OperationBody> = {
  "root-save": rootSave,
  "line-cascade": lineCascade,
  "line-repository": lineRepository,
  "line-add": lineAdd,
  "line-remove": lineRemove,
  "update-versioned": updateVersionedOp,
  "pessimistic-write": pessimisticWrite,
  "offline-lock": offlineEdit,
};

/** Kinds whose body needs a transaction even when not retried. */
export const NEEDS_TRANSACTION: ReadonlySet<OperationKind> = new Set(["pessimistic-write"]);
