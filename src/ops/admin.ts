/**
 * The admin HTTP server: /metrics, /healthz, /readyz, /v1/status, /v1/lookup, /v1/users/USER.
 * Binds to loopback unless configured otherwise.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { LookupJson } from "../routing/explain.js";
import { renderStatus, type StatusReport } from "./status.js";
import { errMessage } from "../util/errors.js";

export interface Readiness {
  ready: boolean;
  /** Why not ready (absent when ready). */
  reasons?: string[];
  checks: Record<string, unknown>;
}

export interface AdminHandlers {
  registry: Registry;
  /** The /metrics text when it is not this registry's alone (SIP workers: all of them, summed). */
  metrics?: () => Promise<string>;
  logger: Logger;
  readiness(): Readiness;
  /** `countryCode` undefined: the configured default. */
  /** `atMs` undefined: now, by the handler's clock. */
  lookup(number: string, caller: string | undefined, atMs: number | undefined, countryCode?: string): { ok: true; json: LookupJson } | { ok: false; error: string };
  /** The status view (GET /v1/status). */
  status?(): Promise<StatusReport>;
  /** A registrar user and its bindings (GET /v1/users/USER); undefined: no such user. */
  user?(name: string): Promise<object | undefined>;
}

function send(res: ServerResponse, status: number, body: string, type = "application/json"): void {
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
  res.end(body);
}

/** Bounds of the admin listener: nobody holds it with slow or idle connections. */
export interface AdminLimits {
  /** Complete request headers within this time of connecting (ms). Default 5000. */
  headersTimeoutMs?: number;
  /** Complete request within this time (ms). Default 10000. */
  requestTimeoutMs?: number;
  /** Open connections at most (beyond: closed at once). Default 256. */
  maxConnections?: number;
  /** Idle (no bytes either way) sockets are closed after this (ms). Default 30000. */
  idleTimeoutMs?: number;
}

export class AdminServer {
  private server: Server | undefined;

  constructor(
    private readonly h: AdminHandlers,
    private readonly limits: AdminLimits = {},
  ) {}

  async listen(host: string, port: number): Promise<AddressInfo> {
    const l = this.limits;
    const headersTimeout = l.headersTimeoutMs ?? 5000;
    // timeouts are enforced by a periodic check: check often enough for them to mean something
    const server = createServer({ connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 4))) }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.h.logger.error({ err: errMessage(err), url: req.url }, "admin request failed");
        if (!res.headersSent) send(res, 500, JSON.stringify({ error: "internal error" }));
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 5000;
    server.headersTimeout = headersTimeout;
    server.requestTimeout = Math.max(headersTimeout, l.requestTimeoutMs ?? 10_000);
    server.maxConnections = l.maxConnections ?? 256;
    server.setTimeout(l.idleTimeoutMs ?? 30_000, (sock) => sock.destroy());
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return server.address() as AddressInfo;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://admin");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      send(res, 405, JSON.stringify({ error: "method not allowed" }));
      return;
    }
    if (url.pathname.startsWith("/v1/users/") && this.h.user !== undefined) {
      let name: string;
      try {
        name = decodeURIComponent(url.pathname.slice("/v1/users/".length));
      } catch {
        name = "";
      }
      const u = name.length > 0 && name.length <= 128 ? await this.h.user(name) : undefined;
      if (u === undefined) send(res, 404, JSON.stringify({ error: "no such registrar user (sip.registrar.users)" }));
      else send(res, 200, JSON.stringify(u));
      return;
    }
    switch (url.pathname) {
      case "/metrics": {
        const body = this.h.metrics !== undefined ? await this.h.metrics() : await this.h.registry.metrics();
        send(res, 200, body, this.h.registry.contentType);
        return;
      }
      case "/healthz":
        send(res, 200, JSON.stringify({ status: "ok" }));
        return;
      case "/readyz": {
        const r = this.h.readiness();
        send(res, r.ready ? 200 : 503, JSON.stringify({ status: r.ready ? "ready" : "not ready", ...r }));
        return;
      }
      case "/v1/status": {
        if (this.h.status === undefined) {
          send(res, 404, JSON.stringify({ error: "not found" }));
          return;
        }
        const r = await this.h.status();
        if (url.searchParams.get("format") === "text") send(res, 200, renderStatus(r), "text/plain; charset=utf-8");
        else send(res, 200, JSON.stringify(r));
        return;
      }
      case "/v1/lookup": {
        const number = url.searchParams.get("number");
        if (!number) {
          send(res, 400, JSON.stringify({ error: "query parameter number is required" }));
          return;
        }
        let atMs: number | undefined;
        const at = url.searchParams.get("at");
        if (at) {
          atMs = Date.parse(at);
          if (!Number.isFinite(atMs)) {
            send(res, 400, JSON.stringify({ error: `at ${JSON.stringify(at)} is not an ISO 8601 time` }));
            return;
          }
        }
        const cc = url.searchParams.get("country_code") ?? undefined;
        if (cc !== undefined && !/^[1-9]\d{0,2}$/.test(cc)) {
          send(res, 400, JSON.stringify({ error: `country_code ${JSON.stringify(cc)} must be 1 to 3 digits like 1 or 44` }));
          return;
        }
        const r = this.h.lookup(number, url.searchParams.get("caller") ?? undefined, atMs, cc);
        if (!r.ok) send(res, 400, JSON.stringify({ error: r.error }));
        else send(res, 200, JSON.stringify(r.json));
        return;
      }
      default:
        send(res, 404, JSON.stringify({ error: "not found", endpoints: ["/metrics", "/healthz", "/readyz", "/v1/lookup?number=", "/v1/status"] }));
    }
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }
}
