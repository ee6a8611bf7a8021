/**
 * STIR/SHAKEN cost per call, beside the SIP work of the same call: signing a PASSporT (ES256,
 * what every outbound call to a carrier costs with stir.sign) and verifying one with the
 * certificate in cache (what an inbound call costs with stir.verify, warm), against parsing and
 * forward-rewriting a 1 KB INVITE (bench/sip-parse.ts) in the same process.
 *
 *   npm run build && node dist/bench/stir.js [--json]
 *
 * Times are process CPU per operation, the median of 7 runs. The certificate is a self-signed
 * P-256 one made with openssl and served from a loopback HTTP server (the fetch is not timed).
 */
import { execFileSync } from "node:child_process";
import { createPrivateKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseMessage, SipMessage } from "../src/sip/index.js";
import { CertCache, parsePemBundle } from "../src/stir/certs.js";
import { StirSigner } from "../src/stir/sign.js";
import { StirVerifier } from "../src/stir/verify.js";
import { cpuNs, median } from "./lib.js";
import { forwardRewrite, INVITE_BUF } from "./sip-parse.js";

const json = process.argv.includes("--json");
let sink = 0;

function time(fn: () => void, iters: number): number {
  for (let i = 0; i < Math.min(iters, 2000); i++) fn();
  const runs: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = cpuNs();
    for (let i = 0; i < iters; i++) fn();
    runs.push((cpuNs() - t0) / iters);
  }
  return median(runs);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "didgate-stir-bench-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem", "-out", "c.pem", "-days", "2", "-subj", "/CN=bench SP"], { cwd: dir, stdio: "ignore" });
  const certPem = readFileSync(join(dir, "c.pem"), "utf8");
  const key = createPrivateKey(readFileSync(join(dir, "k.pem")));
  rmSync(dir, { recursive: true, force: true });
  const server = http.createServer((_q, s) => s.end(certPem));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const x5u = `http://127.0.0.1:${(server.address() as AddressInfo).port}/c.pem`;
  const certs = new CertCache({ anchors: parsePemBundle(certPem), allowHttp: true });
  if (!(await certs.get(x5u)).ok) throw new Error("certificate did not load");
  server.close();
  const signer = new StirSigner({ key, x5u });
  const verifier = new StirVerifier({ certs });
  const caller = "+15125550100";
  const did = "+442071838750";
  const headers = Array.from({ length: 64 }, () => signer.sign("A", caller, did).header);
  let k = 0;

  const rows: Array<[string, number, number]> = [];
  const sip = time(() => {
    const m = parseMessage(INVITE_BUF) as SipMessage;
    sink += forwardRewrite(m).length;
  }, 20_000);
  rows.push(["sip_parse_forward_rewrite_invite", sip, 20_000]);
  const sign = time(() => {
    sink += signer.sign("A", caller, did).header.length;
  }, 2_000);
  rows.push(["stir_sign_passport", sign, 2_000]);
  const verify = time(() => {
    const r = verifier.verify([headers[k++ & 63]!], caller, did, 1000);
    if (r instanceof Promise || r.reason !== "passed") throw new Error("not a warm pass");
    sink++;
  }, 2_000);
  rows.push(["stir_verify_warm", verify, 2_000]);
  for (const [name, ns] of rows) {
    const row = { name, entries: 1, ns_per_op: Math.round(ns), ops_per_s: Math.round(1e9 / ns), ratio_to_sip_forward: Math.round((ns / sip) * 10) / 10 };
    if (json) console.log(JSON.stringify(row));
    else console.log(name.padEnd(36) + String(row.ns_per_op).padStart(9) + " ns/op " + String(row.ops_per_s).padStart(9) + " ops/s  x" + row.ratio_to_sip_forward + " of the SIP parse+rewrite");
  }
  if (sink === 42) console.log("");
}

void main();
