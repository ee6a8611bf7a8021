/**
 * Redis connection helpers shared by the route source, the writer and the CLI: URL parsing for
 * standalone, Sentinel and Cluster deployments, the key names under the configured prefix, and
 * stream id arithmetic.
 *
 * URLs:
 *   redis://[user:pass@]host:port[/db]            rediss://… for TLS
 *   redis-sentinel://[user:pass@]h1:p1,h2:p2/MASTER[/db][?sentinel_password=…&tls=1]
 *   redis-cluster://[user:pass@]h1:p1,h2:p2[?tls=1]
 * The password of a Sentinel URL is the master's; the Sentinels' own is `sentinel_password`.
 */
import { Cluster, Redis, type RedisOptions } from "ioredis";

export type RedisClient = Redis | Cluster;

export type RedisEndpoint =
  | { kind: "standalone"; url: string; host: string; port: number; db: number; username?: string; password?: string; tls: boolean }
  | { kind: "sentinel"; sentinels: { host: string; port: number }[]; master: string; db: number; username?: string; password?: string; sentinelPassword?: string; tls: boolean }
  | { kind: "cluster"; nodes: { host: string; port: number }[]; username?: string; password?: string; tls: boolean };

export interface RouteKeys {
  /** HASH route key → route JSON. */
  routes: string;
  /** STREAM of changes (op, key, route; op=oset/odel for the outbound table). */
  changes: string;
  /** HASH destination prefix → outbound entry JSON (carriers by destination). */
  outbound: string;
}

export function routeKeys(prefix: string): RouteKeys {
  return { routes: `${prefix}routes`, changes: `${prefix}changes`, outbound: `${prefix}outbound` };
}

/** True when the prefix holds a Redis Cluster hash tag (`{…}` with something inside). */
export function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf("{");
  if (open < 0) return false;
  const close = prefix.indexOf("}", open + 1);
  return close > open + 1;
}

function splitHosts(list: string, defaultPort: number): { host: string; port: number }[] {
  const out: { host: string; port: number }[] = [];
  for (const part of list.split(",")) {
    const p = part.trim();
    if (p === "") continue;
    let host: string;
    let portText: string | undefined;
    if (p.startsWith("[")) {
      const close = p.indexOf("]");
      if (close < 0) throw new Error(`bad host ${JSON.stringify(p)}`);
      host = p.slice(1, close);
      portText = p.slice(close + 1).startsWith(":") ? p.slice(close + 2) : undefined;
    } else {
      const colon = p.lastIndexOf(":");
      host = colon >= 0 ? p.slice(0, colon) : p;
      portText = colon >= 0 ? p.slice(colon + 1) : undefined;
    }
    const port = portText === undefined || portText === "" ? defaultPort : Number(portText);
    if (host === "" || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad host:port ${JSON.stringify(p)}`);
    out.push({ host, port });
  }
  if (out.length === 0) throw new Error("no host given");
  return out;
}

/** Parses a Redis URL of any of the supported forms. Throws Error with a readable message. */
export function parseRedisUrl(url: string): RedisEndpoint {
  const schemeEnd = url.indexOf("://");
  if (schemeEnd < 0) throw new Error(`not a Redis URL: ${JSON.stringify(url)}`);
  const scheme = url.slice(0, schemeEnd).toLowerCase();
  let rest = url.slice(schemeEnd + 3);
  let query = "";
  const q = rest.indexOf("?");
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const params = new URLSearchParams(query);
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    const cred = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = cred.indexOf(":");
    const u = decodeURIComponent(colon >= 0 ? cred.slice(0, colon) : "");
    const pw = decodeURIComponent(colon >= 0 ? cred.slice(colon + 1) : cred);
    if (u !== "") username = u;
    if (pw !== "") password = pw;
  }
  const slash = rest.indexOf("/");
  const hostPart = slash >= 0 ? rest.slice(0, slash) : rest;
  const path = slash >= 0 ? rest.slice(slash + 1).split("/").filter((s) => s !== "") : [];
  const tlsParam = params.get("tls");
  const tls = tlsParam === "1" || tlsParam === "true";
  const dbOf = (s: string | undefined): number => {
    if (s === undefined) return 0;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new Error(`bad database number ${JSON.stringify(s)}`);
    return n;
  };
  const cred = { ...(username !== undefined ? { username } : {}), ...(password !== undefined ? { password } : {}) };
  switch (scheme) {
    case "redis":
    case "rediss": {
      const [h] = splitHosts(hostPart === "" ? "127.0.0.1" : hostPart, 6379);
      return { kind: "standalone", url, host: h!.host, port: h!.port, db: dbOf(path[0]), ...cred, tls: scheme === "rediss" || tls };
    }
    case "redis-sentinel": {
      const master = path[0];
      if (master === undefined) throw new Error("redis-sentinel:// URL needs the master name as its path (redis-sentinel://h1:26379,h2:26379/mymaster)");
      const sp = params.get("sentinel_password");
      return {
        kind: "sentinel",
        sentinels: splitHosts(hostPart, 26379),
        master: decodeURIComponent(master),
        db: dbOf(path[1]),
        ...cred,
        ...(sp !== null ? { sentinelPassword: sp } : {}),
        tls,
      };
    }
    case "redis-cluster":
      return { kind: "cluster", nodes: splitHosts(hostPart, 6379), ...cred, tls };
    default:
      throw new Error(`unsupported Redis URL scheme ${JSON.stringify(scheme)} (redis, rediss, redis-sentinel, redis-cluster)`);
  }
}

export interface ClientOptions {
  /** Extra ioredis options (applied to every node for Cluster). */
  redis?: Partial<RedisOptions>;
  /** Initial reconnect delay, doubled up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Exponential reconnect backoff with a little jitter. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Creates (without connecting: lazyConnect) an ioredis client for the endpoint. */
export function createRedisClient(endpoint: RedisEndpoint, opts: ClientOptions = {}): RedisClient {
  const minB = opts.minBackoffMs ?? 100;
  const maxB = opts.maxBackoffMs ?? 5000;
  const common: RedisOptions = {
    lazyConnect: true,
    retryStrategy: (times: number) => backoffDelay(times - 1, minB, maxB),
    ...(endpoint.username !== undefined ? { username: endpoint.username } : {}),
    ...(endpoint.password !== undefined ? { password: endpoint.password } : {}),
    ...(endpoint.tls ? { tls: {} } : {}),
    ...opts.redis,
  };
  switch (endpoint.kind) {
    case "standalone":
      return new Redis({ ...common, host: endpoint.host, port: endpoint.port, db: endpoint.db });
    case "sentinel":
      return new Redis({
        ...common,
        sentinels: endpoint.sentinels,
        name: endpoint.master,
        db: endpoint.db,
        ...(endpoint.sentinelPassword !== undefined ? { sentinelPassword: endpoint.sentinelPassword } : {}),
        sentinelRetryStrategy: (times: number) => backoffDelay(times - 1, minB, maxB),
      });
    case "cluster": {
      const { lazyConnect: _l, retryStrategy: _r, ...redisOptions } = common;
      return new Cluster(endpoint.nodes, {
        lazyConnect: true,
        redisOptions,
        clusterRetryStrategy: (times: number) => backoffDelay(times - 1, minB, maxB),
        enableOfflineQueue: common.enableOfflineQueue ?? true,
      });
    }
  }
}

/** Endpoint description for logs (no credentials). */
export function describeEndpoint(e: RedisEndpoint): string {
  switch (e.kind) {
    case "standalone":
      return `${e.tls ? "rediss" : "redis"}://${e.host}:${e.port}/${e.db}`;
    case "sentinel":
      return `redis-sentinel://${e.sentinels.map((s) => `${s.host}:${s.port}`).join(",")}/${e.master}`;
    case "cluster":
      return `redis-cluster://${e.nodes.map((s) => `${s.host}:${s.port}`).join(",")}`;
  }
}

// ---- stream ids ---------------------------------------------------------------------------------

/** Compares two stream ids "ms-seq" (or "ms"); negative, zero or positive. */
export function compareStreamIds(a: string, b: string): number {
  const da = a.indexOf("-");
  const db = b.indexOf("-");
  const msA = da >= 0 ? a.slice(0, da) : a;
  const msB = db >= 0 ? b.slice(0, db) : b;
  const c = compareDecimal(msA, msB);
  if (c !== 0) return c;
  return compareDecimal(da >= 0 ? a.slice(da + 1) : "0", db >= 0 ? b.slice(db + 1) : "0");
}

function compareDecimal(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Milliseconds part of a stream id (its creation time on the Redis clock). */
export function streamIdMs(id: string): number {
  const d = id.indexOf("-");
  const n = Number(d >= 0 ? id.slice(0, d) : id);
  return Number.isFinite(n) ? n : 0;
}

/** XINFO STREAM, parsed; undefined when the stream does not exist. */
export interface StreamInfo {
  length: number;
  lastGeneratedId: string;
  /** Redis >= 7: highest id ever deleted or trimmed ("0-0" if none); undefined on older servers. */
  maxDeletedId: string | undefined;
  firstEntryId: string | undefined;
  /** Redis >= 7: entries ever added to the stream; undefined on older servers. */
  entriesAdded: number | undefined;
}

export async function streamInfo(client: RedisClient, key: string): Promise<StreamInfo | undefined> {
  let reply: unknown;
  try {
    reply = await client.call("XINFO", "STREAM", key);
  } catch (err) {
    if (/no such key/i.test((err as Error).message)) return undefined;
    throw err;
  }
  if (!Array.isArray(reply)) throw new Error("unexpected XINFO STREAM reply");
  let length = 0;
  let lastGeneratedId = "0-0";
  let maxDeletedId: string | undefined;
  let firstEntryId: string | undefined;
  let entriesAdded: number | undefined;
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const name = String(reply[i]);
    const v = reply[i + 1];
    if (name === "length") length = Number(v);
    else if (name === "last-generated-id") lastGeneratedId = String(v);
    else if (name === "max-deleted-entry-id") maxDeletedId = String(v);
    else if (name === "entries-added") entriesAdded = Number(v);
    else if (name === "first-entry" && Array.isArray(v) && v.length > 0) firstEntryId = String(v[0]);
  }
  return { length, lastGeneratedId, maxDeletedId, firstEntryId, entriesAdded };
}

/**
 * Whether a reader that has applied everything up to `position` can go on tailing this stream:
 * "ok"; "gap" when entries after the position were trimmed away; "lost" when the stream is not the
 * one the position came from (flushed, restarted empty, restored from an older dump).
 */
export function classifyPosition(info: StreamInfo | undefined, position: string): "ok" | "gap" | "lost" {
  const atStart = position === "0-0";
  if (info === undefined) return atStart ? "ok" : "lost";
  if (compareStreamIds(info.lastGeneratedId, position) < 0) return "lost";
  const md = info.maxDeletedId;
  if (md === undefined) {
    // Redis < 7: no trim record; be conservative.
    if (atStart) return info.firstEntryId === undefined && info.lastGeneratedId === "0-0" ? "ok" : "gap";
    return info.firstEntryId !== undefined && compareStreamIds(info.firstEntryId, position) <= 0 ? "ok" : "gap";
  }
  const cmpDeleted = compareStreamIds(md, position);
  if (cmpDeleted > 0) return "gap";
  if (atStart) return "ok";
  if (cmpDeleted === 0) return "ok";
  if (info.firstEntryId !== undefined && compareStreamIds(info.firstEntryId, position) <= 0) return "ok";
  return "lost";
}
