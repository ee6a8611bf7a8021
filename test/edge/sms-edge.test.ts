/**
 * The SMS edge's routing policy (SmsEdge.onMessage) without SMPP or Redis: an in-memory route
 * table, the real keyword module over an in-memory opt-out store, and a MessageSink that records
 * the jobs it is handed and answers what the test tells it to. What is checked is the answer the
 * peer gets and what (if anything) is handed to delivery.
 */
import pino from "pino";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { AcceptOutcome, DeliveryJob, MessageReceivedBody } from "../../src/delivery/types.js";
import { MemoryOptOutStore } from "../../src/edge/optout.js";
import { SmsKeywords } from "../../src/edge/sms-keywords.js";
import { SmsEdge, type MessageSink, type SmsEdgeOptions } from "../../src/edge/sms.js";
import { parseDataCoding } from "../../src/smpp/charset.js";
import { parseRoute, stateAt, type Route } from "../../src/routing/route.js";
import { RouteStore, RouteTable } from "../../src/routing/table.js";
import type { InboundSms, SmsAddress } from "../../src/smpp/types.js";

const DID = "+15125550100";
const SENDER = "+447700900001";
const NOW = Date.parse("2026-03-02T10:00:00Z");

function route(key: string, v: unknown): Route {
  const r = parseRoute(key, v);
  if (!r.ok) throw new Error(r.errors.join("; "));
  return r.route;
}

/** A delivery stand-in: records every job and answers `next` (or throws when it is an Error). */
class RecordingSink implements MessageSink {
  readonly jobs: DeliveryJob[] = [];
  next: AcceptOutcome | Error = "accepted";
  accept(job: DeliveryJob): Promise<AcceptOutcome> {
    this.jobs.push(job);
    return this.next instanceof Error ? Promise.reject(this.next) : Promise.resolve(this.next);
  }
}

function setup(routes: Record<string, unknown>, opts: Partial<Omit<SmsEdgeOptions, "keywords">> & { keywords?: boolean } = {}) {
  const table = new RouteTable<Route>();
  for (const [k, v] of Object.entries(routes)) table.set(k, route(k, v));
  const store = new RouteStore(table);
  const sink = new RecordingSink();
  const logger = pino({ level: "silent" });
  const registry = new Registry();
  const optouts = new MemoryOptOutStore();
  const replies: { from: string; to: string; text: string }[] = [];
  const { keywords: withKeywords, ...rest } = opts;
  const keywords = withKeywords
    ? new SmsKeywords({
        store,
        optouts,
        send: (m) => {
          replies.push({ from: m.from, to: m.to, text: m.text });
          return Promise.resolve("accepted");
        },
        logger,
        registry,
      })
    : undefined;
  const edge = new SmsEdge({ store, delivery: sink, logger, registry, plans: new Map(), now: () => NOW, ...(keywords ? { keywords } : {}), ...rest });
  return { edge, sink, optouts, replies };
}

const intl = (addr: string): SmsAddress => ({ addr: addr.replace(/^\+/, ""), ton: 1, npi: 1 });

let seq = 0;
function sms(to: SmsAddress | string, text = "hello", extra: Partial<InboundSms> = {}): InboundSms {
  seq++;
  return {
    peer: "carrier-a",
    peer_kind: "bind",
    command: "deliver_sm",
    source: intl(SENDER),
    destination: typeof to === "string" ? intl(to) : to,
    text,
    encoding: "gsm7",
    data_coding: 0,
    dcs: parseDataCoding(0),
    esm_class: 0,
    protocol_id: 0,
    registered_delivery: 0,
    service_type: "",
    parts: 1,
    total_parts: 1,
    partial: false,
    message_id: `m${seq}`,
    received_at: new Date(NOW),
    tlvs: [],
    ...extra,
  };
}

/** The didgate_sms_inbound_total outcomes counted so far. */
async function outcomes(edge: SmsEdge): Promise<Record<string, number>> {
  const m = await edge.metrics.inbound.get();
  return Object.fromEntries(m.values.map((v) => [String(v.labels.outcome), v.value]));
}

describe("SmsEdge.onMessage: routing policy", () => {
  it("a DID with a webhook route: one job with the message body and the route's target, answered accepted", async () => {
    const { edge, sink } = setup({ [DID]: { tenant: "acme", sms: { webhook: "https://app.example/in", smpp: "app-1" } } });
    const res = await edge.onMessage(sms(DID, "hi there"));
    expect(res).toEqual({ status: "accepted" });
    expect(sink.jobs).toHaveLength(1);
    const job = sink.jobs[0]!;
    expect(job.target).toEqual({ webhook: "https://app.example/in", smpp: "app-1" });
    expect(job.acceptedAt).toBe(NOW);
    expect(job.attempts).toBe(0);
    expect(job.receipt).toBeUndefined();
    const body = job.body as MessageReceivedBody;
    expect(body).toMatchObject({ type: "message.received", id: job.id, from: SENDER, to: DID, text: "hi there", encoding: "gsm7", parts: 1, tenant: "acme", smpp: { peer: "carrier-a", data_coding: 0 } });
    expect(body.received_at).toBe(new Date(NOW).toISOString());
    expect(body.keyword).toBeUndefined();
    expect(await outcomes(edge)).toEqual({ accepted: 1 });
  });

  it("the destination is normalised with the peer's number plan (national TON)", async () => {
    const { edge, sink } = setup({ [DID]: { sms: { webhook: "https://app.example/in" } } }, { plans: new Map([["carrier-a", { countryCode: "1" }]]) });
    expect(await edge.onMessage(sms({ addr: "5125550100", ton: 2, npi: 1 }))).toEqual({ status: "accepted" });
    expect((sink.jobs[0]!.body as MessageReceivedBody).to).toBe(DID);
  });

  it("an unknown number, an alphanumeric destination and a route without sms are invalid_destination, nothing delivered", async () => {
    const { edge, sink } = setup({ [DID]: { sms: { webhook: "https://app.example/in" } }, "+15125550199": { voice: { targets: ["sip:pbx@192.0.2.10"] } } });
    expect(await edge.onMessage(sms("+15125550111"))).toEqual({ status: "invalid_destination" });
    expect(await edge.onMessage(sms({ addr: "ACME", ton: 5, npi: 0 }))).toEqual({ status: "invalid_destination" });
    expect(await edge.onMessage(sms("+15125550199"))).toEqual({ status: "invalid_destination" });
    expect(sink.jobs).toEqual([]);
    expect(await outcomes(edge)).toEqual({ no_route: 1, invalid_number: 1, no_sms_route: 1 });
  });

  it("a released or quarantined number refuses with invalid_destination (gone), also when released_at makes it so", async () => {
    const released = "+15125550101";
    const quarantine = "+15125550102";
    const dated = "+15125550103";
    const sms1 = { sms: { webhook: "https://app.example/in" } };
    const { edge, sink } = setup(
      { [released]: { ...sms1, state: "released" }, [quarantine]: { ...sms1, state: "quarantine" }, [dated]: { ...sms1, released_at: "2026-03-01T00:00:00Z" } },
      { stateOf: (r, t) => stateAt(r, t, 30) },
    );
    for (const n of [released, quarantine, dated]) expect(await edge.onMessage(sms(n))).toEqual({ status: "invalid_destination" });
    expect(sink.jobs).toEqual([]);
    expect(await outcomes(edge)).toEqual({ gone: 3 });
  });

  it("the log line of a refusal names the number, and the matched key and state where a route matched", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    const { edge } = setup(
      { "+1512555*": { voice: { targets: ["sip:pbx@192.0.2.10"] } }, "+15125550101": { state: "quarantine", sms: { webhook: "https://app.example/in" } } },
      { logger },
    );
    await edge.onMessage(sms("+447700900999"));
    await edge.onMessage(sms("+15125550101"));
    await edge.onMessage(sms("+15125550177"));
    const refusals = lines.filter((l) => l.msg === "sms").map(({ result, did, route_key, state }) => ({ result, did, route_key, state }));
    expect(refusals).toEqual([
      { result: "no_route", did: "+447700900999", route_key: undefined, state: undefined },
      { result: "gone", did: "+15125550101", route_key: "+15125550101", state: "quarantine" },
      { result: "no_sms_route", did: "+15125550177", route_key: "+1512555*", state: undefined },
    ]);
  });

  it("the sink's answer is the peer's: temporary, permanent; a sink that throws is temporary", async () => {
    const { edge, sink } = setup({ [DID]: { sms: { webhook: "https://app.example/in" } } });
    sink.next = "temporary";
    expect(await edge.onMessage(sms(DID, "one"))).toEqual({ status: "temporary" });
    sink.next = "permanent";
    expect(await edge.onMessage(sms(DID, "two"))).toEqual({ status: "permanent" });
    sink.next = new Error("spool down");
    expect(await edge.onMessage(sms(DID, "three"))).toEqual({ status: "temporary" });
    expect(sink.jobs).toHaveLength(3);
    expect(await outcomes(edge)).toEqual({ temporary: 2, permanent: 1 });
  });

  it("an SMSC's retry keeps the first copy's id while not accepted, and is not delivered again once it was", async () => {
    const { edge, sink } = setup({ [DID]: { sms: { webhook: "https://app.example/in" } } });
    sink.next = "temporary";
    expect(await edge.onMessage(sms(DID, "same"))).toEqual({ status: "temporary" });
    sink.next = "accepted";
    expect(await edge.onMessage(sms(DID, "same"))).toEqual({ status: "accepted" });
    expect(sink.jobs).toHaveLength(2);
    expect(sink.jobs[1]!.id).toBe(sink.jobs[0]!.id);
    expect(await edge.onMessage(sms(DID, "same"))).toEqual({ status: "accepted" });
    expect(sink.jobs).toHaveLength(2);
    expect(await outcomes(edge)).toEqual({ temporary: 1, accepted: 1, duplicate: 1 });
  });

  it("after drain() every message is temporary and nothing is delivered", async () => {
    const { edge, sink } = setup({ [DID]: { sms: { webhook: "https://app.example/in" } } });
    edge.drain();
    expect(await edge.onMessage(sms(DID))).toEqual({ status: "temporary" });
    expect(sink.jobs).toEqual([]);
  });

  it("a carrier account's submit asking for a receipt puts the receipt request in the job", async () => {
    const ro = { sender: { send: () => Promise.resolve() }, isCarrierAccount: (p: string) => p === "carrier-a", isBind: () => false };
    const { edge, sink } = setup({ [DID]: { sms: { webhook: "https://app.example/in" } } }, { receiptsOut: ro as unknown as NonNullable<SmsEdgeOptions["receiptsOut"]> });
    await edge.onMessage(sms(DID, "receipt please", { peer_kind: "account", command: "submit_sm", registered_delivery: 1 }));
    expect(sink.jobs[0]!.receipt).toMatchObject({ peer: "carrier-a", when: 1 });
  });
});

describe("SmsEdge.onMessage: opt-out words and keywords (SmsKeywords, in-memory opt-out store)", () => {
  it("STOP is recorded, delivered with keyword stop, and confirmed to the sender once accepted", async () => {
    const { edge, sink, optouts, replies } = setup({ [DID]: { sms: { webhook: "https://app.example/in" } } }, { keywords: true });
    expect(await edge.onMessage(sms(DID, "STOP"))).toEqual({ status: "accepted" });
    expect(await optouts.isOptedOut(DID, SENDER)).toBe(true);
    expect(sink.jobs).toHaveLength(1);
    expect((sink.jobs[0]!.body as MessageReceivedBody).keyword).toBe("stop");
    await new Promise((r) => setImmediate(r));
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ from: DID, to: SENDER });
  });

  it("a route keyword sends the message to the keyword's webhook instead of the route's", async () => {
    const { edge, sink } = setup({ [DID]: { sms: { webhook: "https://app.example/in", smpp: "app-1", keywords: { JOIN: { webhook: "https://app.example/join" } } } } }, { keywords: true });
    expect(await edge.onMessage(sms(DID, "join please"))).toEqual({ status: "accepted" });
    expect(sink.jobs[0]!.target).toEqual({ webhook: "https://app.example/join" });
    expect((sink.jobs[0]!.body as MessageReceivedBody).keyword).toBe("keyword");
  });

  it("a route with keywords only: a keyword message is accepted without delivery; any other is invalid_destination", async () => {
    const { edge, sink, replies } = setup({ [DID]: { sms: { keywords: { PRICE: { reply: "1 USD" } } } } }, { keywords: true });
    expect(await edge.onMessage(sms(DID, "price?"))).toEqual({ status: "accepted" });
    expect(await edge.onMessage(sms(DID, "something else"))).toEqual({ status: "invalid_destination" });
    expect(sink.jobs).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(replies.map((m) => m.text)).toEqual(["1 USD"]);
  });
});
