/**
 * SMPP PDU codec: a hand-written decoder/encoder for the PDUs didgate speaks.
 *
 * decodePdu never throws: a malformed PDU becomes a PduError carrying the command_status that a
 * generic_nack (or the command's _resp) should carry. Unknown TLVs are kept in order.
 * The hot path (deliver_sm/submit_sm decode) uses Buffer.indexOf for C-strings, zero-copy views for
 * short_message and TLV values, no regex, and one monomorphic object shape (class Pdu).
 */
import { CMD, RESP_BIT, STATUS, TLV, isKnownCommand } from "./constants.js";

export interface Tlv {
  tag: number;
  value: Buffer;
}

const EMPTY = Buffer.alloc(0);
const NO_TLVS: readonly Tlv[] = Object.freeze([]) as readonly Tlv[];

export const HEADER_LENGTH = 16;
export const DEFAULT_MAX_PDU_LENGTH = 65536;

/** One decoded PDU. All fields exist on every instance (one hidden class); unused ones keep defaults. */
export class Pdu {
  command_id = 0;
  command_status = 0;
  sequence_number = 0;
  // bind / outbind
  system_id = "";
  password = "";
  system_type = "";
  interface_version = 0;
  addr_ton = 0;
  addr_npi = 0;
  address_range = "";
  // submit_sm / deliver_sm / data_sm
  service_type = "";
  source_addr_ton = 0;
  source_addr_npi = 0;
  source_addr = "";
  dest_addr_ton = 0;
  dest_addr_npi = 0;
  destination_addr = "";
  esm_class = 0;
  protocol_id = 0;
  priority_flag = 0;
  schedule_delivery_time = "";
  validity_period = "";
  registered_delivery = 0;
  replace_if_present_flag = 0;
  data_coding = 0;
  sm_default_msg_id = 0;
  short_message: Buffer = EMPTY;
  // *_sm_resp
  message_id = "";
  tlvs: readonly Tlv[] = NO_TLVS;
  /** Raw body for commands this codec knows by id but does not take apart (query_sm, …). */
  body: Buffer = EMPTY;

  constructor(command_id = 0, sequence_number = 0, command_status = 0) {
    this.command_id = command_id;
    this.sequence_number = sequence_number;
    this.command_status = command_status;
  }

  get isResponse(): boolean {
    return (this.command_id & RESP_BIT) !== 0;
  }

  /** First TLV with this tag, or undefined. */
  tlv(tag: number): Buffer | undefined {
    const t = this.tlvs;
    for (let i = 0; i < t.length; i++) if (t[i]!.tag === tag) return t[i]!.value;
    return undefined;
  }
}

/** A PDU that could not be decoded. `status` is what the answer should carry. */
export class PduError {
  constructor(
    readonly command_id: number,
    readonly sequence_number: number,
    readonly status: number,
    readonly reason: string,
  ) {}
}

// Maximum C-octet-string lengths including the terminating NUL. Addresses use the 5.0 / data_sm
// size (65) everywhere: SMSCs in the wild exceed the 3.4 limit of 21, and the limit here only
// guards memory, the buffer is bounded anyway.
const MAX_SYSTEM_ID = 16;
const MAX_PASSWORD = 9;
const MAX_SYSTEM_TYPE = 13;
const MAX_ADDRESS_RANGE = 41;
const MAX_SERVICE_TYPE = 6;
const MAX_ADDR = 65;
const MAX_TIME = 17;
const MAX_MESSAGE_ID = 65;

/**
 * Cursor-style reader state. A module-level object would be shared between instances of didgate in
 * one process; decoding is synchronous so it would be safe, but the rules say no module state, so the
 * cursor lives on a small per-call object that V8 keeps on the stack after escape analysis.
 */
class Reader {
  pos: number;
  status = 0;
  reason = "";
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  fail(status: number, reason: string): void {
    if (this.status === 0) {
      this.status = status;
      this.reason = reason;
    }
  }

  u8(status: number, what: string): number {
    if (this.status !== 0) return 0;
    if (this.pos >= this.end) {
      this.fail(status, what + " missing");
      return 0;
    }
    return this.buf[this.pos++]!;
  }

  cstr(max: number, status: number, what: string): string {
    if (this.status !== 0) return "";
    const buf = this.buf;
    const start = this.pos;
    if (start >= this.end) {
      this.fail(status, what + " missing");
      return "";
    }
    if (buf[start] === 0) {
      this.pos = start + 1;
      return "";
    }
    const limit = start + max < this.end ? start + max : this.end;
    let nul = start + 1;
    while (nul < limit && buf[nul] !== 0) nul++;
    if (nul >= limit) {
      this.fail(status, what + " not terminated within " + max + " octets");
      return "";
    }
    this.pos = nul + 1;
    return latin1(buf, start, nul);
  }

  tlvs(): readonly Tlv[] {
    if (this.status !== 0 || this.pos >= this.end) return NO_TLVS;
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    const out: Tlv[] = [];
    while (pos < end) {
      if (pos + 4 > end) {
        this.fail(STATUS.ESME_RINVTLVSTREAM, "truncated TLV header");
        return out;
      }
      const tag = (buf[pos]! << 8) | buf[pos + 1]!;
      const len = (buf[pos + 2]! << 8) | buf[pos + 3]!;
      pos += 4;
      if (pos + len > end) {
        this.fail(STATUS.ESME_RINVTLVSTREAM, "TLV 0x" + tag.toString(16) + " overruns the PDU");
        return out;
      }
      const expected = fixedTlvLength(tag);
      if (expected >= 0 && len !== expected) {
        this.fail(STATUS.ESME_RINVTLVLEN, "TLV 0x" + tag.toString(16) + " has length " + len);
        return out;
      }
      out.push({ tag, value: buf.subarray(pos, pos + len) });
      pos += len;
    }
    this.pos = pos;
    return out;
  }
}

type SliceFn = (this: Buffer, start: number, end: number) => string;
/** Buffer#latin1Slice (what toString("latin1") calls, minus its argument checks), if present. */
const LATIN1_SLICE = (Buffer.prototype as unknown as { latin1Slice?: SliceFn }).latin1Slice;

function latin1(buf: Buffer, start: number, end: number): string {
  return LATIN1_SLICE !== undefined ? LATIN1_SLICE.call(buf, start, end) : buf.toString("latin1", start, end);
}

/** Fixed lengths of the TLVs didgate interprets; -1 for variable or unknown (kept as they are). */
function fixedTlvLength(tag: number): number {
  switch (tag) {
    case TLV.sar_msg_ref_num:
    case TLV.source_port:
    case TLV.destination_port:
      return 2;
    case TLV.sar_total_segments:
    case TLV.sar_segment_seqnum:
    case TLV.sc_interface_version:
    case TLV.message_state:
    case TLV.payload_type:
    case TLV.more_messages_to_send:
    case TLV.ms_availability_status:
    case TLV.delivery_failure_reason:
    case TLV.congestion_state:
      return 1;
    case TLV.network_error_code:
      return 3;
    default:
      return -1;
  }
}

/** Commands whose body this codec does not take apart; it keeps them in `body`. */
function isOpaqueCommand(id: number): boolean {
  switch (id) {
    case CMD.query_sm:
    case CMD.query_sm_resp:
    case CMD.replace_sm:
    case CMD.replace_sm_resp:
    case CMD.cancel_sm:
    case CMD.cancel_sm_resp:
    case CMD.submit_multi:
    case CMD.submit_multi_resp:
    case CMD.broadcast_sm:
    case CMD.broadcast_sm_resp:
    case CMD.query_broadcast_sm:
    case CMD.query_broadcast_sm_resp:
    case CMD.cancel_broadcast_sm:
    case CMD.cancel_broadcast_sm_resp:
      return true;
    default:
      return false;
  }
}

/**
 * Decode one complete PDU occupying buf[start, start+command_length). The caller (the framer) has
 * checked 16 <= command_length <= max and that all bytes are present. Never throws.
 */
export function decodePdu(buf: Buffer, start: number, length: number): Pdu | PduError {
  if (length < HEADER_LENGTH || start + length > buf.length) {
    return new PduError(0, 0, STATUS.ESME_RINVCMDLEN, "command_length " + length);
  }
  const command_id = buf.readUInt32BE(start + 4);
  const command_status = buf.readUInt32BE(start + 8);
  const seq = buf.readUInt32BE(start + 12);
  if (!isKnownCommand(command_id)) {
    return new PduError(command_id, seq, STATUS.ESME_RINVCMDID, "unknown command_id");
  }
  const pdu = new Pdu(command_id, seq, command_status);
  const end = start + length;
  const r = new Reader(buf, start + HEADER_LENGTH, end);
  switch (command_id) {
    case CMD.submit_sm:
    case CMD.deliver_sm: {
      readMessageHead(r, pdu);
      pdu.protocol_id = r.u8(STATUS.ESME_RINVMSGLEN, "protocol_id");
      pdu.priority_flag = r.u8(STATUS.ESME_RINVPRTFLG, "priority_flag");
      pdu.schedule_delivery_time = r.cstr(MAX_TIME, STATUS.ESME_RINVSCHED, "schedule_delivery_time");
      pdu.validity_period = r.cstr(MAX_TIME, STATUS.ESME_RINVEXPIRY, "validity_period");
      pdu.registered_delivery = r.u8(STATUS.ESME_RINVREGDLVFLG, "registered_delivery");
      pdu.replace_if_present_flag = r.u8(STATUS.ESME_RINVREPFLAG, "replace_if_present_flag");
      pdu.data_coding = r.u8(STATUS.ESME_RINVMSGLEN, "data_coding");
      pdu.sm_default_msg_id = r.u8(STATUS.ESME_RINVDFTMSGID, "sm_default_msg_id");
      const smLength = r.u8(STATUS.ESME_RINVMSGLEN, "sm_length");
      if (r.status === 0) {
        if (r.pos + smLength > end) {
          r.fail(STATUS.ESME_RINVMSGLEN, "sm_length " + smLength + " overruns the PDU");
        } else {
          pdu.short_message = buf.subarray(r.pos, r.pos + smLength);
          r.pos += smLength;
        }
      }
      pdu.tlvs = r.tlvs();
      break;
    }
    case CMD.data_sm: {
      readMessageHead(r, pdu);
      pdu.registered_delivery = r.u8(STATUS.ESME_RINVREGDLVFLG, "registered_delivery");
      pdu.data_coding = r.u8(STATUS.ESME_RINVMSGLEN, "data_coding");
      pdu.tlvs = r.tlvs();
      break;
    }
    case CMD.submit_sm_resp:
    case CMD.deliver_sm_resp:
    case CMD.data_sm_resp:
      // An error response may carry no body at all (SMPP 3.4 4.4.2).
      if (r.pos < end) {
        pdu.message_id = r.cstr(MAX_MESSAGE_ID, STATUS.ESME_RINVMSGID, "message_id");
        pdu.tlvs = r.tlvs();
      }
      break;
    case CMD.bind_receiver:
    case CMD.bind_transmitter:
    case CMD.bind_transceiver:
      pdu.system_id = r.cstr(MAX_SYSTEM_ID, STATUS.ESME_RINVSYSID, "system_id");
      pdu.password = r.cstr(MAX_PASSWORD, STATUS.ESME_RINVPASWD, "password");
      pdu.system_type = r.cstr(MAX_SYSTEM_TYPE, STATUS.ESME_RINVSYSTYP, "system_type");
      pdu.interface_version = r.u8(STATUS.ESME_RBINDFAIL, "interface_version");
      pdu.addr_ton = r.u8(STATUS.ESME_RBINDFAIL, "addr_ton");
      pdu.addr_npi = r.u8(STATUS.ESME_RBINDFAIL, "addr_npi");
      pdu.address_range = r.cstr(MAX_ADDRESS_RANGE, STATUS.ESME_RBINDFAIL, "address_range");
      break;
    case CMD.bind_receiver_resp:
    case CMD.bind_transmitter_resp:
    case CMD.bind_transceiver_resp:
      if (r.pos < end) {
        pdu.system_id = r.cstr(MAX_SYSTEM_ID, STATUS.ESME_RINVSYSID, "system_id");
        pdu.tlvs = r.tlvs();
      }
      break;
    case CMD.outbind:
      pdu.system_id = r.cstr(MAX_SYSTEM_ID, STATUS.ESME_RINVSYSID, "system_id");
      pdu.password = r.cstr(MAX_PASSWORD, STATUS.ESME_RINVPASWD, "password");
      break;
    case CMD.alert_notification:
      pdu.source_addr_ton = r.u8(STATUS.ESME_RINVSRCTON, "source_addr_ton");
      pdu.source_addr_npi = r.u8(STATUS.ESME_RINVSRCNPI, "source_addr_npi");
      pdu.source_addr = r.cstr(MAX_ADDR, STATUS.ESME_RINVSRCADR, "source_addr");
      pdu.dest_addr_ton = r.u8(STATUS.ESME_RINVDSTTON, "esme_addr_ton");
      pdu.dest_addr_npi = r.u8(STATUS.ESME_RINVDSTNPI, "esme_addr_npi");
      pdu.destination_addr = r.cstr(MAX_ADDR, STATUS.ESME_RINVDSTADR, "esme_addr");
      pdu.tlvs = r.tlvs();
      break;
    case CMD.enquire_link:
    case CMD.enquire_link_resp:
    case CMD.unbind:
    case CMD.unbind_resp:
    case CMD.generic_nack:
      // Header only; tolerate (ignore) trailing bytes some stacks send.
      r.pos = end;
      break;
    default:
      if (isOpaqueCommand(command_id)) {
        pdu.body = buf.subarray(r.pos, end);
        r.pos = end;
      }
  }
  if (r.status !== 0) return new PduError(command_id, seq, r.status, r.reason);
  if (r.pos !== end) {
    return new PduError(command_id, seq, STATUS.ESME_RINVCMDLEN, "command_length disagrees with body");
  }
  return pdu;
}

// ---------------------------------------------------------------------------------------------
// Encoding

function cstrLen(s: string): number {
  return s.length + 1; // latin1/ascii: one octet per char
}

function tlvsLen(tlvs: readonly Tlv[]): number {
  let n = 0;
  for (let i = 0; i < tlvs.length; i++) n += 4 + tlvs[i]!.value.length;
  return n;
}

function bodyLength(p: Pdu): number {
  switch (p.command_id) {
    case CMD.submit_sm:
    case CMD.deliver_sm:
      return (
        cstrLen(p.service_type) + 2 + cstrLen(p.source_addr) + 2 + cstrLen(p.destination_addr) + 3 +
        cstrLen(p.schedule_delivery_time) + cstrLen(p.validity_period) + 5 + p.short_message.length +
        tlvsLen(p.tlvs)
      );
    case CMD.data_sm:
      return cstrLen(p.service_type) + 2 + cstrLen(p.source_addr) + 2 + cstrLen(p.destination_addr) + 3 + tlvsLen(p.tlvs);
    case CMD.submit_sm_resp:
    case CMD.data_sm_resp:
    case CMD.deliver_sm_resp:
      // Always a message_id C-string, empty (one NUL) in an error response: SMPP 3.4 4.4.2 lets an
      // error submit_sm_resp omit the body, but peers such as Kannel expect the field and warn.
      return cstrLen(p.command_status !== 0 ? "" : p.message_id) + tlvsLen(p.tlvs);
    case CMD.bind_receiver:
    case CMD.bind_transmitter:
    case CMD.bind_transceiver:
      return cstrLen(p.system_id) + cstrLen(p.password) + cstrLen(p.system_type) + 3 + cstrLen(p.address_range);
    case CMD.bind_receiver_resp:
    case CMD.bind_transmitter_resp:
    case CMD.bind_transceiver_resp:
      if (p.command_status !== 0) return 0;
      return cstrLen(p.system_id) + tlvsLen(p.tlvs);
    case CMD.outbind:
      return cstrLen(p.system_id) + cstrLen(p.password);
    case CMD.alert_notification:
      return 2 + cstrLen(p.source_addr) + 2 + cstrLen(p.destination_addr) + tlvsLen(p.tlvs);
    default:
      return p.body.length;
  }
}

function wcstr(buf: Buffer, pos: number, s: string): number {
  if (s.length > 0) buf.write(s, pos, s.length, "latin1");
  buf[pos + s.length] = 0;
  return pos + s.length + 1;
}

function wtlvs(buf: Buffer, pos: number, tlvs: readonly Tlv[]): number {
  for (let i = 0; i < tlvs.length; i++) {
    const t = tlvs[i]!;
    buf.writeUInt16BE(t.tag, pos);
    buf.writeUInt16BE(t.value.length, pos + 2);
    t.value.copy(buf, pos + 4);
    pos += 4 + t.value.length;
  }
  return pos;
}

/** Encode a PDU. Throws RangeError on values that cannot be encoded (a programming error). */
export function encodePdu(p: Pdu): Buffer {
  if (p.short_message.length > 255) throw new RangeError("short_message longer than 255 octets");
  const len = HEADER_LENGTH + bodyLength(p);
  const buf = Buffer.allocUnsafe(len);
  buf.writeUInt32BE(len, 0);
  buf.writeUInt32BE(p.command_id >>> 0, 4);
  buf.writeUInt32BE(p.command_status >>> 0, 8);
  buf.writeUInt32BE(p.sequence_number >>> 0, 12);
  let pos = HEADER_LENGTH;
  switch (p.command_id) {
    case CMD.submit_sm:
    case CMD.deliver_sm:
      pos = writeMessageHead(buf, pos, p);
      buf[pos++] = p.protocol_id;
      buf[pos++] = p.priority_flag;
      pos = wcstr(buf, pos, p.schedule_delivery_time);
      pos = wcstr(buf, pos, p.validity_period);
      buf[pos++] = p.registered_delivery;
      buf[pos++] = p.replace_if_present_flag;
      buf[pos++] = p.data_coding;
      buf[pos++] = p.sm_default_msg_id;
      buf[pos++] = p.short_message.length;
      p.short_message.copy(buf, pos);
      pos += p.short_message.length;
      pos = wtlvs(buf, pos, p.tlvs);
      break;
    case CMD.data_sm:
      pos = writeMessageHead(buf, pos, p);
      buf[pos++] = p.registered_delivery;
      buf[pos++] = p.data_coding;
      pos = wtlvs(buf, pos, p.tlvs);
      break;
    case CMD.submit_sm_resp:
    case CMD.data_sm_resp:
    case CMD.deliver_sm_resp:
      pos = wcstr(buf, pos, p.command_status !== 0 ? "" : p.message_id);
      pos = wtlvs(buf, pos, p.tlvs);
      break;
    case CMD.bind_receiver:
    case CMD.bind_transmitter:
    case CMD.bind_transceiver:
      pos = wcstr(buf, pos, p.system_id);
      pos = wcstr(buf, pos, p.password);
      pos = wcstr(buf, pos, p.system_type);
      buf[pos++] = p.interface_version;
      buf[pos++] = p.addr_ton;
      buf[pos++] = p.addr_npi;
      pos = wcstr(buf, pos, p.address_range);
      break;
    case CMD.bind_receiver_resp:
    case CMD.bind_transmitter_resp:
    case CMD.bind_transceiver_resp:
      if (len > HEADER_LENGTH) {
        pos = wcstr(buf, pos, p.system_id);
        pos = wtlvs(buf, pos, p.tlvs);
      }
      break;
    case CMD.outbind:
      pos = wcstr(buf, pos, p.system_id);
      pos = wcstr(buf, pos, p.password);
      break;
    case CMD.alert_notification:
      buf[pos++] = p.source_addr_ton;
      buf[pos++] = p.source_addr_npi;
      pos = wcstr(buf, pos, p.source_addr);
      buf[pos++] = p.dest_addr_ton;
      buf[pos++] = p.dest_addr_npi;
      pos = wcstr(buf, pos, p.destination_addr);
      pos = wtlvs(buf, pos, p.tlvs);
      break;
    default:
      p.body.copy(buf, pos);
      pos += p.body.length;
  }
  if (pos !== len) throw new RangeError("encoder length mismatch for command 0x" + p.command_id.toString(16));
  return buf;
}

/** A header-only PDU (enquire_link, unbind, generic_nack, error responses). No Pdu object needed. */
export function encodeHeader(command_id: number, status: number, seq: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_LENGTH);
  buf.writeUInt32BE(HEADER_LENGTH, 0);
  buf.writeUInt32BE(command_id >>> 0, 4);
  buf.writeUInt32BE(status >>> 0, 8);
  buf.writeUInt32BE(seq >>> 0, 12);
  return buf;
}

/**
 * submit_sm_resp / deliver_sm_resp / data_sm_resp without building a Pdu (the hot answer path).
 * An error response carries an empty message_id (one NUL octet), never a bare header: see bodyLength.
 */
export function encodeSmResp(command_id: number, status: number, seq: number, message_id: string): Buffer {
  if (status !== 0) message_id = "";
  const len = HEADER_LENGTH + message_id.length + 1;
  const buf = Buffer.allocUnsafe(len);
  buf.writeUInt32BE(len, 0);
  buf.writeUInt32BE(command_id >>> 0, 4);
  buf.writeUInt32BE(status >>> 0, 8);
  buf.writeUInt32BE(seq >>> 0, 12);
  wcstr(buf, HEADER_LENGTH, message_id);
  return buf;
}

/** Helpers to build TLV values. */
export function tlvU8(tag: number, v: number): Tlv {
  return { tag, value: Buffer.from([v & 0xff]) };
}
export function tlvU16(tag: number, v: number): Tlv {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(v & 0xffff, 0);
  return { tag, value: b };
}
export function tlvCString(tag: number, s: string): Tlv {
  const b = Buffer.alloc(s.length + 1);
  b.write(s, 0, "latin1");
  return { tag, value: b };
}

/** Read a TLV value as a C-string (tolerating a missing NUL, as many SMSCs send). */
export function tlvString(v: Buffer): string {
  let end = v.length;
  const nul = v.indexOf(0);
  if (nul >= 0) end = nul;
  return v.toString("latin1", 0, end);
}

/** service_type, source and destination addresses, esm_class: the head of submit_sm, deliver_sm and data_sm. */
function readMessageHead(r: Reader, pdu: Pdu): void {
  pdu.service_type = r.cstr(MAX_SERVICE_TYPE, STATUS.ESME_RINVSERTYP, "service_type");
  pdu.source_addr_ton = r.u8(STATUS.ESME_RINVSRCTON, "source_addr_ton");
  pdu.source_addr_npi = r.u8(STATUS.ESME_RINVSRCNPI, "source_addr_npi");
  pdu.source_addr = r.cstr(MAX_ADDR, STATUS.ESME_RINVSRCADR, "source_addr");
  pdu.dest_addr_ton = r.u8(STATUS.ESME_RINVDSTTON, "dest_addr_ton");
  pdu.dest_addr_npi = r.u8(STATUS.ESME_RINVDSTNPI, "dest_addr_npi");
  pdu.destination_addr = r.cstr(MAX_ADDR, STATUS.ESME_RINVDSTADR, "destination_addr");
  pdu.esm_class = r.u8(STATUS.ESME_RINVESMCLASS, "esm_class");
}

function writeMessageHead(buf: Buffer, pos: number, p: Pdu): number {
  pos = wcstr(buf, pos, p.service_type);
  buf[pos++] = p.source_addr_ton;
  buf[pos++] = p.source_addr_npi;
  pos = wcstr(buf, pos, p.source_addr);
  buf[pos++] = p.dest_addr_ton;
  buf[pos++] = p.dest_addr_npi;
  pos = wcstr(buf, pos, p.destination_addr);
  buf[pos++] = p.esm_class;
  return pos;
}
