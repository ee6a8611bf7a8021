/**
 * Metrics of the Redis route sync (one instance per RedisRouteSource, on the instance's registry).
 * Table size and version are published through RouteMetrics (didgate_route_table_*), refused and
 * failed full loads through didgate_route_reloads_total{source="redis",result=…}.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** Why a route entry in Redis was skipped (the label values of didgate_route_entries_skipped_total). */
export type SkipReason = "invalid_key" | "oversized" | "not_json" | "invalid_route" | "unknown_op";
export const SKIP_REASONS: readonly SkipReason[] = ["invalid_key", "oversized", "not_json", "invalid_route", "unknown_op"];

export class RedisSyncMetrics {
  readonly connected: Gauge;
  readonly stale: Gauge;
  readonly refusing: Gauge;
  readonly lastLoadSeconds: Gauge;
  readonly deltaLag: Histogram;
  readonly deltas: Counter<"op">;
  readonly invalid: Counter<"phase">;
  readonly skipped: Counter<"reason">;
  readonly resyncs: Counter<"mode">;
  readonly snapshots: Counter<"result">;
  readonly snapshotAge: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.connected = new Gauge({ name: "didgate_route_sync_connected", help: "1 while the Redis route sync is connected and tailing the change stream", registers, aggregator: "min" });
    this.stale = new Gauge({ name: "didgate_route_sync_stale", help: "1 while routing from the local snapshot because Redis has not been reachable since start", registers, aggregator: "max" });
    this.refusing = new Gauge({ name: "didgate_route_sync_refusing", help: "1 while a full load from Redis is refused (table empty or shrunk past routes.redis.max_shrink_ratio); the last good table is in use", registers, aggregator: "max" });
    this.lastLoadSeconds = new Gauge({ name: "didgate_route_sync_last_full_load_duration_seconds", help: "Duration of the last full load from Redis (HSCAN, validation, build)", registers, aggregator: "max" });
    this.deltaLag = new Histogram({
      name: "didgate_route_sync_delta_lag_seconds",
      help: "Time from a change's write (its stream id) to its application to the table",
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
      registers,
    });
    this.deltas = new Counter({ name: "didgate_route_sync_deltas_total", help: "Change-stream entries applied, by op (set, del, reload)", labelNames: ["op"], registers });
    this.invalid = new Counter({ name: "didgate_route_sync_invalid_entries_total", help: "Route entries skipped because they failed validation, by phase (load, delta, snapshot)", labelNames: ["phase"], registers });
    this.skipped = new Counter({
      name: "didgate_route_entries_skipped_total",
      help: "Route entries in Redis skipped, by reason (invalid_key, oversized, not_json, invalid_route, unknown_op)",
      labelNames: ["reason"],
      registers,
    });
    for (const reason of SKIP_REASONS) this.skipped.inc({ reason }, 0);
    this.resyncs = new Counter({ name: "didgate_route_sync_resyncs_total", help: "Resyncs after a reconnect or a detected gap, by mode (tail, full)", labelNames: ["mode"], registers });
    this.snapshots = new Counter({ name: "didgate_route_sync_snapshot_writes_total", help: "Local snapshot writes by result", labelNames: ["result"], registers });
    this.snapshotAge = new Gauge({ name: "didgate_route_sync_snapshot_timestamp_seconds", help: "Unix time the last local snapshot was written (or, when stale, of the snapshot in use)", registers, aggregator: "max" });
  }
}
