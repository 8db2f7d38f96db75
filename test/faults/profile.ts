/**
 * How big a fault run is: `LOCKING_FAULTS_PROFILE=full` (the default of `npm run test:faults`, whose
 * figures docs/reliability.md reports) or `reduced` (the run .ci/run makes within its time).
 */
export type FaultsProfile = "full" | "reduced";

export function faultsProfile(): FaultsProfile {
  const raw = process.env.LOCKING_FAULTS_PROFILE ?? "full";
  if (raw !== "full" && raw !== "reduced") {
    throw new Error(`LOCKING_FAULTS_PROFILE must be "full" or "reduced", got ${JSON.stringify(raw)}`);
  }
  return raw;
}

/** `full` in a full run, `reduced` in a reduced one. */
export function bySize<T>(full: T, reduced: T): T {
  return faultsProfile() === "full" ? full : reduced;
}
