/**
 * A raw, scriptable BGP peer for fault tests: a plain TCP connection from a
 * chosen local address that writes exactly the bytes it is given (valid or
 * not) and reads the daemon's messages back as frames, with byte-level
 * builders for headers, OPEN, UPDATE and path attributes. Nothing here
 * validates what it sends: that is the point. It answers nothing on its own
 * except, once `keepAlive()` is called, a KEEPALIVE every few seconds.
 */
import net from "node:net";
import { type Frame, Framer } from "../../lib/bgp/framer.ts";
import { waitFor } from "./wait.ts";

// ---------------------------------------------------------------- wire builders

export const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
export const u32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

/** Attribute flags: well-known transitive, optional non-transitive, optional transitive, extended length. */
export const WT = 0x40;
export const OPT = 0x80;
export const OT = 0xc0;
export const EXT = 0x10;

/** One path attribute; with EXT in the flags a 2-byte length. `len` overrides the length field. */
export function attr(flags: number, type: number, value: number[], len = value.length): number[] {
  return flags & EXT ? [flags, type, ...u16(len), ...value] : [flags, type, len, ...value];
}

/** "203.0.113.7/32" as NLRI bytes (length octet, significant address octets). */
export function nlri(prefix: string): number[] {
  const [addr, lenText] = prefix.split("/");
  const len = Number(lenText);
  const bytes = addr!.includes(":") ? v6Bytes(addr!) : addr!.split(".").map(Number);
  return [len, ...bytes.slice(0, (len + 7) >> 3)];
}

/** 16 bytes of an IPv6 address (no embedded IPv4 form). */
export function v6Bytes(addr: string): number[] {
  const [head, tail] = addr.includes("::") ? addr.split("::") : [addr, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = [...h, ...new Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return groups.flatMap((g) => u16(parseInt(g, 16)));
}

export function mpReach(afi: number, safi: number, nextHop: number[], nlriBytes: number[], flags = OPT): number[] {
  return attr(flags, 14, [...u16(afi), safi, nextHop.length, ...nextHop, 0, ...nlriBytes]);
}

export function mpUnreach(afi: number, safi: number, nlriBytes: number[]): number[] {
  return attr(OPT, 15, [...u16(afi), safi, ...nlriBytes]);
}

/** An UPDATE body; `wl` / `tal` override the computed withdrawn and attribute lengths. */
export function updateBody(o: { withdrawn?: number[]; attrs?: number[]; nlri?: number[]; wl?: number; tal?: number }): number[] {
  const w = o.withdrawn ?? [];
  const a = o.attrs ?? [];
  return [...u16(o.wl ?? w.length), ...w, ...u16(o.tal ?? a.length), ...a, ...(o.nlri ?? [])];
}

/** A whole message: marker, length (or `length` as given), type, body. */
export function message(type: number, body: number[], o: { marker?: number[]; length?: number } = {}): Uint8Array {
  const marker = o.marker ?? new Array<number>(16).fill(0xff);
  return Uint8Array.from([...marker, ...u16(o.length ?? 19 + body.length), type, ...body]);
}

export const MSG = { OPEN: 1, UPDATE: 2, NOTIFICATION: 3, KEEPALIVE: 4, ROUTE_REFRESH: 5 } as const;

export const keepalive = () => message(MSG.KEEPALIVE, []);
export const update = (o: Parameters<typeof updateBody>[0]) => message(MSG.UPDATE, updateBody(o));

/** Capability TLVs (code, value) for an OPEN. */
export const cap = {
  mp: (afi: number, safi: number) => [1, 4, ...u16(afi), 0, safi],
  routeRefresh: () => [2, 0],
  fourOctetAs: (asn: number) => [65, 4, ...u32(asn)],
  raw: (code: number, value: number[]) => [code, value.length, ...value],
};

/**
 * An OPEN message. `caps` go in one Capabilities optional parameter (type 2)
 * unless `params` (whole optional parameters) are given. `asn` above 65535
 * puts AS_TRANS in My AS.
 */
export function open(o: { asn: number; id: string; hold?: number; version?: number; caps?: number[][]; params?: number[]; optLen?: number }): Uint8Array {
  const capBytes = (o.caps ?? []).flat();
  const params = o.params ?? (capBytes.length ? [2, capBytes.length, ...capBytes] : []);
  const body = [o.version ?? 4, ...u16(o.asn > 0xffff ? 23456 : o.asn), ...u16(o.hold ?? 90), ...o.id.split(".").map(Number), o.optLen ?? params.length, ...params];
  return message(MSG.OPEN, body);
}

// ---------------------------------------------------------------- the peer

export interface Notification {
  code: number;
  subcode: number;
  data: Uint8Array;
}

export class RawPeer {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly framer = new Framer();
  private ka: ReturnType<typeof setInterval> | null = null;
  /** Set when our side cannot frame what the daemon sent (it never should happen). */
  framingError: string | null = null;

  private constructor(
    readonly socket: net.Socket,
    readonly local: string,
  ) {
    this.framer.maxLen = 65535;
    socket.on("data", (chunk: Buffer) => {
      try {
        this.frames.push(...this.framer.push(new Uint8Array(chunk)));
      } catch (e) {
        this.framingError = e instanceof Error ? e.message : String(e);
      }
    });
    socket.on("close", () => {
      this.closed = true;
      if (this.ka) clearInterval(this.ka);
    });
    socket.on("error", () => {}); // a reset by the daemon shows as `closed`
  }

  /** Connect from `local` to host:port. */
  static connect(local: string, host: string, port: number, timeoutMs = 5000): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port, localAddress: local });
      const t = setTimeout(() => (s.destroy(), reject(new Error(`connect ${local} -> ${host}:${port}: timed out`))), timeoutMs);
      s.once("connect", () => {
        clearTimeout(t);
        s.setNoDelay(true);
        resolve(new RawPeer(s, local));
      });
      s.once("error", (e) => {
        clearTimeout(t);
        reject(new Error(`connect ${local} -> ${host}:${port}: ${e.message}`));
      });
    });
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Waits for the first frame of `type` not yet taken, and takes it (and every frame before it). */
  async take(type: number, timeoutMs = 5000): Promise<Frame> {
    return waitFor(
      () => {
        const i = this.frames.findIndex((f) => f.type === type);
        if (i >= 0) return this.frames.splice(0, i + 1)[i]!;
        if (this.closed) throw new Error(`${this.local}: connection closed while waiting for message type ${type} (got types ${this.frames.map((f) => f.type).join(",") || "none"})`);
        return null;
      },
      { what: `${this.local}: message type ${type} from the daemon`, timeoutMs, intervalMs: 5 },
    );
  }

  /** The NOTIFICATION received, if any (not taken). */
  notification(): Notification | null {
    const f = this.frames.find((x) => x.type === MSG.NOTIFICATION);
    return f ? { code: f.body[0]!, subcode: f.body[1]!, data: f.body.slice(2) } : null;
  }

  /** Waits for a NOTIFICATION from the daemon and for the daemon to close the connection. */
  async notified(timeoutMs = 5000): Promise<Notification> {
    const n = await waitFor(() => this.notification(), { what: `${this.local}: a NOTIFICATION from the daemon`, timeoutMs, intervalMs: 5, detail: () => `closed: ${this.closed}; message types: ${this.frames.map((f) => f.type).join(",")}` });
    await waitFor(() => this.closed, { what: `${this.local}: the daemon to close the connection after its NOTIFICATION`, timeoutMs: 5000, intervalMs: 5 });
    return n;
  }

  /**
   * OPEN exchange and KEEPALIVEs: send `ourOpen`, read the daemon's OPEN and
   * KEEPALIVE, send KEEPALIVE. The daemon is then Established. Returns its OPEN body.
   */
  async handshake(ourOpen: Uint8Array, timeoutMs = 5000): Promise<Uint8Array> {
    this.send(ourOpen);
    const o = await this.take(MSG.OPEN, timeoutMs);
    await this.take(MSG.KEEPALIVE, timeoutMs);
    this.send(keepalive());
    return o.body;
  }

  /** Send a KEEPALIVE every `everyMs` until closed. */
  keepAlive(everyMs = 5000): void {
    this.ka ??= setInterval(() => {
      if (!this.closed) this.send(keepalive());
    }, everyMs);
  }

  close(): void {
    if (this.ka) clearInterval(this.ka);
    this.socket.destroy();
  }
}
