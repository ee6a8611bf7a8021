/**
 * Outbound SMS: an app account bound to didgate submits a message (submit_sm / data_sm) from one of
 * its tenant's numbers or from one of its listed senders; didgate routes it by destination through
 * the outbound table's `sms` names (outbound binds, in order), paces each bind to its `tps`, fails
 * over to the next bind when one is down or answers a temporary status, relays the carrier's
 * receipt to the app with the app's own message id, and writes one message record (README.md
 * "Sending messages", docs/sms.md).
 *
 * The answer to the app's PDU:
 *   source not a number of the account's tenant (active or porting out), nor a listed sender
 *                                          → invalid_source       (ESME_RINVSRCADR 0x0A)
 *   recipient opted out of that sender     → permanent            (ESME_RX_R_APPN 0x66)
 *   destination not a number / no sms route in the outbound table, or none of its names is a bind
 *                                          → invalid_destination  (ESME_RINVDSTADR 0x0B)
 *   durably queued (spool) or accepted by the carrier (direct mode) → accepted (ESME_ROK)
 *   otherwise                              → temporary (the account's temp_fail_status, default 0x64)
 *
 * Sending is one delivery attempt per call of forward() (delivery owns retries, backoff and the
 * max age): each name of the route in order, skipping binds that are down or cooling down after a
 * throttling answer, waiting for the bind's pacing slot; the first ESME_ROK ends it. A permanent
 * refusal ends the message as failed; temporary ones everywhere make delivery retry it later.
 */
import type { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { createHash, createHmac, randomUUID } from "node:crypto";
import type { AcceptOutcome, AttemptResult, DeliveryJob, FinalOutcome, MessageOutboundBody, MessageStatusBody, ReceiptRequest } from "../delivery/types.js";
import type { RecordWriter } from "../records/writer.js";
import type { NumberPlan } from "../routing/number.js";
import type { OutboundEntry } from "../routing/outbound.js";
import { entryOf, match, type StateOf } from "../routing/decide.js";
import type { Route } from "../routing/route.js";
import type { RouteStore } from "../routing/table.js";
import { CMD, STATUS } from "../smpp/constants.js";
import type { SmppService } from "../smpp/service.js";
import { buildMessagePdus } from "../smpp/outbound.js";
import type { AcceptResult, InboundSms, OutboundSms, Receipt } from "../smpp/types.js";
import type { OptOutStore } from "./optout.js";
import { MAX_HISTORY, type MessageInfo, type MessageStatusStore } from "./sms-status.js";
import type { ReceiptCorrelator, SentMessage } from "./receipts.js";
import { smppAddressToE164, type MessageSink } from "./sms.js";
import { referenceOf, toSmppAddress } from "./sms-forward.js";
import { normaliseStat, receiptRequestOf, type ReceiptSender } from "./sms-receipts.js";
import { errMessage } from "../util/errors.js";
import { SmsMessageOps, bindQueueKey, checkSend, inFlightKey, indexCalls, indexQueued, jobKey, oneSlot, queueKey, releaseSend, unindexQueued, type CheckOptions, type Replacement } from "./sms-ops.js";
import type { SpoolWrites } from "../delivery/redis.js";
import { Script } from "../redis/script.js";
import { checkTimes, dueNow, type MessageTimes } from "./sms-schedule.js";
import { formatSmppTime } from "../smpp/time.js";
import { backoffDelay, DEFAULT_BACKOFF } from "../delivery/backoff.js";
import { FifoCache } from "../util/fifo-cache.js";

/** What an app account may send from (config smpp.accounts: tenant, senders). */
export interface SenderRights {
  tenant?: string;
  senders: ReadonlySet<string>;
}

/**
 * Pacing of one bind: a token bucket of size one (no bursts), `tps` slots per second; every part
 * of a message takes a slot. reserve() books the next free slots and says how long to wait for
 * them, or refuses (-1 and no booking) when that wait is over `maxWaitMs`.
 */
export class Pacer {
  private next = 0;
  constructor(
    readonly tps: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Milliseconds until `n` slots are free if booked now, without booking. */
  waitFor(): number {
    return Math.max(0, this.next - this.now());
  }

  reserve(n: number, maxWaitMs: number): number {
    const t = this.now();
    const start = Math.max(t, this.next);
    const wait = start - t;
    if (wait > maxWaitMs) return -1;
    this.next = start + (n * 1000) / this.tps;
    return wait;
  }
}

/** The account of messages didgate sends itself (replies, forwards, confirmations) in records and metrics. */
export const AUTO_ACCOUNT = "didgate";

/** Outcomes of an app's submit (metric label values: a closed set). */
export type SubmitOutcome = "accepted" | "temporary" | "permanent" | "invalid_source" | "opted_out" | "no_route" | "invalid_number" | "draining" | "invalid_schedule" | "invalid_expiry";
/** A message from the HTTP API (POST /v1/messages). */
export interface HttpSubmit {
  tenant: string | undefined;
  from: string;
  to: string;
  text: string;
  client_ref?: string;
  status_webhook?: string;
  /** Seconds the message may wait and be retried; then it ends expired. */
  validity_s?: number;
  id: string;
}

/** Outcomes of one try on one bind. */
type BindOutcome = "ok" | "temporary" | "throttled" | "permanent" | "down";

/** Final status of an outbound message in its record (and its metric label). */
const FINAL: Record<string, string> = {
  DELIVRD: "delivered",
  EXPIRED: "expired",
  DELETED: "deleted",
  UNDELIV: "undeliverable",
  ACCEPTD: "accepted",
  REJECTD: "rejected",
  UNKNOWN: "unknown",
};

export class SmsOutboundMetrics {
  readonly submits: Counter<"account" | "outcome">;
  readonly binds: Counter<"bind" | "outcome">;
  readonly parts: Counter<"bind">;
  readonly finals: Counter<"status">;
  readonly latency: Histogram<"bind">;
  readonly pacing: Gauge<"bind">;
  readonly optedOut: Counter;
  readonly inDoubt: Counter<"outcome">;
  constructor(registry: Registry) {
    this.optedOut = new Counter({ name: "didgate_sms_outbound_opted_out_total", help: "Queued outbound messages not sent because the recipient opted out before the send (failed, error 102)", registers: [registry] });
    this.inDoubt = new Counter({ name: "didgate_sms_outbound_in_doubt_total", help: "Outbound messages left in doubt (submit_sm sent, answer not seen: a crash, or no answer in time), by outcome: unanswered (no answer in time: held), matched (a receipt marked it sent), resent (the hold ended), ambiguous (a receipt fitted more than one, so none)", labelNames: ["outcome"], registers: [registry] });
    this.pacing = new Gauge({ name: "didgate_sms_outbound_pacing", help: "Outbound messages waiting for their tps slot on a bind (this process)", labelNames: ["bind"], registers: [registry] });
    this.submits = new Counter({ name: "didgate_sms_outbound_total", help: "Outbound messages submitted by apps, by account and outcome", labelNames: ["account", "outcome"], registers: [registry] });
    this.binds = new Counter({ name: "didgate_sms_outbound_binds_total", help: "Outbound message tries per bind and outcome (ok, temporary, throttled, permanent, down)", labelNames: ["bind", "outcome"], registers: [registry] });
    this.parts = new Counter({ name: "didgate_sms_outbound_parts_total", help: "Outbound message parts (segments) accepted by each bind", labelNames: ["bind"], registers: [registry] });
    this.finals = new Counter({ name: "didgate_sms_outbound_final_total", help: "Outbound messages by final status (delivered, undeliverable, expired, rejected, failed, sent: no receipt in time, …)", labelNames: ["status"], registers: [registry] });
    this.latency = new Histogram({ name: "didgate_sms_outbound_submit_seconds", help: "From the app's submit to the carrier's submit_sm_resp, per bind", labelNames: ["bind"], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [registry] });
  }
}

export interface SmsOutboundOptions {
  store: RouteStore<Route>;
  outbound: RouteStore<OutboundEntry>;
  /** The SMPP service (set once it runs). */
  smpp: () => SmppService | undefined;
  delivery: MessageSink;
  optouts?: OptOutStore;
  /** What each app account may send from, by system_id (the app refills it on a config reload). */
  rights: Map<string, SenderRights>;
  /** Number plan per peer (account system_id or bind name). */
  plans: Map<string, NumberPlan>;
  /** Pacing per bind name (tps); the app refills it on a config reload. */
  tps: Map<string, number>;
  receipts: ReceiptCorrelator;
  receiptSender?: ReceiptSender;
  /** Status histories of API messages (GET /v1/messages/{id}). */
  statuses?: MessageStatusStore;
  /**
   * Redis: the bind's message ids of sent messages (`<prefix>smsout:<bind>:<id>`, 72 h), so a
   * receipt that reaches another edge, or this one after a restart, still finds its message; and a
   * once-only marker per message (`<prefix>smsout:done:<id>`) so its receipt is relayed and
   * recorded once.
   */
  shared?: { redis: Redis | Cluster; prefix: string; ttlS?: number };
  records?: RecordWriter;
  logger: Logger;
  registry: Registry;
  stateOf?: StateOf;
  now?: () => number;
  /** Longest wait for a bind's pacing slot in one attempt (ms, default 10000); longer: the next bind, or later. */
  maxPaceWaitMs?: number;
  /** How long a bind that answered throttled (0x58) or queue full (0x14) is passed over (ms, default 1000). */
  cooldownMs?: number;
  /** How long a message accepted by a carrier waits for its final receipt before its record is written as "sent" (ms, default 1 h). */
  receiptWaitMs?: number;
  /** Messages waiting for their receipt at once (default 200,000); beyond it the oldest is written as "sent". */
  maxWaiting?: number;
  /** The spool's maximum age (ms, webhooks.max_age_s): no schedule_delivery_time beyond it. Default 24 h. */
  maxAgeMs?: number;
  /** How long a message left in doubt by a crash is held before it is sent again (ms, smpp.in_doubt_hold_s; default 120 s). */
  inDoubtHoldMs?: number;
  /**
   * A secret shared by the deployment's edges (sip.dialog_secret) keying the hash of the text start
   * an in-flight marker keeps (HMAC-SHA256); without one, plain SHA-256.
   */
  textKey?: string;
}

/** One submit on its way through queue(). */
interface QueueInput {
  id: string;
  account: string;
  from: string;
  to: string;
  tenant: string | null;
  text: string | null;
  binary?: Buffer;
  data_coding?: number;
  submittedAt: Date;
  smpp?: MessageOutboundBody["smpp"];
  receipt?: ReceiptRequest;
  /** Keep a status history (API messages). */
  track?: boolean;
  client_ref?: string;
  status_webhook?: string;
  /** A confirmation of an opt-out: sent although the recipient just opted out. */
  ignoreOptOut?: boolean;
  /** Epoch ms after which the message is not sent (expired): the API's validity_s. */
  expiresAt?: number;
  /** Relayed through a masking session (src/edge/sms-masking.ts). */
  mask?: MessageOutboundBody["mask"];
  /** The number whose opt-outs apply when `from` is a listed sender written as digits (E.164). */
  optoutFrom?: string;
  /** For refusals' records: parts and encoding as known. */
  partsIn?: number;
  encodingIn?: string;
  /** schedule_delivery_time / validity_period of the app's PDU. */
  times?: MessageTimes;
  service_type?: string;
}

/** A message accepted by a carrier, waiting for its final receipt (for its record). */
interface Waiting {
  body: MessageOutboundBody;
  bind: string;
  smscIds: string[];
  acceptedAt: number;
  sentAt: number;
  attempts: number;
  at: number;
}

export class SmsOutbound {
  readonly metrics: SmsOutboundMetrics;
  private readonly now: () => number;
  /** When this process started (epoch ms): in-flight markers written before it were left by an edge that is gone. */
  private readonly startedAt: number;
  private readonly pacers = new Map<string, Pacer>();
  private readonly cooldown = new Map<string, number>();
  /** Sent messages waiting for their receipt, oldest first (bounded by maxWaiting in sent()). */
  private readonly waiting = new FifoCache<string, Waiting>(Infinity);
  /** What each app account may send from; refilled on a config reload. */
  readonly rights: Map<string, SenderRights>;
  private timer: NodeJS.Timeout | undefined;
  private draining = false;

  /** query_sm / cancel_sm / replace_sm of app accounts (with a status store). */
  readonly ops: SmsMessageOps | undefined;
  /** Without Redis: the messages being sent, by the first bind of their route (id -> accepted at, epoch ms). */
  private readonly localQueue = new Map<string, Map<string, number>>();
  /** Parts submitted per bind in the last seconds: [second, count] newest last. */
  private readonly submitted = new Map<string, [number, number][]>();
  /** The last queue figures read (kept when Redis does not answer a scrape in time). */
  private lastStats = new Map<string, { depth: number; oldestAgeS: number }>();
  private statsRead: { at: number; p: Promise<Map<string, { depth: number; oldestAgeS: number }>> } | undefined;

  constructor(private readonly o: SmsOutboundOptions) {
    this.metrics = new SmsOutboundMetrics(o.registry);
    const stats = (): Promise<Map<string, { depth: number; oldestAgeS: number }>> => {
      const t = performance.now();
      if (this.statsRead === undefined || t - this.statsRead.at > 500) this.statsRead = { at: t, p: this.queueStats() };
      return this.statsRead.p;
    };
    const queueGauge = (name: string, help: string, pick: (v: { depth: number; oldestAgeS: number }) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ["bind"],
        registers: [o.registry],
        aggregator: "max",
        async collect() {
          const m = await stats();
          this.reset();
          for (const [bind, v] of m) this.set({ bind }, pick(v));
        },
      });
    };
    queueGauge(
      "didgate_sms_outbound_queue_depth",
      "Outbound messages queued for a bind (the first of their route), not yet sent or ended: the Redis spool (shared by edges), else this process",
      (v) => v.depth,
    );
    queueGauge("didgate_sms_outbound_queue_oldest_age_seconds", "Age of the oldest outbound message queued for a bind (0 when none)", (v) => v.oldestAgeS);
    const self = this;
    new Gauge({
      name: "didgate_sms_outbound_bind_tps",
      help: "Message parts submitted per second on a bind over the last 5 s (this process)",
      labelNames: ["bind"],
      registers: [o.registry],
      collect() {
        this.reset();
        for (const bind of self.bindNames()) this.set({ bind }, self.tpsOf(bind));
      },
    });
    this.rights = o.rights;
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    if (o.statuses !== undefined) {
      this.ops = new SmsMessageOps({
        statuses: o.statuses,
        ...(o.shared !== undefined ? { shared: o.shared } : {}),
        logger: o.logger,
        now: this.now,
        ...(o.maxAgeMs !== undefined ? { maxAgeMs: o.maxAgeMs } : {}),
        onCancelled: (m) => {
          this.metrics.finals.inc({ status: "deleted" });
          this.record({ id: m.id, account: m.account ?? "", from: m.from, to: m.to, tenant: m.tenant, parts: m.parts, encoding: m.encoding, status: "deleted", reason: "cancelled", bind: null, smsc_message_ids: [], accepted_at: m.created_at, sent_at: null, receipt: null, attempts: 0, smpp_message_id: m.id.replace(/^msg_/, ""), mask: undefined });
        },
      });
    }
  }

  /** The configured outbound binds (the label values of the per-bind gauges: a closed set). */
  private bindNames(): string[] {
    return [...(this.o.smpp()?.clients.keys() ?? [])];
  }

  /** Parts submitted on a bind, for its tps gauge. */
  private countSubmit(bind: string, parts: number): void {
    const sec = Math.floor(performance.now() / 1000);
    let a = this.submitted.get(bind);
    if (a === undefined) this.submitted.set(bind, (a = []));
    const last = a[a.length - 1];
    if (last !== undefined && last[0] === sec) last[1] += parts;
    else {
      a.push([sec, parts]);
      while (a.length > 0 && a[0]![0] <= sec - TPS_WINDOW_S) a.shift();
    }
  }

  private tpsOf(bind: string): number {
    const sec = Math.floor(performance.now() / 1000);
    let n = 0;
    for (const [s, c] of this.submitted.get(bind) ?? []) if (s > sec - TPS_WINDOW_S) n += c;
    return n / TPS_WINDOW_S;
  }

  /**
   * Depth and oldest age per bind: from the bind queues in Redis (ZCARD and the lowest score, in
   * one script that also drops entries older than the spool's maximum age and an hour, left by a
   * crash between a message's end and its removal), else from this process. A read that takes more
   * than 2 s keeps the last figures: a scrape never hangs on Redis.
   */
  private async queueStats(): Promise<Map<string, { depth: number; oldestAgeS: number }>> {
    const binds = this.bindNames();
    const now = this.now();
    const out = new Map<string, { depth: number; oldestAgeS: number }>();
    const sh = this.o.shared;
    if (sh === undefined) {
      for (const b of binds) {
        const q = this.localQueue.get(b);
        let oldest = Infinity;
        for (const at of q?.values() ?? []) oldest = Math.min(oldest, at);
        out.set(b, { depth: q?.size ?? 0, oldestAgeS: q === undefined || q.size === 0 ? 0 : Math.max(0, (now - oldest) / 1000) });
      }
      return out;
    }
    const trim = now - (this.o.maxAgeMs ?? 86_400_000) - 3_600_000;
    const keys = binds.map((b) => bindQueueKey(sh, b));
    const read: Promise<unknown[]> = oneSlot(sh)
      ? (QSTATS.run(sh.redis, keys, [trim]) as Promise<unknown[]>)
      : Promise.all(keys.map(async (k) => ((await QSTATS.run(sh.redis, [k], [trim])) as unknown[])[0]));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((r) => {
      timer = setTimeout(() => r(undefined), 2000);
      timer.unref();
    });
    let r: unknown[] | undefined;
    try {
      r = await Promise.race([read, timeout]);
    } catch (err) {
      this.o.logger.debug({ err: errMessage(err) }, "outbound queue gauges not read from Redis: last values kept");
    } finally {
      clearTimeout(timer);
    }
    read.catch(() => undefined);
    if (r === undefined) return this.lastStats;
    binds.forEach((b, i) => {
      const [depth, score] = (r![i] as [number, string | null]) ?? [0, null];
      const oldest = score === null || score === "" ? NaN : Number(score);
      out.set(b, { depth: Number(depth), oldestAgeS: Number(depth) > 0 && Number.isFinite(oldest) ? Math.max(0, (now - oldest) / 1000) : 0 });
    });
    this.lastStats = out;
    return out;
  }

  /** Start writing the records of messages whose receipt did not come in time. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.sweep(false), Math.min(60_000, Math.max(100, (this.o.receiptWaitMs ?? 3_600_000) / 4)));
    this.timer.unref();
  }

  /**
   * Stop; messages still waiting for their receipt get their record now (status sent), except with
   * Redis, where the edge that gets the receipt later writes it.
   */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.sweep(true);
  }

  drain(): void {
    this.draining = true;
  }

  /** The SMPP layer's onMessage for app accounts: an outbound message. */
  async onSubmit(msg: InboundSms): Promise<AcceptResult> {
    const account = msg.peer;
    const plan = this.o.plans.get(account) ?? {};
    const d = smppAddressToE164(msg.destination, plan);
    const rights = this.rights.get(account);
    const c: QueueInput = {
      id: `msg_${msg.message_id}`,
      account,
      from: msg.source.addr,
      to: d.ok ? d.e164 : msg.destination.addr,
      tenant: rights?.tenant ?? null,
      text: msg.text ?? null,
      submittedAt: msg.received_at,
      smpp: { message_id: msg.message_id, source: msg.source, destination: msg.destination },
      partsIn: msg.parts,
      encodingIn: msg.encoding,
      // a status history, for query_sm / cancel_sm / replace_sm (src/edge/sms-ops.ts)
      track: true,
    };
    if (msg.binary !== undefined) {
      c.binary = msg.binary;
      c.data_coding = msg.data_coding;
    }
    if (this.draining) return this.result(this.finish(c, "draining", {}));
    // Parts of a long message that never all came (reassembly timed out): not sent cut short.
    if (msg.partial) return this.result(this.finish(c, "permanent", { why: "incomplete long message", parts: msg.parts, total_parts: msg.total_parts }));
    // The sender: a listed alphanumeric sender or short code as written, else a number of the tenant.
    if (rights !== undefined && rights.senders.has(msg.source.addr)) {
      // A listed sender written as a number ("15125550100") reaches the recipient as that number:
      // a STOP to it (recorded under its E.164 form) must refuse it too.
      const n = msg.source.ton === 5 ? undefined : smppAddressToE164(msg.source, plan);
      if (n?.ok === true) c.optoutFrom = n.e164;
    } else {
      const n = smppAddressToE164(msg.source, plan);
      if (!n.ok) return this.result(this.finish(c, "invalid_source", { why: "not a listed sender" }));
      c.from = n.e164;
      const why = rights?.tenant === undefined ? "account has no tenant" : this.notOwned(n.e164, rights.tenant);
      if (why !== null) return this.result(this.finish(c, "invalid_source", { why }));
    }
    if (!d.ok) return this.result(this.finish(c, "invalid_number", { error: d.error }));
    const now = this.now();
    const times = checkTimes(msg.schedule_delivery_time, msg.validity_period, { baseMs: msg.received_at.getTime(), nowMs: now, canWait: this.o.shared !== undefined, deadlineMs: now + (this.o.maxAgeMs ?? 86_400_000) });
    if (!times.ok) return this.result(this.finish(c, times.outcome, { why: times.why }));
    c.times = times.times;
    c.service_type = msg.service_type;
    if ((msg.registered_delivery & 0x03) !== 0) {
      c.receipt = receiptRequestOf(msg);
    }
    return this.result((await this.queue(c)).outcome);
  }

  /**
   * An outbound message from the HTTP API: `from` must be an active number of the token's tenant
   * (an admin token: any active number of ours). The outcome, and the message's id and parts when
   * it was accepted.
   */
  async submitHttp(req: HttpSubmit): Promise<{ outcome: SubmitOutcome; parts?: number }> {
    const c: QueueInput = { id: req.id, account: "api", from: req.from, to: req.to, tenant: req.tenant ?? null, text: req.text, submittedAt: new Date(this.now()), track: true };
    if (req.validity_s !== undefined) c.expiresAt = this.now() + req.validity_s * 1000;
    if (req.client_ref !== undefined) c.client_ref = req.client_ref;
    if (req.status_webhook !== undefined) c.status_webhook = req.status_webhook;
    if (this.draining) return { outcome: this.finish(c, "draining", {}) };
    if (!req.from.startsWith("+")) {
      // an alphanumeric sender or short code: listed on an app account of the token's tenant
      const owner = this.senderOwner(req.from, req.tenant);
      if (owner === undefined) return { outcome: this.finish(c, "invalid_source", { why: "not a listed sender" }) };
      c.tenant = owner;
    } else {
      const e = entryOf(this.o.store.current, req.from);
      const tenant = req.tenant ?? (e !== undefined && e.kind !== "default" ? e.value.tenant : undefined);
      const why = tenant === undefined ? "not a number of ours" : this.notOwned(req.from, tenant);
      if (why !== null) return { outcome: this.finish(c, "invalid_source", { why }) };
      c.tenant = tenant ?? null;
    }
    const q = await this.queue(c);
    return q.body !== undefined ? { outcome: q.outcome, parts: q.body.parts } : { outcome: q.outcome };
  }

  /**
   * A message didgate itself sends from one of its numbers (src/edge/sms-keywords.ts: a reply, a
   * forward, an opt-out confirmation), as account AUTO_ACCOUNT: the same opt-out check (unless
   * `ignoreOptOut`), outbound table, spool and binds as an app's message.
   */
  async sendAuto(m: { from: string; to: string; text: string; tenant: string | null; ignoreOptOut?: boolean }): Promise<SubmitOutcome> {
    const c: QueueInput = { id: `msg_${randomUUID()}`, account: AUTO_ACCOUNT, from: m.from, to: m.to, tenant: m.tenant, text: m.text, submittedAt: new Date(this.now()) };
    if (m.ignoreOptOut === true) c.ignoreOptOut = true;
    if (this.draining) return this.finish(c, "draining", {});
    return (await this.queue(c)).outcome;
  }

  /**
   * A message through a masking session (src/edge/sms-masking.ts): from the proxy number to the
   * other party, queued like an app's message (opt-out, outbound table, spool), so it counts as
   * accepted only once it is durably queued. The sender's ownership is the session's, not checked
   * here.
   */
  async queueMasked(m: { id: string; proxy: string; to: string; tenant: string | null; msg: InboundSms; session: string; sender: string; receipt?: ReceiptRequest }): Promise<SubmitOutcome> {
    const msg = m.msg;
    const c: QueueInput = {
      id: m.id,
      account: MASKING_ACCOUNT,
      from: m.proxy,
      to: m.to,
      tenant: m.tenant,
      text: msg.text ?? null,
      submittedAt: msg.received_at,
      partsIn: msg.parts,
      encodingIn: msg.encoding,
      mask: { session: m.session, sender: m.sender, peer: msg.peer },
    };
    if (msg.binary !== undefined) {
      c.binary = msg.binary;
      c.data_coding = msg.data_coding;
    }
    if (m.receipt !== undefined) c.receipt = m.receipt;
    if (this.draining) return this.finish(c, "draining", {});
    return (await this.queue(c)).outcome;
  }

  private result(outcome: SubmitOutcome): AcceptResult {
    switch (outcome) {
      case "accepted":
        return { status: "accepted" };
      case "invalid_source":
      case "invalid_schedule":
      case "invalid_expiry":
        return { status: outcome };
      case "opted_out":
      case "permanent":
        return { status: "permanent" };
      case "no_route":
      case "invalid_number":
        return { status: "invalid_destination" };
      default:
        return { status: "temporary" };
    }
  }

  /** Metrics, the log line, and (for a refusal) the record of a submit. */
  private finish(c: QueueInput, outcome: SubmitOutcome, fields: Record<string, unknown>): SubmitOutcome {
    this.metrics.submits.inc({ account: c.account, outcome });
    this.o.logger[outcome === "accepted" ? "info" : "warn"]({ account: c.account, id: c.id, from: c.from, to: c.to, tenant: c.tenant, result: outcome, ...fields }, "sms outbound");
    if (outcome !== "accepted" && outcome !== "temporary" && outcome !== "draining") {
      this.record({ id: c.id, account: c.account, from: c.from, to: c.to, tenant: c.tenant, parts: c.partsIn ?? 1, encoding: c.encodingIn ?? "gsm7", status: "rejected", reason: outcome, bind: null, smsc_message_ids: [], accepted_at: null, sent_at: null, receipt: null, attempts: 0, smpp_message_id: c.smpp?.message_id ?? null, mask: c.mask });
    }
    return outcome;
  }

  /** The refusal when the recipient opted out of the sender (or the lookup failed); undefined: go on. */
  private async optedOut(c: QueueInput): Promise<SubmitOutcome | undefined> {
    if (this.o.optouts === undefined || c.ignoreOptOut === true) return undefined;
    let out: boolean;
    try {
      out = await this.o.optouts.isOptedOut(c.optoutFrom ?? c.from, c.to);
    } catch (err) {
      this.o.logger.warn({ err: errMessage(err) }, "opt-out lookup failed: message declined with a temporary failure");
      return this.finish(c, "temporary", { why: "opt-out lookup failed" });
    }
    return out ? this.finish(c, "opted_out", {}) : undefined;
  }

  /** The opt-out set the spool's enqueue script can check for this message (Redis, one slot), if any. */
  private optOutInScript(c: QueueInput): { key: string; member: string } | undefined {
    const sh = this.o.shared;
    if (sh === undefined || c.ignoreOptOut === true || this.o.delivery.acceptWith === undefined || !oneSlot(sh)) return undefined;
    const key = this.o.optouts?.redisKey?.(c.optoutFrom ?? c.from);
    return key !== undefined && key.startsWith(sh.prefix) ? { key, member: c.to } : undefined;
  }

  /** Opt-out, route, encoding, then delivery: the common part of every submit. */
  private async queue(c: QueueInput): Promise<{ outcome: SubmitOutcome; body?: MessageOutboundBody }> {
    const { from, to } = c;
    // With the Redis spool the opt-out is checked in the enqueue script (no round trip of its
    // own); a message refused before it gets there is checked here first, as the opt-out comes
    // first: the same outcome either way.
    const unless = this.optOutInScript(c);
    if (unless === undefined) {
      const o = await this.optedOut(c);
      if (o !== undefined) return { outcome: o };
    }
    const route = this.routeOf(to);
    if (route.length === 0) return { outcome: (unless !== undefined ? await this.optedOut(c) : undefined) ?? this.finish(c, "no_route", {}) };
    const body: MessageOutboundBody = {
      type: "message.outbound",
      id: c.id,
      submitted_at: c.submittedAt.toISOString(),
      from,
      to,
      text: c.text,
      encoding: "gsm7",
      parts: 1,
      tenant: c.tenant,
      account: c.account,
      route,
    };
    if (c.smpp !== undefined) body.smpp = c.smpp;
    if (c.times?.not_before !== undefined) body.not_before = c.times.not_before;
    if (c.times?.expires_at !== undefined) body.expires_at = c.times.expires_at;
    if (c.mask !== undefined) body.mask = c.mask;
    if (c.optoutFrom !== undefined) body.optout_from = c.optoutFrom;
    if (c.ignoreOptOut === true) body.optout_exempt = true;
    if (c.track === true) body.track = true;
    if (c.client_ref !== undefined) body.client_ref = c.client_ref;
    if (c.status_webhook !== undefined) body.status_webhook = c.status_webhook;
    if (c.expiresAt !== undefined) body.expires_at = new Date(c.expiresAt).toISOString();
    if (c.binary !== undefined) {
      body.binary = c.binary.toString("base64");
      if (c.data_coding !== undefined) body.data_coding = c.data_coding;
    }
    // Encoding and parts as the carrier will get them (concatenated parts, each counts).
    try {
      const pdus = buildMessagePdus(CMD.submit_sm, this.smsOf(body), 0, "udh");
      body.parts = pdus.length;
      const dc = pdus[0]!.data_coding;
      body.encoding = c.binary !== undefined ? "binary" : dc === 0x08 ? "ucs2" : dc === 0x03 ? "latin1" : "gsm7";
    } catch {
      return { outcome: (unless !== undefined ? await this.optedOut(c) : undefined) ?? this.finish(c, "permanent", { why: "too long" }) };
    }
    // (a refusal's record keeps what was known before the encoding: the opt-out came first)
    const known = { partsIn: c.partsIn, encodingIn: c.encodingIn };
    c.partsIn = body.parts;
    c.encodingIn = body.encoding;
    const job: DeliveryJob = { id: body.id, body, target: { smpp: route[0]! }, acceptedAt: this.now(), attempts: 0 };
    if (c.receipt !== undefined) job.receipt = c.receipt;
    const sh = this.o.shared;
    const queued = { id: body.id, account: body.account, ...(body.smpp !== undefined ? { smpp: body.smpp } : {}), ...(c.service_type ? { service_type: c.service_type } : {}) };
    // The status history and the cancel index exist before the app's answer (so it can query and
    // cancel at once). With the Redis spool they are written by the enqueue script itself: one
    // round trip, and nothing is written when the spool refuses the message.
    const writes = this.queuedWrites(body, queued, c.track === true, unless);
    const spooled = writes !== undefined ? this.o.delivery.acceptWith?.(job, writes) : undefined;
    if (spooled === undefined) {
      if (unless !== undefined) {
        const o = await this.optedOut(c);
        if (o !== undefined) return { outcome: o };
      }
      await Promise.all([c.track === true ? this.track(body, "queued", null, true) : undefined, sh !== undefined ? indexQueued(sh, queued) : undefined, sh !== undefined ? this.bindQueued(sh, body) : undefined]);
    }
    let outcome: AcceptOutcome;
    try {
      const r = await (spooled ?? this.o.delivery.accept(job));
      if (r === "refused") {
        // opted out (nothing was written)
        c.partsIn = known.partsIn;
        c.encodingIn = known.encodingIn;
        return { outcome: this.finish(c, "opted_out", {}) };
      }
      outcome = r;
    } catch (err) {
      this.o.logger.error({ err: errMessage(err), id: c.id }, "delivery accept failed");
      outcome = "temporary";
    }
    if (outcome !== "accepted" && c.track === true) await this.o.statuses?.forget(body.id).catch(() => undefined);
    if (outcome !== "accepted" && sh !== undefined) await unindexQueued(sh, queued, route[0]);
    return { outcome: this.finish(c, outcome, { route, parts: body.parts }), body };
  }

  /**
   * The Redis writes of a message being queued (its status history, its cancel index entry) for
   * the spool's enqueue script; undefined when they cannot go there (no Redis, a status store
   * outside Redis, a Cluster prefix without hash tag): then they are made on their own.
   */
  private queuedWrites(body: MessageOutboundBody, queued: Parameters<typeof indexCalls>[1], track: boolean, unless: SpoolWrites["unless"]): SpoolWrites | undefined {
    const sh = this.o.shared;
    if (sh === undefined || !oneSlot(sh)) return undefined;
    const calls: (string | number)[][] = [];
    if (track && this.o.statuses !== undefined && body.track === true) {
      const st = this.o.statuses;
      if (st.createCalls === undefined) return undefined;
      calls.push(...st.createCalls(this.statusInfo(body), { status: "queued", at: new Date(this.now()).toISOString() }));
    }
    calls.push(...indexCalls(sh, queued));
    // the queue gauges of its first bind
    calls.push(["ZADD", bindQueueKey(sh, body.route[0]!), this.now(), body.id]);
    if (unless !== undefined) return { calls, unless };
    return { calls };
  }

  /** The message in its first bind's queue (the queue gauges), when the enqueue script cannot write it. Never throws. */
  private async bindQueued(sh: NonNullable<SmsOutboundOptions["shared"]>, body: MessageOutboundBody): Promise<void> {
    try {
      await sh.redis.zadd(bindQueueKey(sh, body.route[0]!), this.now(), body.id);
    } catch {
      // the gauges miss it
    }
  }

  private statusInfo(body: MessageOutboundBody): MessageInfo {
    return { id: body.id, tenant: body.tenant, from: body.from, to: body.to, parts: body.parts, encoding: body.encoding, created_at: body.submitted_at, ...(body.client_ref !== undefined ? { client_ref: body.client_ref } : {}), ...(body.smpp !== undefined ? { account: body.account } : {}) };
  }

  /** Status history of a message sent through the API (GET /v1/messages/{id}). Never throws. */
  private async track(body: MessageOutboundBody, status: string, detail: Record<string, unknown> | null, create = false): Promise<void> {
    if (!create && body.status_webhook !== undefined) this.statusWebhook(body, status, detail);
    const st = this.o.statuses;
    if (st === undefined || body.track !== true) return;
    try {
      if (create) {
        await st.create(this.statusInfo(body), { status, at: new Date(this.now()).toISOString() });
      } else await st.update(body.id, { status, at: new Date(this.now()).toISOString(), ...(detail ?? {}) });
    } catch (err) {
      this.o.logger.warn({ id: body.id, err: errMessage(err) }, "message status not stored");
    }
  }

  /** A signed message.status to the message's status_webhook, through delivery (retried, spooled with Redis). */
  private statusWebhook(body: MessageOutboundBody, status: string, detail: Record<string, unknown> | null): void {
    const url = body.status_webhook;
    if (url === undefined) return;
    const err = detail?.error_code;
    const sb: MessageStatusBody = {
      type: "message.status",
      id: body.id,
      status,
      at: new Date(this.now()).toISOString(),
      error_code: typeof err === "string" ? err : null,
      from: body.from,
      to: body.to,
      tenant: body.tenant,
      client_ref: body.client_ref ?? null,
    };
    const job: DeliveryJob = { id: `st_${randomUUID()}`, body: sb, target: { webhook: url }, acceptedAt: this.now(), attempts: 0 };
    void this.o.delivery.accept(job).then(
      (o) => {
        if (o !== "accepted") this.o.logger.warn({ id: body.id, status, result: o }, "message.status webhook not delivered");
      },
      () => undefined,
    );
  }

  /** Bind names of the outbound table's sms entry for a destination that exist here. */
  routeOf(to: string): string[] {
    const entry = entryOf(this.o.outbound.current, to);
    if (entry === undefined) return [];
    const clients = this.o.smpp()?.clients;
    const out: string[] = [];
    for (const n of entry.value.sms) {
      if (clients?.has(n)) out.push(n);
      else this.o.logger.debug({ name: n }, "outbound sms route names no outbound bind: skipped");
    }
    return out;
  }

  /**
   * The tenant an HTTP message from a listed sender is sent for: the token's tenant when one of its
   * app accounts (smpp.accounts[].senders) lists the sender; for an admin token (tenant undefined)
   * the tenant of an account that lists it (null: an account without tenant). undefined: not listed.
   */
  private senderOwner(sender: string, tenant: string | undefined): string | null | undefined {
    for (const r of this.rights.values()) {
      if (!r.senders.has(sender)) continue;
      if (tenant === undefined) return r.tenant ?? null;
      if (r.tenant === tenant) return tenant;
    }
    return undefined;
  }

  /** null when the tenant may send from the number (the same rule as a customer's caller ID). */
  private notOwned(e164: string, tenant: string): string | null {
    const m = match(this.o.store.current, e164, this.now(), this.o.stateOf);
    if (m.route === null || m.kind === "default") return "not a number of ours";
    if (m.route.tenant !== tenant) return "owned by another tenant";
    if (m.state !== "active" && m.state !== "porting_out") return "number not active";
    return null;
  }

  private smsOf(body: MessageOutboundBody): OutboundSms {
    const m: OutboundSms = { source: toSmppAddress(body.from), destination: toSmppAddress(body.to), reference: referenceOf(body.id) };
    // the carrier keeps trying no longer than the message is valid here
    if (body.expires_at !== undefined) m.validity_period = formatSmppTime(new Date(body.expires_at));
    if (body.binary !== undefined) {
      m.binary = Buffer.from(body.binary, "base64");
      if (body.data_coding !== undefined) m.data_coding = body.data_coding;
    } else m.text = body.text ?? "";
    return m;
  }

  private pacer(bind: string): Pacer | undefined {
    const tps = this.o.tps.get(bind);
    if (tps === undefined) return undefined;
    let p = this.pacers.get(bind);
    if (p === undefined || p.tps !== tps) {
      p = new Pacer(tps);
      this.pacers.set(bind, p);
    }
    return p;
  }

  /** One delivery attempt of an outbound message (delivery's SMPP forwarder for message.outbound). */
  async forward(job: DeliveryJob, signal: AbortSignal): Promise<AttemptResult> {
    const body = job.body;
    if (body.type !== "message.outbound") return { kind: "dead", reason: "not an outbound message" };
    // without Redis the queue gauges count the messages being sent here
    const first = this.o.shared === undefined ? body.route[0] : undefined;
    let q: Map<string, number> | undefined;
    if (first !== undefined) {
      q = this.localQueue.get(first);
      if (q === undefined) this.localQueue.set(first, (q = new Map()));
      if (!q.has(body.id)) q.set(body.id, job.acceptedAt);
    }
    let r: AttemptResult;
    try {
      r = await this.forwardOnce(job, body, signal);
    } finally {
      q?.delete(body.id);
    }
    // (a message past its validity ends expired in forwardOnce, before any send)
    const expiresAt = body.expires_at === undefined ? undefined : Date.parse(body.expires_at);
    if (r.kind !== "retry" || expiresAt === undefined) return r;
    // the next try comes no later than the end of the validity, where the message expires
    const left = Math.max(0, expiresAt - this.now());
    const wait = r.retryAfterMs ?? backoffDelay(job.attempts + 1, DEFAULT_BACKOFF);
    return { ...r, retryAfterMs: Math.min(wait, left) };
  }

  private async forwardOnce(job: DeliveryJob, body: MessageOutboundBody, signal: AbortSignal): Promise<AttemptResult> {
    const smpp = this.o.smpp();
    if (smpp === undefined) return { kind: "retry", reason: "SMPP is not running" };
    const sh = this.o.shared;
    if (sh !== undefined) {
      // an app's message (body.smpp) is claimed too: a cancel_sm or replace_sm acts only before this
      const c = await checkSend(sh, body.id, body.smpp !== undefined, await this.checkOptions(sh, body));
      if (c.kind === "opted_out") {
        this.optedOutAtSend(job, body);
        void unindexQueued(sh, body, body.route[0]);
        return { kind: "delivered" };
      }
      if (c.kind === "in_doubt") {
        const left = c.heldSince + (this.o.inDoubtHoldMs ?? 120_000) - this.now();
        this.o.logger.info({ id: body.id, bind: body.route[c.bind - 1] ?? null, submitted_at: new Date(c.at).toISOString(), hold_left_ms: Math.max(0, left) }, "sms outbound: in doubt after a crash (submit sent, answer not seen): held for a carrier receipt");
        // looked at again within 5 s, so a message a receipt marked sent leaves the spool soon
        return { kind: "retry", reason: "in_doubt", retryAfterMs: Math.max(50, Math.min(left, 5000)) };
      }
      if (c.kind === "send" && c.possibleDuplicate !== undefined) {
        this.metrics.inDoubt.inc({ outcome: "resent" });
        body.possible_duplicate = true;
        this.o.logger.warn({ id: body.id, bind: body.route[c.possibleDuplicate.bind - 1] ?? null, submitted_at: new Date(c.possibleDuplicate.at).toISOString() }, "sms outbound: in doubt after a crash and no receipt during the hold: sent again, flagged possible_duplicate");
      }
      if (c.kind === "sent") {
        this.o.logger.info({ id: body.id, bind: c.bind }, "sms outbound: already accepted by a carrier before a restart, not sent again");
        void unindexQueued(sh, body, body.route[0]);
        return { kind: "delivered" };
      }
      if (c.kind === "cancelled") {
        this.o.logger.info({ id: body.id }, "sms outbound: cancelled by the app before it was sent");
        void unindexQueued(sh, body, body.route[0]);
        return { kind: "delivered" };
      }
      if (c.kind === "send" && c.replaced !== undefined && !this.applyReplacement(job, body, c.replaced)) {
        void unindexQueued(sh, body, body.route[0]);
        return { kind: "dead", reason: "replaced text too long" };
      }
    }
    const due = dueNow(body, this.now());
    if (due.kind === "expired") {
      this.expire(job, body);
      if (sh !== undefined) void unindexQueued(sh, body, body.route[0]);
      return { kind: "delivered" };
    }
    let r0: AttemptResult;
    if (due.kind === "wait") r0 = { kind: "retry", reason: "scheduled", retryAfterMs: due.ms };
    else r0 = await this.forwardClaimed(job, body, smpp, signal);
    if (r0.kind === "retry" && sh !== undefined && body.smpp !== undefined) await releaseSend(sh, body.id);
    // not awaited: the attempt's slot is not held for it (it never throws; an entry left behind is
    // skipped and removed by the next cancel by address, or expires with the index). A message a
    // carrier accepted left the index in sent()'s script already.
    else if (sh !== undefined && !(r0.kind === "delivered" && oneSlot(sh))) void unindexQueued(sh, body, body.route[0]);
    return r0;
  }

  /** What the app's replace_sm changed, applied to the message before this attempt; false when the text no longer fits. */
  private applyReplacement(job: DeliveryJob, body: MessageOutboundBody, rp: Replacement): boolean {
    if (rp.not_before !== undefined) body.not_before = rp.not_before;
    if (rp.expires_at !== undefined) body.expires_at = rp.expires_at;
    if (rp.registered_delivery !== undefined && body.smpp !== undefined) {
      const when = rp.registered_delivery & 0x03;
      if (when === 0) delete job.receipt;
      else job.receipt = { peer: body.account, ids: [body.smpp.message_id], source: body.smpp.source, destination: body.smpp.destination, submitted_at: Date.parse(body.submitted_at), text: (rp.text ?? body.text ?? "").slice(0, 20), ...job.receipt, when };
    }
    if (rp.text === undefined) return true;
    body.text = rp.text;
    try {
      body.parts = buildMessagePdus(CMD.submit_sm, this.smsOf(body), 0, "udh").length;
      return true;
    } catch {
      return false;
    }
  }

  /** Its validity_period ended before a carrier took it: the message ends expired (record, status, the app's receipt). */
  private expire(job: DeliveryJob, body: MessageOutboundBody): void {
    this.o.logger.info({ id: body.id, expires_at: body.expires_at }, "sms outbound: expired before it was sent");
    this.metrics.finals.inc({ status: "expired" });
    void this.track(body, "expired", { reason: "validity_period" });
    this.record({ id: body.id, account: body.account, from: body.from, to: body.to, tenant: body.tenant, parts: body.parts, encoding: body.encoding, status: "expired", reason: "validity_period", bind: null, smsc_message_ids: [], accepted_at: new Date(job.acceptedAt).toISOString(), sent_at: null, receipt: null, attempts: job.attempts, smpp_message_id: body.smpp?.message_id ?? null, mask: body.mask });
    if (job.receipt !== undefined && this.o.receiptSender !== undefined) void this.o.receiptSender.send(job.receipt, "EXPIRED", "000");
  }

  private async forwardClaimed(job: DeliveryJob, body: MessageOutboundBody, smpp: SmppService, signal: AbortSignal): Promise<AttemptResult> {
    const msg = this.smsOf(body);
    // Always ask the carrier for a receipt: it gives the message its final status (record) and
    // is relayed to the app when it asked for one.
    msg.registered_delivery = 1;
    let lastReason = "no bind in the route";
    let retryAfterMs: number | undefined;
    // a message does not wait for a pacing slot past the end of its validity
    const left = body.expires_at === undefined ? Infinity : Date.parse(body.expires_at) - this.now();
    const maxWait = Math.min(this.o.maxPaceWaitMs ?? 10_000, Math.max(0, left));
    let tried = false;
    // what Redis keeps of the message (marker, sent note): serialised once for all its binds
    let meta: string | undefined;
    for (const name of body.route) {
      if (signal.aborted) return { kind: "retry", reason: "aborted" };
      const client = smpp.clients.get(name);
      if (client === undefined) continue;
      const cool = this.cooldown.get(name);
      if (!client.isBound || (cool !== undefined && cool > performance.now())) {
        this.metrics.binds.inc({ bind: name, outcome: "down" });
        lastReason = client.isBound ? `${name} throttled` : `${name} not bound`;
        continue;
      }
      const pacer = this.pacer(name);
      if (pacer !== undefined) {
        const w = pacer.reserve(body.parts, maxWait);
        if (w < 0) {
          const left = pacer.waitFor();
          retryAfterMs = retryAfterMs === undefined ? left : Math.min(retryAfterMs, left);
          lastReason = `${name} over tps`;
          continue;
        }
        if (w > 0) {
          this.metrics.pacing.inc({ bind: name });
          const slept = await sleep(w, signal);
          this.metrics.pacing.dec({ bind: name });
          if (!slept) return { kind: "retry", reason: "aborted" };
        }
      }
      const t0 = performance.now();
      tried = true;
      this.o.receipts.submitStart(name);
      let r: Awaited<ReturnType<SmppService["submit"]>>;
      let done = { tracked: false, acked: false };
      let held = false;
      meta ??= this.o.shared !== undefined ? bodyMetaJson(body) : "";
      const marker = await this.markInFlight(job, body, name, meta);
      this.countSubmit(name, body.parts);
      try {
        r = await smpp.submit(name, msg);
        if (r.outcome === "ok") done = await this.sent(job, body, name, r.message_ids, marker, meta);
        else if (marker !== undefined && unanswered(r) && r.message_ids.length === 0) {
          // the submit went out and no answer came: the carrier may have it. Held as after a
          // crash (the next attempt waits smpp.in_doubt_hold_s for a receipt that matches it).
          // Not when an earlier part was accepted: the receipt that matches the text start is
          // that part's, and tells nothing of the unanswered one (sent again, as after an error)
          this.metrics.inDoubt.inc({ outcome: "unanswered" });
          this.o.logger.info({ id: body.id, bind: name, error: r.error }, "sms outbound: submit_sm not answered: in doubt, held for a carrier receipt");
          await this.holdInFlight(marker, body.id);
          held = true;
        } else if (marker !== undefined) void this.clearInFlight(marker, body.id);
      } finally {
        this.o.receipts.submitEnd(name);
      }
      const status = r.status ?? 0;
      if (r.outcome === "ok") {
        this.metrics.binds.inc({ bind: name, outcome: "ok" });
        this.metrics.parts.inc({ bind: name }, body.parts);
        this.metrics.latency.observe({ bind: name }, (this.now() - Date.parse(body.submitted_at)) / 1000);
        if (body.track === true) {
          if (done.tracked) this.statusWebhook(body, "sent", { bind: name });
          else await this.track(body, "sent", { bind: name });
        }
        this.o.logger.debug({ id: body.id, bind: name, ms: Math.round(performance.now() - t0), smsc_ids: r.message_ids }, "sms outbound: accepted by carrier");
        return done.acked ? { kind: "delivered", acked: true } : { kind: "delivered" };
      }
      const reason = r.error ?? `${name}: command_status 0x${status.toString(16).padStart(2, "0")}`;
      if (r.outcome === "permanent") {
        this.metrics.binds.inc({ bind: name, outcome: "permanent" });
        return { kind: "dead", reason };
      }
      const throttled = status === STATUS.ESME_RTHROTTLED || status === STATUS.ESME_RMSGQFUL;
      if (throttled) this.cooldown.set(name, performance.now() + (this.o.cooldownMs ?? 1000));
      this.metrics.binds.inc({ bind: name, outcome: throttled ? "throttled" : "temporary" });
      lastReason = reason;
      // this bind's carrier may have the message: not offered to the route's next bind now (a
      // second copy), the next attempt holds it for a receipt as above
      if (held) return { kind: "retry", reason };
    }
    if (retryAfterMs === undefined && !tried) {
      // no bind could take it (all down or cooling down): look again soon, not at the slow end of
      // the delivery backoff, so a queue drains within seconds of a bind coming back
      const ceiling = Math.min(10_000, 500 * 2 ** Math.min(job.attempts, 5));
      retryAfterMs = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    }
    return retryAfterMs !== undefined ? { kind: "retry", reason: lastReason, retryAfterMs: Math.max(50, retryAfterMs) } : { kind: "retry", reason: lastReason };
  }

  /**
   * The carrier accepted: remember its ids for the receipt, and wait for that receipt. With Redis
   * (one slot) the same script also writes status `sent` to the history, takes the message out of
   * the cancel index and acknowledges its spool entry: whether it wrote the status, and acknowledged.
   */
  private async sent(job: DeliveryJob, body: MessageOutboundBody, bind: string, smscIds: string[], marker: string | undefined, meta: string): Promise<{ tracked: boolean; acked: boolean }> {
    const w: Waiting = { body, bind, smscIds, acceptedAt: job.acceptedAt, sentAt: this.now(), attempts: job.attempts + 1, at: this.now() };
    const s: SentMessage = { id: body.id, did: body.from, outbound: true, data: w };
    if (job.receipt !== undefined) s.receipt = job.receipt;
    for (const id of smscIds) if (id) this.o.receipts.remember(bind, id, s);
    const max = this.o.maxWaiting ?? 200_000;
    if (this.waiting.size >= max) {
      const first = this.waiting.oldestKey();
      if (first !== undefined) this.finishWaiting(first, "sent", null);
    }
    this.waiting.delete(body.id);
    this.waiting.set(body.id, w);
    const sh = this.o.shared;
    if (sh === undefined) return { tracked: false, acked: false };
    // The text stays out of Redis (bodyMetaJson): the record does not carry it.
    const json = `{"w":${waitingJson(meta, w)},"receipt":${JSON.stringify(job.receipt ?? null)}}`;
    if (oneSlot(sh)) return this.sentScript(sh, job, body, bind, smscIds, json, marker);
    try {
      // one key per script (a Cluster prefix without hash tag puts them in different slots)
      for (const id of smscIds) if (id) await SENT_ID.run(sh.redis, [`${sh.prefix}smsout:${bind}:${id.toLowerCase()}`], [json, sh.ttlS ?? 72 * 3600, body.id]);
      // sent: an edge that re-reads this spool entry after a crash (before it was acknowledged) does not send it again
      await sh.redis.set(jobKey(sh, body.id), bind, "EX", sh.ttlS ?? 72 * 3600);
      if (body.route[0] !== undefined) await sh.redis.zrem(bindQueueKey(sh, body.route[0]), body.id);
    } catch (err) {
      this.o.logger.warn({ id: body.id, err: errMessage(err) }, "sms outbound: carrier id not stored in Redis (its receipt is matched on this edge only)");
    }
    return { tracked: false, acked: false };
  }

  /** sent()'s writes in one script (SENT). */
  private async sentScript(sh: NonNullable<SmsOutboundOptions["shared"]>, job: DeliveryJob, body: MessageOutboundBody, bind: string, smscIds: string[], json: string, marker: string | undefined): Promise<{ tracked: boolean; acked: boolean }> {
    const ttl = sh.ttlS ?? 72 * 3600;
    const keys = [jobKey(sh, body.id)];
    for (const id of smscIds) if (id) keys.push(`${sh.prefix}smsout:${bind}:${id.toLowerCase()}`);
    const n = keys.length - 1;
    const st = body.track === true ? this.o.statuses?.redisKeys?.(body.id) : undefined;
    let entry = "";
    if (st !== undefined) {
      keys.push(st.hash, st.list);
      entry = JSON.stringify({ status: "sent", at: new Date(this.now()).toISOString(), bind, ...(body.possible_duplicate === true ? { possible_duplicate: true } : {}) });
    }
    let unindex = "";
    if (body.smpp !== undefined) {
      keys.push(queueKey(sh, body.account, body.smpp.source.addr, body.smpp.destination.addr));
      unindex = body.id;
    }
    if (marker !== undefined) keys.push(marker);
    const first = body.route[0];
    if (first !== undefined) keys.push(bindQueueKey(sh, first));
    // the spool entry, when it lives in the same slot (its stream under the same prefix)
    const se = job.spoolEntry;
    const ack = se !== undefined && se.stream.startsWith(sh.prefix) ? se : undefined;
    if (ack !== undefined) keys.push(ack.stream);
    try {
      await SENT.batched(sh.redis, keys, [json, ttl, n, bind, entry, "sent", MAX_HISTORY, st?.ttlS ?? ttl, unindex, ack?.group ?? "", ack?.id ?? "", marker !== undefined ? body.id : "", first !== undefined ? body.id : "", body.id]);
    } catch (err) {
      this.o.logger.warn({ id: body.id, err: errMessage(err) }, "sms outbound: carrier id not stored in Redis (its receipt is matched on this edge only)");
      if (st !== undefined) this.o.logger.warn({ id: body.id, err: errMessage(err) }, "message status not stored");
      return { tracked: st !== undefined, acked: false };
    }
    return { tracked: st !== undefined, acked: ack !== undefined };
  }

  /** The opt-out set and the in-flight markers checkSend() looks at for this message. */
  private async checkOptions(sh: NonNullable<SmsOutboundOptions["shared"]>, body: MessageOutboundBody): Promise<CheckOptions> {
    const o: CheckOptions = {};
    if (oneSlot(sh)) o.doubt = { keys: body.route.map((b) => inFlightKey(sh, b, body.from, body.to)), nowMs: this.now(), holdMs: this.o.inDoubtHoldMs ?? 120_000 };
    const opt = this.o.optouts;
    if (opt === undefined || body.optout_exempt === true) return o;
    const number = body.optout_from ?? body.from;
    const key = opt.redisKey?.(number);
    if (key !== undefined && (!oneSlot(sh) || key.startsWith(sh.prefix))) o.optout = { key, member: body.to };
    else {
      // opt-outs kept elsewhere (this process's memory): asked on their own
      try {
        if (await opt.isOptedOut(number, body.to)) o.optedOut = true;
      } catch {
        // cannot tell: it was checked when it was queued
      }
    }
    return o;
  }

  /**
   * The recipient opted out after the message was queued (a scheduled message, or one waiting for
   * its bind): it ends failed, reason opted_out, error 102 (ESME_RX_R_APPN), and is not sent.
   */
  private optedOutAtSend(job: DeliveryJob, body: MessageOutboundBody): void {
    this.o.logger.info({ id: body.id, account: body.account }, "sms outbound: recipient opted out after the message was queued: not sent");
    this.metrics.optedOut.inc();
    this.metrics.finals.inc({ status: "failed" });
    void this.track(body, "failed", { reason: "opted_out", error_code: "102" });
    this.record({ id: body.id, account: body.account, from: body.from, to: body.to, tenant: body.tenant, parts: body.parts, encoding: body.encoding, status: "failed", reason: "opted_out", bind: null, smsc_message_ids: [], accepted_at: new Date(job.acceptedAt).toISOString(), sent_at: null, receipt: null, attempts: job.attempts, smpp_message_id: body.smpp?.message_id ?? null, mask: body.mask });
    if (job.receipt !== undefined && this.o.receiptSender !== undefined) void this.o.receiptSender.send(job.receipt, "UNDELIV", "102");
  }

  /**
   * Before a submit_sm goes out (Redis, one slot): the message's in-flight marker (when, a hash of
   * the start of its text (textStartHash), what its record needs), so that after a crash before the carrier's answer was
   * stored the message is held, not sent again at once. The marker hash key, or undefined.
   */
  private async markInFlight(job: DeliveryJob, body: MessageOutboundBody, bind: string, meta: string): Promise<string | undefined> {
    const sh = this.o.shared;
    if (sh === undefined || !oneSlot(sh)) return undefined;
    const key = inFlightKey(sh, bind, body.from, body.to);
    const now = this.now();
    const w = { bind, smscIds: [], acceptedAt: job.acceptedAt, sentAt: now, attempts: job.attempts + 1, at: now };
    const json = `{"at":${now},"s":${JSON.stringify(textStartHash(body.text ?? "", this.o.textKey))},"w":${waitingJson(meta, w)},"receipt":${JSON.stringify(job.receipt ?? null)}}`;
    const ttlS = sh.ttlS ?? 72 * 3600;
    try {
      await MARK.batched(sh.redis, [key, `${key}:trim`], [body.id, json, ttlS, now - ttlS * 1000, MARKERS_TRIM_AT, MARKERS_TRIM_MEMORY_S]);
      return key;
    } catch (err) {
      this.o.logger.warn({ id: body.id, err: errMessage(err) }, "sms outbound: in-flight marker not stored (a crash before the answer would send it again at once)");
      return undefined;
    }
  }

  /** A marker whose submit was not answered: held from now (a receipt may match it at once). */
  private async holdInFlight(key: string, id: string): Promise<void> {
    try {
      await HOLD.run(this.o.shared!.redis, [key], [id, this.now()]);
    } catch {
      // held from the next attempt's look instead
    }
  }

  private async clearInFlight(key: string, id: string): Promise<void> {
    try {
      await this.o.shared?.redis.hdel(key, id);
    } catch {
      // it expires; the next attempt holds the message a while for nothing
    }
  }

  /**
   * A carrier receipt that matches no carrier id: a message left in doubt by a crash (its submit
   * went out, the answer was never stored; a marker held by a restarted edge's look, or written
   * before this process started) on the same bind, from the receipt's destination to its source,
   * whose text start (up to 20 characters, compared whole, as hashes) is the receipt's `text:`, is
   * marked sent (so the held message is not sent again) and the receipt is its own. An empty
   * `text:` matches nothing; more than one such message: none (ambiguous, each resent after its hold).
   */
  async matchInDoubt(r: Receipt): Promise<SentMessage | undefined> {
    const sh = this.o.shared;
    if (sh === undefined || !oneSlot(sh) || r.peer_kind !== "bind") return undefined;
    const plan = this.o.plans.get(r.peer) ?? {};
    const addr = (a: Receipt["source"]): string => {
      const n = smppAddressToE164(a, plan);
      return n.ok ? n.e164 : a.addr;
    };
    if (r.text === undefined || r.text === "") return undefined;
    const key = inFlightKey(sh, r.peer, addr(r.destination), addr(r.source));
    let m: [string, string];
    try {
      const x = (await MATCH.run(sh.redis, [key], [textStartHash(r.text, this.o.textKey), r.peer, this.startedAt])) as [number, string?, string?];
      if (x[0] === 2) {
        this.metrics.inDoubt.inc({ outcome: "ambiguous" });
        this.o.logger.warn({ bind: r.peer, receipted_message_id: r.message_id }, "sms outbound: a carrier receipt fits more than one message in doubt after a crash: matched to none (each is sent again after its hold)");
        return undefined;
      }
      if (x[0] !== 1) return undefined;
      m = [x[1]!, x[2]!];
      await sh.redis.set(jobKey(sh, m[0]), r.peer, "EX", sh.ttlS ?? 72 * 3600);
    } catch (err) {
      this.o.logger.warn({ err: errMessage(err) }, "sms outbound: in-doubt markers not readable");
      return undefined;
    }
    try {
      const j = JSON.parse(m[1]) as { w: Waiting; receipt: ReceiptRequest | null };
      this.metrics.inDoubt.inc({ outcome: "matched" });
      this.o.logger.info({ id: m[0], bind: r.peer, receipted_message_id: r.message_id }, "sms outbound: a carrier receipt matched a message in doubt after a crash: marked sent, not sent again");
      j.w.smscIds = [r.message_id];
      const s: SentMessage = { id: m[0], did: j.w.body.from, outbound: true, data: j.w };
      if (j.receipt !== null) s.receipt = j.receipt;
      return s;
    } catch {
      return undefined;
    }
  }

  /**
   * The message's final receipt came: its carrier ids' notes say so ("=" and its id, for an hour:
   * a copy of that receipt is a duplicate), and the ids are free for the carrier to give again (an
   * SMSC that restarts its ids) without being taken for two messages at once. Never throws.
   */
  private async idsDone(bind: string, smscIds: readonly string[], id: string): Promise<void> {
    const sh = this.o.shared;
    if (sh === undefined) return;
    for (const c of smscIds) {
      if (!c) continue;
      try {
        // (with the other receipts of this turn of the event loop: one script run for them all)
        await ID_DONE.batched(sh.redis, [`${sh.prefix}smsout:${bind}:${c.toLowerCase()}`], [id]);
      } catch {
        // the note expires with its TTL; until then a new message given this id is ambiguous
      }
    }
  }

  /**
   * Whether a carrier id this edge knows for one of its messages is, in Redis, the id of another
   * message too (given to two messages sent by different edges): then its receipt is nobody's.
   */
  async sharedClash(bind: string, smscId: string): Promise<boolean> {
    const sh = this.o.shared;
    if (sh === undefined || smscId === "") return false;
    try {
      return (await sh.redis.get(`${sh.prefix}smsout:${bind}:${smscId.toLowerCase()}`)) === "!";
    } catch {
      return false;
    }
  }

  /** A message sent by any edge (or by this one before a restart), by the bind's message id. */
  async findShared(bind: string, smscId: string): Promise<SentMessage | "ambiguous" | "done" | undefined> {
    const sh = this.o.shared;
    if (sh === undefined || smscId === "") return undefined;
    let v: string | null;
    try {
      v = await sh.redis.get(`${sh.prefix}smsout:${bind}:${smscId.toLowerCase()}`);
    } catch {
      return undefined;
    }
    if (v === null) return undefined;
    // the carrier gave this id to two messages (or ids that differ only in case): SENT_ID
    if (v === "!") return "ambiguous";
    // its message's final receipt came already (idsDone): a copy
    if (v.startsWith("=")) return "done";
    try {
      const j = JSON.parse(v) as { w: Waiting; receipt: ReceiptRequest | null };
      if (typeof j.w?.body?.id !== "string") return undefined;
      const s: SentMessage = { id: j.w.body.id, did: j.w.body.from, outbound: true, data: j.w };
      if (j.receipt !== null) s.receipt = j.receipt;
      return s;
    } catch {
      return undefined;
    }
  }

  /** true the first time for a message (any edge); also true when Redis cannot tell. */
  private async once(id: string): Promise<boolean> {
    const sh = this.o.shared;
    if (sh === undefined) return true;
    try {
      return (await sh.redis.set(`${sh.prefix}smsout:done:${id}`, "1", "EX", sh.ttlS ?? 72 * 3600, "NX")) === "OK";
    } catch {
      return true;
    }
  }

  /**
   * A carrier's receipt for a message sent here (the SMS edge found it in the correlator): relay it
   * to the app that asked for one, and write the message's record at a final state.
   */
  async onReceipt(sent: SentMessage, r: Receipt): Promise<"relayed" | "recorded" | "intermediate" | "duplicate"> {
    const stat = normaliseStat(r.stat);
    if (!r.final) return "intermediate";
    if (sent.relayed === true || !(await this.once(sent.id))) {
      sent.relayed = true;
      return "duplicate";
    }
    // found in Redis (sent by another edge or before a restart): its record is written here
    const w = sent.data as Waiting | undefined;
    if (!this.waiting.has(sent.id) && w !== undefined && typeof w.body === "object") this.waiting.set(sent.id, w);
    let relayed = false;
    sent.relayed = true;
    void this.idsDone(w?.bind ?? r.peer, w?.smscIds ?? [r.message_id], sent.id);
    if (sent.receipt !== undefined && this.o.receiptSender !== undefined) {
      relayed = true;
      void this.o.receiptSender.send(sent.receipt, stat, r.err ?? (r.delivered ? "000" : "001"));
    }
    this.finishWaiting(sent.id, FINAL[stat] ?? "unknown", { stat, err: r.err ?? null, smsc_message_id: r.message_id, received_at: r.received_at.toISOString(), bind: r.peer });
    return relayed ? "relayed" : "recorded";
  }

  /** Delivery's onFinal for outbound messages: a failed one gets its record now. */
  onFinal(job: DeliveryJob, outcome: FinalOutcome): void {
    const b = job.body;
    if (b.type !== "message.outbound" || outcome.delivered) return;
    const sh = this.o.shared;
    if (sh !== undefined && b.route[0] !== undefined) void sh.redis.zrem(bindQueueKey(sh, b.route[0]), b.id).catch(() => undefined);
    this.metrics.finals.inc({ status: "failed" });
    void this.track(b, "failed", { reason: outcome.reason });
    this.record({ id: b.id, account: b.account, from: b.from, to: b.to, tenant: b.tenant, parts: b.parts, encoding: b.encoding, status: "failed", reason: outcome.reason, bind: null, smsc_message_ids: [], accepted_at: new Date(job.acceptedAt).toISOString(), sent_at: null, receipt: null, attempts: job.attempts, smpp_message_id: b.smpp?.message_id ?? null, mask: b.mask });
    if (job.receipt !== undefined && this.o.receiptSender !== undefined) {
      void this.o.receiptSender.send(job.receipt, outcome.reason.startsWith("max_age") ? "EXPIRED" : "UNDELIV", "001");
    }
  }

  private finishWaiting(id: string, status: string, receipt: Record<string, unknown> | null): void {
    const w = this.waiting.get(id);
    if (w === undefined) return;
    this.waiting.delete(id);
    const b = w.body;
    this.metrics.finals.inc({ status });
    if (status !== "sent") void this.track(b, status, receipt === null ? null : { error_code: receipt.err ?? null });
    this.record({ id: b.id, account: b.account, from: b.from, to: b.to, tenant: b.tenant, parts: b.parts, encoding: b.encoding, status, reason: null, bind: w.bind, smsc_message_ids: w.smscIds, accepted_at: new Date(w.acceptedAt).toISOString(), sent_at: new Date(w.sentAt).toISOString(), receipt, attempts: w.attempts, smpp_message_id: b.smpp?.message_id ?? null, mask: b.mask });
  }

  /** Messages past the receipt wait (or all, at stop) get their record with status sent. */
  private sweep(all: boolean): void {
    const limit = this.now() - (this.o.receiptWaitMs ?? 3_600_000);
    const due: string[] = [];
    for (const [id, w] of this.waiting) {
      if (!all && w.at > limit) break; // insertion order is age order
      due.push(id);
    }
    if (this.o.shared === undefined) {
      for (const id of due) this.finishWaiting(id, "sent", null);
      return;
    }
    if (all) {
      // stopping: the carrier ids are in Redis, the edge that gets the receipt writes the record
      this.waiting.clear();
      return;
    }
    // another edge may have handled the receipt (and written the record): only if not, "sent"
    void (async () => {
      for (const id of due) if (this.waiting.has(id) && (await this.once(id))) this.finishWaiting(id, "sent", null);
      for (const id of due) this.waiting.delete(id);
    })();
  }

  private record(r: {
    id: string;
    account: string;
    from: string;
    to: string;
    tenant: string | null;
    parts: number;
    encoding: string;
    status: string;
    reason: string | null;
    bind: string | null;
    smsc_message_ids: string[];
    accepted_at: string | null;
    sent_at: string | null;
    receipt: Record<string, unknown> | null;
    attempts: number;
    smpp_message_id: string | null;
    mask: MessageOutboundBody["mask"];
  }): void {
    // A masked message's record reads like a masked call's: the sending party, the other party,
    // the proxy number as `did`, the session, and the carrier account it came from as `peer`.
    const m = r.mask;
    this.o.records?.write("message", {
      id: r.id,
      direction: m !== undefined ? "masked" : "outbound",
      peer: m !== undefined ? m.peer : r.account,
      from: m !== undefined ? m.sender : r.from,
      to: r.to,
      ...(m !== undefined ? { did: r.from, session_id: m.session } : {}),
      tenant: r.tenant,
      parts: r.parts,
      encoding: r.encoding,
      target: r.bind,
      status: r.status,
      reason: r.reason,
      accepted_at: r.accepted_at,
      sent_at: r.sent_at,
      final_at: new Date(this.now()).toISOString(),
      attempts: r.attempts,
      smpp_message_id: r.smpp_message_id,
      carrier_message_ids: r.smsc_message_ids,
      receipt: r.receipt,
    });
  }
}

/**
 * After a carrier accepted a message, in one script: its carrier ids (for receipts on any edge),
 * the sent note (jobKey), status `sent` in its history (only if the history exists, as
 * MessageStatusStore.update), out of the cancel index, and its spool entry acknowledged (XACK +
 * XDEL, as the spool's ACK: the note and the acknowledgement cannot be separated by a crash).
 * The message's in-flight marker goes too (the carrier's answer was seen), and it leaves its bind's queue.
 * KEYS jobKey, n carrier-id keys, [history hash, history list], [cancel index], [in-flight marker
 * hash], [its first bind's queue], [spool stream].
 * ARGV carrier JSON, TTL s, n, bind, status entry JSON or "" (no history), status, history length,
 * history TTL s, id to take out of the index or "", spool group, spool entry id or "", id whose
 * in-flight marker to remove or "", id to take out of the bind's queue or "", the message's id.
 * A carrier id already noted for another message becomes "!" (matches neither: SENT_ID).
 */
const SENT = new Script(`
local n = tonumber(ARGV[3])
local mine = '"id":' .. cjson.encode(ARGV[14])
for i = 2, n + 1 do
  local old = redis.call('GET', KEYS[i])
  if old and (old == '!' or (string.sub(old, 1, 1) ~= '=' and not string.find(old, mine, 1, true))) then redis.call('SET', KEYS[i], '!', 'EX', ARGV[2])
  else redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2]) end
end
redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[2])
local k = n + 2
if ARGV[5] ~= '' then
  if redis.call('EXISTS', KEYS[k]) == 1 then
    redis.call('HSET', KEYS[k], 'status', ARGV[6])
    if redis.call('RPUSH', KEYS[k + 1], ARGV[5]) > tonumber(ARGV[7]) then redis.call('LTRIM', KEYS[k + 1], -tonumber(ARGV[7]), -1) end
    redis.call('EXPIRE', KEYS[k + 1], ARGV[8])
  end
  k = k + 2
end
if ARGV[9] ~= '' then
  redis.call('HDEL', KEYS[k], ARGV[9])
  k = k + 1
end
if ARGV[12] ~= '' then
  redis.call('HDEL', KEYS[k], ARGV[12])
  k = k + 1
end
if ARGV[13] ~= '' then
  redis.call('ZREM', KEYS[k], ARGV[13])
  k = k + 1
end
if ARGV[11] ~= '' then
  redis.call('XACK', KEYS[k], ARGV[10], ARGV[11])
  redis.call('XDEL', KEYS[k], ARGV[11])
end
return 1
`);

/**
 * A carrier id's note (KEYS[1]) for message ARGV[3]: ARGV[1] for ARGV[2] s, unless the id is
 * noted for another message already (an SMSC that reuses ids, or ids that differ only in case:
 * the key is the id without case), then "!": its receipt matches neither message, rather than
 * the later one's sender getting the earlier one's receipt.
 */
const SENT_ID = new Script(`local old = redis.call('GET', KEYS[1])
if old and (old == '!' or (string.sub(old, 1, 1) ~= '=' and not string.find(old, '"id":' .. cjson.encode(ARGV[3]), 1, true))) then redis.call('SET', KEYS[1], '!', 'EX', ARGV[2]) return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1`);

/** A carrier id's note (KEYS[1]) of message ARGV[1] whose final receipt came: "=" and the id, for an hour. */
const ID_DONE = new Script(`local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 1) == '{' and string.find(v, '"id":' .. cjson.encode(ARGV[1]), 1, true) then redis.call('SET', KEYS[1], '=' .. ARGV[1], 'EX', 3600) return 1 end
return 0`);

/** The message as Redis keeps it (in-flight marker, sent note): without its text or binary body (`text` null). */
function bodyMetaJson(body: MessageOutboundBody): string {
  const { text: _t, binary: _b, ...meta } = body;
  return JSON.stringify({ ...meta, text: null });
}

/** JSON.stringify of a Waiting whose body is `bodyJson` (already serialised), in the same field order. */
function waitingJson(bodyJson: string, w: Omit<Waiting, "body">): string {
  return `{"body":${bodyJson},"bind":${JSON.stringify(w.bind)},"smscIds":${JSON.stringify(w.smscIds)},"acceptedAt":${JSON.stringify(w.acceptedAt)},"sentAt":${JSON.stringify(w.sentAt)},"attempts":${JSON.stringify(w.attempts)},"at":${JSON.stringify(w.at)}}`;
}

/** The window of didgate_sms_outbound_bind_tps (seconds). */
const TPS_WINDOW_S = 5;

/**
 * The queue gauges: per bind queue (KEYS), entries scored before ARGV[1] dropped, then {ZCARD,
 * lowest score or ""}.
 */
const QSTATS = new Script(`local out = {}
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[1])
  local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  out[i] = {redis.call('ZCARD', KEYS[i]), first[2] or ''}
end
return out`);

/** Fields an in-flight marker hash holds before MARK drops its stale ones (normally one or two: the messages of one sender to one recipient on their way). */
export const MARKERS_TRIM_AT = 32;

/** How long MARK remembers the size its last trim left (s); then the next marker past the trim size trims again. */
const MARKERS_TRIM_MEMORY_S = 600;

/**
 * KEYS in-flight marker hash, its trim note. ARGV id, marker JSON, TTL s, oldest marker kept
 * (epoch ms), trim size, trim note TTL s. Past the trim size, matched entries ("!") and markers
 * older than the TTL are dropped: the hash's TTL, refreshed by each marker, does not bound it
 * alone. The next trim comes once the hash has doubled from what the last one kept (the trim
 * note), not at every marker: a burst from one sender to one recipient (many live markers) costs
 * no full scan per message.
 */
export const MARK = new Script(`redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local min = tonumber(ARGV[5])
local at = tonumber(redis.call('GET', KEYS[2])) or min
if redis.call('HLEN', KEYS[1]) > at then
  local all = redis.call('HGETALL', KEYS[1])
  local oldest = tonumber(ARGV[4])
  for i = 1, #all, 2 do
    local v = all[i + 1]
    if string.sub(v, 1, 1) == '!' then redis.call('HDEL', KEYS[1], all[i])
    else
      local ok, m = pcall(cjson.decode, v)
      if not ok or type(m) ~= 'table' or (tonumber(m.at) or 0) < oldest then redis.call('HDEL', KEYS[1], all[i]) end
    end
  end
  local left = redis.call('HLEN', KEYS[1])
  if 2 * left > min then redis.call('SET', KEYS[2], 2 * left, 'EX', ARGV[6]) else redis.call('DEL', KEYS[2]) end
end
redis.call('EXPIRE', KEYS[1], ARGV[3]) return 1`);

/** Mark an in-flight marker held since ARGV[2] (unless it is already). KEYS marker hash. ARGV id, now ms. */
const HOLD = new Script(`local m = redis.call('HGET', KEYS[1], ARGV[1])
if not m or string.sub(m, 1, 1) ~= '{' then return 0 end
local ok, j = pcall(cjson.decode, m)
if not ok or type(j) ~= 'table' or j.h then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], '{"h":' .. ARGV[2] .. ',' .. string.sub(m, 2))
return 1`);

/** A submit that went out and got no answer (timed out, or the session closed while waiting). */
function unanswered(r: { outcome: string; error?: string; status?: number }): boolean {
  return r.outcome === "temporary" && r.status === undefined && (r.error === "timeout" || r.error === "closed");
}

/**
 * A receipt against the in-flight markers of one bind, sender and recipient. Candidates are the
 * markers in doubt: held by a restarted edge's look (field h), or written before this process
 * started (ARGV[3]); a live marker (its answer not yet stored) never is. Of those, the ones whose
 * text-start hash equals the receipt's: exactly one is set to "!<bind>" (sent: checkSend() then
 * ends the held message); more than one is ambiguous and none is set.
 * KEYS marker hash. ARGV receipt text-start hash, bind, process start (epoch ms).
 * {1, id, marker JSON}, {2} ambiguous, or {0}.
 */
const MATCH = new Script(`local all = redis.call('HGETALL', KEYS[1])
local best, bestV, n = nil, nil, 0
local started = tonumber(ARGV[3])
for i = 1, #all, 2 do
  local v = all[i + 1]
  if string.sub(v, 1, 1) ~= '!' then
    local ok, m = pcall(cjson.decode, v)
    if ok and type(m) == 'table' and m.s == ARGV[1] and (tonumber(m.h) or (tonumber(m.at) or started) < started) then
      n = n + 1 best = all[i] bestV = v
    end
  end
end
if n == 0 then return {0} end
if n > 1 then return {2} end
redis.call('HSET', KEYS[1], best, '!' .. ARGV[2])
return {1, best, bestV}`);

/**
 * What an in-flight marker keeps of a message's text, and what a receipt's `text:` is compared
 * with: its first 20 characters (SMPP 3.4 appendix B; the whole text when shorter), NFC, without
 * trailing blanks, hashed
 * (keyed when the deployment has a shared secret), so that no text (codes) sits in Redis.
 */
export function textStartHash(text: string, key?: string): string {
  // trailing blanks dropped (a carrier may pad or trim the field)
  const start = Array.from(text.normalize("NFC")).slice(0, 20).join("").replace(/[\s\0]+$/, "");
  const h = key !== undefined && key !== "" ? createHmac("sha256", key) : createHash("sha256");
  return h.update("dgt1\n" + start).digest("base64url").slice(0, 22);
}

/** The `account` of masked messages (src/edge/sms-masking.ts) in metrics and logs. */
export const MASKING_ACCOUNT = "masking";

/** Wait `ms`; false when aborted first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** What each app account may send from, filled into `into` (config smpp.accounts). */
export function senderRights(
  accounts: readonly { system_id: string; role: string; tenant?: string | undefined; senders?: readonly string[] | undefined }[],
  into: Map<string, SenderRights>,
): Map<string, SenderRights> {
  into.clear();
  for (const a of accounts) {
    if (a.role !== "app" || (a.tenant === undefined && (a.senders?.length ?? 0) === 0)) continue;
    const r: SenderRights = { senders: new Set(a.senders ?? []) };
    if (a.tenant !== undefined) r.tenant = a.tenant;
    into.set(a.system_id, r);
  }
  return into;
}

/** Pacing per outbound bind (config smpp.binds[].tps). */
export function bindTps(binds: readonly { name: string; tps?: number | undefined }[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const b of binds) if (b.tps !== undefined) m.set(b.name, b.tps);
  return m;
}
