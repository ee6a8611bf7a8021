/** Metrics of number masking; pool names come from config (a closed set). */
import { Counter, Gauge, type Registry } from "prom-client";
import type { SessionStore } from "./sessions.js";

export class MaskingMetrics {
  readonly allocations: Counter<"pool" | "result">;
  /** result: routed, own_route, no_session, no_outbound, store_error (src/edge/masking.ts). */
  readonly routed: Counter<"kind" | "result">;

  constructor(registry: Registry, store: SessionStore, pools: readonly string[]) {
    this.allocations = new Counter({ name: "didgate_masking_allocations_total", help: "Masking session allocations by pool and result (created, pool_exhausted)", labelNames: ["pool", "result"], registers: [registry] });
    this.routed = new Counter({ name: "didgate_masking_routed_total", help: "Calls and messages to pool numbers by kind (call, message) and result (routed through a session, own_route, no_session, no_outbound, store_error)", labelNames: ["kind", "result"], registers: [registry] });
    const known = new Set(pools);
    new Gauge({
      name: "didgate_masking_sessions",
      help: "Masking sessions alive per pool",
      labelNames: ["pool"],
      registers: [registry],
      async collect() {
        const m = await store.activeByPool().catch(() => new Map<string, number>());
        for (const [pool, n] of m) if (known.has(pool)) this.set({ pool }, n);
      },
    });
  }
}
