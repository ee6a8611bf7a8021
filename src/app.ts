/**
 * The one place that wires didgate together: config → logger, metrics, route source, admin HTTP,
 * and (from their own modules) the SIP and SMPP edges. No global state: several instances can run
 * in one process on different ports.
 */
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { LoadedConfig } from "./config/load.js";
import { resolvePath } from "./config/load.js";
import { parseHostPort } from "./config/net.js";
import type { Config } from "./config/schema.js";
import { AdminServer, type Readiness } from "./ops/admin.js";
import { createLogger } from "./ops/logger.js";
import { createRegistry, RouteMetrics } from "./ops/metrics.js";
import { Decider } from "./routing/decide.js";
import { lookupJson } from "./routing/explain.js";
import type { Route } from "./routing/route.js";
import { FileRouteSource } from "./routing/sources/file.js";
import { RouteStore, RouteTable } from "./routing/table.js";

export interface DidgateOptions {
  logger?: Logger;
  /** Epoch ms; injectable for tests. */
  now?: () => number;
  /** Uniform random in [0,1). */
  random?: () => number;
}

export class StartError extends Error {
  constructor(readonly errors: string[]) {
    super(errors.join("\n"));
    this.name = "StartError";
  }
}

export class Didgate {
  readonly config: Config;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly routeMetrics: RouteMetrics;
  readonly store: RouteStore<Route>;
  readonly decider: Decider;
  readonly now: () => number;
  private fileSource: FileRouteSource | undefined;
  private admin: AdminServer | undefined;
  adminAddress: AddressInfo | undefined;
  private routesLoaded = false;
  private listenersUp = false;
  private stopping = false;

  constructor(readonly loaded: LoadedConfig, opts: DidgateOptions = {}) {
    this.config = loaded.config;
    this.logger = opts.logger ?? createLogger(this.config.log.level);
    this.registry = createRegistry();
    this.routeMetrics = new RouteMetrics(this.registry);
    this.store = new RouteStore<Route>(RouteTable.build<Route>([]));
    this.decider = new Decider(opts.random ? { random: opts.random } : {});
    this.now = opts.now ?? Date.now;
  }

  path(p: string): string {
    return resolvePath(this.loaded.baseDir, p);
  }

  async start(): Promise<void> {
    await this.startRoutes();
    await this.startAdmin();
    this.listenersUp = true;
    this.logger.info({ admin: this.adminAddress, routes: this.store.current.size }, "didgate started");
  }

  private async startRoutes(): Promise<void> {
    const file = this.path(this.config.routes.file);
    this.fileSource = new FileRouteSource({ path: file, watch: this.config.routes.watch, store: this.store, logger: this.logger, metrics: this.routeMetrics });
    const r = this.fileSource.load();
    if (!r.ok) throw new StartError(r.errors);
    this.routesLoaded = true;
  }

  private async startAdmin(): Promise<void> {
    const hp = parseHostPort(this.config.admin.listen)!;
    this.admin = new AdminServer({
      registry: this.registry,
      logger: this.logger,
      readiness: () => this.readiness(),
      lookup: (number, caller, atMs) => this.lookup(number, caller, atMs),
    });
    this.adminAddress = await this.admin.listen(hp.host, hp.port);
  }

  readiness(): Readiness {
    const t = this.store.current;
    const ready = this.routesLoaded && this.listenersUp && !this.stopping;
    return {
      ready,
      checks: {
        routes: { loaded: this.routesLoaded, source: this.config.routes.redis ? "redis" : "file", entries: t.size, version: t.version, stale: false },
        listeners: { up: this.listenersUp },
        draining: this.stopping,
      },
    };
  }

  lookup(number: string, caller: string | undefined, atMs: number = this.now()) {
    const r = lookupJson(this.store.current, this.decider, caller === undefined ? { number, atMs } : { number, caller, atMs });
    this.routeMetrics.lookups.inc({ outcome: r.ok ? String(r.json.outcome) : "invalid" });
    return r;
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.logger.info("didgate stopping");
    this.fileSource?.close();
    await this.admin?.close();
    this.logger.info("didgate stopped");
    this.logger.flush?.();
  }
}
