/**
 * STIR/SHAKEN signing end to end: sipp customers -> didgate (stir.sign with a key from a test PKI)
 * -> sipp carriers. The carrier's INVITE carries an Identity header whose PASSporT verifies with
 * the certificate's public key and says A (customer owns the caller ID), B (caller_id: any, number
 * not theirs) or C (a DID forwarded by didgate to a phone number).
 */
import { X509Certificate } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import type { SipMessage } from "../../src/sip/index.js";
import { decodePassport, parseIdentity, verifySignature } from "../../src/stir/passport.js";
import { startApp, tempDir } from "../helpers/app.js";
import { freePort, killAllSipp } from "../helpers/sipp.js";
import { makePki, type TestPki } from "../stir/pki.js";
import { startUac, startUas, ok } from "./sip-util.js";

let pki: TestPki;
let app: Didgate;
let udp = 0;
const P: Record<string, number> = {};

function passport(inv: SipMessage | undefined): { claims: Record<string, unknown>; valid: boolean; ppt: string | null } {
  expect(inv, "carrier got no INVITE").toBeDefined();
  const ids = inv!.getAll("identity");
  expect(ids.length).toBe(1);
  const id = parseIdentity(ids[0]!)!;
  expect(id.info).toBe("https://certs.example.com/sp.pem");
  const p = decodePassport(id.token)!;
  const leaf = new X509Certificate(pki.chainPem.slice(0, pki.chainPem.indexOf("-----END CERTIFICATE-----") + 25));
  return { claims: p.claims, valid: verifySignature(p, leaf.publicKey), ppt: id.ppt };
}

beforeAll(async () => {
  pki = makePki();
  for (const n of ["a", "b", "c"]) P[n] = await freePort();
  const dir = tempDir();
  writeFileSync(join(dir, "sp.key"), pki.spKeyPem);
  writeFileSync(
    join(dir, "routes.yaml"),
    YAML.stringify({
      routes: {
        "+15125550101": { tenant: "acme", voice: { targets: ["sip:pbx@127.0.0.3:9"] } },
        "+15125550300": { tenant: "acme", voice: { targets: ["tel:+33312340000"] } },
      },
      outbound: { "+331*": { voice: ["c-a"] }, "+332*": { voice: ["c-b"] }, "+333*": { voice: ["c-c"] } },
    }),
  );
  udp = await freePort();
  ({ app } = await startApp(
    {
      sip: {
        listen: [`udp://127.0.0.1:${udp}`],
        timers: { t1_ms: 30 },
        trunks: [
          { name: "carrier", sources: ["127.0.0.1"], country_code: "1" },
          { name: "c-a", termination: `sip:127.0.0.1:${P.a}` },
          { name: "c-b", termination: `sip:127.0.0.1:${P.b}` },
          { name: "c-c", termination: `sip:127.0.0.1:${P.c}` },
        ],
        customers: [
          { name: "owned", tenant: "acme", sources: ["127.0.0.2"], country_code: "1" },
          { name: "any", tenant: "acme", sources: ["127.0.0.6"], country_code: "1", caller_id: "any" },
        ],
      },
      routes: { file: "routes.yaml", watch: false },
      stir: { sign: { x5u: "https://certs.example.com/sp.pem", key: "sp.key" } },
    },
    dir,
  ));
}, 30_000);

afterAll(async () => {
  await app?.stop(0);
  killAllSipp();
  pki.cleanup();
});

describe("STIR/SHAKEN signing end to end", () => {
  it("a customer that owns its caller ID: attest A, signature valid", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.a!);
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+33112340001", caller: "+15125550101", ip: "127.0.0.2" });
    await ok(uac, "customer");
    await ok(uas, "carrier");
    const p = passport(uas.received("INVITE")[0]);
    expect(p.valid).toBe(true);
    expect(p.claims).toMatchObject({ attest: "A", orig: { tn: "15125550101" }, dest: { tn: ["33112340001"] } });
    expect(typeof p.claims.origid).toBe("string");
    expect(Math.abs(Date.now() / 1000 - (p.claims.iat as number))).toBeLessThan(30);
  });

  it("caller_id: any with a number the customer does not own: attest B", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.b!);
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+33212340001", caller: "+19995550000", ip: "127.0.0.6" });
    await ok(uac, "customer");
    await ok(uas, "carrier");
    const p = passport(uas.received("INVITE")[0]);
    expect(p.valid).toBe(true);
    expect(p.claims).toMatchObject({ attest: "B", orig: { tn: "19995550000" } });
  });

  it("a DID forwarded to a phone number: attest C", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.c!);
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550300", caller: "+447700900123" });
    await ok(uac, "carrier call");
    await ok(uas, "forward carrier");
    const inv = uas.received("INVITE")[0];
    const p = passport(inv);
    expect(p.valid).toBe(true);
    expect(p.claims).toMatchObject({ attest: "C", orig: { tn: "447700900123" }, dest: { tn: ["33312340000"] } });
    expect(inv!.get("diversion")).toContain("+15125550300");
    const text = await app.registry.metrics();
    expect(text).toMatch(/didgate_stir_signatures_total\{attest="C"\} 1/);
  });
});
