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
import { reloadVoice, voiceSettings } from "../../src/config/wire.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import { Peer, request } from "./udp-peer.js";
import { freePort, killAllSipp } from "../helpers/sipp.js";
import { answerTo, DOMAIN, PHONE_IP, register, TcpPhone, metricValue } from "./registrar-util.js";
import { ok, startUac, startUas, statuses } from "./sip-util.js";
import { execFile } from "node:child_process";
import { promisify } from "node:util";



const CLI = new URL("../../dist/src/cli.js", import.meta.url).pathname;

describe("registrar end to end (sipp phone registers, sipp carrier calls its DID)", () => {
  let app: Didgate;
  let udp = 0;
  let tcp = 0;
  let admin = "";
  let vm = 0;

  beforeAll(async () => {
    const dir = tempDir();
    vm = await freePort();
    const routes = {
      routes: {
        "+15125550700": { tenant: "acme", voice: { targets: [`sip:alice@${DOMAIN}`] } },
        "+15125550701": { tenant: "acme", voice: { targets: [`sip:bob@${DOMAIN}`] } },
        "+15125550702": { tenant: "acme", voice: { targets: [`sip:carol@${DOMAIN}`] } },
        "+15125550703": { tenant: "acme", voice: { targets: [`sip:erin@${DOMAIN}`] } },
        // hal never registers: his voicemail (a static target of the next priority) takes the call
        "+15125550704": { tenant: "acme", voice: { targets: [{ uri: `sip:hal@${DOMAIN}`, priority: 1 }, { uri: `sip:voicemail@127.0.0.1:${vm}`, priority: 2 }] } },
      },
    };
    writeFileSync(join(dir, "routes.yaml"), YAML.stringify(routes));
    const port = await freePort();
    const started = await startApp(
      {
        sip: {
          listen: [`udp://127.0.0.1:${port}`, `tcp://127.0.0.1:${port}`],
          timers: { t1_ms: 30 },
          // connections from sources that are not trunks (phones) are closed after 1 s idle...
          tcp: { untrusted_idle_timeout_s: 1 },
          // sipp 3.6 answers only the first challenge, and only MD5
          auth: { algorithms: ["MD5", "SHA-256"] },
          trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1", cps: 1000 }],
          registrar: {
            domain: DOMAIN,
            users: [
              { user: "alice", tenant: "acme", password: "wonderland" },
              { user: "bob", tenant: "acme", password: "the-builder" },
              { user: "carol", tenant: "acme", password: "carol-pass" },
              { user: "erin", tenant: "acme", password: "erin-pass" },
              { user: "gina", tenant: "acme", password: "gina-pass" },
              { user: "hal", tenant: "acme", password: "hal-pass-1" },
            ],
            min_expires: 60,
            lockout: { max_failures: 3, window_s: 60, duration_s: 300 },
          },
        },
        routes: { file: "routes.yaml", watch: false },
      },
      dir,
    );
    app = started.app;
    admin = started.admin;
    udp = app.voice!.listeners.find((l) => l.transport === "udp")!.port;
    tcp = app.voice!.listeners.find((l) => l.transport === "tcp")!.port;
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

    // didgate users show USER: the binding with its source, transport, expiry and edge
    const shown = (await (await fetch(`${admin}/v1/users/alice`)).json()) as { tenant: string; bindings: Array<Record<string, unknown>> };
    expect(shown.tenant).toBe("acme");
    expect(shown.bindings).toMatchObject([{ source: `${PHONE_IP}:${phone}`, transport: "udp", contact: `sip:alice@${PHONE_IP}:${phone};transport=UDP` }]);
    expect(shown.bindings[0]!.expires_in_s).toBeGreaterThan(250);
    expect((await fetch(`${admin}/v1/users/nobody`)).status).toBe(404);
    // (the daemon runs in this process: the CLI must not block it)
    const cli = await promisify(execFile)(process.execPath, [CLI, "users", "show", "alice"], { encoding: "utf8", env: { PATH: process.env.PATH ?? "", DIDGATE_ADMIN_LISTEN: admin.slice("http://".length) }, timeout: 20_000 });
    expect(cli.stdout).toContain(`source udp ${PHONE_IP}:${phone}, edge `);

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
    await ok(register(udp, phone, { user: "bob", pass: "the-builder", expires: 120, final: 200, contact: "<sip:bob@192.168.1.20:5062;transport=UDP>" }), "REGISTER");
    const bs = await app.voice!.registrar!.bindings("bob");
    expect(bs.map((b) => [b.contact, b.address, b.port])).toEqual([["sip:bob@192.168.1.20:5062;transport=UDP", PHONE_IP, phone]]);
    // the phone answers with a private Contact too: the carrier's ACK and BYE reach it only
    // because didgate names the phone's public address and port in the Contact of its answer
    const uas = startUas("phone_answer_nat.xml", "udp", phone, {}, 20, PHONE_IP);
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550701" });
    await ok(uac, "carrier");
    await ok(uas, "phone");
    expect(uas.received("INVITE")[0]!.requestUri).toBe("sip:bob@192.168.1.20:5062;transport=UDP");
    expect(uas.received("ACK").length).toBe(1);
    expect(uas.received("BYE").length).toBe(1);
    const answer = uac.receivedResponses().find((m) => m.status === 200 && m.cseq?.method === "INVITE")!;
    expect(answer.get("contact")).toBe(`<sip:phone@${PHONE_IP}:${phone};transport=udp>`);
    await ok(register(udp, phone, { user: "bob", pass: "the-builder", expires: 0, final: 200, contact: "<sip:bob@192.168.1.20:5062;transport=UDP>" }), "unREGISTER");
    expect(await app.voice!.registrar!.bindings("bob")).toEqual([]);
  }, 60_000);

  it("over TCP: the connection the phone registered on stays open past the idle timeout and carries its call", async () => {
    const phone = await TcpPhone.connect(tcp);
    try {
      // a Contact nobody listens on: only the registered connection reaches the phone
      const contact = "sip:carol@127.0.0.99:9;transport=tcp";
      const okReg = await phone.registerWithDigest("carol", "carol-pass", contact);
      expect(okReg.status).toBe(200);
      expect(okReg.getAll("contact").join(",")).toContain("127.0.0.99:9");
      const bs = await app.voice!.registrar!.bindings("carol");
      expect(bs.map((b) => [b.transport, b.address, b.port])).toEqual([["tcp", PHONE_IP, phone.sock.localPort]]);
      // ...but not this one while its binding lives (idle timeout 1 s: wait 2.5 s)
      await new Promise((r) => setTimeout(r, 2500));
      expect(phone.closed).toBe(false);
      // RFC 5626 keep-alive: a double CRLF is answered with one CRLF
      phone.sock.write("\r\n\r\n");
      const until = Date.now() + 5000;
      while (phone.pongs === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(phone.pongs).toBe(1);
      const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550702" });
      const inv = await phone.next((m) => m.isRequest && m.method === "INVITE");
      expect(inv.requestUri).toBe(contact);
      // answered with the unreachable Contact: the carrier's ACK and BYE come back over this connection
      phone.send(answerTo(inv, "200 OK", [`Contact: <${contact}>`]));
      await phone.next((m) => m.isRequest && m.method === "ACK");
      const bye = await phone.next((m) => m.isRequest && m.method === "BYE");
      phone.send(answerTo(bye, "200 OK"));
      await ok(uac, "carrier");
      const ok200 = uac.receivedResponses().find((m) => m.status === 200 && m.cseq?.method === "INVITE")!;
      expect(ok200.get("contact")).toBe(`<sip:carol@${PHONE_IP}:${phone.sock.localPort};transport=tcp>`);
    } finally {
      phone.close();
    }
  }, 60_000);

  it("two registered devices both ring, the second answers and the first is cancelled; * unregisters both", async () => {
    const d1 = await freePort(PHONE_IP);
    let d2 = await freePort(PHONE_IP);
    while (d2 === d1) d2 = await freePort(PHONE_IP);
    await ok(register(udp, d1, { user: "erin", pass: "erin-pass", expires: 300, final: 200 }), "REGISTER device 1");
    await ok(register(udp, d2, { user: "erin", pass: "erin-pass", expires: 300, final: 200 }), "REGISTER device 2");
    expect((await app.voice!.registrar!.bindings("erin")).map((b) => b.port).sort()).toEqual([d1, d2].sort());
    const ringing = startUas("uas_ring_cancel.xml", "udp", d1, {}, 20, PHONE_IP);
    const answering = startUas("uas_slow_answer.xml", "udp", d2, {}, 20, PHONE_IP);
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550703" });
    await ok(uac, "carrier");
    await ok(answering, "device 2");
    await ok(ringing, "device 1 (rang, then CANCEL)");
    expect(ringing.received("INVITE").length).toBe(1);
    expect(ringing.received("CANCEL").length).toBe(1);
    expect(answering.received("BYE").length).toBe(1);
    await ok(register(udp, d1, { user: "erin", pass: "erin-pass", expires: 0, final: 200, contact: "*" }), "unREGISTER *");
    expect(await app.voice!.registrar!.bindings("erin")).toEqual([]);
  }, 60_000);

  it("SIGHUP: users and passwords change live; the domain needs a restart", async () => {
    const cfg = app.config;
    const reg = cfg.sip.registrar!;
    const voice = app.voice!;
    expect(await voice.registrar!.show("frank")).toBeUndefined();
    const { refused } = reloadVoice(voice, cfg, { ...cfg, sip: { ...cfg.sip, registrar: { ...reg, users: [...reg.users, { user: "frank", tenant: "acme", password: "frank-pass" }] } } });
    expect(refused).toEqual([]);
    expect(await voice.registrar!.show("frank")).toMatchObject({ user: "frank", bindings: [] });
    const phone = await freePort(PHONE_IP);
    await ok(register(udp, phone, { user: "frank", pass: "frank-pass", expires: 120, final: 200 }), "REGISTER of a user added live");
    await ok(register(udp, phone, { user: "frank", pass: "frank-pass", expires: 0, final: 200 }), "unREGISTER");
    expect(reloadVoice(voice, cfg, { ...cfg, sip: { ...cfg.sip, registrar: { ...reg, domain: "other.example" } } }).refused).toContain("sip.registrar (all but users)");
    voice.reload(voiceSettings(cfg));
  }, 60_000);

  it("a user never registered: 480", async () => {
    const uac = await startUac("uac_final.xml", "udp", udp, { service: "+15125550701", subst: { CODE: "480" } });
    await ok(uac, "carrier");
    expect(await metricValue(app, "didgate_registrar_lookups_total", { result: "none" })).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it("a user with nothing registered: the route's next priority (voicemail) gets the call", async () => {
    const before = await metricValue(app, "didgate_registrar_lookups_total", { result: "none" });
    const uas = startUas("uas_answer.xml", "udp", vm);
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550704" });
    await ok(uac, "carrier");
    await ok(uas, "voicemail");
    expect(uas.received("INVITE")[0]!.requestUri).toBe(`sip:voicemail@127.0.0.1:${vm}`);
    expect(await metricValue(app, "didgate_registrar_lookups_total", { result: "none" })).toBe(before + 1);
  }, 30_000);

  it("a REGISTER flood from one source passes the per-source flood guard: what is over sip.flood is dropped and counted", async () => {
    const FLOODER = "127.0.0.10";
    const peer = await Peer.start(FLOODER);
    try {
      const refused = (): Promise<number> => metricValue(app, "didgate_sip_refused_total", {});
      const before = await refused();
      const N = 100;
      for (let i = 0; i < N; i++) {
        peer.send(udp, request("REGISTER", `sip:${DOMAIN}`, { address: FLOODER, port: peer.port }, { extra: [`Contact: <sip:hal@${FLOODER}:${peer.port}>`, "Expires: 300"] }).replace(/^To: .*$/m, `To: <sip:hal@${DOMAIN}>`));
      }
      // every REGISTER is either answered (401, no credentials) or dropped by the guard and counted
      await waitFor(async () => (peer.got.length + (await refused()) - before === N ? true : undefined), 10_000, 50);
      expect(peer.got.every((m) => m.status === 401)).toBe(true);
      expect(peer.got.length).toBeGreaterThan(0);
      expect(peer.got.length).toBeLessThan(N);
    } finally {
      await peer.close();
    }
  }, 30_000);

  it("repeated wrong passwords from one source lock that source out for that user (403 without a challenge); other sources still register", async () => {
    const GUESSER = "127.0.0.9";
    const before = await metricValue(app, "didgate_registrar_auth_failures_total", { reason: "locked_out" });
    for (let i = 0; i < 3; i++) await ok(register(udp, await freePort(GUESSER), { user: "gina", pass: `guess-${i}-xx`, expires: 300, final: 403, ip: GUESSER }), `guess ${i}`);
    // locked out: 403 at once, not even a challenge
    await ok(register(udp, await freePort(GUESSER), { user: "gina", pass: "gina-pass", expires: 300, final: 403, ip: GUESSER, once: true }), "locked out");
    expect(await metricValue(app, "didgate_registrar_auth_failures_total", { reason: "locked_out" })).toBe(before + 1);
    expect(await app.voice!.registrar!.bindings("gina")).toEqual([]);
    const phone = await freePort(PHONE_IP);
    await ok(register(udp, phone, { user: "gina", pass: "gina-pass", expires: 300, final: 200 }), "the real phone");
    await ok(register(udp, phone, { user: "gina", pass: "gina-pass", expires: 0, final: 200 }), "unREGISTER");
  }, 60_000);

  it("wrong password and unknown user get the same 403; an expiry under min_expires gets 423", async () => {
    const before = await metricValue(app, "didgate_registrar_auth_failures_total", { reason: "auth_failed" });
    await ok(register(udp, await freePort(PHONE_IP), { user: "bob", pass: "wrong-password", expires: 300, final: 403 }), "wrong password");
    await ok(register(udp, await freePort(PHONE_IP), { user: "mallory", pass: "whatever1", expires: 300, final: 403 }), "unknown user");
    expect(await metricValue(app, "didgate_registrar_auth_failures_total", { reason: "auth_failed" })).toBe(before + 2);
    expect(await app.voice!.registrar!.bindings("bob")).toEqual([]);
    await ok(register(udp, await freePort(PHONE_IP), { user: "bob", pass: "the-builder", expires: 10, final: 423 }), "too brief");
  }, 30_000);
});
