/** A throwaway STI PKI for tests, made with the openssl command line: root CA, intermediate, SP certificate (all EC P-256). */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestPki {
  dir: string;
  rootPem: string;
  /** SP certificate followed by the intermediate (what x5u serves). */
  chainPem: string;
  spKeyPem: string;
  /** A self-signed certificate and key outside the trust anchors. */
  rogueChainPem: string;
  rogueKeyPem: string;
  /** A TLS server certificate for 127.0.0.1 / localhost and its key (for an HTTPS x5u server). */
  tlsCertPem: string;
  tlsKeyPem: string;
  cleanup(): void;
}

function ossl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "didgate-pki-"));
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  writeFileSync(join(dir, "ca.ext"), "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n");
  writeFileSync(join(dir, "leaf.ext"), "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n");
  writeFileSync(join(dir, "tls.ext"), "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n");
  ossl(dir, ["req", "-x509", ...ec, "-keyout", "root.key", "-out", "root.pem", "-days", "30", "-subj", "/CN=Test STI-CA Root", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  ossl(dir, ["req", ...ec, "-keyout", "int.key", "-out", "int.csr", "-subj", "/CN=Test STI-CA Intermediate"]);
  ossl(dir, ["x509", "-req", "-in", "int.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial", "-out", "int.pem", "-days", "30", "-extfile", "ca.ext"]);
  ossl(dir, ["req", ...ec, "-keyout", "sp.key", "-out", "sp.csr", "-subj", "/CN=SHAKEN 1234/O=Test SP"]);
  ossl(dir, ["x509", "-req", "-in", "sp.csr", "-CA", "int.pem", "-CAkey", "int.key", "-CAcreateserial", "-out", "sp.pem", "-days", "30", "-extfile", "leaf.ext"]);
  ossl(dir, ["req", "-x509", ...ec, "-keyout", "rogue.key", "-out", "rogue.pem", "-days", "30", "-subj", "/CN=Rogue SP"]);
  ossl(dir, ["req", "-x509", ...ec, "-keyout", "tls.key", "-out", "tls.pem", "-days", "30", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]);
  const r = (f: string): string => readFileSync(join(dir, f), "utf8");
  return {
    dir,
    rootPem: r("root.pem"),
    chainPem: r("sp.pem") + r("int.pem"),
    spKeyPem: r("sp.key"),
    rogueChainPem: r("rogue.pem"),
    rogueKeyPem: r("rogue.key"),
    tlsCertPem: r("tls.pem"),
    tlsKeyPem: r("tls.key"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
