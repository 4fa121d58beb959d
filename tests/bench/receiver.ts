/**
 * The bgpctl side of the receive benchmark: a passive session that decodes a
 * full table into a minimal Adj-RIB-In (prefix → interned attribute set) and
 * prints one JSON line when End-of-RIB arrives. Run by tests/bench/run.ts.
 * Usage: bun receiver.ts LISTEN_ADDR PORT PEER_ADDR LOCAL_AS PEER_AS
 */
import { Listener } from "../../lib/bgp/listener.ts";
import { Session } from "../../lib/bgp/session.ts";
import type { PathAttributes } from "../../lib/bgp/attributes.ts";
import { walkNlri } from "../../lib/bgp/prefix.ts";
import { AFI } from "../../lib/core/addr.ts";
import { SAFI } from "../../lib/bgp/types.ts";
import { type UpdateMessage, announcedBlocks, withdrawnBlocks } from "../../lib/bgp/update.ts";

const [listenAddr, port, peer, localAs, peerAs] = process.argv.slice(2);
const rib = new Map<number, PathAttributes>();
let first = 0;
const s = new Session({
  peerAddress: peer!,
  localAddress: listenAddr!,
  localAs: Number(localAs),
  remoteAs: Number(peerAs),
  routerId: "127.0.0.1",
  holdTime: 240,
  passive: true,
  families: [{ afi: AFI.IPV4, safi: SAFI.UNICAST }],
  capabilities: [],
});
s.on("update", (u: UpdateMessage) => {
  if (!first) first = performance.now();
  const attrs = u.attrs;
  for (const b of withdrawnBlocks(u)) walkNlri(b.buf, b.start, b.end, b.addPath, (buf, o, len) => rib.delete(key(buf, o, len)));
  for (const b of announcedBlocks(u)) walkNlri(b.buf, b.start, b.end, b.addPath, (buf, o, len) => rib.set(key(buf, o, len), attrs!));
  if (u.endOfRib) {
    process.stdout.write(JSON.stringify({ event: "eor", prefixes: rib.size, receiveMs: performance.now() - first }) + "\n");
  }
});
/** IPv4 prefix key: address * 64 + length, exact in a double. */
function key(b: Uint8Array, o: number, len: number): number {
  let a = 0;
  const n = (len + 7) >> 3;
  for (let i = 0; i < 4; i++) a = a * 256 + (i < n ? b[o + i]! : 0);
  return a * 64 + len;
}
const l = new Listener([s]);
await l.listen({ address: listenAddr!, port: Number(port) });
s.start();
process.stdout.write(JSON.stringify({ event: "ready" }) + "\n");
process.on("SIGTERM", () => {
  void s.stop({}).finally(() => process.exit(0));
});
