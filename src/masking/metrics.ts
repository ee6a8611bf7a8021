/** Metrics of number masking; pool names come from config and the pools API (bounded by masking.max_pools). */
import { Counter, Gauge, type Registry } from "prom-client";
import type { SessionStore } from "./sessions.js";

export class MaskingMetrics {
  readonly allocations: Counter<"pool" | "result">;
  /** result: routed, own_route, no_session, no_outbound, store_error (src/edge/masking.ts); for messages also refused, not_queued (src/edge/sms-masking.ts). */
  readonly routed: Counter<"kind" | "result">;

  constructor(registry: Registry, store: SessionStore) {
    this.allocations = new Counter({ name: "didgate_masking_allocations_total", help: "Masking session allocations by pool and result (created, pool_exhausted)", labelNames: ["pool", "result"], registers: [registry] });
    this.routed = new Counter({ name: "didgate_masking_routed_total", help: "Calls and messages to pool numbers by kind (call, message) and result (routed through a session, own_route, no_session, no_outbound, store_error; messages also refused, not_queued)", labelNames: ["kind", "result"], registers: [registry] });
    new Gauge({
      name: "didgate_masking_sessions",
      help: "Masking sessions alive per pool",
      labelNames: ["pool"],
      registers: [registry],
      aggregator: "max",
      async collect() {
        const m = await store.activeByPool().catch(() => new Map<string, number>());
        this.reset();
        for (const [pool, n] of m) if (store.poolInfo(pool) !== undefined) this.set({ pool }, n);
      },
    });
  }
}
