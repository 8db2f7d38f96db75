/**
 * Checks that run inside a `save()`/`remove()` transaction before its first write, for rules that
 * need the database (an offline lock must be held). Each check sees the executor's subjects and
 * throws to refuse the whole flush; the transaction then rolls back with nothing written.
 */
import type { SubjectExecutorLike, TypeormInternals } from "./internals";
import { wrap } from "./internals";

/** A check run before a flush writes; throw to refuse it. */
export type PreWriteCheck = (executor: SubjectExecutorLike) => Promise<void>;

const checks = new Set<PreWriteCheck>();
const patched = new WeakSet<object>();

/** Registers a check (once; registering the same function again does nothing). */
export function addPreWriteCheck(check: PreWriteCheck): void {
  checks.add(check);
}

/** Patches `SubjectExecutor.execute` once per loaded copy of TypeORM. */
export function installPreWriteChecks(internals: TypeormInternals): void {
  if (patched.has(internals.subjectExecutor)) return;
  patched.add(internals.subjectExecutor);
  wrap(
    internals.subjectExecutor,
    "execute",
    (original) =>
      function (this: SubjectExecutorLike, ...args: unknown[]) {
        // No registered check (the common case): no extra await on every save's path.
        if (checks.size === 0) return original.apply(this, args);
        return runChecks(this).then(() => original.apply(this, args));
      },
  );
}

async function runChecks(executor: SubjectExecutorLike): Promise<void> {
  for (const check of checks) await check(executor);
}
