/**
 * The registrar end to end: sipp as a phone (127.0.0.8, not a trunk) REGISTERs with digest
 * (401 then 200) to a running didgate; sipp as the carrier (127.0.0.1) calls the DID whose route
 * targets sip:alice@<registrar domain>, and the call reaches the phone at its registered address.
 * Unregistered: 480. Wrong password and unknown user: the same 403.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir } from "../helpers/app.js";
import { freePort, killAllSipp, startSipp } from "../helpers/sipp.js";
import { SCENARIOS, ok, startUac, startUas, statuses, type Party } from "./sip-util.js";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const PHONE_IP = "127.0.0.8";
const DOMAIN = "sip.example.net";

async function metricValue(app: Didgate, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === name);
  if (!m) return 0;
  let sum = 0;
  for (const v of m.values as Array<{ value: number; labels: Record<string, string | number> }>) {
    if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value;
  }
  return sum;
}

/** sipp as a phone on PHONE_IP:port registering (phone_register.xml); resolves when sipp exits. */
function register(edgePort: number, port: number, o: { user: string; pass: string; expires: number; final: number; transport?: "udp" | "tcp"; contact?: string }): Party {
  let text = fs.readFileSync(path.join(SCENARIOS, "phone_register.xml"), "latin1");
  const subst: Record<string, string> = { USER: o.user, PASS: o.pass, DOMAIN, EXPIRES: String(o.expires), FINAL: String(o.final), CONTACT: o.contact ?? "[local_ip]:[local_port]" };
  for (const [k, v] of Object.entries(subst)) text = text.split(`@${k}@`).join(v);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "didgate-scn-"));
  const f = path.join(dir, "phone_register.xml");
  fs.writeFileSync(f, text, "latin1");
  const args = ["-sf", f, `127.0.0.1:${edgePort}`, "-i", PHONE_IP, "-p", String(port), "-t", o.transport === "tcp" ? "t1" : "u1", "-m", "1", "-trace_msg", "-trace_err", "-timeout", "10s", "-timeout_error"];
  const proc = startSipp({ args, timeoutMs: 15_000 });
  return {
    proc,
    done: proc.done,
    trace: () => [],
    received: () => [],
    receivedResponses: () => [],
  };
}

describe("registrar end to end (sipp phone registers, sipp carrier calls its DID)", () => {
  let app: Didgate;
  let udp = 0;

  beforeAll(async () => {
    const dir = tempDir();
    const routes = {
      routes: {
        "+15125550700": { tenant: "acme", voice: { targets: [`sip:alice@${DOMAIN}`] } },
        "+15125550701": { tenant: "acme", voice: { targets: [`sip:bob@${DOMAIN}`] } },
      },
    };
    writeFileSync(join(dir, "routes.yaml"), YAML.stringify(routes));
    const port = await freePort();
    const started = await startApp(
      {
        sip: {
          listen: [`udp://127.0.0.1:${port}`, `tcp://127.0.0.1:${port}`],
          timers: { t1_ms: 30 },
          // sipp 3.6 answers only the first challenge, and only MD5
          auth: { algorithms: ["MD5", "SHA-256"] },
          trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1", cps: 1000 }],
          registrar: {
            domain: DOMAIN,
            users: [
              { user: "alice", tenant: "acme", password: "wonderland" },
              { user: "bob", tenant: "acme", password: "the-builder" },
            ],
            min_expires: 60,
          },
        },
        routes: { file: "routes.yaml", watch: false },
      },
      dir,
    );
    app = started.app;
    udp = app.voice!.listeners.find((l) => l.transport === "udp")!.port;
  }, 30_000);

  afterAll(async () => {
    await killAllSipp();
    await app?.stop();
  });

  it("registers with digest (401 then 200); the DID rings the phone at its registered address; unregistered: 480", async () => {
    const phone = await freePort(PHONE_IP);
    await ok(register(udp, phone, { user: "alice", pass: "wonderland", expires: 300, final: 200 }), "REGISTER");
    expect(await metricValue(app, "didgate_registrar_registrations_total", { outcome: "challenged" })).toBeGreaterThanOrEqual(1);
    expect(await metricValue(app, "didgate_registrar_registrations_total", { outcome: "registered" })).toBe(1);
    const bs = await app.voice!.registrar!.bindings("alice");
    expect(bs.map((b) => [b.address, b.port, b.transport])).toEqual([[PHONE_IP, phone, "udp"]]);

    // the phone now answers on the port it registered from
    const uas = startUas("uas_answer.xml", "udp", phone, {}, 20, PHONE_IP);
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550700", caller: "+15125559999" });
    await ok(uac, "carrier");
    await ok(uas, "phone");
    const inv = uas.received("INVITE")[0]!;
    expect(inv, "the phone got the INVITE").toBeDefined();
    expect(inv.requestUri).toBe(`sip:alice@${PHONE_IP}:${phone};transport=UDP`);
    expect(uas.received("BYE").length).toBe(1);
    expect(await metricValue(app, "didgate_registrar_lookups_total", { result: "found" })).toBe(1);

    // Expires: 0 removes the binding: the DID answers 480
    await ok(register(udp, phone, { user: "alice", pass: "wonderland", expires: 0, final: 200 }), "unREGISTER");
    expect(await app.voice!.registrar!.bindings("alice")).toEqual([]);
    const gone = await startUac("uac_final.xml", "udp", udp, { service: "+15125550700", subst: { CODE: "480" } });
    await ok(gone, "carrier after unregister");
    expect(statuses(gone.receivedResponses())).toContain(480);
  }, 60_000);

  it("behind NAT: the Contact names a private address, the call goes to the address and port the REGISTER came from", async () => {
    const phone = await freePort(PHONE_IP);
    await ok(register(udp, phone, { user: "bob", pass: "the-builder", expires: 120, final: 200, contact: "192.168.1.20:5062" }), "REGISTER");
    const bs = await app.voice!.registrar!.bindings("bob");
    expect(bs.map((b) => [b.contact, b.address, b.port])).toEqual([["sip:bob@192.168.1.20:5062;transport=UDP", PHONE_IP, phone]]);
    const uas = startUas("uas_answer.xml", "udp", phone, {}, 20, PHONE_IP);
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550701" });
    await ok(uac, "carrier");
    await ok(uas, "phone");
    expect(uas.received("INVITE")[0]!.requestUri).toBe("sip:bob@192.168.1.20:5062;transport=UDP");
    await ok(register(udp, phone, { user: "bob", pass: "the-builder", expires: 0, final: 200, contact: "192.168.1.20:5062" }), "unREGISTER");
    expect(await app.voice!.registrar!.bindings("bob")).toEqual([]);
  }, 60_000);

  it("a user never registered: 480", async () => {
    const uac = await startUac("uac_final.xml", "udp", udp, { service: "+15125550701", subst: { CODE: "480" } });
    await ok(uac, "carrier");
    expect(await metricValue(app, "didgate_registrar_lookups_total", { result: "none" })).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it("wrong password and unknown user get the same 403; an expiry under min_expires gets 423", async () => {
    const before = await metricValue(app, "didgate_registrar_auth_failures_total", { reason: "auth_failed" });
    await ok(register(udp, await freePort(PHONE_IP), { user: "bob", pass: "wrong-password", expires: 300, final: 403 }), "wrong password");
    await ok(register(udp, await freePort(PHONE_IP), { user: "mallory", pass: "whatever1", expires: 300, final: 403 }), "unknown user");
    expect(await metricValue(app, "didgate_registrar_auth_failures_total", { reason: "auth_failed" })).toBe(before + 2);
    expect(await app.voice!.registrar!.bindings("bob")).toEqual([]);
    await ok(register(udp, await freePort(PHONE_IP), { user: "bob", pass: "the-builder", expires: 10, final: 423 }), "too brief");
  }, 30_000);
});
