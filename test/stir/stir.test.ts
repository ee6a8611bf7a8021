import { createPrivateKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CertCache, parsePemBundle } from "../../src/stir/certs.js";
import { decodePassport, parseIdentity, signPassport, identityHeader } from "../../src/stir/passport.js";
import { StirSigner } from "../../src/stir/sign.js";
import { StirVerifier, withVerstat } from "../../src/stir/verify.js";
import { StirPolicy } from "../../src/edge/stir.js";
import { parseOrThrow } from "../../src/sip/index.js";
import { Registry } from "prom-client";
import { makePki, type TestPki } from "./pki.js";

const CALLER = "+15125550100";
const DID = "+442071838750";

let pki: TestPki;
let server: http.Server;
let tlsServer: https.Server;
let base = "";
let tlsBase = "";
const hits = new Map<string, number>();

beforeAll(async () => {
  pki = makePki();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const path = req.url ?? "/";
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path === "/sp.pem") {
      res.writeHead(200, { "content-type": "application/x-pem-file", "cache-control": "max-age=3600" });
      res.end(pki.chainPem);
    } else if (path === "/rogue.pem") {
      res.writeHead(200, { "content-type": "application/x-pem-file" });
      res.end(pki.rogueChainPem);
    } else if (path === "/slow.pem") {
      setTimeout(() => {
        res.writeHead(200);
        res.end(pki.chainPem);
      }, 400);
    } else if (path === "/huge.pem") {
      res.writeHead(200);
      res.end("x".repeat(200_000));
    } else {
      res.writeHead(404);
      res.end();
    }
  };
  server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  tlsServer = https.createServer({ cert: pki.tlsCertPem, key: pki.tlsKeyPem }, handler);
  await new Promise<void>((r) => tlsServer.listen(0, "127.0.0.1", r));
  tlsBase = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await new Promise((r) => tlsServer.close(r));
  pki.cleanup();
});

function verifier(opts: { allowHttp?: boolean; now?: () => number; allowAddress?: (ip: string) => boolean } = {}): { v: StirVerifier; certs: CertCache } {
  const certs = new CertCache({
    anchors: parsePemBundle(pki.rootPem),
    allowHttp: opts.allowHttp ?? true,
    tlsCa: pki.tlsCertPem,
    timeoutMs: 1000,
    maxBytes: 16 * 1024,
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.allowAddress ? { allowAddress: opts.allowAddress } : {}),
  });
  return { v: new StirVerifier({ certs, maxAgeS: 60, ...(opts.now ? { now: opts.now } : {}) }), certs };
}

function signer(x5u: string, keyPem = pki.spKeyPem, now?: () => number): StirSigner {
  return new StirSigner({ key: createPrivateKey(keyPem), x5u, ...(now ? { now } : {}) });
}

describe("STIR/SHAKEN PASSporTs", () => {
  it("a signed PASSporT round-trips: header, claims in canonical order, 64-byte ES256 signature", () => {
    const s = signer(base + "/sp.pem");
    const { header, origid } = s.sign("A", CALLER, DID);
    const id = parseIdentity(header)!;
    expect(id.info).toBe(base + "/sp.pem");
    expect(id.alg).toBe("ES256");
    expect(id.ppt).toBe("shaken");
    const p = decodePassport(id.token)!;
    expect(p.header).toEqual({ alg: "ES256", ppt: "shaken", typ: "passport", x5u: base + "/sp.pem" });
    expect(Object.keys(p.claims)).toEqual(["attest", "dest", "iat", "orig", "origid"]);
    expect(p.claims).toMatchObject({ attest: "A", dest: { tn: ["442071838750"] }, orig: { tn: "15125550100" }, origid });
    expect(p.signature.length).toBe(64);
    expect(origid).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("a valid PASSporT passes, with its attestation", async () => {
    const { v } = verifier();
    const { header } = signer(base + "/sp.pem").sign("B", CALLER, DID);
    const r = await v.verify([header], CALLER, DID, 1000);
    expect(r).toMatchObject({ verstat: "TN-Validation-Passed", attest: "B", reason: "passed", status: 0 });
  });

  it("also over HTTPS (the x5u server's certificate is verified)", async () => {
    const { v } = verifier({ allowHttp: false });
    const { header } = signer(tlsBase + "/sp.pem").sign("A", CALLER, DID);
    expect((await v.verify([header], CALLER, DID, 1000)).reason).toBe("passed");
    const plain = signer(base + "/sp.pem").sign("A", CALLER, DID).header;
    expect(await v.verify([plain], CALLER, DID, 1000)).toMatchObject({ reason: "cert_fetch", status: 436, verstat: "TN-Validation-Failed" });
  });

  it("each failure gives its verstat and status", async () => {
    const { v } = verifier();
    const url = base + "/sp.pem";
    // wrong signature: signed by a key that is not the certificate's
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const forged = new StirSigner({ key: other, x5u: url }).sign("A", CALLER, DID).header;
    expect(await v.verify([forged], CALLER, DID, 1000)).toMatchObject({ reason: "bad_signature", status: 438, verstat: "TN-Validation-Failed" });
    // stale iat
    const old = signer(url, pki.spKeyPem, () => Date.now() - 120_000).sign("A", CALLER, DID).header;
    expect(await v.verify([old], CALLER, DID, 1000)).toMatchObject({ reason: "stale", status: 438 });
    // orig.tn not the caller
    expect(await v.verify([signer(url).sign("A", "+15125559999", DID).header], CALLER, DID, 1000)).toMatchObject({ reason: "orig_mismatch", status: 438 });
    // dest.tn not the DID
    expect(await v.verify([signer(url).sign("A", CALLER, "+442070000000").header], CALLER, DID, 1000)).toMatchObject({ reason: "dest_mismatch", status: 438 });
    // certificate not chained to the anchors
    const rogue = signer(base + "/rogue.pem", pki.rogueKeyPem).sign("A", CALLER, DID).header;
    expect(await v.verify([rogue], CALLER, DID, 1000)).toMatchObject({ reason: "cert_untrusted", status: 437, verstat: "TN-Validation-Failed" });
    // unreachable x5u
    const gone = signer("http://127.0.0.1:1/sp.pem").sign("A", CALLER, DID).header;
    expect(await v.verify([gone], CALLER, DID, 1000)).toMatchObject({ reason: "cert_fetch", status: 436 });
    // oversized certificate
    expect(await v.verify([signer(base + "/huge.pem").sign("A", CALLER, DID).header], CALLER, DID, 1000)).toMatchObject({ reason: "cert_fetch" });
    // info that does not match x5u
    const tok = parseIdentity(signer(url).sign("A", CALLER, DID).header)!.token;
    expect(await v.verify([identityHeader(tok, base + "/other.pem")], CALLER, DID, 1000)).toMatchObject({ reason: "bad_info", status: 436 });
    // no Identity at all
    expect(v.verify([], CALLER, DID, 1000)).toMatchObject({ reason: "missing", status: 428, verstat: "No-TN-Validation" });
    // garbage
    expect(await v.verify(["not a passport;info=<x>"], CALLER, DID, 1000)).toMatchObject({ reason: "malformed", status: 436 });
  });

  it("a certificate fetch over budget counts as No-TN-Validation, and the fetch still fills the cache", async () => {
    const { v, certs } = verifier();
    const { header } = signer(base + "/slow.pem").sign("A", CALLER, DID);
    const r = await v.verify([header], CALLER, DID, 50);
    expect(r).toMatchObject({ reason: "timeout", verstat: "No-TN-Validation", status: 0 });
    await new Promise((res) => setTimeout(res, 600));
    expect(certs.peek(base + "/slow.pem")?.ok).toBe(true);
    expect(v.verify([header], CALLER, DID, 50)).toMatchObject({ reason: "passed" });
  });

  it("fetches a certificate once for many calls; warm verifications are synchronous", async () => {
    const { v, certs } = verifier();
    const before = hits.get("/sp.pem") ?? 0;
    const s = signer(base + "/sp.pem");
    const first = await Promise.all(Array.from({ length: 20 }, () => v.verify([s.sign("A", CALLER, DID).header], CALLER, DID, 1000)));
    expect(first.every((r) => r.reason === "passed")).toBe(true);
    for (let i = 0; i < 100; i++) {
      const r = v.verify([s.sign("A", CALLER, DID).header], CALLER, DID, 1000);
      expect(r instanceof Promise).toBe(false);
      expect((r as { reason: string }).reason).toBe("passed");
    }
    expect((hits.get("/sp.pem") ?? 0) - before).toBe(1);
    expect(certs.stats.fetches).toBe(1);
  });

  it("refuses to fetch from an address the guard denies (checked on the resolved address)", async () => {
    const { v } = verifier({ allowAddress: (ip) => !ip.startsWith("127.") && ip !== "::1" });
    const port = (server.address() as AddressInfo).port;
    const byIp = signer(base + "/sp.pem").sign("A", CALLER, DID).header;
    const byName = signer(`http://localhost:${port}/sp.pem`).sign("A", CALLER, DID).header;
    const before = hits.get("/sp.pem") ?? 0;
    expect(await v.verify([byIp], CALLER, DID, 1000)).toMatchObject({ reason: "cert_fetch" });
    expect(await v.verify([byName], CALLER, DID, 1000)).toMatchObject({ reason: "cert_fetch" });
    expect(hits.get("/sp.pem") ?? 0).toBe(before);
  });

  it("checks the chain's validity dates at the time of the call", async () => {
    let now = Date.now();
    const { v } = verifier({ now: () => now });
    const s = signer(base + "/sp.pem", pki.spKeyPem, () => now);
    expect((await v.verify([s.sign("A", CALLER, DID).header], CALLER, DID, 1000)).reason).toBe("passed");
    const leaf = new X509Certificate(pki.chainPem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----");
    now = Date.parse(leaf.validTo) + 1000;
    expect((await v.verify([s.sign("A", CALLER, DID).header], CALLER, DID, 1000)).reason).toBe("cert_expired");
  });

  it("picks the shaken PASSporT among several (div first)", async () => {
    const { v } = verifier();
    const s = signer(base + "/sp.pem");
    const div = s.signDiversion(CALLER, "+15125550111", DID);
    expect(parseIdentity(div)!.ppt).toBe("div");
    const r = await v.verify([div, s.sign("C", CALLER, DID).header], CALLER, DID, 1000);
    expect(r).toMatchObject({ reason: "passed", attest: "C" });
    expect(decodePassport(parseIdentity(div)!.token)!.claims).toMatchObject({ div: { tn: "15125550111" }, dest: { tn: ["442071838750"] } });
  });

  it("puts verstat on a tel or sip URI, replacing one already there", () => {
    expect(withVerstat("<sip:+15125550100@10.0.0.1;user=phone>;tag=abc", "TN-Validation-Passed")).toBe("<sip:+15125550100;verstat=TN-Validation-Passed@10.0.0.1;user=phone>;tag=abc");
    expect(withVerstat('"Alice" <tel:+15125550100>', "No-TN-Validation")).toBe('"Alice" <tel:+15125550100;verstat=No-TN-Validation>');
    expect(withVerstat("<sip:+15125550100;verstat=TN-Validation-Passed@h>", "TN-Validation-Failed")).toBe("<sip:+15125550100;verstat=TN-Validation-Failed@h>");
    expect(withVerstat("sip:+15125550100@h;tag=1", "TN-Validation-Passed")).toBe("<sip:+15125550100;verstat=TN-Validation-Passed@h>;tag=1");
  });

  it("never throws on arbitrary Identity values", () => {
    const { v } = verifier();
    const key = createPrivateKey(pki.spKeyPem);
    const good = signPassport({ attest: "A", dest: { tn: ["1"] }, iat: 1, orig: { tn: "2" }, origid: "x" }, base + "/sp.pem", key);
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string().map((s) => good.slice(0, 20) + s), fc.nat(good.length).map((n) => good.slice(0, n) + "." + good.slice(n))), (s) => {
        parseIdentity(s);
        decodePassport(s);
        const r = v.verify([s], CALLER, DID, 1);
        if (!(r instanceof Promise)) expect(r.reason).not.toBe("passed");
      }),
      { numRuns: 1000 },
    );
  });
});

describe("stir verify tool", () => {
  it("decodes the PASSporT and gives the verdict and the iat age", async () => {
    const { inspectIdentity } = await import("../../src/stir/inspect.js");
    const h = signer(base + "/sp.pem").sign("A", CALLER, DID).header;
    const r = await inspectIdentity(h, CALLER, DID, { anchors: parsePemBundle(pki.rootPem), allowHttp: true, allowPrivate: ["127.0.0.0/8"] });
    expect(r.header).toMatchObject({ alg: "ES256", ppt: "shaken", x5u: base + "/sp.pem" });
    expect(r.claims).toMatchObject({ attest: "A", orig: { tn: "15125550100" } });
    expect(r.verdict).toMatchObject({ reason: "passed", verstat: "TN-Validation-Passed" });
    expect(r.iat!.age_s).toBeLessThan(5);
    const bad = await inspectIdentity(h, "+15125550199", DID, { anchors: parsePemBundle(pki.rootPem), allowHttp: true, allowPrivate: ["127.0.0.0/8"] });
    expect(bad.verdict).toMatchObject({ reason: "orig_mismatch", status: 438 });
    // the daemon's address policy: an x5u on loopback is not fetched unless allowed
    const refused = await inspectIdentity(h, CALLER, DID, { anchors: parsePemBundle(pki.rootPem), allowHttp: true });
    expect(refused.verdict.reason).not.toBe("passed");
    expect(refused.verdict.detail).toMatch(/address not allowed/);
  });
});

describe("edge STIR policy", () => {
  const invite = (extra: string[]): ReturnType<typeof parseOrThrow> =>
    parseOrThrow(
      [
        "INVITE sip:+442071838750@127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1",
        "From: <sip:+15125550100@127.0.0.1>;tag=a",
        "To: <sip:+442071838750@127.0.0.1>",
        "Call-ID: stir-1",
        "CSeq: 1 INVITE",
        ...extra,
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n"),
    );

  it("marks the identity the target sees with verstat, counts results, rejects only when the route asks", async () => {
    const { v, certs } = verifier();
    const reg = new Registry();
    const p = new StirPolicy({ verifier: v, certs, registry: reg, budgetMs: 1000 });
    const good = signer(base + "/sp.pem").sign("A", CALLER, DID).header;
    const m1 = invite([`P-Asserted-Identity: <sip:+15125550100@127.0.0.1;user=phone>`, `Identity: ${good}`]);
    const r1 = await p.verifyInbound("carrier-a", m1, CALLER, DID, "reject");
    expect(r1).toMatchObject({ reject: 0, result: { verstat: "TN-Validation-Passed", attest: "A" } });
    expect(m1.get("p-asserted-identity")).toBe("<sip:+15125550100;verstat=TN-Validation-Passed@127.0.0.1;user=phone>");
    expect(m1.get("identity")).toBe(good);
    const m2 = invite([]);
    expect(await p.verifyInbound("carrier-a", m2, CALLER, DID, "mark")).toMatchObject({ reject: 0, result: { verstat: "No-TN-Validation" } });
    expect(m2.get("from")).toBe("<sip:+15125550100;verstat=No-TN-Validation@127.0.0.1>;tag=a");
    expect(await p.verifyInbound("carrier-a", invite([]), CALLER, DID, "reject")).toMatchObject({ reject: 428, reason: "428 Use Identity Header" });
    const wrong = signer(base + "/sp.pem").sign("A", "+15125559999", DID).header;
    expect(await p.verifyInbound("carrier-a", invite([`Identity: ${wrong}`]), CALLER, DID, "reject")).toMatchObject({ reject: 438 });
    const text = await reg.metrics();
    expect(text).toMatch(/didgate_stir_verifications_total\{trunk="carrier-a",result="TN-Validation-Passed",attest="A"\} 1/);
    expect(text).toMatch(/didgate_stir_verify_failures_total\{trunk="carrier-a",reason="orig_mismatch"\} 1/);
    expect(text).toMatch(/didgate_stir_cert_fetches 1/);
  });

  it("signs the off-net legs of a call: one PASSporT per destination, C for forwards, div for a forward that arrived signed", () => {
    const reg = new Registry();
    const p = new StirPolicy({ signer: signer(base + "/sp.pem"), registry: reg });
    const carrier = { name: "c" };
    const legs = [
      { uri: "sip:a@1.2.3.4", carrier, dest: DID, add: [] as Array<readonly [string, string]> },
      { uri: "sip:a@1.2.3.5", carrier, dest: DID, add: [] as Array<readonly [string, string]> },
      { uri: "sip:pbx@10.0.0.1", add: [] as Array<readonly [string, string]> },
    ];
    const out = p.signLegs(legs, "A", CALLER, false);
    expect(out[2]).toBe(legs[2]);
    const h0 = out[0]!.add.find(([n]) => n === "Identity")![1];
    expect(out[1]!.add.find(([n]) => n === "Identity")![1]).toBe(h0);
    expect(decodePassport(parseIdentity(h0)!.token)!.claims).toMatchObject({ attest: "A", orig: { tn: "15125550100" }, dest: { tn: ["442071838750"] } });
    const fwd = [{ uri: "sip:x@1.2.3.4", carrier, dest: DID, forwardedFrom: "+15125550111", add: [] as Array<readonly [string, string]> }];
    expect(decodePassport(parseIdentity(p.signLegs(fwd, "A", CALLER, false)[0]!.add[0]![1])!.token)!.claims).toMatchObject({ attest: "C" });
    const div = parseIdentity(p.signLegs(fwd, "A", CALLER, true)[0]!.add[0]![1])!;
    expect(div.ppt).toBe("div");
    expect(decodePassport(div.token)!.claims).toMatchObject({ div: { tn: "15125550111" } });
    expect(p.signLegs(legs, "B", undefined, false)).toBe(legs);
  });
});
