/**
 * The spool, the durable reassembly parts and `didgate dlq` on Redis Sentinel and Redis Cluster
 * (real redis-servers): every Redis user is built on the one parsed endpoint, so a
 * redis-sentinel:// or redis-cluster:// URL works for each of them as it does for the route sync.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { dlqCommand } from "../../src/cli/dlq.js";
import { RedisPartStore } from "../../src/delivery/parts.js";
import { spoolConnect } from "../../src/delivery/redis.js";
import { RedisConnector } from "../../src/redis/client.js";
import { startCluster, startRedis, startSentinel } from "../helpers/redis.js";
import { startReceiver } from "./receiver.js";
import { job, makeDelivery, until } from "./util.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Spool, parts and dlq through `url`; `keyCli` runs redis-cli where the key lives. */
async function exercise(url: string, prefix: string, keyCli: (key: string, ...args: string[]) => Promise<string>): Promise<void> {
  const connector = RedisConnector.fromUrl(url);

  // spool: accepted only once Redis holds it, then delivered to a real receiver
  const rx = await startReceiver();
  cleanups.push(() => rx.close());
  const { delivery } = makeDelivery(url, prefix);
  cleanups.push(() => delivery.close());
  await delivery.start();
  for (let i = 0; i < 5; i++) expect(await delivery.accept(job(i, { webhook: rx.url }, "topo"))).toBe("accepted");
  await rx.until(() => rx.delivered.length === 5);
  expect(new Set(rx.delivered)).toEqual(new Set(["topo_0", "topo_1", "topo_2", "topo_3", "topo_4"]));

  // parts: stored in Redis, complete when the last one comes
  const client = spoolConnect(connector, "didgate-parts")("enqueue");
  client.on("error", () => undefined);
  cleanups.push(() => client.disconnect());
  await until(() => client.status === "ready", 10_000, "parts connection ready");
  const store = new RedisPartStore({ client, prefix, timeoutMs: 60_000 });
  expect(await store.add("k1", 2, 1, "first")).toEqual({ kind: "stored" });
  expect(await keyCli(`${prefix}parts:k1`, "HGET", `${prefix}parts:k1`, "1")).toBe("first\n");
  expect(await store.add("k1", 2, 2, "second")).toEqual({ kind: "complete", parts: ["first", "second"] });
  await store.done("k1");
  expect(await store.size()).toBe(0);

  // dlq: list what is in the dead-letter stream
  const id = (await keyCli(`${prefix}dlq`, "XADD", `${prefix}dlq`, "*", "j", JSON.stringify({ ...job(9, { webhook: rx.url }, "dead"), attempts: 3 }), "reason", "http 410", "at", String(Date.now()), "by", "t")).trim();
  const out: string[] = [];
  expect(await dlqCommand(["list"], { url, prefix }, (s) => out.push(s))).toBe(0);
  expect(out.join("\n")).toContain(id);
  expect(out.join("\n")).toContain("dead_9");
  expect(out.join("\n")).toContain("1 shown, 1 in");
}

describe("Redis users on Sentinel and Cluster", () => {
  it("spool, parts store and dlq list through a redis-sentinel:// URL", async () => {
    const master = await startRedis();
    cleanups.push(() => master.stop());
    const sentinel = await startSentinel(master);
    cleanups.push(() => sentinel.stop());
    await exercise(sentinel.url, "s:", (_key, ...args) => master.cli(...args));
    // the keys are on the master the sentinel named
    expect(Number(await master.cli("EXISTS", "s:inbound"))).toBe(1);
    // the real command line, with the sentinel URL in the config file
    const dir = mkdtempSync(join(tmpdir(), "didgate-dlq-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const cfg = join(dir, "didgate.yaml");
    writeFileSync(cfg, JSON.stringify({ routes: { redis: { url: sentinel.url, prefix: "s:" } } }));
    const r = spawnSync(process.execPath, ["dist/src/cli.js", "dlq", "list", "--config", cfg], { encoding: "utf8", env: { PATH: process.env.PATH ?? "" }, timeout: 20_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("dead_9");
    expect(r.stdout).toContain("1 shown, 1 in s:dlq");
  });

  it("spool, parts store and dlq list through a redis-cluster:// URL (hash-tagged prefix)", async () => {
    const cluster = await startCluster();
    cleanups.push(() => cluster.stop());
    // redis-cli -c follows the cluster's MOVED redirections to the node that owns the key
    await exercise(cluster.url, "{dg}:", (_key, ...args) => cluster.nodes[0]!.cli("-c", ...args));
  });
});
