/**
 * The RIB in one import for the daemon and the CLI: route model, decision
 * process, Adj-RIB-In, Loc-RIB, import/export policy and Adj-RIB-Out.
 */
export * from "./types.ts";
export * from "./decision.ts";
export * from "./adj-rib-in.ts";
export * from "./loc-rib.ts";
export * from "./policy.ts";
export * from "./adj-rib-out.ts";
// Both decision.ts and adj-rib-out.ts define it (same value, 100): pick one.
export { DEFAULT_LOCAL_PREF } from "./decision.ts";
