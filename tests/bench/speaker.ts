/**
 * The benchmark's minimal BGP speaker, run as its own process (inside the
 * peers' network namespace) so that it never shares a CPU thread with the
 * orchestrator or another speaker. One session, OPEN/KEEPALIVE handshake with
 * lib/bgp's codec (IPv4 + IPv6 unicast, 4-octet AS), then one of:
 *
 * - inject: write a file of pre-encoded UPDATEs (tests/bench/table.ts),
 *   read before connecting, as fast as the socket takes it once Established
 *   (awaiting `drain` past the kernel's buffer), then further files on
 *   request (`send FILE` on stdin, for churn);
 * - sink: decode every UPDATE and keep the set of prefixes held (and how many
 *   carry the churn marker community), reporting counts as they change; and
 *   on request (`watch +P -Q ...` on stdin) the moment a watched prefix is
 *   announced (+) or withdrawn (-), for the Kubernetes scenario's latencies;
 * - null: accept one connection (passive), answer the handshake and discard
 *   everything: the receiver for measuring the injector's own send rate.
 *
 * Reports JSON lines on stdout: {"event":"established","at":ms}, {"event":
 * "sent","file","bytes","ms","at"}, {"event":"count","prefixes","marked",
 * "updates","nlri","at"} (sink, at most every 50 ms, and when asked with
 * `count` on stdin; updates and nlri are running totals of UPDATEs and
 * announced prefixes received), {"event":"watching","count"} (the watch
 * list was taken), {"event":"seen","prefix","withdrawn","at"} (a watched
 * prefix, once; "already": true when it was in that state before it was
 * watched), {"event":"error","message"}. `at` is Date.now(), comparable across
 * processes. Exits on SIGTERM or when the session closes.
 *
 * Usage: bun speaker.ts MODE --local ADDR --peer ADDR --as N --peer-as N [--file F] [--port 179]
 *   [--connect-retries 240] [--hold]
 *
 * --hold (inject, sink): start, read the table, report {"event":"ready"} and
 * connect only when told `go` on stdin: the orchestrator starts its twenty
 * speakers before the daemon, so their own start-up (a Bun process each:
 * loading, compiling) does not compete with the daemon's first seconds.
 */
import net from "node:net";
import { readFileSync } from "node:fs";
import { Framer } from "../../lib/bgp/framer.ts";
import { decodeOpen, encodeOpen, myAsField } from "../../lib/bgp/open.ts";
import { frame } from "../../lib/bgp/framer.ts";
import { AttrCache } from "../../lib/bgp/attributes.ts";
import { walkNlri } from "../../lib/bgp/prefix.ts";
import { MsgType, SAFI } from "../../lib/bgp/types.ts";
import { AFI, type Prefix, parsePrefix, prefixToString } from "../../lib/core/addr.ts";
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
/** Running totals: UPDATE messages and announced prefixes received. */
let updates = 0;
let nlri = 0;
/** Watched prefixes (sink): key -> wait for an announcement (true) or a withdrawal (false). */
const watch4 = new Map<number, boolean>();
const watch6 = new Map<string, boolean>();
let watching = 0;
let lastReport = 0;
let reportTimer: ReturnType<typeof setTimeout> | null = null;
const cache = new AttrCache();
const uctx = { fourOctetAs: true, ibgp: false, addPathReceive: () => false, cache };

function report(): void {
  reportTimer = null;
  lastReport = Date.now();
  emit({ event: "count", prefixes: held4.size + held6.size, marked, updates, nlri, at: lastReport });
}
function scheduleReport(): void {
  if (reportTimer) return;
  reportTimer = setTimeout(report, Math.max(0, 50 - (Date.now() - lastReport)));
}

/** The held-set keys of a prefix: IPv4 as address * 64 + length, IPv6 as "len.b0.b1...". */
function key6(buf: Uint8Array, o: number, len: number): string {
  let k = String(len);
  for (let i = 0; i < (len + 7) >> 3; i++) k += "." + buf[o + i];
  return k;
}
function key4(buf: Uint8Array, o: number, len: number): number {
  let a = 0;
  const n = (len + 7) >> 3;
  for (let i = 0; i < 4; i++) a = a * 256 + (i < n ? buf[o + i]! : 0);
  return a * 64 + len;
}

function set(b: NlriBlock | null, mark: boolean | null): void {
  if (!b) return;
  const v6 = b.afi === AFI.IPV6;
  walkNlri(b.buf, b.start, b.end, false, (buf, o, len) => {
    if (mark !== null) nlri++;
    if (v6) {
      const k = key6(buf, o, len);
      apply(held6, k, mark);
      if (watching) seen(watch6, k, mark !== null, () => nlriText(AFI.IPV6, buf, o, len));
    } else {
      const k = key4(buf, o, len);
      apply(held4, k, mark);
      if (watching) seen(watch4, k, mark !== null, () => nlriText(AFI.IPV4, buf, o, len));
    }
  });
}

/** The text of an NLRI prefix (its significant octets at buf[o..]). */
function nlriText(afi: number, buf: Uint8Array, o: number, len: number): string {
  const addr = new Uint8Array(afi === AFI.IPV6 ? 16 : 4);
  addr.set(buf.subarray(o, o + ((len + 7) >> 3)));
  return prefixToString({ afi: afi as Prefix["afi"], len, addr });
}

/** A watched prefix reached the state it was watched for: report it once. */
function seen<K>(w: Map<K, boolean>, k: K, announced: boolean, text: () => string): void {
  if (w.get(k) !== announced) return;
  w.delete(k);
  watching--;
  emit({ event: "seen", prefix: text(), withdrawn: !announced, at: Date.now() });
}

/** `watch +P -Q ...`: report when P is announced and Q withdrawn (at once, marked already, if it is so now). */
function addWatches(words: string[]): void {
  for (const w of words) {
    const want = w[0] === "+" ? true : w[0] === "-" ? false : fail(`speaker: watch: expected +PREFIX or -PREFIX, got "${w}"`);
    const p = parsePrefix(w.slice(1));
    const full = new Uint8Array(16);
    full.set(p.addr.subarray(0, (p.len + 7) >> 3));
    const v6 = p.afi === AFI.IPV6;
    const k = v6 ? key6(full, 0, p.len) : key4(full, 0, p.len);
    const now = v6 ? held6.has(k as string) : held4.has(k as number);
    if (now === want) {
      emit({ event: "seen", prefix: prefixToString(p), withdrawn: !want, at: Date.now(), already: true });
      continue;
    }
    if (v6) watch6.set(k as string, want);
    else watch4.set(k as number, want);
    watching++;
  }
  emit({ event: "watching", count: watch4.size + watch6.size });
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
  updates++;
  set(u.withdrawn, null);
  set(u.mpUnreach?.withdrawn ?? null, null);
  const mark = u.attrs ? u.attrs.communities.includes(CHURN_MARKER) : false;
  const bad = u.treatAsWithdraw ? null : mark;
  set(u.nlri, bad);
  set(u.mpReach?.nlri ?? null, bad);
  scheduleReport();
}

/**
 * The inject mode's table, read before the session comes up: reading 7.7 MB
 * took 24 ms, and read after Established it delayed the first byte that
 * long inside every daemon's measured time.
 */
const table = mode === "inject" ? readFileSync(opt("file")) : null;

async function sendFile(sock: net.Socket, file: string, preloaded?: Buffer): Promise<void> {
  const buf = preloaded ?? readFileSync(file);
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
        if (mode === "inject") void sendFile(sock, opt("file"), table!).catch((e: Error) => emit({ event: "error", message: e.message }));
      } else if (f.type === MsgType.NOTIFICATION) {
        emit({ event: "error", message: `NOTIFICATION ${f.body[0]}/${f.body[1]} from ${peer}` });
      } else if (f.type === MsgType.UPDATE && mode === "sink") {
        onUpdate(f.body);
      }
    }
  });
  // Commands on stdin: "send FILE" (inject), "count" and "watch +P -Q ..." (sink).
  let line = "";
  process.stdin.on("data", (d: Buffer) => {
    line += d.toString();
    for (let i = line.indexOf("\n"); i >= 0; i = line.indexOf("\n")) {
      const cmd = line.slice(0, i).trim();
      line = line.slice(i + 1);
      if (cmd.startsWith("send ")) void sendFile(sock, cmd.slice(5)).catch((e: Error) => emit({ event: "error", message: e.message }));
      else if (cmd === "count") report();
      else if (cmd.startsWith("watch ")) addWatches(cmd.slice(6).trim().split(/\s+/));
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
  // The daemon may still be starting: retry a refused connection, every 250 ms for up to 60 s (--connect-retries).
  const retries = Number(opt("connect-retries", "240"));
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
      if (n >= retries) fail(`connect to ${peer}:${port} from ${local}: ${e.message}`);
      setTimeout(() => attempt(n + 1), 250);
    });
  };
  if (process.argv.includes("--hold")) {
    // Started ahead of the daemon (its start-up off the cores the daemon's run will use): connect on "go".
    let pending = "";
    const onGo = (d: Buffer) => {
      pending += d.toString();
      if (!pending.split("\n").some((l) => l.trim() === "go")) return;
      process.stdin.off("data", onGo);
      attempt(0);
    };
    process.stdin.on("data", onGo);
    emit({ event: "ready" });
  } else attempt(0);
}
