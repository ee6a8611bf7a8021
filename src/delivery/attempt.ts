/**
 * One delivery round of a job over its targets, shared by the spool and the direct mode.
 *
 * Target order and failover (README.md "Routes": both may be given, webhook first):
 * - A round tries the webhook first, then the SMPP peer, and stops at the first that accepts.
 * - A target that refuses permanently (webhook 410, invalid URL; SMPP permanent error) is skipped
 *   in later rounds of that message (the `skip` mask travels with the job in the spool).
 * - When no target accepted and at least one failed temporarily, the message is retried (a new
 *   round from the first target not skipped); when every target refused permanently, or the job
 *   has no target, it is dead.
 */
import type { Logger } from "pino";
import type { DeliveryMetrics, TargetKind } from "./metrics.js";
import type { SmppForwarder } from "./smpp-forward.js";
import type { AttemptResult, DeliveryJob } from "./types.js";
import { parseReply, statusClass, type WebhookSender, redactUrl } from "./webhook.js";
import { resolveSecret, type SecretLookup } from "./secret-ref.js";
import { errMessage } from "../util/errors.js";

export const SKIP_WEBHOOK = 1;
export const SKIP_SMPP = 2;

export interface RoundResult {
  result: AttemptResult;
  /** The target of the deciding attempt (the one that delivered, or the last one tried). */
  kind: TargetKind | undefined;
  /** Targets refused permanently so far (SKIP_* bits). */
  skip: number;
}

export interface AttempterOptions {
  sender: WebhookSender;
  forwarder?: SmppForwarder;
  metrics: DeliveryMetrics;
  logger: Logger;
  /** Upper bound on one SMPP forward attempt (ms). */
  smppTimeoutMs: number;
  /** The current webhook secret of a number's route, for jobs read back from the spool. */
  secrets?: SecretLookup;
}

type RetryResult = Extract<AttemptResult, { kind: "retry" }>;

const DELIVERED: AttemptResult = Object.freeze({ kind: "delivered" }) as AttemptResult;
const NO_TARGET: AttemptResult = Object.freeze({ kind: "dead", reason: "no target" }) as AttemptResult;

export class Attempter {
  private readonly sender: WebhookSender;
  private readonly forwarder: SmppForwarder | undefined;
  private readonly metrics: DeliveryMetrics;
  private readonly logger: Logger;
  private readonly smppTimeoutMs: number;
  private readonly secrets: SecretLookup | undefined;

  constructor(opts: AttempterOptions) {
    this.sender = opts.sender;
    this.forwarder = opts.forwarder;
    this.metrics = opts.metrics;
    this.logger = opts.logger;
    this.smppTimeoutMs = opts.smppTimeoutMs;
    this.secrets = opts.secrets;
  }

  /**
   * Try the job's targets once, in order. `budgetMs` bounds the whole round (direct mode); without
   * it each attempt has its own timeout. Never throws.
   */
  async round(job: DeliveryJob, skip: number, budgetMs?: number): Promise<RoundResult> {
    const t = job.target;
    const deadline = budgetMs === undefined ? Infinity : performance.now() + budgetMs;
    let retry: RetryResult | undefined;
    let dead: AttemptResult | undefined;
    let kind: TargetKind | undefined;
    if (t.webhook && (skip & SKIP_WEBHOOK) === 0) {
      kind = "webhook";
      const left = deadline - performance.now();
      const s = resolveSecret(t, this.secrets);
      if (s.rotated) this.logger.info({ msg_id: job.id, number: t.secretRef?.number }, s.secret === undefined ? "webhook secret of the route is gone: signing with webhooks.secret" : "webhook secret of the route changed since the message was accepted: signing with the current one");
      const a = await this.sender.send(t.webhook, job.id, JSON.stringify(job.body), s.secret, left === Infinity ? undefined : Math.max(1, Math.floor(left)));
      this.metrics.webhookDuration.observe({ class: statusClass(a) }, a.durationS);
      this.metrics.deliveries.inc({ kind: "webhook", outcome: a.result.kind });
      if (a.result.kind === "delivered") return { result: this.withReply(job, a.body), kind, skip };
      this.logger.debug({ msg_id: job.id, url: redactUrl(t.webhook), status: a.status, reason: a.result.reason, attempts: job.attempts + 1 }, "webhook attempt failed");
      if (a.result.kind === "dead") {
        skip |= SKIP_WEBHOOK;
        dead = a.result;
      } else retry = a.result;
    }
    if (t.smpp && (skip & SKIP_SMPP) === 0) {
      const left = deadline - performance.now();
      if (left > 0) {
        kind = "smpp";
        const r = await this.forward(job, left === Infinity ? this.smppTimeoutMs : Math.min(this.smppTimeoutMs, Math.floor(left)));
        this.metrics.deliveries.inc({ kind: "smpp", outcome: r.kind });
        if (r.kind === "delivered") return { result: r, kind, skip };
        this.logger.debug({ msg_id: job.id, smpp: t.smpp, reason: r.reason, attempts: job.attempts + 1 }, "smpp forward failed");
        if (r.kind === "dead") {
          skip |= SKIP_SMPP;
          dead = r;
        } else if (retry === undefined || (retry.retryAfterMs === undefined && r.retryAfterMs !== undefined)) retry = r;
      } else if (retry === undefined) retry = { kind: "retry", reason: "no time left for smpp" };
    }
    if (retry !== undefined) return { result: retry, kind, skip };
    return { result: dead ?? NO_TARGET, kind, skip };
  }

  /** Delivered; for a message (not a receipt or status), with the reply its webhook answered with. */
  private withReply(job: DeliveryJob, body: string | undefined): AttemptResult {
    if (body === undefined || job.body.type !== "message.received") return DELIVERED;
    const r = parseReply(body);
    if (r.error !== undefined) this.logger.info({ msg_id: job.id, why: r.error }, "webhook answer carries no usable reply");
    return r.reply !== undefined ? { kind: "delivered", reply: r.reply } : DELIVERED;
  }

  private async forward(job: DeliveryJob, timeoutMs: number): Promise<AttemptResult> {
    const fw = this.forwarder;
    if (fw === undefined) return { kind: "dead", reason: "no smpp forwarder configured" };
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<AttemptResult>((resolve) => {
      timer = setTimeout(() => {
        ac.abort();
        resolve({ kind: "retry", reason: "smpp timeout" });
      }, timeoutMs);
    });
    try {
      return await Promise.race([fw.forward(job, ac.signal), timeout]);
    } catch (err) {
      return { kind: "retry", reason: "smpp error " + (errMessage(err) ?? String(err)) };
    } finally {
      clearTimeout(timer);
    }
  }
}
