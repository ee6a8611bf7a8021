import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { backoffDelay, nextAttempt, type BackoffOptions } from "../../src/delivery/backoff.js";
import { WebhookSender, classifyStatus, parseRetryAfter, redactUrl, secretKey, signWebhook, verifyWebhook } from "../../src/delivery/webhook.js";
import { startReceiver, type Receiver } from "./receiver.js";

const SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

describe("Standard Webhooks signing", () => {
  it("matches the spec's known answer", () => {
    const sig = signWebhook(secretKey(SPEC_SECRET), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}');
    expect(sig).toBe("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  });

  it("verifies, and rejects tampering, stale timestamps and missing headers", () => {
    const headers = {
      "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,bm90LWl0 v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    };
    const body = '{"test": 2432232314}';
    expect(verifyWebhook(SPEC_SECRET, headers, body, { nowS: 1614265330 })).toBe(true);
    expect(verifyWebhook(SPEC_SECRET, headers, body, { nowS: 1614265330 + 299 })).toBe(true);
    expect(verifyWebhook(SPEC_SECRET, headers, body, { nowS: 1614265330 + 301 })).toBe(false);
    expect(verifyWebhook(SPEC_SECRET, headers, '{"test": 2432232315}', { nowS: 1614265330 })).toBe(false);
    expect(verifyWebhook("whsec_AAAA", headers, body, { nowS: 1614265330 })).toBe(false);
    expect(verifyWebhook(SPEC_SECRET, { ...headers, "webhook-id": "msg_other" }, body, { nowS: 1614265330 })).toBe(false);
    expect(verifyWebhook(SPEC_SECRET, { ...headers, "webhook-signature": undefined }, body, { nowS: 1614265330 })).toBe(false);
    expect(verifyWebhook(SPEC_SECRET, { ...headers, "webhook-timestamp": "abc" }, body, { nowS: 1614265330 })).toBe(false);
    // A fetch Headers object works too.
    expect(verifyWebhook(SPEC_SECRET, new Headers(headers as Record<string, string>), body, { nowS: 1614265330 })).toBe(true);
  });

  it("uses the UTF-8 bytes of a secret without the whsec_ prefix", () => {
    expect(secretKey("plain secret").equals(Buffer.from("plain secret", "utf8"))).toBe(true);
    expect(secretKey("whsec_AQID").equals(Buffer.from([1, 2, 3]))).toBe(true);
  });

  it("verify never throws on arbitrary headers and bodies", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), fc.string(), (secret, id, ts, sig, body) => {
        const r = verifyWebhook(secret, { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig }, body);
        expect(typeof r).toBe("boolean");
      }),
    );
  });
});

describe("answers", () => {
  it("parses Retry-After as seconds or an HTTP date", () => {
    const now = Date.parse("2026-11-22T10:00:00Z");
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Sun, 22 Nov 2026 10:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Sun, 22 Nov 2026 09:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter("-5", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
    fc.assert(fc.property(fc.string(), (s) => {
      const v = parseRetryAfter(s, now);
      expect(v === undefined || (Number.isFinite(v) && v >= 0)).toBe(true);
    }));
  });

  it("classifies statuses", () => {
    expect(classifyStatus(200, null, 0)).toEqual({ kind: "delivered" });
    expect(classifyStatus(204, null, 0)).toEqual({ kind: "delivered" });
    expect(classifyStatus(410, null, 0)).toEqual({ kind: "dead", reason: "http 410" });
    expect(classifyStatus(429, "7", 0)).toEqual({ kind: "retry", reason: "http 429", retryAfterMs: 7000 });
    expect(classifyStatus(429, null, 0)).toEqual({ kind: "retry", reason: "http 429" });
    expect(classifyStatus(500, null, 0)).toEqual({ kind: "retry", reason: "http 500" });
    expect(classifyStatus(404, null, 0)).toEqual({ kind: "retry", reason: "http 404" });
    expect(classifyStatus(301, null, 0)).toEqual({ kind: "retry", reason: "http 301" });
  });

  it("redacts query strings and credentials from logged URLs", () => {
    expect(redactUrl("https://u:p@app.example.com/sms/in?token=abc")).toBe("https://app.example.com/sms/in");
    expect(redactUrl("not a url")).toBe("(invalid url)");
  });
});

describe("backoff", () => {
  const opts: BackoffOptions = { baseMs: 1000, capMs: 60_000, floorMs: 100, maxAgeMs: 3_600_000 };

  it("grows exponentially with full jitter and a cap", () => {
    expect(backoffDelay(1, opts, () => 0.999999)).toBe(999);
    expect(backoffDelay(2, opts, () => 0.999999)).toBe(1999);
    expect(backoffDelay(3, opts, () => 0.999999)).toBe(3999);
    expect(backoffDelay(30, opts, () => 0.999999)).toBe(59_999);
    expect(backoffDelay(5, opts, () => 0)).toBe(100);
  });

  it("stays within [floor, cap] and never schedules past the deadline", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.double({ min: 0, max: 0.9999999, noNaN: true }), fc.integer({ min: 0, max: 4_000_000 }), fc.option(fc.integer({ min: 0, max: 10_000_000 }), { nil: undefined }), (att, rnd, elapsed, retryAfter) => {
        const d = backoffDelay(att, opts, () => rnd);
        expect(d).toBeGreaterThanOrEqual(opts.floorMs);
        expect(d).toBeLessThanOrEqual(opts.capMs);
        const acc = 1_000_000;
        const now = acc + elapsed;
        const n = nextAttempt(acc, att, now, opts, retryAfter, () => rnd);
        if (elapsed >= opts.maxAgeMs) expect(n.kind).toBe("dead");
        else {
          expect(n.kind).toBe("retry");
          if (n.kind === "retry") {
            expect(n.dueAt).toBeGreaterThan(now - 1);
            expect(n.dueAt).toBeLessThanOrEqual(acc + opts.maxAgeMs);
          }
        }
      }),
    );
  });

  it("honours Retry-After over the backoff", () => {
    const n = nextAttempt(0, 1, 10, opts, 30_000, () => 0);
    expect(n).toEqual({ kind: "retry", dueAt: 30_010, delayMs: 30_000 });
  });
});

describe.each(["fetch", "http"] as const)("WebhookSender (%s) against a real HTTP receiver", (transport) => {
  let rx: Receiver | undefined;
  const senders: WebhookSender[] = [];
  afterEach(async () => {
    for (const s of senders.splice(0)) s.close();
    await rx?.close();
    rx = undefined;
  });

  it("POSTs signed JSON and reuses the connection", async () => {
    rx = await startReceiver();
    const s = new WebhookSender({ timeoutMs: 2000, secret: SPEC_SECRET, userAgent: "didgate-test", transport, allowPrivate: ["127.0.0.0/8"] });
    senders.push(s);
    const body = JSON.stringify({ type: "message.received", id: "m1", text: "héllo" });
    const a = await s.send(rx.url, "m1", body);
    const b = await s.send(rx.url, "m2", body);
    for (let i = 3; i <= 6; i++) await s.send(rx.url, "m" + i, body);
    expect(a.result).toEqual({ kind: "delivered" });
    expect(a.status).toBe(200);
    expect(b.result.kind).toBe("delivered");
    expect(rx.received).toHaveLength(6);
    const r = rx.received[0];
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers["user-agent"]).toBe("didgate-test");
    expect(r.body).toBe(body);
    expect(r.id).toBe("m1");
    expect(r.signature.startsWith("v1,")).toBe(true);
    expect(verifyWebhook(SPEC_SECRET, r.headers, r.body)).toBe(true);
    expect(verifyWebhook("whsec_AAAA", r.headers, r.body)).toBe(false);
    // keep-alive: six sequential requests share one or two pooled connections
    expect(new Set(rx.received.map((x) => x.remotePort)).size).toBeLessThanOrEqual(2);
  });

  it("signs with the per-route secret when given", async () => {
    rx = await startReceiver();
    const s = new WebhookSender({ timeoutMs: 2000, secret: SPEC_SECRET, transport, allowPrivate: ["127.0.0.0/8"] });
    senders.push(s);
    await s.send(rx.url, "m1", "{}", "route-secret");
    expect(verifyWebhook("route-secret", rx.received[0].headers, "{}")).toBe(true);
    expect(verifyWebhook(SPEC_SECRET, rx.received[0].headers, "{}")).toBe(false);
  });

  it("classifies 410, 429 with Retry-After, 5xx, redirects (not followed), timeouts, refused connections, bad URLs", async () => {
    rx = await startReceiver();
    const s = new WebhookSender({ timeoutMs: 300, secret: SPEC_SECRET, transport, allowPrivate: ["127.0.0.0/8"] });
    senders.push(s);
    rx.respond = () => ({ status: 410 });
    expect((await s.send(rx.url, "a", "{}")).result).toEqual({ kind: "dead", reason: "http 410" });
    rx.respond = () => ({ status: 429, headers: { "retry-after": "3" } });
    expect((await s.send(rx.url, "b", "{}")).result).toEqual({ kind: "retry", reason: "http 429", retryAfterMs: 3000 });
    rx.respond = () => ({ status: 503 });
    expect((await s.send(rx.url, "c", "{}")).result).toEqual({ kind: "retry", reason: "http 503" });
    rx.respond = () => ({ status: 307, headers: { location: "/elsewhere" } });
    const before = rx.received.length;
    const red = await s.send(rx.url, "d", "{}");
    expect(red.result).toEqual({ kind: "retry", reason: "http 307" });
    expect(rx.received.length).toBe(before + 1);
    rx.respond = () => ({ status: 200, delayMs: 2000 });
    const slow = await s.send(rx.url, "e", "{}");
    expect(slow.result).toEqual({ kind: "retry", reason: "timeout" });
    expect(slow.status).toBe(0);
    const url = rx.url;
    await rx.down();
    // The pooled socket the receiver just closed may fail first (UND_ERR_SOCKET); then the refusal.
    const stale = await s.send(url, "f", "{}");
    expect(stale.result.kind === "retry" && stale.result.reason.startsWith("connect ")).toBe(true);
    const refused = await s.send(url, "f", "{}");
    expect(refused.result).toEqual({ kind: "retry", reason: "connect ECONNREFUSED" });
    expect((await s.send("ftp://127.0.0.1/x", "g", "{}")).result.kind).toBe("dead");
    expect((await s.send("not a url", "g", "{}")).result.kind).toBe("dead");
  });
});
