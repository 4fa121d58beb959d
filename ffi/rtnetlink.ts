/**
 * The Linux kernel behind the FIB reconciler: `RtNetlink implements Kernel`
 * (lib/fib/types.ts) over NETLINK_ROUTE sockets.
 *
 * - A request socket (SOCK_RAW|SOCK_CLOEXEC|SOCK_NONBLOCK, NETLINK_EXT_ACK,
 *   NETLINK_GET_STRICT_CHK, NETLINK_CAP_ACK, buffers raised with
 *   SO_*BUFFORCE when allowed) handed to the event loop with
 *   `Bun.connect({fd})`, so replies arrive as `data` callbacks (one datagram
 *   each) and nothing ever blocks. Requests go out with a non-blocking
 *   `send`, one at a time: an apply() batch is many route messages in one
 *   send (bounded by bytes, under the send buffer, and by count, so that an
 *   error reply for every one of them still fits the receive buffer), with
 *   NLM_F_ACK on the last message only. The kernel handles a send in order
 *   and answers errors even without NLM_F_ACK, so the batch is complete when
 *   the last message's reply arrives, and every error before it is mapped
 *   back to its operation by sequence number.
 *   The kernel does the work of every message inside the send call, and an
 *   IPv4 table of hundreds of thousands of routes now and then rebalances
 *   its trie inside one (hundreds of ms, however few messages it holds), so
 *   the send(2) of apply() batches runs on a sender thread (a Worker,
 *   started by the first apply()), never on the event loop; replies still
 *   arrive on the loop. Dumps and lookups, cheap to send, go out directly. A send holds at most
 *   SENDER_SEND_MESSAGES messages (what the loop encodes in a few ms); only
 *   if the thread cannot be started, sends run on the loop and are sized by
 *   time instead, adapting to what the last sends cost (SEND_BUDGET_MS each).
 * - A multicast socket (routes, links, addresses of both families) with a
 *   large receive buffer, opened by `open({groups: true})` or the first
 *   watch(). When it overflows (ENOBUFS; the runtime then closes it) watchers
 *   get `{type: "overrun"}` and a fresh socket is opened: resync with a dump.
 *   A socket filter (classic BPF) drops, in the kernel, the notifications of
 *   changes made through our own request socket (their nlmsg_pid is its port
 *   id): the caller has their outcome from apply(), and the runtime reads one
 *   datagram per event-loop turn, so echoing a full table would overflow any
 *   buffer. Watchers get one `{type: "applied"}` per apply() that changed
 *   something instead. Other processes' changes are reported as before.
 * - Dumps are decoded datagram by datagram as the replies arrive (one per
 *   event-loop turn), not copied and decoded at the end in one long turn.
 *
 * - The overlay's requests (`LinkKernel`: VXLAN device, neighbour and FDB
 *   entries, addresses) go on the same request socket, one transaction each
 *   (neighbour batches: up to NEIGH_BATCH messages per send, each acked).
 *
 * Wire encoding and decoding live in ffi/rtmsg.ts (pure, unit-tested).
 */
import type { Socket } from "bun";
import { ptr } from "bun:ffi";
import type {
  AddressOp,
  FibFamily,
  Kernel,
  KernelAddress,
  KernelError,
  KernelEvent,
  KernelLink,
  KernelLookup,
  KernelNeighbor,
  KernelOp,
  KernelRoute,
  LinkKernel,
  LinkOp,
  NeighborOp,
} from "../lib/fib/types.ts";
import * as libc from "./libc.ts";
import {
  decodeAddress,
  decodeDone,
  decodeError,
  decodeEvent,
  decodeLink,
  decodeNeighbor,
  decodeRoute,
  encodeAddressDump,
  encodeAddressOp,
  encodeLinkDump,
  encodeLinkOp,
  encodeNeighborDump,
  encodeRouteDump,
  encodeRouteGet,
  NetlinkDecodeError,
  NetlinkEncodeError,
  type NlAck,
  type NlMessage,
  NlWriter,
  NLM_F_ACK,
  NLM_F_DUMP_INTR,
  NLMSG_DONE,
  NLMSG_ERROR,
  parseMessages,
  RTM_F_CLONED,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_NEWROUTE,
  RTNLGRP_IPV4_IFADDR,
  RTNLGRP_IPV4_ROUTE,
  RTNLGRP_IPV6_IFADDR,
  RTNLGRP_IPV6_ROUTE,
  RTNLGRP_LINK,
  routeFlags,
  writeNeighborOp,
  writeRouteOp,
} from "./rtmsg.ts";

const NETLINK_ROUTE = 0;
const SOL_NETLINK = 270;
const NETLINK_ADD_MEMBERSHIP = 1;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const NETLINK_GET_STRICT_CHK = 12;

const MiB = 1 << 20;
const SO_ATTACH_FILTER = 26;
/** Kernel time one send may take (ms): the messages per send adapt to it. */
const SEND_BUDGET_MS = 4;
/** Messages in the first send on the event loop, before any has been timed. */
const FIRST_SEND_MESSAGES = 256;
/** Messages per send with the sender thread (bounded by the encoding the event loop does per send). */
const SENDER_SEND_MESSAGES = 4096;
/** Neighbour/FDB messages per send (each acked: the replies must fit the receive buffer). */
const NEIGH_BATCH = 256;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A classic BPF program for a multicast socket: drop messages whose
 * nlmsg_pid is `portId` (notifications of our own requests), accept the rest.
 * Notifications are one message per datagram, so the header is at offset 0.
 */
function ownChangesFilter(portId: number): Uint8Array {
  // BPF_LD|BPF_W|BPF_ABS reads in network byte order; nlmsg_pid is in host order.
  const k = LITTLE_ENDIAN ? (((portId & 0xff) << 24) | ((portId & 0xff00) << 8) | ((portId >>> 8) & 0xff00) | (portId >>> 24)) >>> 0 : portId >>> 0;
  const prog: [number, number, number, number][] = [
    [0x20, 0, 0, 12], // ld [12]        (nlmsg_pid)
    [0x15, 0, 1, k], // jeq #k, drop, accept
    [0x06, 0, 0, 0], // drop: ret #0
    [0x06, 0, 0, 0xffffffff], // accept: ret #-1
  ];
  const code = new Uint8Array(prog.length * 8);
  const dv = new DataView(code.buffer);
  prog.forEach(([op, jt, jf, kk], i) => {
    dv.setUint16(i * 8, op, true);
    dv.setUint8(i * 8 + 2, jt);
    dv.setUint8(i * 8 + 3, jf);
    dv.setUint32(i * 8 + 4, kk, true);
  });
  return code;
}

export interface RtNetlinkOptions {
  /** Open the multicast socket now (default: on the first watch()). */
  groups?: boolean;
  /**
   * The multicast groups to join (default: routes, links and addresses of
   * both families). The overlay takes links and addresses only: route
   * events of a full table are not its business.
   */
  eventGroups?: number[];
  /** Receive buffer of the multicast socket, bytes (default 64 MiB; capped by net.core.rmem_max without CAP_NET_ADMIN). */
  rcvbuf?: number;
  /** Receive buffer of the request socket, bytes (default 32 MiB; without CAP_NET_ADMIN capped by net.core.rmem_max). */
  requestRcvbuf?: number;
  /** Largest send, bytes (default 256 KiB; always kept under the socket's send buffer). */
  batchBytes?: number;
  /** How long to wait for the kernel's reply to one send or dump, ms (default 60 s). */
  timeoutMs?: number;
}

/** A kernel error thrown by dumps (apply() returns them instead). */
export class NetlinkError extends Error implements KernelError {
  readonly errno: number;
  readonly code: string;
  constructor(e: KernelError, what: string) {
    super(`${what}: ${e.code}${e.message ? ` (${e.message})` : ""}`);
    this.name = "NetlinkError";
    this.errno = e.errno;
    this.code = e.code;
  }
}

export function kernelError(errno: number, message = ""): KernelError {
  return { errno, code: libc.errnoName(errno), message: message || libc.errnoText(errno) };
}

function ackError(a: NlAck): KernelError {
  return kernelError(a.errno, a.message);
}

// ---------------------------------------------------------------------------
// One netlink socket on the event loop
// ---------------------------------------------------------------------------

export interface NlSocketHandlers {
  data(buf: Uint8Array): void;
  /** The runtime closed the socket (error set on a read error, e.g. ENOBUFS). */
  closed(error: { code?: string; errno?: number } | undefined): void;
}

function setBuf(fd: number, force: number, plain: number, bytes: number): number {
  if (libc.trySetsockoptInt(fd, libc.SOL_SOCKET, force, bytes) !== 0) libc.trySetsockoptInt(fd, libc.SOL_SOCKET, plain, bytes);
  return libc.getsockoptInt(fd, libc.SOL_SOCKET, plain);
}

/** Exported for ffi/rtaddr.ts (interface addresses), which reuses it. */
export class NlSocket {
  /** The receive and send buffer sizes the kernel granted (getsockopt: twice the request). */
  rcvbuf = 0;
  sndbuf = 0;
  portId = 0;
  private sock: Socket<undefined> | null = null;
  private dead = false;

  private constructor(
    readonly fd: number,
    private readonly h: NlSocketHandlers,
  ) {}

  static async open(o: { groups: number[]; rcvbuf: number; sndbuf?: number; request: boolean }, h: NlSocketHandlers): Promise<NlSocket> {
    const fd = libc.socket(16 /* AF_NETLINK */, libc.SOCK_RAW | libc.SOCK_CLOEXEC | libc.SOCK_NONBLOCK, NETLINK_ROUTE);
    const s = new NlSocket(fd, h);
    try {
      if (o.request) {
        libc.trySetsockoptInt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
        libc.trySetsockoptInt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
        const strict = libc.trySetsockoptInt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
        if (strict !== 0) throw new libc.SysError("setsockopt(NETLINK_GET_STRICT_CHK)", strict);
      }
      s.rcvbuf = setBuf(fd, libc.SO_RCVBUFFORCE, libc.SO_RCVBUF, o.rcvbuf);
      s.sndbuf = o.sndbuf ? setBuf(fd, libc.SO_SNDBUFFORCE, libc.SO_SNDBUF, o.sndbuf) : libc.getsockoptInt(fd, libc.SOL_SOCKET, libc.SO_SNDBUF);
      const sa = new Uint8Array(12); // sockaddr_nl: family, pad, pid 0 (kernel assigns), groups 0
      new DataView(sa.buffer).setUint16(0, 16, true);
      libc.bind(fd, sa);
      s.portId = new DataView(libc.getsockname(fd, 12).slice().buffer).getUint32(4, true);
      for (const g of o.groups) libc.setsockoptInt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, g);
      // Bun's typings only list TCP and unix options for connect; {fd} is supported (see PLATFORM.md).
      const connect = Bun.connect as unknown as (opts: { fd: number; socket: Record<string, unknown> }) => Promise<Socket<undefined>>;
      s.sock = await connect({
        fd,
        socket: {
          data: (_s: Socket<undefined>, d: Uint8Array) => {
            if (!s.dead) h.data(d);
          },
          error: (_s: Socket<undefined>, e: { code?: string; errno?: number }) => s.onClosed(e),
          close: (_s: Socket<undefined>, e?: { code?: string; errno?: number }) => s.onClosed(e),
          end: () => s.onClosed({ code: "EOF" }),
        },
      });
      if (s.dead) throw new Error("netlink socket closed while opening");
    } catch (e) {
      if (!s.sock) libc.close(fd);
      s.dead = true;
      throw e;
    }
    return s;
  }

  private onClosed(e: { code?: string; errno?: number } | undefined): void {
    if (this.dead) return;
    this.dead = true;
    // The runtime owns the fd now and has closed it: never close() that number again.
    this.sock = null;
    this.h.closed(e);
  }

  get alive(): boolean {
    return !this.dead;
  }

  /** Non-blocking send of one buffer (many messages); 0 or the errno. */
  send(buf: Uint8Array): number {
    if (this.dead) return libc.Errno.EBADF;
    const n = libc.send(this.fd, buf, libc.MSG_DONTWAIT);
    return n < 0 ? -n : 0;
  }

  /** The same on the sender thread: the event loop goes on while the kernel works. */
  async sendOn(sender: Sender, buf: Uint8Array): Promise<SendResult> {
    if (this.dead) return { err: libc.Errno.EBADF, ms: 0 };
    return sender.send(this.fd, buf);
  }

  /** Drop notifications of changes made by the socket with this port id (SO_ATTACH_FILTER); 0 or the errno. */
  ignorePort(portId: number): number {
    if (this.dead) return libc.Errno.EBADF;
    const code = ownChangesFilter(portId);
    // struct sock_fprog { unsigned short len; struct sock_filter *filter; } (64-bit: pointer at offset 8).
    const fprog = new Uint8Array(16);
    const dv = new DataView(fprog.buffer);
    dv.setUint16(0, code.byteLength / 8, true);
    dv.setBigUint64(8, BigInt(ptr(code)), true);
    return libc.trySetsockoptBytes(this.fd, libc.SOL_SOCKET, SO_ATTACH_FILTER, fprog);
  }

  close(): void {
    if (this.dead) return;
    this.dead = true;
    if (this.sock) this.sock.terminate();
    else libc.close(this.fd);
    this.sock = null;
  }
}

// ---------------------------------------------------------------------------
// The sender thread
// ---------------------------------------------------------------------------

/**
 * The sender thread's program: send(2) one buffer on a netlink socket and
 * answer with the errno (0: sent) and how long the call took. Self-contained
 * (it opens libc itself) so that it runs from a Blob URL, also inside a
 * compiled binary.
 */
const SENDER_SOURCE = `
import { dlopen, FFIType, read } from "bun:ffi";
const c = dlopen("libc.so.6", {
  send: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64_fast },
  __errno_location: { args: [], returns: FFIType.ptr },
}).symbols;
self.onmessage = (e) => {
  const { id, fd, buf } = e.data;
  const t0 = performance.now();
  const n = Number(c.send(fd, buf, buf.byteLength, ${libc.MSG_DONTWAIT}));
  const err = n < 0 ? read.i32(c.__errno_location(), 0) : 0;
  postMessage({ id, err, ms: performance.now() - t0 });
};
`;

interface SendResult {
  /** 0 when sent, else the errno. */
  err: number;
  /** Duration of the send call (the kernel's work on the messages). */
  ms: number;
}

/** send(2) on a Worker, one call at a time in order; the event loop only waits for the answer. */
class Sender {
  private readonly worker: Worker;
  private readonly pending = new Map<number, (r: SendResult) => void>();
  private nextId = 1;

  constructor() {
    this.worker = new Worker(URL.createObjectURL(new Blob([SENDER_SOURCE], { type: "application/javascript" })));
    this.worker.unref();
    this.worker.onmessage = (e: MessageEvent<{ id: number } & SendResult>) => {
      const done = this.pending.get(e.data.id);
      this.pending.delete(e.data.id);
      done?.({ err: e.data.err, ms: e.data.ms });
    };
    this.worker.onerror = (e) => {
      // The thread died: every send waiting for it fails (the request times out or fails at once).
      process.stderr.write(`rtnetlink: sender thread failed: ${e.message}\n`);
      for (const done of this.pending.values()) done({ err: libc.Errno.EIO, ms: 0 });
      this.pending.clear();
    };
  }

  /** Send a copy of `buf` on `fd`. */
  send(fd: number, buf: Uint8Array): Promise<SendResult> {
    const id = this.nextId++;
    const copy = buf.slice();
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.worker.postMessage({ id, fd, buf: copy }, [copy.buffer]);
    });
  }

  close(): void {
    this.worker.terminate();
    for (const done of this.pending.values()) done({ err: libc.Errno.EBADF, ms: 0 });
    this.pending.clear();
  }
}

// ---------------------------------------------------------------------------
// RtNetlink
// ---------------------------------------------------------------------------

/** The request in flight on the request socket: replies with seq in [firstSeq, firstSeq+count). */
interface InFlight {
  firstSeq: number;
  count: number;
  /** Handle one reply (index = seq - firstSeq); true when the request is complete. */
  onMessage(m: NlMessage, index: number): boolean;
  fail(e: KernelError): void;
  done(): void;
}

export class RtNetlink implements Kernel, LinkKernel {
  private req: NlSocket | null = null;
  private reqOpening: Promise<NlSocket> | null = null;
  private mc: NlSocket | null = null;
  private mcOpening = false;
  private mcRetry: ReturnType<typeof setTimeout> | null = null;
  private readonly watchers = new Set<(e: KernelEvent) => void>();
  private seq: number;
  private inflight: InFlight | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Requests run one at a time (one dump per socket at a time; replies must fit the receive buffer). */
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private batchBytes: number;
  private maxBatchMessages = 1;
  /** Messages per send: SENDER_SEND_MESSAGES, or without the sender thread adapted so that one send costs about SEND_BUDGET_MS of kernel time. */
  private sendMessages = FIRST_SEND_MESSAGES;
  /** Duration of the last send call (ms). */
  private lastSendMs = 0;
  /** The sender thread (started by the first apply()); null before, or when it cannot be started. */
  private sender: Sender | null = null;
  private senderFailed = false;
  private readonly timeoutMs: number;
  private readonly mcRcvbuf: number;
  private readonly reqRcvbuf: number;
  private readonly eventGroups: number[];

  private constructor(opts: RtNetlinkOptions) {
    this.seq = (Math.floor(Math.random() * 0x7fffffff) + 1) >>> 0;
    this.batchBytes = opts.batchBytes ?? 256 * 1024;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.mcRcvbuf = opts.rcvbuf ?? 64 * MiB;
    this.reqRcvbuf = opts.requestRcvbuf ?? 32 * MiB;
    this.eventGroups = opts.eventGroups ?? [RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR];
  }

  static async open(opts: RtNetlinkOptions = {}): Promise<RtNetlink> {
    const k = new RtNetlink(opts);
    await k.requestSocket();
    if (opts.groups) k.openMulticast();
    return k;
  }

  /** Sizes in use: bytes per send, messages per send, socket buffers (for diagnostics and tests). */
  get limits(): { batchBytes: number; maxBatchMessages: number; sendMessages: number; senderThread: boolean; rcvbuf: number; sndbuf: number; multicastRcvbuf: number } {
    return {
      senderThread: this.sender !== null,
      batchBytes: this.batchBytes,
      maxBatchMessages: this.maxBatchMessages,
      sendMessages: this.sendMessages,
      rcvbuf: this.req?.rcvbuf ?? 0,
      sndbuf: this.req?.sndbuf ?? 0,
      multicastRcvbuf: this.mc?.rcvbuf ?? 0,
    };
  }

  // -- request socket -------------------------------------------------------

  private requestSocket(): Promise<NlSocket> {
    if (this.closed) return Promise.reject(new Error("rtnetlink: closed"));
    if (this.req?.alive) return Promise.resolve(this.req);
    if (!this.reqOpening) {
      this.reqOpening = NlSocket.open(
        { groups: [], rcvbuf: this.reqRcvbuf, sndbuf: 4 * MiB, request: true },
        {
          data: (d) => this.onReply(d),
          closed: (e) => {
            this.req = null;
            if (this.closed) return;
            const errno = e?.code === "ENOBUFS" ? libc.Errno.ENOBUFS : libc.Errno.EIO;
            this.failInflight(kernelError(errno, `netlink request socket closed (${e?.code ?? "closed"}): outcome unknown`));
          },
        },
      ).then(
        (s) => {
          this.reqOpening = null;
          if (this.closed) {
            s.close();
            throw new Error("rtnetlink: closed");
          }
          this.req = s;
          // Keep one send under the send buffer (the kernel refuses len > sndbuf - 32 with EMSGSIZE) ...
          this.batchBytes = Math.max(1024, Math.min(this.batchBytes, s.sndbuf - 256));
          // ... and the replies to it under the receive buffer: an error reply costs ~1 KiB of
          // buffer accounting (skb truesize) whatever its length.
          this.maxBatchMessages = Math.max(1, Math.floor(s.rcvbuf / 2048));
          this.filterOwn();
          return s;
        },
        (e) => {
          this.reqOpening = null;
          throw e;
        },
      );
    }
    return this.reqOpening;
  }

  private onReply(d: Uint8Array): void {
    const f = this.inflight;
    let msgs: NlMessage[];
    try {
      msgs = parseMessages(d);
    } catch (e) {
      if (f) this.failInflight(kernelError(libc.Errno.EBADMSG, `bad netlink reply: ${(e as Error).message}`));
      return;
    }
    if (!f) return; // a late reply to a request that timed out
    for (const m of msgs) {
      const index = (m.seq - f.firstSeq) >>> 0;
      if (index >= f.count) continue;
      let complete: boolean;
      try {
        complete = f.onMessage(m, index);
      } catch (e) {
        this.failInflight(kernelError(libc.Errno.EBADMSG, `bad netlink reply: ${(e as Error).message}`));
        return;
      }
      if (complete) {
        this.finishInflight();
        f.done();
        return;
      }
    }
  }

  private finishInflight(): void {
    this.inflight = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private failInflight(e: KernelError): void {
    const f = this.inflight;
    if (!f) return;
    this.finishInflight();
    f.fail(e);
  }

  /** Queue `run` behind earlier requests. */
  private serial<T>(run: () => Promise<T>): Promise<T> {
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Send `buf` and drive `f` until it completes or fails (one request in flight). */
  /** `offLoop`: send on the sender thread (route changes: the kernel's work happens inside the send). */
  private transact(buf: Uint8Array, f: Omit<InFlight, "done" | "fail">, offLoop = false): Promise<KernelError | null> {
    return this.serial(async () => {
      let sock: NlSocket;
      try {
        sock = await this.requestSocket();
      } catch (e) {
        return kernelError(this.closed ? libc.Errno.EBADF : e instanceof libc.SysError ? e.errno : libc.Errno.EIO, `netlink socket: ${(e as Error).message}`);
      }
      return new Promise<KernelError | null>((resolve) => {
        // Complete with the last reply. On the sender thread the send call has returned by then (the kernel
        // queues the replies inside it) or is returning; sends stay in order (the thread takes them in turn).
        const inflight: InFlight = { ...f, done: () => resolve(null), fail: (e) => resolve(e) };
        this.inflight = inflight;
        this.timer = setTimeout(() => {
          // Start over on a fresh socket: an unfinished dump would leave this one busy (EBUSY).
          this.req?.close();
          this.req = null;
          this.failInflight(kernelError(libc.Errno.ETIMEDOUT, "no reply from the kernel"));
        }, this.timeoutMs);
        const onSent = (r: SendResult) => {
          this.lastSendMs = r.ms;
          if (r.err && this.inflight === inflight) this.failInflight(kernelError(r.err, `send: ${libc.errnoText(r.err)}`));
        };
        const sender = offLoop ? this.sender : null;
        if (sender) void sock.sendOn(sender, buf).then(onSent);
        else {
          const t0 = performance.now();
          const err = sock.send(buf);
          onSent({ err, ms: performance.now() - t0 });
        }
      });
    });
  }

  /** The sender thread for apply() batches, started on first use; null if it cannot be (sends then run on the event loop). */
  private startSender(): Sender | null {
    if (this.sender || this.senderFailed || this.closed) return this.sender;
    try {
      this.sender = new Sender();
      this.sendMessages = SENDER_SEND_MESSAGES;
    } catch (e) {
      this.senderFailed = true;
      process.stderr.write(`rtnetlink: no sender thread (${(e as Error).message}): sends run on the event loop\n`);
    }
    return this.sender;
  }

  private nextSeq(): number {
    const s = this.seq;
    this.seq = (this.seq + 1) >>> 0 || 1;
    return s;
  }

  // -- Kernel ---------------------------------------------------------------

  async apply(ops: KernelOp[]): Promise<(KernelError | null)[]> {
    const results: (KernelError | null)[] = new Array<KernelError | null>(ops.length).fill(null);
    if (this.closed) return results.map(() => kernelError(libc.Errno.EBADF, "rtnetlink: closed"));
    this.startSender();
    const w = new NlWriter(Math.min(this.batchBytes + 4096, 1 << 20));
    let i = 0;
    let changed = false;
    while (i < ops.length) {
      w.reset();
      const indices: number[] = [];
      let lastStart = -1;
      // Sequence numbers are consecutive within a batch: reserve them as we go.
      const firstSeq = this.seq;
      let seq = firstSeq;
      const limitBytes = this.batchBytes;
      const limitMsgs = Math.min(this.maxBatchMessages, this.sendMessages);
      while (i < ops.length && indices.length < limitMsgs) {
        const before = w.off;
        let start: number;
        try {
          start = writeRouteOp(w, ops[i]!, seq);
        } catch (e) {
          if (!(e instanceof NetlinkEncodeError)) throw e;
          results[i] = kernelError(libc.Errno.EINVAL, `bgpctl: ${e.message}`);
          i++;
          continue;
        }
        if (w.off > limitBytes && indices.length > 0) {
          w.off = before;
          break;
        }
        lastStart = start;
        indices.push(i);
        seq = (seq + 1) >>> 0 || 1;
        i++;
      }
      if (!indices.length) continue;
      this.seq = seq;
      w.orFlags(lastStart, NLM_F_ACK);
      const count = indices.length;
      const { err, batch } = await this.sendBatch(w, firstSeq, count, false);
      if (err?.errno === libc.Errno.EMSGSIZE && count > 1 && this.batchBytes > 1024) {
        // The send buffer is smaller than we thought: halve and redo this batch.
        this.batchBytes = Math.max(1024, this.batchBytes >> 1);
        i = indices[0]!;
        continue;
      }
      if (!err) this.adaptSend(count);
      for (let k = 0; k < count; k++) {
        const r = err ? (batch[k] ?? err) : batch[k]!;
        results[indices[k]!] = r;
        if (r === null) changed = true;
      }
    }
    if (changed) this.emit({ type: "applied" });
    return results;
  }

  /**
   * Send the batch in `w` (`count` messages numbered from `firstSeq`) and
   * collect the kernel's per-message errors. `eachAcked`: every message asks
   * for an ACK (done when all are in); else only the last does (done at its
   * ACK; errors come back anyway), and the send may go to the sender thread.
   */
  private async sendBatch(w: NlWriter, firstSeq: number, count: number, eachAcked: boolean): Promise<{ err: KernelError | null; batch: (KernelError | null)[] }> {
    const batch: (KernelError | null)[] = new Array<KernelError | null>(count).fill(null);
    let answered = 0;
    const err = await this.transact(
      w.buf.subarray(0, w.off),
      {
        firstSeq,
        count,
        onMessage(m, index) {
          if (m.type !== NLMSG_ERROR) return false;
          const a = decodeError(m);
          if (a.errno) batch[index] = ackError(a);
          return eachAcked ? ++answered === count : index === count - 1;
        },
      },
      !eachAcked,
    );
    return { err, batch };
  }

  /** Size the next sends from the cost of the last one (`count` messages): about SEND_BUDGET_MS each. */
  private adaptSend(count: number): void {
    if (this.sender) return; // the kernel's time is the sender thread's, not the event loop's
    if (count < 16 || this.lastSendMs <= 0) return;
    const fit = Math.floor((SEND_BUDGET_MS * count) / this.lastSendMs);
    // Halfway to what fits, at most doubling per send: one slow send (a busy kernel) does not swing it.
    const next = Math.min(this.sendMessages * 2, Math.floor((this.sendMessages + fit) / 2));
    this.sendMessages = Math.max(16, Math.min(this.maxBatchMessages, next));
  }

  /**
   * Run a dump: `decode` turns every data message into an item (or null to
   * skip it) as its datagram arrives. Retries (up to 3 times) when the kernel
   * marks it interrupted, starting over with an empty list.
   */
  private async dump<T>(request: (seq: number) => Uint8Array, decode: (m: NlMessage) => T | null, what: string): Promise<T[]> {
    for (let attempt = 0; ; attempt++) {
      const items: T[] = [];
      const st: { interrupted: boolean; failure: KernelError | null } = { interrupted: false, failure: null };
      const seq = this.nextSeq();
      const err = await this.transact(request(seq), {
        firstSeq: seq,
        count: 1,
        onMessage(m) {
          if (m.flags & NLM_F_DUMP_INTR) st.interrupted = true;
          if (m.type === NLMSG_DONE) {
            const a = decodeDone(m);
            if (a.errno) st.failure = ackError(a);
            return true;
          }
          if (m.type === NLMSG_ERROR) {
            const a = decodeError(m);
            if (a.errno) st.failure = ackError(a);
            return true;
          }
          // Decoded now: the runtime may reuse the datagram buffer after the callback.
          const x = decode(m);
          if (x !== null) items.push(x);
          return false;
        },
      });
      const e = err ?? st.failure;
      if (e) throw new NetlinkError(e, what);
      if (st.interrupted && attempt < 3) continue;
      return items;
    }
  }

  async dumpRoutes(family: FibFamily, filter: { table?: number; protocol?: number } = {}): Promise<KernelRoute[]> {
    try {
      return await this.dump(
        (seq) => encodeRouteDump(family, seq, filter),
        (m) => {
          if (m.type !== RTM_NEWROUTE || routeFlags(m) & RTM_F_CLONED) return null;
          const r = decodeRoute(m);
          if (!r || r.family !== family) return null;
          // The kernel filters (strict checking); filtering again costs nothing and guards older kernels.
          if (filter.table !== undefined && r.table !== filter.table) return null;
          if (filter.protocol !== undefined && filter.protocol !== 0 && r.protocol !== filter.protocol) return null;
          return r;
        },
        `dump IPv${family} routes`,
      );
    } catch (e) {
      // A filter on a table that does not exist (yet): "FIB table does not exist".
      if (e instanceof NetlinkError && e.errno === libc.Errno.ENOENT && filter.table !== undefined) return [];
      throw e;
    }
  }

  /**
   * `ip route get ADDR fibmatch`: the FIB entry the kernel would use for
   * `addr` (4 or 16 bytes), or its error (ENETUNREACH when no route matches;
   * EHOSTUNREACH / EINVAL / EACCES for unreachable / blackhole / prohibit
   * routes). One request on the request socket, queued like any other.
   */
  async lookupRoute(family: FibFamily, addr: Uint8Array): Promise<KernelLookup> {
    const seq = this.nextSeq();
    let req: Uint8Array;
    try {
      req = encodeRouteGet(family, addr, seq);
    } catch (e) {
      if (!(e instanceof NetlinkEncodeError)) throw e;
      return { error: kernelError(libc.Errno.EINVAL, `bgpctl: ${e.message}`) };
    }
    let found: KernelRoute | null = null;
    let failure: KernelError | null = null;
    const err = await this.transact(req, {
      firstSeq: seq,
      count: 1,
      onMessage(m) {
        if (m.type === NLMSG_ERROR) {
          const a = decodeError(m);
          if (a.errno) failure = ackError(a);
          return true;
        }
        if (m.type !== RTM_NEWROUTE) return false;
        found = decodeRoute(m);
        return true;
      },
    });
    const e = err ?? failure;
    if (e) return { error: e };
    if (!found) return { error: kernelError(libc.Errno.EBADMSG, "route lookup: the kernel answered without a route") };
    return { route: found };
  }

  async dumpLinks(): Promise<KernelLink[]> {
    return this.dump(encodeLinkDump, (m) => (m.type === RTM_NEWLINK ? decodeLink(m) : null), "dump links");
  }

  async dumpAddresses(): Promise<KernelAddress[]> {
    return this.dump((seq) => encodeAddressDump(seq), (m) => (m.type === RTM_NEWADDR ? decodeAddress(m) : null), "dump addresses");
  }

  // -- LinkKernel (the overlay) ---------------------------------------------

  async dumpLinkDetails(): Promise<KernelLink[]> {
    return this.dump(encodeLinkDump, (m) => (m.type === RTM_NEWLINK ? decodeLink(m, true) : null), "dump links");
  }

  async dumpNeighbors(family: FibFamily | "bridge", ifindex: number): Promise<KernelNeighbor[]> {
    return this.dump(
      (seq) => encodeNeighborDump(family, ifindex, seq),
      (m) => {
        if (m.type !== RTM_NEWNEIGH) return null;
        const n = decodeNeighbor(m);
        // Filtered by the kernel (strict checking); again here for kernels that ignore the filter.
        return n && n.family === family && n.ifindex === ifindex ? n : null;
      },
      `dump ${family === "bridge" ? "FDB entries" : `IPv${family} neighbours`} of link ${ifindex}`,
    );
  }

  /** One request whose only answer is its ACK (or error); encoding errors are returned as EINVAL. */
  private async single(encode: (seq: number) => Uint8Array): Promise<KernelError | null> {
    const seq = this.nextSeq();
    let req: Uint8Array;
    try {
      req = encode(seq);
    } catch (e) {
      if (!(e instanceof NetlinkEncodeError)) throw e;
      return kernelError(libc.Errno.EINVAL, `bgpctl: ${e.message}`);
    }
    let failure: KernelError | null = null;
    const err = await this.transact(req, {
      firstSeq: seq,
      count: 1,
      onMessage(m) {
        if (m.type !== NLMSG_ERROR) return false;
        const a = decodeError(m);
        if (a.errno) failure = ackError(a);
        return true;
      },
    });
    return err ?? failure;
  }

  linkOp(op: LinkOp): Promise<KernelError | null> {
    return this.single((seq) => encodeLinkOp(op, seq));
  }

  addressOp(op: AddressOp): Promise<KernelError | null> {
    return this.single((seq) => encodeAddressOp(op, seq));
  }

  async neighborOps(ops: NeighborOp[]): Promise<(KernelError | null)[]> {
    const results: (KernelError | null)[] = new Array<KernelError | null>(ops.length).fill(null);
    const w = new NlWriter(16 * 1024);
    for (let i = 0; i < ops.length; ) {
      w.reset();
      const indices: number[] = [];
      const firstSeq = this.seq;
      let seq = firstSeq;
      for (; i < ops.length && indices.length < NEIGH_BATCH; i++) {
        try {
          writeNeighborOp(w, ops[i]!, seq, NLM_F_ACK);
        } catch (e) {
          if (!(e instanceof NetlinkEncodeError)) throw e;
          results[i] = kernelError(libc.Errno.EINVAL, `bgpctl: ${e.message}`);
          continue;
        }
        indices.push(i);
        seq = (seq + 1) >>> 0 || 1;
      }
      if (!indices.length) continue;
      this.seq = seq;
      const count = indices.length;
      const { err, batch } = await this.sendBatch(w, firstSeq, count, true);
      for (let k = 0; k < count; k++) results[indices[k]!] = err ? (batch[k] ?? err) : batch[k]!;
    }
    return results;
  }

  // -- multicast ------------------------------------------------------------

  watch(fn: (e: KernelEvent) => void): () => void {
    this.watchers.add(fn);
    this.openMulticast();
    return () => {
      this.watchers.delete(fn);
    };
  }

  private emit(e: KernelEvent): void {
    for (const w of [...this.watchers]) {
      try {
        w(e);
      } catch (err) {
        // A watcher's exception must not stop the others, nor go unseen.
        process.stderr.write(`rtnetlink: an event watcher failed: ${(err as Error).stack ?? String(err)}\n`);
      }
    }
  }

  private onEvents(d: Uint8Array): void {
    if (!this.watchers.size) return;
    let msgs: NlMessage[];
    try {
      msgs = parseMessages(d);
    } catch {
      this.emit({ type: "overrun" }); // unreadable datagram: events lost, resync
      return;
    }
    for (const m of msgs) {
      let e: KernelEvent | null;
      try {
        e = decodeEvent(m);
      } catch (err) {
        if (!(err instanceof NetlinkDecodeError)) throw err;
        e = { type: "overrun" };
      }
      if (e) this.emit(e);
    }
  }

  private openMulticast(): void {
    if (this.closed || this.mc?.alive || this.mcOpening) return;
    this.mcOpening = true;
    NlSocket.open(
      { groups: this.eventGroups, rcvbuf: this.mcRcvbuf, request: false },
      {
        data: (d) => this.onEvents(d),
        closed: () => {
          // ENOBUFS (or any read error): the runtime closed the socket; events were lost.
          this.mc = null;
          if (this.closed) return;
          this.emit({ type: "overrun" });
          this.openMulticast();
        },
      },
    ).then(
      (s) => {
        this.mcOpening = false;
        if (this.closed) s.close();
        else {
          this.mc = s;
          this.filterOwn();
        }
      },
      () => {
        this.mcOpening = false;
        if (this.closed) return;
        // Could not open (e.g. out of fds): tell watchers and retry shortly.
        this.emit({ type: "overrun" });
        this.mcRetry = setTimeout(() => {
          this.mcRetry = null;
          this.openMulticast();
        }, 1000);
      },
    );
  }

  /** Keep the notifications of our own requests off the multicast socket (see the module comment). */
  private filterOwn(): void {
    if (!this.mc?.alive || !this.req?.alive) return;
    const err = this.mc.ignorePort(this.req.portId);
    // Without the filter every change of ours comes back as an event: correct, only slower.
    if (err) process.stderr.write(`rtnetlink: cannot filter our own notifications (SO_ATTACH_FILTER: ${libc.errnoName(err)})\n`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failInflight(kernelError(libc.Errno.EBADF, "rtnetlink: closed"));
    this.sender?.close();
    this.sender = null;
    if (this.mcRetry) clearTimeout(this.mcRetry);
    this.req?.close();
    this.req = null;
    this.mc?.close();
    this.mc = null;
    this.watchers.clear();
  }
}
