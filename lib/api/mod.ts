/**
 * The control API in one import: the shared types (types.ts), the daemon's
 * Unix-socket server (server.ts) and its streamed answers (streams.ts), the
 * CLI's client (client.ts) and the human formatting of its answers
 * (format.ts).
 */
export * from "./types.ts";
export { type ApiServer, type ApiServerOptions, startApiServer } from "./server.ts";
export { MONITOR_LIMITS, type MonitorLimits } from "./streams.ts";
export { ApiClient, DEFAULT_SOCKET_PATH, DaemonUnreachable, type RibStreamInfo, type Summary, resolveSocketPath } from "./client.ts";
export { RIB_LEGEND, RibTextWriter, formatDuration, formatMonitorEvent, formatNeighbors, formatRib, formatRibSummary, formatSummary } from "./format.ts";
