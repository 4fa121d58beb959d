/**
 * Kernel clocks the runtime does not offer, through clock_gettime(2) and
 * bun:ffi: CLOCK_MONOTONIC in microseconds, the clock other processes
 * compare timestamps against (systemd's MONOTONIC_USEC= in a reload
 * notification; the runtime's own clocks, performance.now and
 * process.hrtime, count from the process start); and the calling thread's
 * CPU time (CLOCK_THREAD_CPUTIME_ID: to the nanosecond, where
 * getrusage(RUSAGE_THREAD), behind process.threadCpuUsage, lags by up to a
 * scheduler tick).
 */
import { dlopen, FFIType } from "bun:ffi";

const CLOCK_MONOTONIC = 1;
const CLOCK_THREAD_CPUTIME_ID = 3;

let clockGettime: ((clock: number, ts: BigInt64Array) => number) | null = null;

function loadClock(): (clock: number, ts: BigInt64Array) => number {
  if (!clockGettime) {
    const lib = dlopen("libc.so.6", { clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 } });
    clockGettime = (clock, ts) => lib.symbols.clock_gettime(clock, ts);
  }
  return clockGettime;
}

/** Microseconds of CLOCK_MONOTONIC now. */
export function monotonicUsec(): bigint {
  const clockGettime = loadClock();
  // struct timespec { time_t tv_sec; long tv_nsec; }: two 64-bit fields on x86_64 and aarch64.
  const ts = new BigInt64Array(2);
  if (clockGettime(CLOCK_MONOTONIC, ts) !== 0) throw new Error("clock_gettime(CLOCK_MONOTONIC) failed");
  return ts[0]! * 1_000_000n + ts[1]! / 1000n;
}

const cpuTs = new BigInt64Array(2);

/**
 * The calling thread's CPU time in milliseconds (about 1.7 µs a call here: a system call),
 * or NaN when the clock cannot be read.
 */
export function threadCpuMs(): number {
  if (loadClock()(CLOCK_THREAD_CPUTIME_ID, cpuTs) !== 0) return Number.NaN;
  return Number(cpuTs[0]!) * 1000 + Number(cpuTs[1]!) / 1e6;
}
