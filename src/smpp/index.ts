/** The SMPP layer of didgate. src/app.ts constructs an SmppService; the rest is for tests and tools. */
export { SmppService, type SmppServiceOptions } from "./service.js";
export { SmppServer } from "./server.js";
export { SmppClient, type ClientState } from "./client.js";
export { SmppSession, SessionError, type SessionOptions, type SessionHandler, type SessionState } from "./session.js";
export { Pdu, PduError, decodePdu, encodePdu, DEFAULT_MAX_PDU_LENGTH } from "./codec.js";
export { CMD, STATUS, TLV, VONAGE_TEMPORARY_STATUSES, DEFAULT_TEMPORARY_STATUSES } from "./constants.js";
export {
  parseDataCoding,
  gsm7Decode,
  gsm7Encode,
  gsm7Pack,
  gsm7Unpack,
  ucs2Decode,
  ucs2Encode,
  encodeText,
} from "./charset.js";
export { parseReceiptText } from "./message.js";
export { Reassembler } from "./reassembly.js";
export { systemClock, type Clock } from "../util/clock.js";
export type * from "./types.js";
