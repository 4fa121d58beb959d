/**
 * The session flags shared by `bgpctl peer` and the one-shot
 * `bgpctl show rib --peer`, and their translation to StandaloneOptions.
 * The TCP-MD5 flags (`addPasswordFlags`) are only on `bgpctl peer`.
 */
import { type Command, Option } from "commander";
import { md5PasswordProblem } from "../../ffi/tcp-md5.ts";
import { checkNextHops, type StandaloneOptions } from "../standalone/speaker.ts";
import { AFI } from "../core/addr.ts";
import { SAFI } from "../bgp/types.ts";
import {
  UsageError,
  collect,
  parseAsn,
  parseCommunityArg,
  parseFamilies,
  parseHoldTime,
  parseIntIn,
  parseIpAddress,
  parseLargeCommunityArg,
  parsePrefixArg,
  parseRouterId,
  readFlagFile,
} from "./args.ts";

/** Where the session flags go in a command's help, and what makes them required there. */
export interface SessionFlagsHelp {
  /** Help group heading (e.g. the one-shot form of a command that also talks to the daemon); default: the command's options. */
  group?: string;
  /** When --remote-as and --local-as are required, e.g. "with --peer"; default: always. */
  requiredWhen?: string;
  /** Leave out the announcement flags (--advertise, --next-hop, --community, --large-community), e.g. where the command declares its own. */
  withoutAnnouncements?: boolean;
}

export function addSessionFlags(cmd: Command, help: SessionFlagsHelp = {}): Command {
  const req = help.requiredWhen ? `required ${help.requiredWhen}` : "required";
  const add = (flags: string, description: string, parse?: (v: string, prev: string[] | undefined) => string[], dflt?: string) => {
    const o = new Option(flags, description);
    if (parse) o.argParser(parse);
    if (dflt !== undefined) o.default(dflt);
    if (help.group) o.helpGroup(help.group);
    cmd.addOption(o);
  };
  add("--remote-as <asn>", `the peer's AS number (${req})`);
  add("--local-as <asn>", `our AS number (${req})`);
  add("--router-id <id>", "BGP identifier (default: the session's local IPv4 address, or one derived from the IPv6 address)");
  add("--port <port>", "TCP port: the peer's port, or the port to listen on with --passive", undefined, "179");
  add("--local-address <addr>", "local address to connect from (or listen on with --passive)");
  add("--passive", "wait for the peer to connect");
  add("--hold-time <seconds>", "hold time: 0 or 3..65535", undefined, "90");
  add("--connect-retry <seconds>", "connect retry time", undefined, "5");
  add("--multihop <ttl>", "eBGP multihop: send with this TTL 1..255 (default: TTL 1 for eBGP, the system default for iBGP)");
  add("--ttl-security <hops>", "GTSM (RFC 5082): send with TTL 255, accept only packets from at most this many hops (1..254); not with --multihop");
  add("--family <list>", "address families: ipv4, ipv6 or ipv4,ipv6", undefined, "ipv4,ipv6");
  if (!help.withoutAnnouncements) {
    add("--advertise <prefix>", "announce this prefix (repeatable)", collect);
    add("--next-hop <addr>", "next hop for announced prefixes (one per family; default: the local address)", collect);
    add("--community <a:b>", "community on announced prefixes (repeatable)", collect);
    add("--large-community <a:b:c>", "large community on announced prefixes (repeatable)", collect);
  }
  add("--kernel", "install the peer's routes in the kernel (rtnetlink; needs CAP_NET_ADMIN)");
  add("--kernel-table <id>", "routing table for --kernel (254: main)", undefined, "254");
  add("--kernel-protocol <n>", "route protocol number for --kernel (186: bgp)", undefined, "186");
  add("--kernel-metric <n>", "route metric for --kernel", undefined, "20");
  return cmd;
}

/** --password / --password-file (TCP-MD5, RFC 2385), for commands that run a session of their own. */
export function addPasswordFlags(cmd: Command): Command {
  return cmd
    .option("--password <text>", "TCP-MD5 signature password (RFC 2385), 1..80 bytes; visible in ps, prefer --password-file")
    .option("--password-file <path>", "read the TCP-MD5 password from this file (one trailing newline is dropped)");
}

/** The TCP-MD5 password from --password or --password-file; undefined when neither is given. UsageError when unusable. */
export function passwordOption(f: { password?: string; passwordFile?: string }): string | undefined {
  if (f.password !== undefined && f.passwordFile !== undefined) throw new UsageError("--password and --password-file: give one of them");
  let pw: string;
  let flag: string;
  if (f.password !== undefined) {
    pw = f.password;
    flag = "--password";
  } else if (f.passwordFile !== undefined) {
    flag = "--password-file";
    pw = readFlagFile(flag, f.passwordFile).replace(/\r?\n$/, "");
  } else return undefined;
  const problem = md5PasswordProblem(pw);
  if (problem) throw new UsageError(`${flag}: ${problem}`);
  return pw;
}

export interface RawSessionFlags {
  remoteAs?: string;
  localAs?: string;
  routerId?: string;
  port: string;
  localAddress?: string;
  passive?: boolean;
  holdTime: string;
  connectRetry: string;
  family: string;
  advertise?: string[];
  nextHop?: string[];
  community?: string[];
  largeCommunity?: string[];
  kernel?: boolean;
  kernelTable: string;
  kernelProtocol: string;
  kernelMetric: string;
  multihop?: string;
  ttlSecurity?: string;
  /** Only on commands with addPasswordFlags. */
  password?: string;
  passwordFile?: string;
}

/**
 * The session of `peer` (an address) from the flags. For the one-shot form of
 * a daemon command, `oneShotOf` names it ("show rib") in errors about
 * missing flags: "--remote-as is required with --peer (bgpctl show rib --peer ADDR ...)".
 */
export function sessionOptions(peer: string, f: RawSessionFlags, oneShotOf?: string): StandaloneOptions {
  parseIpAddress("ADDR", peer);
  const missing = (flag: string) =>
    new UsageError(oneShotOf ? `${flag} is required with --peer (bgpctl ${oneShotOf} --peer ADDR --remote-as N --local-as N ...)` : `${flag} is required`);
  if (f.remoteAs === undefined) throw missing("--remote-as");
  if (f.localAs === undefined) throw missing("--local-as");
  const nextHops = (f.nextHop ?? []).map((n) => parseIpAddress("--next-hop", n));
  const nhErr = checkNextHops(nextHops);
  if (nhErr) throw new UsageError(`--next-hop: ${nhErr}`);
  const families = parseFamilies("--family", f.family);
  const advertise = (f.advertise ?? []).map((p) => parsePrefixArg("--advertise", p));
  for (const p of advertise) {
    if (!families.some((x) => x.afi === p.afi && x.safi === SAFI.UNICAST)) {
      throw new UsageError(`--advertise: ${p.afi === AFI.IPV6 ? "IPv6" : "IPv4"} prefix given but --family ${f.family} does not include ${p.afi === AFI.IPV6 ? "ipv6" : "ipv4"}`);
    }
  }
  const opts: StandaloneOptions = {
    peerAddress: peer,
    port: parseIntIn("--port", f.port, 1, 65535),
    passive: !!f.passive,
    remoteAs: parseAsn("--remote-as", f.remoteAs),
    localAs: parseAsn("--local-as", f.localAs),
    holdTime: parseHoldTime("--hold-time", f.holdTime),
    connectRetry: parseIntIn("--connect-retry", f.connectRetry, 1, 65535),
    families,
    advertise,
    nextHops,
    communities: (f.community ?? []).map((c) => parseCommunityArg("--community", c)),
    largeCommunities: (f.largeCommunity ?? []).map((c) => parseLargeCommunityArg("--large-community", c)),
  };
  if (f.kernel) {
    opts.kernel = {
      table: parseIntIn("--kernel-table", f.kernelTable, 1, 4294967295),
      protocol: parseIntIn("--kernel-protocol", f.kernelProtocol, 1, 255),
      metric: parseIntIn("--kernel-metric", f.kernelMetric, 0, 4294967295),
    };
  }
  if (f.multihop !== undefined && f.ttlSecurity !== undefined) throw new UsageError("--multihop and --ttl-security: give one of them (--ttl-security N already allows N hops)");
  if (f.multihop !== undefined) opts.multihop = parseIntIn("--multihop", f.multihop, 1, 255);
  if (f.ttlSecurity !== undefined) opts.ttlSecurity = parseIntIn("--ttl-security", f.ttlSecurity, 1, 254);
  if (f.localAddress !== undefined) opts.localAddress = parseIpAddress("--local-address", f.localAddress);
  const password = passwordOption(f);
  if (password !== undefined) opts.password = password;
  if (f.routerId !== undefined) opts.routerId = parseRouterId("--router-id", f.routerId);
  return opts;
}
