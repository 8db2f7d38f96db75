/**
 * What the entry points must accept, written from the documentation, independently of the code
 * that checks it: the fuzzers compare the library's answer to these.
 */
import { LockMode } from "../../../src";

/** The longest lock wait the docs allow: 2^31-1 ms. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** A LockMode value (the aliases READ and WRITE are values too). */
export function validMode(mode: unknown): boolean {
  return (Object.values(LockMode) as unknown[]).includes(mode);
}

/** `timeout`: absent, 0..2^31-1 ms, or SKIP_LOCKED (-2). */
export function validTimeout(timeout: unknown): boolean {
  return (
    timeout === undefined ||
    (typeof timeout === "number" && (timeout === -2 || (timeout >= 0 && timeout <= MAX_TIMEOUT_MS)))
  );
}

/** LockOptions: absent (undefined or null), or an object with a valid timeout and onLocked. */
export function validLockOptions(options: unknown): boolean {
  if (options === undefined || options === null) return true;
  if (typeof options !== "object" || Array.isArray(options)) return false;
  const { timeout, onLocked } = options as { timeout?: unknown; onLocked?: unknown };
  if (!validTimeout(timeout) || ![undefined, "wait", "nowait", "skip"].includes(onLocked as string)) return false;
  if (onLocked === undefined || timeout === undefined) return true;
  // Both given: they must ask for the same wait (NOWAIT is 0, skip is SKIP_LOCKED, wait is n > 0).
  const timeoutSays = timeout === 0 ? "nowait" : timeout === -2 ? "skip" : "wait";
  return timeoutSays === onLocked;
}
