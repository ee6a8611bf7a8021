/** Shared pieces of the Redis route sync tests (not a test file itself). */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Redis } from "ioredis";
import { pino, type Logger } from "pino";
import { Registry } from "prom-client";
import type { Route } from "../../src/routing/route.js";
import { RedisRouteSource, type RedisRoutesConfig, type RedisSourceOptions } from "../../src/routing/sources/redis.js";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { RedisConnector } from "../../src/redis/client.js";
import { parseRedisUrl } from "../../src/redis/endpoint.js";
import { RouteStore, RouteTable } from "../../src/routing/table.js";

export interface CapturedLog {
  logger: Logger;
  lines: Record<string, unknown>[];
  find(pred: (l: Record<string, unknown>) => boolean): Record<string, unknown> | undefined;
}

export function captureLogger(): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n")) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const logger = pino({ level: "debug" }, stream);
  return { logger, lines, find: (p) => lines.find(p) };
}

/** routes.redis as the config gives it (the URL included). */
export type TestRoutesConfig = RedisRoutesConfig & { url: string };

export function redisConfig(url: string, over: Partial<TestRoutesConfig> = {}): TestRoutesConfig {
  return { url, prefix: "didgate:", stream_maxlen: 1_000_000, max_shrink_ratio: 0.5, force_reload: false, snapshot: "", snapshot_interval_s: 30, ...over };
}

/** A voice route to a distinct target (the host names the route in assertions). */
export function voice(host: string): Record<string, unknown> {
  return { tenant: "t", voice: { targets: [`sip:x@${host}`] } };
}

export function targetOf(r: Route | undefined): string | undefined {
  return r?.voice?.targets[0]?.uri;
}

export interface Edge {
  source: RedisRouteSource;
  store: RouteStore<Route>;
  registry: Registry;
  log: CapturedLog;
  lookup(n: string): string | undefined;
}

export function makeEdge(cfg: TestRoutesConfig, extra: Partial<RedisSourceOptions> = {}): Edge {
  const store = new RouteStore<Route>(RouteTable.build<Route>([]));
  const registry = new Registry();
  const log = captureLogger();
  const source = new RedisRouteSource({
    connector: new RedisConnector(parseRedisUrl(cfg.url)),
    redis: cfg,
    store,
    logger: log.logger,
    registry,
    snapshotPath: cfg.snapshot,
    startTimeoutMs: 3000,
    checkIntervalMs: 200,
    blockMs: 200,
    minBackoffMs: 50,
    maxBackoffMs: 300,
    ...extra,
  });
  return { source, store, registry, log, lookup: (n) => targetOf(store.current.lookup(n)) };
}

export function writerFor(url: string, prefix = "didgate:"): { writer: RedisRouteWriter; client: Redis } {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  return { writer: new RedisRouteWriter(client, { prefix, streamMaxlen: 1_000_000 }), client };
}

/** Polls until cond() is true (no timing assertion: fails only after a generous deadline). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const m = await registry.getSingleMetric(name)?.get();
  if (!m) return undefined;
  const v = m.values.find((x) => Object.entries(labels).every(([k, val]) => (x.labels as Record<string, unknown>)[k] === val));
  return v?.value;
}

export function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), "didgate-snap-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
