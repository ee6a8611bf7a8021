/**
 * A phone over TCP registered on edge 1, called through edge 2 (two didgate edges on one real
 * redis-server): edge 2 sends the INVITE to edge 1 with a signed flow token in its Route, and edge 1
 * sends it down the phone's own connection. The phone (a plain TCP socket that listens nowhere)
 * answers; the carrier's (sipp) ACK and BYE, and the phone's own BYE, pass both edges. Forged
 * requests naming the phone's flow (no token, a token of another call, an expired one, one signed
 * with another secret) get 403 and never reach the phone.
 */
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { DialogSigner, flowToken } from "../../src/sip/rr.js";
import type { SipMessage } from "../../src/sip/message.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import type { TestRedis } from "../helpers/redis.js";
import { freePort } from "../helpers/sipp.js";
import { answerTo, DOMAIN, PHONE_IP, TcpPhone, metricValue, sharedRedis, stopShared } from "./registrar-util.js";
import { ok, startUac } from "./sip-util.js";
import { Peer, request } from "./udp-peer.js";

const PREFIX = "path:";
const DIALOG_SECRET = "dialog secret shared by both edges";
/** Not a trunk, not an edge: where forged requests come from. */
const STRANGER_IP = "127.0.0.9";
let shared: Awaited<ReturnType<typeof sharedRedis>> | undefined;
let redis: TestRedis;
let client: Redis;
const edges: Array<{ app: Didgate; udp: number; tcp: number }> = [];


beforeAll(async () => {
  shared = await sharedRedis(PREFIX);
  ({ redis, client } = shared);
  const w = shared.writer;
  await w.set("+15125550900", { tenant: "acme", voice: { targets: [`sip:hank@${DOMAIN}`] } });
  for (const id of ["edge-1", "edge-2"]) {
    const dir = tempDir();
    const port = await freePort();
    const { app } = await startApp(
      {
        sip: {
          listen: [`udp://127.0.0.1:${port}`, `tcp://127.0.0.1:${port}`],
          timers: { t1_ms: 30 },
          auth: { algorithms: ["MD5"], secret: "nonce secret shared by both edges" },
          dialog_secret: DIALOG_SECRET,
          trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1", cps: 1000 }],
          registrar: { domain: DOMAIN, users: [{ user: "hank", tenant: "acme", password: "hank-secret" }] },
        },
        routes: { redis: { url: redis.url, prefix: PREFIX, snapshot: "" } },
        state_dir: dir,
        instance_id: id,
      },
      dir,
    );
    const ls = app.voice!.listeners;
    edges.push({ app, udp: ls.find((l) => l.transport === "udp")!.port, tcp: ls.find((l) => l.transport === "tcp")!.port });
  }
}, 30_000);

afterAll(() => stopShared(edges, shared));

describe("a TCP phone registered on edge 1, called through edge 2", () => {
  let phone: TcpPhone;
  // a Contact nobody listens on: only the connection the phone registered on reaches it
  const contact = "sip:hank@127.0.0.99:9;transport=tcp";

  beforeAll(async () => {
    phone = await TcpPhone.connect(edges[0]!.tcp);
    const r = await phone.registerWithDigest("hank", "hank-secret", contact);
    expect(r.status).toBe(200);
    const bs = await edges[1]!.app.voice!.registrar!.bindings("hank");
    expect(bs.map((b) => [b.edge, b.transport, b.address, b.port, b.edgeUri])).toEqual([["edge-1", "tcp", PHONE_IP, phone.sock.localPort, `sip:127.0.0.1:${edges[0]!.tcp};transport=tcp`]]);
  }, 30_000);

  afterAll(() => phone?.close());

  it("the INVITE reaches the phone over its own connection through edge 1; ACK and the carrier's BYE too", async () => {
    const [e1, e2] = edges as [(typeof edges)[0], (typeof edges)[0]];
    const relayed = await metricValue(e1.app, "didgate_registrar_edge_relays_total", { result: "relayed" });
    const uac = await startUac("uac_call.xml", "udp", e2.udp, { service: "+15125550900" });
    const inv = await phone.next((m) => m.isRequest && m.method === "INVITE");
    expect(inv.requestUri).toBe(contact);
    // through edge 2 then edge 1 (top Via), and both stay in the dialog's route set
    const vias = inv.getAll("via");
    expect(vias[0]).toContain(`127.0.0.1:${e1.tcp}`);
    expect(vias.some((v) => v.includes(`127.0.0.1:${e2.udp}`))).toBe(true);
    const rr = inv.getAll("record-route").join(",");
    expect(rr).toContain(`127.0.0.1:${e1.tcp}`);
    expect(rr).toContain(`127.0.0.1:${e2.udp}`);
    // edge 1 consumed its Route (the flow token goes no further)
    expect(inv.getAll("route")).toEqual([]);
    phone.send(answerTo(inv, "200 OK", [`Contact: <${contact}>`]));
    await phone.next((m) => m.isRequest && m.method === "ACK");
    const bye = await phone.next((m) => m.isRequest && m.method === "BYE");
    phone.send(answerTo(bye, "200 OK"));
    await ok(uac, "carrier on edge 2");
    // the carrier sees the phone at the address of its connection (edge 1 rewrote the Contact)
    const ok200 = uac.receivedResponses().find((m) => m.status === 200 && m.cseq?.method === "INVITE")!;
    expect(ok200.get("contact")).toBe(`<sip:hank@${PHONE_IP}:${phone.sock.localPort};transport=tcp>`);
    expect(await metricValue(e1.app, "didgate_registrar_edge_relays_total", { result: "relayed" })).toBe(relayed + 1);
    expect(phone.closed).toBe(false);
  }, 60_000);

  it("the phone hangs up: its BYE goes back through edge 1 and edge 2 to the carrier", async () => {
    const [, e2] = edges as [(typeof edges)[0], (typeof edges)[0]];
    const uac = await startUac("uac_wait_bye.xml", "udp", e2.udp, { service: "+15125550900" });
    const inv = await phone.next((m) => m.isRequest && m.method === "INVITE");
    phone.send(answerTo(inv, "200 OK", [`Contact: <${contact}>`]));
    const ack = await phone.next((m) => m.isRequest && m.method === "ACK");
    // the route set of the callee: the Record-Route of the INVITE, in order
    const routes = inv.getAll("record-route");
    const toTag = ";tag=tcpphone-callee";
    phone.send([
      `BYE ${inv.get("contact")!.replace(/^.*<([^>]+)>.*$/, "$1")} SIP/2.0`,
      `Via: SIP/2.0/TCP ${phone.local};branch=z9hG4bK-bye-${Date.now()};rport`,
      ...routes.map((r) => `Route: ${r}`),
      `From: ${inv.get("to")}${toTag}`,
      `To: ${inv.get("from")}`,
      `Call-ID: ${inv.callId}`,
      "CSeq: 1 BYE",
      "Max-Forwards: 70",
      "Content-Length: 0",
    ]);
    const done = await phone.next((m) => !m.isRequest && m.cseq?.method === "BYE");
    expect(done.status).toBe(200);
    expect(ack.callId).toBe(inv.callId);
    await ok(uac, "carrier waiting for the BYE");
  }, 60_000);

  it("the carrier cancels while the phone rings: the CANCEL passes both edges down the phone's connection, 487 comes back", async () => {
    const [, e2] = edges as [(typeof edges)[0], (typeof edges)[0]];
    const uac = await startUac("uac_cancel.xml", "udp", e2.udp, { service: "+15125550900" });
    const inv = await phone.next((m) => m.isRequest && m.method === "INVITE");
    phone.send(answerTo(inv, "180 Ringing"));
    const cancel = await phone.next((m) => m.isRequest && m.method === "CANCEL");
    expect(cancel.callId).toBe(inv.callId);
    phone.send(answerTo(cancel, "200 OK"));
    phone.send(answerTo(inv, "487 Request Terminated"));
    const ack = await phone.next((m) => m.isRequest && m.method === "ACK");
    expect(ack.callId).toBe(inv.callId);
    await ok(uac, "carrier cancelling on edge 2");
  }, 60_000);

  describe("forged requests naming the phone's flow on edge 1 (from a source that is neither edge nor trunk)", () => {
    let peer: Peer;
    beforeAll(async () => {
      peer = await Peer.start(STRANGER_IP);
    });
    afterAll(() => peer?.close());

    const flow = (): string => flowToken("tcp", PHONE_IP, phone.sock.localPort!);
    const forged = async (what: string, route: string, callId: string): Promise<SipMessage> => {
      const e1 = edges[0]!;
      const n = peer.got.length;
      peer.send(e1.udp, request("INVITE", contact, { address: STRANGER_IP, port: peer.port }, { callId, extra: [`Route: ${route}`] }));
      // matched by Call-ID: the 403s are not ACKed here, so edge 1 resends them over UDP meanwhile
      return waitFor(() => peer.got.slice(n).find((m) => !m.isRequest && m.status >= 200 && m.callId === callId), 5000, 20).catch(() => {
        throw new Error(`${what}: no final answer from edge 1`);
      });
    };

    it("no valid token: 403 and the phone gets nothing; a correctly signed one is the control that reaches it", async () => {
      const e1 = edges[0]!;
      const at = `sip:127.0.0.1:${e1.udp}`;
      const good = new DialogSigner([DIALOG_SECRET]);
      const other = new DialogSigner(["some other secret, not the edges' one"]);
      const exp = Math.floor(Date.now() / 1000) + 60;
      const refusedBefore = await metricValue(e1.app, "didgate_registrar_edge_relays_total", { result: "refused" });
      const cases: Array<[string, string, string]> = [
        ["a made-up token", `<${at};lr;dgf=${flow()};dgx=${exp};dgp=AAAAAAAAAAAAAAAAAAAAAA>`, "forged-1@test"],
        ["no token at all", `<${at};lr;dgf=${flow()};dgp=>`, "forged-2@test"],
        ["a token of another call", `<${at};lr;dgf=${flow()};dgx=${exp};dgp=${good.signFlow("another-call@test", flow(), exp)}>`, "forged-3@test"],
        ["an expired token", `<${at};lr;dgf=${flow()};dgx=${exp - 600};dgp=${good.signFlow("forged-4@test", flow(), exp - 600)}>`, "forged-4@test"],
        ["a token signed with another secret", `<${at};lr;dgf=${flow()};dgx=${exp};dgp=${other.signFlow("forged-5@test", flow(), exp)}>`, "forged-5@test"],
      ];
      for (const [what, route, callId] of cases) {
        const r = await forged(what, route, callId);
        expect(r.status, what).toBe(403);
        expect(r.reason, what).toBe("Forbidden (flow token)");
      }
      expect(await metricValue(e1.app, "didgate_registrar_edge_relays_total", { result: "refused" })).toBe(refusedBefore + cases.length);
      // the control: the same request with a token for its own Call-ID reaches the phone, so the
      // refusals above are the token's doing (and the phone got none of them)
      const callId = "control@test";
      const n = peer.got.length;
      peer.send(e1.udp, request("INVITE", contact, { address: STRANGER_IP, port: peer.port }, { callId, extra: [`Route: <${at};lr;dgf=${flow()};dgx=${exp};dgp=${good.signFlow(callId, flow(), exp)}>`] }));
      const inv = await phone.next((m) => m.isRequest && m.method === "INVITE");
      expect(inv.callId).toBe(callId);
      expect(phone.got.filter((m) => m.isRequest && m.method === "INVITE" && m.callId?.startsWith("forged-"))).toEqual([]);
      phone.send(answerTo(inv, "486 Busy Here"));
      const busy = await waitFor(() => peer.got.slice(n).find((m) => !m.isRequest && m.status >= 200 && m.callId === callId), 5000, 20);
      expect(busy?.status).toBe(486);
    }, 60_000);
  });

  it("the phone's connection is gone: edge 1 answers edge 2 with 430 Flow Failed, edge 2 answers the carrier 480 (no other target)", async () => {
    const [e1, e2] = edges as [(typeof edges)[0], (typeof edges)[0]];
    const port = phone.sock.localPort!;
    phone.close();
    await waitFor(() => (e1.app.voice!.stack.transport.getConnection("tcp", PHONE_IP, port) === undefined ? true : undefined), 5000, 20);
    const failed = await metricValue(e1.app, "didgate_registrar_edge_relays_total", { result: "flow_failed" });
    const uac = await startUac("uac_final.xml", "udp", e2.udp, { service: "+15125550900", subst: { CODE: "480" } });
    await ok(uac, "carrier on edge 2");
    expect(uac.receivedResponses().find((m) => m.status === 480)?.reason).toBe("Temporarily Unavailable (flow failed)");
    expect(await metricValue(e1.app, "didgate_registrar_edge_relays_total", { result: "flow_failed" })).toBe(failed + 1);
  }, 60_000);
});
