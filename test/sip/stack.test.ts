import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import {
  SipMessage,
  SipStack,
  createResponse,
  destinationFromUri,
  parseListenUrl,
  type ClientTransaction,
  type ClientTxHandler,
  type ServerTransaction,
  type SipStackHandler,
  type SipStackOptions,
} from "../../src/sip/index.js";
import { TcpPeer, UdpPeer, request } from "./peers.js";
import { ManualTimers } from "./manual-timers.js";

const FIX = path.join(path.dirname(new URL(import.meta.url).pathname), "fixtures");
const CERT = fs.readFileSync(path.join(FIX, "cert.pem"));
const KEY = fs.readFileSync(path.join(FIX, "key.pem"));

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

class Recorder implements SipStackHandler {
  txs: ServerTransaction[] = [];
  acks: SipMessage[] = [];
  strays: SipMessage[] = [];
  parseErrors = 0;
  constructor(private readonly auto?: (tx: ServerTransaction) => void) {}
  onRequest(tx: ServerTransaction): void {
    this.txs.push(tx);
    this.auto?.(tx);
  }
  onAck(a: SipMessage): void {
    this.acks.push(a);
  }
  onStrayResponse(r: SipMessage): void {
    this.strays.push(r);
  }
  onParseError(): void {
    this.parseErrors++;
  }
}

class ClientRec implements ClientTxHandler {
  responses: SipMessage[] = [];
  timeouts = 0;
  errors: Error[] = [];
  terminated = 0;
  onResponse(res: SipMessage): void {
    this.responses.push(res);
  }
  onTimeout(): void {
    this.timeouts++;
  }
  onTransportError(_tx: ClientTransaction, err: Error): void {
    this.errors.push(err);
  }
  onTerminated(): void {
    this.terminated++;
  }
  async waitFor(n: number, ms = 3000): Promise<void> {
    const end = Date.now() + ms;
    while (this.responses.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    if (this.responses.length < n) throw new Error("expected " + n + " responses, got " + this.responses.length);
  }
}

async function mkStack(opts: Partial<SipStackOptions> & { listen: SipStackOptions["listen"] }, h: SipStackHandler): Promise<SipStack> {
  const s = await SipStack.create(opts as SipStackOptions, h);
  cleanup.push(() => s.close());
  return s;
}
async function udpPeer(host?: string, port?: number): Promise<UdpPeer> {
  const p = await UdpPeer.create(host, port);
  cleanup.push(() => p.close());
  return p;
}
async function tcpPeer(port: number, host?: string): Promise<TcpPeer> {
  const p = await TcpPeer.connect(port, host);
  cleanup.push(() => p.close());
  return p;
}
const tick = (ms = 30): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await tick(10);
  }
}

describe("UDP server transactions (manual timers)", () => {
  it("INVITE: 100 Trying at once, retransmissions absorbed, non-2xx retransmitted on timer G until ACK, responses follow rport", async () => {
    const timers = new ManualTimers();
    const rec = new Recorder();
    const reg = new Registry();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers, registry: reg }, rec);
    const port = stack.listeners[0]!.port;
    const peer = await udpPeer();
    // sent-by claims another host and port: responses must go to the source (received + rport)
    const inv = request("INVITE", { via: "SIP/2.0/UDP 192.0.2.99:5099;branch=z9hG4bKinv1;rport", callId: "inv1@test" });
    await peer.send(inv, port);
    const trying = await peer.next();
    expect(trying.status).toBe(100);
    expect(trying.topVia!.received).toBe("127.0.0.1");
    expect(trying.topVia!.rport).toBe(peer.port);
    expect(rec.txs.length).toBe(1);
    const tx = rec.txs[0]!;
    expect(tx.source.port).toBe(peer.port);
    expect(tx.request.topVia!.rport).toBe(peer.port);

    await peer.send(inv, port); // retransmission
    expect((await peer.next()).status).toBe(100); // last provisional re-sent
    expect(rec.txs.length).toBe(1);

    tx.reply(486);
    const busy = await peer.next();
    expect(busy.status).toBe(486);
    expect(busy.toTag).toBe(tx.toTag);
    timers.advance(500); // G = T1
    expect((await peer.next()).status).toBe(486);
    timers.advance(999);
    await peer.none(50);
    timers.advance(1); // G = 2*T1
    expect((await peer.next()).status).toBe(486);

    await peer.send(request("ACK", { via: "SIP/2.0/UDP 192.0.2.99:5099;branch=z9hG4bKinv1;rport", callId: "inv1@test", toTag: tx.toTag }), port);
    await until(() => tx.state === "confirmed");
    timers.advance(10_000);
    await peer.none(50);
    expect(tx.state).toBe("terminated");
    expect(stack.serverTransactionCount).toBe(0);
    expect(rec.acks.length).toBe(0); // the ACK matched the transaction
    const text = await reg.metrics();
    expect(text).toMatch(/didgate_sip_retransmissions_total\{direction="in",kind="request"\} 1/);
    expect(text).toMatch(/didgate_sip_retransmissions_total\{direction="out",kind="response"\} 3/);
    expect(timers.size).toBe(0);
  });

  it("a server transaction lets its parsed request go once a final response is sent; its Call-ID stays, the request is parsed again from the bytes received when asked", async () => {
    const timers = new ManualTimers();
    const rec = new Recorder();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers }, rec);
    const port = stack.listeners[0]!.port;
    const peer = await udpPeer();
    const inv = request("INVITE", { via: "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKrel;rport", callId: "rel2@test" });
    await peer.send(inv, port);
    expect((await peer.next()).status).toBe(100);
    const tx = rec.txs[0]!;
    const received = tx.request;
    // held (the same object) while the transaction is proceeding
    tx.reply(180);
    expect((await peer.next()).status).toBe(180);
    expect(tx.request).toBe(received);
    tx.reply(200);
    expect((await peer.next()).status).toBe(200);
    expect(tx.state).toBe("accepted");
    expect((tx as unknown as { req: unknown }).req).toBeNull();
    // the Call-ID was kept: reading it parses nothing again
    expect(tx.callId).toBe("rel2@test");
    expect((tx as unknown as { req: unknown }).req).toBeNull();
    const again = tx.request;
    expect(again).not.toBe(received);
    expect(again.toBuffer().equals(Buffer.from(inv))).toBe(true);
    expect(again.method).toBe("INVITE");
    expect(again.topVia!.branch).toBe("z9hG4bKrel");
    expect(tx.request).toBe(again);
    // a retransmitted INVITE is still absorbed (nothing sent, the TU not called again)
    await peer.send(inv, port);
    await peer.none(50);
    expect(rec.txs.length).toBe(1);
    // a non-INVITE too, and its retransmission gets the final response again from the bytes kept
    const bye = request("BYE", { via: "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKrelbye;rport", callId: "rel2@test" });
    await peer.send(bye, port);
    await until(() => rec.txs.length > 1);
    const btx = rec.txs[1]!;
    btx.reply(200);
    expect((await peer.next()).status).toBe(200);
    expect((btx as unknown as { req: unknown }).req).toBeNull();
    await peer.send(bye, port);
    expect((await peer.next()).status).toBe(200);
    timers.advance(64 * 500);
    expect(tx.state).toBe("terminated");
    expect(btx.state).toBe("terminated");
  });

  it("INVITE: timer H reports a missing ACK; 2xx goes to Accepted and passes TU retransmissions", async () => {
    const timers = new ManualTimers();
    const rec = new Recorder();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers }, rec);
    const port = stack.listeners[0]!.port;
    const peer = await udpPeer();
    await peer.send(request("INVITE", { via: "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKh;rport" }), port);
    await peer.next();
    let ackTimeout = 0;
    rec.txs[0]!.events.onAckTimeout = () => ackTimeout++;
    rec.txs[0]!.reply(603);
    await peer.next();
    timers.advance(64 * 500);
    expect(ackTimeout).toBe(1);
    expect(rec.txs[0]!.state).toBe("terminated");
    await tick(50);
    while (peer.pendingCount > 0) expect((await peer.next()).status).toBe(603); // timer G retransmissions

    const inv2 = request("INVITE", { via: "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKok;rport" });
    await peer.send(inv2, port);
    await peer.next();
    const tx = rec.txs[1]!;
    const ok = createResponse(tx.request, 200, undefined, { toTag: "uas" });
    expect(tx.respond(ok)).toBe(true);
    expect((await peer.next()).status).toBe(200);
    expect(tx.state).toBe("accepted");
    expect(tx.respond(ok)).toBe(true); // 2xx retransmission from the TU passes
    expect((await peer.next()).status).toBe(200);
    expect(tx.respond(createResponse(tx.request, 486))).toBe(false);
    await peer.send(inv2, port); // INVITE retransmission absorbed, nothing re-sent, TU not called
    await peer.none(80);
    expect(rec.txs.length).toBe(2);
    timers.advance(64 * 500); // timer L
    expect(tx.state).toBe("terminated");
  });

  it("non-INVITE: final response re-sent on retransmission, timer J ends it; no 100 for OPTIONS", async () => {
    const timers = new ManualTimers();
    const rec = new Recorder((tx) => tx.reply(200));
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers }, rec);
    const port = stack.listeners[0]!.port;
    const peer = await udpPeer();
    const opt = request("OPTIONS", { via: "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKopt;rport" });
    await peer.send(opt, port);
    expect((await peer.next()).status).toBe(200);
    await peer.send(opt, port);
    expect((await peer.next()).status).toBe(200);
    expect(rec.txs.length).toBe(1);
    timers.advance(64 * 500);
    expect(rec.txs[0]!.state).toBe("terminated");
    await peer.send(opt, port); // after J: a new transaction
    expect((await peer.next()).status).toBe(200);
    expect(rec.txs.length).toBe(2);
  });

  it("RFC 2543 requests (no magic cookie) are matched by Call-ID/CSeq/From tag/Via/Request-URI", async () => {
    const timers = new ManualTimers();
    const rec = new Recorder((tx) => (tx.request.method === "OPTIONS" ? tx.reply(200) : tx.reply(404)));
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers }, rec);
    const port = stack.listeners[0]!.port;
    const peer = await udpPeer();
    const opt = request("OPTIONS", { via: "SIP/2.0/UDP 127.0.0.1:9;branch=old1;rport", callId: "2543@x" });
    await peer.send(opt, port);
    await peer.send(opt, port);
    await peer.next();
    await peer.next();
    expect(rec.txs.length).toBe(1);
    const inv = request("INVITE", { via: "SIP/2.0/UDP 127.0.0.1:9;rport", callId: "2543inv@x" });
    await peer.send(inv, port);
    await peer.next(); // 100
    const nf = await peer.next();
    expect(nf.status).toBe(404);
    await peer.send(request("ACK", { via: "SIP/2.0/UDP 127.0.0.1:9;rport", callId: "2543inv@x", toTag: nf.toTag }), port);
    await until(() => rec.txs[1]!.state === "confirmed");
    expect(rec.acks.length).toBe(0);
  });

  it("CANCEL matches its INVITE; ACK for 2xx (new branch) goes to onAck", async () => {
    const rec = new Recorder();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"] }, rec);
    const port = stack.listeners[0]!.port;
    const peer = await udpPeer();
    const via = "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKcan;rport";
    await peer.send(request("INVITE", { via, callId: "c@x" }), port);
    await peer.next();
    let cancelledBy: ServerTransaction | null = null;
    rec.txs[0]!.events.onCancel = (_t, c) => (cancelledBy = c);
    await peer.send(request("CANCEL", { via, callId: "c@x" }), port);
    await until(() => rec.txs.length === 2);
    const c = rec.txs[1]!;
    expect(c.method).toBe("CANCEL");
    expect(c.cancels).toBe(rec.txs[0]);
    expect(cancelledBy).toBe(c);
    expect(rec.txs[0]!.cancelled).toBe(true);
    c.reply(200);
    rec.txs[0]!.reply(487);
    const r1 = await peer.next();
    const r2 = await peer.next();
    expect([r1.status, r1.cseq!.method, r2.status, r2.cseq!.method]).toEqual([200, "CANCEL", 487, "INVITE"]);
    // a CANCEL for nothing
    await peer.send(request("CANCEL", { via: "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnone", callId: "none@x" }), port);
    await until(() => rec.txs.length === 3);
    expect(rec.txs[2]!.cancels).toBeNull();
    await peer.send(request("ACK", { via: "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKack2xx", callId: "c@x", toTag: "x" }), port);
    await until(() => rec.acks.length === 1);
  });

  it("answers 400 to a malformed request it can answer, drops garbage, never throws", async () => {
    const rec = new Recorder();
    const reg = new Registry();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], registry: reg }, rec);
    const port = stack.listeners[0]!.port;
    const peer = await udpPeer();
    await peer.send(request("INVITE", { via: "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad;rport", cseqMethod: "BYE" }), port);
    const r = await peer.next();
    expect(r.status).toBe(400);
    expect(r.reason).toContain("CSeq");
    expect(r.topVia!.rport).toBe(peer.port);
    await peer.send(Buffer.from([0, 1, 2, 3, 255, 13, 10, 13, 10]), port);
    await peer.send("SIP/2.0 200 OK\r\n\r\n", port);
    await peer.none(100);
    expect(rec.txs.length).toBe(0);
    expect(rec.parseErrors).toBe(3);
    expect(await reg.metrics()).toMatch(/didgate_sip_parse_errors_total\{transport="udp",reason="cseq_method_mismatch"\} 1/);
  });

  it("without rport a UDP response goes to the sent-by port (RFC 3261 18.2.2)", async () => {
    const rec = new Recorder((tx) => tx.reply(200));
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"] }, rec);
    const sender = await udpPeer();
    const sentBy = await udpPeer();
    await sender.send(request("OPTIONS", { via: `SIP/2.0/UDP 127.0.0.1:${sentBy.port};branch=z9hG4bKsb` }), stack.listeners[0]!.port);
    expect((await sentBy.next()).status).toBe(200);
    await sender.none(50);
  });

  it("a maddr, a received or an rport the sender wrote in its Via do not aim responses (or their retransmissions) at another address", async () => {
    const timers = new ManualTimers();
    const rec = new Recorder((tx) => tx.reply(tx.method === "INVITE" ? 486 : 200));
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers }, rec);
    const port = stack.listeners[0]!.port;
    const victim = await udpPeer("127.0.0.2");
    // the sender on the victim's port number (its own address): a response sent to the sent-by
    // port at the wrong address would reach the victim
    const sender = await udpPeer("127.0.0.1", victim.port);
    const vias = [
      `SIP/2.0/UDP 127.0.0.1:${victim.port};branch=z9hG4bKm1;rport;maddr=127.0.0.2`,
      `SIP/2.0/UDP 127.0.0.1:${victim.port};branch=z9hG4bKm2;maddr=127.0.0.2`,
      `SIP/2.0/UDP 127.0.0.1:${sender.port};branch=z9hG4bKm3;received=127.0.0.2;rport=${victim.port}`,
      `SIP/2.0/UDP 127.0.0.1:${victim.port};branch=z9hG4bKm4;received=127.0.0.2`,
    ];
    for (const [i, via] of vias.entries()) {
      await sender.send(request("OPTIONS", { via, callId: `maddr${i}@x` }), port);
      const r = await sender.next();
      expect(r.status).toBe(200);
      expect(r.topVia!.received ?? "127.0.0.1").toBe("127.0.0.1");
    }
    // an INVITE's non-2xx is retransmitted (timer G) to the same place
    await sender.send(request("INVITE", { via: vias[2]!, callId: "maddr-inv@x" }), port);
    expect((await sender.next()).status).toBe(100);
    expect((await sender.next()).status).toBe(486);
    timers.advance(500);
    expect((await sender.next()).status).toBe(486);
    await victim.none(100);
  });

  it("bounded server table: beyond the limit new requests get 503", async () => {
    const rec = new Recorder();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], maxServerTransactions: 2 }, rec);
    const port = stack.listeners[0]!.port;
    const peer = await udpPeer();
    for (let i = 0; i < 3; i++) await peer.send(request("OPTIONS", { via: `SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKfull${i};rport` }), port);
    const r = await peer.next();
    expect(r.status).toBe(503);
    expect(r.get("retry-after")).toBe("5");
    expect(rec.txs.length).toBe(2);
  });
});

describe("UDP client transactions (manual timers)", () => {
  it("non-INVITE: timer E retransmits (T1, 2T1, ... capped at T2), final response ends it, timer K", async () => {
    const timers = new ManualTimers();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers }, new Recorder());
    const peer = await udpPeer();
    const h = new ClientRec();
    const req = SipMessage.request("OPTIONS", `sip:x@127.0.0.1:${peer.port}`, [
      ["From", "<sip:a@b>;tag=1"], ["To", "<sip:x@y>"], ["Call-ID", "cl1@x"], ["CSeq", "1 OPTIONS"], ["Max-Forwards", "70"],
    ]);
    const tx = stack.request(req, { transport: "udp", host: "127.0.0.1", port: peer.port }, h);
    const got = await peer.next();
    expect(got.topVia!.branch).toBe(tx.branch);
    expect(got.topVia!.sentBy).toBe(stack.listeners[0]!.sentBy);
    expect(got.topVia!.rport).toBeNull();
    for (const step of [500, 1000, 2000, 4000, 4000]) {
      timers.advance(step - 1);
      await peer.none(20);
      timers.advance(1);
      await peer.next();
    }
    await peer.send(createResponse(got, 200).toBuffer(), stack.listeners[0]!.port);
    await h.waitFor(1);
    expect(tx.state).toBe("completed");
    await peer.send(createResponse(got, 200).toBuffer(), stack.listeners[0]!.port); // absorbed
    await tick(50);
    expect(h.responses.length).toBe(1);
    timers.advance(5000);
    expect(tx.state).toBe("terminated");
    expect(h.terminated).toBe(1);
    expect(timers.size).toBe(0);
  });

  it("a client transaction lets its parsed request go once the final response is delivered, and parses the bytes it sent when asked again", async () => {
    const timers = new ManualTimers();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers }, new Recorder());
    const peer = await udpPeer();
    const seen: string[] = [];
    // the handler still sees the request object it sent (not a copy) while the response is delivered
    class Watch extends ClientRec {
      override onResponse(res: SipMessage, t?: ClientTransaction): void {
        seen.push(t?.request === sent ? "same" : "other");
        super.onResponse(res);
      }
    }
    const h = new Watch();
    const sent = SipMessage.request("INVITE", `sip:x@127.0.0.1:${peer.port}`, [
      ["From", "<sip:a@b>;tag=1"], ["To", "<sip:x@y>"], ["Call-ID", "rel1@x"], ["CSeq", "7 INVITE"], ["Max-Forwards", "70"], ["Contact", "<sip:a@127.0.0.1>"],
    ]);
    const tx = stack.request(sent, { transport: "udp", host: "127.0.0.1", port: peer.port }, h);
    const bytes = Buffer.from(tx.request.toBuffer());
    const got = await peer.next();
    await peer.send(createResponse(got, 180, undefined, { toTag: "t1" }).toBuffer(), stack.listeners[0]!.port);
    await h.waitFor(1);
    expect(tx.request).toBe(sent);
    await peer.send(createResponse(got, 200, undefined, { toTag: "t1" }).toBuffer(), stack.listeners[0]!.port);
    await h.waitFor(2);
    expect(seen).toEqual(["same", "same"]);
    expect(tx.state).toBe("accepted");
    expect((tx as unknown as { req: unknown }).req).toBeNull();
    const again = tx.request;
    expect(again).not.toBe(sent);
    expect(again.toBuffer().equals(bytes)).toBe(true);
    expect(again.method).toBe("INVITE");
    expect(again.callId).toBe("rel1@x");
    expect(again.cseq?.seq).toBe(7);
    expect(again.topVia!.branch).toBe(tx.branch);
    expect(tx.request).toBe(again);
    timers.advance(32_000);
    expect(tx.state).toBe("terminated");
  });

  it("timer F: timeout after 64*T1 without response", async () => {
    const timers = new ManualTimers();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers, t1: 100, t2: 400 }, new Recorder());
    const peer = await udpPeer();
    const h = new ClientRec();
    const req = SipMessage.request("OPTIONS", "sip:x@127.0.0.1", [["From", "<sip:a@b>;tag=1"], ["To", "<sip:x@y>"], ["Call-ID", "f@x"], ["CSeq", "1 OPTIONS"]]);
    stack.request(req, { transport: "udp", host: "127.0.0.1", port: peer.port }, h);
    await peer.next();
    timers.advance(6399);
    expect(h.timeouts).toBe(0);
    timers.advance(1);
    expect(h.timeouts).toBe(1);
    expect(stack.clientTransactionCount).toBe(0);
  });

  it("INVITE: timer A, 1xx stops retransmission, non-2xx final is ACKed by the transaction (and re-ACKed), CANCEL after 1xx", async () => {
    const timers = new ManualTimers();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers }, new Recorder());
    const sport = stack.listeners[0]!.port;
    const peer = await udpPeer();
    const h = new ClientRec();
    const req = SipMessage.request("INVITE", `sip:x@127.0.0.1:${peer.port}`, [
      ["Route", "<sip:127.0.0.1:1;lr>"], ["From", "<sip:a@b>;tag=1"], ["To", "<sip:x@y>"], ["Call-ID", "ic@x"], ["CSeq", "7 INVITE"],
    ]);
    const tx = stack.request(req, { transport: "udp", host: "127.0.0.1", port: peer.port }, h);
    const inv = await peer.next();
    tx.cancel(); // no provisional yet: deferred
    timers.advance(500);
    expect((await peer.next()).method).toBe("INVITE");
    await peer.send(createResponse(inv, 180, undefined, { toTag: "t1" }).toBuffer(), sport);
    const cancel = await peer.next();
    expect(cancel.method).toBe("CANCEL");
    expect(cancel.topVia!.branch).toBe(tx.branch);
    expect(cancel.cseq).toEqual({ seq: 7, method: "CANCEL" });
    expect(cancel.routes).toEqual(["<sip:127.0.0.1:1;lr>"]);
    timers.advance(5000); // no INVITE retransmissions in Proceeding; CANCEL retransmits (timer E)
    const again = await peer.next();
    expect(again.method).toBe("CANCEL");
    await peer.send(createResponse(cancel, 200).toBuffer(), sport);
    await peer.send(createResponse(inv, 487, undefined, { toTag: "t1" }).toBuffer(), sport);
    await until(() => h.responses.length === 2);
    let ack = await peer.next();
    while (ack.method === "CANCEL") ack = await peer.next();
    expect(ack.method).toBe("ACK");
    expect(ack.topVia!.branch).toBe(tx.branch);
    expect(ack.cseq).toEqual({ seq: 7, method: "ACK" });
    expect(ack.toTag).toBe("t1");
    expect(ack.routes).toEqual(["<sip:127.0.0.1:1;lr>"]);
    expect(ack.requestUri).toBe(inv.requestUri);
    await peer.send(createResponse(inv, 487, undefined, { toTag: "t1" }).toBuffer(), sport); // retransmitted final
    expect((await peer.next()).method).toBe("ACK");
    expect(h.responses.map((r) => r.status)).toEqual([180, 487]);
    timers.advance(32_000);
    expect(tx.state).toBe("terminated");
  });

  it("INVITE 2xx: Accepted state passes 2xx retransmissions; unmatched responses are stray", async () => {
    const timers = new ManualTimers();
    const rec = new Recorder();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers }, rec);
    const sport = stack.listeners[0]!.port;
    const peer = await udpPeer();
    const h = new ClientRec();
    const req = SipMessage.request("INVITE", `sip:x@127.0.0.1:${peer.port}`, [["From", "<sip:a@b>;tag=1"], ["To", "<sip:x@y>"], ["Call-ID", "ok@x"], ["CSeq", "1 INVITE"]]);
    const tx = stack.request(req, { transport: "udp", host: "127.0.0.1", port: peer.port }, h);
    const inv = await peer.next();
    const ok = createResponse(inv, 200, undefined, { toTag: "u" }).toBuffer();
    await peer.send(ok, sport);
    await peer.send(ok, sport);
    await h.waitFor(2);
    expect(tx.state).toBe("accepted");
    await peer.none(50); // no ACK for 2xx from the transaction
    timers.advance(64 * 500);
    expect(tx.state).toBe("terminated");
    await peer.send(ok, sport);
    await until(() => rec.strays.length === 1);
  });
});

describe("how long a finished transaction stays (wait)", () => {
  it("with wait 5 s the four finished states (L, J, M, D) end at 5 s, not 32 s; a 2xx retransmission after that is a stray", async () => {
    const timers = new ManualTimers();
    const rec = new Recorder();
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers, wait: 5000 }, rec);
    const port = stack.listeners[0]!.port;
    const peer = await udpPeer();
    // server INVITE answered 2xx (L) and a server BYE answered (J)
    await peer.send(request("INVITE", { via: "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKw1;rport", callId: "w1@x" }), port);
    await peer.next();
    await peer.send(request("BYE", { via: "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKw2;rport", callId: "w2@x" }), port);
    await until(() => rec.txs.length === 2);
    rec.txs[0]!.respond(createResponse(rec.txs[0]!.request, 200, undefined, { toTag: "u" }));
    rec.txs[1]!.reply(200);
    // client INVITEs answered 2xx (M) and 486 (D)
    const h = new ClientRec();
    const inv = (cid: string) => SipMessage.request("INVITE", `sip:x@127.0.0.1:${peer.port}`, [["From", "<sip:a@b>;tag=1"], ["To", "<sip:x@y>"], ["Call-ID", cid], ["CSeq", "1 INVITE"]]);
    const c1 = stack.request(inv("w3@x"), { transport: "udp", host: "127.0.0.1", port: peer.port }, h);
    const c2 = stack.request(inv("w4@x"), { transport: "udp", host: "127.0.0.1", port: peer.port }, h);
    const sent = [await peer.next(), await peer.next(), await peer.next(), await peer.next()].filter((m) => m.isRequest);
    const ok = createResponse(sent.find((m) => m.callId === "w3@x")!, 200, undefined, { toTag: "u" }).toBuffer();
    await peer.send(ok, port);
    await peer.send(createResponse(sent.find((m) => m.callId === "w4@x")!, 486, undefined, { toTag: "v" }).toBuffer(), port);
    await h.waitFor(2);
    expect([rec.txs[0]!.state, rec.txs[1]!.state, c1.state, c2.state]).toEqual(["accepted", "completed", "accepted", "completed"]);
    timers.advance(4999);
    expect([rec.txs[0]!.state, rec.txs[1]!.state, c1.state, c2.state]).toEqual(["accepted", "completed", "accepted", "completed"]);
    timers.advance(1);
    expect([rec.txs[0]!.state, rec.txs[1]!.state, c1.state, c2.state]).toEqual(["terminated", "terminated", "terminated", "terminated"]);
    expect([stack.serverTransactionCount, stack.clientTransactionCount]).toEqual([0, 0]);
    await peer.send(ok, port);
    await until(() => rec.strays.length === 1);
  });

  it("wait is at most 64 × T1 (the RFCs' value, and the stack's default)", async () => {
    const timers = new ManualTimers();
    const rec = new Recorder((tx) => tx.reply(200));
    const stack = await mkStack({ listen: ["udp://127.0.0.1:0"], timers, t1: 30, wait: 5000 }, rec);
    const peer = await udpPeer();
    await peer.send(request("OPTIONS", { via: "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKw5;rport" }), stack.listeners[0]!.port);
    await peer.next();
    timers.advance(64 * 30);
    expect(rec.txs[0]!.state).toBe("terminated");
  });
});

describe("TCP and TLS", () => {
  it("frames pipelined and split messages, answers CRLFCRLF pings, responds on the same connection", async () => {
    const rec = new Recorder((tx) => tx.reply(200));
    const stack = await mkStack({ listen: ["tcp://127.0.0.1:0"] }, rec);
    const port = stack.listeners[0]!.port;
    const peer = await tcpPeer(port);
    const via = (b: string): string => `SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK${b}`;
    const m1 = request("MESSAGE", { via: via("p1"), body: "hello\r\n\r\nworld" });
    const m2 = request("OPTIONS", { via: via("p2") });
    peer.write(m1 + m2);
    const a = await peer.next();
    const b = await peer.next();
    expect([a.topVia!.branch, b.topVia!.branch]).toEqual(["z9hG4bKp1", "z9hG4bKp2"]);
    expect(rec.txs[0]!.request.body.toString()).toBe("hello\r\n\r\nworld");
    expect(a.topVia!.received).toBe("127.0.0.1");
    const m3 = Buffer.from(request("OPTIONS", { via: via("p3") }));
    for (let i = 0; i < m3.length; i += 7) {
      peer.write(m3.subarray(i, i + 7));
      await tick(1);
    }
    expect((await peer.next()).topVia!.branch).toBe("z9hG4bKp3");
    peer.write("\r\n\r\n");
    await until(() => peer.pings.length === 1);
    expect(peer.pings).toEqual([2]);
    expect(stack.transport.connectionCount).toBe(1);
  });

  it("closes a connection that cannot be framed, answers 400 on a parse error and goes on", async () => {
    const rec = new Recorder((tx) => tx.reply(200));
    const stack = await mkStack({ listen: ["tcp://127.0.0.1:0"], limits: { maxMessageSize: 4096 } }, rec);
    const port = stack.listeners[0]!.port;
    const p1 = await tcpPeer(port);
    p1.write(request("OPTIONS", { via: "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx", cseqMethod: "BYE" }));
    expect((await p1.next()).status).toBe(400);
    p1.write(request("OPTIONS", { via: "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKy" }));
    expect((await p1.next()).status).toBe(200);
    p1.write(request("OPTIONS", { via: "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKz" }).replace("Content-Length: 0", "Content-Length: 99999"));
    expect(await p1.waitClosed()).toBe(true);
    const p2 = await tcpPeer(port);
    p2.write("X".repeat(5000));
    expect(await p2.waitClosed()).toBe(true);
  });

  it("caps connections per source IP and closes idle connections", async () => {
    const stack = await mkStack({ listen: ["tcp://127.0.0.1:0"], transport: { maxConnectionsPerIp: 2, idleTimeoutMs: 300 } }, new Recorder());
    const port = stack.listeners[0]!.port;
    const a = await tcpPeer(port);
    const b = await tcpPeer(port);
    await until(() => stack.transport.connectionCount === 2);
    const c = await tcpPeer(port);
    expect(await c.waitClosed(2000)).toBe(true);
    expect(await a.waitClosed(3000)).toBe(true); // idle
    expect(await b.waitClosed(3000)).toBe(true);
    await until(() => stack.transport.connectionCount === 0);
  });

  it("stack to stack over TCP reuses one connection for requests and responses", async () => {
    const server = await mkStack({ listen: ["tcp://127.0.0.1:0"] }, new Recorder((tx) => tx.reply(200)));
    const client = await mkStack({ listen: ["tcp://127.0.0.1:0"] }, new Recorder());
    const dest = { transport: "tcp" as const, host: "127.0.0.1", port: server.listeners[0]!.port };
    const h = new ClientRec();
    for (let i = 0; i < 3; i++) {
      const req = SipMessage.request("OPTIONS", `sip:127.0.0.1:${dest.port};transport=tcp`, [["From", "<sip:a@b>;tag=1"], ["To", "<sip:x@y>"], ["Call-ID", "tcp" + i], ["CSeq", "1 OPTIONS"]]);
      client.request(req, dest, h);
    }
    await h.waitFor(3);
    expect(h.responses.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(client.transport.connectionCount).toBe(1);
    expect(server.transport.connectionCount).toBe(1);
  });

  it("TCP connect failure is reported as a transport error", async () => {
    const client = await mkStack({ listen: ["tcp://127.0.0.1:0"] }, new Recorder());
    const h = new ClientRec();
    const dead = await (await import("../helpers/sipp.js")).freePort();
    const req = SipMessage.request("OPTIONS", "sip:x@127.0.0.1", [["From", "<sip:a@b>;tag=1"], ["To", "<sip:x@y>"], ["Call-ID", "dead"], ["CSeq", "1 OPTIONS"]]);
    client.request(req, { transport: "tcp", host: "127.0.0.1", port: dead }, h);
    await until(() => h.errors.length === 1);
    expect(client.clientTransactionCount).toBe(0);
  });

  it("a connection closed before the final response fails the client transaction at once", async () => {
    const net = await import("node:net");
    const server = net.createServer((sock) => sock.once("data", () => sock.destroy()));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    cleanup.push(() => new Promise((r) => server.close(() => r())));
    const client = await mkStack({ listen: ["tcp://127.0.0.1:0"] }, new Recorder());
    const h = new ClientRec();
    const req = SipMessage.request("OPTIONS", "sip:x@127.0.0.1", [["From", "<sip:a@b>;tag=1"], ["To", "<sip:x@y>"], ["Call-ID", "lost"], ["CSeq", "1 OPTIONS"]]);
    const tx = client.request(req, { transport: "tcp", host: "127.0.0.1", port: (server.address() as import("node:net").AddressInfo).port }, h);
    await until(() => h.errors.length === 1);
    expect(h.errors[0]!.message).toMatch(/closed/);
    expect(tx.state).toBe("terminated");
    expect(h.timeouts).toBe(0);
  });

  it("TLS: verified with the right CA, refused without it", async () => {
    const server = await mkStack({ listen: ["tls://127.0.0.1:0"], tls: { cert: CERT, key: KEY } }, new Recorder((tx) => tx.reply(200)));
    const port = server.listeners[0]!.port;
    const mk = (id: string): SipMessage =>
      SipMessage.request("OPTIONS", `sips:127.0.0.1:${port}`, [["From", "<sip:a@b>;tag=1"], ["To", "<sip:x@y>"], ["Call-ID", id], ["CSeq", "1 OPTIONS"]]);
    const good = await mkStack({ listen: ["tls://127.0.0.1:0"], tls: { cert: CERT, key: KEY }, transport: { tlsCa: CERT } }, new Recorder());
    const h = new ClientRec();
    good.request(mk("tls1"), { transport: "tls", host: "127.0.0.1", port }, h);
    await h.waitFor(1);
    expect(h.responses[0]!.status).toBe(200);
    expect(h.responses[0]!.topVia!.transport).toBe("TLS");
    const bad = await mkStack({ listen: ["tls://127.0.0.1:0"], tls: { cert: CERT, key: KEY } }, new Recorder());
    const h2 = new ClientRec();
    bad.request(mk("tls2"), { transport: "tls", host: "127.0.0.1", port }, h2);
    await until(() => h2.errors.length === 1);
    expect(h2.responses.length).toBe(0);
    const insecure = await mkStack({ listen: ["tls://127.0.0.1:0"], tls: { cert: CERT, key: KEY }, transport: { tlsVerify: false } }, new Recorder());
    const h3 = new ClientRec();
    insecure.request(mk("tls3"), { transport: "tls", host: "127.0.0.1", port }, h3);
    await h3.waitFor(1);
  });
});

describe("IPv6 and helpers", () => {
  it("UDP over ::1 with bracketed sent-by", async () => {
    const rec = new Recorder((tx) => tx.reply(200));
    const stack = await mkStack({ listen: ["udp://[::1]:0"] }, rec);
    const l = stack.listeners[0]!;
    expect(l.sentBy).toBe(`[::1]:${l.port}`);
    const peer = await udpPeer("::1");
    await peer.send(request("OPTIONS", { via: "SIP/2.0/UDP [::1]:1;branch=z9hG4bKv6;rport" }), l.port, "::1");
    const r = await peer.next();
    expect(r.status).toBe(200);
    expect(r.topVia!.rport).toBe(peer.port);
    expect(stack.isLocal("[::1]", l.port)).toBe(true);
  });

  it("parseListenUrl and destinationFromUri", () => {
    expect(parseListenUrl("udp://0.0.0.0:5060")).toEqual({ transport: "udp", host: "0.0.0.0", port: 5060 });
    expect(parseListenUrl("tcp://[::1]:5062")).toEqual({ transport: "tcp", host: "::1", port: 5062 });
    expect(parseListenUrl("tls://example.com")).toEqual({ transport: "tls", host: "example.com", port: 5061 });
    expect(() => parseListenUrl("sctp://x:1")).toThrow(/unknown transport/);
    expect(() => parseListenUrl("udp://x:99999")).toThrow(/port/);
    expect(destinationFromUri("sip:+1512@10.1.2.3:5080;transport=tcp")).toEqual({ transport: "tcp", host: "10.1.2.3", port: 5080 });
    expect(destinationFromUri("sips:x@[2001:db8::1]")).toEqual({ transport: "tls", host: "2001:db8::1", port: 5061 });
    expect(destinationFromUri("tel:+1512")).toBeNull();
  });

  it("close() leaves no timers and no sockets", async () => {
    const timers = new ManualTimers();
    const stack = await SipStack.create({ listen: ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"], timers }, new Recorder());
    const peer = await udpPeer();
    const t = await TcpPeer.connect(stack.listeners[1]!.port);
    const h = new ClientRec();
    stack.request(SipMessage.request("OPTIONS", "sip:x@127.0.0.1", [["From", "<sip:a@b>;tag=1"], ["To", "<sip:x@y>"], ["Call-ID", "cl"], ["CSeq", "1 OPTIONS"]]),
      { transport: "udp", host: "127.0.0.1", port: peer.port }, h);
    await peer.next();
    expect(timers.size).toBeGreaterThan(0);
    await stack.close();
    expect(timers.size).toBe(0);
    expect(await t.waitClosed()).toBe(true);
    await stack.close(); // idempotent
  });
});
