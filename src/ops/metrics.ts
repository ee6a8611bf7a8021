/**
 * The metrics registry of one didgate instance (no global registry: two instances can run in one
 * process) with the default process metrics. Each layer creates its own metrics on it (the route
 * table's are in src/routing/metrics.ts).
 */
import { collectDefaultMetrics, Registry } from "prom-client";

export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "didgate_", eventLoopMonitoringPrecision: 20 });
  return registry;
}
