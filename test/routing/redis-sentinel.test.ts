/** The Redis route source and the CLI through Redis Sentinel (redis-sentinel:// URL). */
import { afterEach, describe, expect, it } from "vitest";
import { routesCommand } from "../../src/cli/routes.js";
import { startRedis, startSentinel } from "../helpers/redis.js";
import { makeEdge, redisConfig, until, voice } from "./redis-helpers.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe("Redis Sentinel", () => {
  it("an edge and the CLI find the master through the sentinel", async () => {
    const master = await startRedis();
    cleanups.push(() => master.stop());
    const sentinel = await startSentinel(master);
    cleanups.push(() => sentinel.stop());
    const cfg = { url: sentinel.url, prefix: "didgate:", stream_maxlen: 1000 };
    let err = "";
    expect(await routesCommand(["set", "+44*", JSON.stringify(voice("uk"))], cfg, () => undefined, (s) => (err += s)), err).toBe(0);
    expect(await master.cli("HGET", "didgate:routes", "+44*")).toContain("sip:x@uk");
    const e = makeEdge(redisConfig(sentinel.url));
    cleanups.push(() => e.source.close());
    expect(await e.source.start()).toEqual({ stale: false });
    expect(e.lookup("+4420")).toBe("sip:x@uk");
    expect(await routesCommand(["set", "+33*", JSON.stringify(voice("fr"))], cfg, () => undefined)).toBe(0);
    await until(() => e.lookup("+3312") === "sip:x@fr", "delta through the sentinel connection");
    expect(e.source.status().endpoint).toBe(`redis-sentinel://127.0.0.1:${sentinel.port}/mymaster`);
  });
});
