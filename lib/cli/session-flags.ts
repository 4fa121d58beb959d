/**
 * The session flags shared by `bgpctl peer` and the one-shot
 * `bgpctl show rib --peer`, and their translation to StandaloneOptions.
 * The TCP-MD5 flags (`addPasswordFlags`) are only on `bgpctl peer`.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
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
} from "./args.ts";

export function addSessionFlags(cmd: Command): Command {
  return cmd
    .option("--remote-as <asn>", "the peer's AS number (required)")
    .option("--local-as <asn>", "our AS number (required)")
    .option("--router-id <id>", "BGP identifier (default: the session's local IPv4 address, or one derived from the IPv6 address)")
    .option("--port <port>", "TCP port: the peer's port, or the port to listen on with --passive", "179")
    .option("--local-address <addr>", "local address to connect from (or listen on with --passive)")
    .option("--passive", "wait for the peer to connect")
    .option("--hold-time <seconds>", "hold time: 0 or 3..65535", "90")
    .option("--connect-retry <seconds>", "connect retry time", "5")
    .option("--family <list>", "address families: ipv4, ipv6 or ipv4,ipv6", "ipv4,ipv6")
    .option("--advertise <prefix>", "announce this prefix (repeatable)", collect)
    .option("--next-hop <addr>", "next hop for announced prefixes (one per family; default: the local address)", collect)
    .option("--community <a:b>", "community on announced prefixes (repeatable)", collect)
    .option("--large-community <a:b:c>", "large community on announced prefixes (repeatable)", collect)
    .option("--kernel", "install the peer's routes in the kernel (rtnetlink; needs CAP_NET_ADMIN)")
    .option("--kernel-table <id>", "routing table for --kernel (default 254, main)", "254")
    .option("--kernel-protocol <n>", "route protocol number for --kernel (default 186, bgp)", "186")
    .option("--kernel-metric <n>", "route metric for --kernel (default 20)", "20");
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
    try {
      pw = readFileSync(f.passwordFile, "utf8");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : (e as Error).message;
      throw new UsageError(`--password-file: ${f.passwordFile}: ${why}`);
    }
    pw = pw.replace(/\r?\n$/, "");
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
  /** Only on commands with addPasswordFlags. */
  password?: string;
  passwordFile?: string;
}

export function sessionOptions(peer: string, f: RawSessionFlags): StandaloneOptions {
  parseIpAddress("ADDR", peer);
  if (f.remoteAs === undefined) throw new UsageError("--remote-as is required");
  if (f.localAs === undefined) throw new UsageError("--local-as is required");
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
  if (f.localAddress !== undefined) opts.localAddress = parseIpAddress("--local-address", f.localAddress);
  const password = passwordOption(f);
  if (password !== undefined) opts.password = password;
  if (f.routerId !== undefined) opts.routerId = parseRouterId("--router-id", f.routerId);
  return opts;
}
