/**
 * Calls through masking sessions end to end, with a real redis-server holding the sessions and
 * sipp on both sides: party A's carrier on 127.0.0.2 (trunk carrier-a: it sends A's calls and
 * terminates calls to A), party B's carrier on 127.0.0.3 (carrier-b), an IVR (a pool number's own
 * route) on 127.0.0.4. Every party names itself in every identity header it can; the cases check
 * that the other side never sees that number anywhere in what it receives, that BYE and re-INVITE
 * pass both ways, and the refusals.
 */
import dgram from "node:dgram";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import type { Didgate } from "../../src/app.js";
import { parseMessage, SipMessage } from "../../src/sip/index.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { jsonlRecords, receivedText, redisRoutes } from "./masking-util.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { freePort, killAllSipp, sippReady } from "../helpers/sipp.js";
import { startUac, startUas, statuses, ok, type Party } from "./sip-util.js";

const A_IP = "127.0.0.2";
const B_IP = "127.0.0.3";
const IVR_IP = "127.0.0.4";
const A = "+15125551001";
const B = "+15125551002";
const C = "+15125551003";
/** The parties of a second session on the same proxy number. */
const A2 = "+15125551011";
const B2 = "+15125551012";
const PROXY = "+15125550200";
const DESK = "+15125550201";
const SHORT = "+15125550202";
/** The digits of a number as any header might carry them (with or without +1). */
const digits = (n: string): string => n.slice(2);

// ---- ends of the scenarios (test/edge/scenarios/uac_mask.xml, uas_mask.xml)

const IDS = `P-Asserted-Identity: <sip:[caller]@[local_ip];user=phone>
      Remote-Party-ID: <sip:[caller]@[local_ip]>;party=calling;screen=yes`;

const UAC_BYE = `<pause milliseconds="200"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "Party [caller]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      ${IDS}
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>`;

const UAC_WAIT_BYE = `<recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      ${IDS}
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="300"/>`;

const UAC_REINVITE = `<pause milliseconds="100"/>
  <send retrans="500">
    <![CDATA[

      INVITE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "Party [caller]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      ${IDS}
      Max-Forwards: 70
      Subject: reinvite
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687638 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "Party [caller]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  ${UAC_BYE}`;

const selfIds = (self: string): string => `P-Asserted-Identity: <sip:${self}@[local_ip];user=phone>
      Remote-Party-ID: <sip:${self}@[local_ip]>;party=called;screen=yes`;

const uasWaitBye = (self: string): string => `<recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      ${selfIds(self)}
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="300"/>`;

const uasBye = (self: string): string => `<pause milliseconds="200"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: [$to];tag=[pid]SIPpTag01[call_number]
      To: [$from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      ${selfIds(self)}
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>`;

const uasReinvite = (self: string): string => `<recv request="INVITE"/>
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      ${selfIds(self)}
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user2 53655765 2353687638 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  ${uasWaitBye(self)}`;

async function metricValue(app: Didgate, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === name);
  if (!m) return 0;
  let sum = 0;
  for (const v of m.values as Array<{ value: number; labels: Record<string, string | number> }>) {
    if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value;
  }
  return sum;
}


describe("calls through masking sessions (sipp carriers of A and B, real Redis)", () => {
  let redis: TestRedis;
  let app: Didgate;
  let udp = 0;
  let PA = 0;
  let PB = 0;
  let PIVR = 0;
  let dir = "";
  let session = "";

  beforeAll(async () => {
    redis = await startRedis();
    PA = await freePort(A_IP);
    PB = await freePort(B_IP);
    PIVR = await freePort(IVR_IP);
    dir = tempDir();
    writeRoutes(dir, {});
    const set = redisRoutes(redis.url);
    await set("set", "--outbound", A, '{"voice":["carrier-a"]}');
    await set("set", "--outbound", B, '{"voice":["carrier-b"]}');
    await set("set", "--outbound", A2, '{"voice":["carrier-a"]}');
    await set("set", "--outbound", B2, '{"voice":["carrier-b"]}');
    await set("set", DESK, JSON.stringify({ tenant: "acme", voice: { targets: [`sip:ivr@${IVR_IP}:${PIVR}`] } }));
    const port = await freePort();
    app = (
      await startApp(
        {
          sip: {
            listen: [`udp://127.0.0.1:${port}`],
            timers: { t1_ms: 30 },
            trunks: [
              { name: "carrier-a", sources: [A_IP], country_code: "1", cps: 1000, termination: `sip:${A_IP}:${PA}` },
              { name: "carrier-b", sources: [B_IP], country_code: "1", cps: 1000, termination: `sip:${B_IP}:${PB}` },
            ],
          },
          routes: { file: "routes.yaml", redis: { url: redis.url, snapshot: "" } },
          masking: {
            pools: [
              { name: "ride", tenant: "acme", numbers: [PROXY] },
              { name: "desk", tenant: "acme", numbers: [DESK] },
              { name: "short", tenant: "acme", numbers: [SHORT] },
            ],
          },
          records: { jsonl: { path: "cdr.jsonl" } },
          state_dir: dir,
        },
        dir,
      )
    ).app;
    udp = app.voice!.listeners.find((l) => l.transport === "udp")!.port;
    const r = await app.masking!.create("ride", A, B, 600_000);
    if (!r.ok) throw new Error(r.code);
    expect(r.session.proxy).toBe(PROXY);
    session = r.session.id;
  }, 30_000);

  afterAll(async () => {
    await killAllSipp();
    await app?.stop(0);
    await redis?.stop();
  });

  const carrierAttempts = (name: string): Promise<number> => metricValue(app, "didgate_outbound_attempts_total", { kind: "carrier", name });

  const records = (): Array<Record<string, unknown>> => jsonlRecords(join(dir, "cdr.jsonl"));

  it("A calls the proxy: B's carrier gets the call from the proxy number, nothing names A; BYE from A reaches B", async () => {
    const uas = startUas("uas_mask.xml", "udp", PB, { SELF: B, END: uasWaitBye(B) }, 20, B_IP);
    await sippReady();
    const uac = await startUac("uac_mask.xml", "udp", udp, { service: PROXY, caller: A, ip: A_IP, subst: { END: UAC_BYE } });
    await ok(uas, "B");
    await ok(uac, "A");
    const inv = uas.received("INVITE")[0]!;
    expect(inv.requestUri).toBe(`sip:${B}@${B_IP}:${PB}`);
    expect(inv.get("from")).toMatch(new RegExp(`^<sip:\\${PROXY}@127\\.0\\.0\\.1;user=phone>;tag=`));
    expect(inv.get("p-asserted-identity")).toBe(`<tel:${PROXY}>`);
    for (const h of ["remote-party-id", "p-preferred-identity", "history-info", "diversion", "identity", "p-charge-info"]) expect(inv.get(h), h).toBeUndefined();
    expect(inv.recordRoutes[0]).toContain(`;dgm=${PROXY}`);
    expect(uas.received("ACK").length).toBe(1);
    const bye = uas.received("BYE")[0]!;
    expect(bye, "B got A's BYE").toBeDefined();
    expect(bye.get("from")).toContain(PROXY);
    expect(bye.get("p-asserted-identity")).toBeUndefined();
    // not A's number anywhere B received (INVITE, ACK, BYE), in any form
    expect(uas.received().length).toBe(3);
    expect(receivedText(uas)).not.toContain(digits(A));
    // and A hears nothing of B: its 180 and 200 carry no identity of B, its own From comes back
    const answers = uac.receivedResponses();
    expect(statuses(answers)).toContain(200);
    expect(receivedText(uac)).not.toContain(digits(B));
    const ok200 = answers.find((m) => m.status === 200 && m.cseq?.method === "INVITE")!;
    expect(ok200.get("from")).toContain(`sip:${A}@${A_IP}`);
    expect(ok200.get("p-asserted-identity")).toBeUndefined();
    expect(await metricValue(app, "didgate_masking_routed_total", { kind: "call", result: "routed" })).toBeGreaterThanOrEqual(1);
    // the record: direction masked, the session, the callee B, the pool's tenant
    const rec = await waitFor(() => records().find((r) => r.session_id === session && r.caller === A && r.end_reason === "bye"), 5000);
    expect(rec).toMatchObject({ direction: "masked", did: PROXY, callee: B, tenant: "acme", hangup: "caller", carrier: "carrier-b", final_code: 200 });
  });

  it("B calls the proxy: A gets the call from the proxy number, nothing names B; A (the callee) hangs up and B gets the BYE", async () => {
    const uas = startUas("uas_mask.xml", "udp", PA, { SELF: A, END: uasBye(A) }, 20, A_IP);
    await sippReady();
    const uac = await startUac("uac_mask.xml", "udp", udp, { service: PROXY, caller: B, ip: B_IP, subst: { END: UAC_WAIT_BYE } });
    await ok(uac, "B");
    await ok(uas, "A");
    const inv = uas.received("INVITE")[0]!;
    expect(inv.requestUri).toBe(`sip:${A}@${A_IP}:${PA}`);
    expect(inv.get("from")).toContain(`<sip:${PROXY}@`);
    expect(inv.get("p-asserted-identity")).toBe(`<tel:${PROXY}>`);
    expect(receivedText(uas)).not.toContain(digits(B));
    const bye = uac.received("BYE")[0]!;
    expect(bye, "B got A's BYE").toBeDefined();
    expect(bye.get("p-asserted-identity")).toBeUndefined();
    expect(bye.get("remote-party-id")).toBeUndefined();
    expect(receivedText(uac)).not.toContain(digits(A));
    const rec = await waitFor(() => records().find((r) => r.session_id === session && r.caller === B && r.end_reason === "bye"), 5000);
    expect(rec).toMatchObject({ direction: "masked", callee: A, hangup: "callee" });
  });

  it("re-INVITE of a masked call keeps the proxy number towards B", async () => {
    const uas = startUas("uas_mask.xml", "udp", PB, { SELF: B, END: uasReinvite(B) }, 20, B_IP);
    await sippReady();
    const uac = await startUac("uac_mask.xml", "udp", udp, { service: PROXY, caller: A, ip: A_IP, subst: { END: UAC_REINVITE } });
    await ok(uac, "A");
    await ok(uas, "B");
    const invites = uas.received("INVITE");
    expect(invites.length).toBe(2);
    expect(invites[1]!.toTag).toBeDefined();
    expect(invites[1]!.get("from")).toContain(PROXY);
    expect(invites[1]!.get("p-asserted-identity")).toBeUndefined();
    expect(receivedText(uas)).not.toContain(digits(A));
    expect(receivedText(uac)).not.toContain(digits(B));
  });

  it("two sessions share the proxy number with different participants: A2 reaches B2, B2 reaches A2, and A still reaches B", async () => {
    const r = await app.masking!.create("ride", A2, B2, 600_000);
    if (!r.ok) throw new Error(r.code);
    expect(r.session.proxy, "the pool's one number serves both sessions").toBe(PROXY);
    try {
      const call = async (from: string, to: string, fromIp: string, toIp: string, toPort: number): Promise<void> => {
        const uas = startUas("uas_mask.xml", "udp", toPort, { SELF: to, END: uasWaitBye(to) }, 20, toIp);
        await sippReady();
        const uac = await startUac("uac_mask.xml", "udp", udp, { service: PROXY, caller: from, ip: fromIp, subst: { END: UAC_BYE } });
        await ok(uas, to);
        await ok(uac, from);
        const inv = uas.received("INVITE")[0]!;
        expect(inv.requestUri, `${from} -> proxy`).toBe(`sip:${to}@${toIp}:${toPort}`);
        expect(inv.get("from")).toContain(`<sip:${PROXY}@`);
        expect(uas.received("BYE").length, `${to} got the BYE`).toBe(1);
        for (const n of [A, B, A2, B2].filter((x) => x !== to)) expect(receivedText(uas), `${to} sees nothing of ${n}`).not.toContain(digits(n));
      };
      await call(A2, B2, A_IP, B_IP, PB);
      await call(B2, A2, B_IP, A_IP, PA);
      await call(A, B, A_IP, B_IP, PB);
    } finally {
      await app.masking!.delete(r.session.id);
    }
  });

  it("A cancels while B rings: B's CANCEL and the 487 name neither party", async () => {
    const uas = startUas("uas_ring_cancel.xml", "udp", PB, {}, 20, B_IP);
    await sippReady();
    const uac = await startUac("uac_cancel.xml", "udp", udp, { service: PROXY, caller: A, ip: A_IP });
    await ok(uac, "A");
    await ok(uas, "B");
    const cancel = uas.received("CANCEL")[0]!;
    expect(cancel, "B got the CANCEL").toBeDefined();
    expect(cancel.get("from")).toContain(PROXY);
    expect(receivedText(uas)).not.toContain(digits(A));
    expect(statuses(uac.receivedResponses())).toContain(487);
    expect(receivedText(uac)).not.toContain(digits(B));
  });

  it("a caller without a session on the proxy number: 404 with a reason, nothing reaches B", async () => {
    const before = await metricValue(app, "didgate_masking_routed_total", { kind: "call", result: "no_session" });
    const toB = await carrierAttempts("carrier-b");
    const uac = await startUac("uac_final.xml", "udp", udp, { service: PROXY, caller: C, ip: A_IP, subst: { CODE: "404" } });
    await ok(uac, "C");
    const r = uac.receivedResponses().find((m) => m.status === 404)!;
    expect(r.reason).toBe("Not Found (no masking session for this caller)");
    expect(await metricValue(app, "didgate_masking_routed_total", { kind: "call", result: "no_session" })).toBe(before + 1);
    expect(await carrierAttempts("carrier-b")).toBe(toB);
  });

  it("a call from a pool number to a pool number (a party that is a proxy number): 482, nothing reaches B", async () => {
    // a session made before sessions refused proxy numbers as parties: DESK is a party on PROXY
    await redis.cli("SET", `didgate:mask:p:${PROXY}:${DESK}`, `ses_old ${B}`, "PX", "60000");
    try {
      const toB = await carrierAttempts("carrier-b");
      const uac = await startUac("uac_final.xml", "udp", udp, { service: PROXY, caller: DESK, ip: A_IP, subst: { CODE: "482" } });
      await ok(uac, "DESK");
      const r = uac.receivedResponses().find((m) => m.status === 482)!;
      expect(r.reason).toBe("Loop Detected (a masking pool number calling a pool number)");
      expect(await metricValue(app, "didgate_masking_routed_total", { kind: "call", result: "loop" })).toBe(1);
      expect(await carrierAttempts("carrier-b")).toBe(toB);
    } finally {
      await redis.cli("DEL", `didgate:mask:p:${PROXY}:${DESK}`);
    }
  });

  it("a caller without a session on a pool number that has its own route reaches that route", async () => {
    const ivr = startUas("uas_answer.xml", "udp", PIVR, {}, 20, IVR_IP);
    await sippReady();
    const uac = await startUac("uac_mask.xml", "udp", udp, { service: DESK, caller: C, ip: A_IP, subst: { END: UAC_BYE } });
    await ok(uac, "C");
    await ok(ivr, "IVR");
    const inv = ivr.received("INVITE")[0]!;
    expect(inv.requestUri).toBe(`sip:ivr@${IVR_IP}:${PIVR}`);
    // not masked: the caller is who it is
    expect(inv.get("from")).toContain(C);
    expect(await metricValue(app, "didgate_masking_routed_total", { kind: "call", result: "own_route" })).toBe(1);
  });

  it("an expired session stops routing: the same call gets 404 and nothing reaches B", async () => {
    const r = await app.masking!.create("short", A, B, 1500);
    if (!r.ok) throw new Error(r.code);
    expect(await app.masking!.route(SHORT, A)).toMatchObject({ id: r.session.id, other: B });
    await waitFor(async () => (await app.masking!.route(SHORT, A)) === null || undefined, 5000, 50);
    expect((await redis.cli("EXISTS", `didgate:mask:p:${SHORT}:${A}`)).trim()).toBe("0");
    const toB = await carrierAttempts("carrier-b");
    const uac = await startUac("uac_final.xml", "udp", udp, { service: SHORT, caller: A, ip: A_IP, subst: { CODE: "404" } });
    await ok(uac, "A");
    expect(uac.receivedResponses().find((m) => m.status === 404)!.reason).toContain("no masking session");
    expect(await carrierAttempts("carrier-b")).toBe(toB);
  });

  it("a deleted session stops routing at once", async () => {
    const r = await app.masking!.create("short", A, C, 600_000);
    if (!r.ok) throw new Error(r.code);
    expect(await app.masking!.delete(r.session.id)).toBe(true);
    const uac = await startUac("uac_final.xml", "udp", udp, { service: SHORT, caller: A, ip: A_IP, subst: { CODE: "404" } });
    await ok(uac, "A");
  });

  it("an in-dialog request whose Route claims another proxy number (forged dgm) is refused with 403", async () => {
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((res) => sock.bind(0, B_IP, () => res()));
    const got: SipMessage[] = [];
    sock.on("message", (b) => {
      const m = parseMessage(b);
      if (m instanceof SipMessage) got.push(m);
    });
    const lport = sock.address().port;
    const send = (lines: string[]): Promise<void> => new Promise((res) => sock.send(Buffer.from(lines.join("\r\n")), udp, "127.0.0.1", () => res()));
    try {
      // a real masked call's Record-Route, as B's carrier saw it
      const uas = startUas("uas_mask.xml", "udp", PB, { SELF: B, END: uasWaitBye(B) }, 20, B_IP);
      await sippReady();
      const uac = await startUac("uac_mask.xml", "udp", udp, { service: PROXY, caller: A, ip: A_IP, subst: { END: UAC_BYE } });
      await ok(uac, "A");
      await ok(uas, "B");
      const inv = uas.received("INVITE")[0]!;
      const rr = inv.recordRoutes[0]!;
      const ftag = inv.fromTag!;
      const tampered = rr.replace(`;dgm=${PROXY}`, `;dgm=${DESK}`);
      expect(tampered).not.toBe(rr);
      for (const [route, id] of [[tampered, "forged-dgm"], [rr.replace(/;dgm=[^;>]*/, ""), "dropped-dgm"]] as const) {
        await send([
          `BYE sip:sipp@${A_IP}:5060 SIP/2.0`,
          `Via: SIP/2.0/UDP ${B_IP}:${lport};branch=z9hG4bK${id}`,
          `Route: ${route}`,
          `From: <sip:${PROXY}@127.0.0.1>;tag=${ftag}`,
          `To: <sip:${B}@${B_IP}>;tag=x${id}`,
          `Call-ID: ${inv.callId}`,
          "CSeq: 9 BYE",
          "Max-Forwards: 70",
          "Content-Length: 0",
          "",
          "",
        ]);
        const res = await waitFor(() => got.find((m) => m.cseq?.method === "BYE" && m.topVia?.branch === `z9hG4bK${id}` && m.status >= 200), 5000);
        expect(res.status, id).toBe(403);
      }
    } finally {
      sock.close();
    }
  });

  // last: it stops Redis
  it("the session store down: 503 with Retry-After, the carrier may try elsewhere", async () => {
    await redis.kill();
    const uac = await startUac("uac_final.xml", "udp", udp, { service: PROXY, caller: A, ip: A_IP, subst: { CODE: "503" } });
    await ok(uac, "A");
    const r = uac.receivedResponses().find((m) => m.status === 503)!;
    expect(r.reason).toBe("Service Unavailable (masking sessions)");
    expect(r.get("retry-after")).toBe("1");
    expect(await metricValue(app, "didgate_masking_routed_total", { kind: "call", result: "store_error" })).toBe(1);
  });
});

describe("masked calls are record-routed even with sip.record_route: false (sessions in memory, no Redis)", () => {
  let app: Didgate;
  let udp = 0;
  let PB = 0;

  beforeAll(async () => {
    PB = await freePort(B_IP);
    const dir = tempDir();
    writeFileSync(join(dir, "routes.yaml"), YAML.stringify({ routes: {}, outbound: { [B]: { voice: ["carrier-b"] } } }));
    const port = await freePort();
    app = (
      await startApp(
        {
          sip: {
            listen: [`udp://127.0.0.1:${port}`],
            timers: { t1_ms: 30 },
            record_route: false,
            trunks: [
              { name: "carrier-a", sources: [A_IP], country_code: "1", cps: 1000 },
              { name: "carrier-b", sources: [B_IP], country_code: "1", cps: 1000, termination: `sip:${B_IP}:${PB}` },
            ],
          },
          routes: { file: "routes.yaml", watch: false },
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
    await killAllSipp();
    await app?.stop(0);
  });

  it("A's ACK and BYE pass through didgate and reach B from the proxy number", async () => {
    const uas = startUas("uas_mask.xml", "udp", PB, { SELF: B, END: uasWaitBye(B) }, 20, B_IP);
    await sippReady();
    const uac = await startUac("uac_mask.xml", "udp", udp, { service: PROXY, caller: A, ip: A_IP, subst: { END: UAC_BYE } });
    await ok(uas, "B");
    await ok(uac, "A");
    const inv = uas.received("INVITE")[0]!;
    expect(inv.recordRoutes.length).toBe(1);
    expect(inv.recordRoutes[0]).toContain(`;dgm=${PROXY}`);
    const bye = uas.received("BYE")[0]!;
    expect(bye.vias.length, "the BYE came through didgate").toBe(2);
    expect(bye.get("from")).toContain(PROXY);
    expect(receivedText(uas)).not.toContain(digits(A));
    expect(receivedText(uac)).not.toContain(digits(B));
  });
});
