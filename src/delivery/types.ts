/**
 * What the edge hands to delivery: an accepted inbound message (or receipt), already routed.
 * The edge (src/edge/sms.ts) builds it from an SMPP PDU and a route decision; delivery gets it to
 * its destination (webhook, SMPP peer) or to the dead-letter stream.
 */

/** The webhook body of an inbound message (contract section 6). */
export interface MessageReceivedBody {
  type: "message.received";
  id: string;
  received_at: string;
  from: string;
  to: string;
  text: string | null;
  /** base64 of the payload when the message is binary. */
  binary?: string;
  encoding: string;
  parts: number;
  partial?: boolean;
  tenant: string | null;
  smpp: { peer: string; message_id: string; data_coding?: number };
}

/** The webhook body of a delivery receipt. */
export interface MessageReceiptBody {
  type: "message.receipt";
  id: string;
  received_at: string;
  /** The message id the receipt is about (as the SMSC gave it). */
  receipted_message_id: string;
  /** didgate's id of that message, when this edge submitted it (correlated receipt). */
  message_id?: string;
  /** Normalised state: delivered, expired, deleted, undeliverable, accepted, unknown, rejected, enroute. */
  status: string;
  error_code: string | null;
  from: string | null;
  to: string | null;
  tenant: string | null;
  smpp: { peer: string };
}

export type WebhookBody = MessageReceivedBody | MessageReceiptBody;

/** Where a message goes. Both may be set: webhook first, then SMPP. */
export interface DeliveryTarget {
  webhook?: string;
  /** Per-route webhook secret (whsec_…), else webhooks.secret. */
  webhookSecret?: string;
  /** system_id of an app ESME bound to didgate, or the name of an outbound bind. */
  smpp?: string;
}

export interface DeliveryJob {
  /** Stable id: the webhook-id on every retry. */
  id: string;
  body: WebhookBody;
  target: DeliveryTarget;
  /** Epoch ms when the message was accepted (for max_age). */
  acceptedAt: number;
  /** Delivery attempts so far. */
  attempts: number;
}

/** How an attempt ended. */
export type AttemptResult =
  | { kind: "delivered" }
  | { kind: "retry"; reason: string; retryAfterMs?: number }
  | { kind: "dead"; reason: string };

/** What the SMPP edge gets back from accept(): it decides the PDU's answer. */
export type AcceptOutcome = "accepted" | "temporary" | "permanent";
