/**
 * The Redis route source (docs/redis.md): the whole table lives in the hash `<prefix>routes`,
 * every change is also appended to the stream `<prefix>changes` in the same MULTI/EXEC.
 *
 * Initial load: read the stream's last id L, HSCAN the hash (pipelined: the next HSCAN is on the
 * wire while a batch is parsed), validate every entry (an invalid one is skipped, logged with its
 * key and counted), build the table aside, swap it in, then tail the stream from L with XREAD BLOCK
 * on a second connection. Writes made during the HSCAN have ids above L and are replayed; replaying
 * a suffix of the stream in order is idempotent, so nothing is lost and nothing is doubled.
 *
 * Failures:
 * - Redis unreachable or slow: the table in use stays; ioredis reconnects with backoff and this
 *   loop retries with backoff; on reconnect the position is checked against the stream
 *   (classifyPosition): tail on if the stream still holds it, else a full reload.
 * - A periodic check (XINFO STREAM + HLEN) notices a flushed or restarted-empty Redis, a stream
 *   trimmed past the position, or a stream that went back in time, and runs a full reload.
 * - Shrink guard: a full load that would shrink the table by more than max_shrink_ratio (an empty
 *   Redis always does) is refused unless forced (reload({force}), config force_reload, or a stream
 *   entry op=reload force=1 written by `didgate routes reload --force`). When refused, the last good
 *   table is kept and the entries Redis does hold are upserted into it, then the stream is tailed
 *   as usual; the guarded load is retried every refusedRetryMs and swaps in once Redis holds enough.
 *   The refusal is logged at error, counted in didgate_route_reloads_total{result="refused"} and
 *   shown by didgate_route_sync_refusing and status().
 * - Snapshot: after each full load and every snapshot_interval_s after changes, the table is
 *   written to a local file (atomic rename). A start with Redis down routes from it (stale) and
 *   syncs when Redis comes back (redis-snapshots.ts).
 */
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { RouteMetrics } from "../metrics.js";
import { parseOutboundJson, type OutboundEntry } from "../outbound.js";
import type { Route } from "../route.js";
import { EntryColumns, RouteTable, type RouteStore } from "../table.js";
import { backoffDelay, type RedisClient, type RedisConnector } from "../../redis/client.js";
import { hasHashTag, type RedisEndpoint } from "../../redis/endpoint.js";
import { classifyPosition, streamIdMs, streamInfo } from "../../redis/stream.js";
import { routeKeys, type RouteKeys } from "./redis-keys.js";
import { clip, RedisEntryParser } from "./redis-entries.js";
import { RedisSyncMetrics } from "./redis-metrics.js";
import { loadFunctionLibrary } from "./redis-writer.js";
import { loadSnapshot, readSnapshotHeader } from "./snapshot.js";
import { RouteSnapshots } from "./redis-snapshots.js";
import { OutageLog } from "../../util/outage-log.js";
import { errMessage } from "../../util/errors.js";

/** `routes.redis` of the config (src/config/schema.ts), without the URL (parsed by the caller). */
export interface RedisRoutesConfig {
  prefix: string;
  stream_maxlen: number;
  max_shrink_ratio: number;
  force_reload: boolean;
  snapshot: string;
  snapshot_interval_s: number;
}

export interface RedisSourceOptions {
  /** Where Redis is (parsed once by the caller from routes.redis.url). */
  connector: RedisConnector;
  redis: RedisRoutesConfig;
  store: RouteStore<Route>;
  /** Receives the outbound table (hash `<prefix>outbound`, changes op=oset/odel). */
  outboundStore?: RouteStore<OutboundEntry>;
  logger: Logger;
  /** The instance's registry: the sync metrics are created on it. */
  registry: Registry;
  /** The instance's RouteMetrics (created on `registry` when omitted). */
  routeMetrics?: RouteMetrics;
  /** Resolved snapshot path (default: redis.snapshot as given); "" disables snapshots. */
  snapshotPath?: string;
  /** Wall clock in epoch ms (delta lag, timestamps, intervals). */
  now?: () => number;
  /** How long start() tries Redis before falling back to the snapshot (default 5000). */
  startTimeoutMs?: number;
  /** XREAD BLOCK timeout (default 1000). */
  blockMs?: number;
  /** Interval of the stream/hash consistency check (default 1000). */
  checkIntervalMs?: number;
  /** Retry interval of a refused full load (default 30000). */
  refusedRetryMs?: number;
  /** HSCAN COUNT (default 5000). */
  scanCount?: number;
  /** XREAD COUNT (default 1000). */
  readCount?: number;
  /** Timeout of ordinary commands; Redis slower than this counts as down (default 10000). */
  commandTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** FUNCTION LOAD the didgate library on connect (default true). */
  loadFunctions?: boolean;
}

export interface RedisSourceStatus {
  source: "redis";
  endpoint: string;
  connected: boolean;
  /** Routing from the local snapshot; Redis not reached since start. */
  stale: boolean;
  /** The last full load was refused by the shrink guard; the last good table is in use. */
  refusing: boolean;
  version: string;
  entries: number;
  lastLoadMs: number | undefined;
  lastLoadAt: string | undefined;
  lastError: string | undefined;
  skippedInvalid: number;
  refusedReloads: number;
  snapshot: { path: string; writtenAt: string | undefined } | undefined;
}

export type ReloadOutcome =
  | { result: "swapped"; entries: number; version: string; ms: number }
  | { result: "refused"; entries: number; current: number; version: string; ms: number }
  | { result: "failed"; error: string };

interface PendingReload {
  force: boolean;
  reason: string;
  resolve: (o: ReloadOutcome) => void;
}

const closedError = () => new Error("route source closed");

/**
 * Events: "delta" (id, op, key) after each change-stream entry is applied, "load" (ReloadOutcome)
 * after each full load attempt. For tests and benchmarks; nothing in the routing path listens.
 */
export class RedisRouteSource extends EventEmitter {
  readonly keys: RouteKeys;
  readonly endpoint: RedisEndpoint;
  private readonly connector: RedisConnector;
  readonly metrics: RedisSyncMetrics;
  private readonly routeMetrics: RouteMetrics;
  private readonly cfg: RedisRoutesConfig;
  private readonly store: RouteStore<Route>;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly outageLog: OutageLog;
  private readonly snapshotPath: string;
  private readonly outboundStore: RouteStore<OutboundEntry> | undefined;
  private readonly o: Required<Pick<RedisSourceOptions, "startTimeoutMs" | "blockMs" | "checkIntervalMs" | "refusedRetryMs" | "scanCount" | "readCount" | "commandTimeoutMs" | "minBackoffMs" | "maxBackoffMs" | "loadFunctions">>;
  private cmd: RedisClient | undefined;
  private sub: RedisClient | undefined;
  private subId: number | undefined;

  /** Last change-stream id reflected in the table. */
  private position = "0-0";
  private connected = false;
  private stale = false;
  private refusing = false;
  private closed = false;
  private loop: Promise<void> | undefined;
  private pending: PendingReload | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private lastCheckAt = 0;
  private lastRefusedAt = 0;
  private lastEntriesAdded = -1;
  private lastLoadMs: number | undefined;
  private lastLoadAt: number | undefined;
  private lastError: string | undefined;
  private refusedReloads = 0;
  /** Shrink-guard baseline at start: the entry count of the snapshot on disk. */
  private startBaseline = 0;
  private readonly snapshots: RouteSnapshots;
  private functionsLoaded = false;
  /** Validates entries; counts and logs the skipped ones. */
  private readonly entries: RedisEntryParser;

  constructor(opts: RedisSourceOptions) {
    super();
    this.cfg = opts.redis;
    this.store = opts.store;
    this.outboundStore = opts.outboundStore;
    this.logger = opts.logger;
    this.now = opts.now ?? Date.now;
    // Logged when the sync breaks, as reminders with a growing interval, and when it is back.
    this.outageLog = new OutageLog(
      this.logger,
      {
        down: "Redis route sync interrupted; routing from the last good table, reconnecting",
        still: "Redis route sync: Redis still unreachable; routing from the last good table",
        back: "Redis route sync reconnected",
      },
      { now: this.now },
    );
    this.routeMetrics = opts.routeMetrics ?? new RouteMetrics(opts.registry);
    this.metrics = new RedisSyncMetrics(opts.registry);
    this.entries = new RedisEntryParser(this.metrics, this.logger);
    this.snapshotPath = opts.snapshotPath ?? opts.redis.snapshot;
    this.snapshots = new RouteSnapshots({
      path: this.snapshotPath,
      intervalMs: opts.redis.snapshot_interval_s * 1000,
      store: this.store,
      outboundStore: this.outboundStore,
      metrics: this.metrics,
      logger: this.logger,
      now: this.now,
      closed: () => this.closed,
    });
    this.keys = routeKeys(opts.redis.prefix);
    this.connector = opts.connector;
    this.endpoint = opts.connector.endpoint;
    this.o = {
      startTimeoutMs: opts.startTimeoutMs ?? 5000,
      blockMs: opts.blockMs ?? 1000,
      checkIntervalMs: opts.checkIntervalMs ?? 1000,
      refusedRetryMs: opts.refusedRetryMs ?? 30_000,
      scanCount: opts.scanCount ?? 5000,
      readCount: opts.readCount ?? 1000,
      commandTimeoutMs: opts.commandTimeoutMs ?? 10_000,
      minBackoffMs: opts.minBackoffMs ?? 100,
      maxBackoffMs: opts.maxBackoffMs ?? 5000,
      loadFunctions: opts.loadFunctions ?? true,
    };
  }

  // ---- lifecycle ----------------------------------------------------------------------------------

  /**
   * Resolves once a table is in use: loaded from Redis ({stale: false}), or from the snapshot when
   * Redis could not be reached within startTimeoutMs ({stale: true}; the sync goes on in the
   * background). Rejects when neither is possible.
   */
  async start(): Promise<{ stale: boolean }> {
    if (this.cmd) throw new Error("RedisRouteSource already started");
    const ep = this.endpoint;
    if (ep.kind === "cluster" && !hasHashTag(this.cfg.prefix)) {
      this.logger.error({ prefix: this.cfg.prefix }, "Redis Cluster: routes.redis.prefix has no hash tag (use \"{didgate}:\"); writers cannot update the routes hash and the change stream atomically");
    }
    const clientOpts = { minBackoffMs: this.o.minBackoffMs, maxBackoffMs: this.o.maxBackoffMs };
    this.cmd = this.connector.client({ ...clientOpts, name: "didgate-routes", redis: { enableOfflineQueue: false, commandTimeout: this.o.commandTimeoutMs, maxRetriesPerRequest: 0 } });
    this.sub = this.connector.client({ ...clientOpts, name: "didgate-routes-tail", redis: { enableOfflineQueue: false, commandTimeout: this.o.commandTimeoutMs + this.o.blockMs, maxRetriesPerRequest: 0 } });
    const connecting: Promise<unknown>[] = [];
    for (const [name, c] of [["cmd", this.cmd], ["sub", this.sub]] as const) {
      c.on("error", (err: Error) => this.logger.debug({ conn: name, err: err.message }, "redis route sync connection error"));
      connecting.push(c.connect().catch(() => undefined));
    }
    if (this.snapshotPath) this.startBaseline = (await readSnapshotHeader(this.snapshotPath))?.entries ?? 0;

    const deadline = this.now() + this.o.startTimeoutMs;
    let waitTimer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(connecting), new Promise<void>((r) => (waitTimer = setTimeout(r, this.o.startTimeoutMs)))]);
    clearTimeout(waitTimer);
    let attempt = 0;
    let lastErr = "";
    for (;;) {
      try {
        await this.onConnected();
        const r = await this.fullLoad({ force: false, reason: "start" });
        if (r.result === "failed") throw new Error(r.error);
        this.startBaseline = 0;
        this.setConnected(true);
        this.loop = this.run(false);
        return { stale: false };
      } catch (err) {
        if (this.closed) throw closedError();
        lastErr = errMessage(err);
        if (this.now() >= deadline) break;
        await this.sleep(Math.min(backoffDelay(attempt++, this.o.minBackoffMs, this.o.maxBackoffMs), Math.max(10, deadline - this.now())));
      }
    }
    this.lastError = lastErr;
    if (!this.snapshotPath) throw new Error(`Redis route source: Redis (${this.connector.describe()}) not reachable: ${lastErr}; no snapshot configured`);
    let snap;
    try {
      snap = await loadSnapshot(this.snapshotPath);
    } catch (err) {
      throw new Error(`Redis route source: Redis (${this.connector.describe()}) not reachable (${lastErr}) and no usable snapshot (${errMessage(err)})`);
    }
    this.store.swap(snap.table);
    await this.snapshots.loadOutbound();
    this.position = snap.header.version || "0-0";
    this.stale = true;
    this.startBaseline = 0;
    this.metrics.stale.set(1);
    this.metrics.snapshotAge.set(Date.parse(snap.header.written_at) / 1000 || 0);
    if (snap.invalid.length > 0) {
      this.metrics.invalid.inc({ phase: "snapshot" }, snap.invalid.length);
      this.metrics.skipped.inc({ reason: "invalid_route" }, snap.invalid.length);
    }
    this.routeMetrics.observeTable("redis", snap.table.version, snap.table.counts());
    this.logger.warn(
      { redis: this.connector.describe(), err: lastErr, snapshot: this.snapshotPath, entries: snap.table.size, version: snap.header.version, written_at: snap.header.written_at },
      "Redis unreachable at start: routing from the local snapshot (stale) until Redis is back",
    );
    this.loop = this.run(true);
    return { stale: true };
  }

  /** Stops the sync, waits for an in-progress snapshot write, closes the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wake?.();
    this.pending?.resolve({ result: "failed", error: "closed" });
    this.pending = undefined;
    this.sub?.disconnect();
    this.cmd?.disconnect();
    await this.loop?.catch(() => undefined);
    await this.snapshots.settle();
    this.setConnected(false);
  }

  status(): RedisSourceStatus {
    const t = this.store.current;
    const snapshotAt = this.snapshots.lastWrittenAt;
    return {
      source: "redis",
      endpoint: this.connector.describe(),
      connected: this.connected,
      stale: this.stale,
      refusing: this.refusing,
      version: t.version,
      entries: t.size,
      lastLoadMs: this.lastLoadMs,
      lastLoadAt: this.lastLoadAt === undefined ? undefined : new Date(this.lastLoadAt).toISOString(),
      lastError: this.lastError,
      skippedInvalid: this.entries.skippedInvalid,
      refusedReloads: this.refusedReloads,
      snapshot: this.snapshotPath ? { path: this.snapshotPath, writtenAt: snapshotAt === undefined ? undefined : new Date(snapshotAt).toISOString() } : undefined,
    };
  }

  /**
   * Full reload from Redis now (queued into the sync loop, so it is ordered with the deltas).
   * `force` lets a load through the shrink guard.
   */
  reload(opts: { force?: boolean } = {}): Promise<ReloadOutcome> {
    if (this.closed || !this.loop) return Promise.resolve({ result: "failed", error: "not started" });
    if (!this.connected) return Promise.resolve({ result: "failed", error: `Redis not connected${this.lastError ? `: ${this.lastError}` : ""}` });
    return new Promise((resolve) => {
      const prev = this.pending;
      this.pending = {
        force: (opts.force ?? false) || (prev?.force ?? false),
        reason: "api",
        resolve: (o) => {
          prev?.resolve(o);
          resolve(o);
        },
      };
      this.unblock();
    });
  }

  /** Writes the snapshot now (tests, shutdown hooks). */
  snapshotNow(): Promise<void> {
    return this.snapshots.now();
  }

  // ---- the sync loop ------------------------------------------------------------------------------

  private async run(needFull: boolean): Promise<void> {
    let attempt = 0;
    let resume = false;
    let outage = false;
    while (!this.closed) {
      try {
        if (needFull || resume) {
          await this.onConnected();
          if (needFull) {
            const r = await this.fullLoad({ force: false, reason: this.stale ? "redis back (was stale)" : "resync" });
            if (r.result === "failed") throw new Error(r.error);
            this.metrics.resyncs.inc({ mode: "full" });
          } else {
            await this.resync();
          }
          if (outage) this.outageLog.success({ version: this.position, entries: this.store.current.size });
          needFull = false;
          resume = false;
          outage = false;
        }
        attempt = 0;
        this.setConnected(true);
        await this.tail();
      } catch (err) {
        if (this.closed) break;
        const msg = errMessage(err);
        this.lastError = msg;
        this.setConnected(false);
        this.outageLog.failure(msg, { version: this.position });
        outage = true;
        if (!needFull) resume = true;
        const p = this.pending;
        if (p) {
          this.pending = undefined;
          p.resolve({ result: "failed", error: msg });
        }
        await this.sleep(backoffDelay(attempt++, this.o.minBackoffMs, this.o.maxBackoffMs));
      }
    }
  }

  /** Per (re)connection setup: the blocking connection's id (for CLIENT UNBLOCK), the function library. */
  private async onConnected(): Promise<void> {
    const sub = this.sub!;
    if (!("nodes" in sub)) this.subId = Number(await sub.call("CLIENT", "ID"));
    if (this.o.loadFunctions && !this.functionsLoaded) {
      const err = await loadFunctionLibrary(this.cmd!);
      this.functionsLoaded = true;
      if (err) this.logger.warn({ err }, "could not load the didgate Redis Function library (FCALL didgate_set/didgate_del unavailable; didgate itself does not need it)");
    }
  }

  /** After a reconnect: tail on from the position when the stream still holds it, else reload. */
  private async resync(): Promise<void> {
    const verdict = await this.check();
    if (verdict === "ok") {
      this.metrics.resyncs.inc({ mode: "tail" });
      return;
    }
    this.metrics.resyncs.inc({ mode: "full" });
    const r = await this.fullLoad({ force: false, reason: verdict });
    if (r.result === "failed") throw new Error(r.error);
  }

  /**
   * Consistency of the position with Redis: "ok", or why a full load is needed. Also notices a
   * flushed hash (HLEN far below the table size) while the stream looks fine.
   */
  private async check(): Promise<"ok" | string> {
    const cmd = this.cmd!;
    const [info, hlen] = await Promise.all([streamInfo(cmd, this.keys.changes), cmd.hlen(this.keys.routes)]);
    this.lastCheckAt = this.now();
    const cls = classifyPosition(info, this.position);
    if (cls === "gap") return "change stream trimmed past this edge's position";
    if (cls === "lost") return "change stream history lost (Redis flushed, restarted empty or restored from an older dump)";
    const added = info?.entriesAdded ?? -1;
    if (added >= 0 && this.lastEntriesAdded >= 0 && added < this.lastEntriesAdded) {
      this.lastEntriesAdded = added;
      return "change stream was recreated (Redis flushed or restarted empty)";
    }
    if (added >= 0) this.lastEntriesAdded = added;
    // Without a stream no change is in flight, so a hash far smaller than the table means a flush.
    const size = this.store.current.size;
    if (info === undefined && !this.refusing && size > 0 && (size - hlen) / size > this.cfg.max_shrink_ratio) {
      return `routes hash holds ${hlen} entries, the table ${size}`;
    }
    return "ok";
  }

  private async tail(): Promise<void> {
    const sub = this.sub!;
    const count = String(this.o.readCount);
    const block = String(this.o.blockMs);
    while (!this.closed) {
      const p = this.pending;
      if (p) {
        this.pending = undefined;
        const r = await this.fullLoad({ force: p.force, reason: p.reason });
        p.resolve(r);
        if (r.result === "failed") throw new Error(r.error);
      }
      const now = this.now();
      if (this.refusing && now - this.lastRefusedAt >= this.o.refusedRetryMs) {
        const r = await this.fullLoad({ force: false, reason: "retry of a refused load" });
        if (r.result === "failed") throw new Error(r.error);
      } else if (now - this.lastCheckAt >= this.o.checkIntervalMs) {
        const verdict = await this.check();
        if (verdict !== "ok") {
          this.logger.warn({ reason: verdict, version: this.position }, "route table out of step with Redis: full reload");
          const r = await this.fullLoad({ force: false, reason: verdict });
          if (r.result === "failed") throw new Error(r.error);
        }
      }
      const res = (await sub.xread("COUNT", count, "BLOCK", block, "STREAMS", this.keys.changes, this.position)) as [string, [string, string[]][]][] | null;
      if (res !== null && res.length > 0) await this.applyBatch(res[0]![1]);
      this.snapshots.periodic();
    }
  }

  /** One change of the outbound table (a small table: changed in place). */
  private applyOutbound(op: string, key: string, json: string | undefined): void {
    const store = this.outboundStore;
    if (store === undefined) return;
    const t = store.current;
    if (op === "odel" || json === undefined) {
      t.delete(key);
      return;
    }
    const r = parseOutboundJson(key, json);
    if (r.ok) t.set(key, r.entry);
    else {
      t.delete(key);
      this.logger.warn({ key, errors: r.errors }, "invalid outbound entry in the change stream skipped");
    }
  }

  /** Reads the outbound hash into a new table (after the stream position was taken). */
  private async loadOutbound(cmd: RedisClient): Promise<void> {
    const store = this.outboundStore;
    if (store === undefined) return;
    const entries: [string, OutboundEntry][] = [];
    let cursor = "0";
    let bad = 0;
    do {
      const [next, flat] = await cmd.hscan(this.keys.outbound, cursor, "COUNT", String(this.o.scanCount));
      cursor = next;
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const r = parseOutboundJson(flat[i]!, flat[i + 1]!);
        if (r.ok) entries.push([flat[i]!, r.entry]);
        else if (++bad <= 100) this.logger.warn({ key: flat[i], errors: r.errors }, "invalid outbound entry in Redis skipped");
      }
    } while (cursor !== "0");
    const t = RouteTable.build(entries);
    store.swap(t);
    this.snapshots.saveOutbound();
  }

  /** Applies change-stream entries in order. An op=reload entry runs a full load and ends the batch. */
  private async applyBatch(entries: [string, string[]][]): Promise<void> {
    const table = this.store.current;
    const now = this.now();
    let applied = 0;
    // the outbound snapshot is written once per batch (an import is thousands of changes)
    let outboundChanged = false;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const id = entry[0];
      const f = entry[1];
      let op = "";
      let key = "";
      let json: string | undefined;
      let force = "";
      for (let j = 0; j + 1 < f.length; j += 2) {
        const name = f[j];
        if (name === "op") op = f[j + 1]!;
        else if (name === "key") key = f[j + 1]!;
        else if (name === "route" || name === "outbound") json = f[j + 1];
        else if (name === "force") force = f[j + 1]!;
      }
      if (op === "reload") {
        this.position = id;
        this.metrics.deltas.inc({ op: "reload" });
        this.logger.info({ id, force: force === "1" }, "reload requested through the change stream");
        this.finishBatch(table, applied);
        if (outboundChanged) this.snapshots.saveOutbound();
        await this.fullLoad({ force: force === "1", reason: force === "1" ? "routes reload --force" : "routes reload" });
        return;
      }
      if (op === "oset" || op === "odel") {
        this.applyOutbound(op, key, json);
        outboundChanged = true;
        this.position = id;
        applied++;
        if (this.listenerCount("delta") > 0) this.emit("delta", id, op, key);
        continue;
      }
      if (op === "set") {
        const route = json === undefined ? undefined : this.entries.parse(key, json, "delta");
        if (route !== undefined) table.set(key, route);
        else table.delete(key); // converge with a fresh load, which skips it
        this.snapshots.noteChange(key, route ?? null);
      } else if (op === "del") {
        table.delete(key);
        this.snapshots.noteChange(key, null);
      } else {
        this.entries.skip("delta", key, "unknown_op", [`change ${id}: unknown op ${JSON.stringify(clip(op, 20))}`]);
      }
      this.position = id;
      applied++;
      this.metrics.deltaLag.observe(Math.max(0, now - streamIdMs(id)) / 1000);
      if (op === "set" || op === "del") this.metrics.deltas.inc({ op });
      if (this.listenerCount("delta") > 0) this.emit("delta", id, op, key);
    }
    this.finishBatch(table, applied);
    if (outboundChanged) this.snapshots.saveOutbound();
  }

  private finishBatch(table: RouteTable<Route>, applied: number): void {
    table.version = this.position;
    if (applied === 0) return;
    this.snapshots.markDirty();
    this.routeMetrics.observeTable("redis", table.version, table.counts());
  }

  // ---- full load ----------------------------------------------------------------------------------

  private async fullLoad(opts: { force: boolean; reason: string }): Promise<ReloadOutcome> {
    const cmd = this.cmd!;
    const started = performance.now();
    let outcome: ReloadOutcome;
    try {
      const info = await streamInfo(cmd, this.keys.changes);
      const version = info?.lastGeneratedId ?? "0-0";
      const entries = this.freshLoad();
      const key = this.keys.routes;
      const count = String(this.o.scanCount);
      // The next batch is requested before this one is validated: Redis and didgate work at once.
      let next: Promise<[string, string[]]> = cmd.hscan(key, "0", "COUNT", count);
      for (;;) {
        const [cursor, flat] = await next;
        if (cursor !== "0") next = cmd.hscan(key, cursor, "COUNT", count);
        this.consumeBatch(flat, entries);
        if (cursor === "0") break;
      }
      this.entries.endLoad();
      await this.loadOutbound(cmd);
      const table = RouteTable.build(entries);
      table.version = version;
      const ms = performance.now() - started;
      const baseline = Math.max(this.store.current.size, this.startBaseline);
      const shrink = baseline > 0 ? (baseline - table.size) / baseline : 0;
      if (!opts.force && !this.cfg.force_reload && shrink > this.cfg.max_shrink_ratio) {
        await this.refuse(entries, version, baseline, opts.reason);
        outcome = { result: "refused", entries: table.size, current: this.store.current.size, version, ms };
      } else {
        this.store.swap(table);
        this.position = version;
        this.lastEntriesAdded = -1;
        this.lastCheckAt = this.now();
        if (this.refusing) this.logger.info({ entries: table.size, forced: opts.force || this.cfg.force_reload }, "Redis route table accepted again; refusal over");
        this.refusing = false;
        this.stale = false;
        this.startBaseline = 0;
        this.lastLoadMs = ms;
        this.lastLoadAt = this.now();
        this.metrics.refusing.set(0);
        this.metrics.stale.set(0);
        this.metrics.lastLoadSeconds.set(ms / 1000);
        this.routeMetrics.reloads.inc({ source: "redis", result: "ok" });
        this.routeMetrics.lastReload.set(this.now() / 1000);
        this.routeMetrics.observeTable("redis", version, table.counts());
        this.logger.info({ entries: table.size, version, ms: Math.round(ms), skipped: this.entries.skippedThisLoad, reason: opts.reason, forced: opts.force }, "route table loaded from Redis");
        this.snapshots.afterFullLoad(version, entries);
        outcome = { result: "swapped", entries: table.size, version, ms };
      }
    } catch (err) {
      this.entries.endLoad(true);
      const msg = errMessage(err);
      this.routeMetrics.reloads.inc({ source: "redis", result: "failed" });
      if (!this.closed) this.logger.warn({ err: msg, reason: opts.reason }, "full route load from Redis failed; keeping the table in use");
      outcome = { result: "failed", error: msg };
    }
    this.emit("load", outcome);
    return outcome;
  }

  /** Empty columns for a (re)started scan, with the skip count and the parse cache reset. */
  private freshLoad(): EntryColumns<Route> {
    this.entries.beginLoad();
    return new EntryColumns<Route>();
  }

  /** Validates a flat HSCAN batch [key, json, …] into entries. */
  private consumeBatch(flat: string[], entries: EntryColumns<Route>): void {
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const k = flat[i]!;
      const route = this.entries.parse(k, flat[i + 1]!, "load");
      if (route === undefined) continue;
      // without the parse cache every route from here on is a new object used by one key
      if (!this.entries.caching && entries.uniqueFrom === Infinity) entries.uniqueFrom = entries.length;
      entries.push(k, route);
    }
  }

  /** Keeps the last good table, upserting what Redis holds, and raises the refusal. */
  private async refuse(entries: EntryColumns<Route>, version: string, baseline: number, reason: string): Promise<void> {
    if (this.startBaseline > 0 && this.store.current.size < this.startBaseline) {
      // Start: the last good table is the snapshot on disk.
      try {
        const snap = await loadSnapshot(this.snapshotPath);
        this.store.swap(snap.table);
      } catch (err) {
        this.logger.error({ err: errMessage(err), snapshot: this.snapshotPath }, "snapshot unreadable; accepting the smaller Redis table");
        const t = RouteTable.build(entries);
        t.version = version;
        this.store.swap(t);
        this.position = version;
        this.startBaseline = 0;
        return;
      }
    }
    this.startBaseline = 0;
    const table = this.store.current;
    const { keys, values } = entries;
    for (let i = 0; i < keys.length; i++) table.set(keys[i]!, values[i]!);
    this.snapshots.noteSet(keys, values);
    table.version = version;
    this.position = version;
    this.lastEntriesAdded = -1;
    this.lastCheckAt = this.now();
    this.lastRefusedAt = this.now();
    this.refusedReloads++;
    this.routeMetrics.reloads.inc({ source: "redis", result: "refused" });
    this.routeMetrics.observeTable("redis", version, table.counts());
    this.metrics.refusing.set(1);
    this.stale = false;
    this.metrics.stale.set(0);
    this.snapshots.markDirty();
    const fields = { redis_entries: entries.length, table_entries: baseline, max_shrink_ratio: this.cfg.max_shrink_ratio, reason };
    if (!this.refusing) {
      this.logger.error(fields, "REFUSED route table from Redis: it would shrink the table past routes.redis.max_shrink_ratio (Redis flushed or restarted empty?). Keeping the last good table (plus the entries Redis holds). Run `didgate routes reload --force` (or set routes.redis.force_reload) to accept it");
    } else {
      this.logger.warn(fields, "route table from Redis still refused");
    }
    this.refusing = true;
  }

  // ---- helpers ------------------------------------------------------------------------------------

  private setConnected(v: boolean): void {
    this.connected = v;
    this.metrics.connected.set(v ? 1 : 0);
  }

  /** Wakes the blocking XREAD (CLIENT UNBLOCK) so a queued reload runs at once. */
  private unblock(): void {
    if (this.subId === undefined || !this.cmd) return;
    this.cmd.call("CLIENT", "UNBLOCK", String(this.subId)).catch(() => undefined);
  }

  private sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve();
      };
      this.sleepTimer = setTimeout(() => {
        this.sleepTimer = undefined;
        this.wake?.();
      }, ms);
    });
  }
}
