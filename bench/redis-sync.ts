/**
 * The Redis route sync against a local redis-server started on a free port (never 6379):
 *   - import of N routes through the writer (pipelined MULTI batches), target: well under a minute
 *   - full load of N routes (XINFO, pipelined HSCAN through ioredis, validation, table build,
 *     swap), target <= 5 s for 1M
 *   - snapshot write of the loaded table, and the longest event-loop stall while it runs
 *   - delta propagation write → applied over W writes (each write waits for its application),
 *     p50/p99, target p99 <= 50 ms on loopback
 *
 *   npx tsc -p . && node dist/bench/redis-sync.js [--json] [--entries 1M] [--writes 10k] [--loads 3]
 *
 * The writer and the edge run in this one process (one event loop), as the worst case for latency.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Registry } from "prom-client";
import type { Route } from "../src/routing/route.js";
import { RedisRouteSource, type RedisRoutesConfig } from "../src/routing/sources/redis.js";
import { RedisRouteWriter } from "../src/routing/sources/redis-writer.js";
import { RedisConnector } from "../src/redis/client.js";
import { parseRedisUrl } from "../src/redis/endpoint.js";
import { writeSnapshot } from "../src/routing/sources/snapshot.js";
import { RouteStore, RouteTable } from "../src/routing/table.js";
import { startRedis } from "../test/helpers/redis.js";
import { median, parseArgs, Reporter, result, round } from "./lib.js";

const args = parseArgs();
const N = args.int("entries", 1_000_000);
const W = args.int("writes", 10_000);
const LOADS = args.int("loads", 3);
const rep = new Reporter(args.json);
const logger = pino({ level: "silent" });

function routeFor(i: number): Record<string, unknown> {
  // Distinct entries (no sharing between keys): the expensive case for validation and memory.
  return { tenant: `t${i % 97}`, voice: { targets: [`sip:+1555${String(i).padStart(7, "0")}@10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:5060`] } };
}

function cfg(snapshot = ""): RedisRoutesConfig {
  return { prefix: "didgate:", stream_maxlen: Math.max(N, 10_000), max_shrink_ratio: 0.5, force_reload: false, snapshot, snapshot_interval_s: 3600 };
}

function newSource(url: string): { source: RedisRouteSource; store: RouteStore<Route> } {
  const store = new RouteStore<Route>(RouteTable.build<Route>([]));
  const source = new RedisRouteSource({
    connector: new RedisConnector(parseRedisUrl(url)),
    redis: cfg(),
    store,
    logger,
    registry: new Registry(),
    snapshotPath: "",
    loadFunctions: false,
    startTimeoutMs: 30_000,
    commandTimeoutMs: 60_000,
  });
  return { source, store };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const tmp = mkdtempSync(join(tmpdir(), "didgate-bench-"));
  const client = new Redis(redis.url);
  try {
    // ---- import
    const writer = new RedisRouteWriter(client, { prefix: "didgate:", streamMaxlen: Math.max(N, 10_000) });
    const entries: [string, Record<string, unknown>][] = [];
    for (let i = 0; i < N; i++) entries.push([`+1555${String(i).padStart(7, "0")}`, routeFor(i)]);
    let t0 = performance.now();
    const imp = await writer.import(entries);
    const importMs = performance.now() - t0;
    if (imp.written !== N) throw new Error(`import wrote ${imp.written} of ${N}`);
    rep.report(result("redis_import", N, (importMs * 1e6) / N, { total_ms: round(importMs, 0) }));
    entries.length = 0;

    // ---- full load, LOADS times; load_ms is the median. The very first load of the process
    // (first_ms) also grows the heap from nothing.
    const loadMs: number[] = [];
    let loaded: { source: RedisRouteSource; store: RouteStore<Route> } | undefined;
    for (let i = 0; i < LOADS; i++) {
      const s = newSource(redis.url);
      t0 = performance.now();
      await s.source.start();
      loadMs.push(performance.now() - t0);
      if (s.store.current.size !== N) throw new Error(`loaded ${s.store.current.size} of ${N}`);
      if (loaded) await s.source.close();
      else loaded = s;
      (globalThis as { gc?: () => void }).gc?.();
    }
    const lm = median(loadMs);
    rep.report(result("redis_full_load", N, (lm * 1e6) / N, { load_ms: round(lm, 0), min_ms: round(Math.min(...loadMs), 0), max_ms: round(Math.max(...loadMs), 0), first_ms: round(loadMs[0]!, 0), target_ms: 5000 }));

    // ---- snapshot of the loaded table (event-loop stall measured while it is written)
    const { source, store } = loaded!;
    const path = join(tmp, "routes.snapshot");
    const h = monitorEventLoopDelay({ resolution: 5 });
    h.enable();
    t0 = performance.now();
    const all = Array.from(store.current.entries());
    const collectMs = performance.now() - t0;
    await writeSnapshot(path, store.current.version, all);
    const snapMs = performance.now() - t0;
    h.disable();
    rep.report(result("redis_snapshot_write", N, (snapMs * 1e6) / N, { total_ms: round(snapMs, 0), collect_ms: round(collectMs, 0), max_loop_stall_ms: round(h.max / 1e6, 1), mb: round(statSync(path).size / 1e6, 1) }));

    // ---- delta propagation
    const lat: number[] = [];
    let waiting: { key: string; t: number; resolve: () => void } | undefined;
    source.on("delta", (_id: string, _op: string, key: string) => {
      if (waiting && key === waiting.key) {
        lat.push(performance.now() - waiting.t);
        const w = waiting;
        waiting = undefined;
        w.resolve();
      }
    });
    for (let i = 0; i < W; i++) {
      const key = `+1555${String((i * 7919) % N).padStart(7, "0")}`;
      const applied = new Promise<void>((resolve) => (waiting = { key, t: performance.now(), resolve }));
      await writer.set(key, routeFor(i + N));
      await applied;
    }
    lat.sort((a, b) => a - b);
    const p50 = pct(lat, 50);
    const p99 = pct(lat, 99);
    rep.report(result("redis_delta_latency", W, p50 * 1e6, { p50_ms: round(p50, 3), p99_ms: round(p99, 3), max_ms: round(lat[lat.length - 1]!, 3), target_p99_ms: 50 }));
    await source.close();
  } finally {
    client.disconnect();
    await redis.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
