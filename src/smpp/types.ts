/**
 * The SMPP layer's public types: what src/edge and src/app.ts see. The layer knows nothing of DIDs
 * or routes: it hands inbound messages and receipts to handlers and answers the peer with what the
 * handler's promise says.
 */
import type { Tlv } from "./codec.js";
import type { DataCoding, TextEncoding } from "./charset.js";

export type { Tlv } from "./codec.js";
export type { DataCoding, TextEncoding } from "./charset.js";

export interface SmsAddress {
  addr: string;
  ton: number;
  npi: number;
}

/** Options that can be set per peer: on a server account or on an outbound bind. */
export interface PeerOptions {
  /** command_status answered when the handler says "temporary" (default 0x64 ESME_RX_T_APPN). */
  temp_fail_status?: number;
  /** Statuses in this peer's answers to our PDUs that mean "retry later" (default 0x08, 0x14, 0x58, 0x64). */
  temporary_statuses?: number[];
  /** What data_coding 0 means for this peer (default gsm7). */
  default_alphabet?: "gsm7" | "latin1" | "ascii";
  /** How this peer sends GSM 7-bit user data: one septet per octet, packed, or detect (default auto). */
  gsm_packing?: "unpacked" | "packed" | "auto";
  /**
   * How this peer writes message ids in the receipt text (`id:`), and how it writes them in
   * submit_sm_resp. When they differ the text id is converted. Default both "as_is" (no conversion).
   */
  receipt_id_format?: "as_is" | "hex" | "dec";
  message_id_format?: "as_is" | "hex" | "dec";
  /** Our requests in flight per session (default from the SMPP config, 10). */
  window?: number;
  /** The peer's message PDUs in flight per session before ESME_RTHROTTLED (default from the SMPP config, 100). */
  window_in?: number;
  /** enquire_link interval in seconds (default from the SMPP config, 30). */
  enquire_link_s?: number;
  /**
   * How a text too long for one short_message goes to this peer: "payload" (default) one PDU with
   * message_payload; "udh" concatenated parts with an 8-bit reference UDH; "sar" parts with the
   * sar_* TLVs.
   */
  long_messages?: "payload" | "udh" | "sar";
  /**
   * National language shift tables (3GPP TS 23.038 6.2.1.2.4) this peer accepts, by language code
   * (1 Turkish, 2 Spanish, 3 Portuguese, …): a text that would need UCS-2 goes as GSM 7-bit through
   * them when that takes fewer parts. Off (empty) by default: not every carrier supports them.
   */
  national_language?: number[];
}

export interface SmppAccount extends PeerOptions {
  system_id: string;
  password: string;
  /** carrier: its deliver_sm/submit_sm are inbound messages; app: it receives deliver_sm from didgate. */
  role: "carrier" | "app";
  /** Allowed source addresses (IPs or CIDRs). Absent or empty: any. */
  sources?: string[];
  /** Most simultaneous binds for this account (default 8). */
  max_binds?: number;
  /** app accounts: its submit_sm/data_sm go to onMessage (outbound messages) instead of being refused. */
  may_submit?: boolean;
}

export interface SmppBindConfig extends PeerOptions {
  name: string;
  host: string;
  port: number;
  system_id: string;
  password: string;
  mode: "receiver" | "transceiver" | "transmitter";
  system_type?: string;
  addr_ton?: number;
  addr_npi?: number;
  address_range?: string;
  tls?: boolean;
  /** Verify the SMSC's certificate (default true). */
  tls_verify?: boolean;
  /** Extra CA certificate(s), PEM, for tls_verify. */
  tls_ca?: string | Buffer;
  /**
   * The SMSC sets this bind up: it connects to didgate's server and sends outbind with this bind's
   * system_id and password; didgate answers with bind_receiver on that connection. didgate does not
   * connect out (host and port are unused).
   */
  outbind?: boolean;
  /** Addresses (IPs or CIDRs) an outbind for this bind may come from. Absent or empty: any. */
  outbind_sources?: string[];
  /** Reconnect backoff bounds in seconds (default 1 and 60). */
  reconnect_min_s?: number;
  reconnect_max_s?: number;
  /** Outbound messages per second (each part counts); the SMPP layer does not enforce it (src/edge does). */
  tps?: number;
}

export interface SmppConfig {
  /** "host:port" for the server; absent: no server. Port 0 picks a free port (see SmppService.address()). */
  listen?: string;
  /** TLS for the server (PEM contents, not paths). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  accounts?: SmppAccount[];
  binds?: SmppBindConfig[];
  /** Largest command_length accepted (default 65536, so a full message_payload fits). */
  max_pdu_bytes?: number;
  /** Default window: our requests in flight per session, default 10. */
  window?: number;
  /** Default inbound window: the peer's message PDUs in flight per session, default 100. */
  window_in?: number;
  /** Seconds to wait for a response to our PDU (default 30). */
  response_timeout_s?: number;
  /** Default enquire_link interval (default 30). */
  enquire_link_s?: number;
  /** Seconds for onMessage/onReceipt to settle before answering temporary failure (default 10). */
  handler_timeout_s?: number;
  /** Seconds a new connection has to bind (default 10). */
  bind_timeout_s?: number;
  /** Seconds from a PDU's first byte to its last before the session is closed (default 5). */
  pdu_timeout_s?: number;
  /** Connections to the server at once (default 1000). */
  max_connections?: number;
  /** Connections at once from one address that is in no account's `sources` (default 10). */
  max_connections_per_source?: number;
  /** Of max_connections, how many only addresses in some account's `sources` may use (default 100). */
  reserved_connections?: number;
  /** Failed binds from one address before it is locked out (default 5 within 60 s, for 300 s). */
  lockout?: { max_failures?: number; window_s?: number; duration_s?: number };
  reassembly?: { timeout_s?: number; max_buffers?: number; max_buffers_per_peer?: number | undefined; max_bytes?: number };
}

export type InboundCommand = "deliver_sm" | "submit_sm" | "data_sm";

export interface InboundSms {
  /** Account system_id (server side) or bind name (outbound binds). */
  peer: string;
  peer_kind: "account" | "bind";
  command: InboundCommand;
  source: SmsAddress;
  destination: SmsAddress;
  /** The text, when the data_coding is a text alphabet. */
  text?: string;
  /** The user data (UDH removed), when the data_coding is binary or not understood. */
  binary?: Buffer;
  encoding: TextEncoding;
  /** The raw data_coding of the first part. */
  data_coding: number;
  dcs: DataCoding;
  esm_class: number;
  protocol_id: number;
  registered_delivery: number;
  service_type: string;
  /** Parts delivered. */
  parts: number;
  /** Parts the message announced (== parts unless partial). */
  total_parts: number;
  /** True when reassembly timed out or was evicted and only some parts are here. */
  partial: boolean;
  /** didgate's id for the message (also returned in submit_sm_resp / data_sm_resp). */
  message_id: string;
  /** The ids didgate returned for each part of a concatenated message (absent for one PDU). */
  part_ids?: string[];
  /** The SMSC's id, when it gave one (receipted_message_id on a non-receipt PDU). */
  smsc_message_id?: string;
  /** schedule_delivery_time and validity_period as the (first) PDU gave them, when not empty (src/smpp/time.ts reads them). */
  schedule_delivery_time?: string;
  validity_period?: string;
  /** When the first part arrived. */
  received_at: Date;
  /** TLVs of the first part (unknown ones included). */
  tlvs: Tlv[];
}

export type ReceiptKind = "smsc_receipt" | "sme_ack" | "intermediate";

export interface Receipt {
  peer: string;
  peer_kind: "account" | "bind";
  command: InboundCommand;
  kind: ReceiptKind;
  /** The id of the message this receipt is about (receipted_message_id TLV, else the text `id:`), normalised per peer. */
  message_id: string;
  /** The id exactly as the text carried it. */
  text_id?: string;
  /** Text `stat:` (DELIVRD, UNDELIV, …), else derived from message_state. */
  stat: string;
  /** message_state TLV (1 ENROUTE, 2 DELIVERED, …). */
  message_state?: number;
  /** True for final states (delivered, expired, deleted, undeliverable, rejected). */
  final: boolean;
  delivered: boolean;
  sub?: string;
  dlvrd?: string;
  submit_date?: string;
  done_date?: string;
  err?: string;
  /** network_error_code TLV: type and code. */
  network_error?: { type: number; code: number };
  /** The receipt text's `text:` field. */
  text?: string;
  /** Entire short_message / message_payload as text (Latin-1). */
  raw: string;
  source: SmsAddress;
  destination: SmsAddress;
  received_at: Date;
  tlvs: Tlv[];
}

export type AcceptResult =
  | { status: "accepted" }
  | { status: "temporary" }
  | { status: "permanent" }
  | { status: "invalid_destination" }
  /** The source address is not one the peer may send from (ESME_RINVSRCADR). */
  | { status: "invalid_source" }
  /** schedule_delivery_time not a time, or one didgate cannot hold the message until (ESME_RINVSCHED). */
  | { status: "invalid_schedule" }
  /** validity_period not a time, or already past (ESME_RINVEXPIRY). */
  | { status: "invalid_expiry" };

/**
 * Durable reassembly buffers (e.g. in Redis; src/delivery's RedisPartStore behind an adapter).
 * Parts are opaque strings chosen by the SMPP layer. `add` resolves once the part is stored, before
 * its PDU is answered. "complete" hands out every part in order (also when the part re-added is
 * already in a complete buffer that was never done(): the retry of a final part that was answered
 * with a temporary failure). "late": the buffer timed out and was swept already. `sweep` returns
 * buffers past their timeout (parts index seq-1, undefined where missing), leased to the caller;
 * the caller delivers them and calls done(key).
 */
export type DurablePartAdd = { kind: "stored" | "duplicate" | "full" | "late" } | { kind: "complete"; parts: string[] };

export interface DurablePartStore {
  add(key: string, total: number, seq: number, part: string): Promise<DurablePartAdd>;
  done(key: string): Promise<void>;
  /** The message add() answered "complete" for was not delivered (a temporary failure): it may complete again. */
  release?(key: string): void;
  sweep(limit?: number): Promise<{ key: string; total: number; parts: (string | undefined)[] }[]>;
}

export interface InboundHandlers {
  onMessage(msg: InboundSms): Promise<AcceptResult>;
  onReceipt(r: Receipt): Promise<void> | void;
}

/** A message didgate sends: deliver_sm to an app, or submit_sm through an outbound bind. */
export interface OutboundSms {
  source: SmsAddress;
  destination: SmsAddress;
  /** Text: encoded as GSM 03.38 when it fits, else UCS2 (or as `encoding` says). */
  text?: string;
  binary?: Buffer;
  encoding?: "gsm7" | "ucs2" | "latin1";
  /** data_coding for binary (default 0x04). */
  data_coding?: number;
  esm_class?: number;
  registered_delivery?: number;
  service_type?: string;
  protocol_id?: number;
  /** submit_sm only: validity_period (an SMPP time, src/smpp/time.ts). */
  validity_period?: string;
  tlvs?: Tlv[];
  /**
   * Too long for one short_message: "payload" sends one PDU with message_payload, "udh" sends
   * concatenated parts with an 8-bit reference, "sar" parts with sar_* TLVs (16-bit reference).
   * Default: the peer's long_messages, else "payload".
   */
  long?: "payload" | "udh" | "sar";
  /** Concatenation reference (8-bit for "udh", 16-bit for "sar"); keep it across retries so the receiver dedupes. */
  reference?: number;
}

export interface SendResult {
  /** ok: every PDU answered ESME_ROK. temporary: retry later. permanent: give up. */
  outcome: "ok" | "temporary" | "permanent";
  /** The last non-OK command_status, or 0. Absent when no answer came. */
  status?: number;
  /** message_id from each *_sm_resp. */
  message_ids: string[];
  /** Why there was no answer: not_bound, timeout, closed (after it went out), unsent (closed before), draining, window. */
  error?: string;
}

/** A delivery receipt didgate sends to a peer bound to its server (deliver_sm, esm_class 0x04). */
export interface OutboundReceipt {
  /** From the original destination back to the original source. */
  source: SmsAddress;
  destination: SmsAddress;
  /** The receipt text (`id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…`). */
  text: string;
  /** receipted_message_id TLV. */
  message_id: string;
  /** message_state TLV (SMPP 3.4 5.2.28). */
  message_state: number;
}
