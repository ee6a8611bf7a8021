/**
 * Script.batched(): the calls of one turn of the event loop in one EVALSHA, each with its own
 * result or error, in call order, on a real redis-server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { hashTag } from "../../src/redis/endpoint.js";
import { MAX_BATCH, Script } from "../../src/redis/script.js";

// appends ARGV[1] to the list KEYS[1] and answers the list's length; ARGV[2] "fail" raises an
// error after the write, "nil" answers nil, "table" a nested reply
const PUSH = new Script(`redis.call('RPUSH', KEYS[1], ARGV[1])
if ARGV[2] == 'fail' then redis.call('INCR', KEYS[1]) end
if ARGV[2] == 'nil' then return false end
if ARGV[2] == 'table' then return {redis.call('LLEN', KEYS[1]), ARGV[1], false} end
return redis.call('LLEN', KEYS[1])`);

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

async function evalshaCalls(): Promise<number> {
  const info = await c.info("commandstats");
  return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0) + Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

describe("Script.batched", () => {
  it("runs the calls of one tick in one script, in call order, each with its own result or error", async () => {
    await c.del("b:a", "b:b");
    const before = await evalshaCalls();
    const calls = [
      PUSH.batched(c, ["b:a"], ["1", ""]),
      PUSH.batched(c, ["b:b"], ["x", ""]),
      PUSH.batched(c, ["b:a"], ["2", "fail"]),
      PUSH.batched(c, ["b:a"], ["3", "nil"]),
      PUSH.batched(c, ["b:a"], ["4", "table"]),
    ];
    const r = await Promise.allSettled(calls);
    expect(r[0]).toEqual({ status: "fulfilled", value: 1 });
    expect(r[1]).toEqual({ status: "fulfilled", value: 1 });
    expect(r[2]!.status).toBe("rejected");
    expect(String((r[2] as PromiseRejectedResult).reason)).toMatch(/not an integer|WRONGTYPE|wrong kind/i);
    expect(r[3]).toEqual({ status: "fulfilled", value: null });
    expect(r[4]).toEqual({ status: "fulfilled", value: [4, "4", null] });
    // the failed call's write before its error stays, as it would alone; the calls after it ran
    expect(await c.lrange("b:a", 0, -1)).toEqual(["1", "2", "3", "4"]);
    // one script call for five (plus the EVAL that loaded it)
    expect((await evalshaCalls()) - before).toBeLessThanOrEqual(2);
  });

  it("splits a tick of more than MAX_BATCH calls, and a lone call runs the script itself", async () => {
    await c.del("b:n");
    const before = await evalshaCalls();
    const n = MAX_BATCH * 2 + 1;
    const r = await Promise.all(Array.from({ length: n }, (_, i) => PUSH.batched(c, ["b:n"], [String(i), ""])));
    expect(r).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(await c.lrange("b:n", 0, -1)).toEqual(Array.from({ length: n }, (_, i) => String(i)));
    expect((await evalshaCalls()) - before).toBeLessThanOrEqual(4);
    expect(await PUSH.batched(c, ["b:n"], ["last", ""])).toBe(n + 1);
  });

  it("loads the batch script again after SCRIPT FLUSH", async () => {
    await c.del("b:f");
    await Promise.all([PUSH.batched(c, ["b:f"], ["a", ""]), PUSH.batched(c, ["b:f"], ["b", ""])]);
    await c.script("FLUSH");
    expect(await Promise.all([PUSH.batched(c, ["b:f"], ["c", ""]), PUSH.batched(c, ["b:f"], ["d", ""])])).toEqual([3, 4]);
  });

  it("fails every call of a batch when the connection fails", async () => {
    const dead = new Redis({ port: redis.port, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    dead.on("error", () => undefined);
    const r = await Promise.allSettled([PUSH.batched(dead, ["b:x"], ["a", ""]), PUSH.batched(dead, ["b:x"], ["b", ""])]);
    expect(r.map((x) => x.status)).toEqual(["rejected", "rejected"]);
    dead.disconnect();
    expect(await c.exists("b:x")).toBe(0);
  });

  it("a call whose body returns an error reply (redis.error_reply, {err=…}) is rejected, as alone, not resolved with it", async () => {
    const ERR = new Script(`redis.call('SET', KEYS[1], ARGV[1])
if ARGV[1] == 'e' then return redis.error_reply('EBAD refused') end
if ARGV[1] == 't' then return {err='EBAD table'} end
if ARGV[1] == 'p' then return redis.pcall('INCR', KEYS[1]) end
return ARGV[1]`);
    await expect(ERR.run(c, ["b:e1"], ["e"])).rejects.toThrow(/EBAD refused/);
    const r = await Promise.allSettled([
      ERR.batched(c, ["b:e1"], ["e"]),
      ERR.batched(c, ["b:e2"], ["ok"]),
      ERR.batched(c, ["b:e3"], ["t"]),
      ERR.batched(c, ["b:e4"], ["p"]),
    ]);
    expect(r.map((x) => x.status)).toEqual(["rejected", "fulfilled", "rejected", "rejected"]);
    expect(String((r[0] as PromiseRejectedResult).reason)).toMatch(/EBAD refused/);
    expect((r[1] as PromiseFulfilledResult<unknown>).value).toBe("ok");
    expect(String((r[2] as PromiseRejectedResult).reason)).toMatch(/EBAD table/);
    expect(String((r[3] as PromiseRejectedResult).reason)).toMatch(/not an integer/);
  });

  it("hashTag: what a Cluster hashes", () => {
    expect(hashTag("{didgate}:smsout:1")).toBe("didgate");
    expect(hashTag("didgate:smsout:1")).toBeUndefined();
    expect(hashTag("a{}b{c}")).toBeUndefined();
  });
});
