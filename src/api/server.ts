/**
 * The HTTP API listener (docs/api.md): fastify with JSON-schema validation at the border, bearer
 * tokens, a token bucket per token, bounded connections, body sizes and request times, errors as
 * `{ "error": { "code", "message" } }`, and the OpenAPI document generated from the route schemas
 * at GET /v1/openapi.json. Feature modules (routes.ts; later messages and sessions) add their
 * routes through registerRoutes-style functions on the same instance.
 */
import type { AddressInfo } from "node:net";
import swagger from "@fastify/swagger";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { TokenAuth, type Principal, type TokenConfig } from "./auth.js";
import { Deadlines } from "./deadline.js";
import { ApiError, codeForStatus, errorBody } from "./errors.js";
import { RateLimiter } from "./rate.js";

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal;
  }
}

export interface ApiServerOptions {
  host: string;
  port: number;
  tls?: { cert: Buffer; key: Buffer };
  tokens: readonly TokenConfig[];
  /** Number blocks per tenant. */
  blocks?: Readonly<Record<string, readonly string[]>>;
  rateLimit: { per_s: number; burst: number };
  maxConnections: number;
  requestTimeoutMs: number;
  /** Time to receive a whole request (the import route needs the longest). */
  longRequestTimeoutMs: number;
  logger: Logger;
  registry?: Registry;
  now?: () => number;
}

/** Largest ordinary JSON body (one route entry). */
export const BODY_LIMIT = 256 * 1024;

export const ERROR_SCHEMA = {
  type: "object",
  properties: {
    error: {
      type: "object",
      properties: { code: { type: "string" }, message: { type: "string" }, errors: { type: "array", items: { type: "string" } } },
      required: ["code", "message"],
    },
  },
  required: ["error"],
} as const;

/** How often the server checks its connections' header and request times (Node's default: 30 s). */
const CONNECTION_CHECK_MS = 1000;

/** Per failed authentication and client address: a burst of 10, then one per second. */
const AUTH_FAIL_RATE = { per_s: 1, burst: 10 };

export class ApiServer {
  readonly app: FastifyInstance;
  private readonly auth: TokenAuth;
  private readonly limiter: RateLimiter;
  private readonly authFailures: RateLimiter;
  private readonly log: Logger;
  private readonly requests: Counter<"route" | "method" | "status"> | undefined;
  private readonly deadlines: Deadlines;

  constructor(private readonly o: ApiServerOptions) {
    const now = o.now ?? Date.now;
    this.log = o.logger.child({ component: "api" });
    this.auth = new TokenAuth(o.tokens, o.blocks);
    this.limiter = new RateLimiter(o.rateLimit.per_s, o.rateLimit.burst, now, Math.max(16, o.tokens.length * 2));
    this.authFailures = new RateLimiter(AUTH_FAIL_RATE.per_s, AUTH_FAIL_RATE.burst, now, 10_000);
    if (o.registry) {
      this.requests = new Counter({
        name: "didgate_api_requests_total",
        help: "API requests by route pattern, method and status",
        labelNames: ["route", "method", "status"],
        registers: [o.registry],
      });
    }
    this.app = Fastify({
      // fastify logs through our logger, at warn and above: no per-request lines, and the
      // Authorization header is redacted wherever a request gets logged.
      loggerInstance: o.logger.child({ component: "api" }, { level: "warn", redact: { paths: ["req.headers.authorization", "headers.authorization", "authorization"], censor: "[redacted]" } }),
      // headersTimeout and requestTimeout are enforced when the server checks, not to the second
      ...(o.tls ? { https: { cert: o.tls.cert, key: o.tls.key, connectionsCheckingInterval: CONNECTION_CHECK_MS } } : { http: { connectionsCheckingInterval: CONNECTION_CHECK_MS } }),
      bodyLimit: BODY_LIMIT,
      connectionTimeout: 60_000,
      keepAliveTimeout: 5_000,
      requestTimeout: o.longRequestTimeoutMs,
      // no server-wide handlerTimeout: see src/api/deadline.ts (the import route sets its own)
      maxRequestsPerSocket: 10_000,
      routerOptions: { maxParamLength: 200 },
      forceCloseConnections: true,
      return503OnClosing: true,
      // a malformed URL or an over-long path parameter: our error shape, counted, the URL not echoed
      frameworkErrors: (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
        const status = err.code === "FST_ERR_MAX_PARAM_LENGTH" ? 414 : 400;
        this.requests?.inc({ route: "unmatched", method: "other", status: String(status) });
        if (req.raw.complete !== true) void reply.header("connection", "close");
        void reply.code(status).send(errorBody(status === 414 ? "uri_too_long" : "bad_request", status === 414 ? "a path parameter is too long" : "the URL is not valid"));
      },
      // what Node's HTTP parser refuses (malformed requests, headers too large, too slow)
      clientErrorHandler: (err: NodeJS.ErrnoException, socket: import("node:stream").Duplex) => clientError(err, socket),
      ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
    }) as unknown as FastifyInstance;
    // bodies are JSON (the import route adds its own types): text/plain is 415, not a string
    // handed to a schema that wants an object
    this.app.removeContentTypeParser("text/plain");
    // A request that has no body to give (DELETE, GET) may still name the JSON type, as clients
    // that set it on every request do: an empty body is then no body, not a 400. Anything else
    // goes through fastify's own JSON parser (body limit, prototype poisoning refused).
    const json = this.app.getDefaultJsonParser("error", "error");
    this.app.removeContentTypeParser("application/json");
    this.app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
      if (body === "" && (req.method === "DELETE" || req.method === "GET" || req.method === "HEAD")) return done(null, undefined);
      json(req, body as string, done);
    });
    this.deadlines = new Deadlines(o.requestTimeoutMs, (reply) => {
      this.log.warn({ method: reply.request.method, route: reply.request.routeOptions.url, timeout_ms: o.requestTimeoutMs }, "API request not answered in time: 503");
      void reply.code(503).header("retry-after", "1").send(errorBody("timeout", "the request took too long"));
    });
    const server = this.app.server;
    server.maxConnections = o.maxConnections;
    server.headersTimeout = 10_000;
    this.hooks();
  }

  private hooks(): void {
    const app = this.app;
    app.decorateRequest("principal", undefined as unknown as Principal);
    const deadlines = this.deadlines;
    app.addHook("onRequest", (req, reply, done) => {
      if (!(Number(req.routeOptions.handlerTimeout) > 0)) deadlines.add(reply);
      done();
    });
    app.addHook("onResponse", (_req, reply, done) => {
      deadlines.delete(reply);
      done();
    });
    // An answer given before the request's body has all arrived (401, 429, 404, a deadline's 503)
    // closes the connection: the rest of the body is not read, and a client sending it slowly
    // does not keep the connection (and a slot of max_connections) for the long request timeout.
    app.addHook("onSend", (req, reply, _payload, done) => {
      if (req.raw.complete !== true) void reply.header("connection", "close");
      done();
    });
    app.addHook("onRequest", async (req, reply) => {
      const r = this.auth.authenticate(req.headers.authorization);
      if (!r.ok) {
        const wait = this.authFailures.take(req.ip);
        if (wait > 0) throw new ApiError(429, "rate_limited", "too many failed authentications from this address", { retryAfterS: wait });
        this.log.info({ ip: req.ip, reason: r.reason, method: req.method, url: req.url.split("?")[0]!.slice(0, 200) }, "API request refused: no valid bearer token");
        reply.header("www-authenticate", `Bearer realm="didgate"${r.reason === "missing" ? "" : ', error="invalid_token"'}`);
        throw new ApiError(401, "unauthorized", r.reason === "missing" ? "an Authorization: Bearer <token> header is required" : "the bearer token is not valid");
      }
      req.principal = r.principal;
      const wait = this.limiter.take(r.principal.fingerprint);
      if (wait > 0) throw new ApiError(429, "rate_limited", `more than ${this.o.rateLimit.per_s} requests per second (burst ${this.o.rateLimit.burst}) for this token`, { retryAfterS: wait });
    });
    if (this.requests) {
      const c = this.requests;
      app.addHook("onResponse", async (req, reply) => {
        c.inc({ route: req.routeOptions.url ?? "unmatched", method: req.routeOptions.method ? String(req.method) : "other", status: String(reply.statusCode) });
      });
    }
    app.setErrorHandler((err: FastifyError | ApiError, req: FastifyRequest, reply: FastifyReply) => {
      if (err instanceof ApiError) {
        if (err.extra.retryAfterS !== undefined) reply.header("retry-after", String(err.extra.retryAfterS));
        return reply.code(err.status).send(errorBody(err.code, err.message, err.extra.errors));
      }
      if (err.validation) return reply.code(400).send(errorBody("bad_request", err.message));
      if (err.code === "FST_ERR_HANDLER_TIMEOUT") return reply.code(503).header("retry-after", "1").send(errorBody("timeout", "the request took too long"));
      const status = typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
      if (status >= 500) this.log.error({ err: err.message, method: req.method, route: req.routeOptions.url }, "API request failed");
      return reply.code(status).send(errorBody(codeForStatus(status), status >= 500 ? "internal error" : err.message));
    });
    app.setNotFoundHandler((req, reply) => {
      void reply.code(404).send(errorBody("not_found", `no endpoint ${req.method} ${req.url.split("?")[0]!.slice(0, 200)} (see GET /v1/openapi.json)`));
    });
  }

  /** Registers the OpenAPI generator; call before any route is added. */
  async init(version: string): Promise<void> {
    await this.app.register(swagger, {
      openapi: {
        openapi: "3.1.0",
        info: { title: "didgate API", version, description: "Routes, lookups and (in later versions) messages and masking sessions of a didgate edge. Every request needs Authorization: Bearer <token>." },
        components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
        security: [{ bearer: [] }],
      },
    });
    this.app.get("/v1/openapi.json", { schema: { hide: true } }, async () => this.app.swagger());
  }

  async listen(): Promise<AddressInfo> {
    await this.app.listen({ host: this.o.host, port: this.o.port });
    return this.app.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    this.deadlines.stop();
    await this.app.close();
  }
}

/** Answers to what Node's HTTP parser refuses, in the API's error shape; the connection is closed. */
function clientError(err: NodeJS.ErrnoException, socket: import("node:stream").Duplex): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const [status, reason, code, message] =
    err.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [408, "Request Timeout", "timeout", "the request did not arrive in time"]
      : err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large", "headers_too_large", "the request's headers are too large"]
        : [400, "Bad Request", "bad_request", "the request is not valid HTTP"];
  const body = JSON.stringify(errorBody(code, message));
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy();
}
