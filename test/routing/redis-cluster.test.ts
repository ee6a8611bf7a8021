/** The Redis route source and the CLI against a real 3-master Redis Cluster (hash-tagged prefix). */
import { afterEach, describe, expect, it } from "vitest";
import { routesCommand } from "../../src/cli/routes.js";
import { startCluster, type TestRedis } from "../helpers/redis.js";
import { makeEdge, redisConfig, until, voice } from "./redis-helpers.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function startTestCluster(): Promise<TestRedis[]> {
  const c = await startCluster();
  cleanups.push(() => c.stop());
  return c.nodes;
}

describe("Redis Cluster", () => {
  it("writes and syncs with a hash-tagged prefix; the writer refuses a prefix without one", async () => {
    const nodes = await startTestCluster();
    const url = `redis-cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(",")}`;
    const cfg = { url, prefix: "{didgate}:", stream_maxlen: 1000 };
    let err = "";
    expect(await routesCommand(["set", "+44*", JSON.stringify(voice("uk"))], cfg, () => undefined, (s) => (err += s)), err).toBe(0);
    const e = makeEdge(redisConfig(url, { prefix: "{didgate}:" }));
    cleanups.push(() => e.source.close());
    expect(await e.source.start()).toEqual({ stale: false });
    expect(e.lookup("+4420")).toBe("sip:x@uk");
    expect(await routesCommand(["set", "+33*", JSON.stringify(voice("fr"))], cfg, () => undefined)).toBe(0);
    await until(() => e.lookup("+3312") === "sip:x@fr", "delta through the cluster");
    // the function library was loaded on every master: FCALL works wherever the slot lives
    expect(e.log.find((l) => typeof l.msg === "string" && (l.msg as string).includes("could not load the didgate Redis Function library"))).toBeUndefined();
    err = "";
    expect(await routesCommand(["set", "+1*", JSON.stringify(voice("x"))], { ...cfg, prefix: "didgate:" }, () => undefined, (s) => (err += s))).toBe(1);
    expect(err).toMatch(/hash tag/);
  });
});
