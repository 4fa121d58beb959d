/**
 * The daemon's log: leveled lines on stderr as text (`2026-11-21T18:00:00Z
 * info message`) or JSON, and a tap so `bgpctl monitor` can stream them.
 */
/** Severity of a log line, shared by every layer (session, FIB, router). */
export type LogLevel = "debug" | "info" | "warn" | "error";
type Level = LogLevel;
const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export class Log {
  private taps = new Set<(level: Level, msg: string) => void>();
  constructor(
    public level: Level = "info",
    public format: "text" | "json" = "text",
    private readonly write: (line: string) => void = (l) => process.stderr.write(l),
  ) {}

  at(level: string, msg: string): void {
    const l: Level = level in RANK ? (level as Level) : "info";
    for (const t of this.taps) t(l, msg);
    if (RANK[l] < RANK[this.level]) return;
    const time = new Date().toISOString();
    this.write(this.format === "json" ? JSON.stringify({ time, level: l, msg }) + "\n" : `${time} ${l} ${msg}\n`);
  }
  debug(msg: string): void {
    this.at("debug", msg);
  }
  info(msg: string): void {
    this.at("info", msg);
  }
  warn(msg: string): void {
    this.at("warn", msg);
  }
  error(msg: string): void {
    this.at("error", msg);
  }
  tap(fn: (level: Level, msg: string) => void): () => void {
    this.taps.add(fn);
    return () => this.taps.delete(fn);
  }
}
