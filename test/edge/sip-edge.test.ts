/**
 * SIP edge policy through a running didgate with plain UDP peers (no sipp): OPTIONS, ACL for
 * in-dialog requests (no open relay), the per-call log line and metrics, drain, reload, and the
 * Record-Route flow token.
 */
import dgram from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { parseFlowToken, flowToken } from "../../src/sip/rr.js";
import type { VoiceEdge } from "../../src/edge/voice.js";
import { reloadVoice } from "../../src/config/wire.js";
import { createLogger } from "../../src/ops/logger.js";
import { parseMessage, SipMessage } from "../../src/sip/index.js";
import { startApp, tempDir, waitFor, writeRoutes, makeConfig } from "../helpers/app.js";

class Peer {
  readonly got: SipMessage[] = [];
  private constructor(private readonly sock: dgram.Socket, readonly address: string, readonly port: number) {}
  static async start(address = "127.0.0.1"): Promise<Peer> {
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, address, () => r()));
    const p = new Peer(sock, address, sock.address().port);
    sock.on("message", (b) => {
      const m = parseMessage(b);
      if (m instanceof SipMessage) p.got.push(m);
    });
    return p;
  }
  send(port: number, text: string): void {
    this.sock.send(Buffer.from(text.replace(/\n/g, "\r\n")), port, "127.0.0.1");
  }
  close(): Promise<void> {
    return new Promise((r) => this.sock.close(() => r()));
  }
}

let n = 0;
function request(method: string, ruri: string, from: Peer, extra: string[] = [], toTag?: string): string {
  n++;
  return [
    `${method} ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${from.address}:${from.port};branch=z9hG4bK-t${n};rport`,
    `From: <sip:+15125551111@${from.address}>;tag=f${n}`,
    `To: <${ruri}>${toTag ? `;tag=${toTag}` : ""}`,
    `Call-ID: c${n}-${from.port}@test`,
    `CSeq: 1 ${method}`,
    "Max-Forwards: 70",
    ...extra,
    "Content-Length: 0",
    "",
    "",
  ].join("\n");
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("SIP edge policy (UDP peers)", () => {
  let app: Didgate;
  let voice: VoiceEdge;
  let port: number;
  const lines: string[] = [];
  let carrier: Peer;
  let stranger: Peer;
  let dest: Peer;

  beforeAll(async () => {
    dest = await Peer.start();
    carrier = await Peer.start();
    stranger = await Peer.start("127.0.0.2");
    const dir = tempDir();
    writeRoutes(dir, {
      "+15125550100": { voice: { targets: [`sip:+15125550100@127.0.0.1:${dest.port}`] } },
      "+15125550300": { voice: { targets: [`sip:+15125550300@localhost:${dest.port}`] } },
      // first target unreachable at once (IPv6, no IPv6 listener): the send fails inside request()
      "+15125550200": { voice: { targets: [{ uri: "sip:+15125550200@[::1]:5999", priority: 1 }, { uri: `sip:+15125550200@127.0.0.1:${dest.port}`, priority: 2 }] } },
    });
    const logger = createLogger("info", { write: (s: string) => void lines.push(s) });
    app = (
      await startApp(
        {
          sip: { listen: ["udp://127.0.0.1:0"], timers: { t1_ms: 50 }, trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }] },
          routes: { file: "routes.yaml", watch: false },
        },
        dir,
        { logger },
      )
    ).app;
    voice = (app as unknown as { voice: VoiceEdge }).voice;
    port = voice.listeners[0]!.port;
  });

  afterAll(async () => {
    await app?.stop();
    for (const p of [carrier, stranger, dest]) await p?.close();
  });

  it("answers OPTIONS from a trunk with 200 and ignores it from anywhere else", async () => {
    carrier.send(port, request("OPTIONS", `sip:127.0.0.1:${port}`, carrier));
    stranger.send(port, request("OPTIONS", `sip:127.0.0.1:${port}`, stranger));
    const res = await waitFor(() => carrier.got.find((m) => m.cseq?.method === "OPTIONS"));
    expect(res.status).toBe(200);
    expect(res.get("Allow")).toContain("INVITE");
    await sleep(200);
    expect(stranger.got.length).toBe(0);
  });

  it("does not relay in-dialog requests from unknown sources that do not go back to a trunk", async () => {
    // a forged Route naming didgate, with a Request-URI at some other host
    const before = dest.got.length;
    stranger.send(port, request("BYE", `sip:victim@127.0.0.1:${dest.port}`, stranger, [`Route: <sip:127.0.0.1:${port};lr;ftag=zzz;dgc=udp~127.0.0.9~5060>`], "t1"));
    stranger.send(port, request("INFO", `sip:victim@127.0.0.1:${dest.port}`, stranger, [`Route: <sip:127.0.0.1:${port};lr>`], "t2"));
    await sleep(300);
    expect(dest.got.length).toBe(before);
    expect(stranger.got.length).toBe(0);
  });

  it("a trunk's in-dialog request without our Route is refused, not relayed", async () => {
    carrier.send(port, request("BYE", `sip:victim@127.0.0.1:${dest.port}`, carrier, [], "t3"));
    const res = await waitFor(() => carrier.got.find((m) => m.cseq?.method === "BYE"));
    expect(res.status).toBe(403);
    expect(dest.got.filter((m) => m.method === "BYE").length).toBe(0);
  });

  it("logs one line per call with trunk, DID, caller, route key, targets, code and setup time, and counts it", async () => {
    carrier.send(port, request("INVITE", `sip:5125550100@127.0.0.1:${port}`, carrier));
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE"));
    expect(inv.requestUri).toBe(`sip:+15125550100@127.0.0.1:${dest.port}`);
    // the destination refuses: 404 goes upstream (not in failover_on), ACKed hop by hop
    const res = parseMessage(Buffer.from(
      [
        "SIP/2.0 404 Not Here",
        ...inv.vias.map((v) => `Via: ${v}`),
        `From: ${inv.get("from")}`,
        `To: ${inv.get("to")};tag=d1`,
        `Call-ID: ${inv.callId}`,
        `CSeq: ${inv.get("cseq")}`,
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n"),
    )) as SipMessage;
    const s = dgram.createSocket("udp4");
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
    s.send(res.toBuffer(), port, "127.0.0.1");
    const fin = await waitFor(() => carrier.got.find((m) => m.cseq?.method === "INVITE" && m.status >= 200));
    s.close();
    expect(fin.status).toBe(404);
    expect(fin.reason).toBe("Not Here");
    expect(fin.vias.length).toBe(1);
    const line = await waitFor(() => lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "call" && l.did === "+15125550100"));
    expect(line).toMatchObject({ level: "info", trunk: "carrier", did: "+15125550100", caller: "+15125551111", route_key: "+15125550100", code: 404, outcome: "failed" });
    expect(line.targets).toEqual([`sip:+15125550100@127.0.0.1:${dest.port}=404`]);
    expect(typeof line.setup_ms).toBe("number");
    const metrics = await app.registry.metrics();
    expect(metrics).toMatch(/didgate_calls_total\{trunk="carrier",outcome="failed"\} 1/);
    expect(metrics).toMatch(/didgate_sip_final_responses_total\{trunk="carrier",code="404"\} 1/);
    expect(metrics).toMatch(/didgate_sip_requests_total\{trunk="carrier",method="INVITE"\} 1/);
    expect(metrics).toMatch(/didgate_call_setup_seconds_count\{trunk="carrier"\} 1/);
    expect(metrics).toContain("didgate_sip_targets_down 0");
    expect(voice.inFlight()).toBe(0);
  });

  it("an ACK for a 2xx that reuses the INVITE's branch still reaches the destination (RFC 6026 Accepted state)", async () => {
    const inviteText = request("INVITE", `sip:+15125550100@127.0.0.1:${port}`, carrier);
    carrier.send(port, inviteText);
    const callId = /Call-ID: (\S+)/.exec(inviteText)![1]!;
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === callId));
    const ok = [
      "SIP/2.0 200 OK",
      ...inv.vias.map((v) => `Via: ${v}`),
      ...inv.recordRoutes.map((r) => `Record-Route: ${r}`),
      `From: ${inv.get("from")}`,
      `To: ${inv.get("to")};tag=d2`,
      `Call-ID: ${inv.callId}`,
      `CSeq: ${inv.get("cseq")}`,
      `Contact: <sip:callee@127.0.0.1:${dest.port}>`,
      "Content-Length: 0",
      "",
      "",
    ].join("\r\n");
    const s = dgram.createSocket("udp4");
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
    s.send(Buffer.from(ok), port, "127.0.0.1");
    const res = await waitFor(() => carrier.got.find((m) => m.callId === callId && m.status === 200));
    s.close();
    const rr = res.recordRoutes;
    expect(rr.length).toBe(1);
    // same branch as the INVITE (an RFC 2543-style UA)
    const branch = /branch=([^;\r\n]+)/.exec(inviteText)![1]!;
    const ack = [
      `ACK sip:callee@127.0.0.1:${dest.port} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${carrier.port};branch=${branch};rport`,
      `Route: ${rr[0]}`,
      `From: ${res.get("from")}`,
      `To: ${res.get("to")}`,
      `Call-ID: ${callId}`,
      "CSeq: 1 ACK",
      "Max-Forwards: 70",
      "Content-Length: 0",
      "",
      "",
    ].join("\n");
    carrier.send(port, ack);
    const got = await waitFor(() => dest.got.find((m) => m.method === "ACK" && m.callId === callId));
    expect(got.requestUri).toBe(`sip:callee@127.0.0.1:${dest.port}`);
    expect(got.routes.length).toBe(0);
    expect(got.vias.length).toBe(2);
    expect(got.maxForwards).toBe(69);
  });

  it("a 200 that crosses a CANCEL still goes upstream after the 487 (RFC 3261 16.7 step 10)", async () => {
    const inviteText = request("INVITE", `sip:+15125550100@127.0.0.1:${port}`, carrier);
    carrier.send(port, inviteText);
    const callId = /Call-ID: (\S+)/.exec(inviteText)![1]!;
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === callId));
    const answer = (status: string, cseq: string) =>
      [
        `SIP/2.0 ${status}`,
        ...inv.vias.map((v) => `Via: ${v}`),
        ...inv.recordRoutes.map((r) => `Record-Route: ${r}`),
        `From: ${inv.get("from")}`,
        `To: ${inv.get("to")};tag=d3`,
        `Call-ID: ${inv.callId}`,
        `CSeq: ${cseq}`,
        `Contact: <sip:callee@127.0.0.1:${dest.port}>`,
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n");
    const s = dgram.createSocket("udp4");
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
    s.send(Buffer.from(answer("180 Ringing", "1 INVITE")), port, "127.0.0.1");
    await waitFor(() => carrier.got.find((m) => m.callId === callId && m.status === 180));
    // The carrier gives up; didgate answers 487 and CANCELs the branch.
    const branch = /branch=([^;\r\n]+)/.exec(inviteText)![1]!;
    carrier.send(
      port,
      [`CANCEL sip:+15125550100@127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${carrier.port};branch=${branch};rport`, `From: ${/From: (.*)/.exec(inviteText)![1]}`, `To: <sip:+15125550100@127.0.0.1:${port}>`, `Call-ID: ${callId}`, "CSeq: 1 CANCEL", "Max-Forwards: 70", "Content-Length: 0", "", ""].join("\n"),
    );
    await waitFor(() => carrier.got.find((m) => m.callId === callId && m.status === 487));
    await waitFor(() => dest.got.find((m) => m.method === "CANCEL" && m.callId === callId));
    // ...but the callee had already answered: its 200 crosses the CANCEL.
    s.send(Buffer.from(answer("200 OK", "1 INVITE")), port, "127.0.0.1");
    const ok = await waitFor(() => carrier.got.find((m) => m.callId === callId && m.status === 200 && m.cseq?.method === "INVITE"));
    s.close();
    expect(ok.vias.length).toBe(1);
    expect(ok.recordRoutes.length).toBe(1);
  });

  it("a malformed request gets 400 from a trunk and nothing from an unknown source", async () => {
    const bad = (from: Peer) => request("INVITE", `sip:+15125550100@127.0.0.1:${port}`, from).replace("Max-Forwards: 70", "Max-Forwards: lots");
    const before = stranger.got.length;
    stranger.send(port, bad(stranger));
    carrier.send(port, bad(carrier));
    await waitFor(() => carrier.got.find((m) => m.status === 400));
    await sleep(200);
    expect(stranger.got.length).toBe(before);
  });

  it("fails over when the send to a target fails synchronously (no listener for its address family)", async () => {
    carrier.send(port, request("INVITE", `sip:+15125550200@127.0.0.1:${port}`, carrier));
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.requestUri.startsWith("sip:+15125550200@")));
    expect(inv.requestUri).toBe(`sip:+15125550200@127.0.0.1:${dest.port}`);
    expect(inv.vias.length).toBe(2);
  });

  it("resolves a target host name (localhost) through DNS lookup", async () => {
    carrier.send(port, request("INVITE", `sip:+15125550300@127.0.0.1:${port}`, carrier));
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.requestUri.startsWith("sip:+15125550300@")));
    expect(inv.requestUri).toBe(`sip:+15125550300@localhost:${dest.port}`);
    expect(inv.vias.length).toBe(2);
  });

  it("reload applies trunks and reports what cannot change live", async () => {
    const cfg = makeConfig(
      { sip: { listen: ["udp://127.0.0.1:1"], trunks: [{ name: "carrier", sources: ["127.0.0.1", "127.0.0.2"], country_code: "1" }] }, admin: { listen: "127.0.0.1:0" } },
      "/",
    ).config;
    const { refused } = reloadVoice(voice, app.config, { ...cfg, sip: { ...cfg.sip, timers: app.config.sip.timers } });
    expect(refused).toEqual(["sip.listen"]);
    // 127.0.0.2 is now a trunk: its OPTIONS gets 200
    stranger.send(port, request("OPTIONS", `sip:127.0.0.1:${port}`, stranger));
    const res = await waitFor(() => stranger.got.find((m) => m.cseq?.method === "OPTIONS"));
    expect(res.status).toBe(200);
  });

  it("drain: new INVITEs get 503 with Retry-After", async () => {
    await voice.drain(0); // a deadline already passed: refuse new INVITEs, wait for nothing
    carrier.send(port, request("INVITE", `sip:5125550100@127.0.0.1:${port}`, carrier));
    const fin = await waitFor(() => carrier.got.find((m) => m.cseq?.method === "INVITE" && m.status === 503));
    expect(fin.get("Retry-After")).toBeDefined();
  });
});

describe("Record-Route flow token", () => {
  it("round-trips IPv4 and IPv6 flows and rejects junk", () => {
    expect(parseFlowToken(flowToken("tcp", "10.0.0.1", 5060))).toEqual({ transport: "tcp", address: "10.0.0.1", port: 5060 });
    expect(parseFlowToken(flowToken("udp", "2001:db8::1", 5070))).toEqual({ transport: "udp", address: "2001:db8::1", port: 5070 });
    for (const bad of ["", "x", "sctp~1.2.3.4~5060", "udp~1.2.3.4~0", "udp~~5060", "udp~1.2.3.4~99999", "udp~1.2.3.4"]) expect(parseFlowToken(bad)).toBeNull();
  });
});
