/**
 * The few libc calls bgpctl needs for netlink sockets and for TCP sockets
 * the runtime cannot set up itself (TCP-MD5 keys and the TTL must be on the
 * socket before connect/listen; see tcp-socket.ts), through bun:ffi: socket, bind, connect,
 * listen, getsockname, setsockopt, getsockopt, send, recv, poll, fcntl
 * (F_DUPFD_CLOEXEC), close, if_nametoindex, getpid, and errno (read through
 * `__errno_location` right after a failing call), plus errno numbers and
 * their names for the errors the kernel code reports.
 *
 * Nothing here blocks: sockets are opened with SOCK_NONBLOCK, `recv` is
 * only called with MSG_DONTWAIT and `poll` with a zero timeout. libc is opened lazily, on the first call, so
 * importing this module (e.g. for the errno names) costs nothing.
 */
import { dlopen, FFIType, read } from "bun:ffi";

// ---------------------------------------------------------------------------
// Constants (Linux, x86_64 and aarch64 share these values)
// ---------------------------------------------------------------------------

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;

export const SOCK_STREAM = 1;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_ERROR = 4;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;

export const MSG_DONTWAIT = 0x40;
export const MSG_TRUNC = 0x20;

export const IPPROTO_TCP = 6;

export const POLLIN = 0x001;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;

/** errno numbers (asm-generic). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOSPC: 28,
  ERANGE: 34,
  ENOSYS: 38,
  ENOTSUP: 95,
  EPROTONOSUPPORT: 93,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ECONNREFUSED: 111,
  EHOSTDOWN: 112,
  EHOSTUNREACH: 113,
  EMSGSIZE: 90,
  ENOBUFS: 105,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  EALREADY: 114,
  EINPROGRESS: 115,
  EOPNOTSUPP: 95,
  ENODATA: 61,
  EPROTO: 71,
  EBADMSG: 74,
  EOVERFLOW: 75,
  ENOTSOCK: 88,
  ENOPROTOOPT: 92,
} as const;

const ERRNO_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(Errno)) {
  // EOPNOTSUPP and ENOTSUP share 95; keep the first (ENOTSUP is the alias).
  if (name === "ENOTSUP") continue;
  if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name);
}

const ERRNO_TEXT: Record<string, string> = {
  EPERM: "Operation not permitted",
  EADDRINUSE: "Address already in use",
  ECONNREFUSED: "Connection refused",
  ETIMEDOUT: "Connection timed out",
  EINPROGRESS: "Operation now in progress",
  ENOTSOCK: "Socket operation on non-socket",
  ENOPROTOOPT: "Protocol not available",
  ENOENT: "No such file or directory",
  ESRCH: "No such process",
  EAGAIN: "Resource temporarily unavailable",
  ENOMEM: "Cannot allocate memory",
  EACCES: "Permission denied",
  EBUSY: "Device or resource busy",
  EEXIST: "File exists",
  ENODEV: "No such device",
  EINVAL: "Invalid argument",
  ERANGE: "Numerical result out of range",
  EOPNOTSUPP: "Operation not supported",
  EAFNOSUPPORT: "Address family not supported by protocol",
  EADDRNOTAVAIL: "Cannot assign requested address",
  ENETDOWN: "Network is down",
  ENETUNREACH: "Network is unreachable",
  EHOSTUNREACH: "No route to host",
  EMSGSIZE: "Message too long",
  ENOBUFS: "No buffer space available",
  EBADF: "Bad file descriptor",
  EPROTONOSUPPORT: "Protocol not supported",
  ENODATA: "No data available",
  EPROTO: "Protocol error",
  EBADMSG: "Bad message",
  EOVERFLOW: "Value too large for defined data type",
};

/** "ENETUNREACH" for 101; "E<n>" for a number without a name here. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

/** strerror(3)-like text for the errnos above; the name for others. */
export function errnoText(errno: number): string {
  const name = errnoName(errno);
  return ERRNO_TEXT[name] ?? name;
}

/** A failed libc call: `syscall` failed with `errno`. */
export class SysError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  constructor(syscall: string, errno: number) {
    super(`${syscall}: ${errnoName(errno)} (${errnoText(errno)})`);
    this.name = "SysError";
    this.errno = errno;
    this.code = errnoName(errno);
    this.syscall = syscall;
  }
}

// ---------------------------------------------------------------------------
// The library
// ---------------------------------------------------------------------------

function openLibc() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    // fcntl is variadic; (int, int, int) is passed the same way on x86_64 and aarch64 Linux.
    fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    if_nametoindex: { args: [FFIType.ptr], returns: FFIType.u32 },
    getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    send: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64_fast },
    recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64_fast },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    getpid: { args: [], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
}

type Libc = ReturnType<typeof openLibc>["symbols"];
let lib: Libc | null = null;

function libc(): Libc {
  if (!lib) lib = openLibc().symbols;
  return lib;
}

/** errno of the calling thread; read it right after the failing call. */
export function errno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : read.i32(p, 0);
}

function check(syscall: string, rc: number | bigint): number {
  const n = Number(rc);
  if (n < 0) throw new SysError(syscall, errno());
  return n;
}

export function socket(domain: number, type: number, protocol: number): number {
  return check("socket", libc().socket(domain, type, protocol));
}

export function bind(fd: number, addr: Uint8Array): void {
  check("bind", libc().bind(fd, addr, addr.byteLength));
}

/** getsockname(2) into a buffer of `size` bytes; returns the bytes filled. */
export function getsockname(fd: number, size: number): Uint8Array {
  const addr = new Uint8Array(size);
  const len = new Uint32Array([size]);
  check("getsockname", libc().getsockname(fd, addr, len));
  return addr.subarray(0, Math.min(size, len[0]!));
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const v = new Int32Array([value]);
  check("setsockopt", libc().setsockopt(fd, level, name, v, 4));
}

/** setsockopt without throwing: 0 on success, else the errno. */
export function trySetsockoptInt(fd: number, level: number, name: number, value: number): number {
  const v = new Int32Array([value]);
  const rc = libc().setsockopt(fd, level, name, v, 4);
  return rc < 0 ? errno() : 0;
}

export function getsockoptInt(fd: number, level: number, name: number): number {
  const v = new Int32Array(1);
  const len = new Uint32Array([4]);
  check("getsockopt", libc().getsockopt(fd, level, name, v, len));
  return v[0]!;
}

/**
 * send(2). Returns the bytes sent, or the negated errno (-EAGAIN,
 * -EMSGSIZE, -ENOBUFS, ...) instead of throwing, since callers handle those.
 */
export function send(fd: number, buf: Uint8Array, flags: number): number {
  const n = Number(libc().send(fd, buf, buf.byteLength, flags));
  return n < 0 ? -errno() : n;
}

/**
 * recv(2) into `buf`. Returns the byte count (with MSG_TRUNC: the real
 * datagram length), or the negated errno (-EAGAIN when nothing is queued).
 * Only call it with MSG_DONTWAIT (or off the main thread): a blocking
 * recv would stall the event loop.
 */
export function recv(fd: number, buf: Uint8Array, flags: number): number {
  const n = Number(libc().recv(fd, buf, buf.byteLength, flags));
  return n < 0 ? -errno() : n;
}

/**
 * connect(2) without throwing: 0 when connected at once, else the errno
 * (EINPROGRESS for a non-blocking socket whose handshake is under way).
 */
export function tryConnect(fd: number, addr: Uint8Array): number {
  const rc = libc().connect(fd, addr, addr.byteLength);
  return rc < 0 ? errno() : 0;
}

export function listen(fd: number, backlog: number): void {
  check("listen", libc().listen(fd, backlog));
}

/** setsockopt(2) with a buffer value. */
export function setsockoptBytes(fd: number, level: number, name: number, value: Uint8Array): void {
  check("setsockopt", libc().setsockopt(fd, level, name, value, value.byteLength));
}

/** setsockopt with a buffer, without throwing: 0 on success, else the errno. */
export function trySetsockoptBytes(fd: number, level: number, name: number, value: Uint8Array): number {
  const rc = libc().setsockopt(fd, level, name, value, value.byteLength);
  return rc < 0 ? errno() : 0;
}

/**
 * poll(2) of one fd with a zero timeout (never blocks): the revents bits
 * (POLLIN, POLLOUT, POLLERR, POLLHUP, POLLNVAL), 0 when nothing is ready.
 */
export function pollNow(fd: number, events: number): number {
  // struct pollfd { int fd; short events; short revents; } (little endian on x86_64 and aarch64)
  const pfd = new Uint8Array(8);
  const view = new DataView(pfd.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, events, true);
  const n = check("poll", libc().poll(pfd, 1, 0));
  return n === 0 ? 0 : view.getUint16(6, true);
}

/** A close-on-exec duplicate of `fd` (fcntl F_DUPFD_CLOEXEC). */
export function dupCloexec(fd: number): number {
  const F_DUPFD_CLOEXEC = 1030;
  return check("fcntl", libc().fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

/** The index of the interface named `name`, or 0 when there is none. */
export function ifNameToIndex(name: string): number {
  return libc().if_nametoindex(Buffer.from(`${name}\0`)) >>> 0;
}

export function close(fd: number): void {
  libc().close(fd);
}

export function getpid(): number {
  return libc().getpid();
}
