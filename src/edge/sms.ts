/**
 * The SMS edge policy: an inbound message from the SMPP layer is routed by its destination
 * (normalised to E.164, TON/NPI aware, with the peer's number plan) and handed to delivery; the
 * PDU's answer is what that resolves to (README.md "SMPP answers"):
 *   no route, no sms destination, quarantine or released → invalid_destination (ESME_RINVDSTADR)
 *   delivered or durably spooled → accepted (ESME_ROK)
 *   delivery failed, temporary → temporary (the peer's configured status, default 0x64)
 *   delivery refused permanently → permanent (ESME_RX_R_APPN)
 * Receipts are routed by the number that sent the original message and delivered as
 * message.receipt to that route's webhook; they are never routed as messages.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { ActivityRecorder } from "../records/activity.js";
import type { RecordWriter } from "../records/writer.js";
import { Counter, type Registry } from "prom-client";
import type { AcceptOutcome, DeliveryJob, DeliveryTarget, FinalOutcome, MessageReceiptBody, MessageReceivedBody } from "../delivery/types.js";
import type { SpoolWrites } from "../delivery/redis.js";
import { normalizeNumber, type NumberPlan } from "../routing/number.js";
import { decideSms, type StateOf } from "../routing/decide.js";
import type { Route } from "../routing/route.js";
import type { RouteStore } from "../routing/table.js";
import type { AcceptResult, InboundSms, Receipt, SmsAddress } from "../smpp/types.js";
import type { ReceiptCorrelator, SentMessage } from "./receipts.js";
import { normaliseStat, receiptRequestOf, type ReceiptSender } from "./sms-receipts.js";
import { withSecret } from "../delivery/secret-ref.js";
import { MessageIds } from "./sms-dedup.js";
import { errMessage } from "../util/errors.js";
import type { SmsKeywords } from "./sms-keywords.js";
import type { SmsMasking } from "./sms-masking.js";

export interface MessageSink {
  accept(job: DeliveryJob): Promise<AcceptOutcome>;
  /**
   * accept() with Redis writes made in the spool's enqueue script (src/delivery/redis.ts
   * ENQUEUE_WITH); "refused" when the `unless` member of `writes` is in its set; undefined when the
   * sink has no Redis spool (the caller checks and writes itself).
   */
  acceptWith?(job: DeliveryJob, writes: SpoolWrites): Promise<AcceptOutcome | "refused"> | undefined;
}

export interface SmsEdgeOptions {
  store: RouteStore<Route>;
  delivery: MessageSink;
  logger: Logger;
  registry: Registry;
  /** Number plan per peer (account system_id or bind name). */
  plans: Map<string, NumberPlan>;
  /** Messages this edge submitted through outbound binds, for their receipts. */
  receipts?: ReceiptCorrelator;
  /** Receipts back to submitters that asked for them (registered_delivery). */
  receiptsOut?: {
    sender: ReceiptSender;
    /** Is this peer a carrier account bound to didgate's server (the only kind that gets receipts)? */
    isCarrierAccount(peer: string): boolean;
    /** Is this name an outbound bind (a carrier's receipt will come back from it)? */
    isBind(name: string): boolean;
  };
  /** Receipts of an app's outbound messages (src/edge/sms-outbound.ts): relayed and recorded there. */
  onOutboundReceipt?: (sent: SentMessage, r: Receipt) => Promise<string>;
  /** An outbound message another edge (or this one before a restart) sent, by the bind's message id (Redis). */
  findOutbound?: (bind: string, smscId: string, r?: Receipt) => Promise<SentMessage | "ambiguous" | "done" | undefined>;
  /** Is this carrier id, known here for a message of this edge, given to another message too (by another edge)? */
  sharedClash?: (bind: string, smscId: string) => Promise<boolean>;
  /** State of a route at a time (Decider.stateOf: released_at, port_date); default its state field. */
  stateOf?: StateOf;
  /** Message records (one per message, at its final outcome) and number activity. */
  records?: RecordWriter;
  activity?: ActivityRecorder;
  now?: () => number;
  /** Opt-out words, route keywords, forwards and webhook replies (src/edge/sms-keywords.ts). */
  keywords?: SmsKeywords;
  /** Stable ids across an SMSC's retries (see sms-dedup.ts): window in ms (0 off, default 300 s) and table size. */
  dedup?: { windowMs: number; max: number };
  /** Messages to pool numbers go through masking sessions (src/edge/sms-masking.ts). */
  masking?: Pick<SmsMasking, "onMessage">;
}

export type SmsOutcome = "accepted" | "duplicate" | "temporary" | "permanent" | "no_route" | "gone" | "no_sms_route" | "invalid_number" | "draining";

export class SmsMetrics {
  readonly inbound: Counter<"peer" | "outcome">;
  readonly receipts: Counter<"peer" | "outcome">;
  readonly duplicates: Counter<"peer" | "action">;
  constructor(registry: Registry) {
    this.duplicates = new Counter({
      name: "didgate_sms_duplicates_total",
      help: "Inbound SMS seen again within the dedup window (an SMSC retry): redelivered with the same id, or suppressed because an earlier copy was accepted",
      labelNames: ["peer", "action"],
      registers: [registry],
    });
    this.inbound = new Counter({ name: "didgate_sms_inbound_total", help: "Inbound SMS by peer and outcome", labelNames: ["peer", "outcome"], registers: [registry] });
    this.receipts = new Counter({ name: "didgate_sms_receipts_total", help: "Delivery receipts by peer and outcome", labelNames: ["peer", "outcome"], registers: [registry] });
  }
}

/** Normalise an SMPP address to E.164. TON 1 is international, 2 national; 5 (alphanumeric) is not a number. */
export function smppAddressToE164(a: SmsAddress, plan: NumberPlan): { ok: true; e164: string } | { ok: false; error: string } {
  const addr = a.addr.trim();
  if (a.ton === 5) return { ok: false, error: "alphanumeric address" };
  if (a.ton === 1 && !addr.startsWith("+")) {
    const r = normalizeNumber("+" + addr, plan);
    return r;
  }
  if (a.ton === 2) {
    const r = normalizeNumber(addr, plan.countryCode ? { ...plan, internationalPrefixes: [] } : plan);
    return r;
  }
  return normalizeNumber(addr, plan);
}

function displayAddress(a: SmsAddress, plan: NumberPlan): string {
  const n = smppAddressToE164(a, plan);
  return n.ok ? n.e164 : a.addr;
}

export class SmsEdge {
  readonly metrics: SmsMetrics;
  private draining = false;
  private readonly now: () => number;
  /** Number plan per peer; the app refills it on a config reload. */
  readonly plans: Map<string, NumberPlan>;
  private readonly ids: MessageIds;

  constructor(private readonly opts: SmsEdgeOptions) {
    this.plans = opts.plans;
    this.metrics = new SmsMetrics(opts.registry);
    this.now = opts.now ?? Date.now;
    this.ids = new MessageIds({ windowMs: opts.dedup?.windowMs ?? 300_000, max: opts.dedup?.max ?? 100_000, now: this.now });
  }

  /** After drain() new messages get a temporary failure (the peer retries elsewhere or later). */
  drain(): void {
    this.draining = true;
  }

  private plan(peer: string): NumberPlan {
    return this.plans.get(peer) ?? {};
  }

  private finish(msg: InboundSms, outcome: SmsOutcome, fields: Record<string, unknown>): void {
    this.metrics.inbound.inc({ peer: msg.peer, outcome });
    // a refused message's record is written now; an accepted one's at its final outcome (onFinal);
    // a temporary failure is not final (the peer sends it again)
    if (outcome !== "accepted" && outcome !== "temporary" && outcome !== "draining" && outcome !== "duplicate") {
      this.opts.records?.write("message", {
        id: `msg_${randomUUID()}`,
        direction: "inbound",
        peer: msg.peer,
        from: msg.source.addr,
        to: typeof fields.did === "string" ? fields.did : msg.destination.addr,
        tenant: null,
        parts: msg.parts,
        status: outcome === "permanent" ? "failed" : "rejected",
        reason: outcome,
        accepted_at: null,
        final_at: new Date(this.now()).toISOString(),
        smpp_message_id: msg.message_id ?? null,
      });
    }
    const level = outcome === "accepted" ? "info" : outcome === "temporary" || outcome === "permanent" ? "warn" : "info";
    this.opts.logger[level](
      { peer: msg.peer, command: msg.command, from: msg.source.addr, to: msg.destination.addr, parts: msg.parts, message_id: msg.message_id, result: outcome, ...fields },
      "sms",
    );
  }

  /** The SMPP layer's onMessage handler. */
  async onMessage(msg: InboundSms): Promise<AcceptResult> {
    if (this.draining) {
      this.finish(msg, "draining", {});
      return { status: "temporary" };
    }
    const plan = this.plan(msg.peer);
    const to = smppAddressToE164(msg.destination, plan);
    if (!to.ok) {
      this.finish(msg, "invalid_number", { error: to.error });
      return { status: "invalid_destination" };
    }
    const masked = await this.opts.masking?.onMessage(msg, to.e164, plan, this.ids);
    if (masked != null) {
      this.metrics.inbound.inc({ peer: msg.peer, outcome: masked.outcome });
      return { status: masked.status };
    }
    const d = decideSms(this.opts.store.current, to.e164, this.now(), this.opts.stateOf);
    // the outcome's label in metrics and logs: not_found is no_route; no_targets (no sms section)
    // is no_sms_route below, after the dedup window has seen the message, like a route whose sms
    // section sends nowhere
    if (d.outcome === "not_found") {
      this.finish(msg, "no_route", { did: to.e164 });
      return { status: "invalid_destination" };
    }
    if (d.outcome === "gone") {
      this.finish(msg, "gone", { did: to.e164, route_key: d.key, state: d.state });
      return { status: "invalid_destination" };
    }
    const route = d.route!;
    const key = d.key!;
    const sms = d.sms ?? undefined;
    const from = displayAddress(msg.source, plan);
    // An SMSC's retry of a message seen within the dedup window keeps the first copy's id; once a
    // copy was accepted, a retry (its answer was lost or late) is answered without delivering again.
    // Known before the keywords: a late retry of an accepted START must not undo a STOP sent since.
    const seen = this.ids.idFor(msg);
    // Opt-out words, keywords and forwards may change where the message goes (sms-keywords.ts).
    const auto = sms === undefined || this.opts.keywords === undefined ? undefined : await this.opts.keywords.inbound({ did: to.e164, route, from, text: msg.text, partial: msg.partial === true, id: msg.message_id, repeat: seen.duplicate && seen.accepted });
    if (auto === "temporary" || auto === "rate_limited") {
      this.finish(msg, "temporary", { did: to.e164, route_key: key, why: auto === "temporary" ? "opt-out store" : "forward limit" });
      return { status: "temporary" };
    }
    const webhook = auto !== undefined ? auto.webhook : sms?.webhook;
    const smppTarget = auto !== undefined ? auto.smpp : sms?.smpp;
    if (sms === undefined || (webhook === undefined && smppTarget === undefined && auto?.handled !== true)) {
      auto?.release();
      this.finish(msg, "no_sms_route", { did: to.e164, route_key: key });
      return { status: "invalid_destination" };
    }
    if (seen.duplicate) {
      this.metrics.duplicates.inc({ peer: msg.peer, action: seen.accepted ? "suppressed" : "redelivered" });
      if (seen.accepted) {
        auto?.release();
        this.finish(msg, "duplicate", { did: to.e164, route_key: key, tenant: route.tenant, id: seen.id });
        return { status: "accepted" };
      }
    }
    const body: MessageReceivedBody = {
      type: "message.received",
      id: seen.id,
      received_at: msg.received_at.toISOString(),
      from,
      to: to.e164,
      text: msg.text ?? null,
      encoding: msg.encoding,
      parts: msg.parts,
      tenant: route.tenant ?? null,
      smpp: { peer: msg.peer, message_id: msg.smsc_message_id ?? msg.message_id, data_coding: msg.data_coding },
    };
    if (msg.binary !== undefined) body.binary = msg.binary.toString("base64");
    if (msg.partial) body.partial = true;
    if (auto !== undefined && auto.kind !== undefined) body.keyword = auto.kind;
    const target: DeliveryTarget = {};
    if (webhook !== undefined) target.webhook = webhook;
    withSecret(target, to.e164, sms.webhookSecret);
    if (smppTarget !== undefined) target.smpp = smppTarget;
    const job: DeliveryJob = { id: body.id, body, target, acceptedAt: this.now(), attempts: 0 };
    const ro = this.opts.receiptsOut;
    if ((msg.registered_delivery & 0x03) !== 0 && msg.peer_kind === "account" && ro?.isCarrierAccount(msg.peer)) job.receipt = receiptRequestOf(msg);
    let outcome: AcceptOutcome;
    try {
      // a message only for didgate itself (an opt-out word, a forward) is done once accepted
      outcome = webhook === undefined && smppTarget === undefined ? "accepted" : await this.opts.delivery.accept(job);
    } catch (err) {
      this.opts.logger.error({ err: errMessage(err), message_id: msg.message_id }, "delivery accept failed");
      outcome = "temporary";
    }
    seen.settle(outcome === "accepted");
    if (outcome === "accepted" && auto !== undefined) {
      auto.commit();
      if (webhook === undefined && smppTarget === undefined) this.onFinal(job, { delivered: true, target: "webhook" });
    } else auto?.release();
    if (outcome === "accepted") this.opts.activity?.touch(to.e164, "in");
    this.finish(msg, outcome, { did: to.e164, route_key: key, tenant: route.tenant, id: body.id });
    return { status: outcome };
  }

  /**
   * Delivery's onFinal hook: the submitter's receipt, when it asked for one. A message handed to an
   * outbound bind is not final there: the carrier's own receipt is relayed (onReceipt).
   */
  onFinal(job: DeliveryJob, outcome: FinalOutcome): void {
    const b = job.body;
    if (b.type === "message.outbound") return; // src/edge/sms-outbound.ts
    if (b.type === "message.received") {
      if (outcome.delivered && outcome.reply !== undefined) this.opts.keywords?.reply(b, outcome.reply);
      this.opts.records?.write("message", {
        id: job.id,
        direction: "inbound",
        peer: b.smpp.peer,
        from: b.from,
        to: b.to,
        tenant: b.tenant,
        parts: b.parts,
        encoding: b.encoding,
        target: job.target.webhook === undefined && job.target.smpp === undefined ? "didgate" : outcome.delivered ? outcome.target : job.target.webhook !== undefined ? "webhook" : "smpp",
        status: outcome.delivered ? "delivered" : "failed",
        reason: outcome.delivered ? null : outcome.reason,
        accepted_at: new Date(job.acceptedAt).toISOString(),
        final_at: new Date(this.now()).toISOString(),
        attempts: job.attempts,
        smpp_message_id: b.smpp.message_id,
      });
    }
    const req = job.receipt;
    const ro = this.opts.receiptsOut;
    if (req === undefined || ro === undefined) return;
    if (outcome.delivered && outcome.target === "smpp" && job.target.smpp !== undefined && ro.isBind(job.target.smpp)) return;
    const stat = outcome.delivered ? "DELIVRD" : outcome.reason.startsWith("max_age") ? "EXPIRED" : "UNDELIV";
    void ro.sender.send(req, stat, outcome.delivered ? "000" : "001");
  }

  private receiptBody(r: Receipt, plan: NumberPlan, tenant: string | null): MessageReceiptBody {
    return {
      type: "message.receipt",
      id: `rcpt_${randomUUID()}`,
      received_at: r.received_at.toISOString(),
      receipted_message_id: r.message_id,
      status: receiptStatus(r),
      error_code: r.err ?? null,
      from: displayAddress(r.source, plan),
      to: displayAddress(r.destination, plan),
      tenant,
      smpp: { peer: r.peer },
    };
  }

  /**
   * The SMPP layer's onReceipt handler. A receipt for a message this edge submitted through an
   * outbound bind goes to that message's webhook (correlated by the SMSC's message id); any other
   * to the webhook of the route of the number that sent the original message.
   */
  async onReceipt(r: Receipt): Promise<void> {
    const plan = this.plan(r.peer);
    // A receipt for a message this edge submitted: the route of that message's DID.
    // A receipt from a bind may overtake the submit_sm_resp of its message: wait a moment for it.
    let sent: SentMessage | "ambiguous" | "done" | undefined = r.peer_kind === "bind" ? await this.opts.receipts?.findOrWait(r.peer, r.message_id, 2000) : this.opts.receipts?.find(r.peer, r.message_id);
    // an app's message known here whose id another edge's message got too (Redis says so)
    if (sent !== undefined && sent !== "ambiguous" && sent.outbound === true && sent.relayed !== true && r.peer_kind === "bind" && (await this.opts.sharedClash?.(r.peer, r.message_id)) === true) sent = "ambiguous";
    if (sent === undefined && r.peer_kind === "bind" && this.opts.findOutbound !== undefined) sent = await this.opts.findOutbound(r.peer, r.message_id, r);
    if (sent === "done") {
      // a copy of a final receipt already handled (on any edge)
      this.metrics.receipts.inc({ peer: r.peer, outcome: "duplicate" });
      return;
    }
    if (sent === "ambiguous") {
      // the SMSC gave this id to two messages sent here (or ids that differ only in case): the
      // receipt is nobody's for sure, and relayed it could reach another tenant's app
      this.metrics.receipts.inc({ peer: r.peer, outcome: "ambiguous" });
      this.opts.logger.info({ peer: r.peer, receipted_message_id: r.message_id.slice(0, 65), stat: r.stat, result: "ambiguous" }, "sms receipt");
      return;
    }
    if (sent?.outbound === true && this.opts.onOutboundReceipt !== undefined) {
      const outcome = await this.opts.onOutboundReceipt(sent, r);
      this.metrics.receipts.inc({ peer: r.peer, outcome });
      this.opts.logger.info({ peer: r.peer, receipted_message_id: r.message_id, message_id: sent.id, stat: r.stat, result: outcome }, "sms receipt");
      return;
    }
    let did = sent?.did;
    let route = did === undefined ? undefined : this.smsRoute(did);
    if (sent === undefined) {
      // Otherwise by number: a receipt travels back, its destination sent the original message.
      for (const a of [r.destination, r.source]) {
        const n = smppAddressToE164(a, plan);
        if (!n.ok) continue;
        route = this.smsRoute(n.e164);
        if (route !== undefined) {
          did = n.e164;
          break;
        }
      }
    }
    const log = { peer: r.peer, receipted_message_id: r.message_id, message_id: sent?.id, did, stat: r.stat };
    // The original submitter asked for a receipt: relay the carrier's final one, with its own ids.
    let relayed = false;
    const ro = this.opts.receiptsOut;
    if (sent?.receipt !== undefined && r.final && !sent.relayed && ro !== undefined) {
      sent.relayed = true;
      relayed = true;
      void ro.sender.send(sent.receipt, normaliseStat(r.stat), r.err ?? (r.delivered ? "000" : "001"));
    }
    const webhook = route?.sms?.webhook;
    if (route === undefined || webhook === undefined) {
      const outcome = relayed ? "relayed" : sent === undefined ? "no_route" : "no_webhook";
      this.metrics.receipts.inc({ peer: r.peer, outcome });
      this.opts.logger.info({ ...log, result: outcome }, "sms receipt");
      return;
    }
    const body = this.receiptBody(r, plan, route.tenant ?? null);
    if (sent !== undefined) body.message_id = sent.id;
    const target: DeliveryTarget = { webhook };
    if (did !== undefined) withSecret(target, did, route.sms?.webhookSecret);
    const outcome = await this.opts.delivery.accept({ id: body.id, body, target, acceptedAt: this.now(), attempts: 0 }).catch(() => "temporary" as const);
    this.metrics.receipts.inc({ peer: r.peer, outcome });
    this.opts.logger.info({ ...log, result: outcome }, "sms receipt");
  }

  /** The route of a number if it routes SMS to a webhook (not gone). */
  private smsRoute(e164: string): Route | undefined {
    const d = decideSms(this.opts.store.current, e164, this.now(), this.opts.stateOf);
    return d.sms?.webhook !== undefined ? d.route! : undefined;
  }
}

const STATS: Record<string, string> = {
  DELIVRD: "delivered",
  EXPIRED: "expired",
  DELETED: "deleted",
  UNDELIV: "undeliverable",
  ACCEPTD: "accepted",
  UNKNOWN: "unknown",
  REJECTD: "rejected",
  ENROUTE: "enroute",
};

export function receiptStatus(r: Receipt): string {
  return STATS[r.stat.toUpperCase()] ?? (r.delivered ? "delivered" : "unknown");
}
