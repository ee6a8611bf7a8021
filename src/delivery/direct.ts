/**
 * Direct mode (no Redis): deliver while the SMSC waits for its deliver_sm_resp, and let the answer
 * carry the outcome. Nothing is stored in didgate, so nothing acknowledged can be lost by a crash:
 *   delivered within the wait → "accepted"   (ESME_ROK)
 *   refused permanently       → "permanent"  (ESME_RX_R_APPN)
 *   anything else / too slow  → "temporary"  (the bind's temp_fail_status; the SMSC retries)
 * The trade-off (docs/delivery.md): throughput is bounded by the SMSC's window × the receiver's
 * latency, a slow receiver holds the window, and a webhook that answered 2xx after the wait ran out
 * (or whose 2xx was lost) is delivered again when the SMSC retries (same webhook-id per SMSC retry
 * only if the edge derives the id from the PDU; see docs).
 */
import type { Logger } from "pino";
import type { Attempter } from "./attempt.js";
import type { DeliveryMetrics } from "./metrics.js";
import type { AcceptOutcome, AttemptResult, DeliveryJob, FinalOutcome } from "./types.js";
import { errMessage } from "../util/errors.js";

export interface DirectOptions {
  attempter: Attempter;
  metrics: DeliveryMetrics;
  logger: Logger;
  /** Deliveries at once; beyond it the answer is "temporary" at once. */
  maxInFlight: number;
  /** Told of each delivery (see DeliveryOptions.onFinal). */
  onFinal?: (job: DeliveryJob, outcome: FinalOutcome) => void;
}

/** Failures on a pooled keep-alive socket the server had just closed: worth one immediate retry. */
function staleSocket(reason: string): boolean {
  return reason === "connect UND_ERR_SOCKET" || reason === "connect ECONNRESET" || reason === "connect EPIPE";
}

export class DirectDelivery {
  private readonly o: DirectOptions;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(opts: DirectOptions) {
    this.o = opts;
  }

  get inFlightCount(): number {
    return this.inFlight;
  }

  /** Deliver `job` within `waitMs` (ms). Never throws. */
  async deliverNow(job: DeliveryJob, waitMs: number): Promise<AcceptOutcome> {
    if (this.inFlight >= this.o.maxInFlight) {
      this.o.logger.debug({ msg_id: job.id }, "direct delivery over max_in_flight");
      return "temporary";
    }
    this.inFlight++;
    this.o.metrics.inFlight.inc({ mode: "direct" });
    try {
      const started = performance.now();
      let r = await this.o.attempter.round(job, 0, waitMs);
      if (r.result.kind === "retry" && staleSocket(r.result.reason)) {
        const left = waitMs - (performance.now() - started);
        if (left > 50) r = await this.o.attempter.round(job, r.skip, left);
      }
      const k = r.result.kind;
      if (k === "delivered") {
        notifyFinal(this.o.onFinal, job, delivered(r.kind, r.result), this.o.logger);
        return "accepted";
      }
      if (k === "dead") {
        this.o.logger.info({ msg_id: job.id, reason: r.result.reason, result: "permanent" }, "direct delivery refused");
        return "permanent";
      }
      this.o.logger.warn({ msg_id: job.id, reason: r.result.reason, result: "temporary" }, "direct delivery failed; answered with a temporary error, the peer will retry");
      return "temporary";
    } finally {
      this.inFlight--;
      this.o.metrics.inFlight.dec({ mode: "direct" });
      if (this.inFlight === 0 && this.idleWaiters.length > 0) {
        const ws = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of ws) f();
      }
    }
  }

  /** Resolves when no delivery is in progress, or after `graceMs`. */
  async idle(graceMs: number): Promise<void> {
    if (this.inFlight === 0) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((r) => this.idleWaiters.push(r)),
      new Promise<void>((r) => {
        t = setTimeout(r, graceMs);
      }),
    ]);
    clearTimeout(t);
  }
}

/** The final outcome of a delivered job, with the webhook's reply when it gave one. */
export function delivered(kind: "webhook" | "smpp" | undefined, r: AttemptResult): FinalOutcome {
  const target = kind ?? "webhook";
  return r.kind === "delivered" && r.reply !== undefined ? { delivered: true, target, reply: r.reply } : { delivered: true, target };
}

/** Call an onFinal hook; a throw is logged, never propagated. */
export function notifyFinal(hook: ((job: DeliveryJob, o: FinalOutcome) => void) | undefined, job: DeliveryJob, o: FinalOutcome, logger: Logger): void {
  if (hook === undefined) return;
  try {
    hook(job, o);
  } catch (err) {
    logger.error({ err: errMessage(err), msg_id: job.id }, "onFinal hook failed");
  }
}
