/** Building message PDUs for sending, and classifying the answers. */
import { CMD, DEFAULT_TEMPORARY_STATUSES, ESM_UDHI, STATUS, TLV } from "./constants.js";
import { Pdu, tlvU16, tlvU8 } from "./codec.js";
import { encodeText, splitSegments, type EncodedText } from "./charset.js";
import type { OutboundSms, PeerOptions, SendResult } from "./types.js";
import { chooseNational, splitNationalSeptets, ucs2Parts, type NationalChoice } from "./national.js";

interface SessionErrorLike {
  code?: unknown;
}

const MAX_SINGLE_GSM7 = 160;
const MAX_SINGLE_OCTETS = 140;
const MAX_PART_GSM7 = 153;
const MAX_PART_OCTETS = 134;

/**
 * Build the PDUs (one, or concatenated parts) that carry `msg` as `command_id`. A text too long for
 * one short_message goes as `long` says (else `peerDefault`, else "payload"): "udh" parts carry the
 * 3GPP TS 23.040 9.2.3.24.1 IE (8-bit reference, `reference & 0xff`), "sar" parts carry
 * sar_msg_ref_num (`reference & 0xffff`), sar_total_segments and sar_segment_seqnum.
 */
export function buildMessagePdus(
  command_id: number,
  msg: OutboundSms,
  reference: number,
  peerDefault?: "payload" | "udh" | "sar",
  national?: { languages: readonly number[] | undefined; saved?: (parts: number) => void },
): Pdu[] {
  let enc: EncodedText;
  if (msg.binary !== undefined) {
    enc = { data_coding: msg.data_coding ?? 0x04, encoding: "binary", bytes: msg.binary };
  } else {
    enc = encodeText(msg.text ?? "", msg.encoding);
    if (msg.data_coding !== undefined) enc.data_coding = msg.data_coding;
  }
  const langs = national?.languages;
  if (enc.encoding === "ucs2" && msg.encoding === undefined && msg.data_coding === undefined && langs !== undefined && langs.length > 0) {
    const choice = chooseNational(msg.text ?? "", langs);
    if (choice !== null) {
      let units = 0;
      for (const ch of msg.text ?? "") units += ch.length;
      national?.saved?.(ucs2Parts(units) - choice.parts);
      return nationalPdus(command_id, msg, reference, choice);
    }
  }
  const single = enc.encoding === "gsm7" ? MAX_SINGLE_GSM7 : MAX_SINGLE_OCTETS;
  const base = (): Pdu => messagePdu(command_id, msg, enc.data_coding);
  if (enc.bytes.length <= single) {
    const p = base();
    p.short_message = enc.bytes;
    if (msg.tlvs !== undefined) p.tlvs = msg.tlvs;
    return [p];
  }
  const long = msg.long ?? peerDefault ?? "payload";
  if (long === "payload") {
    const p = base();
    p.tlvs = [...(msg.tlvs ?? []), { tag: TLV.message_payload, value: enc.bytes }];
    return [p];
  }
  const segs = splitSegments(enc, enc.encoding === "gsm7" ? MAX_PART_GSM7 : MAX_PART_OCTETS);
  if (segs.length > 255) throw new RangeError("message needs more than 255 parts");
  const out: Pdu[] = [];
  for (let i = 0; i < segs.length; i++) {
    const p = base();
    if (long === "sar") {
      p.short_message = segs[i]!;
      p.tlvs = [
        ...(msg.tlvs ?? []),
        tlvU16(TLV.sar_msg_ref_num, reference & 0xffff),
        tlvU8(TLV.sar_total_segments, segs.length),
        tlvU8(TLV.sar_segment_seqnum, i + 1),
      ];
    } else {
      p.esm_class |= ESM_UDHI;
      const udh = Buffer.from([0x05, 0x00, 0x03, reference & 0xff, segs.length, i + 1]);
      p.short_message = Buffer.concat([udh, segs[i]!]);
      if (msg.tlvs !== undefined) p.tlvs = msg.tlvs;
    }
    out.push(p);
  }
  return out;
}

/** A message PDU with msg's addresses, service type, esm_class, protocol_id and registered_delivery. */
function messagePdu(command_id: number, msg: OutboundSms, data_coding: number): Pdu {
  const p = new Pdu(command_id);
  p.service_type = msg.service_type ?? "";
  p.source_addr = msg.source.addr;
  p.source_addr_ton = msg.source.ton;
  p.source_addr_npi = msg.source.npi;
  p.destination_addr = msg.destination.addr;
  p.dest_addr_ton = msg.destination.ton;
  p.dest_addr_npi = msg.destination.npi;
  p.esm_class = msg.esm_class ?? 0;
  p.protocol_id = msg.protocol_id ?? 0;
  p.registered_delivery = msg.registered_delivery ?? 0;
  if (command_id !== CMD.deliver_sm) p.validity_period = msg.validity_period ?? "";
  p.data_coding = data_coding;
  return p;
}

/**
 * A text in GSM 7-bit through national shift tables: every part carries the IEs (0x25 locking,
 * 0x24 single shift) in its UDH, after the concatenation IE when there are several parts; the
 * septets go unpacked (one per octet) with data_coding 0, and an escape is never split from the
 * character it announces.
 */
function nationalPdus(command_id: number, msg: OutboundSms, reference: number, c: NationalChoice): Pdu[] {
  const ies: number[] = [];
  if (c.locking !== 0) ies.push(0x25, 0x01, c.locking);
  if (c.single !== 0) ies.push(0x24, 0x01, c.single);
  const chunks = splitNationalSeptets(c.septets, ies.length);
  if (chunks.length > 255) throw new RangeError("message needs more than 255 parts");
  return chunks.map((chunk, i) => {
    const p = messagePdu(command_id, msg, 0x00);
    p.esm_class |= ESM_UDHI;
    const concat = chunks.length > 1 ? [0x00, 0x03, reference & 0xff, chunks.length, i + 1] : [];
    const udh = [concat.length + ies.length, ...concat, ...ies];
    p.short_message = Buffer.concat([Buffer.from(udh), chunk]);
    if (msg.tlvs !== undefined) p.tlvs = msg.tlvs;
    return p;
  });
}

export function classify(status: number, peer: PeerOptions): "ok" | "temporary" | "permanent" {
  if (status === STATUS.ESME_ROK) return "ok";
  const temp = peer.temporary_statuses ?? DEFAULT_TEMPORARY_STATUSES;
  return temp.includes(status) ? "temporary" : "permanent";
}

/** Send every PDU in order on `request` and fold the answers into one SendResult. */
export async function sendAll(
  pdus: Pdu[],
  request: (p: Pdu) => Promise<Pdu>,
  peer: PeerOptions,
): Promise<SendResult> {
  const ids: string[] = [];
  let outcome: SendResult["outcome"] = "ok";
  let status = 0;
  for (const p of pdus) {
    let resp: Pdu;
    try {
      resp = await request(p);
    } catch (e) {
      const code = (e as SessionErrorLike).code;
      return { outcome: "temporary", message_ids: ids, error: typeof code === "string" ? code : "error" };
    }
    const st = resp.command_id === CMD.generic_nack ? resp.command_status || STATUS.ESME_RSYSERR : resp.command_status;
    const c = classify(st, peer);
    ids.push(resp.message_id);
    if (c !== "ok") {
      status = st;
      outcome = c;
      break; // the rest would be refused too; the caller retries the whole message
    }
  }
  return status === 0 ? { outcome, status: 0, message_ids: ids } : { outcome, status, message_ids: ids };
}
