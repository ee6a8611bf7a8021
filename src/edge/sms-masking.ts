/**
 * Messages through a masking session (docs/masking.md): an inbound message (from a carrier) to a
 * pool number, sent by a party of a live session on that number, goes to the other party with the
 * proxy number as sender, through the outbound SMS path (src/edge/sms-outbound.ts: the outbound
 * table's `sms` names, outbound binds, the spool). The same session lookup and time bound as a
 * call (src/edge/masking.ts).
 *
 * The answer to the carrier's PDU:
 *   sender is a party, queued on the outbound path (spooled with Redis) → accepted (ESME_ROK)
 *   the session store fails or does not answer in time → temporary (the carrier retries; never
 *                                                          the number's own route by mistake)
 *   sender is not a party (a third party, an alphanumeric sender, an expired or deleted session):
 *     the number has an exact route entry → null: the inbound path routes it (its webhook)
 *     otherwise                           → invalid_destination (ESME_RINVDSTADR)
 *   sender is itself a pool number (a session whose party is a proxy number: the message came
 *   back; relayed, it would go round for ever)  → permanent, not relayed
 *   no outbound sms route to the other party → invalid_destination
 *   the other party opted out of the proxy number, or the text cannot be sent → permanent
 *   not queued (spool down)                → temporary
 *   the sender relayed RELAYS_PER_WINDOW messages through the number in the window → temporary
 *
 * A long message is relayed whole: the SMPP layer reassembles its parts before the edge sees it,
 * and the outbound path splits it again for the other party's carrier. A long message whose parts
 * never all came (reassembly timed out; the carrier had its ESME_ROK for each part) is relayed with
 * the parts that came, rather than lost.
 */
import type { Logger } from "pino";
import type { SessionStore, MaskRoute } from "../masking/sessions.js";
import type { MaskingMetrics } from "../masking/metrics.js";
import type { ActivityRecorder } from "../records/activity.js";
import type { RecordWriter } from "../records/writer.js";
import type { NumberPlan } from "../routing/number.js";
import { match, stateField } from "../routing/decide.js";
import type { Route } from "../routing/route.js";
import type { RouteStore } from "../routing/table.js";
import type { AcceptResult, InboundSms } from "../smpp/types.js";
import { errMessage } from "../util/errors.js";
import { WindowCounts } from "../util/window-counts.js";
import { lookupSession, MASK_LOOKUP_TIMEOUT_MS } from "./masking.js";
import { smppAddressToE164, type SmsOutcome } from "./sms.js";
import type { SmsOutbound } from "./sms-outbound.js";
import type { MessageIds } from "./sms-dedup.js";
import { receiptRequestOf } from "./sms-receipts.js";

/** What happened to a message to a pool number (closed set: `result` of didgate_masking_routed_total{kind="message"}). */
export type SmsMaskResult = "routed" | "own_route" | "no_session" | "no_outbound" | "store_error" | "refused" | "not_queued" | "loop" | "rate_limited";

/**
 * Messages one party sends through one proxy number, at most RELAYS_PER_WINDOW per RELAY_WINDOW_MS;
 * over it the carrier gets a temporary failure (it sends the message again later: nothing is lost).
 * Two parties that answer each other automatically (two auto-replies, an echo service) would
 * otherwise relay for ever, each turn a paid message; a person typing does not come near it.
 */
export const RELAYS_PER_WINDOW = 30;
const RELAY_WINDOW_MS = 60_000;
const RELAY_PAIRS_MAX = 100_000;

/** The answer for the carrier's PDU and the inbound outcome (didgate_sms_inbound_total). */
export interface MaskedSmsAnswer {
  status: AcceptResult["status"];
  outcome: SmsOutcome;
}

export interface SmsMaskingOptions {
  store: SessionStore;
  routes: RouteStore<Route>;
  outbound: Pick<SmsOutbound, "queueMasked">;
  /** Is this peer a carrier account bound to didgate's server (only those get receipts back)? */
  isCarrierAccount: (peer: string) => boolean;
  metrics?: MaskingMetrics;
  records?: RecordWriter;
  activity?: ActivityRecorder;
  logger: Logger;
  now: () => number;
  timeoutMs?: number;
}

export class SmsMasking {
  /** "proxy sender" -> messages relayed in the current window (the entry expires with its window). */
  private readonly relayed = new WindowCounts(RELAY_WINDOW_MS, RELAY_PAIRS_MAX);

  constructor(private readonly o: SmsMaskingOptions) {}

  /**
   * A message from the carrier peer to `to` (E.164): null when `to` is not a pool number, or the
   * sender is not a party and the number has its own route (the inbound path goes on); otherwise
   * the answer. `ids` keeps an SMSC's retry of an accepted message from being relayed twice.
   */
  async onMessage(msg: InboundSms, to: string, plan: NumberPlan, ids: MessageIds): Promise<MaskedSmsAnswer | null> {
    const store = this.o.store;
    if (!store.isPoolNumber(to)) return null;
    const from = smppAddressToE164(msg.source, plan);
    if (from.ok && store.isPoolNumber(from.e164)) {
      this.record(msg, to, "loop");
      return this.answer(msg, to, "loop", "permanent", "permanent");
    }
    let r: MaskRoute | null = null;
    if (from.ok) {
      try {
        r = await lookupSession(store, to, from.e164, this.o.timeoutMs ?? MASK_LOOKUP_TIMEOUT_MS);
      } catch (err) {
        this.o.logger.warn({ peer: msg.peer, did: to, err: errMessage(err) }, "masking session store did not answer; message declined with a temporary failure");
        return this.answer(msg, to, "store_error", "temporary", "temporary");
      }
    }
    if (r === null) {
      if (this.ownRoute(to)) {
        this.count("own_route");
        return null;
      }
      this.record(msg, to, "no_session");
      return this.answer(msg, to, "no_session", "invalid_destination", "no_route");
    }
    const seen = ids.idFor(msg);
    if (seen.duplicate && seen.accepted) return this.answer(msg, to, "routed", "accepted", "duplicate", { session: r.id, id: seen.id });
    // its place in the window is taken now (messages arrive together) and given back if not queued
    const giveBack = this.relayed.take(to + " " + (from.ok ? from.e164 : msg.source.addr), RELAYS_PER_WINDOW);
    if (giveBack === null) return this.answer(msg, to, "rate_limited", "temporary", "temporary", { session: r.id });
    const receipt = (msg.registered_delivery & 0x03) !== 0 && msg.peer_kind === "account" && this.o.isCarrierAccount(msg.peer) ? receiptRequestOf(msg) : undefined;
    let outcome;
    try {
      outcome = await this.o.outbound.queueMasked({ id: seen.id, proxy: to, to: r.other, tenant: store.tenantOf(to) ?? null, msg, session: r.id, sender: from.ok ? from.e164 : msg.source.addr, ...(receipt !== undefined ? { receipt } : {}) });
    } catch (err) {
      this.o.logger.error({ did: to, session: r.id, err: errMessage(err) }, "masked message not queued");
      outcome = "temporary" as const;
    }
    seen.settle(outcome === "accepted");
    if (outcome !== "accepted") giveBack();
    const fields = { session: r.id, id: seen.id };
    switch (outcome) {
      case "accepted":
        this.o.activity?.touch(to, "in");
        return this.answer(msg, to, "routed", "accepted", "accepted", fields);
      case "no_route":
      case "invalid_number":
        return this.answer(msg, to, "no_outbound", "invalid_destination", "no_route", fields);
      case "opted_out":
      case "permanent":
      case "invalid_source":
        return this.answer(msg, to, "refused", "permanent", "permanent", fields);
      default:
        return this.answer(msg, to, "not_queued", "temporary", "temporary", fields);
    }
  }

  /** The record of a message refused before any session was found. */
  private record(msg: InboundSms, to: string, reason: "no_session" | "loop"): void {
    this.o.records?.write("message", {
      id: `msg_${msg.message_id}`,
      direction: "inbound",
      peer: msg.peer,
      from: msg.source.addr,
      to,
      tenant: null,
      parts: msg.parts,
      status: "rejected",
      reason,
      accepted_at: null,
      final_at: new Date(this.o.now()).toISOString(),
      smpp_message_id: msg.message_id,
    });
  }

  /** The number's own route (an exact entry, not gone) for those outside its sessions. */
  private ownRoute(n: string): boolean {
    // by its state field: the lifecycle dates are not applied here (the time is not read)
    const m = match(this.o.routes.current, n, 0, stateField);
    return m.outcome === "routed" && m.kind === "exact";
  }

  private count(result: SmsMaskResult): void {
    this.o.metrics?.routed.inc({ kind: "message", result });
  }

  private answer(msg: InboundSms, did: string, result: SmsMaskResult, status: AcceptResult["status"], outcome: SmsOutcome, fields: Record<string, unknown> = {}): MaskedSmsAnswer {
    this.count(result);
    // the log names the proxy number and the session, not the other party
    this.o.logger[status === "accepted" || status === "invalid_destination" ? "info" : "warn"]({ peer: msg.peer, command: msg.command, from: msg.source.addr, did, parts: msg.parts, message_id: msg.message_id, result, ...fields }, "sms masked");
    return { status, outcome };
  }
}
