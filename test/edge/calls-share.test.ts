/** max_calls across edges: two call counters sharing their slots through a real redis-server. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CallCounter } from "../../src/edge/calls.js";
import { CallShare } from "../../src/edge/calls-share.js";
import { RedisConnector } from "../../src/redis/client.js";
import { createLogger } from "../../src/ops/logger.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe("CallShare", () => {
  it("an edge sees the other's calls against max_calls; a released or expired call frees the slot", async () => {
    let now = 1_000_000;
    const clock = (): number => now;
    const edge = (id: string): { counter: CallCounter; share: CallShare } => {
      const counter = new CallCounter(clock);
      const share = new CallShare({ redis: RedisConnector.fromUrl(redis.url), prefix: "t:", edgeId: id, logger: createLogger("silent"), counter, keys: () => ["k:carrier"], ttlMs: () => 60_000, intervalMs: 60_000, now: clock });
      counter.share = share;
      return { counter, share };
    };
    const a = edge("a");
    const b = edge("b");
    await a.share.start();
    await b.share.start();
    try {
      expect(a.counter.acquire("k:carrier", "call-1", 2, 10_000)).toBe(true);
      expect(a.counter.acquire("k:carrier", "call-2", 2, 10_000)).toBe(true);
      await new Promise((r) => setTimeout(r, 50)); // the ZADDs are sent without waiting
      await b.share.refresh();
      expect(b.share.othersCount("k:carrier")).toBe(2);
      expect(b.counter.acquire("k:carrier", "call-3", 2, 10_000)).toBe(false);
      a.counter.release("k:carrier", "call-1");
      await new Promise((r) => setTimeout(r, 50));
      await b.share.refresh();
      expect(b.counter.acquire("k:carrier", "call-3", 2, 60_000)).toBe(true);
      await a.share.refresh();
      expect(a.share.othersCount("k:carrier")).toBe(1);
      // a lost BYE on edge a: its member expires at its deadline, also for edge b
      now += 10_001;
      await b.share.refresh();
      expect(b.share.othersCount("k:carrier")).toBe(0);
      expect(Number(await redis.cli("ZCARD", "t:calls:k:carrier"))).toBe(1); // only b's own call is left
    } finally {
      await a.share.close();
      await b.share.close();
    }
  });
});
