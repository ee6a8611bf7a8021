/**
 * query_sm, cancel_sm and replace_sm (SMPP 3.4 4.8, 4.9, 4.10) from an app account about a message
 * it submitted: the request bodies taken apart, query_sm_resp built, and the interface the SMPP
 * server asks (docs/sms.md "Query, cancel, replace").
 */
import { CMD, RESP_BIT, STATUS } from "./constants.js";
import { HEADER_LENGTH } from "./codec.js";
import { formatSmppTime } from "./time.js";

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
  /** By message_id, or (empty message_id) every queued message from source_addr to destination_addr. */
  cancel(account: string, req: OpRequest): Promise<number>;
  replace(account: string, req: OpRequest): Promise<number>;
}

export interface OpRequest {
  message_id: string;
  /** cancel_sm: service_type, source_addr and destination_addr as given (cancel by address). */
  service_type?: string;
  source_addr?: string;
  destination_addr?: string;
  /** replace_sm: the new short_message (raw octets, the data_coding of the original). */
  short_message?: Buffer;
  /** replace_sm: the new times (empty: keep the message's), registered_delivery, sm_default_msg_id. */
  schedule_delivery_time?: string;
  validity_period?: string;
  registered_delivery?: number;
  sm_default_msg_id?: number;
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
  const service_type = command_id === CMD.cancel_sm ? cstr(6) : "";
  if (service_type === null) return null;
  const message_id = cstr(65);
  if (message_id === null) return null;
  // source_addr_ton, source_addr_npi, source_addr
  if (u8() === null || u8() === null) return null;
  const source_addr = cstr(65);
  if (source_addr === null) return null;
  if (command_id === CMD.query_sm) return { message_id };
  if (command_id === CMD.cancel_sm) {
    // dest_addr_ton, dest_addr_npi, destination_addr: only needed to cancel by address
    if (u8() === null || u8() === null) return message_id === "" ? null : { message_id };
    const destination_addr = cstr(65);
    if (destination_addr === null) return message_id === "" ? null : { message_id };
    return { message_id, service_type, source_addr, destination_addr };
  }
  const schedule_delivery_time = cstr(17);
  const validity_period = cstr(17);
  const registered_delivery = u8();
  const sm_default_msg_id = u8();
  if (schedule_delivery_time === null || validity_period === null || registered_delivery === null || sm_default_msg_id === null) return null;
  const len = u8();
  if (len === null || pos + len > body.length) return null;
  return { message_id, short_message: Buffer.from(body.subarray(pos, pos + len)), schedule_delivery_time, validity_period, registered_delivery, sm_default_msg_id };
}

/** SMPP absolute time "YYMMDDhhmmsstnnp" in UTC (SMPP 3.4 7.1.1). */
export const smppTime = formatSmppTime;

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
