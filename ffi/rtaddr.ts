/**
 * Interface addresses over rtnetlink: add and delete one address on a link
 * (RTM_NEWADDR / RTM_DELADDR, `ip addr add|del ADDR/LEN dev IF`), for the
 * health checks' `loopback: true` (lib/router/health-glue.ts). Reuses the
 * netlink writer (ffi/rtmsg.ts) and the event-loop socket (ffi/rtnetlink.ts):
 * requests go out with NLM_F_ACK and the answer (an NLMSG_ERROR, errno 0 for
 * success) is matched by sequence number; nothing blocks.
 *
 * An add is NLM_F_CREATE|NLM_F_EXCL, so an address that is already there is
 * reported as "present" (EEXIST) and never taken for ours: the caller deletes
 * only what it added. A delete of an address that is not there is "absent"
 * (EADDRNOTAVAIL). Other errors reject with the errno and the kernel's text.
 */
import { formatAddr, parseAddr } from "../lib/core/addr.ts";
import * as libc from "./libc.ts";
import { NLMSG_ERROR, decodeError, encodeAddressOp as encodeKernelAddressOp, parseMessages } from "./rtmsg.ts";
import { NlSocket } from "./rtnetlink.ts";

const EEXIST = 17;
const EADDRNOTAVAIL = 99;
/** Longest wait for the kernel's answer. */
const REPLY_TIMEOUT_MS = 5000;

/**
 * RTM_NEWADDR (`add`, create-exclusive) or RTM_DELADDR for `address` (text)
 * with `prefixLength` on interface `ifindex`, with NLM_F_ACK: ffi/rtmsg.ts's
 * encoder; pure (unit-tested).
 */
export function encodeAddressOp(op: "add" | "del", ifindex: number, address: string, prefixLength: number, seq: number): Uint8Array {
  const a = parseAddr(address);
  if (!a) throw new Error(`invalid address "${address}"`);
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > a.addr.length * 8) throw new Error(`invalid prefix length ${prefixLength} for ${address}`);
  const family = a.addr.length === 16 ? 6 : 4;
  return encodeKernelAddressOp({ op: op === "add" ? "add" : "delete", exclusive: true, address: { family, ifindex, address: formatAddr(a.afi, a.addr), prefixLength } }, seq);
}

/** One request socket for address changes; `close()` when done. */
export class AddressNetlink {
  private seq = Math.floor(Math.random() * 0x3fffffff) + 1;
  private readonly waiting = new Map<number, { done: (errno: number, text: string) => void; timer: ReturnType<typeof setTimeout> }>();
  private sock: NlSocket | null = null;

  private constructor() {}

  static async open(): Promise<AddressNetlink> {
    const n = new AddressNetlink();
    n.sock = await NlSocket.open({ groups: [], rcvbuf: 1 << 16, request: true }, { data: (d) => n.onData(d), closed: (e) => n.onClosed(e) });
    return n;
  }

  /** The index of an interface by name (throws when there is none). */
  static ifindex(name: string): number {
    const i = libc.ifNameToIndex(name);
    if (!i) throw new Error(`no interface named ${name}`);
    return i;
  }

  /** Add `address/prefixLength` to the link; "present" when it was already there (not ours). */
  async add(ifindex: number, address: string, prefixLength: number): Promise<"added" | "present"> {
    const errno = await this.request("add", ifindex, address, prefixLength);
    return errno === EEXIST ? "present" : "added";
  }

  /** Remove it; "absent" when it was not there. */
  async remove(ifindex: number, address: string, prefixLength: number): Promise<"removed" | "absent"> {
    const errno = await this.request("del", ifindex, address, prefixLength);
    return errno === EADDRNOTAVAIL || errno === libc.Errno.ENODEV ? "absent" : "removed";
  }

  close(): void {
    this.sock?.close();
    this.sock = null;
    this.failAll("closed");
  }

  /** Send one request; resolves with 0 or an errno the caller understands (EEXIST, EADDRNOTAVAIL), rejects on others. */
  private request(op: "add" | "del", ifindex: number, address: string, prefixLength: number): Promise<number> {
    const sock = this.sock;
    if (!sock?.alive) return Promise.reject(new Error("address netlink socket is closed"));
    const seq = (this.seq = (this.seq % 0x7fffffff) + 1);
    const buf = encodeAddressOp(op, ifindex, address, prefixLength, seq);
    const what = `${op === "add" ? "add" : "delete"} ${formatAddr(parseAddr(address)!.afi, parseAddr(address)!.addr)}/${prefixLength} on ifindex ${ifindex}`;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(seq);
        reject(new Error(`${what}: no answer from the kernel in ${REPLY_TIMEOUT_MS} ms`));
      }, REPLY_TIMEOUT_MS);
      this.waiting.set(seq, {
        timer,
        done: (errno, text) => {
          if (errno === 0 || errno === EEXIST || errno === EADDRNOTAVAIL || errno === libc.Errno.ENODEV) resolve(errno);
          else reject(new Error(`${what}: ${libc.errnoText(errno)}${text ? ` (${text})` : ""}`));
        },
      });
      const err = sock.send(buf);
      if (err !== 0) this.finish(seq, err, "send failed");
    });
  }

  private finish(seq: number, errno: number, text: string): void {
    const w = this.waiting.get(seq);
    if (!w) return;
    this.waiting.delete(seq);
    clearTimeout(w.timer);
    w.done(errno, text);
  }

  private onData(d: Uint8Array): void {
    for (const m of parseMessages(d)) {
      if (m.type !== NLMSG_ERROR) continue;
      const ack = decodeError(m);
      this.finish(m.seq, ack.errno, ack.message);
    }
  }

  private onClosed(e: { code?: string; errno?: number } | undefined): void {
    this.sock = null;
    this.failAll(`closed by the runtime${e?.code ? ` (${e.code})` : ""}`);
  }

  private failAll(why: string): void {
    for (const seq of [...this.waiting.keys()]) this.finish(seq, libc.Errno.EBADF, why);
  }
}
