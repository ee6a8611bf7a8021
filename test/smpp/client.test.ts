/**
 * didgate's outbound binds against an SMSC built on the npm `smpp` package, over loopback TCP/TLS.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { Registry } from "prom-client";
import { SmppService } from "../../src/smpp/service.js";
import { Pdu, encodePdu } from "../../src/smpp/codec.js";
import { CMD } from "../../src/smpp/constants.js";
import { gsm7Encode } from "../../src/smpp/charset.js";
import type { AcceptResult, InboundSms, Receipt, SmppBindConfig, SmppConfig } from "../../src/smpp/types.js";
import { startRawSmsc, startSmsc, waitFor, type TestSmsc } from "../helpers/smsc.js";

const logger = pino({ level: "silent" });
const cleanup: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function smsc(o: Parameters<typeof startSmsc>[0] = {}): Promise<TestSmsc> {
  const s = await startSmsc(o);
  cleanup.push(() => s.close());
  return s;
}

function edgeFor(bind: Partial<SmppBindConfig> & { port: number }, extra: Partial<SmppConfig> = {}) {
  const messages: InboundSms[] = [];
  const receipts: Receipt[] = [];
  const registry = new Registry();
  let answer: (m: InboundSms) => Promise<AcceptResult> = async () => ({ status: "accepted" });
  const edge = new SmppService({
    config: {
      binds: [
        {
          name: "smsc-b",
          host: "127.0.0.1",
          system_id: "didgate",
          password: "pw",
          mode: "transceiver",
          reconnect_min_s: 0.05,
          reconnect_max_s: 0.2,
          ...bind,
        },
      ],
      ...extra,
    },
    logger,
    registry,
    onMessage: (m) => {
      messages.push(m);
      return answer(m);
    },
    onReceipt: (r) => {
      receipts.push(r);
    },
  });
  cleanup.push(() => edge.close());
  return {
    edge,
    messages,
    receipts,
    registry,
    client: edge.clients.get("smsc-b")!,
    setAnswer(f: typeof answer) {
      answer = f;
    },
  };
}

const addr = { source_addr_ton: 1, source_addr_npi: 1, source_addr: "447700900123", dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: "15125550100" };

describe("outbound bind", () => {
  it("binds as transceiver and takes deliver_sm from the SMSC", async () => {
    const s = await smsc({ password: "pw" });
    const { edge, messages, client, registry } = edgeFor({ port: s.port });
    await edge.start();
    expect(await client.whenBound(5000)).toBe(true);
    const b = await s.waitBound();
    expect([b.command, b.system_id, b.password]).toEqual(["bind_transceiver", "didgate", "pw"]);
    const r = await s.send("deliver_sm", { ...addr, data_coding: 0, short_message: Buffer.from(gsm7Encode("from SMSC €")!) });
    expect(r.command_status).toBe(0);
    expect(messages[0]).toMatchObject({ peer: "smsc-b", peer_kind: "bind", text: "from SMSC €", command: "deliver_sm" });
    // receipt through the outbound bind, decimal text id converted to the hex form of submit_sm_resp
    expect(await registry.metrics()).toMatch(/didgate_smpp_bind_state\{peer="smsc-b",side="client"\} 1/);
  });

  it("takes a deliver_sm that comes in the same read as bind_resp (an SMSC flushing queued receipts at bind)", async () => {
    // a raw SMSC: bind_transceiver_resp and a deliver_sm written as one buffer
    const answers: Pdu[] = [];
    const server = await startRawSmsc((p, sock) => {
      if (p.command_id === CMD.bind_transceiver) {
        const resp = new Pdu(CMD.bind_transceiver_resp, p.sequence_number);
        resp.system_id = "rawsmsc";
        const dr = new Pdu(CMD.deliver_sm, 1);
        Object.assign(dr, addr);
        dr.short_message = Buffer.from("queued at the SMSC");
        sock.write(Buffer.concat([encodePdu(resp), encodePdu(dr)]));
      } else if (p.isResponse) answers.push(p);
    });
    cleanup.push(() => server.close());
    const { edge, messages } = edgeFor({ port: server.port });
    await edge.start();
    await waitFor(() => answers.find((a) => a.command_id === CMD.deliver_sm_resp), 5000, "deliver_sm_resp");
    expect(answers.find((a) => a.command_id === CMD.deliver_sm_resp)!.command_status).toBe(0);
    expect(messages[0]).toMatchObject({ peer: "smsc-b", text: "queued at the SMSC" });
  });

  it("an SMSC that takes the bind and drops the link at once is dialled again with a growing delay, not at the minimum each time", async () => {
    let binds = 0;
    const server = await startRawSmsc((p, sock) => {
      if (p.command_id !== CMD.bind_transceiver) return;
      binds++;
      sock.end(encodePdu(new Pdu(CMD.bind_transceiver_resp, p.sequence_number)));
    });
    cleanup.push(() => server.close());
    const { edge, client, registry } = edgeFor({ port: server.port, reconnect_min_s: 0.01, reconnect_max_s: 60 });
    await edge.start();
    await waitFor(() => binds >= 5 || undefined, 10_000, "five binds");
    // the backoff's step counts on across binds (the link never stayed up): 0.01, 0.02, 0.04, … s
    expect((client as unknown as { attempt: number }).attempt).toBeGreaterThanOrEqual(4);
    expect(await registry.metrics()).toMatch(/didgate_smpp_reconnects_total\{peer="smsc-b"\} [4-9]/);
  });

  it("an SMSC that sends part of a PDU and no more is cut off after pdu_timeout_s, and the link bound again", async () => {
    let binds = 0;
    const server = await startRawSmsc((p, sock) => {
      if (p.command_id !== CMD.bind_transceiver) return;
      binds++;
      // the bind's answer, then the first 10 bytes of a deliver_sm header, and silence
      sock.write(Buffer.concat([encodePdu(new Pdu(CMD.bind_transceiver_resp, p.sequence_number)), encodePdu(new Pdu(CMD.deliver_sm, 7)).subarray(0, 10)]));
    });
    cleanup.push(() => server.close());
    const { edge } = edgeFor({ port: server.port, enquire_link_s: 600 }, { pdu_timeout_s: 0.3 });
    await edge.start();
    await waitFor(() => binds >= 2 || undefined, 10_000, "a second bind after the partial PDU");
  });

  it("converts receipt ids per peer and answers the SMSC's enquire_link", async () => {
    const s = await smsc();
    const { edge, receipts, client } = edgeFor({ port: s.port, mode: "receiver", receipt_id_format: "dec", message_id_format: "hex" });
    await edge.start();
    await client.whenBound(5000);
    expect((await s.waitBound()).command).toBe("bind_receiver");
    await s.send("deliver_sm", { ...addr, esm_class: 0x04, short_message: Buffer.from("id:3735928559 sub:001 dlvrd:001 submit date:2611221000 done date:2611221001 stat:DELIVRD err:000 text:x") });
    expect(receipts[0]).toMatchObject({ message_id: "deadbeef", text_id: "3735928559", delivered: true, peer: "smsc-b" });
    // an SMSC's words are bounded: an id longer than any submit_sm_resp carries is no id (and is
    // not converted: a 65,000-digit number cost 12 ms a receipt), err must be a short code,
    // stat and the dates are cut or left out
    const hostile = `id:${"9".repeat(5000)} sub:${"1".repeat(50)} dlvrd:001 submit date:2611221000 done date:${"2".repeat(40)} stat:${"X".repeat(40)} err:${"0".repeat(20)}\u001b text:${"t".repeat(300)}`;
    await s.send("deliver_sm", { ...addr, esm_class: 0x04, message_payload: Buffer.from(hostile) });
    await s.send("deliver_sm", { ...addr, esm_class: 0x04, short_message: Buffer.from("id:ab stat:DELIVRD err:0x1F"), receipted_message_id: "r".repeat(100) });
    await waitFor(() => receipts[2], 5000, "two more receipts");
    const h = receipts[1]!;
    expect([h.message_id, h.text_id, h.sub, h.done_date, h.stat, h.err, h.text?.length]).toEqual(["", undefined, undefined, undefined, "UNKNOWN", undefined, 160]);
    expect(h.submit_date).toBe("2611221000");
    // a receipted_message_id TLV too long: the text's id is taken
    expect([receipts[2]!.message_id, receipts[2]!.err]).toEqual(["ab", "0x1F"]);
    const el = await s.send("enquire_link", {});
    expect([el.command, el.command_status]).toEqual(["enquire_link_resp", 0]);
  });

  it("sends enquire_link on its interval", async () => {
    const s = await smsc();
    const { edge, client } = edgeFor({ port: s.port, enquire_link_s: 0.1 });
    await edge.start();
    await client.whenBound(5000);
    await waitFor(() => s.received.filter((p) => p.command === "enquire_link").length >= 2, 5000, "enquire_links");
  });

  it("rebinds after the SMSC unbinds, and after the SMSC restarts", async () => {
    const s = await smsc();
    const { edge, client, messages } = edgeFor({ port: s.port });
    await edge.start();
    await client.whenBound(5000);
    const first = await s.waitBound();
    const unbound = await s.send("unbind", {}, first);
    expect(unbound.command).toBe("unbind_resp");
    await waitFor(() => s.binds.length === 1 && s.binds[0] !== first, 5000, "rebind after unbind");
    // restart: close the SMSC, start a new one on the same port
    const port = s.port;
    await s.close();
    await waitFor(() => client.state !== "bound", 5000, "link loss");
    const s2 = await smsc({ port });
    await s2.waitBound(5000);
    await client.whenBound(5000);
    expect((await s2.send("deliver_sm", { ...addr, short_message: Buffer.from("again") })).command_status).toBe(0);
    expect(messages.map((m) => m.text)).toEqual(["again"]);
  });

  it("closes a link whose peer stops answering enquire_link, and reconnects", async () => {
    const s = await smsc({ ignoreEnquireLink: true });
    const { edge, client } = edgeFor({ port: s.port, enquire_link_s: 0.1 }, { response_timeout_s: 0.2 });
    await edge.start();
    await client.whenBound(5000);
    const first = await s.waitBound();
    await waitFor(() => s.binds.length > 0 && s.binds[s.binds.length - 1] !== first, 5000, "reconnect after dead link");
  });

  it("keeps retrying with backoff when the SMSC refuses the bind", async () => {
    const s = await smsc({ password: "other" });
    const { edge, client, registry } = edgeFor({ port: s.port });
    await edge.start();
    await waitFor(() => s.received.filter((p) => p.command === "bind_transceiver").length >= 3, 5000, "bind retries");
    expect(client.isBound).toBe(false);
    expect(client.lastError).toContain("0xe");
    expect(await registry.metrics()).toMatch(/didgate_smpp_reconnects_total\{peer="smsc-b"\} ([2-9]|\d\d)/);
  });

  it("submits through a transceiver bind and classifies the answer", async () => {
    const s = await smsc();
    const { edge, client } = edgeFor({ port: s.port });
    await edge.start();
    await client.whenBound(5000);
    const msg = { source: { addr: "15125550100", ton: 1, npi: 1 }, destination: { addr: "447700900123", ton: 1, npi: 1 }, text: "hi 😀" };
    expect(await edge.submit("smsc-b", msg)).toEqual({ outcome: "ok", status: 0, message_ids: ["m1"] });
    const sub = s.received.find((p) => p.command === "submit_sm")!;
    expect(sub.data_coding).toBe(8);
    expect(await edge.submit("nope", msg)).toMatchObject({ outcome: "permanent", error: "unknown_bind" });
  });

  it("maps temporary statuses per peer (Vonage-like list)", async () => {
    const s = await smsc({ submitStatus: 0x45 });
    const msg = { source: { addr: "1", ton: 0, npi: 0 }, destination: { addr: "2", ton: 0, npi: 0 }, text: "x" };
    const def = edgeFor({ port: s.port });
    await def.edge.start();
    await def.client.whenBound(5000);
    expect(await def.edge.submit("smsc-b", msg)).toMatchObject({ outcome: "permanent", status: 0x45 });
    const vonage = edgeFor({ port: s.port, temporary_statuses: [0x08, 0x14, 0x45, 0x58, 0x67, 0xfe, 0xff] });
    await vonage.edge.start();
    await vonage.client.whenBound(5000);
    expect(await vonage.edge.submit("smsc-b", msg)).toMatchObject({ outcome: "temporary", status: 0x45 });
  });

  it("a receiver bind cannot submit", async () => {
    const s = await smsc();
    const { edge, client } = edgeFor({ port: s.port, mode: "receiver" });
    await edge.start();
    await client.whenBound(5000);
    expect(await edge.submit("smsc-b", { source: { addr: "1", ton: 0, npi: 0 }, destination: { addr: "2", ton: 0, npi: 0 }, text: "x" })).toMatchObject({
      outcome: "temporary",
      error: "receiver_bind",
    });
  });

  it("drain answers new PDUs with temporary failure and unbinds politely", async () => {
    const s = await smsc();
    const { edge, client, setAnswer, messages } = edgeFor({ port: s.port });
    await edge.start();
    await client.whenBound(5000);
    let release!: (r: AcceptResult) => void;
    setAnswer(() => new Promise((r) => (release = r)));
    const pending = s.send("deliver_sm", { ...addr, short_message: Buffer.from("in flight") });
    await waitFor(() => messages.length === 1);
    const drained = edge.drain(3000);
    const late = await s.send("deliver_sm", { ...addr, short_message: Buffer.from("late") });
    expect(late.command_status).toBe(0x64);
    release({ status: "accepted" });
    expect((await pending).command_status).toBe(0);
    await drained;
    expect(s.received.some((p) => p.command === "unbind")).toBe(true);
    expect(messages).toHaveLength(1);
  });
});

describe("TLS", () => {
  let dir: string;
  let key: Buffer;
  let cert: Buffer;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "didgate-smpp-tls-"));
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ], { stdio: "ignore" });
    key = readFileSync(join(dir, "key.pem"));
    cert = readFileSync(join(dir, "cert.pem"));
    return () => rmSync(dir, { recursive: true, force: true });
  });

  it("verifies the certificate by default, binds with the CA or with tls_verify false", async () => {
    const s = await smsc({ tls: { key, cert } });
    const strict = edgeFor({ port: s.port, tls: true });
    await strict.edge.start();
    await waitFor(() => strict.client.lastError !== "", 5000, "TLS failure");
    expect(strict.client.isBound).toBe(false);
    expect(s.binds).toHaveLength(0);
    const withCa = edgeFor({ port: s.port, tls: true, tls_ca: cert });
    await withCa.edge.start();
    expect(await withCa.client.whenBound(5000)).toBe(true);
    const noVerify = edgeFor({ port: s.port, tls: true, tls_verify: false });
    await noVerify.edge.start();
    expect(await noVerify.client.whenBound(5000)).toBe(true);
    expect((await s.send("deliver_sm", { ...addr, short_message: Buffer.from("over tls") })).command_status).toBe(0);
    expect(noVerify.messages[0]?.text).toBe("over tls");
  });

  it("serves TLS to ESMEs", async () => {
    const server = new SmppService({
      config: { listen: "127.0.0.1:0", tls: { key, cert }, accounts: [{ system_id: "c", password: "p", role: "carrier" }] },
      logger,
      registry: new Registry(),
      onMessage: async () => ({ status: "accepted" }),
      onReceipt: () => {},
    });
    await server.start();
    cleanup.push(() => server.close());
    // didgate's own client binding to didgate's TLS server (the npm smpp client is exercised above)
    const c = edgeFor({ port: server.address()!.port, tls: true, tls_ca: cert, system_id: "c", password: "p" });
    await c.edge.start();
    expect(await c.client.whenBound(5000)).toBe(true);
    expect(server.isBound("c")).toBe(true);
  });
});
