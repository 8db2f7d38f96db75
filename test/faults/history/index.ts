/**
 * A Jepsen-style list-append history checker for typeorm-locking (issue 18): the workload's
 * entities, the operation generator, the recorder, the checker and the fault injectors.
 * Entry point: {@link runHistory}.
 */
export * from "./checker";
export * from "./faults";
export * from "./generator";
export * from "./model";
export * from "./operations";
export * from "./recorder";
export * from "./report";
export * from "./run";
