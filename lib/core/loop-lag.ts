/**
 * Event-loop lag monitor: a timer every `intervalMs` measures how late it
 * fires (the time the loop was held by other work), and keeps the worst lag
 * and a histogram for percentiles since it started. The route engine runs
 * one (`bgpctl show summary` reports it as `eventLoop`); tests use it as a
 * lag probe. Real time only (performance.now), never a test clock; the timer
 * is unref'd so it never keeps a process alive.
 */

/** What `bgpctl show summary -j` reports as `eventLoop`. */
export interface LoopLagStats {
  /** Worst lag seen, in milliseconds. */
  maxLagMs: number;
  /** 99th percentile of the lags, in milliseconds (upper edge of its histogram bucket, capped at the max). */
  p99LagMs: number;
  /** Number of timer firings measured. */
  samples: number;
}

/** Histogram buckets: 0.25 ms wide up to 100 ms, 10 ms wide up to 10 s, then one overflow bucket. */
const FINE_MS = 0.25;
const FINE_BUCKETS = 400; // 0..100 ms
const COARSE_MS = 10;
const COARSE_BUCKETS = 990; // 100 ms..10 s

function bucketOf(lag: number): number {
  if (lag < FINE_BUCKETS * FINE_MS) return Math.floor(lag / FINE_MS);
  const c = Math.floor((lag - FINE_BUCKETS * FINE_MS) / COARSE_MS);
  return FINE_BUCKETS + Math.min(c, COARSE_BUCKETS);
}

function upperEdge(bucket: number): number {
  if (bucket < FINE_BUCKETS) return (bucket + 1) * FINE_MS;
  if (bucket >= FINE_BUCKETS + COARSE_BUCKETS) return Infinity; // the overflow bucket: only the max bounds it
  return FINE_BUCKETS * FINE_MS + (bucket - FINE_BUCKETS + 1) * COARSE_MS;
}

export class LoopLagMonitor {
  private readonly histogram = new Uint32Array(FINE_BUCKETS + COARSE_BUCKETS + 1);
  private max = 0;
  private count = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private expected = 0;

  constructor(readonly intervalMs = 10) {}

  /** A monitor already running (a lag probe for tests: `finish()` stops it and reports). */
  static started(intervalMs = 10): LoopLagMonitor {
    const m = new LoopLagMonitor(intervalMs);
    m.start();
    return m;
  }

  /** Stop, and what was seen. */
  finish(): LoopLagStats {
    this.stop();
    return this.stats();
  }

  /**
   * Run `work` under a monitor firing every `intervalMs` (a lag probe for
   * tests); the monitor, stopped, holds what it saw meanwhile, and `ms` is
   * how long the work took (firings are judged against it: a count fixed in
   * advance fails a run that is fast).
   */
  static async measure<T>(work: () => Promise<T>, intervalMs = 5): Promise<{ result: T; lag: LoopLagMonitor; ms: number }> {
    const lag = new LoopLagMonitor(intervalMs);
    const t0 = performance.now();
    lag.start();
    try {
      const result = await work();
      return { result, lag, ms: performance.now() - t0 };
    } finally {
      lag.stop();
    }
  }

  get running(): boolean {
    return this.timer !== null;
  }

  start(): void {
    if (this.timer) return;
    this.arm();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Record one lag (exposed for tests of the statistics). */
  record(lagMs: number): void {
    const lag = lagMs > 0 ? lagMs : 0;
    this.histogram[bucketOf(lag)]!++;
    this.count++;
    if (lag > this.max) this.max = lag;
  }

  /** Percentile `p` (0..100) of the recorded lags, in ms (0 with no samples). */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const want = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.histogram.length; i++) {
      seen += this.histogram[i]!;
      if (seen >= want) return Math.min(upperEdge(i), this.max);
    }
    return this.max;
  }

  stats(): LoopLagStats {
    return { maxLagMs: round2(this.max), p99LagMs: round2(this.percentile(99)), samples: this.count };
  }

  private arm(): void {
    this.expected = performance.now() + this.intervalMs;
    const t = setTimeout(() => {
      this.record(performance.now() - this.expected);
      if (this.timer === t) this.arm();
    }, this.intervalMs);
    (t as { unref?: () => void }).unref?.();
    this.timer = t;
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
