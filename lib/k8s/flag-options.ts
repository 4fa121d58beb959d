/**
 * The command-line flags of `bgpctl watch-k8s`, declared on its commander
 * command (descriptions name the config key each one sets). Apart from
 * lib/k8s/flags.ts, which turns them into a configuration, so that
 * declaring them loads neither the YAML parser nor the config schema: every
 * other CLI command starts without them.
 */
import type { Command } from "commander";

/** Declares the flags on `watch-k8s` (descriptions name the config key each one sets). */
export function addK8sFlags(cmd: Command): Command {
  return cmd
    .option("-c, --config <file>", "configuration file (YAML) with a kubernetes: section; without it, every default (as a file with only \"kubernetes: {}\") and the flags below")
    .option("--node-name <name>", "this node's Node name (kubernetes.nodeName; default $NODE_NAME, then the hostname)")
    .option("--kubeconfig <file>", "kubeconfig file (kubernetes.kubeconfig; default $KUBECONFIG, in-cluster, ~/.kube/config)")
    .option("--cluster-asn <asn>", "the cluster's AS number (kubernetes.asn; default 64512)")
    .option("--peer-router-ips <list>", "external BGP peers (top-of-rack), comma-separated addresses (kubernetes.peers); they import nothing")
    .option("--peer-router-asns <list>", "their AS numbers, comma-separated: one per --peer-router-ips address, or one for all")
    .option("--peer-router-passwords-file <file>", "TCP-MD5 passwords: one per line, line N for the Nth --peer-router-ips address (an empty line: none)")
    .option("--advertise-cluster-ip", "advertise Services' cluster IPs (kubernetes.services.clusterIPs; default on)")
    .option("--no-advertise-cluster-ip", "do not advertise cluster IPs")
    .option("--advertise-external-ip", "advertise Services' external IPs (kubernetes.services.externalIPs; default on)")
    .option("--no-advertise-external-ip", "do not advertise external IPs")
    .option("--advertise-loadbalancer-ip", "advertise Services' load-balancer IPs (kubernetes.services.loadBalancerIPs; default on)")
    .option("--no-advertise-loadbalancer-ip", "do not advertise load-balancer IPs")
    .option("--cluster-ip-ranges <list>", "Service cluster IP ranges every node advertises as aggregates, comma-separated CIDRs (kubernetes.services.clusterIPRanges)")
    .option("--external-ip-ranges <list>", "Service external IP ranges advertised as aggregates (kubernetes.services.externalIPRanges)")
    .option("--loadbalancer-ip-ranges <list>", "Service load-balancer IP ranges advertised as aggregates (kubernetes.services.loadBalancerIPRanges)")
    .option("--health-port <port>", "serve /healthz and /readyz on this port (health.port; default: no endpoint without a health: section)");
}
