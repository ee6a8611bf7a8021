/**
 * Where Redis is: the one parser of Redis URLs (standalone, TLS, Sentinel, Cluster). The daemon
 * parses `routes.redis.url` once at start and builds every connection from the endpoint
 * (src/redis/client.ts).
 *
 * URLs:
 *   redis://[user:pass@]host:port[/db]            rediss://… for TLS
 *   redis-sentinel://[user:pass@]h1:p1,h2:p2/MASTER[/db][?sentinel_password=…&tls=1]
 *   redis-cluster://[user:pass@]h1:p1,h2:p2[?tls=1]
 * The password of a Sentinel URL is the master's; the Sentinels' own is `sentinel_password`.
 */
export type RedisEndpoint =
  | { kind: "standalone"; url: string; host: string; port: number; db: number; username?: string; password?: string; tls: boolean }
  | { kind: "sentinel"; sentinels: { host: string; port: number }[]; master: string; db: number; username?: string; password?: string; sentinelPassword?: string; tls: boolean }
  | { kind: "cluster"; nodes: { host: string; port: number }[]; username?: string; password?: string; tls: boolean };

/** The hash tag of a key (what Redis Cluster hashes: the text of its first `{…}`), or undefined when it has none. */
export function hashTag(key: string): string | undefined {
  const open = key.indexOf("{");
  if (open < 0) return undefined;
  const close = key.indexOf("}", open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : undefined;
}

/** True when the prefix holds a Redis Cluster hash tag (`{…}` with something inside). */
export function hasHashTag(prefix: string): boolean {
  return hashTag(prefix) !== undefined;
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
