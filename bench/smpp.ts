/**
 * SMPP hot paths:
 *  - codec: deliver_sm decode (GSM 160 chars with TLVs; UCS2 70 chars), decode + text, resp encode;
 *    the same PDUs through the npm `smpp` package (its PDU parser decodes the text by data_coding,
 *    so compare it with the decode + text rows) as the baseline;
 *  - end to end over loopback TCP: an ESME (didgate's own session code, so the peer is not the
 *    bottleneck) sends deliver_sm to SmppService's server with a window of 10 and of 100 into an
 *    onMessage that resolves at once; messages/s counts answered deliver_sm.
 *
 *   npx tsc -p . && node dist/bench/smpp.js [--json] [--messages N]
 */
import net from "node:net";
import pino from "pino";
import { Registry } from "prom-client";
import { CMD } from "../src/smpp/constants.js";
import { Pdu, decodePdu, encodePdu, encodeSmResp, type Tlv } from "../src/smpp/codec.js";
import { gsm7Encode, ucs2Encode, parseDataCoding } from "../src/smpp/charset.js";
import { extractUserData, partUnits, decodeUnits, resolveEncoding } from "../src/smpp/message.js";
import { SmppService } from "../src/smpp/service.js";
import { SmppSession, type SessionHandler } from "../src/smpp/session.js";
import { systemClock } from "../src/util/clock.js";
import { median, nowNs, parseArgs, Reporter, result, sink } from "./lib.js";
// Baseline only (a devDependency): the npm `smpp` package's PDU codec.
import smppPkg from "smpp";

const args = parseArgs();
const rep = new Reporter(args.json);
const MESSAGES = args.int("messages", 50_000);
const logger = pino({ level: "silent" });

function deliverSm(text: Buffer, dc: number): Buffer {
  const p = new Pdu(CMD.deliver_sm, 12345);
  p.source_addr_ton = 1;
  p.source_addr_npi = 1;
  p.source_addr = "447700900123";
  p.dest_addr_ton = 1;
  p.dest_addr_npi = 1;
  p.destination_addr = "15125550100";
  p.data_coding = dc;
  p.short_message = text;
  const tlvs: Tlv[] = [
    { tag: 0x0204, value: Buffer.from([0, 7]) },
    { tag: 0x1401, value: Buffer.from("vendor-tag") },
  ];
  p.tlvs = tlvs;
  return encodePdu(p);
}

const gsm = deliverSm(Buffer.from(gsm7Encode("Hello [world] € ".repeat(10))!), 0);
const ucs = deliverSm(ucs2Encode("Привет 😀 ".repeat(7)), 8);

function timeLoop(name: string, n: number, fn: () => void): void {
  const rounds: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < 7; r++) {
    const c0 = process.cpuUsage();
    const t0 = nowNs();
    for (let i = 0; i < n; i++) fn();
    rounds.push((nowNs() - t0) / n);
    const c = process.cpuUsage(c0);
    cpu.push(((c.user + c.system) * 1000) / n);
  }
  // cpu_ns_per_op: process CPU time per op, steadier than wall time on a shared machine.
  rep.report(result(name, n, median(rounds), { cpu_ns_per_op: median(cpu) }));
}

const N = 500_000;
timeLoop("deliver_sm_decode_gsm160", N, () => {
  const p = decodePdu(gsm, 0, gsm.length);
  if (p instanceof Pdu) sink.n += p.short_message.length;
});
timeLoop("deliver_sm_decode_ucs2_70", N, () => {
  const p = decodePdu(ucs, 0, ucs.length);
  if (p instanceof Pdu) sink.n += p.short_message.length;
});
const peerOpts = {};
function decodeText(b: Buffer): void {
  const p = decodePdu(b, 0, b.length) as Pdu;
  const ud = extractUserData(p);
  if (typeof ud === "number") return;
  const enc = resolveEncoding(parseDataCoding(p.data_coding), peerOpts);
  sink.n += decodeUnits(enc, partUnits(enc, ud, peerOpts))!.length;
}
timeLoop("deliver_sm_decode_text_gsm160", N / 2, () => decodeText(gsm));
timeLoop("deliver_sm_decode_text_ucs2_70", N / 2, () => decodeText(ucs));
timeLoop("deliver_sm_resp_encode", N, () => {
  sink.n += encodeSmResp(CMD.deliver_sm_resp, 0, 7, "").length;
});

// Baseline: the npm `smpp` package (node-smpp) on the same bytes.
const SmppPdu = (smppPkg as { PDU: new (cmdOrBuf: string | Buffer, opts?: Record<string, unknown>) => { short_message?: { message?: unknown }; toBuffer(): Buffer } }).PDU;
timeLoop("smpp_pkg_deliver_sm_decode_text_gsm160", N / 2, () => {
  const p = new SmppPdu(gsm);
  sink.n += String(p.short_message?.message ?? "").length;
});
timeLoop("smpp_pkg_deliver_sm_decode_text_ucs2_70", N / 2, () => {
  const p = new SmppPdu(ucs);
  sink.n += String(p.short_message?.message ?? "").length;
});
timeLoop("smpp_pkg_deliver_sm_resp_encode", N / 2, () => {
  sink.n += new SmppPdu("deliver_sm_resp", { sequence_number: 7, message_id: "" }).toBuffer().length;
});

// ------------------------------------------------------------------------- end to end

class Quiet implements SessionHandler {
  onRequest(s: SmppSession, p: Pdu): void {
    s.respond(p, 0);
  }
  onClose(): void {}
  onPdu(): void {}
}

async function endToEnd(window: number, messages: number): Promise<void> {
  let received = 0;
  const edge = new SmppService({
    config: { listen: "127.0.0.1:0", window_in: Math.max(100, window), accounts: [{ system_id: "bench", password: "pw", role: "carrier" }] },
    logger,
    registry: new Registry(),
    onMessage: async () => {
      received++;
      return { status: "accepted" };
    },
    onReceipt: () => {},
  });
  await edge.start();
  const sock = net.connect({ host: "127.0.0.1", port: edge.address()!.port });
  await new Promise<void>((r) => sock.once("connect", () => r()));
  const esme = new SmppSession(
    sock,
    "esme",
    { maxPduLength: 65536, windowOut: window, windowIn: 100, responseTimeoutMs: 30_000, enquireLinkMs: 0, maxQueue: messages + 10, clock: systemClock, logger },
    new Quiet(),
  );
  const b = await esme.bind("transceiver", { system_id: "bench", password: "pw" });
  if (b.command_status !== 0) throw new Error("bench bind failed");
  const template = decodePdu(gsm, 0, gsm.length) as Pdu;
  let cpuNs = 0;
  const run = async (n: number): Promise<number> => {
    const c0 = process.cpuUsage();
    const t0 = nowNs();
    const all: Promise<Pdu>[] = [];
    for (let i = 0; i < n; i++) {
      const p = Object.assign(new Pdu(), template);
      all.push(esme.request(p));
    }
    const resps = await Promise.all(all);
    const ns = nowNs() - t0;
    const c = process.cpuUsage(c0);
    cpuNs = ((c.user + c.system) * 1000) / n;
    for (const r of resps) if (r.command_status !== 0) throw new Error("status " + r.command_status);
    return ns / n;
  };
  await run(Math.min(5000, messages)); // warm up
  const rounds: number[] = [];
  const cpus: number[] = [];
  for (let r = 0; r < 3; r++) {
    rounds.push(await run(messages));
    cpus.push(cpuNs);
  }
  // cpu_ns_per_op covers both ends (ESME and didgate run in this process).
  rep.report(result(`e2e_deliver_sm_window_${window}`, messages, median(rounds), { window, handled: received, cpu_ns_per_op: median(cpus) }));
  await esme.unbind();
  await edge.close();
}

await endToEnd(10, MESSAGES);
await endToEnd(100, MESSAGES);
if (sink.n === -1) console.log("");
