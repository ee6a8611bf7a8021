/** Shared bits of the delivery tests: jobs, a silent logger, fast Delivery settings, metric reads. */
import { RedisConnector } from "../../src/redis/client.js";
import { pino } from "pino";
import { Registry } from "prom-client";
import { Delivery, type DeliveryOptions } from "../../src/delivery/delivery.js";
import type { DeliveryJob, DeliveryTarget } from "../../src/delivery/types.js";

export const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

export const silent = pino({ level: "silent" });

export function job(i: number, target: DeliveryTarget, prefix = "msg"): DeliveryJob {
  const id = `${prefix}_${i}`;
  return {
    id,
    body: {
      type: "message.received",
      id,
      received_at: new Date().toISOString(),
      from: "+447700900123",
      to: "+15125550100",
      text: `hello ${i} ✓`,
      encoding: "gsm7",
      parts: 1,
      tenant: "acme",
      smpp: { peer: "smsc-a", message_id: String(i) },
    },
    target,
    acceptedAt: Date.now(),
    attempts: 0,
  };
}

let prefixSeq = 0;
/** A fresh key prefix per test so tests sharing one redis-server do not see each other. */
export function freshPrefix(): string {
  return `t${process.pid}x${++prefixSeq}:`;
}

export interface Made {
  delivery: Delivery;
  registry: Registry;
}

/** A Delivery with short timers for tests. `redisUrl` undefined → direct mode. */
export function makeDelivery(redisUrl: string | undefined, prefix: string, over: Partial<DeliveryOptions> & { instanceId?: string; redisOver?: Partial<NonNullable<DeliveryOptions["redis"]>>; webhookOver?: Partial<DeliveryOptions["webhooks"]> } = {}): Made {
  const registry = new Registry();
  const delivery = new Delivery({
    redis: redisUrl === undefined ? undefined : { connector: RedisConnector.fromUrl(redisUrl), prefix, visibility_ms: 60_000, reclaim_interval_ms: 200, retry_poll_ms: 100, block_ms: 200, ...over.redisOver },
    webhooks: { secret: SECRET, timeout_ms: 2000, max_age_s: 3600, max_in_flight: 16, retry_base_ms: 50, retry_max_ms: 200, retry_min_ms: 20, allow_private: ["127.0.0.0/8"], ...over.webhookOver },
    logger: silent,
    registry,
    instanceId: over.instanceId ?? "edge-test",
    forwarder: over.forwarder,
    direct_wait_ms: over.direct_wait_ms,
    enqueue_timeout_ms: over.enqueue_timeout_ms,
    random: over.random,
    secrets: over.secrets,
  });
  return { delivery, registry };
}

/** Sum of a metric's values whose labels include `labels`. */
export async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const got = await m.get();
  let sum = 0;
  for (const v of got.values) {
    const l = v.labels as Record<string, string | number>;
    if (Object.entries(labels).every(([k, want]) => String(l[k]) === want)) sum += v.value;
  }
  return sum;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(pred: () => boolean | Promise<boolean>, ms = 15_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}
