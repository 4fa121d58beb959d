/**
 * Human-readable output of the control API's answers, as the daemon-facing
 * CLI commands print them (OpenBGPD bgpctl / birdc style): `show summary`,
 * `show neighbors`, `show rib`, `show rib summary` and `monitor` lines.
 * Pure functions of the API's JSON shapes; `--json` prints those instead.
 * `show rib` is printed as it streams in (RibTextWriter): the column widths
 * come from the first rows, so a table of any size needs no buffering.
 */
import { oneLine } from "../health/checker.ts";
import type { BfdInfo, CheckInfo, FibEntry, InterfacesInfo, MonitorEvent, NeighborInfo, RibEntry, RibSummary, RouterSummary } from "./types.ts";

type Align = "l" | "r";

/** Column widths: each the widest cell of the rows given. */
function widths(rows: string[][]): number[] {
  const w: number[] = [];
  for (const r of rows) for (let i = 0; i < r.length; i++) w[i] = Math.max(w[i] ?? 0, r[i]!.length);
  return w;
}

/** One table line: cells separated by two spaces, padded to `w` (a wider cell pushes the rest); trailing blanks trimmed. */
function tableRow(r: string[], w: number[], align: Align[]): string {
  return (
    r
      .map((c, i) => (align[i] === "r" ? c.padStart(w[i] ?? 0) : i === r.length - 1 ? c : c.padEnd(w[i] ?? 0)))
      .join("  ")
      .trimEnd() + "\n"
  );
}

/** Columns separated by two spaces, each as wide as its widest cell; trailing blanks trimmed. */
function table(header: string[], rows: string[][], align: Align[]): string {
  const all = [header, ...rows];
  const w = widths(all);
  return all.map((r) => tableRow(r, w, align)).join("");
}

const two = (n: number) => String(n).padStart(2, "0");

/** Session up/down time: "00:05:12" under a day, "1d02h03m" under a week, "2w3d04h" beyond. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (days === 0) return `${two(h)}:${two(m)}:${two(s % 60)}`;
  if (days < 7) return `${days}d${two(h)}h${two(m)}m`;
  return `${Math.floor(days / 7)}w${days % 7}d${two(h)}h`;
}

/** The state column: the accepted prefix count once Established, else the state (marked when shut down by the operator). */
function stateColumn(n: NeighborInfo): string {
  if (n.state === "Established") return String(n.accepted);
  return n.adminDown ? `${n.state} (Admin)` : n.state;
}

/** The event-loop line of `show summary`: the daemon's worst and 99th-percentile lag. */
function eventLoopLine(s: RouterSummary): string {
  const e = s.eventLoop;
  const sl = s.slices;
  const at = sl?.longestOnCoreAt !== undefined ? `, ${new Date(sl.longestOnCoreAt).toISOString().slice(11, 19)} UTC` : "";
  const onCore = sl?.longestOnCoreMs !== undefined ? ` (${sl.longestOnCoreMs} ms on a core${at})` : "";
  const over = sl?.over20OnCore !== undefined ? ` (${sl.over20OnCore} on a core)` : "";
  const slices = sl ? `; longest turn of work ${sl.longestMs} ms${onCore}, ${sl.over20} of ${sl.turns} over 20 ms${over}` : "";
  return `Event loop lag: max ${e.maxLagMs} ms, p99 ${e.p99LagMs} ms (${e.samples} samples)${slices}\n`;
}

export function formatSummary(s: RouterSummary): string {
  const rows = s.neighbors.map((n) => [
    n.address,
    String(n.remoteAs),
    String(n.messages.received),
    String(n.messages.sent),
    String(n.outQueue),
    formatDuration(n.uptimeSeconds),
    stateColumn(n),
  ]);
  return (
    `BGP router id ${s.routerId}, local AS ${s.asn}\n` +
    eventLoopLine(s) +
    table(["Neighbor", "AS", "MsgRcvd", "MsgSent", "OutQ", "Up/Down", "State/PfxRcvd"], rows, ["l", "r", "r", "r", "r", "l", "l"])
  );
}

/** One line of graceful restart state: ours, the peer's, and what is kept stale for it. */
function gracefulRestartText(gr: NonNullable<NeighborInfo["gracefulRestart"]>): string {
  if (!gr.enabled) return "off";
  const parts = [gr.peerRestartTime === null ? "peer: no capability" : `peer restart time ${gr.peerRestartTime}s`];
  if (gr.notification) parts.push("notification (RFC 8538)");
  if (gr.longLived) parts.push("long-lived");
  const st = gr.stale;
  if (st) {
    const what = st.phase === "restart" ? "peer restarting" : st.phase === "eor" ? "waiting for its End-of-RIB" : "long-lived stale (LLGR_STALE)";
    parts.push(`${st.families.join(" ")} routes stale: ${what}, ${st.secondsLeft}s left`);
  }
  return parts.join(", ");
}

function neighborBlock(n: NeighborInfo): string {
  const lines = [`BGP neighbor is ${n.address}, remote AS ${n.remoteAs}${n.remoteAs === n.localAs ? " (internal)" : ""}`];
  if (n.description) lines.push(`  Description: ${n.description}`);
  const flags = [n.adminDown ? "administratively down" : "", n.routeReflectorClient ? "route reflector client" : ""].filter(Boolean);
  if (flags.length) lines.push(`  ${flags.join(", ").replace(/^./, (c) => c.toUpperCase())}`);
  lines.push(`  BGP state = ${n.state}, ${n.state === "Established" ? "up" : "down"} for ${formatDuration(n.uptimeSeconds)}`);
  lines.push(`  Remote router id ${n.routerId ?? "-"}`);
  lines.push(`  Local address ${n.localAddress ?? "-"}, local AS ${n.localAs}`);
  if (n.ttl) lines.push(`  ${n.ttl.replace(/^./, (c) => c.toUpperCase())}`);
  lines.push(
    n.holdTime === null
      ? "  Hold time -, keepalive interval -"
      : `  Hold time ${n.holdTime}s, keepalive interval ${n.keepaliveTime === null ? "-" : `${n.keepaliveTime}s`}`,
  );
  if (n.capabilities.length) {
    lines.push("  Negotiated capabilities:");
    for (const c of n.capabilities) lines.push(`    ${c}`);
  } else lines.push("  Negotiated capabilities: none");
  if (n.bfd) lines.push(`  BFD state = ${n.bfd}`);
  const gr = n.gracefulRestart;
  if (gr) lines.push(`  Graceful restart: ${gracefulRestartText(gr)}`);
  if (n.updateGroup?.length) lines.push(`  Update group: shares its UPDATEs with ${n.updateGroup.join(", ")}`);
  lines.push(`  Messages: ${n.messages.received} received, ${n.messages.sent} sent, ${n.outQueue} queued`);
  lines.push(`  Prefixes: ${n.received} received, ${n.accepted} accepted, ${n.advertised} advertised`);
  lines.push(`  Last error: ${n.lastError ?? "none"}`);
  return lines.join("\n") + "\n";
}

/** `show bfd`: one row per session (negotiated intervals in ms), then the last down reason of those that have one. */
export function formatBfd(list: BfdInfo[]): string {
  if (!list.length) return "no BFD sessions\n";
  const rows = list.map((s) => [
    s.peer,
    s.local ?? "-",
    s.multihop ? "multihop" : "single hop",
    s.state,
    s.remoteState,
    s.diag,
    String(s.txInterval),
    String(s.rxInterval),
    s.detectionTime ? String(s.detectionTime) : "-",
    formatDuration(s.uptimeSeconds),
    s.bgpState,
  ]);
  const out = table(["Peer", "Local", "Kind", "State", "Remote", "Diag", "Tx ms", "Rx ms", "Detect ms", "Since", "BGP"], rows, ["l", "l", "l", "l", "l", "l", "r", "r", "r", "l", "l"]);
  const notes = list.flatMap((s) => [
    ...(s.lastDown ? [`${s.peer}: last down ${s.lastDown}`] : []),
    ...(s.error ? [`${s.peer}: ${s.error}`] : []),
  ]);
  return out + (notes.length ? "\n" + notes.join("\n") + "\n" : "");
}

/** `show checks`: one line per health check, then each one's last output and counters. */
export function formatChecks(list: CheckInfo[]): string {
  if (!list.length) return "no health checks\n";
  const rows = list.map((c) => [
    c.name,
    c.state + (c.state === "RISING" ? ` ${c.count}/${c.rise}` : c.state === "FALLING" ? ` ${c.count}/${c.fall}` : ""),
    c.announced,
    c.prefixes.join(" "),
    c.last ? `${c.last.ok ? "ok" : "failed"} ${c.last.ms}ms` : "-",
    c.since.slice(11, 19),
    c.drained ? "drain file" : c.enabled ? "" : "disabled (CLI)",
  ]);
  const out = table(["Check", "State", "Announced", "Prefixes", "Last", "Since", "Disabled by"], rows, ["l", "l", "l", "l", "l", "l", "l"]);
  const notes = list.map((c) => {
    const n = c.counters;
    const last = c.last ? oneLine(c.last.output) : "";
    return `${c.name}: ${c.probe}; ${n.success} ok, ${n.failure} failed, ${n.timeout} timed out, ${n.transitions} state changes${c.reason ? ` (last: ${c.reason})` : ""}${last ? `; output: ${last}` : ""}`;
  });
  return out + "\n" + notes.join("\n") + "\n";
}

export function formatNeighbors(list: NeighborInfo[]): string {
  if (!list.length) return "no neighbors\n";
  return list.map(neighborBlock).join("\n");
}

export const RIB_LEGEND = "flags: * = Valid, > = Selected, = = Multipath, I = via IBGP, S = Stale\norigin: i = IGP, e = EGP, ? = Incomplete\n";

/** Legend line added when some route's next hop does not resolve. */
const RIB_LEGEND_UNREACHABLE = "u = Next hop unreachable (not a candidate for best)\n";

function originCode(origin: string): string {
  if (origin === "igp") return "i";
  if (origin === "egp") return "e";
  return "?";
}

/** OpenBGPD-style flags; the best path of a multipath set shows both `>` and `=`; `u` instead of `*`: the next hop does not resolve. */
function ribFlags(r: RibEntry): string {
  return (r.reachable === false ? "u" : "*") + (r.best ? ">" : "") + (r.multipath ? "=" : "") + (r.ibgp ? "I" : "") + (r.stale ? "S" : "");
}

const RIB_HEADER = ["flags", "prefix", "nexthop", "lpref", "med", "aspath", "origin", "communities"];
const RIB_ALIGN: Align[] = ["l", "l", "l", "r", "r", "l", "l", "l"];

function ribRow(r: RibEntry): string[] {
  return [
    ribFlags(r),
    r.prefix,
    r.nextHop ?? "-",
    r.localPref === null ? "-" : String(r.localPref),
    r.med === null ? "-" : String(r.med),
    r.asPath.length ? r.asPath.join(" ") : "-",
    originCode(r.origin),
    [...r.communities, ...r.largeCommunities].join(" "),
  ];
}

/** Rows whose widths set the columns of a streamed `show rib` table. */
export const RIB_SAMPLE_ROWS = 1000;

/**
 * `show rib` as text, written as entries arrive: the legend and header once
 * the first `sample` rows are in (their widths set the columns; a wider cell
 * later pushes its line), then each row. The "u" legend line comes first when
 * an unreachable route is among the first rows, else after the table if one
 * shows up later. `end` says when `--limit` cut the answer short.
 */
export class RibTextWriter {
  private pending: string[][] | null = [];
  private w: number[] = [];
  private unreachableShown = false;
  private unreachableLater = false;
  private rows = 0;

  constructor(
    private readonly write: (text: string) => void,
    private readonly sample = RIB_SAMPLE_ROWS,
  ) {}

  add(entries: readonly RibEntry[]): void {
    for (const e of entries) {
      if (e.reachable === false && !this.unreachableShown) {
        if (this.pending) this.unreachableShown = true;
        else this.unreachableLater = true;
      }
      const row = ribRow(e);
      this.rows++;
      if (this.pending) {
        this.pending.push(row);
        if (this.pending.length >= this.sample) this.head();
      }
      else this.write(tableRow(row, this.w, RIB_ALIGN));
    }
  }

  /** Finish the table; `truncated`: the answer was cut at `limit` entries. */
  end(truncated = false, limit?: number): void {
    if (this.pending) this.head();
    if (this.unreachableLater) this.write("\n" + RIB_LEGEND_UNREACHABLE);
    if (truncated) this.write(`\ntruncated: the first ${limit ?? this.rows} entries shown (--limit); more match\n`);
  }

  private head(): void {
    const rows = this.pending ?? [];
    this.pending = null;
    this.w = widths([RIB_HEADER, ...rows]);
    let out = RIB_LEGEND + (this.unreachableShown ? RIB_LEGEND_UNREACHABLE : "") + "\n" + tableRow(RIB_HEADER, this.w, RIB_ALIGN);
    for (const r of rows) out += tableRow(r, this.w, RIB_ALIGN);
    this.write(out);
  }
}

/** `show rib` of a whole answer at once (RibTextWriter over all of it: the columns fit every row). */
export function formatRib(entries: RibEntry[]): string {
  let out = "";
  const w = new RibTextWriter((t) => (out += t), Math.max(1, entries.length));
  w.add(entries);
  w.end();
  return out;
}

export function formatRibSummary(s: RibSummary): string {
  const fam = table(
    ["Family", "Prefixes", "Paths"],
    s.families.map((f) => [f.family, String(f.prefixes), String(f.paths)]),
    ["l", "r", "r"],
  );
  if (!s.peers.length) return fam;
  const peers = table(
    ["Neighbor", "Family", "Received", "Accepted", "Advertised"],
    s.peers.map((p) => [p.address, p.family, String(p.received), String(p.accepted), String(p.advertised)]),
    ["l", "l", "r", "r", "r"],
  );
  return fam + "\n" + peers;
}

/** `show fib`: each prefix with its kernel sync state, next hops and the reason when not installed. */
export function formatFib(entries: FibEntry[]): string {
  const counts = new Map<string, number>();
  for (const e of entries) counts.set(e.state, (counts.get(e.state) ?? 0) + 1);
  const head = entries.length ? [...counts].map(([k, v]) => `${v} ${k}`).join(", ") + "\n\n" : "no routes\n";
  return (
    head +
    (entries.length
      ? table(
          ["Prefix", "State", "Next hops", "Reason"],
          entries.map((e) => [e.prefix, e.state, e.nextHops.join(", ") || "-", e.reason ?? ""]),
          ["l", "l", "l", "l"],
        )
      : "")
  );
}

/** `show interfaces`: links with their addresses. */
export function formatInterfaces(info: InterfacesInfo): string {
  return table(
    ["Index", "Name", "State", "Addresses"],
    info.links.map((l) => [
      String(l.index),
      l.name,
      l.up ? "up" : "down",
      info.addresses
        .filter((a) => a.ifindex === l.index)
        .map((a) => `${a.address}/${a.prefixLength}`)
        .join(" "),
    ]),
    ["r", "l", "l", "l"],
  );
}

function eventTime(t: string): string {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toISOString().slice(11, 19);
}

/** `via NH as-path A B origin igp med M local-pref L communities ... large-communities ...` */
function routeText(r: RibEntry): string {
  const parts = [`via ${r.nextHop ?? "-"}`, `as-path ${r.asPath.length ? r.asPath.join(" ") : "(empty)"}`, `origin ${r.origin}`];
  if (r.med !== null) parts.push(`med ${r.med}`);
  if (r.localPref !== null) parts.push(`local-pref ${r.localPref}`);
  if (r.communities.length) parts.push(`communities ${r.communities.join(" ")}`);
  if (r.largeCommunities.length) parts.push(`large-communities ${r.largeCommunities.join(" ")}`);
  if (r.pathId !== undefined) parts.push(`path-id ${r.pathId}`);
  return parts.join(" ");
}

export function formatMonitorEvent(e: MonitorEvent): string {
  const t = eventTime(e.time);
  switch (e.type) {
    case "state":
      return `${t} ${e.peer} state ${e.from} -> ${e.to}${e.reason ? ` (${e.reason})` : ""}`;
    case "announce":
      return `${t} ${e.peer} + ${e.route.prefix} ${routeText(e.route)}`;
    case "withdraw":
      return `${t} ${e.peer} - ${e.prefix}`;
    case "best":
      return e.route ? `${t} best ${e.prefix} from ${e.route.peer} ${routeText(e.route)}` : `${t} best ${e.prefix} none (no route left)`;
    case "log":
      return `${t} ${e.level}: ${e.msg}`;
    default: {
      // An event type newer than this CLI: show it raw rather than nothing.
      const raw = e as { type?: unknown };
      return `${t} ${String(raw.type)}: ${JSON.stringify(e)}`;
    }
  }
}
