/**
 * What the edge hands to delivery: an accepted inbound message (or receipt), already routed.
 * The edge (src/edge/sms.ts) builds it from an SMPP PDU and a route decision; delivery gets it to
 * its destination (webhook, SMPP peer) or to the dead-letter stream.
 */

/** The webhook body of an inbound message (docs/delivery.md). */
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
  /** What didgate took the text for: an opt-out word (stop), opt-in (start), help, a route keyword. */
  keyword?: "stop" | "start" | "help" | "keyword";
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

/**
 * An outbound message an app submitted (src/edge/sms-outbound.ts): sent by SMPP through the binds
 * of `route`, in order. Never posted to a webhook.
 */
export interface MessageOutboundBody {
  type: "message.outbound";
  id: string;
  submitted_at: string;
  /** E.164 number of the tenant, or a listed alphanumeric sender / short code. */
  from: string;
  to: string;
  text: string | null;
  /** base64 of the payload when the message is binary. */
  binary?: string;
  data_coding?: number;
  /** As the carrier gets it: gsm7, ucs2, latin1 or binary. */
  encoding: string;
  /** Parts (segments) as concatenated SMS. */
  parts: number;
  tenant: string | null;
  /** The submitting app account (system_id). */
  account: string;
  /** Outbound bind names to try, in order (the outbound table's sms entry when accepted). */
  route: string[];
  /** Sent through the HTTP API: its status history is kept (GET /v1/messages/{id}). */
  track?: boolean;
  /** The API client's own reference, echoed in the status. */
  client_ref?: string;
  /** Where each status change is posted (signed `message.status`). */
  status_webhook?: string;
  /** Not sent before (ISO 8601; schedule_delivery_time): src/edge/sms-schedule.ts. */
  not_before?: string;
  /**
   * End of the message's validity (ISO 8601; the API's validity_s, the app's validity_period): no
   * send attempt after it, the message ends expired.
   */
  expires_at?: string;
  /** The app's PDU: didgate's id for it, and its addresses as given. */
  smpp?: { message_id: string; source: { addr: string; ton: number; npi: number }; destination: { addr: string; ton: number; npi: number } };
  /**
   * A message relayed through a masking session (src/edge/sms-masking.ts): `from` is the proxy
   * number, `to` the other party; the session, the party that sent it and the carrier account it
   * came from (for its record only, never sent on).
   */
  mask?: { session: string; sender: string; peer: string };
  /** The number whose opt-outs apply when `from` is a listed sender written as digits (E.164). */
  optout_from?: string;
  /** Sent although the recipient opted out (the confirmation of that opt-out): not checked again before the send. */
  optout_exempt?: boolean;
  /** Sent again after a crash left it in doubt and no receipt came during the hold (docs/sms.md "In doubt after a crash"). */
  possible_duplicate?: boolean;
}

/** The webhook body of a status change of a message sent through the API (its status_webhook). */
export interface MessageStatusBody {
  type: "message.status";
  /** The message's id (msg_…); the webhook-id is the id of this status change. */
  id: string;
  status: string;
  at: string;
  error_code: string | null;
  from: string;
  to: string;
  tenant: string | null;
  client_ref: string | null;
}

export type WebhookBody = MessageReceivedBody | MessageReceiptBody | MessageOutboundBody | MessageStatusBody;

/** Where a message goes. Both may be set: webhook first, then SMPP. */
export interface DeliveryTarget {
  webhook?: string;
  /**
   * Per-route webhook secret (whsec_…), else webhooks.secret. Held in memory only: a job written to
   * the spool keeps `secretRef` instead, and the secret is looked up again when it is delivered.
   */
  webhookSecret?: string;
  /** Where the secret comes from: the number whose route holds it, and a digest of the secret then. */
  secretRef?: SecretRef;
  /** system_id of an app ESME bound to didgate, or the name of an outbound bind. */
  smpp?: string;
}

/** A reference to a route's webhook secret (never the secret itself). */
export interface SecretRef {
  /** The number (E.164) whose route entry held the secret. */
  number: string;
  /** The first 16 hex digits of the secret's SHA-256: a different value means it was changed since. */
  version: string;
}

/**
 * A delivery receipt the submitter asked for (registered_delivery): who gets it and what it says.
 * Kept in the job (and so in the spool) until the message's final outcome.
 */
export interface ReceiptRequest {
  /** system_id of the account that submitted the message (bound to didgate's server). */
  peer: string;
  /** didgate's message ids the submitter got (one per PDU: each part of a long message has one). */
  ids: string[];
  /** registered_delivery bits 0-1: 1 any final outcome, 2 failure only, 3 success only. */
  when: number;
  /** The original source and destination (the receipt travels back: from destination to source). */
  source: { addr: string; ton: number; npi: number };
  destination: { addr: string; ton: number; npi: number };
  /** Epoch ms the message was submitted. */
  submitted_at: number;
  /** The start of the text, for the receipt's `text:` field. */
  text: string;
}

/** How a message accepted for delivery ended (the delivery layer's onFinal hook). */
export type FinalOutcome = { delivered: true; target: "webhook" | "smpp"; reply?: string } | { delivered: false; reason: string };

export interface DeliveryJob {
  /** Stable id: the webhook-id on every retry. */
  id: string;
  body: WebhookBody;
  target: DeliveryTarget;
  /** Epoch ms when the message was accepted (for max_age). */
  acceptedAt: number;
  /** Delivery attempts so far. */
  attempts: number;
  /** A delivery receipt to send to the submitter at the final outcome. */
  receipt?: ReceiptRequest;
  /** Set (not enumerable: never stored) by the spool on a job it read; see SpoolEntry. */
  spoolEntry?: SpoolEntry;
}

/**
 * The spool entry a job was read from. A forwarder that writes to the same Redis slot when the
 * carrier accepted may acknowledge the entry in that same script (XACK + XDEL, as the spool's ACK)
 * and answer `{ kind: "delivered", acked: true }`: the spool then does not acknowledge it again.
 */
export interface SpoolEntry {
  stream: string;
  group: string;
  id: string;
}

/** How an attempt ended. */
export type AttemptResult =
  /** reply: the text a webhook answered with for a message.received (`200 {"reply": "…"}`). */
  | { kind: "delivered"; reply?: string; acked?: boolean }
  | { kind: "retry"; reason: string; retryAfterMs?: number }
  | { kind: "dead"; reason: string };

/** What the SMPP service gets back from accept(): it decides the PDU's answer. */
export type AcceptOutcome = "accepted" | "temporary" | "permanent";
