/**
 * The in-flight marker script (MARK) on a real redis-server: past the trim size it drops matched
 * ("!") and expired markers and keeps live ones; the next trim waits until the hash doubled from
 * what the last one kept.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { MARK, MARKERS_TRIM_AT } from "../../src/edge/sms-outbound.js";

let redis: TestRedis;
let c: Redis;

beforeAll(async () => {
  redis = await startRedis();
  c = new Redis(redis.url);
});

afterAll(async () => {
  c?.disconnect();
  await redis?.stop();
});

const KEY = "t:smsout:if:b:%2B1:%2B44";
const TTL_S = 3600;
const NOW = 1_800_000_000_000;
const mark = (id: string, at = NOW): Promise<unknown> => MARK.run(c, [KEY, `${KEY}:trim`], [id, JSON.stringify({ at, s: "x", w: {} }), TTL_S, NOW - TTL_S * 1000, MARKERS_TRIM_AT, 600]);

describe("MARK", () => {
  it("trims stale markers past the trim size, then not again until the hash doubled", async () => {
    await c.del(KEY, `${KEY}:trim`);
    // a matched marker and an expired one, then live ones up to the trim size
    await mark("matched");
    await c.hset(KEY, "matched", "!b");
    await mark("old", NOW - TTL_S * 1000 - 1);
    for (let i = 0; i < MARKERS_TRIM_AT - 2; i++) await mark(`m${i}`);
    expect(await c.hlen(KEY)).toBe(MARKERS_TRIM_AT);
    expect(await c.hexists(KEY, "matched")).toBe(1);
    // one more: trimmed, the live ones kept, the next trim at twice what is left
    await mark("m-next");
    expect(await c.hexists(KEY, "matched")).toBe(0);
    expect(await c.hexists(KEY, "old")).toBe(0);
    const left = await c.hlen(KEY);
    expect(left).toBe(MARKERS_TRIM_AT - 1);
    expect(Number(await c.get(`${KEY}:trim`))).toBe(2 * left);
    // a new matched marker stays until the hash passes that size
    await c.hset(KEY, "m0", "!b");
    for (let i = left; i < 2 * left; i++) await mark(`n${i}`);
    expect(await c.hlen(KEY)).toBe(2 * left);
    expect(await c.hexists(KEY, "m0")).toBe(1);
    await mark("last");
    expect(await c.hexists(KEY, "m0")).toBe(0);
    expect(await c.hlen(KEY)).toBe(2 * left);
    expect(await c.ttl(`${KEY}:trim`)).toBeGreaterThan(0);
  });
});
