/**
 * Delivery metrics, created on the instance's registry (no global registry).
 *
 * The spool gauges describe the shared spool in Redis (every edge reports the same value: aggregate
 * them with max(), not sum()). They are read from Redis when Prometheus scrapes, bounded by a short
 * timeout; when Redis does not answer in time the previous values stay.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export type TargetKind = "webhook" | "smpp";
export type DeliveryOutcome = "delivered" | "retry" | "dead";

export interface SpoolStats {
  /** Entries waiting in the stream plus entries waiting for a retry. */
  depth: number;
  /** Age (s) of the oldest message in the spool, from its acceptance; 0 when empty. */
  oldestAgeS: number;
  /** Of depth, the messages waiting for a retry. */
  retry?: number;
  /** Entries in the dead-letter stream. */
  deadLetters?: number;
}

export class DeliveryMetrics {
  readonly deliveries: Counter<"kind" | "outcome">;
  readonly webhookDuration: Histogram<"class">;
  readonly spoolDepth: Gauge;
  readonly spoolOldestAge: Gauge;
  readonly retries: Counter<"kind">;
  readonly deadLetters: Counter<"reason">;
  readonly inFlight: Gauge<"mode">;
  readonly accepts: Counter<"mode" | "outcome">;
  private sampler: (() => Promise<SpoolStats | undefined>) | undefined;
  private last: SpoolStats = { depth: 0, oldestAgeS: 0 };
  private pendingSample: Promise<void> | undefined;

  constructor(registry: Registry) {
    const registers = [registry];
    this.deliveries = new Counter({
      name: "didgate_delivery_total",
      help: "Delivery attempts by target kind (webhook, smpp) and outcome (delivered, retry, dead)",
      labelNames: ["kind", "outcome"],
      registers,
    });
    this.webhookDuration = new Histogram({
      name: "didgate_webhook_duration_seconds",
      help: "Webhook request duration by result class (2xx, 3xx, 4xx, 5xx, timeout, error)",
      labelNames: ["class"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    // The two spool gauges share one Redis round trip per scrape.
    const self = this;
    this.spoolDepth = new Gauge({
      name: "didgate_spool_depth",
      help: "Messages in the durable spool (stream plus retry schedule), shared by all edges",
      registers,
      aggregator: "max",
      async collect() {
        await self.sample();
        this.set(self.last.depth);
      },
    });
    this.spoolOldestAge = new Gauge({
      name: "didgate_spool_oldest_age_seconds",
      help: "Age of the oldest message in the durable spool since it was accepted",
      registers,
      aggregator: "max",
      async collect() {
        await self.sample();
        this.set(self.last.oldestAgeS);
      },
    });
    this.retries = new Counter({
      name: "didgate_delivery_retries_total",
      help: "Retries scheduled, by target kind of the failed attempt",
      labelNames: ["kind"],
      registers,
    });
    this.deadLetters = new Counter({
      name: "didgate_dead_letters_total",
      help: "Messages dead-lettered, by reason (gone, max_age, refused, no_target)",
      labelNames: ["reason"],
      registers,
    });
    this.inFlight = new Gauge({
      name: "didgate_delivery_in_flight",
      help: "Deliveries in progress in this edge, by mode (direct, spool)",
      labelNames: ["mode"],
      registers,
    });
    this.accepts = new Counter({
      name: "didgate_delivery_accepts_total",
      help: "Inbound messages handed to delivery, by mode and answer (accepted, temporary, permanent)",
      labelNames: ["mode", "outcome"],
      registers,
    });
  }

  /** Where the spool gauges read from (set by the spool). */
  setSpoolSampler(fn: (() => Promise<SpoolStats | undefined>) | undefined): void {
    this.sampler = fn;
  }

  /** One sample per scrape even though two gauges ask. */
  private sample(): Promise<void> {
    if (this.sampler === undefined) return Promise.resolve();
    if (this.pendingSample === undefined) {
      const fn = this.sampler;
      this.pendingSample = fn()
        .then((s) => {
          if (s !== undefined) this.last = s;
        })
        .catch(() => undefined)
        .finally(() => {
          // Let the second gauge of the same scrape reuse this sample.
          setImmediate(() => {
            this.pendingSample = undefined;
          });
        });
    }
    return this.pendingSample;
  }
}

/** Dead-letter reason → a small label set. */
export function deadReasonLabel(reason: string): string {
  if (reason.startsWith("max_age")) return "max_age";
  if (reason.startsWith("http 410")) return "gone";
  if (reason.startsWith("no ")) return "no_target";
  return "refused";
}
