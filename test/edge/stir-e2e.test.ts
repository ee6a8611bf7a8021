/**
 * STIR/SHAKEN end to end: sipp as carrier sends INVITEs with Identity headers signed by a test PKI
 * (x5u served over HTTP from loopback), didgate verifies and the destination (sipp UAS) receives
 * verstat on From; a route with voice.stir.on_fail: reject refuses failures with 428/438.
 */
import { createPrivateKey } from "node:crypto";
import { writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { StirSigner } from "../../src/stir/sign.js";
import { startApp, tempDir, writeRoutes } from "../helpers/app.js";
import { freePort, killAllSipp } from "../helpers/sipp.js";
import { makePki, type TestPki } from "../stir/pki.js";
import { startUac, startUas, ok } from "./sip-util.js";

const CALLER = "+15125559999";
let pki: TestPki;
let x5uServer: http.Server;
let x5u = "";
let app: Didgate;
let udp = 0;
const P: Record<string, number> = {};
let fetches = 0;

beforeAll(async () => {
  pki = makePki();
  x5uServer = http.createServer((_q, s) => {
    fetches++;
    s.writeHead(200, { "cache-control": "max-age=600" });
    s.end(pki.chainPem);
  });
  await new Promise<void>((r) => x5uServer.listen(0, "127.0.0.1", r));
  x5u = `http://127.0.0.1:${(x5uServer.address() as AddressInfo).port}/sp.pem`;
  for (const n of ["pass", "bad", "none", "many"]) P[n] = await freePort();
  const dir = tempDir();
  writeFileSync(join(dir, "anchors.pem"), pki.rootPem);
  const t = (port: number) => `sip:+1@127.0.0.1:${port}`;
  writeRoutes(dir, {
    "+15125550101": { voice: { targets: [t(P.pass!)] } },
    "+15125550102": { voice: { targets: [t(P.bad!)] } },
    "+15125550103": { voice: { targets: [t(P.none!)] } },
    "+15125550104": { voice: { targets: [t(P.many!)] } },
    "+15125550199": { voice: { targets: ["sip:+1@127.0.0.1:9"], stir: { on_fail: "reject" } } },
  });
  udp = await freePort();
  ({ app } = await startApp(
    {
      sip: { listen: [`udp://127.0.0.1:${udp}`], trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }], timers: { t1_ms: 50 } },
      routes: { file: "routes.yaml", watch: false },
      stir: { verify: { trust_anchors: "anchors.pem", max_age_s: 60, allow_http_x5u: true, allow_private: ["127.0.0.0/8"] } },
    },
    dir,
  ));
});

afterAll(async () => {
  await app?.stop(0);
  killAllSipp();
  await new Promise((r) => x5uServer.close(r));
  pki.cleanup();
});

function identity(orig: string, dest: string, now?: () => number): string {
  return new StirSigner({ key: createPrivateKey(pki.spKeyPem), x5u, ...(now ? { now } : {}) }).sign("A", orig, dest).header;
}

describe("STIR/SHAKEN verification end to end", () => {
  it("a valid PASSporT reaches the PBX as verstat=TN-Validation-Passed", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.pass!);
    const uac = await startUac("uac_call_identity.xml", "udp", udp, { service: "+15125550101", caller: CALLER, subst: { IDENTITY: identity(CALLER, "+15125550101") } });
    await ok(uac, "carrier");
    await ok(uas, "pbx");
    const inv = uas.received("INVITE")[0]!;
    expect(inv.get("from")).toContain(";verstat=TN-Validation-Passed@");
    expect(inv.get("attestation-info")).toBe("A");
    expect(inv.get("identity")).toBeDefined();
  });

  it("a PASSporT whose orig.tn is not the caller gives TN-Validation-Failed; none gives No-TN-Validation", async () => {
    const bad = startUas("uas_answer.xml", "udp", P.bad!);
    const u1 = await startUac("uac_call_identity.xml", "udp", udp, { service: "+15125550102", caller: CALLER, subst: { IDENTITY: identity("+15125550000", "+15125550102") } });
    await ok(u1, "carrier (bad)");
    await ok(bad, "pbx (bad)");
    expect(bad.received("INVITE")[0]!.get("from")).toContain(";verstat=TN-Validation-Failed@");
    expect(bad.received("INVITE")[0]!.get("attestation-info")).toBeUndefined();
    const none = startUas("uas_answer.xml", "udp", P.none!);
    const u2 = await startUac("uac_call.xml", "udp", udp, { service: "+15125550103", caller: CALLER });
    await ok(u2, "carrier (none)");
    await ok(none, "pbx (none)");
    expect(none.received("INVITE")[0]!.get("from")).toContain(";verstat=No-TN-Validation@");
  });

  it("a route with on_fail: reject answers 438 for a stale PASSporT and 428 without one", async () => {
    const stale = identity(CALLER, "+15125550199", () => Date.now() - 300_000);
    const u1 = await startUac("uac_final_identity.xml", "udp", udp, { service: "+15125550199", caller: CALLER, subst: { IDENTITY: stale, CODE: "438" } });
    await ok(u1, "438");
    const u2 = await startUac("uac_final.xml", "udp", udp, { service: "+15125550199", caller: CALLER, subst: { CODE: "428" } });
    await ok(u2, "428");
  });

  it("fetches the certificate once for many calls", async () => {
    const before = fetches;
    const uas = startUas("uas_answer.xml", "udp", P.many!);
    // sipp UAS answers one call (-m 1): the others go to the same port sequentially
    const uac = await startUac("uac_call_identity.xml", "udp", udp, { service: "+15125550104", caller: CALLER, subst: { IDENTITY: identity(CALLER, "+15125550104") } });
    await ok(uac, "carrier");
    await ok(uas, "pbx");
    expect(uas.received("INVITE")[0]!.get("from")).toContain(";verstat=TN-Validation-Passed@");
    expect(fetches - before).toBe(0); // warm from the earlier calls
  });
});
