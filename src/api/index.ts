/**
 * Builds the API listener from its mapped options: the server, the routes API, and (when Redis is
 * configured) the conditional writer on the connection the caller hands in.
 */
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { ApiConfig } from "../config/schema.js";
import type { LookupJson } from "../routing/explain.js";
import type { Route } from "../routing/route.js";
import type { RedisClient } from "../redis/client.js";
import type { RouteStore } from "../routing/table.js";
import type { KeyIndex } from "./listing.js";
import { registerRoutesApi } from "./routes.js";
import { ApiServer } from "./server.js";
import { ApiRouteWriter } from "./writer.js";

export { ApiServer } from "./server.js";
export { ApiRouteWriter } from "./writer.js";
export { ApiError } from "./errors.js";
export type { Principal } from "./auth.js";

export interface ApiDeps {
  config: ApiConfig;
  /** Certificate and key (PEM) when config.tls is set; read by the caller. */
  tls?: { cert: Buffer; key: Buffer };
  /** The route table's Redis: a connection for the API's writes and reads. */
  redis?: { client: RedisClient; prefix: string; streamMaxlen: number };
  /** Why writes are refused when there is no Redis. */
  readOnlyReason?: string;
  store: RouteStore<Route>;
  lookup(number: string, caller: string | undefined, atMs: number): { ok: true; json: LookupJson } | { ok: false; error: string };
  logger: Logger;
  registry?: Registry;
  now?: () => number;
  version?: string;
  /**
   * More endpoints on the same listener (messages, sessions, …), added before it listens. Each
   * handler finds the authenticated caller in `request.principal` and fails with ApiError.
   */
  register?: readonly ((app: FastifyInstance) => void | Promise<void>)[];
}

export interface ApiHandle {
  readonly server: ApiServer;
  readonly address: AddressInfo;
  /** Feed it the keys the change stream touched (keeps listings current between rebuilds). */
  readonly index: KeyIndex;
  close(): Promise<void>;
}

export async function startApi(d: ApiDeps): Promise<ApiHandle> {
  const c = d.config;
  const hp = /^\[?([^\]]*)\]?:(\d+)$/.exec(c.listen ?? "");
  if (!hp) throw new Error(`api.listen ${JSON.stringify(c.listen)} is not HOST:PORT`);
  const now = d.now ?? Date.now;
  const server = new ApiServer({
    host: hp[1]!,
    port: Number(hp[2]),
    ...(d.tls ? { tls: d.tls } : {}),
    tokens: c.tokens,
    blocks: c.blocks,
    rateLimit: c.rate_limit,
    maxConnections: c.max_connections,
    requestTimeoutMs: c.request_timeout_s * 1000,
    longRequestTimeoutMs: c.import_timeout_s * 1000,
    logger: d.logger,
    ...(d.registry ? { registry: d.registry } : {}),
    now,
  });
  await server.init(d.version ?? "1");
  const writer = d.redis ? new ApiRouteWriter(d.redis.client, { prefix: d.redis.prefix, streamMaxlen: d.redis.streamMaxlen, auditMaxlen: c.audit_maxlen }) : undefined;
  const index = registerRoutesApi(server.app, {
    store: d.store,
    writer,
    readOnlyReason: d.readOnlyReason ?? "route writes need a Redis route source (routes.redis): the API writes through Redis so that every edge applies the change",
    lookup: d.lookup,
    logger: d.logger,
    now,
    importMaxBytes: c.import_max_bytes,
    importTimeoutMs: c.import_timeout_s * 1000,
  });
  for (const r of d.register ?? []) await r(server.app);
  const address = await server.listen();
  if (c.tokens.length === 0) d.logger.warn({ api: c.listen }, "api.listen is set but api.tokens is empty: every API request is refused");
  return { server, address, index, close: () => server.close() };
}
