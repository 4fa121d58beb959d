/**
 * Local addresses for next-hop selection: given the local address of a
 * session, find an address of the other family on the same interface (an
 * IPv6 next hop for IPv6 routes carried over an IPv4 session, and back).
 */
import { networkInterfaces } from "node:os";
import { AFI } from "./types.ts";

/** An address of family `afi` on the interface that holds `local` (global before link-local), or null. */
export function siblingAddress(local: string, afi: number): string | null {
  const want = afi === AFI.IPV6 ? "IPv6" : "IPv4";
  const bare = local.replace(/^::ffff:/, "");
  for (const addrs of Object.values(networkInterfaces())) {
    if (!addrs?.some((a) => a.address === bare)) continue;
    const usable = addrs.filter((a) => a.family === want && !(want === "IPv6" && a.address.toLowerCase().startsWith("fe80")));
    const pick = usable.find((a) => !a.internal) ?? usable[0];
    if (pick) return pick.address;
  }
  return null;
}
