/**
 * Sending datagrams to a Unix datagram socket (AF_UNIX, SOCK_DGRAM), which
 * the runtime cannot do (node:dgram in Bun has no unix sockets): what the
 * systemd notification protocol needs (lib/core/sd-notify.ts). A path
 * starting with "@" is in the abstract namespace (a leading NUL byte), as
 * systemd spells NOTIFY_SOCKET. Built on the libc calls of ./libc.ts; the
 * socket is non-blocking, so a full receiver queue is an EAGAIN error, never
 * a stalled event loop.
 */
import { MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_NONBLOCK, SysError, close, send, socket, tryConnect } from "./libc.ts";

export const AF_UNIX = 1;
export const SOCK_DGRAM = 2;
/** sizeof(sun_path) on Linux. */
const SUN_PATH_MAX = 108;
/** MSG_NOSIGNAL: no SIGPIPE if the receiver went away. */
const MSG_NOSIGNAL = 0x4000;

/** struct sockaddr_un for `path` ("@name": abstract), with its exact length. */
export function sockaddrUn(path: string): Uint8Array {
  if (path === "" || path === "@") throw new Error("unix socket path is empty");
  const abstract = path.startsWith("@");
  const name = Buffer.from(abstract ? path.slice(1) : path);
  // Abstract: NUL + name (no terminator); a file path: name + NUL.
  const len = name.length + 1;
  if (len > SUN_PATH_MAX) throw new Error(`unix socket path too long (${name.length} bytes, at most ${SUN_PATH_MAX - 1}): ${path}`);
  const addr = new Uint8Array(2 + len);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, abstract ? 3 : 2);
  return addr;
}

/** A datagram socket connected to one Unix datagram socket address. */
export class UnixDatagramSender {
  private fd: number;

  /** Connect to `path`; throws SysError (ENOENT, ECONNREFUSED, EACCES, ...) naming the path. */
  constructor(readonly path: string) {
    const addr = sockaddrUn(path);
    this.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    const err = tryConnect(this.fd, addr);
    if (err !== 0) {
      close(this.fd);
      this.fd = -1;
      throw withPath(new SysError("connect", err), path);
    }
  }

  /** Send one datagram; throws SysError (EAGAIN when the receiver's queue is full, ECONNREFUSED when it is gone). */
  send(data: Uint8Array | string): void {
    if (this.fd < 0) throw new Error(`unix datagram socket ${this.path} is closed`);
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    const n = send(this.fd, buf, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) throw withPath(new SysError("send", -n), this.path);
    if (n !== buf.byteLength) throw new Error(`unix datagram socket ${this.path}: sent ${n} of ${buf.byteLength} bytes`);
  }

  close(): void {
    if (this.fd >= 0) close(this.fd);
    this.fd = -1;
  }
}

function withPath(e: SysError, path: string): SysError {
  e.message = `${path}: ${e.message}`;
  return e;
}
