/**
 * In-dialog requests are routed only for dialogs didgate set up, and only to that dialog's next
 * hops (signed Record-Route, src/sip/rr.ts). Plain UDP peers: the carrier (a trunk, 127.0.0.1),
 * the callee (127.0.0.5, its Contact on another port than the target), and a victim host
 * (127.0.0.6) that must never receive anything.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import type { SipMessage } from "../../src/sip/index.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { freePort } from "../helpers/sipp.js";
import { Peer, connectFrom, request, response, sleep } from "./udp-peer.js";

async function metric(app: Didgate, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === name);
  let sum = 0;
  for (const v of (m?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>) {
    if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value;
  }
  return sum;
}

describe("in-dialog requests: no relay (signed Record-Route)", () => {
  let dir: string;
  let port: number;
  let app: Didgate;
  let carrier: Peer;
  let dest: Peer; // the route's target
  let contact: Peer; // the callee's Contact in its 2xx (same host, another port)
  let victim: Peer;
  let stateDir: string;

  const config = () => ({
    sip: { listen: [`udp://127.0.0.1:${port}`, `tcp://127.0.0.1:${port}`], timers: { t1_ms: 50 }, trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }] },
    routes: { file: "routes.yaml", watch: false },
    state_dir: stateDir,
  });

  beforeAll(async () => {
    carrier = await Peer.start("127.0.0.1");
    dest = await Peer.start("127.0.0.5");
    contact = await Peer.start("127.0.0.5");
    victim = await Peer.start("127.0.0.6");
    dir = tempDir();
    stateDir = dir + "/state";
    port = await freePort();
    writeRoutes(dir, { "+15125550100": { voice: { targets: [`sip:+15125550100@127.0.0.5:${dest.port}`] } } });
    app = (await startApp(config(), dir)).app;
  });

  afterAll(async () => {
    await app?.stop(0);
    for (const p of [carrier, dest, contact, victim]) await p?.close();
  });

  /** A call set up through didgate: the carrier's INVITE, the callee's 200 (Contact on `contact`). */
  async function call(): Promise<{ inv: SipMessage; ok: SipMessage; fromTag: string; callId: string }> {
    const fromTag = "ft" + Math.random().toString(36).slice(2, 8);
    const callId = "call-" + Math.random().toString(36).slice(2) + "@test";
    carrier.send(port, request("INVITE", `sip:+15125550100@127.0.0.1:${port}`, carrier, { fromTag, callId }));
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === callId));
    dest.send(port, response(inv, "200 OK", { toTag: "tt-" + fromTag, contact: `sip:callee@127.0.0.5:${contact.port}` }));
    const ok = await waitFor(() => carrier.got.find((m) => m.callId === callId && m.status === 200 && m.cseq?.method === "INVITE"));
    return { inv, ok, fromTag, callId };
  }

  it("an invented To tag with Route: didgate is refused (403) for any method and reaches nobody", async () => {
    const before = await metric(app, "didgate_sip_forged_requests_total", { reason: "no_token" });
    const methods = ["BYE", "INVITE", "MESSAGE", "OPTIONS", "REGISTER", "INFO"];
    for (const m of methods) {
      carrier.send(port, request(m, `sip:victim@127.0.0.6:${victim.port}`, carrier, { toTag: "invented", callId: "attack-" + m, extra: [`Route: <sip:127.0.0.1:${port};lr>`] }));
    }
    // an ACK cannot be answered: dropped
    carrier.send(port, request("ACK", `sip:victim@127.0.0.6:${victim.port}`, carrier, { toTag: "invented", callId: "attack-ACK", extra: [`Route: <sip:127.0.0.1:${port};lr>`] }));
    for (const m of methods) {
      const res = await waitFor(() => carrier.got.find((x) => x.callId === "attack-" + m && x.status >= 200));
      expect(res.status, m).toBe(403);
    }
    await sleep(300);
    expect(victim.got).toEqual([]);
    expect(await metric(app, "didgate_sip_forged_requests_total", { reason: "no_token" })).toBe(before + methods.length + 1);
  });

  it("the same over TCP: 403 on the carrier's connection, nothing at the victim", async () => {
    const s = await connectFrom("127.0.0.1", port);
    let got = "";
    s.on("data", (d: Buffer) => (got += d.toString("latin1")));
    const text = request("INVITE", `sip:victim@127.0.0.6:${victim.port}`, { address: "127.0.0.1", port: s.localPort! }, { toTag: "invented", callId: "attack-tcp", extra: [`Route: <sip:127.0.0.1:${port};lr;transport=tcp>`] });
    s.write(text.replace("SIP/2.0/UDP", "SIP/2.0/TCP"));
    await waitFor(() => /SIP\/2\.0 403 /.test(got) || undefined);
    s.destroy();
    await sleep(200);
    expect(victim.got).toEqual([]);
  });

  it("a Route in the old unsigned format (ftag, dgc) or with a made-up signature is refused", async () => {
    carrier.send(port, request("BYE", `sip:victim@127.0.0.6:${victim.port}`, carrier, { toTag: "x", fromTag: "a1", callId: "old-fmt", extra: [`Route: <sip:127.0.0.1:${port};lr;ftag=a1;dgc=udp~127.0.0.1~5060>`] }));
    carrier.send(port, request("BYE", `sip:victim@127.0.0.6:${victim.port}`, carrier, { toTag: "x", fromTag: "a1", callId: "made-up", extra: [`Route: <sip:127.0.0.1:${port};lr;ftag=a1;dgd=127.0.0.6~${victim.port};dgs=AAAAAAAAAAAAAAAAAAAAAA>`] }));
    expect((await waitFor(() => carrier.got.find((x) => x.callId === "old-fmt" && x.status >= 200))).status).toBe(403);
    expect((await waitFor(() => carrier.got.find((x) => x.callId === "made-up" && x.status >= 200))).status).toBe(403);
    expect(await metric(app, "didgate_sip_forged_requests_total", { reason: "bad_token" })).toBeGreaterThanOrEqual(1);
    await sleep(200);
    expect(victim.got).toEqual([]);
  });

  it("the callee's 2xx retransmissions after the call is set up reach the carrier as the first 2xx did", async () => {
    const { inv, ok, fromTag, callId } = await call();
    // the callee did not hear the ACK: it sends its 200 again, twice (the call is finished by now)
    for (let i = 0; i < 2; i++) {
      await sleep(100);
      dest.send(port, response(inv, "200 OK", { toTag: "tt-" + fromTag, contact: `sip:callee@127.0.0.5:${contact.port}` }));
    }
    const oks = await waitFor(() => {
      const r = carrier.got.filter((m) => m.callId === callId && m.status === 200 && m.cseq?.method === "INVITE");
      return r.length === 3 ? r : undefined;
    });
    for (const r of oks.slice(1)) {
      // our Via popped, the carrier's own Via on top; Record-Route rewritten as on the first 2xx
      expect(r.vias).toEqual(ok.vias);
      expect(r.recordRoutes).toEqual(ok.recordRoutes);
      expect(r.get("contact")).toBe(ok.get("contact"));
    }
    expect(ok.recordRoutes.length).toBeGreaterThan(0);
  });

  it("a response matching no transaction is not relayed unless it is a 2xx to an INVITE with our signed Record-Route (no reflector)", async () => {
    const before = await metric(app, "didgate_sip_dropped_total", { reason: "stray_response" });
    const ours = `SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bKforged1;rport`;
    const toVictim = `SIP/2.0/UDP 127.0.0.6:${victim.port};branch=z9hG4bKvictim`;
    const forged = (status: string, method: string, extra: string[] = []) =>
      [`SIP/2.0 ${status}`, `Via: ${ours}`, `Via: ${toVictim}`, ...extra, "From: <sip:a@x>;tag=1", "To: <sip:b@y>;tag=2", "Call-ID: reflect-" + status.slice(0, 3) + method, `CSeq: 1 ${method}`, "Content-Length: 0", "", ""].join("\r\n");
    // from a host that is neither a trunk nor a customer
    const stranger = await Peer.start("127.0.0.7");
    try {
      stranger.send(port, forged("180 Ringing", "INVITE"));
      stranger.send(port, forged("486 Busy Here", "INVITE"));
      stranger.send(port, forged("200 OK", "MESSAGE"));
      stranger.send(port, forged("200 OK", "INVITE")); // no Record-Route
      stranger.send(port, forged("200 OK", "INVITE", [`Record-Route: <sip:127.0.0.1:${port};lr;dgt=forged>`])); // ours, unsigned
      await waitFor(async () => (await metric(app, "didgate_sip_dropped_total", { reason: "stray_response" })) >= before + 5);
      await sleep(200);
      expect(victim.got).toEqual([]);
    } finally {
      await stranger.close();
    }
  });

  it("a 2xx retransmitted after its transaction is gone is still relayed (our Record-Route verifies)", async () => {
    const { inv, ok, fromTag, callId } = await call();
    // past 64*T1 (T1 50 ms): the client transaction is gone, the 200 is a stray response
    await sleep(3600);
    dest.send(port, response(inv, "200 OK", { toTag: "tt-" + fromTag, contact: `sip:callee@127.0.0.5:${contact.port}` }));
    const oks = await waitFor(() => {
      const r = carrier.got.filter((m) => m.callId === callId && m.status === 200 && m.cseq?.method === "INVITE");
      return r.length === 2 ? r : undefined;
    });
    expect(oks[1]!.recordRoutes).toEqual(ok.recordRoutes);
  });

  it("a legitimate call: ACK and BYE from the caller reach the callee's Contact, BYE from the callee reaches the caller", async () => {
    const { inv, ok, fromTag, callId } = await call();
    // the carrier's copy names the callee's Contact among the allowed next hops (rewritten in the 2xx)
    expect(inv.recordRoutes[0]).toContain(";dgs=");
    expect(ok.recordRoutes.length).toBe(1);
    expect(ok.recordRoutes[0]).toContain(`127.0.0.5~${contact.port}`);
    const route = `Route: ${ok.recordRoutes[0]}`;
    const ruri = `sip:callee@127.0.0.5:${contact.port}`;
    carrier.send(port, request("ACK", ruri, carrier, { fromTag, toTag: "tt-" + fromTag, callId, extra: [route] }));
    carrier.send(port, request("BYE", ruri, carrier, { fromTag, toTag: "tt-" + fromTag, callId, cseq: 2, extra: [route] }));
    const ack = await waitFor(() => contact.got.find((m) => m.method === "ACK" && m.callId === callId));
    expect(ack.routes).toEqual([]);
    const bye = await waitFor(() => contact.got.find((m) => m.method === "BYE" && m.callId === callId));
    expect(bye.vias.length).toBe(2);
    contact.send(port, response(bye, "200 OK"));
    expect((await waitFor(() => carrier.got.find((m) => m.callId === callId && m.cseq?.method === "BYE"))).status).toBe(200);

    // the other direction: the callee hangs up with the route set from the INVITE
    const c2 = await call();
    contact.send(
      port,
      request("BYE", `sip:caller@127.0.0.1:${carrier.port}`, contact, { fromTag: "tt-" + c2.fromTag, toTag: c2.fromTag, callId: c2.callId, cseq: 7, extra: [`Route: ${c2.inv.recordRoutes[0]}`] }),
    );
    const up = await waitFor(() => carrier.got.find((m) => m.method === "BYE" && m.callId === c2.callId));
    expect(up.vias.length).toBe(2);
    expect(up.routes).toEqual([]);
    expect(victim.got).toEqual([]);
  });

  it("a valid token does not open other next hops, other dialogs, or the other direction", async () => {
    const { inv, ok, fromTag, callId } = await call();
    const route = `Route: ${ok.recordRoutes[0]}`;
    const tt = "tt-" + fromTag;
    // (a) Request-URI at another host
    carrier.send(port, request("BYE", `sip:victim@127.0.0.6:${victim.port}`, carrier, { fromTag, toTag: tt, callId, extra: [route] }));
    // (b) an extra Route after ours
    carrier.send(port, request("INFO", `sip:callee@127.0.0.5:${contact.port}`, carrier, { fromTag, toTag: tt, callId, extra: [route, `Route: <sip:127.0.0.6:${victim.port};lr>`] }));
    // (c) the token of this dialog under another Call-ID
    carrier.send(port, request("BYE", `sip:callee@127.0.0.5:${contact.port}`, carrier, { fromTag, toTag: tt, callId: "other-" + callId, extra: [route] }));
    // (d) tampered: the victim added to the allowed hops, signature kept
    const tampered = ok.recordRoutes[0]!.replace(";dgd=", `;dgd=127.0.0.6~${victim.port}*`);
    carrier.send(port, request("BYE", `sip:victim@127.0.0.6:${victim.port}`, carrier, { fromTag, toTag: tt, callId, cseq: 3, extra: [`Route: ${tampered}`] }));
    // (e) tags of another dialog
    carrier.send(port, request("MESSAGE", `sip:callee@127.0.0.5:${contact.port}`, carrier, { fromTag: "someone", toTag: "else", callId, cseq: 4, extra: [route] }));
    const fin = (method: string, cid: string, cseq = 1) => waitFor(() => carrier.got.find((m) => m.callId === cid && m.cseq?.method === method && m.cseq.seq === cseq && m.status >= 200));
    expect((await fin("BYE", callId)).status).toBe(403);
    expect((await fin("INFO", callId)).status).toBe(403);
    expect((await fin("BYE", "other-" + callId)).status).toBe(403);
    expect((await fin("BYE", callId, 3)).status).toBe(403);
    expect((await fin("MESSAGE", callId, 4)).status).toBe(403);
    // (f) the callee (not a trunk) sends towards the caller side but at the victim: dropped
    contact.send(port, request("BYE", `sip:victim@127.0.0.6:${victim.port}`, contact, { fromTag: tt, toTag: fromTag, callId, cseq: 9, extra: [`Route: ${inv.recordRoutes[0]}`] }));
    // (g) the callee tries the caller's direction of its own token (From tag = the caller's)
    contact.send(port, request("BYE", `sip:callee@127.0.0.5:${contact.port}`, contact, { fromTag, toTag: tt, callId, cseq: 10, extra: [`Route: ${inv.recordRoutes[0]}`] }));
    await sleep(300);
    expect(victim.got).toEqual([]);
    expect(contact.got.filter((m) => m.callId === callId && m.isRequest && m.method !== "ACK")).toEqual([]);
    expect(await metric(app, "didgate_sip_forged_requests_total", { reason: "next_hop" })).toBeGreaterThanOrEqual(3);
    expect(await metric(app, "didgate_sip_forged_requests_total", { reason: "bad_token" })).toBeGreaterThanOrEqual(2);
    expect(await metric(app, "didgate_sip_forged_requests_total", { reason: "tag" })).toBeGreaterThanOrEqual(1);
    expect(await metric(app, "didgate_sip_forged_requests_total", { reason: "direction" })).toBeGreaterThanOrEqual(1);
  });

  it("an edge restarted with the same secret (kept in state_dir) still routes the BYE", async () => {
    const { ok, fromTag, callId } = await call();
    await app.stop(0);
    app = (await startApp(config(), dir)).app;
    carrier.send(port, request("BYE", `sip:callee@127.0.0.5:${contact.port}`, carrier, { fromTag, toTag: "tt-" + fromTag, callId, cseq: 2, extra: [`Route: ${ok.recordRoutes[0]}`] }));
    const bye = await waitFor(() => contact.got.find((m) => m.method === "BYE" && m.callId === callId));
    expect(bye.vias.length).toBe(2);
  });

  it("edges configured with the same sip.dialog_secret route each other's dialogs; another secret does not", async () => {
    const p2 = await freePort();
    const shared = { dialog_secret: "0123456789abcdef0123456789abcdef" };
    const mk = (secret: Record<string, string>) => startApp({ ...config(), sip: { ...config().sip, ...secret, listen: [`udp://127.0.0.1:${p2}`] }, state_dir: tempDir() }, dir);
    let a = (await mk(shared)).app;
    const fromTag = "sh1";
    const callId = "shared-secret@test";
    carrier.send(p2, request("INVITE", `sip:+15125550100@127.0.0.1:${p2}`, carrier, { fromTag, callId }));
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === callId));
    dest.send(p2, response(inv, "200 OK", { toTag: "tt-sh1", contact: `sip:callee@127.0.0.5:${contact.port}` }));
    const ok = await waitFor(() => carrier.got.find((m) => m.callId === callId && m.status === 200));
    await a.stop(0);
    // another instance (fresh state_dir) with the shared secret routes it
    a = (await mk(shared)).app;
    const bye = (cseq: number) => request("BYE", `sip:callee@127.0.0.5:${contact.port}`, carrier, { fromTag, toTag: "tt-sh1", callId, cseq, extra: [`Route: ${ok.recordRoutes[0]}`] });
    carrier.send(p2, bye(2));
    await waitFor(() => contact.got.find((m) => m.method === "BYE" && m.callId === callId));
    await a.stop(0);
    // an instance with another secret refuses it
    a = (await mk({ dialog_secret: "another-secret-of-32-characters!" })).app;
    carrier.send(p2, bye(3));
    expect((await waitFor(() => carrier.got.find((m) => m.callId === callId && m.cseq?.seq === 3 && m.status >= 200))).status).toBe(403);
    await a.stop(0);
  });
});
