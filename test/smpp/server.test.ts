/**
 * didgate's SMPP server against ESMEs built on the npm `smpp` package, over loopback TCP.
 */
import net from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import pino from "pino";
import { Registry } from "prom-client";
import { SmppService } from "../../src/smpp/service.js";
import { CMD, STATUS } from "../../src/smpp/constants.js";
import { encodeHeader, encodePdu, Pdu } from "../../src/smpp/codec.js";
import { gsm7Encode, ucs2Encode } from "../../src/smpp/charset.js";
import type { AcceptResult, InboundSms, Receipt } from "../../src/smpp/types.js";
import { connectEsme, waitFor, type TestEsme } from "../helpers/smsc.js";

const logger = pino({ level: "silent" });

let edge: SmppService;
let registry: Registry;
let port: number;
const messages: InboundSms[] = [];
const receipts: Receipt[] = [];
let answer: (m: InboundSms) => Promise<AcceptResult> = async () => ({ status: "accepted" });
const open: TestEsme[] = [];

async function esme(o: { localAddress?: string; deliverStatus?: number } = {}): Promise<TestEsme> {
  const e = await connectEsme(port, o);
  open.push(e);
  return e;
}

async function carrier(): Promise<TestEsme> {
  const e = await esme();
  const r = await e.bind("bind_transceiver", "smsc-a", "secret1");
  expect(r.command_status).toBe(0);
  return e;
}

beforeAll(async () => {
  registry = new Registry();
  edge = new SmppService({
    config: {
      listen: "127.0.0.1:0",
      handler_timeout_s: 0.5,
      lockout: { max_failures: 3, window_s: 60, duration_s: 60 },
      accounts: [
        { system_id: "smsc-a", password: "secret1", role: "carrier", sources: ["127.0.0.0/8"] },
        { system_id: "smsc-v", password: "secret2", role: "carrier", temp_fail_status: 0x58 },
        { system_id: "only2", password: "pw2", role: "carrier", sources: ["127.0.0.2"] },
        { system_id: "lockme", password: "right", role: "carrier" },
        { system_id: "app-1", password: "apppw", role: "app" },
        { system_id: "app-sub", password: "apppw", role: "app", may_submit: true },
      ],
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
  await edge.start();
  port = edge.address()!.port;
});

afterEach(async () => {
  answer = async () => ({ status: "accepted" });
  messages.length = 0;
  receipts.length = 0;
  await Promise.all(open.splice(0).map((e) => e.close()));
});

afterAll(async () => {
  await edge.close();
});

const addr = { source_addr_ton: 1, source_addr_npi: 1, source_addr: "447700900123", dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: "15125550100" };

describe("carrier ESME sending messages", () => {
  it("decodes GSM 7-bit with extension characters (€ [ ])", async () => {
    const e = await carrier();
    const r = await e.send("deliver_sm", { ...addr, data_coding: 0, short_message: Buffer.from(gsm7Encode("Price: €5 [ok] {x} ~^|\\")!) });
    expect(r.command_status).toBe(0);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({
      peer: "smsc-a",
      peer_kind: "account",
      command: "deliver_sm",
      text: "Price: €5 [ok] {x} ~^|\\",
      encoding: "gsm7",
      source: { addr: "447700900123", ton: 1, npi: 1 },
      destination: { addr: "15125550100", ton: 1, npi: 1 },
      parts: 1,
      partial: false,
    });
  });

  it("decodes UCS2 with emoji, Latin-1, binary and an unknown data_coding", async () => {
    const e = await carrier();
    await e.send("deliver_sm", { ...addr, data_coding: 8, short_message: ucs2Encode("Hi 😀 Привет") });
    await e.send("deliver_sm", { ...addr, data_coding: 3, short_message: Buffer.from("Grüße, café", "latin1") });
    await e.send("deliver_sm", { ...addr, data_coding: 4, short_message: Buffer.from([0, 1, 2, 255]) });
    await e.send("deliver_sm", { ...addr, data_coding: 6, short_message: Buffer.from([0xb0, 0xb1]) });
    await e.send("deliver_sm", { ...addr, data_coding: 0xf1, short_message: Buffer.from(gsm7Encode("class 1")!) });
    expect(messages.map((m) => [m.encoding, m.text ?? m.binary!.toString("hex"), m.data_coding])).toEqual([
      ["ucs2", "Hi 😀 Привет", 8],
      ["latin1", "Grüße, café", 3],
      ["binary", "000102ff", 4],
      ["binary", "b0b1", 6],
      ["gsm7", "class 1", 0xf1],
    ]);
    expect(messages[4]!.dcs.message_class).toBe(1);
  });

  it("submit_sm gets didgate's message_id", async () => {
    const e = await carrier();
    const r = await e.send("submit_sm", { ...addr, short_message: Buffer.from(gsm7Encode("hi")!) });
    expect(r.command_status).toBe(0);
    expect(r.message_id).toBe(messages[0]!.message_id);
    expect(messages[0]!.command).toBe("submit_sm");
  });

  it("reassembles 3 parts sent out of order with a duplicate (8-bit reference)", async () => {
    const e = await carrier();
    const part = (seq: number, text: string) =>
      e.send("deliver_sm", { ...addr, esm_class: 0x40, data_coding: 0, short_message: Buffer.concat([Buffer.from([5, 0, 3, 0x2a, 3, seq]), Buffer.from(gsm7Encode(text)!)]) });
    let release!: (r: AcceptResult) => void;
    answer = () => new Promise((r) => (release = r));
    expect((await part(3, "three €")).command_status).toBe(0);
    expect((await part(1, "one [")).command_status).toBe(0);
    expect((await part(3, "three €")).command_status).toBe(0); // duplicate
    expect(messages).toHaveLength(0);
    let done = false;
    const last = part(2, "two ] ").then((r) => {
      done = true;
      return r;
    });
    await waitFor(() => messages.length === 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false); // the final part's answer waits for onMessage
    release({ status: "accepted" });
    expect((await last).command_status).toBe(0);
    expect(messages[0]).toMatchObject({ text: "one [two ] three €", parts: 3, total_parts: 3, partial: false });
  });

  it("reassembles with a 16-bit reference (UCS2 surrogate pair split across parts) and with SAR TLVs", async () => {
    const e = await carrier();
    const u = ucs2Encode("ab😀cd");
    const p16 = (seq: number, body: Buffer) =>
      e.send("deliver_sm", { ...addr, esm_class: 0x40, data_coding: 8, short_message: Buffer.concat([Buffer.from([6, 8, 4, 0x12, 0x34, 2, seq]), body]) });
    await p16(2, u.subarray(6));
    await p16(1, u.subarray(0, 6)); // ends in the middle of the pair
    const sar = (seq: number, text: string) =>
      e.send("submit_sm", { ...addr, data_coding: 0, short_message: Buffer.from(gsm7Encode(text)!), sar_msg_ref_num: 0x0102, sar_total_segments: 2, sar_segment_seqnum: seq });
    await sar(2, "world");
    await sar(1, "hello ");
    expect(messages.map((m) => [m.text, m.parts])).toEqual([
      ["ab😀cd", 2],
      ["hello world", 2],
    ]);
  });

  it("hands delivery receipts to onReceipt, never to onMessage", async () => {
    const e = await carrier();
    const text = "id:1234567890 sub:001 dlvrd:001 submit date:2611221000 done date:2611221001 stat:DELIVRD err:000 text:hello";
    const r = await e.send("deliver_sm", { ...addr, esm_class: 0x44, short_message: Buffer.from(text), receipted_message_id: "499602D2", message_state: 2 });
    expect(r.command_status).toBe(0);
    await e.send("deliver_sm", { ...addr, esm_class: 0x04, short_message: Buffer.from("id:77 stat:UNDELIV err:001") });
    expect(messages).toHaveLength(0);
    expect(receipts).toHaveLength(2);
    expect(receipts[0]).toMatchObject({ kind: "smsc_receipt", message_id: "499602D2", text_id: "1234567890", stat: "DELIVRD", message_state: 2, final: true, delivered: true, err: "000", text: "hello" });
    expect(receipts[1]).toMatchObject({ message_id: "77", stat: "UNDELIV", final: true, delivered: false });
  });

  it("answers each AcceptResult with its status, and temporary on throw or timeout", async () => {
    const e = await carrier();
    const send = () => e.send("deliver_sm", { ...addr, short_message: Buffer.from("x") });
    answer = async () => ({ status: "invalid_destination" });
    expect((await send()).command_status).toBe(STATUS.ESME_RINVDSTADR);
    answer = async () => ({ status: "permanent" });
    expect((await send()).command_status).toBe(STATUS.ESME_RX_R_APPN);
    answer = async () => ({ status: "temporary" });
    expect((await send()).command_status).toBe(STATUS.ESME_RX_T_APPN);
    answer = async () => {
      throw new Error("boom");
    };
    expect((await send()).command_status).toBe(STATUS.ESME_RX_T_APPN);
    answer = () => new Promise(() => {}); // never settles: handler_timeout_s 0.5
    expect((await send()).command_status).toBe(STATUS.ESME_RX_T_APPN);
    // per-account temporary status (a Vonage-like peer retries on 0x58)
    const v = await esme();
    expect((await v.bind("bind_transmitter", "smsc-v", "secret2")).command_status).toBe(0);
    answer = async () => ({ status: "temporary" });
    expect((await v.send("submit_sm", { ...addr, short_message: Buffer.from("x") })).command_status).toBe(0x58);
  });
});

describe("binds", () => {
  it("refuses a wrong password and an unknown system_id with the same status, and closes", async () => {
    const e = await esme({ localAddress: "127.0.0.5" });
    const r = await e.bind("bind_transceiver", "smsc-a", "wrong");
    expect(r.command_status).toBe(STATUS.ESME_RBINDFAIL);
    await e.closed;
    const u = await esme({ localAddress: "127.0.0.5" });
    expect((await u.bind("bind_transceiver", "nobody", "x")).command_status).toBe(STATUS.ESME_RBINDFAIL);
  });

  it("refuses a disallowed source address and accepts the allowed one", async () => {
    const from1 = await esme({ localAddress: "127.0.0.1" });
    expect((await from1.bind("bind_transceiver", "only2", "pw2")).command_status).toBe(STATUS.ESME_RBINDFAIL);
    const from2 = await esme({ localAddress: "127.0.0.2" });
    expect((await from2.bind("bind_transceiver", "only2", "pw2")).command_status).toBe(0);
  });

  it("locks an address out after repeated failures", async () => {
    for (let i = 0; i < 3; i++) {
      const e = await esme({ localAddress: "127.0.0.3" });
      expect((await e.bind("bind_transceiver", "lockme", "bad" + i)).command_status).toBe(STATUS.ESME_RBINDFAIL);
    }
    const e = await esme({ localAddress: "127.0.0.3" });
    expect((await e.bind("bind_transceiver", "lockme", "right")).command_status).toBe(STATUS.ESME_RBINDFAIL);
    const other = await esme({ localAddress: "127.0.0.4" });
    expect((await other.bind("bind_transceiver", "lockme", "right")).command_status).toBe(0);
  });

  it("enforces bind state: ESME_RINVBNDSTS before bind, ESME_RALYBND after, bind types per role", async () => {
    const e = await esme();
    expect((await e.send("deliver_sm", { ...addr, short_message: Buffer.from("x") })).command_status).toBe(STATUS.ESME_RINVBNDSTS);
    expect((await e.bind("bind_transceiver", "smsc-a", "secret1")).command_status).toBe(0);
    expect((await e.bind("bind_transceiver", "smsc-a", "secret1")).command_status).toBe(STATUS.ESME_RALYBND);
    const rx = await esme();
    expect((await rx.bind("bind_receiver", "smsc-a", "secret1")).command_status).toBe(STATUS.ESME_RBINDFAIL);
    const app = await esme();
    expect((await app.bind("bind_transceiver", "app-1", "apppw")).command_status).toBe(0);
    expect((await app.send("submit_sm", { ...addr, short_message: Buffer.from("x") })).command_status).toBe(STATUS.ESME_RX_R_APPN);
    const appTx = await esme();
    expect((await appTx.bind("bind_transmitter", "app-1", "apppw")).command_status).toBe(STATUS.ESME_RBINDFAIL);
  });
});

describe("robustness on a live session", () => {
  it("answers a malformed PDU with generic_nack and handles the next PDU", async () => {
    const e = await carrier();
    const bad = Buffer.concat([encodeHeader(CMD.deliver_sm, 0, 4242), Buffer.from("\0\x01\x01" + "9".repeat(90))]);
    bad.writeUInt32BE(bad.length, 0);
    e.raw(bad);
    const nack = await waitFor(() => e.received.find((p) => p.command === "generic_nack"));
    expect(nack.command_status).toBe(STATUS.ESME_RINVSRCADR);
    expect(nack.sequence_number).toBe(4242);
    const r = await e.send("deliver_sm", { ...addr, short_message: Buffer.from("after") });
    expect(r.command_status).toBe(0);
    expect(messages.map((m) => m.text)).toEqual(["after"]);
  });

  it("answers an unknown command with generic_nack ESME_RINVCMDID and carries on", async () => {
    const e = await carrier();
    e.raw(encodeHeader(0x00000777, 0, 99));
    const nack = await waitFor(() => e.received.find((p) => p.command === "generic_nack"));
    expect([nack.command_status, nack.sequence_number]).toEqual([STATUS.ESME_RINVCMDID, 99]);
    expect((await e.send("enquire_link", {})).command).toBe("enquire_link_resp");
  });

  it("closes the session cleanly on a command_length over the maximum", async () => {
    const e = await carrier();
    const h = encodeHeader(CMD.deliver_sm, 0, 5);
    h.writeUInt32BE(70000, 0);
    e.raw(h);
    await e.closed;
    expect(e.received.find((p) => p.command === "generic_nack")?.command_status).toBe(STATUS.ESME_RINVCMDLEN);
  });

  it("accepts a 60 KB message_payload (over the npm package's 16 KB cap)", async () => {
    const e = await carrier();
    const p = new Pdu(CMD.deliver_sm, 77);
    Object.assign(p, addr);
    p.data_coding = 3;
    p.tlvs = [{ tag: 0x0424, value: Buffer.alloc(60000, 0x61) }];
    e.raw(encodePdu(p));
    await waitFor(() => messages.length === 1);
    expect(messages[0]!.text!.length).toBe(60000);
  });
});

describe("submits of an app account", () => {
  it("a submit_sm typed as a receipt or an acknowledgement is refused with 0x43, not accepted and dropped; a plain one is a message", async () => {
    const e = await esme();
    expect((await e.bind("bind_transceiver", "app-sub", "apppw")).command_status).toBe(0);
    for (const esm of [0x04, 0x08, 0x20]) expect((await e.send("submit_sm", { ...addr, esm_class: esm, short_message: "id:1 stat:DELIVRD" })).command_status, `esm_class ${esm}`).toBe(STATUS.ESME_RINVESMCLASS);
    expect(messages).toHaveLength(0);
    expect(receipts).toHaveLength(0);
    expect((await e.send("submit_sm", { ...addr, short_message: "hello" })).command_status).toBe(0);
    expect(messages.map((m) => m.text)).toEqual(["hello"]);
  });
});

describe("deliver_sm to app accounts", () => {
  it("delivers round robin across an app's binds and reports outcomes", async () => {
    const a = await esme();
    const b = await esme();
    expect((await a.bind("bind_receiver", "app-1", "apppw")).command_status).toBe(0);
    expect((await b.bind("bind_transceiver", "app-1", "apppw")).command_status).toBe(0);
    const msg = { source: { addr: "447700900123", ton: 1, npi: 1 }, destination: { addr: "15125550100", ton: 1, npi: 1 }, text: "hello €" };
    expect(await edge.deliverToApp("app-1", msg)).toMatchObject({ outcome: "ok", status: 0 });
    expect(await edge.deliverToApp("app-1", msg)).toMatchObject({ outcome: "ok" });
    const da = a.received.filter((p) => p.command === "deliver_sm");
    const db = b.received.filter((p) => p.command === "deliver_sm");
    expect([da.length, db.length]).toEqual([1, 1]);
    expect(da[0]!.destination_addr).toBe("15125550100");
    // a long text split with UDH
    const long = await edge.deliverToApp("app-1", { ...msg, text: "x".repeat(200), long: "udh", reference: 9 });
    expect(long.outcome).toBe("ok");
    expect(long.message_ids).toHaveLength(2);
    expect(await edge.deliverToApp("nobody", msg)).toMatchObject({ outcome: "permanent" });
  });

  it("maps an app's error answer to temporary or permanent", async () => {
    const t = await esme({ deliverStatus: 0x58 });
    expect((await t.bind("bind_receiver", "app-1", "apppw")).command_status).toBe(0);
    const msg = { source: { addr: "1", ton: 0, npi: 0 }, destination: { addr: "2", ton: 0, npi: 0 }, text: "x" };
    expect(await edge.deliverToApp("app-1", msg)).toMatchObject({ outcome: "temporary", status: 0x58 });
    await t.close();
    await waitFor(() => !edge.isBound("app-1"));
    expect(await edge.deliverToApp("app-1", msg)).toMatchObject({ outcome: "temporary", error: "not_bound" });
    const p = await esme({ deliverStatus: 0x0b });
    expect((await p.bind("bind_receiver", "app-1", "apppw")).command_status).toBe(0);
    expect(await edge.deliverToApp("app-1", msg)).toMatchObject({ outcome: "permanent", status: 0x0b });
  });

  it("receipts and messages pass over a bind that stopped answering while another bind answers", async () => {
    // bind 1: binds, then never answers a deliver_sm (a hung app)
    const hung = net.connect({ host: "127.0.0.1", port });
    await new Promise<void>((r) => hung.once("connect", () => r()));
    let hungGot = 0;
    let bindResp = false;
    hung.on("data", (d: Buffer) => {
      for (let pos = 0; pos + 16 <= d.length; pos += d.readUInt32BE(pos)) {
        const id = d.readUInt32BE(pos + 4);
        if (id === 0x80000009) bindResp = true;
        if (id === CMD.deliver_sm) hungGot++;
      }
    });
    const bind = new Pdu(CMD.bind_transceiver, 1);
    bind.system_id = "app-1";
    bind.password = "apppw";
    hung.write(encodePdu(bind));
    await waitFor(() => bindResp, 2000, "hung bind bound");
    // bind 2: answers
    const ok = await esme();
    expect((await ok.bind("bind_transceiver", "app-1", "apppw")).command_status).toBe(0);
    try {
      const receipt = { source: { addr: "15125550100", ton: 1, npi: 1 }, destination: { addr: "447700900123", ton: 1, npi: 1 }, text: "id:1 stat:DELIVRD", message_id: "1", message_state: 2 };
      const msg = { source: { addr: "447700900123", ton: 1, npi: 1 }, destination: { addr: "15125550100", ton: 1, npi: 1 }, text: "hi" };
      const answered: string[] = [];
      for (let i = 0; i < 6; i++) {
        const r = i % 2 === 0 ? edge.server!.sendReceipt("app-1", { ...receipt, message_id: String(i) }) : edge.deliverToApp("app-1", msg);
        // one that went to the hung bind waits for its response timeout: move on
        await Promise.race([r.then((x) => answered.push(x.outcome)), new Promise((res) => setTimeout(res, 300))]);
      }
      expect(hungGot).toBeLessThanOrEqual(1);
      expect(answered.filter((o) => o === "ok").length).toBeGreaterThanOrEqual(5);
      expect(ok.received.filter((p) => p.command === "deliver_sm").length).toBeGreaterThanOrEqual(5);
    } finally {
      hung.destroy();
    }
  });
});

describe("metrics", () => {
  it("counts PDUs by command and status and shows bind state", async () => {
    const e = await carrier();
    await e.send("deliver_sm", { ...addr, short_message: Buffer.from("m") });
    const text = await registry.metrics();
    expect(text).toMatch(/didgate_smpp_pdus_total\{peer="smsc-a",direction="in",command="deliver_sm",status="0x00"\} \d+/);
    expect(text).toMatch(/didgate_smpp_pdus_total\{peer="smsc-a",direction="out",command="deliver_sm_resp",status="0x00"\} \d+/);
    expect(text).toMatch(/didgate_smpp_bind_state\{peer="smsc-a",side="server"\} 1/);
    expect(text).toContain("didgate_smpp_reassembly_buffers");
    expect(text).toMatch(/didgate_smpp_window_in_flight\{peer="smsc-a",direction="in"\} 0/);
  });
});
