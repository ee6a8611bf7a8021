/**
 * The decode stage of inbound message PDUs (deliver_sm / submit_sm / data_sm): one PDU to a
 * refusal, a delivery receipt, a whole message, or one part of a concatenated message. Pure: no
 * session, no handler, no state; reassembly and delivery are the caller's (inbound.ts).
 */
import { randomUUID } from "node:crypto";
import { CMD, STATUS, TLV } from "./constants.js";
import { type Pdu, type Tlv, tlvString } from "./codec.js";
import { parseDataCoding, type TextEncoding } from "./charset.js";
import {
  decodeUnits,
  extractUserData,
  isFinalStat,
  isReceipt,
  normaliseReceiptId,
  parseReceiptText,
  partUnits,
  receiptKind,
  resolveEncoding,
  statFromState,
  type ConcatInfo,
  type UserData,
} from "./message.js";
import type { InboundCommand, InboundSms, PeerOptions, Receipt, SmsAddress } from "./types.js";

export interface PeerContext {
  name: string;
  kind: "account" | "bind";
  options: PeerOptions;
}

/** One stored part of a concatenated message. */
export interface Part {
  seq: number;
  units: Uint8Array;
  encoding: TextEncoding;
  /** National shift tables of the part's UDH (UserData.national; 0: none). */
  national?: number;
  data_coding: number;
  esm_class: number;
  protocol_id: number;
  registered_delivery: number;
  service_type: string;
  command: InboundCommand;
  source: SmsAddress;
  destination: SmsAddress;
  tlvs: Tlv[];
  received_at: number;
  message_id: string;
  peer: PeerContext;
  schedule_delivery_time?: string;
  validity_period?: string;
}

/** What one inbound message PDU is. `reason` is a metric label (a closed set). */
export type DecodedPdu =
  | { kind: "refused"; status: number; reason: "payload_and_short_message" | "bad_udh" }
  | { kind: "receipt"; receipt: Receipt }
  | { kind: "single"; msg: InboundSms }
  | { kind: "part"; part: Part; concat: ConcatInfo };

/** Decodes one inbound message PDU from `peer`, received at `nowMs`. Never throws. */
export function decodeMessagePdu(pdu: Pdu, peer: PeerContext, nowMs: number): DecodedPdu {
  if (pdu.short_message.length > 0 && pdu.tlv(TLV.message_payload) !== undefined) {
    // SMPP 3.4 5.3.2.32: user data goes in short_message or in message_payload, never both
    // (sm_length must be 0 with message_payload). Which one the peer meant is a guess, so the
    // PDU is refused: ESME_RINVTLVVAL, the message_payload TLV is not valid in this PDU.
    return { kind: "refused", status: STATUS.ESME_RINVTLVVAL, reason: "payload_and_short_message" };
  }
  if (isReceipt(pdu.esm_class)) {
    // Some SMSCs send receipts with esm_class 0x44 (UDHI set) and a plain receipt text.
    const plain = looksLikeReceiptText(pdu.short_message.length > 0 ? pdu.short_message : pdu.tlv(TLV.message_payload));
    let rud = extractUserData(pdu, plain);
    if (typeof rud === "number") rud = extractUserData(pdu, true) as UserData;
    return { kind: "receipt", receipt: decodeReceipt(pdu, peer, rud, nowMs) };
  }
  const ud = extractUserData(pdu);
  if (typeof ud === "number") return { kind: "refused", status: ud, reason: "bad_udh" };
  const dcs = parseDataCoding(pdu.data_coding);
  let encoding = resolveEncoding(dcs, peer.options);
  // National shift IEs only have a meaning for the GSM alphabet: some peers (the npm smpp
  // package) send such text with data_coding 1, their name for GSM 03.38.
  if (ud.national !== 0 && encoding === "ascii") encoding = "gsm7";
  const units = partUnits(encoding, ud, peer.options);
  const message_id = randomUUID();
  if (ud.concat === null) {
    const msg: InboundSms = {
      peer: peer.name,
      peer_kind: peer.kind,
      command: commandOf(pdu.command_id),
      source: { addr: pdu.source_addr, ton: pdu.source_addr_ton, npi: pdu.source_addr_npi },
      destination: { addr: pdu.destination_addr, ton: pdu.dest_addr_ton, npi: pdu.dest_addr_npi },
      encoding,
      data_coding: pdu.data_coding,
      dcs,
      esm_class: pdu.esm_class,
      protocol_id: pdu.protocol_id,
      registered_delivery: pdu.registered_delivery,
      service_type: pdu.service_type,
      parts: 1,
      total_parts: 1,
      partial: false,
      message_id,
      received_at: new Date(nowMs),
      tlvs: copyTlvs(pdu.tlvs),
    };
    setBody(msg, encoding, units, true, ud.national);
    setTimes(msg, pdu);
    const smscId = pdu.tlv(TLV.receipted_message_id);
    if (smscId !== undefined) msg.smsc_message_id = tlvString(smscId);
    return { kind: "single", msg };
  }
  const c = ud.concat;
  const part: Part = {
    seq: c.seq,
    units: Uint8Array.from(units),
    encoding,
    ...(ud.national !== 0 ? { national: ud.national } : {}),
    data_coding: pdu.data_coding,
    esm_class: pdu.esm_class,
    protocol_id: pdu.protocol_id,
    registered_delivery: pdu.registered_delivery,
    service_type: pdu.service_type,
    command: commandOf(pdu.command_id),
    source: { addr: pdu.source_addr, ton: pdu.source_addr_ton, npi: pdu.source_addr_npi },
    destination: { addr: pdu.destination_addr, ton: pdu.dest_addr_ton, npi: pdu.dest_addr_npi },
    tlvs: copyTlvs(pdu.tlvs),
    received_at: nowMs,
    message_id,
    peer,
  };
  setTimes(part, pdu);
  return { kind: "part", part, concat: c };
}

function commandOf(id: number): InboundCommand {
  return id === CMD.submit_sm ? "submit_sm" : id === CMD.data_sm ? "data_sm" : "deliver_sm";
}

function copyTlvs(tlvs: readonly Tlv[]): Tlv[] {
  const out: Tlv[] = [];
  for (const t of tlvs) if (t.tag !== TLV.message_payload) out.push({ tag: t.tag, value: Buffer.from(t.value) });
  return out;
}

/** Sets the message's text, or its binary body when the units do not decode as text. */
export function setBody(msg: InboundSms, encoding: TextEncoding, units: Uint8Array, copy: boolean, national = 0): void {
  const text = decodeUnits(encoding, units, national);
  if (text !== undefined) msg.text = text;
  else msg.binary = copy ? Buffer.from(units) : Buffer.from(units.buffer, units.byteOffset, units.length);
}

/** Does the user data start with "id:" (any case)? Then a UDHI bit on a receipt is a lie. */
function looksLikeReceiptText(b: Buffer | undefined): boolean {
  return b !== undefined && b.length >= 3 && (b[0]! | 0x20) === 0x69 && (b[1]! | 0x20) === 0x64 && b[2] === 0x3a;
}

/** Longest carrier message id a receipt may name (the message_id of a submit_sm_resp: 65 octets with its NUL). */
const MAX_RECEIPT_ID = 64;
/** Receipt fields are the SMSC's words, copied into records, histories, webhooks and logs: bounded. */
const ERR_RE = /^[0-9A-Za-z]{1,10}$/;
const field = (v: string | undefined, max: number): string | undefined => (v !== undefined && v.length <= max ? v : undefined);

/**
 * A delivery receipt PDU (`ud`: its user data) as a Receipt. An id longer than any submit_sm_resp
 * can carry is no id (its receipt matches no message: it could not be one of ours), before any
 * conversion of its format; `err` that is not a short code is left out; the other fields are cut.
 */
function decodeReceipt(pdu: Pdu, peer: PeerContext, ud: UserData, nowMs: number): Receipt {
  const dcs = parseDataCoding(pdu.data_coding);
  const enc = resolveEncoding(dcs, peer.options);
  const raw = enc === "ucs2" || enc === "gsm7" ? (decodeUnits(enc, partUnits(enc, ud, peer.options)) ?? "") : ud.payload.toString("latin1");
  const t = parseReceiptText(raw);
  const stateTlv = pdu.tlv(TLV.message_state);
  const message_state = stateTlv !== undefined ? stateTlv[0] : undefined;
  const ridTlv = pdu.tlv(TLV.receipted_message_id);
  const rid = field(ridTlv !== undefined ? tlvString(ridTlv) : undefined, MAX_RECEIPT_ID);
  const tid = field(t.id, MAX_RECEIPT_ID);
  const stat = field(t.stat, 12) ?? statFromState(message_state) ?? "UNKNOWN";
  const r: Receipt = {
    peer: peer.name,
    peer_kind: peer.kind,
    command: commandOf(pdu.command_id),
    kind: receiptKind(pdu.esm_class),
    message_id: rid !== undefined && rid.length > 0 ? rid : tid !== undefined ? normaliseReceiptId(tid, peer.options) : "",
    stat,
    final: isFinalStat(stat) || (message_state !== undefined && message_state >= 2 && message_state <= 5) || message_state === 8,
    delivered: stat === "DELIVRD" || stat === "DELIVERED" || message_state === 2,
    raw,
    source: { addr: pdu.source_addr, ton: pdu.source_addr_ton, npi: pdu.source_addr_npi },
    destination: { addr: pdu.destination_addr, ton: pdu.dest_addr_ton, npi: pdu.dest_addr_npi },
    received_at: new Date(nowMs),
    tlvs: copyTlvs(pdu.tlvs),
  };
  if (message_state !== undefined) r.message_state = message_state;
  if (tid !== undefined) r.text_id = tid;
  const sub = field(t.sub, 10);
  if (sub !== undefined) r.sub = sub;
  const dlvrd = field(t.dlvrd, 10);
  if (dlvrd !== undefined) r.dlvrd = dlvrd;
  const sd = field(t.submit_date, 14);
  if (sd !== undefined) r.submit_date = sd;
  const dd = field(t.done_date, 14);
  if (dd !== undefined) r.done_date = dd;
  if (t.err !== undefined && ERR_RE.test(t.err)) r.err = t.err;
  // the text start: 20 characters by the format, some SMSCs give more
  if (t.text !== undefined) r.text = t.text.slice(0, 160);
  const nec = pdu.tlv(TLV.network_error_code);
  if (nec !== undefined && nec.length === 3) r.network_error = { type: nec[0]!, code: (nec[1]! << 8) | nec[2]! };
  return r;
}

/** Copy the non-empty time fields (schedule_delivery_time, validity_period) from `from` to `to`. */
export function setTimes(to: { schedule_delivery_time?: string; validity_period?: string }, from: { schedule_delivery_time?: string; validity_period?: string }): void {
  if (from.schedule_delivery_time) to.schedule_delivery_time = from.schedule_delivery_time;
  if (from.validity_period) to.validity_period = from.validity_period;
}
