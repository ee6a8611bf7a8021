/**
 * Direct mode (no Redis) against a real HTTP receiver, and the webhook → SMPP failover order.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Delivery } from "../../src/delivery/delivery.js";
import type { SmppForwarder } from "../../src/delivery/smpp-forward.js";
import type { AttemptResult, DeliveryJob, MessageReceiptBody } from "../../src/delivery/types.js";
import { verifyWebhook } from "../../src/delivery/webhook.js";
import { startReceiver, type Receiver } from "./receiver.js";
import { SECRET, job, makeDelivery, metric } from "./util.js";

let rx: Receiver | undefined;
const open: Delivery[] = [];
afterEach(async () => {
  for (const d of open.splice(0)) await d.close();
  await rx?.close();
  rx = undefined;
});

/** A scripted SmppForwarder (the real one is built on src/smpp by the edge). */
class ScriptedForwarder implements SmppForwarder {
  calls: string[] = [];
  constructor(private readonly answers: (AttemptResult | "hang")[]) {}
  forward(j: DeliveryJob, signal: AbortSignal): Promise<AttemptResult> {
    this.calls.push(j.id);
    const a = this.answers[Math.min(this.calls.length - 1, this.answers.length - 1)];
    if (a === "hang") return new Promise((resolve) => signal.addEventListener("abort", () => resolve({ kind: "retry", reason: "aborted" })));
    return Promise.resolve(a);
  }
}

describe("direct mode", () => {
  it("answers temporary while the receiver is down; the SMSC's retry is accepted once it is up", async () => {
    rx = await startReceiver();
    const url = rx.url;
    await rx.down();
    const { delivery, registry } = makeDelivery(undefined, "", { direct_wait_ms: 1000 });
    open.push(delivery);
    expect(delivery.mode).toBe("direct");
    await delivery.start();
    const j = job(1, { webhook: url });
    expect(await delivery.accept(j)).toBe("temporary");
    expect(await delivery.accept(j)).toBe("temporary");
    await rx.up();
    expect(await delivery.accept(j)).toBe("accepted");
    expect(rx.delivered).toEqual(["msg_1"]);
    expect(verifyWebhook(SECRET, rx.received[0].headers, rx.received[0].body)).toBe(true);
    expect(await metric(registry, "didgate_delivery_accepts_total", { mode: "direct", outcome: "temporary" })).toBe(2);
    expect(await metric(registry, "didgate_delivery_accepts_total", { mode: "direct", outcome: "accepted" })).toBe(1);
    await delivery.drain(1000);
  });

  it("answers permanent for a 410 and temporary when the receiver is slower than the wait", async () => {
    rx = await startReceiver(() => ({ status: 410 }));
    const { delivery } = makeDelivery(undefined, "", { direct_wait_ms: 300 });
    open.push(delivery);
    expect(await delivery.accept(job(1, { webhook: rx.url }))).toBe("permanent");
    rx.respond = () => ({ status: 200, delayMs: 2000 });
    const t0 = Date.now();
    expect(await delivery.accept(job(2, { webhook: rx.url }))).toBe("temporary");
    expect(Date.now() - t0).toBeLessThan(1900); // bounded by the wait, not by the receiver
    rx.respond = () => ({ status: 429, headers: { "retry-after": "5" } });
    expect(await delivery.accept(job(3, { webhook: rx.url }))).toBe("temporary");
    expect(await delivery.accept(job(4, {}))).toBe("permanent");
  });

  it("answers temporary beyond max_in_flight", async () => {
    rx = await startReceiver(() => ({ status: 200, delayMs: 300 }));
    const { delivery } = makeDelivery(undefined, "", { direct_wait_ms: 2000, webhookOver: { max_in_flight: 2 } });
    open.push(delivery);
    const out = await Promise.all([1, 2, 3].map((i) => delivery.accept(job(i, { webhook: rx!.url }))));
    expect(out).toEqual(["accepted", "accepted", "temporary"]);
  });

  it("passes receipts through as message.receipt", async () => {
    rx = await startReceiver();
    const { delivery } = makeDelivery(undefined, "", {});
    open.push(delivery);
    const body: MessageReceiptBody = {
      type: "message.receipt", id: "rcpt_1", received_at: new Date().toISOString(), receipted_message_id: "abc123",
      status: "delivered", error_code: "000", from: "+15125550100", to: "+447700900123", tenant: "acme", smpp: { peer: "smsc-a" },
    };
    expect(await delivery.accept({ id: "rcpt_1", body, target: { webhook: rx.url }, acceptedAt: Date.now(), attempts: 0 })).toBe("accepted");
    expect(JSON.parse(rx.received[0].body)).toEqual(body);
    expect(rx.received[0].id).toBe("rcpt_1");
  });
});

describe("webhook first, then SMPP", () => {
  it("does not call SMPP when the webhook accepts", async () => {
    rx = await startReceiver();
    const fw = new ScriptedForwarder([{ kind: "delivered" }]);
    const { delivery } = makeDelivery(undefined, "", { forwarder: fw });
    open.push(delivery);
    expect(await delivery.accept(job(1, { webhook: rx.url, smpp: "app-1" }))).toBe("accepted");
    expect(fw.calls).toEqual([]);
  });

  it("fails over to SMPP after a 410 or a temporary webhook failure", async () => {
    rx = await startReceiver(() => ({ status: 410 }));
    const fw = new ScriptedForwarder([{ kind: "delivered" }]);
    const { delivery, registry } = makeDelivery(undefined, "", { forwarder: fw });
    open.push(delivery);
    expect(await delivery.accept(job(1, { webhook: rx.url, smpp: "app-1" }))).toBe("accepted");
    rx.respond = () => ({ status: 503 });
    expect(await delivery.accept(job(2, { webhook: rx.url, smpp: "app-1" }))).toBe("accepted");
    expect(fw.calls).toEqual(["msg_1", "msg_2"]);
    expect(await metric(registry, "didgate_delivery_total", { kind: "smpp", outcome: "delivered" })).toBe(2);
    expect(await metric(registry, "didgate_delivery_total", { kind: "webhook", outcome: "dead" })).toBe(1);
  });

  it("is permanent only when every target refuses permanently; a hung forwarder is bounded by the wait", async () => {
    rx = await startReceiver(() => ({ status: 410 }));
    const fw = new ScriptedForwarder([{ kind: "dead", reason: "ESME_RINVDSTADR" }]);
    const { delivery } = makeDelivery(undefined, "", { forwarder: fw, direct_wait_ms: 300 });
    open.push(delivery);
    expect(await delivery.accept(job(1, { webhook: rx.url, smpp: "app-1" }))).toBe("permanent");
    const hang = makeDelivery(undefined, "", { forwarder: new ScriptedForwarder(["hang"]), direct_wait_ms: 300 });
    open.push(hang.delivery);
    expect(await hang.delivery.accept(job(2, { smpp: "app-1" }))).toBe("temporary");
    const none = makeDelivery(undefined, "", {});
    open.push(none.delivery);
    expect(await none.delivery.accept(job(3, { smpp: "app-1" }))).toBe("permanent");
  });
});
