/**
 * Checks that run inside a `save()`/`remove()` transaction before its first write, for rules that
 * need the database (an offline lock must be held). Each check sees the executor's subjects and
 * throws to refuse the whole flush; the transaction then rolls back with nothing written.
 */
import type { SubjectExecutorLike, TypeormInternals } from "./internals";
import { wrap } from "./internals";
import { runAsCheckedWrites } from "./unchecked-writes";

/** A check run before a flush writes; throw to refuse it. @internal */
export type PreWriteCheck = (executor: SubjectExecutorLike) => Promise<void>;

/**
 * When a check runs: `refusal`s only read and refuse, and run before any check that writes
 * (`write`, e.g. an aggregate root's version bump), so a refused flush has written nothing even
 * when it runs outside a transaction.
 *
 * @internal
 */
export type PreWriteCheckPhase = "refusal" | "write";

const refusals = new Set<PreWriteCheck>();
const writes = new Set<PreWriteCheck>();

/** Registers a check (once; registering the same function again does nothing). @internal */
export function addPreWriteCheck(check: PreWriteCheck, phase: PreWriteCheckPhase = "write"): void {
  (phase === "refusal" ? refusals : writes).add(check);
}

/** Patches `SubjectExecutor.execute`; `installHooks()` calls it once per loaded copy of TypeORM. @internal */
export function installPreWriteChecks(internals: TypeormInternals): void {
  wrap(
    internals.subjectExecutor,
    "execute",
    (original) =>
      function (this: SubjectExecutorLike, ...args: unknown[]) {
        // No registered check (the common case): no extra await on every save's path.
        if (refusals.size === 0 && writes.size === 0) return original.apply(this, args);
        return runChecks(this).then(() => original.apply(this, args));
      },
  );
}

async function runChecks(executor: SubjectExecutorLike): Promise<void> {
  for (const check of refusals) await check(executor);
  await runAsCheckedWrites(async () => {
    for (const check of writes) await check(executor);
  });
}
