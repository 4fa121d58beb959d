/**
 * `bgpctl show k8s` as text (birdc / gobgp style): a header with the node,
 * AS, router id, role and sync state, then the Resources, Peers, Service
 * ranges, Originated, Services (one line per IP: the form it takes, its host
 * route, a Service range's aggregate or none, with the reason) and Problems
 * sections, and the Overlay (device, and per remote node's next hop: connected,
 * overlay with its VTEP, or unreachable with the reason) when it runs. Columns aligned with spaces, no colours. A pure function
 * of the K8sStatus JSON (`--json` prints that instead).
 */
import type { K8sServiceIp, K8sServiceStatus, K8sStatus } from "./types.ts";

type Align = "l" | "r";

/** Columns separated by two spaces, each as wide as its widest cell; the last column is not padded; indented by `indent`. */
function table(header: string[], rows: string[][], align: Align[], indent = "  "): string {
  const all = [header, ...rows];
  const w = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all
    .map(
      (r) =>
        indent +
        r
          .map((c, i) => (align[i] === "r" ? c.padStart(w[i]!) : i === r.length - 1 ? c : c.padEnd(w[i]!)))
          .join("  ")
          .trimEnd(),
    )
    .map((l) => l + "\n")
    .join("");
}

const dash = (s: string | undefined | null) => (s === undefined || s === null || s === "" ? "-" : s);
const yesNo = (b: boolean) => (b ? "yes" : "no");

function trafficPolicies(s: K8sServiceStatus): string {
  const p: string[] = [];
  if (s.externalTrafficPolicy) p.push(`ext=${s.externalTrafficPolicy}`);
  if (s.internalTrafficPolicy) p.push(`int=${s.internalTrafficPolicy}`);
  return p.length ? p.join(",") : "-";
}

/** A Service IP's form: "aggregate 10.96.0.0/12", "host route" or "not advertised". */
function ipForm(ip: K8sServiceIp): string {
  if (ip.form === "aggregate") return `aggregate ${ip.range ?? "?"}`;
  return ip.form === "host" ? "host route" : "not advertised";
}

export function formatK8sStatus(s: K8sStatus): string {
  const out: string[] = [];
  const role = s.role === "mesh" ? "mesh" : `${s.role === "reflector" ? "route reflector" : "route reflector client"}, cluster id ${dash(s.clusterId)}`;
  out.push(`Kubernetes node ${s.node}${s.nodeFound ? "" : " (Node object not found)"}\n`);
  out.push(`  AS ${s.asn}, router id ${dash(s.routerId)}, role ${role}\n`);
  out.push(`  Sync: ${s.synced ? "synced" : "not synced (waiting for the first full list of every resource)"}\n`);
  const addrs = [s.addresses.ipv4, s.addresses.ipv6].filter((a): a is string => !!a);
  out.push(`  Addresses: ${addrs.length ? addrs.join(", ") : "none"}\n`);
  out.push(`  Pod CIDRs: ${s.podCidrs.length ? s.podCidrs.join(", ") : "none"}\n`);
  if (s.servicesWithdrawn) out.push(`  Service IPs withdrawn: ${s.servicesWithdrawn}\n`);
  if (s.derivations) out.push(`  Derivations: ${s.derivations.complete} complete, ${s.derivations.delta} from changes\n`);

  const section = (title: string, count: number, body: () => string) => {
    out.push("\n");
    if (count === 0) out.push(`${title}: none\n`);
    else out.push(`${title} (${count}):\n${body()}`);
  };

  section("Resources", s.resources.length, () =>
    table(
      ["RESOURCE", "SYNCED", "OBJECTS", "VERSION", "LISTS", "WATCHES", "RELISTS", "ERRORS", "LAST ERROR"],
      s.resources.map((r) => [
        r.resource,
        yesNo(r.synced),
        String(r.objects),
        dash(r.resourceVersion),
        String(r.lists),
        String(r.watches),
        String(r.relists),
        String(r.errors),
        dash(r.lastError),
      ]),
      ["l", "l", "r", "l", "r", "r", "r", "r", "l"],
    ),
  );

  section("Peers", s.peers.length, () =>
    table(
      ["ADDRESS", "AS", "KIND", "SOURCE", "NODE", "FAMILIES"],
      s.peers.map((p) => [p.address, String(p.asn), p.kind, p.source, dash(p.node), p.families.join(",")]),
      ["l", "r", "l", "l", "l", "l"],
    ),
  );

  section("Service ranges", s.serviceRanges.length, () =>
    table(
      ["PREFIX", "KIND", "STATE", "REASON"],
      s.serviceRanges.map((r) => [r.prefix, r.kind, r.advertised ? "ADVERTISED" : "withdrawn", r.reason]),
      ["l", "l", "l", "l"],
    ),
  );

  section("Originated", s.originated.length, () =>
    table(
      ["PREFIX", "KIND", "SERVICE", "COMMUNITIES", "LARGE COMMUNITIES"],
      s.originated.map((o) => [
        o.prefix,
        o.kind,
        o.aggregate ? "(Service range)" : dash(o.service),
        o.communities.length ? o.communities.join(" ") : "-",
        o.largeCommunities.length ? o.largeCommunities.join(" ") : "-",
      ]),
      ["l", "l", "l", "l", "l"],
    ),
  );

  section("Services", s.services.length, () => {
    const rows: string[][] = [];
    for (const svc of s.services) {
      const head = [svc.name, svc.type, trafficPolicies(svc), `${svc.readyLocal}/${svc.readyTotal}`];
      const blank = head.map(() => "");
      if (svc.ignored) {
        rows.push([...head, "-", "-", "ignored", svc.ignored]);
        continue;
      }
      if (svc.ips.length === 0) {
        rows.push([...head, "-", "-", "-", "no IP"]);
        continue;
      }
      svc.ips.forEach((ip, i) => {
        rows.push([...(i === 0 ? head : blank), ip.kind, ip.ip, ipForm(ip), ip.reason]);
      });
    }
    return table(["SERVICE", "TYPE", "POLICY", "READY", "KIND", "IP", "FORM", "REASON"], rows, ["l", "l", "l", "r", "l", "l", "l", "l"]);
  });

  if (s.overlay) {
    const o = s.overlay;
    out.push("\n");
    const dev = o.state === "up" ? `${o.device} (ifindex ${o.ifindex}) up` : o.state === "error" ? `${o.device}: error` : `${o.device}: absent`;
    out.push(`Overlay: mode ${o.mode}, ${dev}, vni ${o.vni}, port ${o.port}${o.mtu !== undefined ? `, mtu ${o.mtu}` : ""}${o.local ? `, local ${o.local}` : ""}${o.mac ? `, mac ${o.mac}` : ""}${o.vteps.length ? `, vtep ${o.vteps.join(" ")}` : ""}\n`);
    if (o.nodes.length)
      out.push(
        table(
          ["NODE", "NEXT HOP", "UNDERLAY", "MAC", "PATH", "VTEP", "INSTALLED", "REASON"],
          o.nodes.map((n) => [n.node, n.nextHop, dash(n.underlay), dash(n.mac), n.path, dash(n.vtep), n.path === "overlay" ? yesNo(n.installed) : "-", dash(n.reason)]),
          ["l", "l", "l", "l", "l", "l", "l", "l"],
        ),
      );
    for (const p of o.problems) out.push(`  problem: ${p}\n`);
  }

  out.push("\n");
  if (s.problems.length === 0) out.push("Problems: none\n");
  else {
    out.push(`Problems (${s.problems.length}):\n`);
    for (const p of s.problems) out.push(`  ${p.object}${p.field ? ` ${p.field}` : ""}: ${p.message}\n`);
  }
  return out.join("");
}
