/**
 * Test PKI for the Kubernetes API emulator and the tests that talk to it:
 * a throw-away CA, a server certificate for the emulator (subjectAltName with
 * the given IPs and DNS names) and a client certificate the way kubelets carry
 * them (CN=system:node:test, O=system:nodes, extendedKeyUsage clientAuth).
 * EC P-256 keys, made with the `openssl` CLI; every openssl call is bounded
 * by a timeout. Each `makePki` call makes a new, unrelated CA (two calls give
 * the CA for negative tests).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Pki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  paths: { ca: string; caKey: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string };
}

const OPENSSL_TIMEOUT_MS = 15_000;

function openssl(args: string[], cwd: string): void {
  const bin = Bun.which("openssl") ?? "/usr/bin/openssl";
  const r = Bun.spawnSync([bin, ...args], { cwd, stdout: "pipe", stderr: "pipe", timeout: OPENSSL_TIMEOUT_MS, stdin: "ignore" });
  if (r.exitCode !== 0) {
    const why = r.exitCode === null ? `killed (timeout ${OPENSSL_TIMEOUT_MS} ms?)` : `exit ${r.exitCode}`;
    throw new Error(`pki: openssl ${args.join(" ")} failed (${why}):\n${r.stderr.toString().slice(-2000)}`);
  }
}

function ecKey(dir: string, file: string): void {
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file], dir);
}

/**
 * Make a CA, a server and a client certificate under `dir` (created if
 * missing). Returns the PEM texts and the file paths.
 */
export function makePki(dir: string, opts: { serverIPs: string[]; serverNames?: string[] }): Pki {
  mkdirSync(dir, { recursive: true });
  const p = {
    ca: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "client.crt"),
    clientKey: join(dir, "client.key"),
  };
  // A unique CA name, so two PKIs never look alike.
  const caName = `bgpctl-test-ca-${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e9)}`;
  ecKey(dir, p.caKey);
  openssl(
    ["req", "-x509", "-new", "-key", p.caKey, "-sha256", "-days", "3650", "-subj", `/CN=${caName}`,
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
      "-out", p.ca],
    dir,
  );

  // Server certificate.
  const sans = [...opts.serverIPs.map((ip) => `IP:${ip}`), ...(opts.serverNames ?? []).map((n) => `DNS:${n}`)];
  ecKey(dir, p.serverKey);
  openssl(["req", "-new", "-key", p.serverKey, "-subj", "/CN=kube-apiserver", "-out", join(dir, "server.csr")], dir);
  writeFileSync(
    join(dir, "server.ext"),
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      ...(sans.length ? [`subjectAltName=${sans.join(",")}`] : []),
    ].join("\n") + "\n",
  );
  openssl(
    ["x509", "-req", "-in", join(dir, "server.csr"), "-CA", p.ca, "-CAkey", p.caKey, "-CAcreateserial", "-days", "3650", "-sha256",
      "-extfile", join(dir, "server.ext"), "-out", p.serverCert],
    dir,
  );

  // Client certificate (what a kubelet has).
  ecKey(dir, p.clientKey);
  openssl(["req", "-new", "-key", p.clientKey, "-subj", "/O=system:nodes/CN=system:node:test", "-out", join(dir, "client.csr")], dir);
  writeFileSync(
    join(dir, "client.ext"),
    ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=clientAuth"].join("\n") + "\n",
  );
  openssl(
    ["x509", "-req", "-in", join(dir, "client.csr"), "-CA", p.ca, "-CAkey", p.caKey, "-CAcreateserial", "-days", "3650", "-sha256",
      "-extfile", join(dir, "client.ext"), "-out", p.clientCert],
    dir,
  );

  const read = (f: string) => readFileSync(f, "utf8");
  return {
    caCert: read(p.ca),
    caKey: read(p.caKey),
    serverCert: read(p.serverCert),
    serverKey: read(p.serverKey),
    clientCert: read(p.clientCert),
    clientKey: read(p.clientKey),
    paths: p,
  };
}
