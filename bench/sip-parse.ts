/**
 * Micro-benchmark: parse a typical carrier INVITE (~1 KB, 15 headers) and apply the proxy's
 * forward rewrite (add Via, decrement Max-Forwards, add Record-Route, rewrite Request-URI,
 * pop Route), then serialise.
 *
 *   npx tsc -p . && node --expose-gc dist/bench/sip-parse.js [--json]
 *
 * ns_per_op is the fastest of 7 runs (median_ns_per_op also printed); ratio_to_buffer_copy
 * compares with copying the same 1 KB buffer, which makes numbers from a busy machine comparable.
 */
import { parseMessage, SipMessage, SipParseError } from "../src/sip/index.js";

export const CARRIER_INVITE =
  "INVITE sip:+15125550100@203.0.113.10:5060;user=phone SIP/2.0\r\n" +
  "Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-524287-1---7f3c9a1e4b2d8c60;rport\r\n" +
  "Max-Forwards: 69\r\n" +
  "Route: <sip:203.0.113.10;lr>,<sip:203.0.113.11;lr;transport=udp>\r\n" +
  "Contact: <sip:+14155550123@198.51.100.20:5060;transport=udp>\r\n" +
  'To: "DID" <sip:+15125550100@203.0.113.10;user=phone>\r\n' +
  'From: "Caller Name" <sip:+14155550123@198.51.100.20;user=phone>;tag=a8f2c3d1e5\r\n' +
  "Call-ID: 3c26d9e8-5f1a-4c2b-9e7d-1a2b3c4d5e6f@198.51.100.20\r\n" +
  "CSeq: 102 INVITE\r\n" +
  "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, PRACK, UPDATE\r\n" +
  "Supported: replaces, timer, 100rel\r\n" +
  "Session-Expires: 1800;refresher=uac\r\n" +
  "User-Agent: CarrierSBC/4.2.1\r\n" +
  "P-Asserted-Identity: <sip:+14155550123@198.51.100.20;user=phone>\r\n" +
  "Content-Type: application/sdp\r\n" +
  "Content-Length: 260\r\n" +
  "\r\n";
const SDP =
  "v=0\r\n" +
  "o=- 3912839 3912839 IN IP4 198.51.100.20\r\n" +
  "s=-\r\n" +
  "c=IN IP4 198.51.100.30\r\n" +
  "t=0 0\r\n" +
  "m=audio 16384 RTP/AVP 0 8 18 101\r\n" +
  "a=rtpmap:0 PCMU/8000\r\n" +
  "a=rtpmap:8 PCMA/8000\r\n" +
  "a=rtpmap:18 G729/8000\r\n" +
  "a=rtpmap:101 telephone-event/8000\r\n" +
  "a=fmtp:101 0-16\r\n" +
  "a=ptime:20\r\n" +
  "a=sendrecv\r\n";

export const INVITE_BUF = Buffer.from(CARRIER_INVITE + SDP, "latin1");

export const RESPONSE_200 = Buffer.from(
  "SIP/2.0 200 OK\r\n" +
    "Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-didgate-1a2b3c4d5e6f;rport=5060\r\n" +
    "Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-524287-1---7f3c9a1e4b2d8c60;rport=5060;received=198.51.100.20\r\n" +
    "Record-Route: <sip:203.0.113.10;lr>\r\n" +
    'To: "DID" <sip:+15125550100@203.0.113.10;user=phone>;tag=9f8e7d6c\r\n' +
    'From: "Caller Name" <sip:+14155550123@198.51.100.20;user=phone>;tag=a8f2c3d1e5\r\n' +
    "Call-ID: 3c26d9e8-5f1a-4c2b-9e7d-1a2b3c4d5e6f@198.51.100.20\r\n" +
    "CSeq: 102 INVITE\r\n" +
    "Contact: <sip:+15125550100@10.1.2.3:5060>\r\n" +
    "Content-Type: application/sdp\r\n" +
    "Content-Length: " + SDP.length + "\r\n\r\n" + SDP,
  "latin1",
);

const NEW_VIA = "SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-didgate-1a2b3c4d5e6f;rport";
const RR = "<sip:203.0.113.10;lr>";
const TARGET = "sip:+15125550100@10.1.2.3:5060;transport=udp";

function must(r: SipMessage | SipParseError): SipMessage {
  if (r instanceof SipParseError) throw new Error(r.toString());
  return r;
}

/** The proxy's forward rewrite (RFC 3261 16.6) on a parsed request. */
export function forwardRewrite(m: SipMessage): Buffer {
  m.requestUri = TARGET;
  m.popRoute();
  m.decrementMaxForwards();
  m.pushRecordRoute(RR);
  m.pushVia(NEW_VIA);
  return m.toBuffer();
}

let sink = 0;

let baselineNs = 0;

const cases: Array<[string, Buffer, () => void]> = [
  ["baseline_buffer_copy", INVITE_BUF, () => {
    sink += Buffer.from(INVITE_BUF).length;
  }],
  ["sip_parse_invite", INVITE_BUF, () => {
    const m = must(parseMessage(INVITE_BUF));
    sink += m.fields.length;
  }],
  ["sip_parse_forward_rewrite_invite", INVITE_BUF, () => {
    const m = must(parseMessage(INVITE_BUF));
    sink += forwardRewrite(m).length;
  }],
  ["sip_parse_txkey_forward_rewrite_invite", INVITE_BUF, () => {
    const m = must(parseMessage(INVITE_BUF));
    const v = m.topVia!;
    const key = v.branch! + "|" + v.sentBy + "|" + m.method;
    sink += key.length + m.callId!.length + m.cseq!.seq;
    sink += forwardRewrite(m).length;
  }],
  ["sip_parse_pop_via_200", RESPONSE_200, () => {
    const m = must(parseMessage(RESPONSE_200));
    m.popVia();
    sink += m.toBuffer().length;
  }],
];

const gc = (globalThis as { gc?: () => void }).gc;

function timeCase(fn: () => void, iters: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) fn();
  return Number(process.hrtime.bigint() - t0) / iters;
}

function allocCase(fn: () => void): { heap: number; external: number } {
  const heaps: number[] = [];
  const exts: number[] = [];
  for (let r = 0; r < 15; r++) {
    if (gc) gc();
    const a = process.memoryUsage();
    const n = 100;
    for (let i = 0; i < n; i++) fn();
    const b = process.memoryUsage();
    heaps.push((b.heapUsed - a.heapUsed) / n);
    exts.push((b.arrayBuffers - a.arrayBuffers) / n);
  }
  heaps.sort((x, y) => x - y);
  exts.sort((x, y) => x - y);
  return { heap: Math.round(heaps[heaps.length - 1]!), external: Math.round(Math.max(0, exts[exts.length >> 1]!)) };
}

function main(): void {
  const json = process.argv.includes("--json");
  const iters = 100_000;
  if (!json) {
    console.log("message: " + INVITE_BUF.length + " bytes, " + must(parseMessage(INVITE_BUF)).fields.length + " headers");
    if (!gc) console.log("(run with node --expose-gc for steadier allocation numbers)");
  }
  for (const [name, input, fn] of cases) {
    for (let i = 0; i < 50_000; i++) fn(); // warm up
    const runs: number[] = [];
    for (let r = 0; r < 7; r++) runs.push(timeCase(fn, iters));
    runs.sort((a, b) => a - b);
    // the fastest run: the least disturbed by other processes on a shared machine
    const ns = runs[0]!;
    if (name === "baseline_buffer_copy") baselineNs = ns;
    const alloc = allocCase(fn);
    const row = {
      name,
      bytes: input.length,
      ns_per_op: Math.round(ns),
      ops_per_s: Math.round(1e9 / ns),
      median_ns_per_op: Math.round(runs[3]!),
      ratio_to_buffer_copy: baselineNs > 0 ? Math.round((ns / baselineNs) * 10) / 10 : null,
      heap_bytes_per_op: alloc.heap,
      buffer_bytes_per_op: alloc.external,
    };
    if (json) console.log(JSON.stringify(row));
    else
      console.log(
        name.padEnd(40) + String(row.ns_per_op).padStart(7) + " ns/op (median " + row.median_ns_per_op + ") " + String(row.ops_per_s).padStart(9) + " ops/s  x" + row.ratio_to_buffer_copy + " of a 1 KB Buffer copy  heap ~" + row.heap_bytes_per_op + " B/op, buffers ~" + row.buffer_bytes_per_op + " B/op",
      );
  }
  if (sink === 42) console.log("");
}

if (process.argv[1]?.endsWith("sip-parse.js")) main();
