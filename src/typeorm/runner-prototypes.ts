/**
 * Query runner classes differ per driver (PostgresQueryRunner, MysqlQueryRunner, ...) and are
 * only reachable through a runner the driver made. This module lets hooks patch each runner
 * class once, as soon as an installed DataSource's driver makes its first runner.
 */
import type { DataSource, QueryRunner } from "typeorm";

/** Patches one runner class's prototype; called once per class. @internal */
export type RunnerPrototypePatch = (prototype: Record<string, unknown>) => void;

const patches: RunnerPrototypePatch[] = [];
/** Runner classes are few and live as long as TypeORM is loaded: a plain list is enough. */
const patchedPrototypes: Record<string, unknown>[] = [];
const wrappedDrivers = new WeakSet<object>();

/**
 * Registers a patch for every runner class (those already seen are patched at once). Each hook
 * registers its patch once, from `installHooks()`. @internal
 */
export function patchRunnerPrototypes(patch: RunnerPrototypePatch): void {
  patches.push(patch);
  for (const prototype of patchedPrototypes) patch(prototype);
}

/**
 * Patches the runner class of `dataSource`'s driver now (and of `runner`, one it already made)
 * and the class of every runner it makes. @internal
 */
export function watchRunners(dataSource: DataSource, runner?: QueryRunner): void {
  if (runner) patchPrototypeOf(runner);
  const driver = dataSource.driver as unknown as {
    createQueryRunner(mode: unknown): QueryRunner;
    queryRunner?: QueryRunner;
  };
  if (driver.queryRunner) patchPrototypeOf(driver.queryRunner);
  if (wrappedDrivers.has(driver)) return;
  wrappedDrivers.add(driver);
  const create = driver.createQueryRunner;
  driver.createQueryRunner = function (this: unknown, mode: unknown) {
    const runner = create.call(this, mode);
    patchPrototypeOf(runner);
    return runner;
  };
}

function patchPrototypeOf(runner: QueryRunner): void {
  const prototype = Object.getPrototypeOf(runner) as Record<string, unknown>;
  if (patchedPrototypes.includes(prototype)) return;
  patchedPrototypes.push(prototype);
  for (const patch of patches) patch(prototype);
}
