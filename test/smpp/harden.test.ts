/**
 * Hostile peers against didgate's SMPP server, over loopback TCP: raw sockets (what a scanner
 * sends) and ESMEs built on the npm `smpp` package (what a carrier sends).
 *  - label values from the network are a closed set: a flood of unknown command_ids and statuses
 *    before bind adds no series;
 *  - connection caps: per unknown address, global, and capacity reserved for configured sources;
 *    a PDU trickled in a byte at a time is cut off;
 *  - lockout per (address, system_id), one status for every refused bind;
 *  - error responses carry an empty message_id (byte level);
 *  - short_message together with message_payload is refused.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CMD, STATUS } from "../../src/smpp/constants.js";
import { encodeHeader, encodePdu, Pdu } from "../../src/smpp/codec.js";
import { SmppService } from "../../src/smpp/service.js";
import type { AcceptResult, InboundSms } from "../../src/smpp/types.js";
import { connectEsme, waitFor, type TestEsme } from "../helpers/smsc.js";

/** What the server logs at info and above (the lines a peer can provoke must stay few). */
const logLines: Array<{ level: number; msg: string }> = [];
const logger = pino({ level: "info" }, { write: (s: string) => void logLines.push(JSON.parse(s) as { level: number; msg: string }) });

let edge: SmppService;
let registry: Registry;
let port: number;
const messages: InboundSms[] = [];
let answer: (m: InboundSms) => Promise<AcceptResult> = async () => ({ status: "accepted" });
const open: TestEsme[] = [];
const sockets: net.Socket[] = [];

const MAX = 60;
const RESERVED = 20;
const PER_SOURCE = 5;

beforeAll(async () => {
  registry = new Registry();
  edge = new SmppService({
    config: {
      listen: "127.0.0.1:0",
      handler_timeout_s: 0.5,
      bind_timeout_s: 30,
      pdu_timeout_s: 1,
      max_connections: MAX,
      max_connections_per_source: PER_SOURCE,
      reserved_connections: RESERVED,
      lockout: { max_failures: 3, window_s: 60, duration_s: 300 },
      accounts: [
        { system_id: "carrier-a", password: "right-a", role: "carrier", sources: ["127.0.0.1", "127.0.0.2"] },
        { system_id: "carrier-b", password: "right-b", role: "carrier", sources: ["127.0.0.1", "127.0.0.2"] },
      ],
    },
    logger,
    registry,
    onMessage: (m) => {
      messages.push(m);
      return answer(m);
    },
    onReceipt: () => {},
  });
  await edge.start();
  port = edge.address()!.port;
});

afterEach(async () => {
  answer = async () => ({ status: "accepted" });
  messages.length = 0;
  await Promise.all(open.splice(0).map((e) => e.close()));
  for (const s of sockets.splice(0)) s.destroy();
  await waitFor(() => ((edge.server as unknown as { connTotal?: number }).connTotal ?? 0) === 0, 5000, "connections closed");
});

afterAll(async () => {
  await edge.close();
});

async function esme(localAddress = "127.0.0.1"): Promise<TestEsme> {
  const e = await connectEsme(port, { localAddress });
  open.push(e);
  return e;
}

/** A raw connection bound as carrier-a (its bind_resp received). */
async function boundCarrier(): Promise<Awaited<ReturnType<typeof raw>>> {
  const c = await raw();
  const bind = new Pdu(CMD.bind_transceiver, 1);
  bind.system_id = "carrier-a";
  bind.password = "right-a";
  c.s.write(encodePdu(bind));
  await waitFor(() => pdus(c.data()).length >= 1);
  return c;
}

/** A raw TCP connection; `data` collects every byte received, `closed` resolves on close. */
function raw(localAddress = "127.0.0.1"): Promise<{ s: net.Socket; data: () => Buffer; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: "127.0.0.1", port, localAddress });
    sockets.push(s);
    let closedResolve!: () => void;
    const closed = new Promise<void>((r) => (closedResolve = r));
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("close", () => closedResolve());
    s.on("error", () => {});
    s.once("connect", () => resolve({ s, data: () => Buffer.concat(chunks), closed }));
    s.once("error", reject);
  });
}

/** Split a byte stream into PDUs. */
function pdus(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let pos = 0; pos + 4 <= b.length; ) {
    const len = b.readUInt32BE(pos);
    if (len < 16 || pos + len > b.length) break;
    out.push(b.subarray(pos, pos + len));
    pos += len;
  }
  return out;
}

const addr = { source_addr_ton: 1, source_addr_npi: 1, source_addr: "447700900123", dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: "15125550100" };

function pduSeries(text: string): number {
  return text.split("\n").filter((l) => l.startsWith("didgate_smpp_pdus_total{")).length;
}

function rssMb(): number {
  return Math.round(process.memoryUsage().rss / 1048576);
}

describe("metric labels from the network are a closed set", () => {
  it("20,000 distinct unknown command_ids and statuses before bind add no series", async () => {
    const c = await raw();
    const before = pduSeries(await registry.metrics());
    const rss0 = rssMb();
    const N = 20_000;
    const buf = Buffer.alloc(16 * N);
    for (let i = 0; i < N; i++) {
      // unknown request ids (0x00001000+i) and responses with junk statuses (0x80001000+i)
      const id = i % 2 === 0 ? 0x00001000 + i : (0x80001000 + i) >>> 0;
      buf.writeUInt32BE(16, i * 16);
      buf.writeUInt32BE(id, i * 16 + 4);
      buf.writeUInt32BE(0x00010000 + i, i * 16 + 8);
      buf.writeUInt32BE(i + 1, i * 16 + 12);
    }
    c.s.write(buf);
    // every one gets a generic_nack ESME_RINVCMDID (a response to nothing we sent is no response)
    await waitFor(() => pdus(c.data()).length >= N, 20_000, "generic_nacks");
    const text = await registry.metrics();
    const after = pduSeries(text);
    // in: the "other" command with the "other" status; out: generic_nack ESME_RINVCMDID
    expect(after - before).toBeLessThanOrEqual(2);
    expect(text).toMatch(/didgate_smpp_pdus_total\{peer="-",direction="in",command="other",status="other"\} 20000/);
    expect(text).toMatch(/didgate_smpp_pdus_total\{peer="-",direction="out",command="generic_nack",status="0x03"\} 20000/);
    expect(text.length).toBeLessThan(64 * 1024);
    console.log(`flood of ${N} unknown PDUs: RSS ${rss0} MB -> ${rssMb()} MB, /metrics ${text.length} bytes, pdus series ${before} -> ${after}`);
  });

  it("a bind with an invented system_id never becomes a label", async () => {
    for (let i = 0; i < 3; i++) {
      const e = await esme("127.0.0.9");
      expect((await e.bind("bind_transceiver", "scan" + i, "x")).command_status).toBe(STATUS.ESME_RBINDFAIL);
    }
    const text = await registry.metrics();
    expect(text).not.toContain("scan0");
    expect(text).toMatch(/didgate_smpp_bind_failures_total\{reason="unknown_system_id"\} 3/);
  });
});

describe("connection caps", () => {
  it("caps connections per unknown address and for unknown sources together, keeping room for configured ones", async () => {
    const rss0 = rssMb();
    // 12 unknown addresses x 8 connections: only MAX - RESERVED (40) of them are admitted
    const conns = await Promise.all(
      Array.from({ length: 96 }, (_, i) => raw(`127.0.1.${1 + (i % 12)}`).catch(() => null)),
    );
    await new Promise((r) => setTimeout(r, 300));
    const alive = conns.filter((c) => c !== null && !c.s.destroyed && c.s.readyState === "open");
    const server = edge.server as unknown as { connTotal: number; connUnknown: number };
    expect(server.connUnknown).toBe(MAX - RESERVED);
    expect(alive.length).toBe(MAX - RESERVED);
    const text = await registry.metrics();
    expect(text).toMatch(/didgate_smpp_connections_refused_total\{reason="limit"\} \d+/);
    expect(text).toMatch(/didgate_smpp_connections\{source="unknown"\} 40/);
    // the carrier's own address still binds, in the reserved share
    const e = await esme("127.0.0.2");
    expect((await e.bind("bind_transceiver", "carrier-a", "right-a")).command_status).toBe(0);
    console.log(`96 unknown connections: RSS ${rss0} MB -> ${rssMb()} MB, admitted ${server.connTotal}`);
  });

  it("one unknown address gets at most max_connections_per_source", async () => {
    const conns = await Promise.all(Array.from({ length: 12 }, () => raw("127.0.2.1").catch(() => null)));
    await new Promise((r) => setTimeout(r, 300));
    const alive = conns.filter((c) => c !== null && !c.s.destroyed && c.s.readyState === "open");
    expect(alive.length).toBe(PER_SOURCE);
    expect(await registry.metrics()).toMatch(/didgate_smpp_connections_refused_total\{reason="source_limit"\} 7/);
  });

  it("the global cap holds for configured sources too", async () => {
    const conns = await Promise.all(Array.from({ length: MAX + 10 }, () => raw("127.0.0.1").catch(() => null)));
    await new Promise((r) => setTimeout(r, 300));
    const alive = conns.filter((c) => c !== null && !c.s.destroyed && c.s.readyState === "open");
    expect(alive.length).toBe(MAX);
  });

  it("closes a session whose PDU trickles in past pdu_timeout_s, however steady the bytes", async () => {
    const c = await raw();
    const bind = new Pdu(CMD.bind_transceiver, 1);
    bind.system_id = "carrier-a";
    bind.password = "right-a";
    const bytes = encodePdu(bind);
    let i = 0;
    const t = setInterval(() => {
      if (i < bytes.length && !c.s.destroyed) c.s.write(bytes.subarray(i, ++i));
    }, 100);
    try {
      await c.closed;
    } finally {
      clearInterval(t);
    }
    // closed long before the last byte (a byte per 100 ms, pdu_timeout_s 1)
    expect(i).toBeLessThan(bytes.length);
    expect(i).toBeLessThan(25);
    expect(pdus(c.data())).toHaveLength(0);
  }, 10_000);
});

describe("connection caps over TLS", () => {
  it("counts TCP connections before the handshake; refused ones never crash the server; a carrier still binds", async () => {
    const dir = mkdtempSync(join(tmpdir(), "didgate-smpp-tls-"));
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
    ], { stdio: "ignore" });
    const e2 = new SmppService({
      config: {
        listen: "127.0.0.1:0",
        tls: { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) },
        max_connections: 4,
        max_connections_per_source: 2,
        reserved_connections: 2,
        accounts: [{ system_id: "carrier-a", password: "right-a", role: "carrier", sources: ["127.0.0.1"] }],
      },
      logger,
      registry: new Registry(),
      onMessage: async () => ({ status: "accepted" }),
      onReceipt: () => {},
    });
    await e2.start();
    const p2 = e2.address()!.port;
    const held: net.Socket[] = [];
    try {
      // plain TCP that never starts a handshake, from one unknown address
      for (let i = 0; i < 5; i++) {
        const c = net.connect({ host: "127.0.0.1", port: p2, localAddress: "127.0.4.1" });
        c.on("error", () => {});
        held.push(c);
      }
      await new Promise((r) => setTimeout(r, 300));
      expect(held.filter((c) => !c.destroyed && c.readyState === "open").length).toBe(2);
      const t = tls.connect({ host: "127.0.0.1", port: p2, rejectUnauthorized: false });
      await new Promise((r, j) => (t.once("secureConnect", r), t.once("error", j)));
      const bind = new Pdu(CMD.bind_transceiver, 1);
      bind.system_id = "carrier-a";
      bind.password = "right-a";
      t.write(encodePdu(bind));
      const resp = await new Promise<Buffer>((r) => t.once("data", r));
      expect([resp.readUInt32BE(4), resp.readUInt32BE(8)]).toEqual([0x80000009, 0]);
      t.destroy();
    } finally {
      for (const c of held) c.destroy();
      await e2.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("bind timeout", () => {
  it("closes a connection that does not bind in bind_timeout_s, even while it sends enquire_link", async () => {
    const e2 = new SmppService({
      config: { listen: "127.0.0.1:0", bind_timeout_s: 0.5, accounts: [] },
      logger,
      registry: new Registry(),
      onMessage: async () => ({ status: "accepted" }),
      onReceipt: () => {},
    });
    await e2.start();
    try {
      const s = net.connect({ host: "127.0.0.1", port: e2.address()!.port });
      let got = 0;
      s.on("data", () => got++);
      s.on("error", () => {});
      await new Promise((r) => s.once("connect", r));
      const t0 = Date.now();
      let seq = 1;
      const t = setInterval(() => s.write(encodeHeader(CMD.enquire_link, 0, seq++)), 100);
      await new Promise((r) => s.once("close", r));
      clearInterval(t);
      expect(got).toBeGreaterThan(0); // enquire_link was answered meanwhile
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      await e2.close();
    }
  });
});

describe("bind failures and lockout", () => {
  it("guesses at other accounts and unknown system_ids never lock a carrier out; all refusals look alike", async () => {
    const from = "127.0.0.2";
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await (await esme(from)).bind("bind_transceiver", "nosuch" + i, "x")).command_status);
    for (let i = 0; i < 5; i++) statuses.push((await (await esme(from)).bind("bind_transceiver", "carrier-b", "bad" + i)).command_status);
    expect(new Set(statuses)).toEqual(new Set([STATUS.ESME_RBINDFAIL]));
    // carrier-b is locked from this address, even with the right password...
    expect((await (await esme(from)).bind("bind_transceiver", "carrier-b", "right-b")).command_status).toBe(STATUS.ESME_RBINDFAIL);
    // ...but carrier-a, from the same address, binds
    expect((await (await esme(from)).bind("bind_transceiver", "carrier-a", "right-a")).command_status).toBe(0);
    // every unknown name from one address shares one entry; the table stays small
    for (let i = 0; i < 30; i++) await (await esme("127.0.0.9")).bind("bind_transceiver", "enum" + i, "x");
    expect(edge.server!.lockoutEntries).toBeLessThanOrEqual(4);
  });

  it("a locked-out peer that keeps binding writes one log line a minute, not two per attempt", async () => {
    const from = "127.0.0.4";
    for (let i = 0; i < 3; i++) await (await esme(from)).bind("bind_transceiver", "carrier-a", "bad" + i);
    logLines.length = 0;
    for (let i = 0; i < 20; i++) expect((await (await esme(from)).bind("bind_transceiver", "carrier-a", "nope")).command_status).toBe(STATUS.ESME_RBINDFAIL);
    for (const e of open.splice(0)) await e.close();
    await waitFor(() => ((edge.server as unknown as { connTotal?: number }).connTotal ?? 0) === 0, 5000, "connections closed");
    expect(logLines.filter((l) => l.msg.startsWith("smpp: bind refused, locked out")).length).toBe(1);
    expect(logLines.filter((l) => l.msg === "smpp: session closed").length).toBe(0);
  });
});

describe("responses at the byte level", () => {
  it("an error submit_sm_resp carries an empty message_id (one NUL octet)", async () => {
    const c = await raw();
    const sm = new Pdu(CMD.submit_sm, 7);
    Object.assign(sm, addr);
    sm.short_message = Buffer.from("before bind");
    c.s.write(encodePdu(sm));
    await waitFor(() => pdus(c.data()).length >= 1);
    const r = pdus(c.data())[0]!;
    expect([...r]).toEqual([0, 0, 0, 17, 0x80, 0, 0, 4, 0, 0, 0, STATUS.ESME_RINVBNDSTS, 0, 0, 0, 7, 0]);
  });

  it("error responses of a bound carrier carry the empty message_id too (deliver_sm and submit_sm)", async () => {
    answer = async () => ({ status: "invalid_destination" });
    const c = await boundCarrier();
    for (const [cmd, seq] of [[CMD.submit_sm, 2], [CMD.deliver_sm, 3]] as const) {
      const sm = new Pdu(cmd, seq);
      Object.assign(sm, addr);
      sm.short_message = Buffer.from("nowhere");
      c.s.write(encodePdu(sm));
    }
    await waitFor(() => pdus(c.data()).length >= 3);
    const [, a, b] = pdus(c.data());
    expect([...a!]).toEqual([0, 0, 0, 17, 0x80, 0, 0, 4, 0, 0, 0, 0x0b, 0, 0, 0, 2, 0]);
    expect([...b!]).toEqual([0, 0, 0, 17, 0x80, 0, 0, 5, 0, 0, 0, 0x0b, 0, 0, 0, 3, 0]);
  });

  it("a generic_nack stays a bare header", async () => {
    const c = await raw();
    c.s.write(encodeHeader(0x00000777, 0, 5));
    await waitFor(() => pdus(c.data()).length >= 1);
    expect(pdus(c.data())[0]!.length).toBe(16);
  });
});

describe("user data", () => {
  it("refuses a PDU with both short_message and message_payload with ESME_RINVTLVVAL", async () => {
    const e = await esme();
    expect((await e.bind("bind_transceiver", "carrier-a", "right-a")).command_status).toBe(0);
    const r = await e.send("submit_sm", { ...addr, short_message: Buffer.from("short"), message_payload: Buffer.from("payload") });
    expect(r.command_status).toBe(STATUS.ESME_RINVTLVVAL);
    expect(messages).toHaveLength(0);
    // either alone is fine
    expect((await e.send("submit_sm", { ...addr, message_payload: Buffer.from("payload") })).command_status).toBe(0);
    expect((await e.send("submit_sm", { ...addr, short_message: Buffer.from("short") })).command_status).toBe(0);
    expect(messages.map((m) => m.text)).toEqual(["payload", "short"]);
  });

  it("a flood of refused message PDUs (a bad UDH, both user data fields) logs a few lines at warn, not one each", async () => {
    const e = await esme();
    expect((await e.bind("bind_transceiver", "carrier-a", "right-a")).command_status).toBe(0);
    logLines.length = 0;
    // UDHI set, a UDH length past the data
    for (let i = 0; i < 20; i++) expect((await e.send("submit_sm", { ...addr, esm_class: 0x40, short_message: Buffer.from([16, 0, 3, 1]) })).command_status).not.toBe(0);
    for (let i = 0; i < 20; i++) expect((await e.send("submit_sm", { ...addr, short_message: Buffer.from("s"), message_payload: Buffer.from("p") })).command_status).toBe(STATUS.ESME_RINVTLVVAL);
    const warned = logLines.filter((l) => l.level >= 40 && (l.msg === "smpp: malformed user data header" || l.msg.startsWith("smpp: PDU with both")));
    expect(warned.length).toBe(5);
  });

  it("an odd-length UCS-2 message ends in U+FFFD instead of losing its last octet", async () => {
    const e = await esme();
    expect((await e.bind("bind_transceiver", "carrier-a", "right-a")).command_status).toBe(0);
    const r = await e.send("submit_sm", { ...addr, data_coding: 8, short_message: Buffer.from([0x00, 0x41, 0x00, 0x42, 0x00]) });
    expect(r.command_status).toBe(0);
    expect(messages[0]!.text).toBe("AB\ufffd");
  });
});

describe("a peer that does not read", () => {
  it("is no longer read once 1 MiB of answers wait for it: its enquire_links stay in the kernel, not as answers in didgate's memory", async () => {
    const c = await raw("127.0.0.3");
    c.s.pause(); // never reads what didgate answers
    const pdu = encodeHeader(CMD.enquire_link, 0, 1);
    const burst = Buffer.concat(Array.from({ length: 65_536 }, () => pdu)); // 1 MiB of enquire_link
    // didgate's unsent answers to this peer, sampled while the peer sends 40 MiB
    let maxOut = 0;
    const sample = setInterval(() => {
      for (const s of edge.server!.allSessions()) if (s.remoteAddress === "127.0.0.3") maxOut = Math.max(maxOut, s.socket.writableLength);
    }, 10);
    for (let i = 0; i < 40; i++) c.s.write(burst);
    await new Promise((r) => setTimeout(r, 2000));
    clearInterval(sample);
    // near the 1 MiB mark (without the pause: every request read, tens of MiB of answers waiting)
    expect(maxOut).toBeGreaterThan(512 * 1024);
    expect(maxOut).toBeLessThan(4 * 1024 * 1024);
    c.s.destroy();
  });
});

describe("the peer's unbind", () => {
  it("with submits still being handled: they are answered first, then unbind_resp; a submit after the unbind is refused", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    answer = async () => {
      await held;
      return { status: "accepted" };
    };
    const c = await boundCarrier();
    const out: Buffer[] = [];
    for (let seq = 2; seq <= 6; seq++) {
      const sm = new Pdu(CMD.submit_sm, seq);
      Object.assign(sm, addr);
      sm.short_message = Buffer.from("before unbind " + seq);
      out.push(encodePdu(sm));
    }
    out.push(encodeHeader(CMD.unbind, 0, 7));
    const late = new Pdu(CMD.submit_sm, 8);
    Object.assign(late, addr);
    late.short_message = Buffer.from("after unbind");
    out.push(encodePdu(late));
    c.s.write(Buffer.concat(out));
    await waitFor(() => messages.length === 5, 2000, "five submits handed over");
    // held (under handler_timeout_s): only the late submit is answered (0x04), not the unbind
    await new Promise((r) => setTimeout(r, 150));
    expect(pdus(c.data()).slice(1).map((p) => [p.readUInt32BE(4), p.readUInt32BE(8), p.readUInt32BE(12)])).toEqual([[0x80000004, STATUS.ESME_RINVBNDSTS, 8]]);
    release();
    await c.closed;
    const after = pdus(c.data()).slice(2).map((p) => [p.readUInt32BE(4), p.readUInt32BE(8), p.readUInt32BE(12)]);
    expect(after).toEqual([...[2, 3, 4, 5, 6].map((seq) => [0x80000004, 0, seq]), [0x80000006, 0, 7]]);
  });
});
