/**
 * The table injector of tests/interop/stall.test.ts: one BGP session (lib/bgp
 * Session) that, once Established, sends a generated full IPv4 table
 * (tests/bench/table.ts) and End-of-RIB, writing only while the session is
 * writable (it waits for 'drain' above the high watermark, as the daemon's
 * Adj-RIB-Out does), then stays up answering keepalives until SIGTERM.
 *
 * Usage: bun stall-injector.ts PEER LOCAL LOCAL_AS PEER_AS HOLD PREFIXES
 * Prints "state A -> B (reason)", "sent N prefixes in M messages", errors.
 */
import { Session } from "../../lib/bgp/session.ts";
import { AFI, SAFI } from "../../lib/bgp/types.ts";
import { parseAddr } from "../../lib/core/addr.ts";
import { buildTable, encodeGroups } from "../bench/table.ts";

const [peer, local, localAs, peerAs, hold, count] = process.argv.slice(2);
if (!peer || !local || !localAs || !peerAs || !hold || !count) {
  console.error("usage: stall-injector.ts PEER LOCAL LOCAL_AS PEER_AS HOLD PREFIXES");
  process.exit(2);
}
const nh = parseAddr(local)?.addr;
if (!nh || nh.length !== 4) throw new Error(`local address ${local}: expected an IPv4 address`);
const table = buildTable({ v4: Number(count), v6: 0, peerAs: Number(localAs), nextHop4: nh, nextHop6: new Uint8Array(16) });
const msgs = encodeGroups(table.groups, { nextHop4: nh, nextHop6: new Uint8Array(16) });

const s = new Session({
  peerAddress: peer,
  localAddress: local,
  localAs: Number(localAs),
  remoteAs: Number(peerAs),
  routerId: local,
  holdTime: Number(hold),
  connectRetry: 1,
  families: [{ afi: AFI.IPV4, safi: SAFI.UNICAST }],
});
s.on("log", (l) => {
  if (l.level !== "debug") console.log(`${l.level}: ${l.msg}`);
});
s.on("state", (e) => console.log(`state ${e.from} -> ${e.to} (${e.reason})`));
s.on("notificationReceived", (n) => console.log(`received NOTIFICATION ${n.code}/${n.subcode}`));

let next = 0;
/** Write while writable; on 'drain' go on. */
function pump(): void {
  while (next < msgs.length && s.writable) s.sendUpdate(msgs[next++]!);
  if (next === msgs.length) {
    console.log(`sent ${table.prefixes} prefixes in ${msgs.length} messages`);
    next++;
  }
}
s.on("established", () => {
  next = 0;
  console.log("established");
  pump();
});
s.on("drain", () => {
  if (next <= msgs.length) pump();
});
process.on("SIGTERM", () => {
  void s.stop({ message: "injector done" }).then(() => process.exit(0));
});
s.start();
