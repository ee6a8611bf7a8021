/**
 * Micro-benchmarks of the SIP call path's hot functions, one line each (ns per operation), so a
 * regression in one shows without a full sipp run (bench/sip.ts):
 *
 *   parse_invite              parse a ~1.3 KB carrier INVITE (bench/sip-parse.ts's message)
 *   serialise_invite          re-serialise a parsed INVITE after one header changed (toBuffer)
 *   forward_invite            parse + the proxy's forward rewrite + serialise
 *   tx_match                  server transaction key of an INVITE + lookup among 10,000 transactions
 *   timer_set_clear           a SIP timer set and cleared (TimerLists, what the stack uses), with
 *                             1,000 others of the same duration pending
 *   timer_set_clear_node      the same with setTimeout/clearTimeout (what it replaced)
 *   dialog_own_value          find a Record-Route/Route value of ours written before (the signer
 *                             remembers it with its URI and binding: no parse, no HMAC)
 *   dialog_verify_hmac        verify a dialog token (one HMAC-SHA256, src/util/hmac-sha256.ts)
 *   dialog_sign_new           sign a new dialog's binding (a new Call-ID) and write its Record-Route
 *                             value, the signer's map of values full (16,384: every value evicts
 *                             the oldest, as under load)
 *   fifo_cache_set            a new key into a full FifoCache of 16,384 (the oldest out)
 *   map_evict_first_set       the same with a Map and delete(keys().next().value) (what it replaced)
 *   lockout_new_key_at_cap    a registrar lockout table full (100,000 keys) counts a failure of a new
 *                             key (the oldest window out)
 *   parse_200_pop_via         parse a 200 OK, pop our Via, serialise
 *   parse_200_via_count       parse a 200 OK, pop our Via, count the Vias left (viaCount)
 *   parse_200_vias_length     the same with vias.length (the Via strings; what viaCount replaced)
 *   rr_rewrite_2xx            parse a 2xx carrying our signed Record-Route, rewrite it for the
 *                             callee's Contact (what the proxy does to the 180 and the 200)
 *   route_in_dialog           parse a BYE with our signed Route, loose-route it (pop, verify)
 *
 *   npm run bench:sip-hot [-- --json]
 *
 * ns_per_op is the median of 7 runs; min_ns_per_op the fastest (least disturbed on a shared machine).
 */
import { Listener, parseMessage, SipMessage, SipParseError, SipStack } from "../src/sip/index.js";
import { TimerLists, type TimerTarget } from "../src/sip/timers.js";
import { DIALOG_VALUE_CACHE, DialogSigner, recordRouteFor, rewriteRecordRoute, routeInDialog, type DialogBinding, type LocalCheck } from "../src/sip/rr.js";
import type { SipUri } from "../src/sip/uri.js";
import { forwardRewrite, INVITE_BUF, RESPONSE_200 } from "./sip-parse.js";
import { parseArgs } from "./lib.js";
import { FifoCache } from "../src/util/fifo-cache.js";
import { Lockout } from "../src/registrar/register.js";

function must(r: SipMessage | SipParseError): SipMessage {
  if (r instanceof SipParseError) throw new Error(r.toString());
  return r;
}

let sink = 0;

const serverKey = (SipStack.prototype as unknown as { serverKey(m: SipMessage, method: string): string }).serverKey;
const txs = new Map<string, number>();
for (let i = 0; i < 10_000; i++) txs.set("z9hG4bK-" + i.toString(36) + "-x|198.51.100.20:5060|INVITE", i);
const parsedInvite = must(parseMessage(INVITE_BUF));
txs.set(serverKey.call(null, parsedInvite, "INVITE"), -1);

// steady state under load: 1,000 other timers of the same duration pending
const lists = new TimerLists();
const target: TimerTarget = { onTimer: () => sink++ };
const noop = (): void => {};
const pendingLists: unknown[] = [];
const pendingNode: NodeJS.Timeout[] = [];
for (let i = 0; i < 1000; i++) {
  pendingLists.push(lists.set(32_000, target, 0));
  pendingNode.push(setTimeout(noop, 32_000));
}

const binding: DialogBinding = {
  callId: "3c26d9e8-5f1a-4c2b-9e7d-1a2b3c4d5e6f@198.51.100.20",
  ftag: "a8f2c3d1e5",
  flow: "udp~198.51.100.20~5060",
  up: ["198.51.100.20~5060"],
  down: ["10.1.2.3~5060", "203.0.113.50~5060"],
};
const signer = new DialogSigner(["a dialog secret of at least 32 characters"]);
const token = signer.sign(binding);
const rrListener = new Listener("udp", "203.0.113.10", 5060, undefined);
const ownValue = recordRouteFor(rrListener, binding, signer);
const fullSigner = new DialogSigner(["a dialog secret of at least 32 characters"]);
let dialogs = 0;
const newBinding = (): DialogBinding => ({ ...binding, callId: (dialogs++).toString(36) + "-5f1a-4c2b-9e7d@198.51.100.20" });
for (let i = 0; i < DIALOG_VALUE_CACHE; i++) recordRouteFor(rrListener, newBinding(), fullSigner);
const fifo = new FifoCache<string, number>(16_384);
const evictFirst = new Map<string, number>();
const lockout = new Lockout({ maxFailures: 5, windowMs: 60_000, durationMs: 60_000, maxEntries: 100_000 }, () => 1000);
let lockKeys = 0;
for (; lockKeys < 100_000; lockKeys++) lockout.fail("u" + lockKeys + "@198.51.100." + (lockKeys % 250));
/** A transaction-key-like string, the n-th. */
const txKey = (n: number): string => "z9hG4bK-" + n.toString(36) + "-x|198.51.100.20:5060";
let fifoKeys = 0;
let mapKeys = 0;
for (let i = 0; i < 16_384; i++) {
  fifo.set(txKey(fifoKeys++), i);
  evictFirst.set(txKey(mapKeys++), i);
}

// a 2xx as the callee echoes our Record-Route (binding of the INVITE), and a BYE from the caller
// with the Route set it learnt from the rewritten value (the callee's hop added)
const local: LocalCheck = { isLocalUri: (u: SipUri) => u.isSip && u.host === "203.0.113.10" && (u.port ?? 5060) === 5060 };
const rrValue = (b: DialogBinding, sig: string): string =>
  "<sip:203.0.113.10;lr;ftag=" + b.ftag + ";dgc=" + b.flow + ";dgu=" + b.up.join("*") + ";dgd=" + b.down.join("*") + ";dgs=" + sig + ">";
const invBinding: DialogBinding = { ...binding, down: ["10.1.2.3~5060"] };
const dlgBinding: DialogBinding = { ...binding, down: ["10.1.2.4~5070", "10.1.2.3~5060"] };
const RR_2XX = Buffer.from(
  RESPONSE_200.toString("latin1")
    .replace("Record-Route: <sip:203.0.113.10;lr>", "Record-Route: " + rrValue(invBinding, signer.sign(invBinding)))
    .replace("Contact: <sip:+15125550100@10.1.2.3:5060>", "Contact: <sip:+15125550100@10.1.2.4:5070>"),
  "latin1",
);
const BYE = Buffer.from(
  "BYE sip:+15125550100@10.1.2.4:5070 SIP/2.0\r\n" +
    "Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-524287-1---8a4d0b2f5c3e9d71;rport\r\n" +
    "Max-Forwards: 70\r\n" +
    "Route: " + rrValue(dlgBinding, signer.sign(dlgBinding)) + "\r\n" +
    'From: "Caller Name" <sip:+14155550123@198.51.100.20;user=phone>;tag=a8f2c3d1e5\r\n' +
    'To: "DID" <sip:+15125550100@203.0.113.10;user=phone>;tag=9f8e7d6c\r\n' +
    "Call-ID: " + binding.callId + "\r\n" +
    "CSeq: 103 BYE\r\n" +
    "Content-Length: 0\r\n\r\n",
  "latin1",
);

let flip = 0;
const cases: Array<[string, () => void]> = [
  ["parse_invite", () => {
    sink += must(parseMessage(INVITE_BUF)).fields.length;
  }],
  ["serialise_invite", () => {
    parsedInvite.set("User-Agent", (flip ^= 1) === 1 ? "CarrierSBC/4.2.1" : "CarrierSBC/4.2.2");
    sink += parsedInvite.toBuffer().length;
  }],
  ["forward_invite", () => {
    sink += forwardRewrite(must(parseMessage(INVITE_BUF))).length;
  }],
  ["tx_match", () => {
    sink += txs.get(serverKey.call(null, parsedInvite, "INVITE"))!;
  }],
  ["timer_set_clear", () => {
    lists.clear(lists.set(32_000, target, 1));
  }],
  ["timer_set_clear_node", () => {
    clearTimeout(setTimeout(noop, 32_000));
  }],
  ["dialog_own_value", () => {
    if (signer.ownValue(binding.callId, ownValue) !== undefined) sink++;
  }],
  ["dialog_verify_hmac", () => {
    if (signer.verify(binding, token)) sink++;
  }],
  ["dialog_sign_new", () => {
    sink += recordRouteFor(rrListener, newBinding(), fullSigner).length;
  }],
  ["fifo_cache_set", () => {
    fifo.set(txKey(fifoKeys++), 1);
  }],
  ["map_evict_first_set", () => {
    evictFirst.set(txKey(mapKeys++), 1);
    if (evictFirst.size > 16_384) evictFirst.delete(evictFirst.keys().next().value!);
  }],
  ["lockout_new_key_at_cap", () => {
    lockout.fail("u" + lockKeys + "@198.51.100." + (lockKeys++ % 250));
  }],
  ["parse_200_pop_via", () => {
    const m = must(parseMessage(RESPONSE_200));
    m.popVia();
    sink += m.toBuffer().length;
  }],
  ["parse_200_via_count", () => {
    // what the proxy asks of each response after popping its Via: is one left?
    const m = must(parseMessage(RESPONSE_200));
    m.popVia();
    sink += m.viaCount(2);
  }],
  ["parse_200_vias_length", () => {
    // the same through the list of Via strings (what it replaced)
    const m = must(parseMessage(RESPONSE_200));
    m.popVia();
    sink += m.vias.length;
  }],
  ["rr_rewrite_2xx", () => {
    if (rewriteRecordRoute(local, must(parseMessage(RR_2XX)), signer)) sink++;
  }],
  ["route_in_dialog", () => {
    const r = routeInDialog(local, must(parseMessage(BYE)), signer);
    if (!("forged" in r) && r.hopAllowed) sink++;
    else throw new Error("route_in_dialog: " + JSON.stringify(r));
  }],
];

function timeCase(fn: () => void, iters: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) fn();
  return Number(process.hrtime.bigint() - t0) / iters;
}

function main(): void {
  const args = parseArgs();
  const only = args.option("only")?.split(",");
  const iters = args.int("iters", 100_000);
  for (const [name, fn] of cases) {
    if (only !== undefined && !only.includes(name)) continue;
    for (let i = 0; i < 20_000; i++) fn(); // warm up
    const runs: number[] = [];
    for (let r = 0; r < 7; r++) runs.push(timeCase(fn, iters));
    runs.sort((a, b) => a - b);
    const row = { name, ns_per_op: Math.round(runs[3]!), min_ns_per_op: Math.round(runs[0]!), ops_per_s: Math.round(1e9 / runs[3]!) };
    if (args.json) console.log(JSON.stringify(row));
    else console.log(name.padEnd(24) + String(row.ns_per_op).padStart(7) + " ns/op  (min " + row.min_ns_per_op + ")  " + String(row.ops_per_s).padStart(10) + " ops/s");
  }
  if (sink === 42) console.log("");
  for (const h of pendingLists) lists.clear(h);
  for (const h of pendingNode) clearTimeout(h);
}

main();
