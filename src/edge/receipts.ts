/**
 * Receipt correlation: when didgate submits a message through an outbound bind (a route's
 * `sms.smpp` naming a bind), the SMSC answers with its own message id and later sends a delivery
 * receipt carrying that id. The forwarder records (bind, SMSC id) → the original message; the SMS
 * edge looks receipts up here first, so the receipt reaches the webhook of the route of the
 * message's DID, with didgate's id of the message. Bounded (LRU with a TTL); in memory
 * per edge: a receipt that arrives at another edge, or after a restart, falls back to routing by
 * number.
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
}

export class ReceiptCorrelator {
  private readonly sent: LRUCache<string, SentMessage>;

  constructor(max = 200_000, ttlMs = 72 * 3600_000) {
    this.sent = new LRUCache({ max, ttl: ttlMs });
  }

  private static key(peer: string, smscId: string): string {
    return peer + "\u0000" + smscId.toLowerCase();
  }

  remember(peer: string, smscId: string, m: SentMessage): void {
    if (smscId !== "") this.sent.set(ReceiptCorrelator.key(peer, smscId), m);
  }

  /** The message a receipt from `peer` about `smscId` is for, if this edge sent it. */
  find(peer: string, smscId: string): SentMessage | undefined {
    return this.sent.get(ReceiptCorrelator.key(peer, smscId));
  }

  get size(): number {
    return this.sent.size;
  }
}
