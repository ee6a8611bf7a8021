/**
 * Calls from registered users end to end: sipp as a registered phone (127.0.0.8, not a trunk or
 * customer) calls out through a running didgate with its registrar credentials (407, then the
 * INVITE with Proxy-Authorization) to sipp as the carrier (127.0.0.1) or an on-net PBX
 * (127.0.0.3). Each case checks what the far end received (Request-URI, From,
 * P-Asserted-Identity) or the phone's refusal (403 with its reason).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import type { Didgate } from "../../src/app.js";
import type { SipMessage } from "../../src/sip/index.js";
import { startApp, tempDir } from "../helpers/app.js";
import { freePort, killAllSipp, sippReady } from "../helpers/sipp.js";
import { DOMAIN, PHONE_IP, phoneCall, register, metricValue } from "./registrar-util.js";
import { ok, startUas, type Party } from "./sip-util.js";

const PBX_IP = "127.0.0.3";


describe("calls from registered users (sipp phone -> didgate -> sipp carrier)", () => {
  let app: Didgate;
  let udp = 0;
  const P: Record<string, number> = {};

  beforeAll(async () => {
    for (const n of ["carrier", "pbx"]) P[n] = await freePort(n === "pbx" ? PBX_IP : "127.0.0.1");
    const dir = tempDir();
    const doc = {
      routes: {
        "+15125550700": { tenant: "acme", voice: { targets: [`sip:alice@${DOMAIN}`] } },
        "+15125550701": { tenant: "acme", voice: { targets: [`sip:pbx@${PBX_IP}:${P.pbx}`] } },
        "+15125550702": { tenant: "acme", voice: { targets: [`sip:pbx@${PBX_IP}:${P.pbx}`] } },
        "+15125550800": { tenant: "other", voice: { targets: [`sip:pbx@${PBX_IP}:${P.pbx}`] } },
      },
      outbound: { "+33*": { voice: ["carrier-fr"] } },
    };
    writeFileSync(join(dir, "routes.yaml"), YAML.stringify(doc));
    const port = await freePort();
    const started = await startApp(
      {
        sip: {
          listen: [`udp://127.0.0.1:${port}`],
          timers: { t1_ms: 30 },
          // sipp 3.6 answers only the first challenge, and only MD5
          auth: { algorithms: ["MD5", "SHA-256"] },
          trunks: [
            { name: "carrier", sources: ["127.0.0.1"], country_code: "1", cps: 1000 },
            { name: "carrier-fr", termination: `sip:127.0.0.1:${P.carrier}` },
          ],
          registrar: {
            domain: DOMAIN,
            users: [
              { user: "alice", tenant: "acme", password: "wonderland", caller_id: "+15125550700" },
              { user: "bob", tenant: "acme", password: "the-builder" },
              { user: "dave", tenant: "acme", password: "dave-pass", caller_id: "+15125550700" },
              { user: "erin", tenant: "acme", password: "erin-pass", caller_id: "+15125550700" },
            ],
            lockout: { max_failures: 3, window_s: 60, duration_s: 300 },
            calls: { country_code: "1", cps: 100, max_calls: 2, max_calls_total: 1 },
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

  const call = (o: { user: string; pass: string; from?: string; service: string; final: number; headers?: string; holdMs?: number }): Promise<Party> => phoneCall(udp, o);
  const firstInvite = (p: Party): SipMessage => {
    const m = p.received("INVITE")[0];
    expect(m, "no INVITE arrived").toBeDefined();
    return m!;
  };

  it("a registered phone calls out with its REGISTER credentials: 407, then the carrier gets the call from the user's number", async () => {
    const phone = await freePort(PHONE_IP);
    await ok(register(udp, phone, { user: "alice", pass: "wonderland", expires: 300, final: 200 }), "REGISTER");
    const uas = startUas("uas_answer.xml", "udp", P.carrier!);
    await sippReady();
    const uac = await call({ user: "alice", pass: "wonderland", service: "+33163450001", final: 200 });
    await ok(uac, "phone");
    await ok(uas, "carrier");
    const ch = uac.receivedResponses().find((m) => m.status === 407)!;
    const pa = ch.getAll("proxy-authenticate");
    expect(pa[0]).toContain(`realm="${DOMAIN}"`);
    expect(pa.some((v) => v.includes("algorithm=SHA-256"))).toBe(true);
    expect(pa.some((v) => v.includes("algorithm=MD5"))).toBe(true);
    const inv = firstInvite(uas);
    expect(inv.requestUri).toBe(`sip:+33163450001@127.0.0.1:${P.carrier}`);
    // the user's number at the registrar domain, the phone's display name and tag kept
    expect(inv.get("from")).toMatch(new RegExp(`^"Alice Phone" <sip:\\+15125550700@${DOMAIN.replace(/\./g, "\\.")}>;tag=\\S+SIPpTag00`));
    expect(inv.get("p-asserted-identity")).toBe("<tel:+15125550700>");
    expect(inv.get("proxy-authorization")).toBeUndefined();
    // the BYE from the phone reached the carrier through the dialog's Record-Route
    expect(uas.received("BYE").length).toBe(1);
    expect(await metricValue(app, "didgate_registrar_call_auth_total", { outcome: "challenged" })).toBeGreaterThanOrEqual(1);
    expect(await metricValue(app, "didgate_registrar_call_auth_total", { outcome: "authenticated" })).toBeGreaterThanOrEqual(1);
    // every registered user's calls under one label value (no series per user)
    expect(await metricValue(app, "didgate_outbound_answered_total", { kind: "customer", name: "registrar" })).toBe(1);
    expect(await metricValue(app, "didgate_calls_total", { trunk: `alice@${DOMAIN}` })).toBe(0);
    expect(await metricValue(app, "didgate_calls_total", { trunk: "registrar" })).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it("a national number of the tenant dialled without +: on-net, routed like an inbound call, the asserted caller ID checked", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.pbx!, {}, 20, PBX_IP);
    await sippReady();
    const uac = await call({ user: "bob", pass: "the-builder", service: "5125550701", final: 200, headers: "P-Preferred-Identity: <sip:+15125550702@sip.example.net>" });
    await ok(uac, "phone");
    await ok(uas, "pbx");
    const inv = firstInvite(uas);
    expect(inv.requestUri).toBe(`sip:pbx@${PBX_IP}:${P.pbx}`);
    expect(inv.get("p-asserted-identity")).toBe("<tel:+15125550702>");
    expect(inv.get("p-preferred-identity")).toBeUndefined();
    expect(inv.get("from")).toContain(`<sip:+15125550702@${DOMAIN}>`);
  }, 60_000);

  it("a wrong password: 403, nothing reaches the carrier; the same answer for an unknown user", async () => {
    const before = await metricValue(app, "didgate_registrar_call_auth_total", { outcome: "auth_failed" });
    const wrong = await call({ user: "dave", pass: "not-daves", service: "+33163450002", final: 403 });
    await ok(wrong, "phone, wrong password");
    const r = wrong.receivedResponses().find((m) => m.status === 403)!;
    expect(r.reason).toBe("Forbidden (bad credentials)");
    const nobody = await call({ user: "nobody", pass: "whatever1", service: "+33163450002", final: 403 });
    await ok(nobody, "phone, unknown user");
    expect(nobody.receivedResponses().find((m) => m.status === 403)!.reason).toBe(r.reason);
    expect(await metricValue(app, "didgate_registrar_call_auth_total", { outcome: "auth_failed" })).toBe(before + 2);
  }, 60_000);

  it("failed INVITEs count towards the REGISTER lockout: after max_failures the right password gets 403 too, REGISTER included", async () => {
    for (let i = 0; i < 3; i++) await ok(await call({ user: "erin", pass: `guess-${i}`, service: "+33163450004", final: 403 }), `phone, guess ${i}`);
    const locked = await metricValue(app, "didgate_registrar_call_auth_total", { outcome: "locked_out" });
    const right = await call({ user: "erin", pass: "erin-pass", service: "+33163450004", final: 403 });
    await ok(right, "phone, right password while locked out");
    expect(await metricValue(app, "didgate_registrar_call_auth_total", { outcome: "locked_out" })).toBe(locked + 1);
    const phone = await freePort(PHONE_IP);
    // locked out: 403 at once, without a challenge
    await ok(register(udp, phone, { user: "erin", pass: "erin-pass", expires: 300, final: 403, once: true }), "REGISTER while locked out");
    // another user from the same source is not locked
    expect(app.voice!.registrar!.registrar.perUser.locked(`${PHONE_IP} dave`)).toBe(false);
  }, 60_000);

  it("a caller ID the tenant does not own: 403 with the reason; a user with no caller ID at all: 403", async () => {
    const other = await call({ user: "bob", pass: "the-builder", service: "+33163450003", final: 403, headers: "P-Asserted-Identity: <tel:+15125550800>" });
    await ok(other, "phone, another tenant's number");
    expect(other.receivedResponses().find((m) => m.status === 403)!.reason).toBe("Forbidden (caller ID owned by another tenant)");
    const foreign = await call({ user: "bob", pass: "the-builder", from: "+15125559999", service: "+33163450003", final: 403 });
    await ok(foreign, "phone, a number not ours in From");
    expect(foreign.receivedResponses().find((m) => m.status === 403)!.reason).toBe("Forbidden (caller ID not a number of ours)");
    // bob has no caller_id configured and asserts none
    const none = await call({ user: "bob", pass: "the-builder", service: "+33163450003", final: 403 });
    await ok(none, "phone, no caller ID");
    expect(none.receivedResponses().find((m) => m.status === 403)!.reason).toBe("Forbidden (no caller ID)");
    expect(await metricValue(app, "didgate_outbound_attempts_total", { kind: "carrier", name: "carrier-fr" })).toBe(1);
  }, 60_000);

  it("max_calls_total: while one user's call is up, another user's call gets 503 with Retry-After, counted; the slot is free again after the BYE", async () => {
    const over = await metricValue(app, "didgate_registrar_calls_over_limit_total", { limit: "max_calls_total" });
    const uas = startUas("uas_answer.xml", "udp", P.carrier!);
    await sippReady();
    // alice's call stays up for 4 s after its answer: the one slot of all users is taken
    const first = await call({ user: "alice", pass: "wonderland", service: "+33163450005", final: 200, holdMs: 4000 });
    const counter = app.voice!.callCounter;
    for (let i = 0; i < 200 && counter.count("r:all") === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(counter.count("r:all"), "alice's call holds the slot of all users").toBe(1);
    // dave is under his own max_calls (2) but over all users' max_calls_total (1)
    const second = await call({ user: "dave", pass: "dave-pass", service: "+33163450006", final: 503 });
    await ok(second, "second phone");
    const r = second.receivedResponses().find((m) => m.status === 503)!;
    expect(r.reason).toBe("Service Unavailable (max_calls_total)");
    expect(r.get("retry-after")).toBe("1");
    await ok(first, "first phone");
    await ok(uas, "carrier");
    expect(uas.received("INVITE").length).toBe(1);
    expect(await metricValue(app, "didgate_registrar_calls_over_limit_total", { limit: "max_calls_total" })).toBe(over + 1);
    // the BYE gave the slot back: the next call goes through
    expect(counter.count("r:all")).toBe(0);
    const uas2 = startUas("uas_answer.xml", "udp", P.carrier!);
    await sippReady();
    await ok(await call({ user: "dave", pass: "dave-pass", service: "+33163450006", final: 200 }), "phone after the BYE");
    await ok(uas2, "carrier after the BYE");
  }, 60_000);
});
