/**
 * From a message PDU to its parts: user data (short_message or message_payload), UDH and SAR
 * concatenation info, text decoding per peer, and delivery receipt recognition/parsing.
 * Pure functions; nothing here throws on bad input.
 */
import { ESM_RECEIPT_BITS, ESM_UDHI, MESSAGE_STATE, STATUS, TLV } from "./constants.js";
import { tlvString, type Pdu } from "./codec.js";
import {
  gsm7Decode,
  gsm7Unpack,
  ia5Decode,
  latin1Decode,
  parseDataCoding,
  ucs2Decode,
  type DataCoding,
  type TextEncoding,
} from "./charset.js";
import type { PeerOptions, ReceiptKind } from "./types.js";
import { gsm7DecodeNational, isNationalCode } from "./national.js";

export interface ConcatInfo {
  ref: number;
  total: number;
  seq: number;
  /** udh8 (IEI 0x00), udh16 (IEI 0x08) or sar (TLVs). */
  kind: "udh8" | "udh16" | "sar";
}

export interface UserData {
  /** User data without the UDH. */
  payload: Buffer;
  /** The UDH including its length octet, or null. */
  udh: Buffer | null;
  concat: ConcatInfo | null;
  /** Fill bits before the first septet when GSM 7-bit data is packed after a UDH. */
  fillBits: number;
  /**
   * National language shift tables named in the UDH (IEs 0x25 locking, 0x24 single shift) as
   * `locking * 256 + single`, 0 for none: GSM 7-bit text decodes through them.
   */
  national: number;
}

/** The user data of a message PDU, or a command_status when its UDH is malformed. */
export function extractUserData(pdu: Pdu, ignoreUdhi = false): UserData | number {
  let ud = pdu.short_message;
  if (ud.length === 0) {
    const payload = pdu.tlv(TLV.message_payload);
    if (payload !== undefined) ud = payload;
  }
  let udh: Buffer | null = null;
  let concat: ConcatInfo | null = null;
  let payload = ud;
  let fillBits = 0;
  let national = 0;
  if ((pdu.esm_class & ESM_UDHI) !== 0 && !ignoreUdhi) {
    if (ud.length === 0) return STATUS.ESME_RINVESMCLASS;
    const udhl = ud[0]!;
    if (udhl + 1 > ud.length) return STATUS.ESME_RINVESMCLASS;
    udh = ud.subarray(0, udhl + 1);
    payload = ud.subarray(udhl + 1);
    fillBits = (7 - (((udhl + 1) * 8) % 7)) % 7;
    let pos = 1;
    while (pos < udhl + 1) {
      if (pos + 2 > udhl + 1) return STATUS.ESME_RINVESMCLASS;
      const iei = ud[pos]!;
      const len = ud[pos + 1]!;
      if (pos + 2 + len > udhl + 1) return STATUS.ESME_RINVESMCLASS;
      const v = pos + 2;
      if (iei === 0x00 && len === 3) {
        concat = { ref: ud[v]!, total: ud[v + 1]!, seq: ud[v + 2]!, kind: "udh8" };
      } else if (iei === 0x08 && len === 4) {
        concat = { ref: (ud[v]! << 8) | ud[v + 1]!, total: ud[v + 2]!, seq: ud[v + 3]!, kind: "udh16" };
      } else if ((iei === 0x24 || iei === 0x25) && len === 1 && isNationalCode(ud[v]!)) {
        national = iei === 0x25 ? (ud[v]! << 8) | (national & 0xff) : (national & 0xff00) | ud[v]!;
      }
      pos = v + len;
    }
  }
  if (concat === null) {
    const ref = pdu.tlv(TLV.sar_msg_ref_num);
    const total = pdu.tlv(TLV.sar_total_segments);
    const seq = pdu.tlv(TLV.sar_segment_seqnum);
    if (ref !== undefined && total !== undefined && seq !== undefined) {
      concat = { ref: (ref[0]! << 8) | ref[1]!, total: total[0]!, seq: seq[0]!, kind: "sar" };
    }
  }
  // Invalid numbering: deliver the part as a message of its own rather than lose it.
  if (concat !== null && (concat.total < 2 || concat.seq < 1 || concat.seq > concat.total)) concat = null;
  return { payload, udh, concat, fillBits, national };
}

/** Resolve data_coding 0 and the TS 23.038 groups to the encoding didgate reports. */
export function resolveEncoding(dcs: DataCoding, peer: PeerOptions): TextEncoding {
  switch (dcs.alphabet) {
    case "default":
      return peer.default_alphabet ?? "gsm7";
    case "gsm7":
      return "gsm7";
    case "ascii":
      return "ascii";
    case "latin1":
      return "latin1";
    case "ucs2":
      return "ucs2";
    default:
      return "binary";
  }
}

function highBitSet(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80) return true;
  return false;
}

/** One part's contribution before decoding: septets for GSM, octets otherwise. */
export function partUnits(encoding: TextEncoding, ud: UserData, peer: PeerOptions): Uint8Array {
  if (encoding !== "gsm7") return ud.payload;
  const packing = peer.gsm_packing ?? "auto";
  const packed = packing === "packed" || (packing === "auto" && highBitSet(ud.payload));
  if (!packed) return ud.payload;
  return gsm7Unpack(ud.payload, 0, ud.payload.length, ud.udh !== null ? ud.fillBits : 0);
}

/** Decode joined units (see partUnits) to text; binary encodings return undefined. `national`: see UserData. */
export function decodeUnits(encoding: TextEncoding, units: Uint8Array, national = 0): string | undefined {
  switch (encoding) {
    case "gsm7":
      return national === 0 ? gsm7Decode(units) : gsm7DecodeNational(units, national >> 8, national & 0xff);
    case "ucs2":
      return ucs2Decode(units);
    case "latin1":
      return latin1Decode(asBuffer(units));
    case "ascii":
      return ia5Decode(asBuffer(units));
    default:
      return undefined;
  }
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.length);
}

export function concatUnits(list: Uint8Array[]): Buffer {
  if (list.length === 1) return asBuffer(list[0]!);
  let n = 0;
  for (const u of list) n += u.length;
  const out = Buffer.allocUnsafe(n);
  let pos = 0;
  for (const u of list) {
    out.set(u, pos);
    pos += u.length;
  }
  return out;
}

export function decodeDataCoding(dc: number): DataCoding {
  return parseDataCoding(dc);
}

// ---------------------------------------------------------------------------------------------
// Receipts

export function isReceipt(esm_class: number): boolean {
  return (esm_class & ESM_RECEIPT_BITS) !== 0;
}

export function receiptKind(esm_class: number): ReceiptKind {
  if ((esm_class & 0x04) !== 0) return "smsc_receipt";
  if ((esm_class & 0x08) !== 0) return "sme_ack";
  return "intermediate";
}

export interface ReceiptText {
  id?: string;
  sub?: string;
  dlvrd?: string;
  submit_date?: string;
  done_date?: string;
  stat?: string;
  err?: string;
  text?: string;
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 32 : c;
}

/** Does s at i start with the lowercase ASCII word w (case-insensitive)? */
function startsWithCI(s: string, i: number, w: string): boolean {
  if (i + w.length > s.length) return false;
  for (let k = 0; k < w.length; k++) if (lower(s.charCodeAt(i + k)) !== w.charCodeAt(k)) return false;
  return true;
}

const RECEIPT_KEYS = ["id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text"] as const;
type ReceiptKey = (typeof RECEIPT_KEYS)[number];

/**
 * Parse `id:X sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:…`
 * (SMPP 3.4 Appendix B). Keys case-insensitive, in any order, missing ones allowed; `text:` runs to
 * the end. Not a regex: a small scanner.
 */
export function parseReceiptText(s: string): ReceiptText {
  const out: ReceiptText = {};
  let i = 0;
  const n = s.length;
  while (i < n) {
    while (i < n && s.charCodeAt(i) === 0x20) i++;
    if (i >= n) break;
    let key: ReceiptKey | null = null;
    for (const k of RECEIPT_KEYS) {
      if (startsWithCI(s, i, k) && s.charCodeAt(i + k.length) === 0x3a /* : */) {
        key = k;
        break;
      }
    }
    if (key === null) {
      // skip an unknown token
      while (i < n && s.charCodeAt(i) !== 0x20) i++;
      continue;
    }
    i += key.length + 1;
    let end: number;
    if (key === "text") end = n;
    else {
      end = i;
      while (end < n && s.charCodeAt(end) !== 0x20) end++;
    }
    const v = s.slice(i, end);
    switch (key) {
      case "id":
        out.id = v;
        break;
      case "sub":
        out.sub = v;
        break;
      case "dlvrd":
        out.dlvrd = v;
        break;
      case "submit date":
        out.submit_date = v;
        break;
      case "done date":
        out.done_date = v;
        break;
      case "stat":
        out.stat = v.toUpperCase();
        break;
      case "err":
        out.err = v;
        break;
      case "text":
        out.text = v;
        break;
    }
    i = end;
  }
  return out;
}

const STAT_FROM_STATE: Readonly<Record<number, string>> = {
  0: "SCHEDULED",
  1: "ENROUTE",
  2: "DELIVRD",
  3: "EXPIRED",
  4: "DELETED",
  5: "UNDELIV",
  6: "ACCEPTD",
  7: "UNKNOWN",
  8: "REJECTD",
  9: "SKIPPED",
};

const FINAL_STATS = new Set(["DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "REJECTD", "DELIVERED", "UNDELIVERABLE", "REJECTED", "SKIPPED"]);

export function statFromState(state: number | undefined): string | undefined {
  return state === undefined ? undefined : (STAT_FROM_STATE[state] ?? MESSAGE_STATE[state]);
}

export function isFinalStat(stat: string): boolean {
  return FINAL_STATS.has(stat);
}

function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function isHex(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) | 0x20;
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/**
 * Normalise a receipt text id to the form the peer uses in submit_sm_resp. Hex output is lowercase;
 * an id that does not parse in the declared format is returned unchanged.
 */
export function normaliseReceiptId(id: string, peer: PeerOptions): string {
  const from = peer.receipt_id_format ?? "as_is";
  const to = peer.message_id_format ?? "as_is";
  if (from === "as_is" || to === "as_is" || from === to) return id;
  if (from === "dec" && to === "hex" && isDigits(id)) return BigInt(id).toString(16);
  if (from === "hex" && to === "dec" && isHex(id)) return BigInt("0x" + id).toString(10);
  return id;
}

export { tlvString };
