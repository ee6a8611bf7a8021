/**
 * What the callee's side of a masked call may try in order to learn the caller's number (or the
 * caller the callee's), with raw UDP peers as the carriers of A (127.0.0.2) and B (127.0.0.3) and a
 * real redis-server holding the sessions: a Record-Route that takes A's in-dialog requests off
 * didgate's path, redirects and 485 naming a new target, REFER/NOTIFY/MESSAGE inside the dialog,
 * headers and reason phrases naming a party, and a stalled session store.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { routesCommand } from "../../src/cli/routes.js";
import type { SipMessage } from "../../src/sip/index.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { freePort } from "../helpers/sipp.js";
import { Peer } from "./udp-peer.js";

const A_IP = "127.0.0.2";
const B_IP = "127.0.0.3";
const A = "+15125551001";
const B = "+15125551002";
const PROXY = "+15125550200";
/** The digits of a number as any header might carry them (with or without +1). */
const digits = (n: string): string => n.slice(2);

let seq = 0;

/** An SDP offer or answer that names its party in o=, s=, i=, u=, e=, p= and a=tool (as some UAs do). */
const sdp = (num: string, ip: string): string =>
  `v=0\r\no=${num} 1 1 IN IP4 ${ip}\r\ns=${num}\r\ni=call of ${num}\r\nu=sip:${num}@example.net\r\ne=${num}@example.net\r\np=${num}\r\n` +
  `c=IN IP4 ${ip}\r\nt=0 0\r\na=tool:softphone ${num}\r\nm=audio 40000 RTP/AVP 0\r\ni=voice of ${num}\r\na=rtpmap:0 PCMU/8000\r\n`;

describe("masked calls: what the other side may try (raw UDP carriers, real Redis)", () => {
  let redis: TestRedis;
  let app: Didgate;
  let udp = 0;
  let pa: Peer;
  let pb: Peer;

  beforeAll(async () => {
    redis = await startRedis();
    pa = await Peer.start(A_IP);
    pb = await Peer.start(B_IP);
    const dir = tempDir();
    writeRoutes(dir, {});
    const settings = { url: redis.url, prefix: "didgate:", stream_maxlen: 100_000 };
    const set = async (...argv: string[]): Promise<void> => {
      let err = "";
      const code = await routesCommand(argv, settings, () => undefined, (s) => (err += s));
      if (code !== 0) throw new Error(`routes ${argv.join(" ")}: ${err}`);
    };
    await set("set", "--outbound", A, '{"voice":["carrier-a"]}');
    await set("set", "--outbound", B, '{"voice":["carrier-b"]}');
    const port = await freePort();
    app = (
      await startApp(
        {
          sip: {
            listen: [`udp://127.0.0.1:${port}`],
            timers: { t1_ms: 30 },
            max_inflight_invites: 4,
            trunks: [
              { name: "carrier-a", sources: [A_IP], country_code: "1", cps: 1000, termination: `sip:${A_IP}:${pa.port}` },
              { name: "carrier-b", sources: [B_IP], country_code: "1", cps: 1000, termination: `sip:${B_IP}:${pb.port}` },
            ],
          },
          routes: { file: "routes.yaml", redis: { url: redis.url, snapshot: "" } },
          masking: { pools: [{ name: "ride", tenant: "acme", numbers: [PROXY] }] },
          state_dir: dir,
        },
        dir,
      )
    ).app;
    udp = app.voice!.listeners.find((l) => l.transport === "udp")!.port;
    const r = await app.masking!.create("ride", A, B, 600_000);
    if (!r.ok) throw new Error(r.code);
  }, 30_000);

  afterAll(async () => {
    await app?.stop(0);
    await pa?.close();
    await pb?.close();
    await redis?.stop();
  });

  /** Everything a peer received for one Call-ID, as text. */
  const seen = (p: Peer, callId: string): string =>
    p.got
      .filter((m) => m.callId === callId)
      .map((m) => m.toString())
      .join("\n");

  /** A's carrier sends an INVITE to the proxy number (with a Record-Route of its own); B's carrier's copy. */
  async function inviteFromA(extra: string[] = [], body = "", contentType = "application/sdp"): Promise<{ callId: string; ftag: string; inv: SipMessage }> {
    const id = `m${++seq}-${Date.now()}`;
    const callId = `${id}@a`;
    const ftag = `fa${id}`;
    pa.send(
      udp,
      [
        `INVITE sip:${PROXY}@127.0.0.1:${udp} SIP/2.0`,
        `Via: SIP/2.0/UDP ${A_IP}:${pa.port};branch=z9hG4bK-${id};rport`,
        `Record-Route: <sip:aprx@${A_IP}:${pa.port};lr>`,
        `From: "A ${A}" <sip:${A}@${A_IP}>;tag=${ftag}`,
        `To: <sip:${PROXY}@127.0.0.1>`,
        `Call-ID: ${callId}`,
        "CSeq: 1 INVITE",
        `Contact: <sip:a@${A_IP}:${pa.port}>`,
        `P-Asserted-Identity: <sip:${A}@${A_IP};user=phone>`,
        "Max-Forwards: 70",
        ...extra,
        ...(body.length > 0 ? [`Content-Type: ${contentType}`] : []),
        `Content-Length: ${Buffer.byteLength(body)}`,
        "",
        body,
      ].join("\r\n"),
    );
    const inv = await waitFor(() => pb.got.find((m) => m.method === "INVITE" && m.callId === callId), 5000);
    return { callId, ftag, inv };
  }

  /** A response of B's carrier to a request it got, with the Record-Route given (none: no header). */
  function answer(req: SipMessage, status: string, o: { toTag?: string; rr?: string[]; contact?: string; extra?: string[]; body?: string } = {}): string {
    const to = req.get("to")!;
    return [
      `SIP/2.0 ${status}`,
      ...req.vias.map((v) => `Via: ${v}`),
      ...(o.rr ?? []).map((r) => `Record-Route: ${r}`),
      `From: ${req.get("from")}`,
      `To: ${to}${o.toTag !== undefined && !to.includes(";tag=") ? `;tag=${o.toTag}` : ""}`,
      `Call-ID: ${req.callId}`,
      `CSeq: ${req.get("cseq")}`,
      ...(o.contact !== undefined ? [`Contact: <${o.contact}>`] : []),
      ...(o.extra ?? []),
      ...(o.body !== undefined ? ["Content-Type: application/sdp"] : []),
      `Content-Length: ${Buffer.byteLength(o.body ?? "")}`,
      "",
      o.body ?? "",
    ].join("\r\n");
  }

  /** A's BYE along the route set of the 200 it got (its own proxy entry is itself: next is didgate). */
  async function byeFromA(ok: SipMessage, callId: string, ftag: string): Promise<SipMessage> {
    const rr = ok.recordRoutes;
    // route set of the UAC: the Record-Route reversed; A's own entry (the last) is where it is
    const routes = rr.slice(0, -1).reverse();
    const id = `bye${++seq}`;
    pa.send(
      udp,
      [
        `BYE ${ok.get("contact")!.replace(/^<|>$/g, "")} SIP/2.0`,
        `Via: SIP/2.0/UDP ${A_IP}:${pa.port};branch=z9hG4bK-${id};rport`,
        ...routes.map((r) => `Route: ${r}`),
        `From: <sip:${A}@${A_IP}>;tag=${ftag}`,
        `To: ${ok.get("to")}`,
        `Call-ID: ${callId}`,
        "CSeq: 2 BYE",
        `P-Asserted-Identity: <sip:${A}@${A_IP};user=phone>`,
        "Max-Forwards: 70",
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n"),
    );
    return waitFor(() => pb.got.find((m) => m.method === "BYE" && m.callId === callId), 5000);
  }

  it("B answers with an extra Record-Route below didgate's: A's route set is didgate's signed entry and A's own, and A's BYE reaches B through didgate, masked", async () => {
    const { callId, ftag, inv } = await inviteFromA();
    const ours = inv.recordRoutes[0]!;
    expect(ours).toContain(";dgm=");
    const evil = `<sip:evil@${B_IP}:9;lr>`;
    pb.send(udp, answer(inv, "180 Ringing", { toTag: "tb1", rr: [ours, evil], contact: `sip:b@${B_IP}:${pb.port}` }));
    const ring = await waitFor(() => pa.got.find((m) => m.callId === callId && m.status === 180), 5000);
    expect(ring.recordRoutes.join(",")).not.toContain("evil");
    pb.send(udp, answer(inv, "200 OK", { toTag: "tb1", rr: [`<sip:bprx@${B_IP}:${pb.port};lr>`, ours, evil], contact: `sip:b@${B_IP}:${pb.port}` }));
    const ok = await waitFor(() => pa.got.find((m) => m.callId === callId && m.status === 200), 5000);
    const rr = ok.recordRoutes;
    expect(rr.length).toBe(3);
    expect(rr[0]).toBe(`<sip:bprx@${B_IP}:${pb.port};lr>`);
    expect(rr[1]).toContain(";dgm=");
    expect(rr[2]).toBe(`<sip:aprx@${A_IP}:${pa.port};lr>`);
    const bye = await byeFromA(ok, callId, ftag);
    expect(bye.vias.length, "A's BYE came through didgate").toBe(2);
    expect(bye.get("from")).toContain(PROXY);
    expect(seen(pb, callId)).not.toContain(digits(A));
  });

  it("B answers without any Record-Route (1xx and 2xx): didgate's signed entry is put back, A's BYE still passes through didgate", async () => {
    const { callId, ftag, inv } = await inviteFromA();
    pb.send(udp, answer(inv, "183 Session Progress", { toTag: "tb2", contact: `sip:b@${B_IP}:${pb.port}` }));
    const early = await waitFor(() => pa.got.find((m) => m.callId === callId && m.status === 183), 5000);
    expect(early.recordRoutes.length).toBe(2);
    expect(early.recordRoutes[0]).toContain(";dgm=");
    pb.send(udp, answer(inv, "200 OK", { toTag: "tb2", contact: `sip:b@${B_IP}:${pb.port}` }));
    const ok = await waitFor(() => pa.got.find((m) => m.callId === callId && m.status === 200), 5000);
    expect(ok.recordRoutes.length).toBe(2);
    expect(ok.recordRoutes[0]).toContain(";dgm=");
    expect(ok.recordRoutes[1]).toBe(`<sip:aprx@${A_IP}:${pa.port};lr>`);
    const bye = await byeFromA(ok, callId, ftag);
    expect(bye.vias.length, "A's BYE came through didgate").toBe(2);
    expect(bye.get("from")).toContain(PROXY);
    expect(seen(pb, callId)).not.toContain(digits(A));
  });

  for (const status of ["302 Moved Temporarily", "300 Multiple Choices", "485 Ambiguous"]) {
    it(`B answers ${status} with a Contact naming B: A gets 480 from didgate, never B's Contact`, async () => {
      const { callId, inv } = await inviteFromA();
      pb.send(udp, answer(inv, status, { toTag: "tb3", contact: `sip:${B}@${B_IP}:${pb.port}` }));
      const fin = await waitFor(() => pa.got.find((m) => m.callId === callId && m.status >= 200), 5000);
      expect(fin.status).toBe(480);
      expect(fin.get("contact")).toBeUndefined();
      expect(seen(pa, callId)).not.toContain(digits(B));
    });
  }

  it("REFER, NOTIFY (sipfrag), SUBSCRIBE, PUBLISH and MESSAGE inside a masked dialog are refused with 405 and Allow, and never reach the other side; INFO passes", async () => {
    const { callId, ftag, inv } = await inviteFromA();
    pb.send(udp, answer(inv, "200 OK", { toTag: "tb4", rr: inv.recordRoutes, contact: `sip:b@${B_IP}:${pb.port}` }));
    const ok = await waitFor(() => pa.got.find((m) => m.callId === callId && m.status === 200), 5000);
    // B's requests towards A along B's route set (the INVITE's Record-Route)
    const fromB = (method: string, n: number, extra: string[] = [], body = ""): string =>
      [
        `${method} sip:a@${A_IP}:${pa.port} SIP/2.0`,
        `Via: SIP/2.0/UDP ${B_IP}:${pb.port};branch=z9hG4bK-${method}-${callId}`,
        ...inv.recordRoutes.map((r) => `Route: ${r}`),
        `From: <sip:${B}@${B_IP}>;tag=tb4`,
        `To: ${inv.get("from")}`,
        `Call-ID: ${callId}`,
        `CSeq: ${n} ${method}`,
        "Max-Forwards: 70",
        ...extra,
        `Content-Length: ${Buffer.byteLength(body)}`,
        "",
        body,
      ].join("\r\n");
    const cases: Array<[string, string[], string]> = [
      ["REFER", [`Refer-To: <sip:${B}@${B_IP}>`, `Referred-By: <sip:${B}@${B_IP}>`], ""],
      ["NOTIFY", ["Event: refer", "Subscription-State: active", "Content-Type: message/sipfrag"], `SIP/2.0 200 OK\r\nFrom: <sip:${B}@${B_IP}>\r\n`],
      ["SUBSCRIBE", ["Event: dialog"], ""],
      ["PUBLISH", ["Event: presence"], ""],
      ["MESSAGE", ["Content-Type: text/plain"], `call me at ${B}`],
    ];
    let n = 10;
    for (const [method, extra, body] of cases) {
      pb.send(udp, fromB(method, ++n, extra, body));
      const r = await waitFor(() => pb.got.find((m) => m.callId === callId && m.cseq?.method === method && m.status >= 200), 5000);
      expect(r.status, method).toBe(405);
      expect(r.get("allow"), method).toContain("BYE");
      expect(r.get("allow"), method).not.toContain(method);
    }
    // A's MESSAGE towards B (A's route set: the 200's Record-Route reversed, its own entry left out)
    pa.send(
      udp,
      [
        `MESSAGE sip:b@${B_IP}:${pb.port} SIP/2.0`,
        `Via: SIP/2.0/UDP ${A_IP}:${pa.port};branch=z9hG4bK-msg-${callId}`,
        ...ok.recordRoutes.slice(0, -1).reverse().map((r) => `Route: ${r}`),
        `From: <sip:${A}@${A_IP}>;tag=${ftag}`,
        `To: ${ok.get("to")}`,
        `Call-ID: ${callId}`,
        "CSeq: 5 MESSAGE",
        "Max-Forwards: 70",
        "Content-Type: text/plain",
        `Content-Length: ${A.length}`,
        "",
        A,
      ].join("\r\n"),
    );
    expect((await waitFor(() => pa.got.find((m) => m.callId === callId && m.cseq?.method === "MESSAGE" && m.status >= 200), 5000)).status).toBe(405);
    // INFO is part of a call: it passes (and proves the route above was a valid one)
    pb.send(udp, fromB("INFO", 30));
    const info = await waitFor(() => pa.got.find((m) => m.callId === callId && m.method === "INFO"), 5000);
    expect(info.get("from")).toContain("tag=tb4");
    for (const [method] of cases) expect(pa.got.some((m) => m.callId === callId && m.method === method), method).toBe(false);
    expect(pb.got.some((m) => m.callId === callId && m.method === "MESSAGE")).toBe(false);
  });

  it("headers, reason phrases and Reason texts naming a party never cross a masked call (INVITE, 1xx/2xx, in-dialog requests both ways and their responses)", async () => {
    const aIds = [
      `P-Served-User: <sip:${A}@ims.example>;sescase=orig;regstate=reg`,
      `P-Called-Party-ID: <sip:${PROXY}@ims.example>`,
      `P-Charging-Vector: icid-value=${digits(A)}-1;orig-ioi=carrier-a`,
      `Reply-To: <sip:${A}@carrier-a.example>`,
      `Call-Info: <sip:${A}@carrier-a.example>;purpose=info`,
      `X-Orig-Caller: ${A}`,
      `User-to-User: 0031${Buffer.from(A).toString("hex")};encoding=hex`,
      `Organization: Alice ${A}`,
      `Subject: call from ${A}`,
      `User-Agent: phone of ${A}`,
      "Supported: 100rel, timer",
      "Session-Expires: 1800;refresher=uac",
      "Privacy: none",
    ];
    const { callId, ftag, inv } = await inviteFromA(aIds, sdp(A, A_IP));
    expect(seen(pb, callId)).not.toContain(digits(A));
    expect(inv.body.toString()).toContain(`c=IN IP4 ${A_IP}`);
    expect(inv.body.toString()).toMatch(/^o=- 1 1 IN IP4 /m);
    // what SIP needs is kept
    expect(inv.get("supported")).toBe("100rel, timer");
    expect(inv.get("session-expires")).toBe("1800;refresher=uac");
    expect(inv.get("privacy")).toBe("none");
    expect(inv.get("p-asserted-identity")).toBe(`<tel:${PROXY}>`);
    const bIds = [
      `P-Asserted-Identity: <tel:${B}>`,
      `P-Called-Party-ID: <sip:${B}@ims-b.example>`,
      `P-Associated-URI: <sip:${B}@ims-b.example>`,
      `P-Charging-Vector: icid-value=${digits(B)}-9;term-ioi=carrier-b`,
      `Reply-To: <sip:${B}@carrier-b.example>`,
      `Server: carrier-b SBC for ${B}`,
      `Warning: 399 sbc-b.example "subscriber ${B} on LTE"`,
      `Reason: Q.850;cause=16;text="${B} answered"`,
      "Allow: INVITE, ACK, BYE, CANCEL, UPDATE, PRACK",
    ];
    const toB = `To: "Bob" <sip:${B}@carrier-b.example>;tag=tb5`;
    const withTo = (t: string): string => t.replace(/^To: .*$/m, toB);
    pb.send(udp, withTo(answer(inv, `180 Ringing ${B}`, { toTag: "tb5", rr: inv.recordRoutes, contact: `sip:b@${B_IP}:${pb.port}`, extra: bIds })));
    pb.send(udp, withTo(answer(inv, `200 OK ${B}`, { toTag: "tb5", rr: inv.recordRoutes, contact: `sip:b@${B_IP}:${pb.port}`, extra: bIds, body: sdp(B, B_IP) })));
    const ring = await waitFor(() => pa.got.find((m) => m.callId === callId && m.status === 180), 5000);
    const ok = await waitFor(() => pa.got.find((m) => m.callId === callId && m.status === 200), 5000);
    expect(ring.reason).toBe("Ringing");
    expect(ok.reason).toBe("OK");
    expect(ok.get("reason")).toBe("Q.850;cause=16");
    expect(ok.get("allow")).toBe("INVITE, ACK, BYE, CANCEL, UPDATE, PRACK");
    expect(ok.toTag).toBe("tb5");
    expect(ok.body.toString()).toContain(`c=IN IP4 ${B_IP}`);
    expect(ok.get("content-length")).toBe(String(ok.body.length));
    // B's network writes B's number in From of its in-dialog request; A's UA answers with its own number in To
    pb.send(
      udp,
      [
        `INFO sip:a@${A_IP}:${pa.port} SIP/2.0`,
        `Via: SIP/2.0/UDP ${B_IP}:${pb.port};branch=z9hG4bK-info-${callId}`,
        ...inv.recordRoutes.map((r) => `Route: ${r}`),
        `From: "Bob" <sip:${B}@carrier-b.example;user=phone>;tag=tb5`,
        `To: ${inv.get("from")}`,
        `Call-ID: ${callId}`,
        "CSeq: 20 INFO",
        "Max-Forwards: 70",
        `Reason: SIP;cause=200;text="${B} says hi"`,
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n"),
    );
    const info = await waitFor(() => pa.got.find((m) => m.callId === callId && m.method === "INFO"), 5000);
    expect(info.fromTag).toBe("tb5");
    expect(info.toTag).toBe(ftag);
    expect(info.get("reason")).toBe("SIP;cause=200");
    pa.send(udp, answer(info, `200 OK ${A}`).replace(/^To: .*$/m, `To: "Alice" <sip:${A}@carrier-a.example>;tag=${ftag}`).replace(/^From: .*$/m, `From: <sip:${A}@x>;tag=tb5`));
    const infoOk = await waitFor(() => pb.got.find((m) => m.callId === callId && m.status === 200 && m.cseq?.method === "INFO"), 5000);
    expect(infoOk.reason).toBe("OK");
    // A's INFO towards B; B answers with its number in To and in the reason phrase
    pa.send(
      udp,
      [
        `INFO sip:b@${B_IP}:${pb.port} SIP/2.0`,
        `Via: SIP/2.0/UDP ${A_IP}:${pa.port};branch=z9hG4bK-info2-${callId}`,
        ...ok.recordRoutes.slice(0, -1).reverse().map((r) => `Route: ${r}`),
        `From: <sip:${A}@${A_IP}>;tag=${ftag}`,
        `To: ${ok.get("to")}`,
        `Call-ID: ${callId}`,
        "CSeq: 3 INFO",
        "Max-Forwards: 70",
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n"),
    );
    const info2 = await waitFor(() => pb.got.find((m) => m.callId === callId && m.method === "INFO"), 5000);
    pb.send(udp, withTo(answer(info2, `486 Busy ${B}`, { extra: [`Server: ${B}`] })));
    const busy = await waitFor(() => pa.got.find((m) => m.callId === callId && m.cseq?.method === "INFO" && m.status >= 200), 5000);
    expect(busy.status).toBe(486);
    expect(busy.reason).toBe("Busy Here");
    expect(seen(pb, callId)).not.toContain(digits(A));
    expect(seen(pa, callId)).not.toContain(digits(B));
  });

  it("a multipart body (SDP with an ISUP part naming A): only the SDP goes on, masked", async () => {
    const isup = `\x01\x10\x60${digits(A)}`;
    const body = [`--b1`, "Content-Type: application/sdp", "", sdp(A, A_IP), `--b1`, "Content-Type: application/isup; version=itu-t92+", "Content-Disposition: signal; handling=optional", "", isup, `--b1--`, ""].join("\r\n");
    const { callId, inv } = await inviteFromA([], body, "multipart/mixed; boundary=b1");
    expect(seen(pb, callId)).not.toContain(digits(A));
    expect(inv.get("content-type")).toBe("application/sdp");
    expect(inv.body.toString()).toMatch(/^o=- 1 1 IN IP4 /m);
    expect(inv.body.toString()).toContain(`c=IN IP4 ${A_IP}`);
    expect(inv.body.toString()).toContain("m=audio 40000 RTP/AVP 0");
    // the same with LF line ends inside the body
    const lf = body.replace(/\r\n/g, "\n");
    const two = await inviteFromA([], lf, "multipart/mixed; boundary=b1");
    expect(seen(pb, two.callId)).not.toContain(digits(A));
    expect(two.inv.body.toString()).toContain("m=audio 40000 RTP/AVP 0");
    // an ISUP body alone goes
    const three = await inviteFromA([], isup, "application/isup; version=itu-t92+");
    expect(seen(pb, three.callId)).not.toContain(digits(A));
    expect(three.inv.body.length).toBe(0);
  });

  it("a late 2xx after the INVITE transaction is gone (another To tag): what is below didgate's Record-Route is cut, a forged didgate value is not relayed", async () => {
    const { callId, inv } = await inviteFromA();
    const ours = inv.recordRoutes[0]!;
    const contact = `sip:b@${B_IP}:${pb.port}`;
    pb.send(udp, answer(inv, "200 OK", { toTag: "tb6", rr: inv.recordRoutes, contact }));
    await waitFor(() => pa.got.find((m) => m.callId === callId && m.status === 200 && m.toTag === "tb6"), 5000);
    // the client transaction ends 64*T1 (about 2 s here) after the 2xx: later 2xx are relayed without it
    await new Promise((r) => setTimeout(r, 64 * 30 + 600));
    pb.send(udp, answer(inv, "200 OK", { toTag: "tb7", rr: [ours, `<sip:evil@${B_IP}:9;lr>`], contact }));
    const late = await waitFor(() => pa.got.find((m) => m.callId === callId && m.status === 200 && m.toTag === "tb7"), 5000);
    expect(late.recordRoutes.join(",")).not.toContain("evil");
    expect(late.recordRoutes[late.recordRoutes.length - 1]).toContain(";dgm=");
    const forged = ours.replace(/;dgs=[^;>]*/, ";dgs=AAAAAAAAAAAAAAAAAAAAAA");
    pb.send(udp, answer(inv, "200 OK", { toTag: "tb8", rr: [forged, `<sip:evil@${B_IP}:9;lr>`], contact }));
    pb.send(udp, answer(inv, "200 OK", { toTag: "tb9", rr: [ours], contact }));
    await waitFor(() => pa.got.find((m) => m.callId === callId && m.status === 200 && m.toTag === "tb9"), 5000);
    expect(pa.got.some((m) => m.callId === callId && m.toTag === "tb8")).toBe(false);
    expect(seen(pa, callId)).not.toContain("evil");
  });

  // last: it stops Redis for a while
  it("the session store stalls (Redis stopped): 503 with Retry-After within about a second, pending lookups count as in flight, nothing goes out late", async () => {
    const sent = (id: string): void =>
      pa.send(
        udp,
        [
          `INVITE sip:${PROXY}@127.0.0.1:${udp} SIP/2.0`,
          `Via: SIP/2.0/UDP ${A_IP}:${pa.port};branch=z9hG4bK-${id};rport`,
          `From: <sip:${A}@${A_IP}>;tag=f${id}`,
          `To: <sip:${PROXY}@127.0.0.1>`,
          `Call-ID: ${id}@stall`,
          "CSeq: 1 INVITE",
          `Contact: <sip:a@${A_IP}:${pa.port}>`,
          "Max-Forwards: 70",
          "Content-Length: 0",
          "",
          "",
        ].join("\r\n"),
      );
    const final = (id: string): Promise<SipMessage> => waitFor(() => pa.got.find((m) => m.callId === `${id}@stall` && m.status >= 200), 8000);
    const ids = [1, 2, 3, 4, 5].map((i) => `st${i}-${Date.now()}`);
    redis.pause();
    try {
      const t0 = Date.now();
      for (const id of ids.slice(0, 4)) sent(id);
      // four lookups pending: the fifth INVITE is over max_inflight_invites at once
      await waitFor(() => ids.slice(0, 4).every((id) => pa.got.some((m) => m.callId === `${id}@stall` && m.status === 100)), 5000);
      sent(ids[4]!);
      const over = await final(ids[4]!);
      expect(over.status).toBe(503);
      expect(over.get("retry-after")).toBe("1");
      for (const id of ids.slice(0, 4)) {
        const r = await final(id);
        expect(r.status).toBe(503);
        expect(r.reason).toBe("Service Unavailable (masking sessions)");
        expect(r.get("retry-after")).toBe("1");
      }
      // answered while Redis is still stopped (it stays so until the finally below)
      expect(Date.now() - t0).toBeLessThan(6000);
    } finally {
      redis.resume();
    }
    // Redis answers again: a new call reaches B, and none of the refused ones went out late
    const { callId } = await inviteFromA();
    expect(pb.got.some((m) => m.callId === callId)).toBe(true);
    expect(pb.got.some((m) => m.callId?.endsWith("@stall"))).toBe(false);
  });
});
