/**
 * VoiceEdge: the SIP edge policy (issue #5). Carrier trunk INVITE in, routed call out.
 * Stub: the API is fixed first so app.ts can wire it; the implementation follows.
 */
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { Config } from "../config/schema.js";
import type { Decider } from "../routing/decide.js";
import type { Route } from "../routing/route.js";
import type { RouteStore } from "../routing/table.js";

export interface VoiceEdgeOptions {
  /** The whole validated config. */
  config: Config;
  store: RouteStore<Route>;
  decider: Decider;
  logger: Logger;
  registry: Registry;
  now?: () => number;
  /** To resolve tls file paths. */
  baseDir: string;
}

export class VoiceEdge {
  listeners: { transport: string; address: string; port: number }[] = [];
  private draining = false;

  constructor(private readonly opts: VoiceEdgeOptions) {}

  /** Creates the SipStack on config.sip.listen (empty list: no SIP). */
  async start(): Promise<void> {}

  /** SIGHUP: apply trunks and limits; returns what could not change live (e.g. listen). */
  reload(config: Config): string[] {
    const out: string[] = [];
    if (JSON.stringify(config.sip.listen) !== JSON.stringify(this.opts.config.sip.listen)) out.push("sip.listen");
    return out;
  }

  /** New INVITEs get 503; in-flight transactions continue. */
  drain(): void {
    this.draining = true;
  }

  /** INVITE transactions still in progress. */
  inFlight(): number {
    return 0;
  }

  async close(): Promise<void> {}
}
