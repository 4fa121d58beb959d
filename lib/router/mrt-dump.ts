/**
 * The daemon's MRT output (RFC 6396), encoded with lib/mrt/writer.ts:
 *
 *   - MrtRecorder, `mrtDump: {file, rotate}`: every BGP message each session
 *     receives or sends, as BGP4MP MESSAGE_AS4 (sent ones MESSAGE_AS4_LOCAL;
 *     see the writer for 2-octet and ADD-PATH sessions), and every FSM state
 *     change as STATE_CHANGE_AS4, with the session's AS numbers and
 *     addresses and interface index 0, into a rotating file
 *     (lib/mrt/dump.ts: buffered, asynchronous, bounded). The neighbours call
 *     it through their host's `wire` (NeighborHost.wire; the session's tap
 *     sees the raw messages); applyMrtDump starts, changes and stops it
 *     (daemon start and stop, reload).
 *   - tableDumpRecords, `show rib --mrt`: the Loc-RIB as a TABLE_DUMP_V2
 *     snapshot, record by record, for the control socket to stream.
 */
import { type PathAttributes, attrShard } from "../bgp/attributes.ts";
import { WeakShards } from "../core/sharded-maps.ts";
import { normalizeAddress } from "../bgp/session.ts";
import { ATTR, MsgType } from "../bgp/types.ts";
import type { Negotiated } from "../bgp/negotiate.ts";
import { type Afi, formatIPv4 } from "../core/addr.ts";
import type { Log } from "../core/log.ts";
import { MrtDumpFile } from "../mrt/dump.ts";
import type { Bgp4mpPeer, MrtPeer } from "../mrt/types.ts";
import {
  type RibEntryOut,
  bgpStateNumber,
  encodeBgp4mpMessage,
  encodeBgp4mpStateChange,
  encodePeerIndexTable,
  encodeRibRecord,
  ribAttributes,
} from "../mrt/writer.ts";
import type { LocRib } from "../rib/loc-rib.ts";
import type { RouteSource } from "../rib/types.ts";
import type { Neighbor, NeighborHost } from "./neighbor.ts";

/** The addresses of the connection a message went over (a socket). */
export interface ConnAddresses {
  localAddress?: string | undefined;
  remoteAddress?: string | undefined;
}

/** What a neighbour reports while its host records (NeighborHost.wire). */
export interface WireTap {
  /** Whole BGP messages (several back to back when written at once) received ("in") or sent ("out") on one of `n`'s connections. */
  message(n: Neighbor, dir: "in" | "out", raw: Uint8Array, conn: ConnAddresses): void;
  /** `n`'s session changed FSM state. */
  state(n: Neighbor, from: string, to: string): void;
}

/** Where the recorder is kept: the neighbours' host (NeighborHost.wire), i.e. the route engine. */
export type RecorderHost = Pick<NeighborHost, "wire" | "log">;

export interface MrtDumpSettings {
  file: string;
  rotate: number;
}

const seconds = () => Math.floor(Date.now() / 1000);

/** Whether an UPDATE's NLRI carry path identifiers in direction `dir`: ADD-PATH negotiated for its family (MP_REACH/MP_UNREACH's, else IPv4 unicast). */
function updateAddPath(msg: Uint8Array, neg: Negotiated, dir: "in" | "out"): boolean {
  let afi = 1;
  let safi = 1;
  if (msg.length >= 23) {
    const wl = (msg[19]! << 8) | msg[20]!;
    let o = 21 + wl;
    const end = Math.min(msg.length, o + 2 + ((msg[o]! << 8) | msg[o + 1]!));
    o += 2;
    while (o + 3 <= end) {
      const flags = msg[o]!;
      const type = msg[o + 1]!;
      const ext = (flags & 0x10) !== 0;
      const len = ext ? (msg[o + 2]! << 8) | (msg[o + 3] ?? 0) : msg[o + 2]!;
      const v = o + (ext ? 4 : 3);
      if ((type === ATTR.MP_REACH_NLRI || type === ATTR.MP_UNREACH_NLRI) && v + 3 <= end) {
        afi = (msg[v]! << 8) | msg[v + 1]!;
        safi = msg[v + 2]!;
        break;
      }
      o = v + len;
    }
  }
  const ap = neg.addPath.get(`${afi}/${safi}`);
  return ap !== undefined && (dir === "in" ? ap.receive : ap.send);
}

/** An address as MRT records it: IPv4-mapped IPv6 as IPv4, without an IPv6 zone ("fe80::1%eth0": the interface index field is 0). */
function plainAddress(a: string): string {
  return a === "" ? "" : normalizeAddress(a.replace(/%.*$/, ""));
}

/** Records every session's messages and state changes into a rotating MRT file. */
export class MrtRecorder implements WireTap {
  readonly file: MrtDumpFile;
  /** The local address of each neighbour's last connection: what its state changes are recorded with. */
  private readonly lastLocal = new WeakMap<Neighbor, string>();

  constructor(
    readonly settings: MrtDumpSettings,
    log: Log,
  ) {
    this.file = new MrtDumpFile({ file: settings.file, rotate: settings.rotate, log: (level, msg) => log.at(level, msg) });
  }

  private peerOf(n: Neighbor, conn: ConnAddresses): Bgp4mpPeer {
    const peerAddress = plainAddress(conn.remoteAddress ?? n.config.address);
    const v6 = peerAddress.includes(":");
    let localAddress = conn.localAddress ? plainAddress(conn.localAddress) : (this.lastLocal.get(n) ?? plainAddress(n.config.localAddress ?? ""));
    if (conn.localAddress) this.lastLocal.set(n, localAddress);
    if (localAddress === "" || localAddress.includes(":") !== v6) localAddress = v6 ? "::" : "0.0.0.0";
    return { peerAs: n.config.remoteAs, localAs: n.config.localAs, ifIndex: 0, afi: v6 ? 2 : 1, peerAddress, localAddress };
  }

  message(n: Neighbor, dir: "in" | "out", raw: Uint8Array, conn: ConnAddresses): void {
    try {
      const ts = seconds();
      const peer = this.peerOf(n, conn);
      const neg = n.session.negotiated;
      // Before negotiation (OPEN, NOTIFICATION, KEEPALIVE) nothing in a message depends on the AS size.
      const fourOctetAs = neg ? neg.fourOctetAs : true;
      for (let o = 0; o + 19 <= raw.length; ) {
        const len = (raw[o + 16]! << 8) | raw[o + 17]!;
        if (len < 19 || o + len > raw.length) throw new Error(`a BGP message of length ${len} at byte ${o} of ${raw.length}`);
        const msg = raw.subarray(o, o + len);
        const addPath = neg !== null && neg.addPath.size > 0 && msg[18] === MsgType.UPDATE && updateAddPath(msg, neg, dir);
        this.file.write(encodeBgp4mpMessage(ts, peer, msg, { local: dir === "out", fourOctetAs, addPath }));
        o += len;
      }
    } catch (e) {
      this.file.discard(1, `cannot record a message of ${n.config.address}: ${(e as Error).message}`);
    }
  }

  state(n: Neighbor, from: string, to: string): void {
    if (from === to) return;
    try {
      this.file.write(encodeBgp4mpStateChange(seconds(), this.peerOf(n, {}), bgpStateNumber(from), bgpStateNumber(to)));
    } catch (e) {
      this.file.discard(1, `cannot record a state change of ${n.config.address}: ${(e as Error).message}`);
    }
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

/**
 * Make `host`'s recorder match `settings` (the config's mrtDump): start it,
 * replace it when the file or rotation changed (the old one writes what it
 * queued and closes), or stop it (undefined). Returns what changed, for the
 * reload's list, or null when nothing did. Throws (changing nothing) for
 * settings the dump file refuses.
 */
export async function applyMrtDump(host: RecorderHost, settings: MrtDumpSettings | undefined): Promise<string | null> {
  const cur = host.wire instanceof MrtRecorder ? host.wire : null;
  if (cur && settings && cur.settings.file === settings.file && cur.settings.rotate === settings.rotate) return null;
  if (!cur && !settings) return null;
  const next = settings ? new MrtRecorder({ file: settings.file, rotate: settings.rotate }, host.log) : null;
  host.wire = next;
  if (cur) await cur.close();
  if (!settings) return "mrtDump stopped";
  const what = `mrtDump to ${settings.file}${settings.rotate ? `, a new file every ${settings.rotate}s` : ""}`;
  host.log.info(`${what} (now ${next!.file.stats.file})`);
  return what;
}

// ------------------------------------------------------------ show rib --mrt

/** What a table dump needs of the daemon. */
export interface TableDumpSource {
  routerId: string;
  asn: number;
  locRib: LocRib;
  localSource: RouteSource;
  /** The neighbours' current sources. */
  sources: Iterable<RouteSource>;
  /** Routes of sources the peer table does not list (a neighbour added during the dump) are left out; told here at the end. */
  onSkipped?: (count: number) => void;
}

/**
 * The Loc-RIB as TABLE_DUMP_V2 records (RFC 6396 §4.3): a PEER_INDEX_TABLE
 * listing every neighbour and ourselves (for local routes: our router id,
 * address 0.0.0.0, our AS), then one RIB_IPV4_UNICAST / RIB_IPV6_UNICAST
 * record per prefix with all its candidate routes, in the table's order
 * (ADD-PATH routes: the RIB_*_ADDPATH subtype with their path ids). One
 * record per step, each prefix read in one go: the caller slices. All
 * records carry the dump's start time; each entry the time its route was
 * learned.
 */
export function* tableDumpRecords(src: TableDumpSource, afi?: Afi): Generator<Uint8Array> {
  const ts = seconds();
  const wallOffset = Date.now() - performance.now();
  const index = new Map<string, number>();
  const peers: MrtPeer[] = [];
  const add = (s: RouteSource, peer: MrtPeer) => {
    if (index.has(s.id)) return;
    index.set(s.id, peers.length);
    peers.push(peer);
  };
  for (const s of src.sources) {
    add(s, { bgpId: formatIPv4(Uint8Array.of(s.routerId >>> 24, (s.routerId >>> 16) & 0xff, (s.routerId >>> 8) & 0xff, s.routerId & 0xff)), address: s.address, afi: s.address.includes(":") ? 2 : 1, asn: s.asn });
  }
  add(src.localSource, { bgpId: src.routerId, address: "0.0.0.0", afi: 1, asn: src.asn });
  yield encodePeerIndexTable(ts, src.routerId, "", peers);

  // Attribute bytes per (attribute set, next hop): stored routes share both.
  const memo = new WeakShards<PathAttributes, { nh: Uint8Array; afi: number; bytes: Uint8Array }[]>(attrShard);
  const attrsOf = (attrs: PathAttributes, nh: Uint8Array, fam: number): Uint8Array => {
    let list = memo.get(attrs);
    const hit = list?.find((m) => m.nh === nh && m.afi === fam);
    if (hit) return hit.bytes;
    const bytes = ribAttributes(attrs, nh, fam);
    if (!list) memo.set(attrs, (list = []));
    if (list.length < 8) list.push({ nh, afi: fam, bytes });
    return bytes;
  };
  let seq = 0;
  let skipped = 0;
  try {
    for (const e of src.locRib.entries(afi)) {
      const fam = e.prefix.afi;
      const out: RibEntryOut[] = [];
      for (const r of e.routes) {
        const i = index.get(r.source.id);
        if (i === undefined) {
          skipped++;
          continue;
        }
        const entry: RibEntryOut = { peerIndex: i, originated: Math.floor((wallOffset + r.learnedAt) / 1000), attrs: attrsOf(r.attrs, r.nextHop, fam) };
        if (r.pathId !== 0) entry.pathId = r.pathId;
        out.push(entry);
      }
      if (out.length) yield encodeRibRecord(ts, seq++, e.prefix, out);
    }
  } finally {
    if (skipped) src.onSkipped?.(skipped);
  }
}
