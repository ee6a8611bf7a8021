/** Durable reassembly buffers against a real redis-server. */
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisPartStore } from "../../src/delivery/parts.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { freshPrefix, sleep } from "./util.js";

let redis: TestRedis;
let a: Redis;
let b: Redis;

beforeAll(async () => {
  redis = await startRedis();
  a = new Redis(redis.url);
  b = new Redis(redis.url);
});
afterAll(async () => {
  a?.disconnect();
  b?.disconnect();
  await redis?.stop();
});

describe("RedisPartStore", () => {
  it("reassembles in any order across two edges, discards duplicates, forgets on done", async () => {
    const prefix = freshPrefix();
    const s1 = new RedisPartStore({ client: a, prefix, timeoutMs: 60_000 });
    const s2 = new RedisPartStore({ client: b, prefix, timeoutMs: 60_000 }); // another edge, or the same after a restart
    expect(await s1.add("smsc-a|+44|+1|7|3", 3, 3, "three")).toEqual({ kind: "stored" });
    expect(await s1.add("smsc-a|+44|+1|7|3", 3, 1, "one")).toEqual({ kind: "stored" });
    expect(await s2.add("smsc-a|+44|+1|7|3", 3, 1, "one again")).toEqual({ kind: "duplicate" });
    expect(await s2.size()).toBe(1);
    expect(await s2.add("smsc-a|+44|+1|7|3", 3, 2, "two")).toEqual({ kind: "complete", parts: ["one", "two", "three"] });
    // Completed but not yet done: a retransmitted part is a duplicate.
    expect(await s1.add("smsc-a|+44|+1|7|3", 3, 2, "two")).toEqual({ kind: "duplicate" });
    await s2.done("smsc-a|+44|+1|7|3");
    expect(await s1.size()).toBe(0);
    expect(await a.exists(`${prefix}parts:smsc-a|+44|+1|7|3`)).toBe(0);
    await expect(s1.add("k", 2, 3, "x")).rejects.toThrow(RangeError);
  });

  it("hands out timed-out buffers once (leased), answers late parts as late, refuses when full", async () => {
    const prefix = freshPrefix();
    const s = new RedisPartStore({ client: a, prefix, timeoutMs: 100, leaseMs: 60_000, maxBuffers: 2 });
    expect(await s.add("k1", 3, 2, "b")).toEqual({ kind: "stored" });
    expect(await s.add("k2", 2, 1, "x")).toEqual({ kind: "stored" });
    expect(await s.add("k3", 2, 1, "y")).toEqual({ kind: "full" });
    expect(await s.sweep()).toEqual([]);
    await sleep(150);
    const other = new RedisPartStore({ client: b, prefix, timeoutMs: 100 });
    const swept = await s.sweep();
    expect(swept.map((x) => x.key).sort()).toEqual(["k1", "k2"]);
    const k1 = swept.find((x) => x.key === "k1")!;
    expect(k1.total).toBe(3);
    expect(k1.parts).toEqual([undefined, "b", undefined]);
    expect(await other.sweep()).toEqual([]); // leased to the first sweeper
    expect(await other.add("k1", 3, 3, "c")).toEqual({ kind: "late" });
    await s.done("k1");
    await s.done("k2");
    expect(await s.size()).toBe(0);
    expect(await s.add("k1", 3, 1, "a")).toEqual({ kind: "stored" }); // a new message with the same key
  });

  it("a crash between complete and done: the sweep hands the complete buffer out later", async () => {
    const prefix = freshPrefix();
    const s = new RedisPartStore({ client: a, prefix, timeoutMs: 100 });
    await s.add("k", 2, 1, "a");
    expect((await s.add("k", 2, 2, "b")).kind).toBe("complete");
    // (edge dies here)
    await sleep(150);
    const swept = await new RedisPartStore({ client: b, prefix, timeoutMs: 100 }).sweep();
    expect(swept).toEqual([{ key: "k", total: 2, parts: ["a", "b"] }]);
  });

  it("completes exactly once for any arrival order with duplicates", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }).chain((total) => fc.tuple(fc.constant(total), fc.array(fc.integer({ min: 1, max: total }), { minLength: total, maxLength: total * 3 }))), async ([total, extra]) => {
        const prefix = freshPrefix();
        const s = new RedisPartStore({ client: a, prefix, timeoutMs: 60_000 });
        // every part at least once, in a shuffled order with duplicates
        const order = [...extra, ...Array.from({ length: total }, (_, i) => i + 1)];
        let completes = 0;
        let got: string[] = [];
        for (const seq of order) {
          const r = await s.add("k", total, seq, `p${seq}`);
          if (r.kind === "complete") {
            completes++;
            got = r.parts;
          }
        }
        expect(completes).toBe(1);
        expect(got).toEqual(Array.from({ length: total }, (_, i) => `p${i + 1}`));
        await s.done("k");
      }),
      { numRuns: 25 },
    );
  });
});
