/**
 * Spool mode against a real redis-server and a real HTTP receiver.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import type { Delivery } from "../../src/delivery/delivery.js";
import type { SmppForwarder } from "../../src/delivery/smpp-forward.js";
import { listDlq } from "../../src/delivery/dlq.js";
import { dlqCommand } from "../../src/cli/dlq.js";
import { verifyWebhook } from "../../src/delivery/webhook.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { startReceiver, type Receiver } from "./receiver.js";
import { SECRET, freshPrefix, job, makeDelivery, metric, sleep, until } from "./util.js";
import { withSecret } from "../../src/delivery/secret-ref.js";

let redis: TestRedis;
let rx: Receiver | undefined;
const open: Delivery[] = [];
const clients: Redis[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  for (const d of open.splice(0)) await d.close();
  for (const c of clients.splice(0)) c.disconnect();
  await rx?.close();
  rx = undefined;
});

function track(d: Delivery): Delivery {
  open.push(d);
  return d;
}

function client(): Redis {
  const c = new Redis(redis.url);
  clients.push(c);
  return c;
}

function idsOf(r: Receiver): string[] {
  return r.received.map((x) => x.id);
}

describe("spool", () => {
  it("holds messages while the receiver is down, then delivers each once, signed, with the same webhook-id on every retry", async () => {
    rx = await startReceiver();
    const url = rx.url;
    await rx.down();
    const prefix = freshPrefix();
    const { delivery, registry } = makeDelivery(redis.url, prefix);
    track(delivery);
    const jobs = Array.from({ length: 20 }, (_, i) => job(i, { webhook: url }));
    for (const j of jobs) expect(await delivery.accept(j)).toBe("accepted");
    expect(await metric(registry, "didgate_spool_depth")).toBe(20);
    await delivery.start();
    await until(async () => (await metric(registry, "didgate_delivery_retries_total")) >= 20, 10_000, "retries");
    // Up again, but the first request of each message gets a 503: every message is retried at least once more.
    const seen = new Set<string>();
    rx.respond = (r) => {
      if (seen.has(r.id)) return { status: 200 };
      seen.add(r.id);
      return { status: 503 };
    };
    await rx.up();
    await rx.until(() => rx!.delivered.length >= 20);
    await sleep(300); // nothing more should arrive
    expect([...rx.delivered].sort()).toEqual(jobs.map((j) => j.id).sort());
    for (const r of rx.received) {
      const body = JSON.parse(r.body) as { id: string; type: string };
      expect(r.id).toBe(body.id);
      expect(body.type).toBe("message.received");
      expect(verifyWebhook(SECRET, r.headers, r.body)).toBe(true);
    }
    for (const j of jobs) expect(idsOf(rx).filter((x) => x === j.id).length).toBeGreaterThanOrEqual(2);
    expect(await metric(registry, "didgate_delivery_total", { kind: "webhook", outcome: "delivered" })).toBe(20);
    expect(await metric(registry, "didgate_spool_depth")).toBe(0);
    expect(await metric(registry, "didgate_dead_letters_total")).toBe(0);
    const c = client();
    expect(await c.xlen(`${prefix}inbound`)).toBe(0);
    expect(await c.zcard(`${prefix}retry`)).toBe(0);
  });

  it("dead-letters a 410 at once; dlq list, replay and drop", async () => {
    rx = await startReceiver(() => ({ status: 410 }));
    const prefix = freshPrefix();
    // The route's secret is looked up by number at delivery (the spool keeps only a reference).
    const { delivery, registry } = makeDelivery(redis.url, prefix, { secrets: (n) => (n === "+15125550100" ? "route-secret" : undefined) });
    track(delivery);
    await delivery.start();
    const jobs = [0, 1, 2].map((i) => job(i, withSecret({ webhook: rx!.url }, "+15125550100", "route-secret")));
    for (const j of jobs) expect(await delivery.accept(j)).toBe("accepted");
    await until(async () => (await metric(registry, "didgate_dead_letters_total", { reason: "gone" })) === 3, 10_000, "dead letters");
    expect(rx.received.length).toBe(3); // one attempt each
    const c = client();
    const dl = await listDlq(c, prefix);
    expect(dl.map((e) => e.id).sort()).toEqual(["msg_0", "msg_1", "msg_2"]);
    expect(dl[0].reason).toBe("http 410");
    expect(dl[0].attempts).toBe(1);
    expect(dl[0].webhook).toBe(rx.url);
    expect(dl[0].by).toBe("edge-test");

    const lines: string[] = [];
    const out = (s: string) => lines.push(...s.replace(/\n$/, "").split("\n"));
    expect(await dlqCommand(["list"], { url: redis.url, prefix }, out)).toBe(0);
    expect(lines.join("\n")).toContain("msg_1");
    expect(lines.join("\n")).not.toContain("route-secret");
    expect(JSON.stringify(await c.xrange(`${prefix}dlq`, "-", "+"))).not.toContain("route-secret");
    expect(lines.at(-1)).toBe(`3 shown, 3 in ${prefix}dlq`);
    lines.length = 0;
    expect(await dlqCommand(["list", "--json", "--count", "1"], { url: redis.url, prefix }, out)).toBe(0);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]).entryId).toBe(dl[0].entryId);

    // Replay one: the receiver takes it now; same webhook-id, signed with the route's secret.
    rx.respond = () => ({ status: 200 });
    lines.length = 0;
    expect(await dlqCommand(["replay", dl[0].entryId], { url: redis.url, prefix }, out)).toBe(0);
    expect(lines[0]).toBe("replayed 1");
    await rx.until(() => rx!.delivered.length === 1);
    expect(rx.delivered[0]).toBe(dl[0].id);
    const last = rx.received.at(-1)!;
    expect(verifyWebhook("route-secret", last.headers, last.body)).toBe(true);
    // Replaying it again: not found.
    lines.length = 0;
    expect(await dlqCommand(["replay", dl[0].entryId], { url: redis.url, prefix }, out)).toBe(1);
    expect(lines.join("\n")).toContain("not found");
    // Drop one by id, replay the rest with --all.
    lines.length = 0;
    expect(await dlqCommand(["drop", dl[1].entryId], { url: redis.url, prefix }, out)).toBe(0);
    expect(lines[0]).toBe("dropped 1");
    expect(await dlqCommand(["replay", "--all"], { url: redis.url, prefix }, out)).toBe(0);
    await rx.until(() => rx!.delivered.length === 2);
    expect(rx.delivered[1]).toBe(dl[2].id);
    expect(await c.xlen(`${prefix}dlq`)).toBe(0);
    // drop --all on an empty stream, and usage errors
    expect(await dlqCommand(["drop", "--all"], { url: redis.url, prefix }, out)).toBe(0);
    expect(await dlqCommand(["explode"], { url: redis.url, prefix }, out)).toBe(2);
    expect(await dlqCommand(["replay"], { url: redis.url, prefix }, out)).toBe(2);
    expect(await dlqCommand(["drop", "nonsense"], { url: redis.url, prefix }, out)).toBe(2);
  });

  it("honours 429 Retry-After and retries after a timeout", async () => {
    let n = 0;
    rx = await startReceiver((r) => {
      n++;
      if (r.id === "msg_429" && n === 1) return { status: 429, headers: { "retry-after": "1" } };
      if (r.id === "slow_1" && rx!.received.filter((x) => x.id === "slow_1").length === 1) return { status: 200, delayMs: 1500 };
      return { status: 200 };
    });
    const prefix = freshPrefix();
    const { delivery, registry } = makeDelivery(redis.url, prefix, { webhookOver: { timeout_ms: 400 } });
    track(delivery);
    await delivery.start();
    expect(await delivery.accept(job(429, { webhook: rx.url }))).toBe("accepted");
    await rx.until(() => rx!.delivered.includes("msg_429"));
    const tries = rx.received.filter((x) => x.id === "msg_429");
    expect(tries).toHaveLength(2);
    // Retry-After: 1 s (the backoff alone would have waited at most 50 ms).
    expect(tries[1].at - tries[0].at).toBeGreaterThanOrEqual(950);

    expect(await delivery.accept(job(1, { webhook: rx.url }, "slow"))).toBe("accepted");
    await until(async () => (await metric(registry, "didgate_delivery_total", { outcome: "delivered" })) === 2, 10_000, "slow message delivered");
    const slow = rx.received.filter((x) => x.id === "slow_1");
    expect(slow.length).toBeGreaterThanOrEqual(2);
    expect(await metric(registry, "didgate_delivery_total", { outcome: "retry" })).toBeGreaterThanOrEqual(2);
  });

  it("consumers that left are removed from the group once nothing is pending for them", async () => {
    const prefix = freshPrefix();
    const c = client();
    const stream = `${prefix}inbound`;
    const group = "didgate-delivery";
    // Before any edge runs: an edge that left with nothing pending, and one that left holding a message.
    await c.call("XGROUP", "CREATE", stream, group, "0", "MKSTREAM");
    await c.call("XGROUP", "CREATECONSUMER", stream, group, "gone-idle");
    await c.xadd(stream, "*", "j", JSON.stringify({ ...job(7, { webhook: "http://127.0.0.1:9/x" }), skip: 0 }));
    expect(await c.call("XREADGROUP", "GROUP", group, "gone-busy", "COUNT", "1", "STREAMS", stream, ">")).not.toBeNull();
    const consumers = async () => ((await c.call("XINFO", "CONSUMERS", stream, group)) as unknown[][]).map((row) => ({ name: String(row[1]), pending: Number(row[3]) }));
    // A visibility timeout longer than the test: gone-busy's message is not reclaimed meanwhile.
    const { delivery } = makeDelivery(redis.url, prefix, { instanceId: "edge-a", redisOver: { visibility_ms: 600_000, reclaim_interval_ms: 50, consumer_idle_ms: 200 } });
    track(delivery);
    await delivery.start();
    await until(async () => !(await consumers()).some((x) => x.name === "gone-idle"), 10_000, "idle consumer removed");
    await sleep(300); // several more sweeps
    const left = await consumers();
    // Removing gone-busy would drop its pending message: it stays until the message is reclaimed.
    expect(left.find((x) => x.name === "gone-busy")?.pending).toBe(1);
    expect(left.some((x) => x.name === "gone-idle")).toBe(false);
  });

  it("two edges sharing the spool deliver every message exactly once", async () => {
    rx = await startReceiver(() => ({ status: 200, delayMs: 5 }));
    const prefix = freshPrefix();
    // One edge on each webhook transport.
    const a = makeDelivery(redis.url, prefix, { instanceId: "edge-a", webhookOver: { max_in_flight: 8, transport: "fetch" } });
    const b = makeDelivery(redis.url, prefix, { instanceId: "edge-b", webhookOver: { max_in_flight: 8, transport: "http" } });
    track(a.delivery);
    track(b.delivery);
    await a.delivery.start();
    await b.delivery.start();
    const jobs = Array.from({ length: 300 }, (_, i) => job(i, { webhook: rx!.url }));
    await Promise.all(jobs.map((j, i) => (i % 2 ? a : b).delivery.accept(j)));
    await rx.until(() => rx!.delivered.length >= 300);
    await sleep(300);
    expect(rx.received.length).toBe(300);
    expect(new Set(idsOf(rx)).size).toBe(300);
    const da = await metric(a.registry, "didgate_delivery_total", { outcome: "delivered" });
    const db = await metric(b.registry, "didgate_delivery_total", { outcome: "delivered" });
    expect(da + db).toBe(300);
    expect(da).toBeGreaterThan(0);
    expect(db).toBeGreaterThan(0);
  });

  it("after a 410 the webhook is skipped; SMPP is retried until it accepts", async () => {
    rx = await startReceiver(() => ({ status: 410 }));
    const calls: number[] = [];
    const forwarder: SmppForwarder = {
      forward: async () => {
        calls.push(Date.now());
        return calls.length < 3 ? { kind: "retry", reason: "no bind of app-1" } : { kind: "delivered" };
      },
    };
    const prefix = freshPrefix();
    const { delivery, registry } = makeDelivery(redis.url, prefix, { forwarder });
    track(delivery);
    await delivery.start();
    expect(await delivery.accept(job(1, { webhook: rx.url, smpp: "app-1" }))).toBe("accepted");
    await until(async () => (await metric(registry, "didgate_delivery_total", { kind: "smpp", outcome: "delivered" })) === 1, 10_000, "smpp delivery");
    expect(calls).toHaveLength(3);
    expect(rx.received).toHaveLength(1);
    expect(await metric(registry, "didgate_delivery_retries_total", { kind: "smpp" })).toBe(2);
  });

  it("survives a Redis crash and restart (AOF): spooled messages are delivered, accept() is temporary meanwhile", async () => {
    const durable = await startRedis({ persistence: true });
    try {
      rx = await startReceiver(() => ({ status: 503 }));
      const prefix = freshPrefix();
      const { delivery, registry } = makeDelivery(durable.url, prefix, { enqueue_timeout_ms: 500 });
      track(delivery);
      await delivery.start();
      const jobs = Array.from({ length: 10 }, (_, i) => job(i, { webhook: rx!.url }));
      for (const j of jobs) expect(await delivery.accept(j)).toBe("accepted");
      await until(async () => (await metric(registry, "didgate_delivery_retries_total")) >= 10, 10_000, "retries");
      await durable.kill();
      expect(await delivery.accept(job(99, { webhook: rx.url }))).toBe("temporary");
      rx.respond = () => ({ status: 200 });
      await durable.restart();
      await rx.until(() => rx!.delivered.length >= 10, 20_000);
      await sleep(300);
      // Every spooled message, once; the one answered "temporary" was not written behind our back.
      expect([...rx.delivered].sort()).toEqual(jobs.map((j) => j.id).sort());
    } finally {
      for (const d of open.splice(0)) await d.close();
      await durable.stop();
    }
  });

  it("dead-letters unreadable spool entries instead of stalling on them", async () => {
    rx = await startReceiver();
    const prefix = freshPrefix();
    const { delivery, registry } = makeDelivery(redis.url, prefix);
    track(delivery);
    await delivery.start();
    const c = client();
    await c.xadd(`${prefix}inbound`, "*", "j", "{not json");
    await c.xadd(`${prefix}inbound`, "*", "j", JSON.stringify({ id: 5 }));
    await c.xadd(`${prefix}inbound`, "*", "other", "field");
    expect(await delivery.accept(job(1, { webhook: rx.url }))).toBe("accepted");
    await rx.until(() => rx!.delivered.length === 1);
    await until(async () => (await metric(registry, "didgate_dead_letters_total")) === 3, 10_000, "corrupt entries dead-lettered");
    const dl = await listDlq(c, prefix);
    expect(dl.map((e) => e.reason)).toEqual(["corrupt spool entry", "corrupt spool entry", "corrupt spool entry"]);
    expect(dl[0].id).toBeNull();
    const lines: string[] = [];
    expect(await dlqCommand(["replay", "--all"], { url: redis.url, prefix }, (l: string) => lines.push(...l.replace(/\n$/, "").split("\n")))).toBe(1);
    expect(lines.join("\n")).toContain("unreadable");
    await until(async () => (await c.xlen(`${prefix}inbound`)) === 0, 5_000, "inbound empty");
  });

  it("dead-letters after max age", async () => {
    rx = await startReceiver(() => ({ status: 500 }));
    const prefix = freshPrefix();
    const { delivery, registry } = makeDelivery(redis.url, prefix, { webhookOver: { max_age_s: 0.5 } });
    track(delivery);
    await delivery.start();
    expect(await delivery.accept(job(7, { webhook: rx.url }))).toBe("accepted");
    await until(async () => (await metric(registry, "didgate_dead_letters_total", { reason: "max_age" })) === 1, 10_000, "max-age dead letter");
    expect(rx.received.length).toBeGreaterThanOrEqual(2);
    const dl = await listDlq(client(), prefix);
    expect(dl).toHaveLength(1);
    expect(dl[0].reason).toBe("max_age (last: http 500)");
  });

  it("answers temporary when the spool is full or Redis is unreachable", async () => {
    const prefix = freshPrefix();
    const { delivery } = makeDelivery(redis.url, prefix, { redisOver: { max_depth: 2 } });
    track(delivery);
    expect(await delivery.accept(job(1, { webhook: "http://127.0.0.1:9/x" }))).toBe("accepted");
    expect(await delivery.accept(job(2, { webhook: "http://127.0.0.1:9/x" }))).toBe("accepted");
    expect(await delivery.accept(job(3, { webhook: "http://127.0.0.1:9/x" }))).toBe("temporary");
    expect(await delivery.accept(job(4, {}))).toBe("permanent");
    const dead = makeDelivery("redis://127.0.0.1:1", freshPrefix(), { enqueue_timeout_ms: 300 });
    track(dead.delivery);
    expect(await dead.delivery.accept(job(5, { webhook: "http://127.0.0.1:9/x" }))).toBe("temporary");
  });
});
