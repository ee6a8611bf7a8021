/**
 * The one Redis client factory. Every connection didgate makes (route sync, spool, reassembly
 * parts, health share, CLI tools) is built here from a parsed endpoint, so standalone, TLS,
 * Sentinel and Cluster deployments work the same for each of them.
 *
 *   const redis = new RedisConnector(parseRedisUrl(url));      // once, at the border
 *   const c = redis.client({ name: "didgate-spool", redis: { enableOfflineQueue: false } });
 *
 * Clients are created with lazyConnect: call connect() (or issue a command with the offline
 * queue on).
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import { describeEndpoint, parseRedisUrl, type RedisEndpoint } from "./endpoint.js";

export type RedisClient = Redis | Cluster;

export interface ClientOptions {
  /** Extra ioredis options (applied to every node for Cluster). */
  redis?: Partial<RedisOptions>;
  /** CLIENT SETNAME of the connection(s), e.g. "didgate-spool-enqueue". */
  name?: string;
  /** false: start connecting at once (default true: on connect() or the first command). */
  lazy?: boolean;
  /** Initial reconnect delay, doubled up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Exponential reconnect backoff with a little jitter. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Creates an ioredis client for the endpoint (without connecting unless `lazy: false`). */
export function createRedisClient(endpoint: RedisEndpoint, opts: ClientOptions = {}): RedisClient {
  const minB = opts.minBackoffMs ?? 100;
  const maxB = opts.maxBackoffMs ?? 5000;
  const lazy = opts.lazy ?? true;
  const common: RedisOptions = {
    lazyConnect: lazy,
    retryStrategy: (times: number) => backoffDelay(times - 1, minB, maxB),
    ...(endpoint.username !== undefined ? { username: endpoint.username } : {}),
    ...(endpoint.password !== undefined ? { password: endpoint.password } : {}),
    ...(endpoint.tls ? { tls: {} } : {}),
    ...(opts.name !== undefined ? { connectionName: opts.name } : {}),
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
      const { lazyConnect: _l, retryStrategy: _r, enableAutoPipelining, ...redisOptions } = common;
      const cluster: ClusterOptions = {
        lazyConnect: lazy,
        redisOptions,
        clusterRetryStrategy: (times: number) => backoffDelay(times - 1, minB, maxB),
        enableOfflineQueue: common.enableOfflineQueue ?? true,
        ...(enableAutoPipelining !== undefined ? { enableAutoPipelining } : {}),
      };
      return new Cluster(endpoint.nodes, cluster);
    }
  }
}


/**
 * An endpoint and the defaults of every client made for it; handed to each component instead of
 * a URL.
 */
export class RedisConnector {
  constructor(
    readonly endpoint: RedisEndpoint,
    private readonly defaults: Omit<ClientOptions, "redis" | "name"> = {},
  ) {}

  /** Parses the URL (throws Error with a readable message). For the borders: app.ts, the CLI. */
  static fromUrl(url: string, defaults: Omit<ClientOptions, "redis" | "name"> = {}): RedisConnector {
    return new RedisConnector(parseRedisUrl(url), defaults);
  }

  get kind(): RedisEndpoint["kind"] {
    return this.endpoint.kind;
  }

  /** A new client (lazyConnect) with these options over the connector's defaults. */
  client(opts: ClientOptions = {}): RedisClient {
    return createRedisClient(this.endpoint, { ...this.defaults, ...opts });
  }

  /** The endpoint for logs (no credentials). */
  describe(): string {
    return describeEndpoint(this.endpoint);
  }
}
