/**
 * Receipt correlation: a receipt about a message didgate submitted through an outbound bind goes
 * to the webhook of the route of that message's DID, carrying didgate's message id (a real
 * Delivery in direct mode and a real HTTP receiver).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Delivery } from "../../src/delivery/delivery.js";
import { ReceiptCorrelator } from "../../src/edge/receipts.js";
import { SmsEdge } from "../../src/edge/sms.js";
import { createLogger } from "../../src/ops/logger.js";
import { parseRoute, type Route } from "../../src/routing/route.js";
import { RouteStore, RouteTable } from "../../src/routing/table.js";
import type { Receipt } from "../../src/smpp/types.js";

let server: Server;
const bodies: any[] = [];
let delivery: Delivery;
let hook: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    let b = "";
    req.on("data", (d: Buffer) => (b += d.toString()));
    req.on("end", () => (bodies.push(JSON.parse(b)), res.writeHead(204).end()));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  hook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/receipts`;
  delivery = new Delivery({ webhooks: { timeout_ms: 1000, max_age_s: 60, max_in_flight: 4, allow_private: ["127.0.0.0/8"] }, logger: createLogger("silent"), registry: new Registry(), instanceId: "t" });
  await delivery.start();
});
afterAll(async () => {
  await delivery.close();
  await new Promise<void>((r) => server.close(() => r()));
});

function receipt(peer: string, id: string, from: string, to: string): Receipt {
  const addr = (a: string) => ({ addr: a, ton: 1, npi: 1 });
  return { peer, peer_kind: "bind", command: "deliver_sm", kind: "smsc_receipt", message_id: id, stat: "DELIVRD", final: true, delivered: true, raw: `id:${id} stat:DELIVRD`, source: addr(from), destination: addr(to), received_at: new Date(), tlvs: [] };
}

describe("receipt correlation", () => {
  it("sends a receipt for a submitted message to its DID's webhook with didgate's id; others by number", async () => {
    const r = parseRoute("+15125550300", { tenant: "acme", sms: { webhook: hook, smpp: "smsc-b" } });
    if (!r.ok) throw new Error(r.errors.join());
    const store = new RouteStore<Route>(RouteTable.build([["+15125550300", r.route]]));
    const receipts = new ReceiptCorrelator();
    const edge = new SmsEdge({ store, delivery, logger: createLogger("silent"), registry: new Registry(), plans: new Map(), receipts });
    receipts.remember("smsc-b", "ABC123", { id: "msg_original", did: "+15125550300" });

    // The receipt's addresses say nothing routable: only the correlation finds the route.
    await edge.onReceipt(receipt("smsc-b", "abc123", "447700900999", "447700900888"));
    expect(bodies).toHaveLength(1);
    expect(bodies[0]).toMatchObject({ type: "message.receipt", receipted_message_id: "abc123", message_id: "msg_original", status: "delivered", tenant: "acme" });

    // Same id from another peer: not ours; routed by number (destination = the DID).
    await edge.onReceipt(receipt("smsc-c", "ABC123", "447700900999", "15125550300"));
    expect(bodies).toHaveLength(2);
    expect(bodies[1].message_id).toBeUndefined();
    // Unknown everything: counted, not delivered.
    await edge.onReceipt(receipt("smsc-c", "zzz", "447700900999", "447700900888"));
    expect(bodies).toHaveLength(2);
  });

  it("ids that differ only in case are told apart; an id given to two messages matches neither (its receipt could reach another tenant's app)", async () => {
    const c = new ReceiptCorrelator();
    const acme = { id: "msg_acme", did: "+15125550100" };
    const other = { id: "msg_other", did: "+15125550200" };
    c.remember("b", "AbC", acme);
    // one message under the id: found in any case (an SMSC writing a hex id in another case)
    expect(c.find("b", "abc")).toBe(acme);
    c.remember("b", "abc", other);
    expect(c.find("b", "AbC")).toBe(acme);
    expect(c.find("b", "abc")).toBe(other);
    // neither spelling: which one is it? none
    expect(c.find("b", "ABC")).toBe("ambiguous");
    // an SMSC that gives one id to two messages (reused ids): neither
    c.remember("b", "42", acme);
    c.remember("b", "42", other);
    c.remember("b", "42", acme);
    expect(c.find("b", "42")).toBe("ambiguous");
    // a message whose final receipt came lets its id go: the SMSC may give it again (ids restarted)
    const done = { id: "msg_done", did: "+15125550100", relayed: true };
    c.remember("b", "77", done);
    c.remember("b", "77", other);
    expect(c.find("b", "77")).toBe(other);
    // the parts of one long message under one id are one message
    c.remember("b", "7", acme);
    c.remember("b", "7", acme);
    expect(c.find("b", "7")).toBe(acme);
    expect(c.find("b", "unknown")).toBeUndefined();
    // the edge: an ambiguous receipt goes nowhere, not even by number, and is counted
    const r = parseRoute("+15125550100", { tenant: "acme", sms: { webhook: hook } });
    if (!r.ok) throw new Error(r.errors.join());
    const registry = new Registry();
    const edge = new SmsEdge({ store: new RouteStore<Route>(RouteTable.build([["+15125550100", r.route]])), delivery, logger: createLogger("silent"), registry, plans: new Map(), receipts: c });
    const before = bodies.length;
    await edge.onReceipt(receipt("b", "42", "447700900999", "15125550100"));
    expect(bodies).toHaveLength(before);
    expect(await registry.metrics()).toMatch(/didgate_sms_receipts_total\{peer="b",outcome="ambiguous"\} 1/);
  });
});
