/**
 * CLOCK_MONOTONIC as the kernel keeps it (clock_gettime(2) through bun:ffi),
 * in microseconds: the clock other processes compare timestamps against
 * (systemd's MONOTONIC_USEC= in a reload notification). The runtime's own
 * clocks (performance.now, process.hrtime) count from the process start.
 */
import { dlopen, FFIType } from "bun:ffi";

const CLOCK_MONOTONIC = 1;

let clockGettime: ((clock: number, ts: BigInt64Array) => number) | null = null;

/** Microseconds of CLOCK_MONOTONIC now. */
export function monotonicUsec(): bigint {
  if (!clockGettime) {
    const lib = dlopen("libc.so.6", { clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 } });
    clockGettime = (clock, ts) => lib.symbols.clock_gettime(clock, ts);
  }
  // struct timespec { time_t tv_sec; long tv_nsec; }: two 64-bit fields on x86_64 and aarch64.
  const ts = new BigInt64Array(2);
  if (clockGettime(CLOCK_MONOTONIC, ts) !== 0) throw new Error("clock_gettime(CLOCK_MONOTONIC) failed");
  return ts[0]! * 1_000_000n + ts[1]! / 1000n;
}
