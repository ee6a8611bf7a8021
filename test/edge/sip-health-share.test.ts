/**
 * Target health shared between edges through a real Redis: an edge that finds a target dead tells
 * the others at once; back up, likewise; an edge started later learns what is down; verdicts expire.
 */
import { RedisConnector } from "../../src/redis/client.js";
import { parseRedisUrl } from "../../src/redis/endpoint.js";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthShare } from "../../src/edge/health-share.js";
import { TargetHealth } from "../../src/edge/health.js";
import { targetKey } from "../../src/sip/resolve.js";
import { waitFor } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";

const logger = pino({ level: "silent" });
let redis: TestRedis;
const open: HealthShare[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const s of open) await s.close();
  await redis?.stop();
});

async function edge(id: string, suspectMs = 30_000): Promise<TargetHealth> {
  let share: HealthShare | undefined;
  const health = new TargetHealth({
    config: { enabled: false, interval_s: 10, failures: 3, recoveries: 2, alive_codes: [200] },
    logger,
    now: Date.now,
    suspectMs,
    onChange: (k, down, ttl) => share?.publish(k, down, ttl),
  });
  share = new HealthShare({ redis: new RedisConnector(parseRedisUrl(redis.url)), prefix: "didgate:", edgeId: id, logger, onRemote: (k, down, ttl) => health.remote(k, down, ttl) });
  open.push(share);
  await share.start();
  return health;
}

/**
 * One try of "a marks t down, b hears it": a publishes only when its own verdict changes, so a
 * verdict lost while the clients reconnect is sent again by marking t up and down once more.
 */
function tellUntilHeard(a: TargetHealth, b: TargetHealth, t: { transport: "udp"; address: string; port: number; key: string }): boolean {
  if (b.isDown(t.key)) return true;
  if (a.isDown(t.key)) a.alive(t.key);
  a.suspect(t, `sip:x@${t.address}:${t.port}`, "timer B");
  return false;
}

describe("health shared through Redis", () => {
  it("down and up on one edge reach the others; a late edge reads what is down", async () => {
    const a = await edge("a");
    const b = await edge("b");
    const t = { transport: "udp" as const, address: "127.0.0.1", port: 5999, key: targetKey("udp", "127.0.0.1", 5999) };
    a.suspect(t, "sip:x@127.0.0.1:5999", "timer B");
    expect(a.isDown(t.key)).toBe(true);
    await waitFor(() => b.isDown(t.key), 3000);
    expect(b.down).toBe(1);

    const c = await edge("c");
    expect(c.isDown(t.key)).toBe(true);

    a.alive(t.key);
    await waitFor(() => !b.isDown(t.key) && !c.isDown(t.key), 3000);
    expect(b.down).toBe(0);
  });

  it("after Redis restarts, verdicts reach the others again (the subscriber subscribes again itself); closing while it reconnects leaves no unhandled rejection", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => {
      unhandled.push(e);
    };
    process.on("unhandledRejection", onUnhandled);
    try {
      const a = await edge("a3");
      const b = await edge("b3");
      await redis.kill();
      await redis.restart();
      const t = { transport: "udp" as const, address: "127.0.0.1", port: 5997, key: targetKey("udp", "127.0.0.1", 5997) };
      // the clients reconnect on their own (retry every few hundred ms): keep telling until b hears
      await waitFor(() => tellUntilHeard(a, b, t), 15_000);
      // an edge closed while its subscriber is reconnecting
      const c = new HealthShare({ redis: new RedisConnector(parseRedisUrl(redis.url)), prefix: "didgate:", edgeId: "c3", logger, onRemote: () => undefined });
      await c.start();
      await redis.kill();
      const restarted = redis.restart();
      await new Promise((r) => setTimeout(r, 150));
      await c.close();
      await restarted;
      await new Promise((r) => setTimeout(r, 1500));
      expect(unhandled.map(String)).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  }, 40_000);

  it("an edge started while Redis is down hears verdicts once Redis is back", async () => {
    await redis.kill();
    let b: TargetHealth;
    try {
      b = await edge("b4");
    } finally {
      await redis.restart();
    }
    const a = await edge("a4");
    const t = { transport: "udp" as const, address: "127.0.0.1", port: 5996, key: targetKey("udp", "127.0.0.1", 5996) };
    await waitFor(() => tellUntilHeard(a, b, t), 15_000);
  }, 40_000);

  it("a remote verdict expires on its own", async () => {
    const a = await edge("a2", 300);
    const b = await edge("b2");
    const t = { transport: "udp" as const, address: "127.0.0.1", port: 5998, key: targetKey("udp", "127.0.0.1", 5998) };
    a.suspect(t, "sip:x@127.0.0.1:5998", "timer B");
    await waitFor(() => b.isDown(t.key), 3000);
    await waitFor(() => !b.isDown(t.key), 5000);
  });
});
