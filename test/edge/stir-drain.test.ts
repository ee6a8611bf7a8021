/**
 * An INVITE whose STIR/SHAKEN verification waits for a certificate fetch has had 100 Trying: when
 * the daemon starts draining meanwhile, the call still gets its final response (it goes on to its
 * target once the certificate arrives) and the drain waits for it.
 */
import { createPrivateKey } from "node:crypto";
import { writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { StirSigner } from "../../src/stir/sign.js";
import { startApp, tempDir, writeRoutes } from "../helpers/app.js";
import { freePort } from "../helpers/sipp.js";
import { makePki, type TestPki } from "../stir/pki.js";
import { UdpPeer, request } from "../sip/peers.js";
import { createResponse } from "../../src/sip/index.js";

const CALLER = "+15125559999";
const DID = "+15125550101";
let pki: TestPki;
let x5uServer: http.Server;
let app: Didgate | undefined;
let carrier: UdpPeer;
let pbx: UdpPeer;
let udp = 0;
/** When the certificate server answers (the test releases it). */
let release: () => void = () => {};
const held = new Promise<void>((r) => (release = r));

beforeAll(async () => {
  pki = makePki();
  x5uServer = http.createServer((_q, s) => {
    void held.then(() => {
      s.writeHead(200, { "cache-control": "max-age=600" });
      s.end(pki.chainPem);
    });
  });
  await new Promise<void>((r) => x5uServer.listen(0, "127.0.0.1", r));
  carrier = await UdpPeer.create();
  pbx = await UdpPeer.create();
  const dir = tempDir();
  writeFileSync(join(dir, "anchors.pem"), pki.rootPem);
  writeRoutes(dir, { [DID]: { voice: { targets: [`sip:+1@127.0.0.1:${pbx.port}`] } } });
  udp = await freePort();
  ({ app } = await startApp(
    {
      sip: { listen: [`udp://127.0.0.1:${udp}`], trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }] },
      routes: { file: "routes.yaml", watch: false },
      stir: { verify: { trust_anchors: "anchors.pem", max_age_s: 60, allow_http_x5u: true, allow_private: ["127.0.0.0/8"], budget_ms: 3000 } },
    },
    dir,
  ));
});

afterAll(async () => {
  release();
  await app?.stop(0);
  await carrier?.close();
  await pbx?.close();
  await new Promise((r) => x5uServer.close(r));
  pki.cleanup();
});

it("a drain that starts while the certificate is fetched waits for the call, which reaches its target and gets its final response", async () => {
  const x5u = `http://127.0.0.1:${(x5uServer.address() as AddressInfo).port}/sp.pem`;
  const identity = new StirSigner({ key: createPrivateKey(pki.spKeyPem), x5u }).sign("A", CALLER, DID).header;
  const inv = request("INVITE", {
    via: `SIP/2.0/UDP 127.0.0.1:${carrier.port};branch=z9hG4bKdrain1;rport`,
    ruri: `sip:${DID}@127.0.0.1:${udp}`,
    callId: "stir-drain-1@test",
    extra: [`Contact: <sip:${CALLER}@127.0.0.1:${carrier.port}>`, `Identity: ${identity}`],
  }).replace("From: <sip:alice@example.com>", `From: <sip:${CALLER}@example.com>`);
  await carrier.send(inv, udp);
  expect((await carrier.next()).status).toBe(100);
  // the drain starts while the fetch is held; the certificate comes 300 ms later
  const stopped = app!.stop(10_000);
  await new Promise((r) => setTimeout(r, 300));
  release();
  // the call goes on to the PBX, which is busy
  const atPbx = await pbx.next(5000);
  expect(atPbx.method).toBe("INVITE");
  expect(atPbx.get("from")).toContain("verstat=TN-Validation-Passed");
  await pbx.send(createResponse(atPbx, 486, undefined, { toTag: "pbx1" }).toBuffer(), udp);
  let final = await carrier.next(5000);
  while (final.status < 200) final = await carrier.next(5000);
  expect(final.status).toBe(486);
  await stopped;
  app = undefined;
});
