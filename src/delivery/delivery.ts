/**
 * The delivery facade the SMPP service talks to. One per didgate instance (no globals).
 *
 *   const delivery = new Delivery({ redis, webhooks, logger, registry, instanceId, forwarder });
 *   await delivery.start();
 *   const outcome = await delivery.accept(job); // "accepted" | "temporary" | "permanent" → PDU status
 *   await delivery.drain(graceMs); await delivery.close();
 *
 * With `redis` set the message is spooled durably and "accepted" means "Redis acknowledged the
 * write"; without it (direct mode) "accepted" means "the receiver answered 2xx".
 */
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { Attempter } from "./attempt.js";
import { type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.js";
import { type TimeoutClock, systemClock } from "../util/clock.js";
import { DirectDelivery } from "./direct.js";
import { DeliveryMetrics } from "./metrics.js";
import type { RedisConnector } from "../redis/client.js";
import { type RedisConnect, type SpoolWrites, spoolConnect } from "./redis.js";
import type { SmppForwarder } from "./smpp-forward.js";
import { Spool } from "./spool.js";
import type { AcceptOutcome, DeliveryJob, FinalOutcome } from "./types.js";
import { WebhookSender } from "./webhook.js";
import type { SecretLookup } from "./secret-ref.js";
import { errMessage } from "../util/errors.js";

export interface DeliveryRedisOptions {
  /** Where Redis is (any deployment kind); the spool's connections are made on it. */
  connector: RedisConnector;
  /** Key prefix, e.g. "didgate:" (docs/redis.md). For Redis Cluster it must hold a hash tag. */
  prefix: string;
  /** Connection factory override (tests); default: spoolConnect(connector). */
  connect?: RedisConnect;
  /** Most messages in the spool; beyond it accept() answers "temporary". Default 1,000,000; 0 = unbounded. */
  max_depth?: number;
  /** Dead-letter stream MAXLEN ~; default 0 (never trimmed; `didgate dlq drop` removes). */
  dlq_maxlen?: number;
  /** A message pending this long (ms) in a worker is taken to belong to a dead edge. Default max(60 s, 3 × timeout + smpp timeout). */
  visibility_ms?: number;
  /** How often to look for such messages (ms). Default min(visibility / 2, 15 s). */
  reclaim_interval_ms?: number;
  /** A consumer of the group with nothing pending and idle this long (ms) is an edge that left: removed from the group. Default max(1 h, 10 × visibility). */
  consumer_idle_ms?: number;
  /** Longest wait between two looks at the shared retry schedule (ms). Default 1000. */
  retry_poll_ms?: number;
  /** XREADGROUP BLOCK (ms). Default 5000. */
  block_ms?: number;
}

export interface DeliveryWebhookOptions {
  secret?: string;
  timeout_ms: number;
  max_age_s: number;
  max_in_flight: number;
  /** First retry's ceiling (ms, doubled per attempt, full jitter). Default 1000. */
  retry_base_ms?: number;
  /** Longest wait between attempts (ms). Default 300000. */
  retry_max_ms?: number;
  /** Shortest wait between attempts (ms). Default 100. */
  retry_min_ms?: number;
  /** "http" (node:http keep-alive Agent, default; ~4x the throughput of fetch in bench/delivery.ts) or "fetch" (Node's built-in fetch/undici). */
  transport?: "fetch" | "http";
  /** CIDRs webhooks may reach although loopback, private, link-local or special-purpose (default none). */
  allow_private?: readonly string[];
}

export interface DeliveryOptions {
  redis?: DeliveryRedisOptions;
  webhooks: DeliveryWebhookOptions;
  logger: Logger;
  registry: Registry;
  forwarder?: SmppForwarder;
  /** Consumer name in the spool's group; keep it stable across restarts of one edge (e.g. the host name). */
  instanceId: string;
  /** Wall clock override (ms); timers keep the real clock unless `clock` is given. */
  now?: () => number;
  clock?: TimeoutClock;
  /** Direct mode: how long accept() waits for the receiver before answering "temporary" (ms). Default 8000 (keep it below the SMSC's response timeout). */
  direct_wait_ms?: number;
  /** Spool mode: how long accept() waits for Redis before answering "temporary" (ms). Default 5000. */
  enqueue_timeout_ms?: number;
  /** Upper bound on one SMPP forward attempt (ms). Default 30000. */
  smpp_timeout_ms?: number;
  /** Jitter source (tests). */
  random?: () => number;
  userAgent?: string;
  /**
   * Called once when a message that was acknowledged to its sender reaches its end: delivered, or
   * dead-lettered (spool mode). In direct mode a failure is the PDU's answer, so only deliveries
   * are reported. Runs on the edge that made the final attempt; must not throw.
   */
  onFinal?: (job: DeliveryJob, outcome: FinalOutcome) => void;
  /** The current webhook secret of a number's route: spooled jobs hold a reference, not the secret. */
  secrets?: SecretLookup;
}

export class Delivery {
  readonly mode: "spool" | "direct";
  readonly metrics: DeliveryMetrics;
  /** The spool (spool mode only). */
  readonly spool: Spool | undefined;
  private readonly direct: DirectDelivery | undefined;
  private readonly logger: Logger;
  private readonly sender: WebhookSender;
  private readonly clock: TimeoutClock;
  private readonly directWaitMs: number;
  private readonly enqueueTimeoutMs: number;
  private closed = false;

  constructor(opts: DeliveryOptions) {
    const base = opts.clock ?? systemClock;
    const nowFn = opts.now;
    this.clock = nowFn ? { now: nowFn, setTimeout: base.setTimeout, clearTimeout: base.clearTimeout } : base;
    this.logger = opts.logger;
    this.metrics = new DeliveryMetrics(opts.registry);
    const wh = opts.webhooks;
    const sender = new WebhookSender({
      timeoutMs: wh.timeout_ms,
      secret: wh.secret,
      now: this.clock.now,
      userAgent: opts.userAgent,
      transport: wh.transport,
      maxSockets: wh.max_in_flight,
      allowPrivate: wh.allow_private ?? [],
    });
    this.sender = sender;
    if (!sender.signed) opts.logger.warn("webhooks.secret is not set: webhooks without a per-route secret are sent unsigned");
    const smppTimeoutMs = opts.smpp_timeout_ms ?? 30_000;
    const attempter = new Attempter({ sender, forwarder: opts.forwarder, metrics: this.metrics, logger: opts.logger, smppTimeoutMs, ...(opts.secrets ? { secrets: opts.secrets } : {}) });
    this.directWaitMs = opts.direct_wait_ms ?? 8_000;
    this.enqueueTimeoutMs = opts.enqueue_timeout_ms ?? 5_000;
    const backoff: BackoffOptions = {
      baseMs: wh.retry_base_ms ?? DEFAULT_BACKOFF.baseMs,
      capMs: wh.retry_max_ms ?? DEFAULT_BACKOFF.capMs,
      floorMs: wh.retry_min_ms ?? DEFAULT_BACKOFF.floorMs,
      maxAgeMs: wh.max_age_s * 1000,
    };
    const r = opts.redis;
    if (r) {
      this.mode = "spool";
      const visibilityMs = r.visibility_ms ?? Math.max(60_000, 3 * wh.timeout_ms + smppTimeoutMs);
      const spool = new Spool({
        connect: r.connect ?? spoolConnect(r.connector),
        prefix: r.prefix,
        instanceId: opts.instanceId,
        attempter,
        metrics: this.metrics,
        logger: opts.logger,
        backoff,
        clock: this.clock,
        maxInFlight: wh.max_in_flight,
        visibilityMs,
        reclaimIntervalMs: r.reclaim_interval_ms ?? Math.min(Math.floor(visibilityMs / 2), 15_000),
        consumerIdleMs: r.consumer_idle_ms ?? Math.max(3_600_000, 10 * visibilityMs),
        blockMs: r.block_ms ?? 5_000,
        retryPollMs: r.retry_poll_ms ?? 1_000,
        maxDepth: r.max_depth ?? 1_000_000,
        dlqMaxLen: r.dlq_maxlen ?? 0,
        random: opts.random,
        onFinal: opts.onFinal,
      });
      this.spool = spool;
      this.metrics.setSpoolSampler(() => withTimeout(spool.stats(), 1_000));
    } else {
      this.mode = "direct";
      this.direct = new DirectDelivery({ attempter, metrics: this.metrics, logger: opts.logger, maxInFlight: wh.max_in_flight, onFinal: opts.onFinal });
    }
  }

  /**
   * Take responsibility for an inbound message (or receipt), or decline it. Answer the PDU with
   * ESME_ROK for "accepted", the peer's temporary-failure status for "temporary", ESME_RX_R_APPN
   * for "permanent". Never throws.
   */
  async accept(job: DeliveryJob): Promise<AcceptOutcome> {
    let outcome: AcceptOutcome;
    if (this.closed || (!job.target.webhook && !job.target.smpp)) {
      outcome = this.closed ? "temporary" : "permanent";
    } else if (this.spool !== undefined) {
      outcome = await this.enqueue(this.spool, job);
    } else {
      outcome = await this.direct!.deliverNow(job, this.directWaitMs);
    }
    this.metrics.accepts.inc({ mode: this.mode, outcome });
    return outcome;
  }

  /**
   * Spool mode: accept() with `writes` made in the same Redis script as the enqueue (atomically, and
   * only when the message is queued); "refused" (not counted as an accept) when the `unless` member
   * of `writes` is in its set. undefined in direct mode: the caller makes its checks and writes itself.
   */
  acceptWith(job: DeliveryJob, writes: SpoolWrites): Promise<AcceptOutcome | "refused"> | undefined {
    const spool = this.spool;
    if (spool === undefined || this.closed || (!job.target.webhook && !job.target.smpp)) return undefined;
    return this.enqueue(spool, job, writes).then((outcome) => {
      if (outcome !== "refused") this.metrics.accepts.inc({ mode: this.mode, outcome });
      return outcome;
    });
  }

  private async enqueue(spool: Spool, job: DeliveryJob): Promise<AcceptOutcome>;
  private async enqueue(spool: Spool, job: DeliveryJob, writes: SpoolWrites): Promise<AcceptOutcome | "refused">;
  private async enqueue(spool: Spool, job: DeliveryJob, writes?: SpoolWrites): Promise<AcceptOutcome | "refused"> {
    try {
      const ok = await withTimeout(spool.enqueue(job, this.enqueueTimeoutMs, writes), this.enqueueTimeoutMs);
      if (ok === true) return "accepted";
      if (ok === "refused") return "refused";
      if (ok === false) this.logger.warn({ msg_id: job.id }, "spool full: message declined with a temporary failure");
      else this.logger.warn({ msg_id: job.id }, "spool write timed out: message declined with a temporary failure");
      return "temporary";
    } catch (err) {
      // Per message at debug; the outage itself is logged once (and reminded) by the spool.
      spool.outage.failure(errMessage(err), { op: "enqueue" });
      this.logger.debug({ msg_id: job.id, err: errMessage(err) }, "spool write failed: message declined with a temporary failure");
      return "temporary";
    }
  }

  /** Deliveries in progress in this process. */
  get inFlightCount(): number {
    return this.spool !== undefined ? this.spool.inFlightCount : this.direct!.inFlightCount;
  }

  /** Whether a new message can be accepted now (spool mode: the spool's Redis is writable). */
  health(): { ok: true } | { ok: false; reason: string } {
    if (this.closed) return { ok: false, reason: "delivery closed" };
    return this.spool !== undefined ? this.spool.writable() : { ok: true };
  }

  /** Start the spool's delivery worker (spool mode); no-op in direct mode. */
  async start(): Promise<void> {
    if (this.spool !== undefined) await this.spool.start();
  }

  /** Stop taking work and wait up to `graceMs` for deliveries in progress. */
  async drain(graceMs: number): Promise<void> {
    if (this.spool !== undefined) await this.spool.stop(graceMs);
    else await this.direct!.idle(graceMs);
  }

  /** Release connections. accept() answers "temporary" afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.metrics.setSpoolSampler(undefined);
    if (this.spool !== undefined) await this.spool.close();
    this.sender.close();
  }
}

/** The promise's value, or undefined when it takes longer than `ms`. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<undefined>((resolve) => {
      t = setTimeout(() => resolve(undefined), ms);
    }),
  ]).finally(() => clearTimeout(t));
}
