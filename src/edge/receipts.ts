/**
 * Receipt correlation: when didgate submits a message through an outbound bind (a route's
 * `sms.smpp` naming a bind), the SMSC answers with its own message id and later sends a delivery
 * receipt carrying that id. The forwarder records (bind, SMSC id) → the original message; the SMS
 * edge looks receipts up here first, so the receipt reaches the webhook of the route of the
 * message's DID, with didgate's id of the message. Bounded (LRU with a TTL); in memory
 * per edge: a receipt that arrives at another edge, or after a restart, falls back to routing by
 * number.
 *
 * Ids are compared without case (an SMSC may write a hex id in another case in its receipt than
 * in its submit_sm_resp), but never at the price of a wrong match: ids that differ only in case
 * (an SMSC whose ids are base62) are told apart by their exact spelling, and an id given to two
 * messages (an SMSC that reuses ids, or an id that matches only by case) matches neither: its
 * receipt would otherwise reach the other message's sender, another tenant's app.
 */
import { LRUCache } from "lru-cache";
import type { ReceiptRequest } from "../delivery/types.js";

export interface SentMessage {
  /** didgate's id of the message (the webhook-id of its message.received). */
  id: string;
  /** The DID the message was for: its route's webhook gets the receipt. */
  did: string;
  /** The original submitter asked for a receipt: the carrier's final receipt is relayed to it. */
  receipt?: ReceiptRequest;
  /** Set once that receipt was relayed (a long message has one SMSC id per part). */
  relayed?: boolean;
  /** An app's outbound message (src/edge/sms-outbound.ts): its receipt goes back to the app, not to a webhook. */
  outbound?: boolean;
  /** The sender's own data about the message (sms-outbound: what its record needs). */
  data?: unknown;
}

/** The messages remembered under one id (without case): by exact spelling; null: given to two messages. */
type Slot = Map<string, SentMessage | null>;

/** What a receipt's id finds: its message, "ambiguous" (known, but for no one message), or nothing. */
export type Found = SentMessage | "ambiguous" | undefined;

export class ReceiptCorrelator {
  private readonly sent: LRUCache<string, Slot>;
  /** Receipts that came before their submit_sm_resp, waiting for remember() (bounded). */
  private readonly waiters = new Map<string, ((m: Found) => void)[]>();
  private waiting = 0;
  /** submit_sm in flight per bind (only then can a receipt come before its submit_sm_resp). */
  private readonly submitting = new Map<string, number>();

  constructor(max = 200_000, ttlMs = 72 * 3600_000) {
    this.sent = new LRUCache({ max, ttl: ttlMs });
  }

  private static key(peer: string, smscId: string): string {
    return peer + "\u0000" + smscId.toLowerCase();
  }

  remember(peer: string, smscId: string, m: SentMessage): void {
    if (smscId === "") return;
    const k = ReceiptCorrelator.key(peer, smscId);
    let slot = this.sent.get(k);
    if (slot === undefined) this.sent.set(k, (slot = new Map()));
    const had = slot.get(smscId);
    // the same id for another message still waiting for its final receipt: neither is matched by
    // it (a message whose final receipt came has let its id go: an SMSC that restarts its ids)
    slot.set(smscId, had === null || (had !== undefined && had.id !== m.id && had.relayed !== true) ? null : m);
    const w = this.waiters.get(k);
    if (w !== undefined) {
      this.waiters.delete(k);
      this.waiting -= w.length;
      for (const f of w) f(this.pick(slot, smscId));
    }
  }

  /** The message of `smscId` in its slot: by exact spelling, else the one message of another case; "ambiguous" when no one message. */
  private pick(slot: Slot, smscId: string): SentMessage | "ambiguous" {
    const exact = slot.get(smscId);
    const m = exact !== undefined ? exact : slot.size === 1 ? slot.values().next().value : null;
    return m ?? "ambiguous";
  }

  /** A submit through `peer` starts / ends (see find's early receipts). */
  submitStart(peer: string): void {
    this.submitting.set(peer, (this.submitting.get(peer) ?? 0) + 1);
  }

  submitEnd(peer: string): void {
    const n = (this.submitting.get(peer) ?? 1) - 1;
    if (n <= 0) this.submitting.delete(peer);
    else this.submitting.set(peer, n);
  }

  /**
   * The message a receipt is for; when it is not known yet but a submit through that peer is in
   * flight, the receipt may have overtaken its submit_sm_resp: wait up to `ms` for it.
   */
  async findOrWait(peer: string, smscId: string, ms: number, max = 10_000): Promise<Found> {
    const m = this.find(peer, smscId);
    if (m !== undefined || smscId === "" || (this.submitting.get(peer) ?? 0) === 0 || this.waiting >= max) return m;
    const k = ReceiptCorrelator.key(peer, smscId);
    return new Promise((resolve) => {
      let list = this.waiters.get(k);
      if (list === undefined) this.waiters.set(k, (list = []));
      this.waiting++;
      const done = (v: Found): void => {
        clearTimeout(t);
        resolve(v);
      };
      const t = setTimeout(() => {
        const l = this.waiters.get(k);
        const i = l?.indexOf(done) ?? -1;
        if (l !== undefined && i >= 0) {
          l.splice(i, 1);
          this.waiting--;
          if (l.length === 0) this.waiters.delete(k);
        }
        resolve(undefined);
      }, ms);
      list.push(done);
    });
  }

  /** The message a receipt from `peer` about `smscId` is for, if this edge sent it ("ambiguous": the id is known here for no one message). */
  find(peer: string, smscId: string): Found {
    const slot = this.sent.get(ReceiptCorrelator.key(peer, smscId));
    return slot === undefined ? undefined : this.pick(slot, smscId);
  }

  get size(): number {
    return this.sent.size;
  }
}
