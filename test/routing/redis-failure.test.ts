/**
 * The Redis route sync under failure: concurrent writes during the initial load, Redis killed and
 * restarted, FLUSHALL and the shrink guard, starting from the snapshot while Redis is down.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { loadSnapshot } from "../../src/routing/sources/snapshot.js";
import { makeEdge, metricValue, redisConfig, tempDir, until, voice, writerFor, type Edge } from "./redis-helpers.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function server(persistence = false): Promise<TestRedis> {
  const r = await startRedis({ persistence });
  cleanups.push(() => r.stop());
  return r;
}
function edge(url: string, over: Parameters<typeof redisConfig>[1] = {}, extra: Parameters<typeof makeEdge>[1] = {}): Edge {
  const e = makeEdge(redisConfig(url, over), extra);
  cleanups.push(() => e.source.close());
  return e;
}
function writer(url: string) {
  const w = writerFor(url);
  w.client.on("error", () => undefined);
  cleanups.push(() => w.client.disconnect());
  return w;
}

/** The hash as a Map key → target host, read with HGETALL. */
async function hashState(url: string): Promise<Map<string, string>> {
  const { client } = writerFor(url);
  try {
    const all = await client.hgetall("didgate:routes");
    return new Map(Object.entries(all).map(([k, v]) => [k, (JSON.parse(v) as { voice: { targets: string[] } }).voice.targets[0]!]));
  } finally {
    client.disconnect();
  }
}

function tableState(e: Edge): Map<string, string> {
  return new Map(Array.from(e.store.current.entries(), ([k, v]) => [k, v.voice!.targets[0]!.uri]));
}

async function lastId(url: string): Promise<string> {
  const { client } = writerFor(url);
  try {
    const r = (await client.xrevrange("didgate:changes", "+", "-", "COUNT", 1)) as [string, string[]][];
    return r[0]?.[0] ?? "0-0";
  } finally {
    client.disconnect();
  }
}

const num = (i: number) => `+1555${String(i).padStart(6, "0")}`;

describe("Redis route sync under failure", () => {
  it("loses no write made while the initial HSCAN runs", async () => {
    const r = await server();
    const { writer: w } = writer(r.url);
    await w.import(Array.from({ length: 20_000 }, (_, i) => [num(i), voice(`v0-${i}`)] as const), { skipUnchanged: false });
    // Small HSCAN batches so that the load spans many round trips while the writer runs.
    const e = edge(r.url, {}, { scanCount: 50 });
    let stop = false;
    let writes = 0;
    const writing = (async () => {
      let i = 0;
      while (!stop) {
        const k = (i * 7919) % 25_000; // updates existing keys and adds new ones
        if (i % 5 === 4) await w.del(num(k));
        else await w.set(num(k), voice(`v1-${i}`));
        i++;
        writes++;
      }
    })();
    await until(() => writes > 50, "writer running");
    await e.source.start();
    const seenDuringLoad = writes;
    await until(() => writes > seenDuringLoad + 200, "writes after the load");
    stop = true;
    await writing;
    const id = await lastId(r.url);
    await until(() => e.store.current.version === id, "edge caught up with the stream");
    const want = await hashState(r.url);
    const got = tableState(e);
    expect(got.size).toBe(want.size);
    for (const [k, v] of want) expect(got.get(k), k).toBe(v);
  });

  it("Redis killed and restarted while writes continue: nothing missed, resumes from its position", async () => {
    const r = await server(true);
    const { writer: w } = writer(r.url);
    await w.import(Array.from({ length: 100 }, (_, i) => [num(i), voice("init")] as const));
    const e = edge(r.url);
    await e.source.start();
    let stop = false;
    let acked = 0;
    const writing = (async () => {
      for (let i = 0; !stop; i++) {
        const key = num(i % 300);
        for (;;) {
          try {
            await w.set(key, voice(`w${i}`)); // retried until acknowledged
            acked++;
            break;
          } catch {
            await new Promise((res) => setTimeout(res, 20));
          }
        }
      }
    })();
    await until(() => acked > 200, "writes before the crash");
    await r.kill();
    await until(() => !e.source.status().connected, "edge sees the outage");
    expect(e.store.current.size).toBeGreaterThanOrEqual(100); // still routing from the last good table
    await new Promise((res) => setTimeout(res, 300));
    await r.restart();
    const before = acked;
    await until(() => acked > before + 200, "writes after the restart");
    stop = true;
    await writing;
    const id = await lastId(r.url);
    await until(() => e.store.current.version === id, "edge caught up after the restart");
    expect(e.source.status().connected).toBe(true);
    const want = await hashState(r.url);
    const got = tableState(e);
    expect(got.size).toBe(want.size);
    for (const [k, v] of want) expect(got.get(k), k).toBe(v);
    expect(await metricValue(e.registry, "didgate_route_sync_resyncs_total", { mode: "tail" })).toBeGreaterThanOrEqual(1);
    expect(e.log.find((l) => l.msg === "Redis route sync interrupted; routing from the last good table, reconnecting")).toBeDefined();
  });

  it("FLUSHALL: the table is kept, the refusal is visible, later writes apply, reload --force lets it through", async () => {
    const r = await server();
    const { writer: w } = writer(r.url);
    await w.import(Array.from({ length: 50 }, (_, i) => [num(i), voice("kept")] as const));
    const e = edge(r.url);
    await e.source.start();
    await r.cli("FLUSHALL");
    await until(() => e.source.status().refusing, "refusal raised");
    expect(e.store.current.size).toBe(50);
    expect(e.lookup(num(7))).toBe("sip:x@kept");
    expect(await metricValue(e.registry, "didgate_route_sync_refusing")).toBe(1);
    expect(await metricValue(e.registry, "didgate_route_reloads_total", { source: "redis", result: "refused" })).toBeGreaterThanOrEqual(1);
    const line = e.log.find((l) => typeof l.msg === "string" && (l.msg as string).startsWith("REFUSED route table from Redis"));
    expect(line).toMatchObject({ level: 50, redis_entries: 0, table_entries: 50 });
    expect(e.source.status().refusedReloads).toBeGreaterThanOrEqual(1);
    // writes after the flush still apply on top of the kept table
    await w.set("+44*", voice("new"));
    await until(() => e.lookup("+4420") === "sip:x@new", "write after the flush applied");
    expect(e.store.current.size).toBe(51);
    // the operator accepts the new state
    await w.requestReload(true);
    await until(() => e.store.current.size === 1, "forced reload swapped in");
    expect(e.source.status().refusing).toBe(false);
    expect(await metricValue(e.registry, "didgate_route_sync_refusing")).toBe(0);
    expect(e.lookup(num(7))).toBeUndefined();
  });

  it("a reload that would shrink the table past max_shrink_ratio is refused unless forced", async () => {
    const r = await server();
    const { writer: w } = writer(r.url);
    await w.import(Array.from({ length: 10 }, (_, i) => [num(i), voice("a")] as const));
    const e = edge(r.url, { max_shrink_ratio: 0.3 });
    await e.source.start();
    // 4 of 10 keys vanish from the hash without change entries (a shrink of 40% > 30%)
    await r.cli("HDEL", "didgate:routes", num(0), num(1), num(2), num(3));
    expect(await e.source.reload()).toMatchObject({ result: "refused", entries: 6, current: 10 });
    expect(e.store.current.size).toBe(10);
    expect(await e.source.reload({ force: true })).toMatchObject({ result: "swapped", entries: 6 });
    expect(e.store.current.size).toBe(6);
    // a 3-key shrink (of 6: 50%) goes through with force_reload set in config
    const e2 = edge(r.url, { max_shrink_ratio: 0.3, force_reload: true });
    await e2.source.start();
    await r.cli("HDEL", "didgate:routes", num(4), num(5), num(6));
    expect(await e2.source.reload()).toMatchObject({ result: "swapped", entries: 3 });
  });

  it("starts from the snapshot while Redis is down (stale), then syncs when Redis returns", async () => {
    const r = await server(true);
    const tmp = tempDir();
    cleanups.push(() => tmp.cleanup());
    const snapshot = join(tmp.dir, "var", "routes.snapshot");
    const { writer: w } = writer(r.url);
    await w.import(Array.from({ length: 30 }, (_, i) => [num(i), voice("snap")] as const));
    const first = edge(r.url, { snapshot });
    await first.source.start();
    await until(() => existsSync(snapshot) && first.source.status().snapshot?.writtenAt !== undefined, "snapshot written after the load");
    await first.source.close();
    await r.kill();

    const e = edge(r.url, { snapshot }, { startTimeoutMs: 300 });
    expect(await e.source.start()).toEqual({ stale: true });
    expect(e.lookup(num(3))).toBe("sip:x@snap");
    expect(e.source.status()).toMatchObject({ stale: true, connected: false, entries: 30 });
    expect(await metricValue(e.registry, "didgate_route_sync_stale")).toBe(1);

    await r.restart();
    await until(() => e.source.status().connected && !e.source.status().stale, "synced after Redis returned");
    expect(await metricValue(e.registry, "didgate_route_sync_stale")).toBe(0);
    await w.set("+49*", voice("after"));
    await until(() => e.lookup("+4930") === "sip:x@after", "live delta after the resync");
  });

  it("starts against a flushed Redis: refuses the empty table and routes from the snapshot", async () => {
    const r = await server();
    const tmp = tempDir();
    cleanups.push(() => tmp.cleanup());
    const snapshot = join(tmp.dir, "routes.snapshot");
    const { writer: w } = writer(r.url);
    await w.import(Array.from({ length: 20 }, (_, i) => [num(i), voice("old")] as const));
    const first = edge(r.url, { snapshot });
    await first.source.start();
    await first.source.snapshotNow();
    await first.source.close();
    await r.cli("FLUSHALL");
    const e = edge(r.url, { snapshot });
    expect(await e.source.start()).toEqual({ stale: false });
    expect(e.source.status()).toMatchObject({ refusing: true, entries: 20 });
    expect(e.lookup(num(1))).toBe("sip:x@old");
  });

  it("a snapshot taken while changes are applied is consistent with its version", async () => {
    const r = await server();
    const tmp = tempDir();
    cleanups.push(() => tmp.cleanup());
    const snapshot = join(tmp.dir, "routes.snapshot");
    const { writer: w, client } = writer(r.url);
    await w.import(Array.from({ length: 30_000 }, (_, i) => [num(i), voice("s0")] as const), { skipUnchanged: false });
    const e = edge(r.url, { snapshot });
    await e.source.start();
    await until(() => e.source.status().snapshot?.writtenAt !== undefined, "snapshot after the load");
    let stop = false;
    const writing = (async () => {
      for (let i = 0; !stop; i++) {
        const k = (i * 7919) % 31_000;
        if (i % 4 === 3) await w.del(num(k));
        else await w.set(num(k), voice(`s${i}`));
      }
    })();
    await until(async () => (await client.xlen("didgate:changes")) > 30_100, "writes under way");
    await e.source.snapshotNow();
    stop = true;
    await writing;
    const id = await lastId(r.url);
    await until(() => e.store.current.version === id, "edge caught up");
    // the snapshot plus the changes after its version gives the edge's final table
    const snap = await loadSnapshot(snapshot);
    const state = new Map(Array.from(snap.table.entries(), ([k, v]) => [k, v.voice!.targets[0]!.uri]));
    const after = (await client.xrange("didgate:changes", `(${snap.header.version}`, "+")) as [string, string[]][];
    expect(after.length).toBeGreaterThan(0);
    for (const [, f] of after) {
      const op = f[1]!;
      const key = f[3]!;
      if (op === "del") state.delete(key);
      else state.set(key, (JSON.parse(f[5]!) as { voice: { targets: string[] } }).voice.targets[0]!);
    }
    const got = tableState(e);
    expect(state.size).toBe(got.size);
    for (const [k, v] of got) expect(state.get(k), k).toBe(v);
  });

  it("without Redis and without a snapshot, start() rejects", async () => {
    const r = await server();
    await r.kill();
    const e = edge(r.url, { snapshot: "" }, { startTimeoutMs: 200 });
    await expect(e.source.start()).rejects.toThrow(/not reachable/);
  });
});
