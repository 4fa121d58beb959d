/**
 * Health-checked anycast (ExaBGP's healthcheck, inside the router): a check
 * runs a probe (a command, an HTTP GET or a TCP connect) on a timer and
 * decides, with rise/fall hysteresis, whether its prefixes are announced
 * normally, degraded or withdrawn. This folder knows nothing of routes:
 * lib/router/health-glue.ts turns state changes into local routes and
 * loopback addresses.
 *
 *   state.ts    the state machine (INIT, RISING, FALLING, UP, DOWN, DISABLED)
 *   probes.ts   exec / http / tcp probes, bounded in time and output
 *   command.ts  splitting an exec string into arguments without a shell
 *   checker.ts  one running check: timers, drain file, CLI disable, counters
 */
export { type CheckCounters, type CheckInfo, HealthCheck, type HealthCheckOptions, describeProbe, oneLine } from "./checker.ts";
export { splitCommand } from "./command.ts";
export { OUTPUT_MAX, type Probe, type ProbeResult, execArgv, execProbe, httpProbe, probeFor, tcpProbe } from "./probes.ts";
export { CHECK_STATES, CheckFsm, type CheckState } from "./state.ts";
