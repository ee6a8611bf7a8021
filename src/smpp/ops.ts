/**
 * query_sm, cancel_sm and replace_sm (SMPP 3.4 4.8, 4.9, 4.10) from an app account about a message
 * it submitted: the request bodies taken apart, query_sm_resp built, and the interface the SMPP
 * server asks (docs/sms.md "Query, cancel, replace").
 */
import { CMD, RESP_BIT, STATUS } from "./constants.js";
import { HEADER_LENGTH } from "./codec.js";

/** message_state values (SMPP 3.4 5.2.28). */
export const STATE = { ENROUTE: 1, DELIVERED: 2, EXPIRED: 3, DELETED: 4, UNDELIVERABLE: 5, ACCEPTED: 6, UNKNOWN: 7, REJECTED: 8 } as const;

export interface QueryAnswer {
  status: number;
  message_state?: number;
  /** When the message reached its final state. */
  final_date?: Date | null;
  error_code?: number;
}

/** What the SMPP server asks about an app's messages; answers are command_status values. */
export interface MessageOps {
  query(account: string, messageId: string): Promise<QueryAnswer>;
  cancel(account: string, messageId: string): Promise<number>;
  replace(account: string, messageId: string, shortMessage: Buffer): Promise<number>;
}

export interface OpRequest {
  message_id: string;
  /** replace_sm: the new short_message (raw octets, the data_coding of the original). */
  short_message?: Buffer;
}

/** The fields of a query_sm / cancel_sm / replace_sm body this gateway uses; null when malformed. */
export function parseOp(command_id: number, body: Buffer): OpRequest | null {
  let pos = 0;
  const cstr = (max: number): string | null => {
    const end = body.indexOf(0, pos);
    if (end < 0 || end - pos >= max) return null;
    const s = body.toString("latin1", pos, end);
    pos = end + 1;
    return s;
  };
  const u8 = (): number | null => (pos < body.length ? body[pos++]! : null);
  if (command_id === CMD.cancel_sm && cstr(6) === null) return null; // service_type
  const message_id = cstr(65);
  if (message_id === null) return null;
  // source_addr_ton, source_addr_npi, source_addr
  if (u8() === null || u8() === null || cstr(65) === null) return null;
  if (command_id !== CMD.replace_sm) return { message_id };
  // schedule_delivery_time, validity_period, registered_delivery, sm_default_msg_id, sm_length
  if (cstr(17) === null || cstr(17) === null || u8() === null || u8() === null) return null;
  const len = u8();
  if (len === null || pos + len > body.length) return null;
  return { message_id, short_message: Buffer.from(body.subarray(pos, pos + len)) };
}

/** SMPP absolute time "YYMMDDhhmmsstnnp" in UTC (SMPP 3.4 7.1.1). */
export function smppTime(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}${Math.floor(d.getUTCMilliseconds() / 100)}00+`;
}

/**
 * An SMPP time (SMPP 3.4 7.1.1) as epoch ms: absolute "YYMMDDhhmmsstnnp" (p "+" or "-": nn quarter
 * hours ahead of or behind UTC) or relative "YYMMDDhhmmss000R" (added to `nowMs`); undefined when
 * the text is neither.
 */
export function parseSmppTime(s: string, nowMs: number): number | undefined {
  const m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d)(\d{2})([+\-R])$/.exec(s);
  if (m === null) return undefined;
  const [yy, mo, dd, hh, mi, ss, t, nn] = m.slice(1, 9).map(Number) as [number, number, number, number, number, number, number, number];
  if (m[9] === "R") {
    const d = new Date(nowMs);
    d.setUTCFullYear(d.getUTCFullYear() + yy, d.getUTCMonth() + mo, d.getUTCDate() + dd);
    return d.getTime() + ((hh * 60 + mi) * 60 + ss) * 1000;
  }
  if (mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh > 23 || mi > 59 || ss > 59 || nn > 48) return undefined;
  const local = Date.UTC(2000 + yy, mo - 1, dd, hh, mi, ss, t * 100);
  const offsetMs = nn * 15 * 60_000;
  return m[9] === "+" ? local - offsetMs : local + offsetMs;
}

/** query_sm_resp: header only on an error, else message_id, final_date, message_state, error_code. */
export function encodeQueryResp(seq: number, messageId: string, a: QueryAnswer): Buffer {
  const id = (CMD.query_sm | RESP_BIT) >>> 0;
  if (a.status !== STATUS.ESME_ROK) {
    const b = Buffer.alloc(HEADER_LENGTH);
    b.writeUInt32BE(HEADER_LENGTH, 0);
    b.writeUInt32BE(id, 4);
    b.writeUInt32BE(a.status >>> 0, 8);
    b.writeUInt32BE(seq >>> 0, 12);
    return b;
  }
  const fd = a.final_date ? smppTime(a.final_date) : "";
  const mid = Buffer.from(messageId, "latin1");
  const len = HEADER_LENGTH + mid.length + 1 + fd.length + 1 + 2;
  const b = Buffer.alloc(len);
  b.writeUInt32BE(len, 0);
  b.writeUInt32BE(id, 4);
  b.writeUInt32BE(0, 8);
  b.writeUInt32BE(seq >>> 0, 12);
  let o = HEADER_LENGTH;
  o += mid.copy(b, o) + 1;
  o += b.write(fd, o, "latin1") + 1;
  b[o++] = (a.message_state ?? STATE.UNKNOWN) & 0xff;
  b[o] = (a.error_code ?? 0) & 0xff;
  return b;
}

export function isOpCommand(id: number): boolean {
  return id === CMD.query_sm || id === CMD.cancel_sm || id === CMD.replace_sm;
}
