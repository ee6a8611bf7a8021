/**
 * In-dialog requests to a next hop given by name, resolved through sip.dns_servers (a DNS server
 * on a loopback port): a re-INVITE whose next hop is still being resolved when the carrier cancels
 * it is answered 487 and never sent, even when the answer comes later; the BYE then reaches the
 * destination through the same name. sipp is the carrier and the destination.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, writeRoutes } from "../helpers/app.js";
import { startDns, type TestDns } from "../helpers/dns.js";
import { freePort, killAllSipp } from "../helpers/sipp.js";
import { ok, startUac, startUas } from "./sip-util.js";

const DID = "+15125550133";
const NAME = "callee.didgate.test";
let app: Didgate | undefined;
let dns: TestDns;
let edge = 0;
let uasPort = 0;

beforeAll(async () => {
  uasPort = await freePort();
  dns = await startDns({
    [`_sip._udp.${NAME}`]: { srv: [{ port: uasPort, target: `host.${NAME}` }] },
    [`host.${NAME}`]: { a: ["127.0.0.1"] },
  });
  // the first question for the name (the re-INVITE's) is answered 1.5 s late
  dns.delay(`_sip._udp.${NAME}`, 1500);
  const dir = tempDir();
  writeRoutes(dir, { [DID]: { voice: { targets: [`sip:${DID}@127.0.0.1:${uasPort}`] } } });
  edge = await freePort();
  ({ app } = await startApp(
    {
      sip: { listen: [`udp://127.0.0.1:${edge}`], trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }], dns_servers: [dns.server] },
      routes: { file: "routes.yaml", watch: false },
    },
    dir,
  ));
});

afterAll(async () => {
  killAllSipp();
  await app?.stop(0);
  await dns?.close();
});

it("a re-INVITE cancelled while its next hop is resolved gets 487 and never leaves; the BYE goes to the resolved name", async () => {
  const uas = startUas("uas_contact_name.xml", "udp", uasPort, { CONTACT: NAME });
  // the BYE leaves 2.5 s after the CANCEL: the late DNS answer (and a re-INVITE sent on it) came before
  const uac = await startUac("uac_reinvite_cancel.xml", "udp", edge, { service: DID, subst: { WAIT: "2500" } });
  await ok(uac, "carrier (200 to the CANCEL, 487 to the re-INVITE, 200 to the BYE)");
  // the destination got one INVITE, its ACK and the BYE: a re-INVITE would have failed its scenario
  await ok(uas, "destination");
  expect(uas.received("INVITE").length).toBe(1);
  expect(uas.received("BYE").length).toBe(1);
  expect(dns.questions).toContain(`SRV _sip._udp.${NAME}`);
  expect(dns.questions).toContain(`A host.${NAME}`);
});
