/**
 * Outbound calls end to end: sipp as a customer (127.0.0.2, or 127.0.0.5 authenticating by digest)
 * -> a running didgate -> sipp as carriers (127.0.0.1), and forwarding from a DID called by a
 * carrier to another carrier. On-net targets (a PBX) on 127.0.0.3, simultaneous-ringing targets on
 * 127.0.0.4. Every case checks what the carrier received (Request-URI, From, P-Asserted-Identity,
 * Diversion) and what the customer got.
 */
import dgram from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { digestResponse } from "../../src/sip/digest.js";
import { parseMessage, SipMessage } from "../../src/sip/index.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import { freePort, killAllSipp, sippReady } from "../helpers/sipp.js";
import { SilentUdp, startUac, startUas, statuses, type Party, ok } from "./sip-util.js";
import { Peer, request as rawRequest, response as rawResponse } from "./udp-peer.js";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";

const CUSTOMER_IP = "127.0.0.2";
const DIGEST_IP = "127.0.0.5";
const PBX_IP = "127.0.0.3";
const RING_IP = "127.0.0.4";

async function metricValue(app: Didgate, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === name);
  if (!m) return 0;
  let sum = 0;
  for (const v of m.values as Array<{ value: number; labels: Record<string, string | number> }>) {
    if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value;
  }
  return sum;
}

const ACK_BYE = `<send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="200"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>`;

/** The ACK of a non-2xx final answer: hop by hop, the INVITE's branch (message 4 of uac_auth). */
const ACK_FAIL = `<send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-4]
      From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="200"/>`;

describe("outbound calls end to end (sipp customer -> didgate -> sipp carriers)", () => {
  let app: Didgate;
  let udp = 0;
  const P: Record<string, number> = {};
  let never: SilentUdp;
  let quiet: SilentUdp;
  /** A carrier and a customer as plain UDP peers (the BYE test writes their messages itself). */
  let rawCarrier: Peer;
  let rawCustomer: Peer;

  beforeAll(async () => {
    for (const n of ["ok", "c503", "c200", "full", "free", "dig", "pbx", "uk", "de", "r1", "r2", "r3", "t1", "t2", "tiny", "hdr"]) P[n] = await freePort(n === "pbx" ? PBX_IP : n.startsWith("r") || n.startsWith("t") ? RING_IP : "127.0.0.1");
    never = await SilentUdp.start();
    quiet = await SilentUdp.start();
    rawCarrier = await Peer.start("127.0.0.1");
    rawCustomer = await Peer.start("127.0.0.9");
    const dir = tempDir();
    const term = (port: number): string => `sip:127.0.0.1:${port}`;
    const doc = {
      routes: {
        "+15125550100": { tenant: "acme", voice: { targets: [`sip:pbx@${PBX_IP}:${P.pbx}`] } },
        "+15125550101": { tenant: "acme", voice: { targets: [`sip:x@127.0.0.1:${never.port}`] } },
        "+15125550102": { tenant: "acme", state: "quarantine" },
        "+15125550200": { tenant: "other", voice: { targets: [`sip:x@127.0.0.1:${never.port}`] } },
        "+15125550300": { tenant: "acme", voice: { targets: ["tel:+442071230300"] } },
        "+15125550301": { tenant: "acme", voice: { forward_caller_id: "did", targets: ["+4930123456"] } },
        "+15125550400": {
          tenant: "acme",
          voice: {
            ring: "simultaneous",
            targets: [`sip:a@${RING_IP}:${P.r1}`, `sip:b@${RING_IP}:${P.r2}`, `sip:c@${RING_IP}:${P.r3}`].map((uri) => ({ uri, priority: 1 })),
          },
        },
        "+15125550401": {
          tenant: "acme",
          voice: { ring_timeout_s: 60, targets: [{ uri: `sip:t1@${RING_IP}:${P.t1}`, priority: 1, timeout_s: 1 }, { uri: `sip:t2@${RING_IP}:${P.t2}`, priority: 2 }] },
        },
        "+15125550500": { tenant: "acme", voice: { targets: ["tel:+15125550501"] } },
        "+15125550501": { tenant: "acme", voice: { targets: ["+15125550500"] } },
      },
      outbound: {
        "+3312*": { voice: ["c-ok", "c-never"] },
        "+3313*": { voice: ["c-503", "c-200"] },
        "+3314*": { voice: ["c-full", "c-free"] },
        "+3315*": { voice: ["c-never"] },
        "+3316*": { voice: ["c-dig"] },
        "+3317*": { voice: ["c-quiet"] },
        "+3318*": { voice: ["c-tiny"] },
        "+3319*": { voice: ["c-hdr"] },
        "+3311*": { voice: ["c-raw"] },
        "+44*": { voice: ["carrier-uk"] },
        "+49*": { voice: ["carrier-de"] },
      },
    };
    writeFileSync(join(dir, "routes.yaml"), YAML.stringify(doc));
    const port = await freePort();
    const started = await startApp(
      {
        sip: {
          listen: [`udp://127.0.0.1:${port}`],
          // T1 200 ms: timers B and F (64*T1) at 12.8 s leave room for a loaded machine (at 30 ms a BYE
          // answered 2 s late under load timed out in CI)
          timers: { t1_ms: 200 },
          // sipp 3.6 answers only the first challenge, and only MD5
          auth: { algorithms: ["MD5", "SHA-256"] },
          trunks: [
            { name: "carrier", sources: ["127.0.0.1"], country_code: "1", cps: 1000 },
            { name: "c-ok", termination: term(P.ok!), headers: { "X-Account": "acme-7" } },
            { name: "c-never", termination: term(never.port) },
            { name: "c-503", termination: term(P.c503!) },
            { name: "c-200", termination: term(P.c200!) },
            { name: "c-full", termination: term(P.full!), max_calls: 1 },
            { name: "c-free", termination: term(P.free!), number_format: "national", country_code: "33", number_prefix: "0" },
            { name: "c-dig", termination: term(P.dig!) },
            { name: "c-quiet", termination: term(quiet.port) },
            { name: "c-tiny", termination: term(P.tiny!) },
            { name: "c-hdr", termination: term(P.hdr!) },
            { name: "c-raw", termination: term(rawCarrier.port) },
            { name: "carrier-de", termination: term(P.de!), forward_header: "history-info" },
            { name: "carrier-uk", termination: [term(P.uk!)], number_format: "national", country_code: "44", number_prefix: "0" },
          ],
          customers: [
            { name: "acme-pbx", tenant: "acme", sources: [CUSTOMER_IP], country_code: "1", cps: 1000, max_calls: 50 },
            { name: "acme-tiny", tenant: "acme", sources: ["127.0.0.7"], country_code: "1", cps: 1000, max_calls: 1 },
            { name: "acme-one", tenant: "acme", sources: ["127.0.0.9"], country_code: "1", cps: 1000, max_calls: 1 },
            { name: "acme-soft", tenant: "acme", digest: { username: "soft", password: "s3cret" }, country_code: "1", cps: 1000 },
          ],
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
    await never?.close();
    await quiet?.close();
    await rawCarrier?.close();
    await rawCustomer?.close();
  });

  const settle = async (): Promise<void> => {
    await sippReady();
    await new Promise((r) => setTimeout(r, 20));
  };
  const carrierInvite = (p: Party): SipMessage => {
    const m = p.received("INVITE")[0];
    expect(m, "carrier got no INVITE").toBeDefined();
    return m!;
  };

  it.concurrent("answered by the first carrier: E.164 Request-URI, the caller's From, P-Asserted-Identity, carrier headers; BYE from the customer", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.ok!);
    await settle();
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+33123450001", caller: "+15125550101", ip: CUSTOMER_IP });
    await ok(uac, "customer");
    await ok(uas, "carrier");
    const inv = carrierInvite(uas);
    expect(inv.requestUri).toBe(`sip:+33123450001@127.0.0.1:${P.ok}`);
    expect(inv.get("from")).toContain("sip:+15125550101@127.0.0.2");
    expect(inv.get("p-asserted-identity")).toBe("<tel:+15125550101>");
    expect(inv.get("x-account")).toBe("acme-7");
    expect(inv.get("diversion")).toBeUndefined();
    expect(inv.recordRoutes.length).toBe(1);
    expect(inv.vias.length).toBe(2);
    expect(uas.received("BYE").length).toBe(1);
    const ok200 = uac.receivedResponses().find((m) => m.status === 200 && m.cseq?.method === "INVITE")!;
    expect(ok200.recordRoutes[0]).toContain(`<sip:127.0.0.1:${udp};lr`);
    expect(never.got.filter((m) => m.requestUri.includes("+3312")).length).toBe(0);
    expect(await metricValue(app, "didgate_outbound_answered_total", { kind: "carrier", name: "c-ok" })).toBe(1);
    expect(await metricValue(app, "didgate_outbound_answered_total", { kind: "customer", name: "acme-pbx" })).toBeGreaterThanOrEqual(1);
  });

  it.concurrent("first carrier 503, the second answers; BYE from the carrier reaches the customer", async () => {
    const a = startUas("uas_final.xml", "udp", P.c503!, { CODE: "503", REASON: "Service Unavailable" });
    const b = startUas("uas_answer_bye.xml", "udp", P.c200!);
    await settle();
    const uac = await startUac("uac_wait_bye.xml", "udp", udp, { service: "+33133450001", caller: "+15125550101", ip: CUSTOMER_IP });
    await ok(uac, "customer");
    await ok(a, "carrier 503");
    await ok(b, "carrier 200");
    expect(carrierInvite(a).requestUri).toBe(`sip:+33133450001@127.0.0.1:${P.c503}`);
    const inv = carrierInvite(b);
    expect(inv.requestUri).toBe(`sip:+33133450001@127.0.0.1:${P.c200}`);
    expect(inv.get("p-asserted-identity")).toBe("<tel:+15125550101>");
    expect(statuses(uac.receivedResponses())).not.toContain(503);
    const bye = uac.received("BYE")[0]!;
    expect(bye, "the customer got the carrier's BYE").toBeDefined();
    expect(bye.vias.length).toBe(2);
    expect(await metricValue(app, "didgate_outbound_failed_total", { kind: "carrier", name: "c-503", class: "5xx" })).toBe(1);
  });

  it.concurrent("first carrier at max_calls: the second carrier gets the call", async () => {
    const full = startUas("uas_answer.xml", "udp", P.full!);
    const free = startUas("uas_answer.xml", "udp", P.free!);
    await settle();
    // the first call holds c-full's only slot for 3 s
    const held = await startUac("uac_hold.xml", "udp", udp, { service: "+33143450001", caller: "+15125550101", ip: CUSTOMER_IP, subst: { HOLD: "3000" } });
    await waitFor(async () => (await metricValue(app, "didgate_outbound_calls_active", { kind: "carrier", name: "c-full" })) === 1 || undefined, 5000);
    const second = await startUac("uac_call.xml", "udp", udp, { service: "+33143450002", caller: "+15125550101", ip: CUSTOMER_IP });
    await ok(second, "second call");
    await ok(held, "held call");
    await ok(full, "carrier at its limit");
    await ok(free, "carrier with room");
    expect(full.received("INVITE").length).toBe(1);
    expect(carrierInvite(full).requestUri).toBe(`sip:+33143450001@127.0.0.1:${P.full}`);
    // national format: country code 33 removed, prefix 0
    expect(carrierInvite(free).requestUri).toBe(`sip:0143450002@127.0.0.1:${P.free}`);
    expect(await metricValue(app, "didgate_outbound_limit_rejections_total", { kind: "carrier", name: "c-full" })).toBeGreaterThanOrEqual(1);
    // both calls ended with BYE: no slot left behind
    await waitFor(async () => (await metricValue(app, "didgate_outbound_calls_active", { kind: "carrier", name: "c-full" })) === 0 || undefined, 3000);
  });

  it.concurrent("customer at its max_calls: 503 with Retry-After, nothing reaches a carrier", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.tiny!);
    await settle();
    const held = await startUac("uac_hold.xml", "udp", udp, { service: "+33183450001", caller: "+15125550101", ip: "127.0.0.7", subst: { HOLD: "2000" } });
    await waitFor(async () => (await metricValue(app, "didgate_outbound_calls_active", { kind: "customer", name: "acme-tiny" })) === 1 || undefined, 5000);
    const second = await startUac("uac_final.xml", "udp", udp, { service: "+33183450002", caller: "+15125550101", ip: "127.0.0.7", subst: { CODE: "503" } });
    await ok(second, "second call");
    await ok(held, "held call");
    await ok(uas, "carrier");
    const r = second.receivedResponses().find((m) => m.status === 503)!;
    expect(r.reason).toContain("max_calls");
    expect(r.get("retry-after")).toBe("1");
    expect(uas.received("INVITE").length).toBe(1);
    expect(await metricValue(app, "didgate_outbound_limit_rejections_total", { kind: "customer", name: "acme-tiny" })).toBe(1);
  });

  it.concurrent("a second call with the Call-ID of a call in progress (another From tag) gets 482 and takes no carrier", async () => {
    const cid = ["-cid_str", `dup-${process.pid}-callid@${CUSTOMER_IP}`];
    // the first call waits on a carrier that never answers (invite timeout, then 408)
    const first = await startUac("uac_final.xml", "udp", udp, { service: "+33153450003", caller: "+15125550101", ip: CUSTOMER_IP, subst: { CODE: "408" }, args: cid, timeoutS: 30 });
    await waitFor(() => never.got.some((m) => m.callId === `dup-${process.pid}-callid@${CUSTOMER_IP}`) || undefined, 5000);
    const second = await startUac("uac_final.xml", "udp", udp, { service: "+33153450004", caller: "+15125550101", ip: CUSTOMER_IP, subst: { CODE: "482" }, args: cid });
    await ok(second, "second call, same Call-ID");
    expect(never.got.filter((m) => m.method === "INVITE" && m.requestUri.includes("33153450004"))).toEqual([]);
    await ok(first, "first call");
  }, 40_000);

  it.concurrent("other headers naming a caller (Remote-Party-ID, P-Preferred-Identity, Identity) do not reach the carrier; PAI is the checked number", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.hdr!);
    await settle();
    const headers = ["Remote-Party-ID: <sip:+15125550200@pbx.example>;party=calling;screen=yes", "P-Preferred-Identity: <sip:+15125550200@pbx.example>", "Identity: eyJhbGciOiJFUzI1NiJ9.e30.c2ln;info=<https://cert.example/a.pem>;alg=ES256;ppt=shaken"].join("\r\n      ");
    const uac = await startUac("uac_call_headers.xml", "udp", udp, { service: "+33193450001", caller: "+15125550101", ip: CUSTOMER_IP, subst: { HEADERS: headers } });
    await ok(uac, "customer");
    await ok(uas, "carrier");
    const inv = uas.received("INVITE")[0]!;
    expect(inv.get("p-asserted-identity")).toBe("<tel:+15125550101>");
    expect(inv.get("remote-party-id")).toBeUndefined();
    expect(inv.get("p-preferred-identity")).toBeUndefined();
    expect(inv.get("identity")).toBeUndefined();
  });

  it.concurrent("a BYE the carrier refuses (481: a To tag of no dialog) ends nothing: the call keeps its max_calls slot; the real BYE frees it", async () => {
    const pai = ["P-Asserted-Identity: <sip:+15125550101@127.0.0.9>"];
    const dial = async (n: string): Promise<{ callId: string; status: number; inv?: SipMessage }> => {
      const callId = `bye-${n}-${process.pid}@127.0.0.9`;
      rawCustomer.send(udp, rawRequest("INVITE", `sip:+3311345000${n}@127.0.0.1:${udp}`, rawCustomer, { callId, fromTag: "cf" + n, extra: pai }));
      const fin = await waitFor(() => rawCustomer.got.find((m) => m.callId === callId && m.status >= 200) ?? rawCarrier.got.find((m) => m.callId === callId && m.method === "INVITE"), 5000);
      if (fin.isRequest) return { callId, status: 0, inv: fin };
      return { callId, status: fin.status };
    };
    // call 1 reaches the carrier, which answers
    const c1 = await dial("1");
    expect(c1.inv).toBeDefined();
    rawCarrier.send(udp, rawResponse(c1.inv!, "200 OK", { toTag: "carrier-1", contact: `sip:callee@127.0.0.1:${rawCarrier.port}` }));
    const ok1 = await waitFor(() => rawCustomer.got.find((m) => m.callId === c1.callId && m.status === 200), 5000);
    const route = [...ok1.recordRoutes].reverse().map((r) => `Route: ${r}`);
    const bye = (toTag: string, cseq: number) => rawRequest("BYE", `sip:callee@127.0.0.1:${rawCarrier.port}`, rawCustomer, { callId: c1.callId, fromTag: "cf1", toTag, cseq, extra: route });
    // a BYE with another To tag: the carrier has no such dialog (481); the call goes on
    rawCustomer.send(udp, bye("not-the-callee", 2));
    const fake = await waitFor(() => rawCarrier.got.find((m) => m.callId === c1.callId && m.method === "BYE"), 5000);
    rawCarrier.send(udp, rawResponse(fake, "481 Call/Transaction Does Not Exist"));
    await waitFor(() => rawCustomer.got.find((m) => m.callId === c1.callId && m.status === 481), 5000);
    // max_calls 1: call 1 still holds the slot
    expect((await dial("2")).status).toBe(503);
    // the real BYE, answered 200, frees it
    rawCustomer.send(udp, bye("carrier-1", 3));
    const real = await waitFor(() => rawCarrier.got.filter((m) => m.callId === c1.callId && m.method === "BYE")[1], 5000);
    rawCarrier.send(udp, rawResponse(real, "200 OK"));
    await waitFor(() => rawCustomer.got.find((m) => m.callId === c1.callId && m.status === 200 && m.cseq?.method === "BYE"), 5000);
    const c3 = await dial("3");
    expect(c3.inv).toBeDefined();
    rawCarrier.send(udp, rawResponse(c3.inv!, "486 Busy Here", { toTag: "carrier-3" }));
    await waitFor(() => rawCustomer.got.find((m) => m.callId === c3.callId && m.status === 486), 5000);
    // the customer's own proxy forks one call (same Call-ID and From tag, another number): a merged
    // request, 482; its forks would otherwise all be answered on one slot and one call record.
    // Another call with that Call-ID (another From tag) gets 482 as well
    const forkId = `fork-${process.pid}@127.0.0.9`;
    rawCustomer.send(udp, rawRequest("INVITE", `sip:+33113450004@127.0.0.1:${udp}`, rawCustomer, { callId: forkId, fromTag: "fork-tag", extra: pai }));
    const first = await waitFor(() => rawCarrier.got.find((m) => m.callId === forkId && m.method === "INVITE"), 5000);
    rawCustomer.send(udp, rawRequest("INVITE", `sip:+33113450005@127.0.0.1:${udp}`, rawCustomer, { callId: forkId, fromTag: "fork-tag", extra: pai }));
    const merged = await waitFor(() => rawCustomer.got.find((m) => m.callId === forkId && m.status >= 400), 5000);
    expect([merged.status, merged.reason]).toEqual([482, "Loop Detected (Call-ID of a call in progress)"]);
    rawCustomer.send(udp, rawRequest("INVITE", `sip:+33113450006@127.0.0.1:${udp}`, rawCustomer, { callId: forkId, fromTag: "other-tag", extra: pai }));
    const other = await waitFor(() => rawCustomer.got.filter((m) => m.callId === forkId && m.status >= 400)[1], 5000);
    expect([other.status, other.reason]).toEqual([482, "Loop Detected (Call-ID of a call in progress)"]);
    expect(rawCarrier.got.filter((m) => m.callId === forkId && m.method === "INVITE")).toHaveLength(1);
    rawCarrier.send(udp, rawResponse(first, "486 Busy Here", { toTag: "fork-1" }));
  });

  it.concurrent("caller ID owned by another tenant: 403, nothing reaches a carrier", async () => {
    const toIt = () => never.got.filter((m) => m.requestUri.includes("33153450001")).length;
    const before = toIt();
    const uac = await startUac("uac_final.xml", "udp", udp, { service: "+33153450001", caller: "+15125550200", ip: CUSTOMER_IP, subst: { CODE: "403" } });
    await ok(uac, "customer");
    const r = uac.receivedResponses().find((m) => m.status === 403)!;
    expect(r.reason).toContain("another tenant");
    const r2 = await startUac("uac_final.xml", "udp", udp, { service: "+33153450001", caller: "+15125550102", ip: CUSTOMER_IP, subst: { CODE: "403" } });
    await ok(r2, "customer, quarantined caller ID");
    expect(r2.receivedResponses().find((m) => m.status === 403)!.reason).toContain("not active");
    expect(toIt()).toBe(before);
  });

  it.concurrent("digest: 407 challenge (SHA-256 and MD5), the call with credentials reaches the carrier", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.dig!);
    await settle();
    const uac = await startUac("uac_auth.xml", "udp", udp, { service: "+33163450001", caller: "+15125550101", ip: DIGEST_IP, subst: { USER: "soft", PASS: "s3cret", FINAL: "200", REST: ACK_BYE } });
    await ok(uac, "customer");
    await ok(uas, "carrier");
    const ch = uac.receivedResponses().find((m) => m.status === 407)!;
    const pa = ch.getAll("proxy-authenticate");
    expect(pa.some((v) => v.includes("algorithm=SHA-256"))).toBe(true);
    expect(pa.some((v) => v.includes("algorithm=MD5"))).toBe(true);
    const inv = carrierInvite(uas);
    expect(inv.requestUri).toBe(`sip:+33163450001@127.0.0.1:${P.dig}`);
    expect(inv.get("proxy-authorization")).toBeUndefined();
    expect(inv.get("p-asserted-identity")).toBe("<tel:+15125550101>");
    expect(inv.get("from")).toContain("+15125550101");
  });

  it.concurrent("digest: wrong password 403", async () => {
    const uac = await startUac("uac_auth.xml", "udp", udp, { service: "+33163450002", caller: "+15125550101", ip: DIGEST_IP, subst: { USER: "soft", PASS: "wrong", FINAL: "403", REST: ACK_FAIL } });
    await ok(uac, "customer");
    expect(uac.receivedResponses().find((m) => m.status === 403)!.reason).toContain("bad credentials");
  });

  it.concurrent("digest: a nonce used again is refused (403); in another call it is not good at all (407)", async () => {
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.6", () => r()));
    const lport = sock.address().port;
    const got: SipMessage[] = [];
    sock.on("message", (b) => {
      const m = parseMessage(b);
      if (m instanceof SipMessage) got.push(m);
    });
    const ruri = `sip:+33173450001@127.0.0.1:${udp}`;
    const invite = (callId: string, cseq: number, auth?: string): Buffer =>
      Buffer.from(
        [
          `INVITE ${ruri} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.6:${lport};branch=z9hG4bK${callId}${cseq}`,
          `From: <sip:+15125550101@127.0.0.6>;tag=t${callId}`,
          `To: <sip:+33173450001@127.0.0.1>`,
          `Call-ID: ${callId}`,
          `CSeq: ${cseq} INVITE`,
          `Contact: <sip:u@127.0.0.6:${lport}>`,
          "Max-Forwards: 70",
          ...(auth ? [`Proxy-Authorization: ${auth}`] : []),
          "Content-Length: 0",
          "",
          "",
        ].join("\r\n"),
      );
    const send = (b: Buffer): Promise<void> => new Promise((r) => sock.send(b, udp, "127.0.0.1", () => r()));
    const answer = (callId: string, cseq: number): Promise<SipMessage> =>
      waitFor(() => got.find((m) => m.callId === callId && m.cseq?.seq === cseq && m.status >= 100), 5000);
    try {
      await send(invite("replay-1", 1));
      const ch = await answer("replay-1", 1);
      expect(ch.status).toBe(407);
      const sha = ch.getAll("proxy-authenticate").find((v) => v.includes("SHA-256"))!;
      const nonce = /nonce="([^"]+)"/.exec(sha)![1]!;
      const resp = digestResponse("SHA-256", "soft", "didgate", "s3cret", "INVITE", ruri, nonce, "auth", 1, "abc");
      const auth = `Digest username="soft", realm="didgate", nonce="${nonce}", uri="${ruri}", response="${resp}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="abc"`;
      await send(invite("replay-1", 2, auth));
      expect((await answer("replay-1", 2)).status).toBe(100); // accepted: the call goes to the (silent) carrier
      await send(invite("replay-1", 3, auth)); // the same credentials again, in the same call
      const r = await answer("replay-1", 3);
      expect(r.status).toBe(403);
      expect(r.reason).toContain("nonce reused");
      await send(invite("replay-2", 1, auth)); // the same credentials, another call: a new challenge
      expect((await answer("replay-2", 1)).status).toBe(407);
      await waitFor(() => quiet.got.some((m) => m.callId === "replay-1") || undefined, 3000);
      expect(quiet.got.some((m) => m.callId === "replay-2")).toBe(false);
    } finally {
      sock.close();
    }
  });

  it.concurrent("on-net: a customer calling our own DID reaches that DID's PBX", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.pbx!, {}, 20, PBX_IP);
    await settle();
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "5125550100", caller: "+15125550101", ip: CUSTOMER_IP });
    await ok(uac, "customer");
    await ok(uas, "pbx");
    const inv = carrierInvite(uas);
    expect(inv.requestUri).toBe(`sip:pbx@${PBX_IP}:${P.pbx}`);
    expect(inv.get("p-asserted-identity")).toBe("<tel:+15125550101>");
    expect(inv.get("from")).toContain("+15125550101");
  });

  it.concurrent("forwarding: a DID forwarding to tel:+44… reaches the UK carrier with Diversion naming the DID", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.uk!);
    await settle();
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550300", caller: "+15125559999" });
    await ok(uac, "carrier calling the DID");
    await ok(uas, "UK carrier");
    const inv = carrierInvite(uas);
    expect(inv.requestUri).toBe(`sip:02071230300@127.0.0.1:${P.uk}`);
    expect(inv.get("diversion")).toBe("<tel:+15125550300>;reason=unconditional;counter=1");
    expect(inv.get("p-asserted-identity")).toBe("<tel:+15125559999>");
    expect(inv.get("from")).toContain("+15125559999");
    expect(uas.received("BYE").length).toBe(1);
  });

  it.concurrent("simultaneous ringing: three targets ring at once, the second answers, the others get CANCEL", async () => {
    const a = startUas("uas_ring_cancel.xml", "udp", P.r1!, {}, 20, RING_IP);
    const b = startUas("uas_slow_answer.xml", "udp", P.r2!, {}, 20, RING_IP);
    const c = startUas("uas_ring_cancel.xml", "udp", P.r3!, {}, 20, RING_IP);
    await settle();
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550400", caller: "+15125559999" });
    await ok(uac, "carrier calling the DID");
    await ok(a, "target 1");
    await ok(b, "target 2");
    await ok(c, "target 3");
    for (const [p, user, port] of [[a, "a", P.r1], [b, "b", P.r2], [c, "c", P.r3]] as const) {
      const inv = carrierInvite(p);
      expect(inv.requestUri).toBe(`sip:${user}@${RING_IP}:${port}`);
      expect(inv.get("from")).toContain("+15125559999");
    }
    expect(a.received("CANCEL").length).toBe(1);
    expect(c.received("CANCEL").length).toBe(1);
    expect(b.received("CANCEL").length).toBe(0);
    expect(b.received("ACK").length).toBe(1);
    expect(b.received("BYE").length).toBe(1);
    const st = statuses(uac.receivedResponses());
    expect(st).toContain(200);
    expect(st).not.toContain(487);
  });

  it.concurrent("forwarding with History-Info and the DID as caller ID (forward_caller_id: did)", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.de!);
    await settle();
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550301", caller: "+15125559999" });
    await ok(uac, "carrier calling the DID");
    await ok(uas, "DE carrier");
    const inv = carrierInvite(uas);
    expect(inv.requestUri).toBe(`sip:+4930123456@127.0.0.1:${P.de}`);
    expect(inv.get("p-asserted-identity")).toBe("<tel:+15125550301>");
    expect(inv.get("diversion")).toBeUndefined();
    const hi = inv.getAll("history-info").join(", ");
    expect(hi).toMatch(new RegExp(`^<sip:\\+15125550301@127\\.0\\.0\\.1:${udp};user=phone>;index=1, <sip:\\+4930123456@127\\.0\\.0\\.1:${udp};user=phone;cause=302>;index=1\\.1;mp=1$`));
    expect(inv.get("from")).toContain("+15125559999");
  });

  it.concurrent("sequential ringing: a target's timeout_s ends its ringing (CANCEL), the next one answers", async () => {
    const a = startUas("uas_ring_cancel.xml", "udp", P.t1!, {}, 20, RING_IP);
    const b = startUas("uas_answer.xml", "udp", P.t2!, {}, 20, RING_IP);
    await settle();
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550401", caller: "+15125559999" });
    await ok(uac, "carrier calling the DID");
    await ok(a, "target 1");
    await ok(b, "target 2");
    expect(carrierInvite(a).requestUri).toBe(`sip:t1@${RING_IP}:${P.t1}`);
    expect(a.received("CANCEL").length).toBe(1);
    expect(carrierInvite(b).requestUri).toBe(`sip:t2@${RING_IP}:${P.t2}`);
    expect(statuses(uac.receivedResponses())).toContain(200);
  });

  it.concurrent("forwarding loop (A -> B -> A) ends with 482", async () => {
    const uac = await startUac("uac_final.xml", "udp", udp, { service: "+15125550500", caller: "+15125559999", subst: { CODE: "482" } });
    await ok(uac, "carrier");
    expect(statuses(uac.receivedResponses())).toContain(482);
  });
});
