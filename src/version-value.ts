import { describeValue, LockingConfigurationError } from "./errors";

/**
 * Turns what a caller or a client holds as a version into the integer the row stores.
 * Accepts a safe integer, or a string of digits (a form field, an HTTP header, a query
 * parameter); anything else is a programming error, reported with `what` in the message.
 * Returns `undefined` for `null`/`undefined` so callers can tell "no version" apart.
 *
 * @internal
 */
export function toVersionNumber(value: unknown, what: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  // Number() itself ignores the spaces the test allows around the digits.
  if (typeof value === "string" && /^\d{1,15}$/.test(value.trim())) return Number(value);
  throw new LockingConfigurationError(
    `${what} must be an integer version, got ${typeof value} ${describeValue(value)}.`,
  );
}
