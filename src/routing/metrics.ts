/**
 * Metrics of the route table, whatever its source (file or Redis), on the instance's registry.
 */
import { Counter, Gauge, type Registry } from "prom-client";

/** Numeric form of a table version ("1732262400000-3" stream id or a file mtime in ms). */
export function versionNumber(version: string): number {
  const dash = version.indexOf("-");
  const n = Number(dash >= 0 ? version.slice(0, dash) : version);
  return Number.isFinite(n) ? n : 0;
}

export class RouteMetrics {
  readonly entries: Gauge<"kind">;
  readonly version: Gauge;
  readonly info: Gauge<"source" | "version">;
  readonly lastReload: Gauge;
  readonly reloads: Counter<"source" | "result">;
  readonly lookups: Counter<"outcome">;

  constructor(registry: Registry) {
    this.entries = new Gauge({ name: "didgate_route_table_entries", help: "Route table entries by key kind", labelNames: ["kind"], registers: [registry], aggregator: "max" });
    this.version = new Gauge({ name: "didgate_route_table_version", help: "Route table version (stream id time in ms, or file mtime in ms)", registers: [registry], aggregator: "max" });
    this.info = new Gauge({ name: "didgate_route_table_info", help: "Route table source and version (value 1)", labelNames: ["source", "version"], registers: [registry], aggregator: "max" });
    this.lastReload = new Gauge({ name: "didgate_route_table_last_reload_timestamp_seconds", help: "Unix time of the last successful full load", registers: [registry], aggregator: "max" });
    this.reloads = new Counter({ name: "didgate_route_reloads_total", help: "Full route table loads by source and result (ok, failed, refused)", labelNames: ["source", "result"], registers: [registry] });
    this.lookups = new Counter({ name: "didgate_route_lookups_total", help: "Admin and CLI lookups by outcome", labelNames: ["outcome"], registers: [registry] });
  }

  /** Publish the size and version of the table now in use. */
  observeTable(source: string, version: string, counts: { exact: number; prefix: number; default: number }): void {
    this.entries.set({ kind: "exact" }, counts.exact);
    this.entries.set({ kind: "prefix" }, counts.prefix);
    this.entries.set({ kind: "default" }, counts.default);
    this.version.set(versionNumber(version));
    this.info.reset();
    this.info.set({ source, version }, 1);
  }
}
