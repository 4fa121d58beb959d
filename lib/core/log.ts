/**
 * The daemon's log: leveled lines on stderr as text (`2026-11-21T18:00:00Z
 * info message`) or JSON, and a tap so `bgpctl monitor` can stream them.
 * One call is one record: in text, a message of several lines (a config
 * error listing every problem, a stack) is written as one line, its line
 * breaks shown as " | ", so journald and line-based collectors keep it whole.
 *
 * `LogRateLimiter` bounds repetitive lines (one per refused connection from
 * an address nobody configured would otherwise be a disk-filling vector):
 * per key, the first lines of a window pass and the rest are counted, then
 * summarised in one line when the window ends.
 */
/** Severity of a log line, shared by every layer (session, FIB, router). */
export type LogLevel = "debug" | "info" | "warn" | "error";
type Level = LogLevel;
const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A message as one text line: line breaks (and the indentation after them) become " | ". */
export function oneLine(msg: string): string {
  return msg.includes("\n") ? msg.replace(/\s*\r?\n\s*/g, " | ").replace(/^ \| | \| $/g, "") : msg;
}

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
    this.write(this.format === "json" ? JSON.stringify({ time, level: l, msg }) + "\n" : `${time} ${l} ${oneLine(msg)}\n`);
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

interface LimitState {
  start: number;
  lines: number;
  suppressed: number;
  level: Level;
  what: string;
  timer: ReturnType<typeof setTimeout> | null;
}

/** Key under which lines go once `maxKeys` distinct keys are being tracked. */
const OVERFLOW_KEY = "\0overflow";

/**
 * Rate limit of repetitive log lines. `line(key, ...)`: within a window of
 * `windowMs` starting at a key's first line, the first `burst` lines of that
 * key are emitted and the others only counted; when the window ends, one
 * line says how many were left out ("… 2995 more refused connections from
 * 127.0.0.2 in the last 60 s"), and the next line of that key starts a new
 * window. At most `maxKeys` keys are tracked (a flood from many addresses
 * shares one further key), so memory stays bounded. Real time; the summary
 * timers are unref'd.
 */
export class LogRateLimiter {
  private readonly keys = new Map<string, LimitState>();

  constructor(
    private readonly emit: (level: Level, msg: string) => void,
    readonly burst = 5,
    readonly windowMs = 60_000,
    readonly maxKeys = 1024,
  ) {}

  /**
   * Log `msg` at `level` unless `key` is over its burst in this window;
   * `what` names such lines, plural, for the summary ("refused connections
   * from 127.0.0.2").
   */
  line(key: string, level: Level, msg: string, what: string): void {
    const now = performance.now();
    let st = this.keys.get(key);
    if (st && now - st.start >= this.windowMs) {
      this.summarise(key, st);
      st = undefined;
    }
    if (!st) {
      if (this.keys.size >= this.maxKeys) this.prune(now);
      if (this.keys.size >= this.maxKeys && key !== OVERFLOW_KEY) {
        return this.line(OVERFLOW_KEY, level, msg, "rate-limited lines (too many distinct sources to track each)");
      }
      st = { start: now, lines: 0, suppressed: 0, level, what, timer: null };
      this.keys.set(key, st);
    }
    if (++st.lines <= this.burst) {
      this.emit(level, msg);
      return;
    }
    if (st.suppressed++ === 0) {
      const s = st;
      s.timer = setTimeout(() => this.summarise(key, s), Math.max(0, s.start + this.windowMs - now));
      s.timer.unref?.();
    }
  }

  private summarise(key: string, st: LimitState): void {
    if (st.timer) clearTimeout(st.timer);
    st.timer = null;
    if (this.keys.get(key) === st) this.keys.delete(key);
    if (st.suppressed > 0) {
      const secs = Math.min(performance.now() - st.start, this.windowMs) / 1000;
      this.emit(st.level, `… ${st.suppressed} more ${st.what} in the last ${secs >= 10 ? Math.round(secs) : +secs.toFixed(1)} s`);
    }
    st.suppressed = 0;
  }

  /** Forget the keys whose window ended with nothing left out. */
  private prune(now: number): void {
    for (const [k, st] of this.keys) if (st.suppressed === 0 && now - st.start >= this.windowMs) this.keys.delete(k);
  }

  /** Emit the pending summaries now (e.g. when closing) and forget every key. */
  flush(): void {
    for (const [k, st] of [...this.keys]) this.summarise(k, st);
    this.keys.clear();
  }
}
