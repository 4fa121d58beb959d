/**
 * The CLI commands that talk to a running daemon (`bgpctl run`) over its
 * control socket, and the shared pieces the `show` and `peer` commands use
 * for their daemon forms:
 *
 *   bgpctl advertise PREFIX... [--next-hop NH]... [--community C]... [--large-community L]... [--local-pref N] [--med N]
 *   bgpctl advertise PREFIX... --peer ADDR --remote-as N --local-as N [session flags]   (one-shot session, no daemon)
 *   bgpctl withdraw PREFIX...
 *   bgpctl monitor [--neighbor ADDR]
 *   bgpctl reload
 *   bgpctl show summary | show neighbors [ADDR] | show rib [...] | show rib summary   (commands/show.ts)
 *   bgpctl peer add ADDR ... | peer delete ADDR | peer ADDR up|down|reset             (commands/peer.ts)
 *
 * Every one takes `-s/--socket PATH` (default /run/bgpctl/bgpctl.sock, env
 * BGPCTL_SOCKET) and `-j/--json`. A daemon that does not answer is one line
 * on stderr naming the socket and exit 1; bad arguments are UsageError (exit 2).
 */
import { type Command, Option } from "commander";
import { ApiClient, DEFAULT_SOCKET_PATH, resolveSocketPath } from "../lib/api/client.ts";
import { RibTextWriter, formatFib, formatInterfaces, formatMonitorEvent, formatNeighbors, formatRibSummary, formatSummary } from "../lib/api/format.ts";
import type { AdvertiseRequest, PeerAddRequest, RibQuery } from "../lib/api/types.ts";
import { parseAddr, prefixToString } from "../lib/core/addr.ts";
import { AFI } from "../lib/core/addr.ts";
import {
  UsageError,
  parseAsn,
  parseCommunityArg,
  parseFamilies,
  parseHoldTime,
  parseIntIn,
  parseIpAddress,
  parseLargeCommunityArg,
  parsePrefixArg,
} from "../lib/cli/args.ts";
import { daemonAndOneShot, groupOptions, rejectFlags, rejectOtherForm, setFormsUsage } from "../lib/cli/forms.ts";
import { flush, writeLine } from "../lib/cli/output.ts";
import { addSessionFlags, type RawSessionFlags, sessionOptions } from "../lib/cli/session-flags.ts";
import { formatK8sStatus } from "../lib/k8s/format.ts";
import { checkNextHops } from "../lib/standalone/speaker.ts";
import { runForegroundSession } from "./peer.ts";

export interface CtlFlags {
  socket?: string;
  json?: boolean;
}

/** Adds `-s/--socket PATH` (env BGPCTL_SOCKET) and, unless the command has its own, `-j/--json`. */
export function addCtlFlags(cmd: Command, withJson = true): Command {
  cmd.addOption(new Option("-s, --socket <path>", `the daemon's control socket (default ${DEFAULT_SOCKET_PATH})`).env("BGPCTL_SOCKET"));
  if (withJson) cmd.option("-j, --json", "print JSON");
  return cmd;
}

export function ctlClient(flags: CtlFlags): ApiClient {
  return new ApiClient(resolveSocketPath(flags.socket));
}

function printJson(v: unknown): void {
  writeLine(JSON.stringify(v));
}

function printText(s: string): void {
  flush();
  process.stdout.write(s);
}

/** The session flags of lib/cli/session-flags.ts that only a session of its own uses (the one-shot forms), by attribute name. */
export const ONESHOT_SESSION_KEYS = [
  "remoteAs",
  "localAs",
  "routerId",
  "port",
  "localAddress",
  "passive",
  "holdTime",
  "connectRetry",
  "kernel",
  "kernelTable",
  "kernelProtocol",
  "kernelMetric",
] as const;

/** Every session flag of lib/cli/session-flags.ts, by attribute name. */
const SESSION_KEYS = [...ONESHOT_SESSION_KEYS, "family", "advertise", "nextHop", "community", "largeCommunity"] as const;

// ---------------------------------------------------------------------------
// show summary / neighbors / rib (wired in commands/show.ts)
// ---------------------------------------------------------------------------

export async function showSummary(flags: CtlFlags): Promise<void> {
  const s = await ctlClient(flags).summary();
  if (flags.json) printJson(s);
  else printText(formatSummary(s));
}

export async function showNeighbors(address: string | undefined, flags: CtlFlags): Promise<void> {
  if (address !== undefined) parseIpAddress("ADDR", address);
  const list = await ctlClient(flags).neighbors(address);
  if (address !== undefined && !list.length) throw new Error(`no neighbor ${address}`);
  if (flags.json) printJson(list);
  else printText(formatNeighbors(list));
}

export async function showFib(prefix: string | undefined, flags: CtlFlags): Promise<void> {
  if (prefix !== undefined) parsePrefixArg("PREFIX", prefix);
  const list = await ctlClient(flags).fib(prefix);
  if (flags.json) printJson(list);
  else printText(formatFib(list));
}

export async function showInterfaces(flags: CtlFlags): Promise<void> {
  const info = await ctlClient(flags).interfaces();
  if (flags.json) printJson(info);
  else printText(formatInterfaces(info));
}

export async function showK8s(flags: CtlFlags): Promise<void> {
  const s = await ctlClient(flags).k8s();
  if (flags.json) printJson(s);
  else printText(formatK8sStatus(s));
}

export interface ShowRibFlags extends RawSessionFlags, CtlFlags {
  neighbor?: string;
  in?: boolean;
  out?: boolean;
  as?: string;
  best?: boolean;
  limit?: string;
  ndjson?: boolean;
}

/** Options of `show rib` that only make sense against the daemon (rejected with --peer). */
export const SHOW_RIB_DAEMON_KEYS = ["neighbor", "in", "out", "as", "best", "community", "largeCommunity", "limit", "ndjson", "socket"] as const;

/**
 * Write to stdout, waiting while it does not drain (a slow reader of our
 * output slows the daemon's stream, not our memory). When the reader is gone
 * (`| head`), stop quietly, as a pipeline expects.
 */
async function writeOut(text: string): Promise<void> {
  const out = process.stdout;
  if (out.write(text)) return;
  await new Promise<void>((resolve) => {
    const settle = (gone: boolean) => {
      out.off("drain", onDrain);
      out.off("error", onError);
      out.off("close", onClose);
      if (gone) process.exit(0);
      resolve();
    };
    const onDrain = () => settle(false);
    const onError = () => settle(true);
    const onClose = () => settle(true);
    out.once("drain", onDrain);
    out.once("error", onError);
    out.once("close", onClose);
  });
}

/** A community filter: A:B, a well-known name, or a large community A:B:C. */
function communityFilter(flag: string, v: string): string {
  if (/^\d+:\d+:\d+$/.test(v)) parseLargeCommunityArg(flag, v);
  else parseCommunityArg(flag, v);
  return v;
}

/**
 * `show rib [PREFIX [longer|shorter]] [--neighbor ADDR [--in|--out]] [--community C] [--as N] [--best] [--family ipv4|ipv6]`
 * and `show rib summary`, against the daemon (the one-shot flags are refused by
 * commands/show.ts before). `cmd` tells given flags from defaults.
 */
export async function showRib(args: string[], flags: ShowRibFlags, cmd: Command): Promise<void> {
  if (args[0] === "summary") {
    if (args.length > 1) throw new UsageError(`show rib summary: unexpected argument "${args[1]}"`);
    rejectFlags(cmd, ["neighbor", "in", "out", "as", "best", "community", "largeCommunity", "family", "limit", "ndjson"], "does not apply to show rib summary");
    const s = await ctlClient(flags).ribSummary();
    if (flags.json) printJson(s);
    else printText(formatRibSummary(s));
    return;
  }
  if (args.length > 2) throw new UsageError(`show rib: unexpected argument "${args[2]}" (expected PREFIX [longer|shorter])`);
  const q: RibQuery = {};
  if (args[0] !== undefined) {
    const p = args[0];
    q.prefix = p.includes("/") ? prefixToString(parsePrefixArg("PREFIX", p)) : parseIpAddress("PREFIX", p);
    const m = args[1];
    if (m !== undefined) {
      if (m !== "longer" && m !== "shorter" && m !== "exact") throw new UsageError(`show rib: "${m}" after the prefix must be longer, shorter or exact`);
      q.match = m;
    }
  }
  if (flags.neighbor !== undefined) q.neighbor = parseIpAddress("--neighbor", flags.neighbor);
  if (flags.in && flags.out) throw new UsageError("--in and --out exclude each other");
  if ((flags.in || flags.out) && q.neighbor === undefined) throw new UsageError(`--${flags.in ? "in" : "out"} needs --neighbor ADDR`);
  if (flags.in) q.table = "in";
  if (flags.out) q.table = "out";
  const comms = [...(flags.community ?? []).map((c) => communityFilter("--community", c)), ...(flags.largeCommunity ?? []).map((c) => (parseLargeCommunityArg("--large-community", c), c))];
  if (comms.length > 1) throw new UsageError("--community: give at most one community to filter on");
  if (comms[0] !== undefined) q.community = comms[0];
  if (flags.as !== undefined) q.asn = parseAsn("--as", flags.as);
  if (flags.best) q.bestOnly = true;
  if (cmd.getOptionValueSource("family") === "cli") {
    if (flags.family !== "ipv4" && flags.family !== "ipv6") throw new UsageError(`--family: "${flags.family}" must be ipv4 or ipv6 when asking the daemon`);
    q.family = flags.family;
  }
  if (flags.limit !== undefined) q.limit = parseIntIn("--limit", flags.limit, 1, 100_000_000);
  if (flags.json && flags.ndjson) throw new UsageError("--json and --ndjson exclude each other");
  await streamRib(q, flags);
}

/**
 * Print a `show rib` answer as it streams in (NDJSON from the daemon): text
 * (RibTextWriter), `-j` a JSON array written incrementally, `--ndjson` one
 * entry per line. With --limit, a cut answer says so: in the text, or on
 * stderr for JSON (stdout stays valid JSON).
 */
async function streamRib(q: RibQuery, flags: ShowRibFlags): Promise<void> {
  flush();
  let count = 0;
  let end: { count: number; truncated: boolean };
  if (flags.json || flags.ndjson) {
    end = await ctlClient(flags).ribStream(q, async (batch) => {
      let out = "";
      for (const e of batch) {
        const t = JSON.stringify(e);
        out += flags.ndjson ? t + "\n" : (count === 0 ? "[\n" : ",\n") + t;
        count++;
      }
      await writeOut(out);
    });
    if (!flags.ndjson) await writeOut(count === 0 ? "[]\n" : "\n]\n");
    if (end.truncated) process.stderr.write(`bgpctl: show rib: truncated: the first ${q.limit} entries shown (--limit); more match\n`);
    return;
  }
  let text = "";
  const w = new RibTextWriter((t) => (text += t));
  end = await ctlClient(flags).ribStream(q, async (batch) => {
    w.add(batch);
    const t = text;
    text = "";
    if (t) await writeOut(t);
  });
  w.end(end.truncated, q.limit);
  await writeOut(text);
}

// ---------------------------------------------------------------------------
// peer add / delete / up / down / reset (wired in commands/peer.ts)
// ---------------------------------------------------------------------------

export interface PeerCtlFlags extends RawSessionFlags, CtlFlags {
  message?: string;
  soft?: string;
  description?: string;
  import?: string;
  export?: string;
  routeReflectorClient?: boolean;
  nextHopSelf?: boolean;
  shutdownMessage?: string;
  verbose?: boolean;
}

/** Options of `peer` that only the daemon forms take (rejected for the foreground session). */
export const PEER_DAEMON_KEYS = ["message", "soft", "description", "import", "export", "routeReflectorClient", "nextHopSelf", "socket"] as const;

export type PeerAction = "add" | "delete" | "up" | "down" | "reset";

export async function peerCtl(action: PeerAction, address: string | undefined, flags: PeerCtlFlags, cmd: Command): Promise<void> {
  const name = action === "add" || action === "delete" ? `peer ${action}` : `peer ADDR ${action}`;
  if (address === undefined) throw new UsageError(`${name}: ADDR is required`);
  parseIpAddress("ADDR", address);
  const done = (text: string) => {
    if (flags.json) printJson({ ok: true, action, address });
    else writeLine(`${address}: ${text}`);
  };
  const notHere = `does not apply to ${name}`;
  if (action === "add") {
    rejectFlags(cmd, ["routerId", "connectRetry", "advertise", "nextHop", "community", "largeCommunity", "shutdownMessage", "message", "soft", "verbose"], notHere);
    if (flags.remoteAs === undefined) throw new UsageError("peer add: --remote-as is required");
    const r: PeerAddRequest = { address, remoteAs: parseAsn("--remote-as", flags.remoteAs) };
    if (flags.localAs !== undefined) r.localAs = parseAsn("--local-as", flags.localAs);
    if (cmd.getOptionValueSource("port") === "cli") r.port = parseIntIn("--port", flags.port, 1, 65535);
    if (flags.localAddress !== undefined) r.localAddress = parseIpAddress("--local-address", flags.localAddress);
    if (flags.passive) r.passive = true;
    if (cmd.getOptionValueSource("holdTime") === "cli") r.holdTime = parseHoldTime("--hold-time", flags.holdTime);
    if (cmd.getOptionValueSource("family") === "cli") {
      r.families = parseFamilies("--family", flags.family).map((f) => (f.afi === AFI.IPV6 ? "ipv6" : "ipv4"));
    }
    if (flags.description !== undefined) r.description = flags.description;
    if (flags.import !== undefined) r.import = flags.import;
    if (flags.export !== undefined) r.export = flags.export;
    if (flags.routeReflectorClient) r.routeReflectorClient = true;
    if (flags.nextHopSelf) r.nextHopSelf = true;
    await ctlClient(flags).peerAdd(r);
    return done("peer added");
  }
  const sessionAndAdd = [...SESSION_KEYS, "description", "import", "export", "routeReflectorClient", "nextHopSelf", "shutdownMessage", "verbose"];
  if (action === "delete" || action === "up") {
    rejectFlags(cmd, [...sessionAndAdd, "message", "soft"], notHere);
    if (action === "delete") await ctlClient(flags).peerDelete(address);
    else await ctlClient(flags).peerUp(address);
    return done(action === "delete" ? "peer deleted" : "session enabled");
  }
  if (action === "down") {
    rejectFlags(cmd, [...sessionAndAdd, "soft"], notHere);
    if (flags.message !== undefined && Buffer.byteLength(flags.message) > 255) {
      throw new UsageError("--message: at most 255 bytes of UTF-8 (RFC 9003)");
    }
    await ctlClient(flags).peerDown(address, flags.message);
    return done("session shut down");
  }
  rejectFlags(cmd, [...sessionAndAdd, "message"], notHere);
  let soft: "in" | "out" | undefined;
  if (flags.soft !== undefined) {
    if (flags.soft !== "in" && flags.soft !== "out") throw new UsageError(`--soft: "${flags.soft}" must be in or out`);
    soft = flags.soft;
  }
  await ctlClient(flags).peerReset(address, soft);
  return done(soft ? `soft reset (${soft})` : "session reset");
}

// ---------------------------------------------------------------------------
// advertise / withdraw / monitor / reload
// ---------------------------------------------------------------------------

interface AdvertiseFlags extends RawSessionFlags, CtlFlags {
  peer?: string;
  localPref?: string;
  med?: string;
  shutdownMessage: string;
  verbose?: boolean;
}

function checkPrefixes(list: string[]): string[] {
  if (!list.length) throw new UsageError("PREFIX: give at least one prefix");
  return list.map((p) => prefixToString(parsePrefixArg("PREFIX", p)));
}

/** `advertise` asking the daemon, and `advertise --peer`: a one-shot foreground session announcing the prefixes, no daemon. */
const { daemon: ADVERTISE_DAEMON, oneShot: ADVERTISE_ONESHOT } = daemonAndOneShot(
  "advertise",
  {
    usage: "PREFIX... [--next-hop NH]... [--community C]... [--large-community L]... [--local-pref N] [--med N] [-s SOCKET]",
    heading: "Daemon form (the daemon announces them to its peers):",
    short: "PREFIX... [-s SOCKET]",
  },
  {
    usage: "PREFIX... --peer ADDR --remote-as N --local-as N [--router-id ID] [--port P] [--local-address A] [--passive] [--family ipv4,ipv6] [...]",
    heading: "One-shot form (no daemon: a session of its own to --peer, until interrupted):",
    short: "PREFIX... --peer ADDR --remote-as N --local-as N ...",
  },
);

async function advertise(prefixes: string[], flags: AdvertiseFlags, cmd: Command): Promise<void> {
  if (flags.peer !== undefined) {
    // One-shot: a foreground session announcing the prefixes, as `bgpctl peer --advertise` does.
    rejectOtherForm(cmd, ["localPref", "med", "socket"], ADVERTISE_DAEMON, "with --peer the prefixes go to a session of its own");
    const all = [...prefixes, ...(flags.advertise ?? [])];
    checkPrefixes(all);
    const opts = sessionOptions(flags.peer, { ...flags, advertise: all }, "advertise PREFIX...");
    await runForegroundSession(opts, { json: !!flags.json, verbose: !!flags.verbose, shutdownMessage: flags.shutdownMessage });
    return;
  }
  rejectOtherForm(
    cmd,
    [...ONESHOT_SESSION_KEYS, "family", "advertise", "shutdownMessage", "verbose"],
    ADVERTISE_ONESHOT,
    "without --peer the prefixes go to the daemon",
  );
  const canon = checkPrefixes(prefixes);
  const nextHops = (flags.nextHop ?? []).map((n) => parseIpAddress("--next-hop", n));
  const nhErr = checkNextHops(nextHops);
  if (nhErr) throw new UsageError(`--next-hop: ${nhErr}`);
  const base: Omit<AdvertiseRequest, "prefixes"> = {};
  if (flags.community?.length) base.communities = flags.community.map((c) => (parseCommunityArg("--community", c), c));
  if (flags.largeCommunity?.length) base.largeCommunities = flags.largeCommunity.map((c) => (parseLargeCommunityArg("--large-community", c), c));
  if (flags.localPref !== undefined) base.localPref = parseIntIn("--local-pref", flags.localPref, 0, 4294967295);
  if (flags.med !== undefined) base.med = parseIntIn("--med", flags.med, 0, 4294967295);
  // One request per next hop: given an IPv4 and an IPv6 next hop, each family's prefixes get their own.
  const requests: AdvertiseRequest[] = [];
  if (nextHops.length <= 1) {
    requests.push({ ...base, prefixes: canon, ...(nextHops[0] !== undefined ? { nextHop: nextHops[0] } : {}) });
  } else {
    for (const nh of nextHops) {
      const afi = parseAddr(nh)!.afi;
      const mine = canon.filter((p) => (p.includes(":") ? AFI.IPV6 : AFI.IPV4) === afi);
      if (mine.length) requests.push({ ...base, prefixes: mine, nextHop: nh });
    }
  }
  const client = ctlClient(flags);
  const added: string[] = [];
  for (const r of requests) added.push(...(await client.advertise(r)).added);
  if (flags.json) return printJson({ added });
  for (const p of added) writeLine(`advertised ${p}`);
  for (const p of canon) if (!added.includes(p)) writeLine(`unchanged ${p} (already advertised)`);
}

async function withdraw(prefixes: string[], flags: CtlFlags): Promise<void> {
  const canon = checkPrefixes(prefixes);
  const { removed } = await ctlClient(flags).withdraw(canon);
  if (flags.json) return printJson({ removed });
  for (const p of removed) writeLine(`withdrawn ${p}`);
  for (const p of canon) if (!removed.includes(p)) writeLine(`not advertised ${p} (nothing to withdraw)`);
}

async function monitor(flags: CtlFlags & { neighbor?: string }): Promise<void> {
  const neighbor = flags.neighbor === undefined ? undefined : parseIpAddress("--neighbor", flags.neighbor);
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    await ctlClient(flags).monitor(neighbor, (e) => writeLine(formatMonitorEvent(e)), ac.signal, flags.json ? writeLine : undefined);
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  if (!ac.signal.aborted) throw new Error("monitor: the daemon closed the stream");
}

async function reload(flags: CtlFlags): Promise<void> {
  const r = await ctlClient(flags).reload();
  if (flags.json) return printJson(r);
  if (!r.changes.length) writeLine("reloaded: no changes");
  else for (const c of r.changes) writeLine(c);
}

export function registerCtl(program: Command): void {
  // Declared in help order: the daemon form's flags, then the one-shot form's, then those of both.
  const adv = program
    .command("advertise")
    .argument("[prefix...]", "prefixes to announce")
    .description("announce prefixes from the daemon (with --peer: from a one-shot foreground session instead)")
    .option("--local-pref <n>", "LOCAL_PREF of the announced prefixes")
    .option("--med <n>", "MED (MULTI_EXIT_DISC) of the announced prefixes");
  addCtlFlags(adv, false);
  adv.option("--peer <addr>", "run one session to this peer announcing the prefixes, until interrupted");
  addSessionFlags(adv, { group: ADVERTISE_ONESHOT.heading, requiredWhen: "with --peer" });
  adv
    .option("--shutdown-message <text>", "shutdown communication sent on exit (RFC 9003)", "bgpctl advertise stopped")
    .option("-v, --verbose", "also print debug messages")
    .option("-j, --json", "print JSON");
  setFormsUsage(adv, "bgpctl", [ADVERTISE_DAEMON.usage, ADVERTISE_ONESHOT.usage]);
  groupOptions(adv, ADVERTISE_DAEMON.heading, ["--local-pref", "--med", "--socket"]);
  groupOptions(adv, ADVERTISE_ONESHOT.heading, ["--peer", "--shutdown-message", "--verbose"]);
  groupOptions(adv, "Both forms:", ["--next-hop", "--community", "--large-community", "--json"]);
  adv.action((prefixes: string[], flags: AdvertiseFlags, cmd: Command) => advertise(prefixes, flags, cmd));

  addCtlFlags(
    program.command("withdraw").argument("<prefix...>", "prefixes to withdraw").description("withdraw prefixes announced with bgpctl advertise"),
  ).action((prefixes: string[], flags: CtlFlags) => withdraw(prefixes, flags));

  addCtlFlags(
    program
      .command("monitor")
      .description("print route and session events as they happen, until interrupted (JSON lines with -j)")
      .option("--neighbor <addr>", "only events of this neighbour"),
  ).action((flags: CtlFlags & { neighbor?: string }) => monitor(flags));

  addCtlFlags(program.command("reload").description("make the daemon re-read its configuration file")).action((flags: CtlFlags) => reload(flags));
  addCtlFlags(
    program
      .command("shutdown")
      .description("stop the daemon for good: Cease (Hard Reset) to every peer, kernel routes removed; SIGTERM is a graceful restart instead"),
  ).action(async (flags: CtlFlags) => {
    const r = await ctlClient(flags).shutdown();
    if (flags.json) return printJson(r);
    writeLine("shutting down");
  });
}
