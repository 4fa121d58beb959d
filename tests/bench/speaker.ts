/**
 * The benchmark's minimal BGP speaker, run as its own process (inside the
 * peers' network namespace) so that it never shares a CPU thread with the
 * orchestrator or another speaker. One session, OPEN/KEEPALIVE handshake with
 * lib/bgp's codec (IPv4 + IPv6 unicast, 4-octet AS), then one of:
 *
 * - inject: write a file of pre-encoded UPDATEs (tests/bench/table.ts) as
 *   fast as the socket takes it (awaiting `drain` past the kernel's buffer),
 *   then further files on request (`send FILE` on stdin, for churn);
 * - sink: decode every UPDATE and keep the set of prefixes held (and how many
 *   carry the churn marker community), reporting counts as they change;
 * - null: accept one connection (passive), answer the handshake and discard
 *   everything: the receiver for measuring the injector's own send rate.
 *
 * Reports JSON lines on stdout: {"event":"established","at":ms}, {"event":
 * "sent","file","bytes","ms","at"}, {"event":"count","prefixes","marked",
 * "at"} (sink, at most every 50 ms, and when asked with `count` on stdin),
 * {"event":"error","message"}. `at` is Date.now(), comparable across
 * processes. Exits on SIGTERM or when the session closes.
 *
 * Usage: bun speaker.ts MODE --local ADDR --peer ADDR --as N --peer-as N [--file F] [--port 179]
 */
import net from "node:net";
import { readFileSync } from "node:fs";
import { Framer } from "../../lib/bgp/framer.ts";
import { decodeOpen, encodeOpen, myAsField } from "../../lib/bgp/open.ts";
import { frame } from "../../lib/bgp/framer.ts";
import { AttrCache } from "../../lib/bgp/attributes.ts";
import { walkNlri } from "../../lib/bgp/prefix.ts";
import { MsgType, SAFI } from "../../lib/bgp/types.ts";
import { AFI } from "../../lib/core/addr.ts";
import { decodeUpdate, type NlriBlock } from "../../lib/bgp/update.ts";
import { CHURN_MARKER } from "./table.ts";

const [mode, ...rest] = process.argv.slice(2);
const opt = (name: string, dflt?: string): string => {
  const i = rest.indexOf(`--${name}`);
  const v = i >= 0 ? rest[i + 1] : dflt;
  if (v === undefined) fail(`speaker: --${name} is required`);
  return v!;
};
if (mode !== "inject" && mode !== "sink" && mode !== "null") fail(`speaker: mode must be inject, sink or null, got "${mode}"`);

function emit(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(o) + "\n");
}
function fail(message: string): never {
  emit({ event: "error", message });
  process.exit(1);
}

const local = opt("local");
const peer = opt("peer");
const asn = Number(opt("as"));
const port = Number(opt("port", "179"));
const HOLD = 240;
const keepalive = frame(MsgType.KEEPALIVE, new Uint8Array(0));
const open = encodeOpen({
  version: 4,
  myAs: myAsField(asn),
  holdTime: HOLD,
  routerId: local.includes(":") ? "192.0.2.254" : local,
  capabilities: [
    { type: "multiprotocol", afi: AFI.IPV4, safi: SAFI.UNICAST },
    { type: "multiprotocol", afi: AFI.IPV6, safi: SAFI.UNICAST },
    { type: "route-refresh" },
    { type: "four-octet-as", asn },
  ],
});

/** Sink state: IPv4 prefixes keyed by number, IPv6 by string; value = carries the churn marker. */
const held4 = new Map<number, boolean>();
const held6 = new Map<string, boolean>();
let marked = 0;
let lastReport = 0;
let reportTimer: ReturnType<typeof setTimeout> | null = null;
const cache = new AttrCache();
const uctx = { fourOctetAs: true, ibgp: false, addPathReceive: () => false, cache };

function report(): void {
  reportTimer = null;
  lastReport = Date.now();
  emit({ event: "count", prefixes: held4.size + held6.size, marked, at: lastReport });
}
function scheduleReport(): void {
  if (reportTimer) return;
  reportTimer = setTimeout(report, Math.max(0, 50 - (Date.now() - lastReport)));
}

function set(b: NlriBlock | null, mark: boolean | null): void {
  if (!b) return;
  const v6 = b.afi === AFI.IPV6;
  walkNlri(b.buf, b.start, b.end, false, (buf, o, len) => {
    if (v6) {
      let k = String(len);
      for (let i = 0; i < (len + 7) >> 3; i++) k += "." + buf[o + i];
      apply(held6, k, mark);
    } else {
      let a = 0;
      const n = (len + 7) >> 3;
      for (let i = 0; i < 4; i++) a = a * 256 + (i < n ? buf[o + i]! : 0);
      apply(held4, a * 64 + len, mark);
    }
  });
}
function apply<K>(held: Map<K, boolean>, k: K, mark: boolean | null): void {
  if (held.get(k)) marked--;
  if (mark === null) held.delete(k);
  else {
    held.set(k, mark);
    if (mark) marked++;
  }
}

function onUpdate(body: Uint8Array): void {
  const u = decodeUpdate(body, uctx);
  set(u.withdrawn, null);
  set(u.mpUnreach?.withdrawn ?? null, null);
  const mark = u.attrs ? u.attrs.communities.includes(CHURN_MARKER) : false;
  const bad = u.treatAsWithdraw ? null : mark;
  set(u.nlri, bad);
  set(u.mpReach?.nlri ?? null, bad);
  scheduleReport();
}

async function sendFile(sock: net.Socket, file: string): Promise<void> {
  const buf = readFileSync(file);
  const t0 = performance.now();
  const CHUNK = 256 * 1024;
  for (let o = 0; o < buf.length; o += CHUNK) {
    if (!sock.write(buf.subarray(o, Math.min(buf.length, o + CHUNK)))) {
      await new Promise<void>((resolve, reject) => {
        const onClose = () => reject(new Error("session closed while sending"));
        sock.once("close", onClose);
        sock.once("drain", () => {
          sock.off("close", onClose);
          resolve();
        });
      });
    }
  }
  // Written to the kernel; the ms is the injector's own rate against whatever reads.
  emit({ event: "sent", file, bytes: buf.length, ms: performance.now() - t0, at: Date.now() });
}

function run(sock: net.Socket): void {
  const framer = new Framer();
  framer.maxLen = 65535;
  let established = false;
  let gotOpen = false;
  let nullBytes = 0;
  let nullStart = 0;
  const ka = setInterval(() => sock.write(keepalive), (HOLD / 3) * 1000);
  sock.on("close", () => {
    clearInterval(ka);
    if (mode === "null") emit({ event: "null-done", bytes: nullBytes, ms: performance.now() - nullStart });
    emit({ event: "closed", at: Date.now() });
    process.exit(0);
  });
  sock.on("error", (e) => emit({ event: "error", message: e.message }));
  sock.write(open);
  sock.on("data", (chunk: Uint8Array) => {
    if (established && mode !== "sink") {
      if (mode === "null") {
        if (!nullStart) nullStart = performance.now();
        nullBytes += chunk.length;
      }
      return; // inject and null ignore what they are sent (keepalives, or routes back)
    }
    for (const f of framer.push(chunk)) {
      if (f.type === MsgType.OPEN) {
        decodeOpen(f.body);
        gotOpen = true;
        sock.write(keepalive);
      } else if (f.type === MsgType.KEEPALIVE && gotOpen && !established) {
        established = true;
        emit({ event: "established", at: Date.now() });
        if (mode === "inject") void sendFile(sock, opt("file")).catch((e: Error) => emit({ event: "error", message: e.message }));
      } else if (f.type === MsgType.NOTIFICATION) {
        emit({ event: "error", message: `NOTIFICATION ${f.body[0]}/${f.body[1]} from ${peer}` });
      } else if (f.type === MsgType.UPDATE && mode === "sink") {
        onUpdate(f.body);
      }
    }
  });
  // Commands on stdin: "send FILE" (inject), "count" (sink).
  let line = "";
  process.stdin.on("data", (d: Buffer) => {
    line += d.toString();
    for (let i = line.indexOf("\n"); i >= 0; i = line.indexOf("\n")) {
      const cmd = line.slice(0, i).trim();
      line = line.slice(i + 1);
      if (cmd.startsWith("send ")) void sendFile(sock, cmd.slice(5)).catch((e: Error) => emit({ event: "error", message: e.message }));
      else if (cmd === "count") report();
    }
  });
}

process.on("SIGTERM", () => process.exit(0));
if (mode === "null") {
  const server = net.createServer((s) => {
    server.close();
    run(s);
  });
  server.listen(port, local, () => emit({ event: "listening" }));
} else {
  // The daemon may still be starting: retry a refused connection, every 250 ms for up to 60 s.
  const attempt = (n: number) => {
    const sock = net.connect({ host: peer, port, localAddress: local });
    sock.setNoDelay(true);
    let connected = false;
    sock.on("connect", () => {
      connected = true;
      run(sock);
    });
    sock.on("error", (e) => {
      if (connected) return;
      sock.destroy();
      if (n >= 240) fail(`connect to ${peer}:${port} from ${local}: ${e.message}`);
      setTimeout(() => attempt(n + 1), 250);
    });
  };
  attempt(0);
}
