/**
 * Responses built by the stack (RFC 3261 8.2.6) and the random tokens for tags and branches.
 */
import { randomBytes } from "node:crypto";
import { HDR } from "./headers.js";
import { HeaderField, SipMessage } from "./message.js";

const EMPTY = Buffer.alloc(0);

/**
 * True when a failed request still has what a response needs: a request (not ACK) with a
 * parseable top Via, and From, To, Call-ID and CSeq present.
 */
export function canRespond(m: SipMessage | null): m is SipMessage {
  if (m === null || !m.isRequest || m.method === "ACK") return false;
  return m.topVia !== null && m.get("from") !== undefined && m.get("to") !== undefined && m.callId !== undefined && m.get("cseq") !== undefined;
}

/**
 * Random hex token (tags, branches). Draws from a pooled block of random bytes: one
 * randomBytes() call per 4 KiB instead of one per token (a syscall on the hot path).
 */
const POOL_SIZE = 4096;
let pool = Buffer.alloc(0);
let poolPos = POOL_SIZE;
export function randomToken(bytes = 8): string {
  if (poolPos + bytes > pool.length) {
    pool = randomBytes(POOL_SIZE);
    poolPos = 0;
  }
  const s = pool.toString("hex", poolPos, poolPos + bytes);
  poolPos += bytes;
  return s;
}

export interface ResponseOptions {
  /** To-tag to add when the request's To has none (status > 100). Random when omitted. */
  toTag?: string;
  /** Extra headers, appended in order. */
  headers?: ReadonlyArray<readonly [string, string]>;
  body?: Buffer | string;
  contentType?: string;
}

/**
 * Build a response to `req` (RFC 3261 8.2.6): copies every Via (byte-exact, including received/
 * rport added on receipt), From, To (adding a To-tag for status > 100 when missing), Call-ID,
 * CSeq, and Timestamp for 100.
 */
export function createResponse(req: SipMessage, status: number, reason?: string, opts?: ResponseOptions): SipMessage {
  const res = SipMessage.response(status, reason);
  res.fields.length = 0;
  const rf = res.fields;
  const f = req.fields;
  for (let i = 0; i < f.length; i++) {
    const h = f[i]!;
    switch (h.id) {
      case HDR.VIA:
      case HDR.FROM:
      case HDR.CALL_ID:
      case HDR.CSEQ:
        rf.push(h);
        break;
      case HDR.TO:
        if (status > 100 && req.toTag === undefined) {
          rf.push(HeaderField.makeKnown(HDR.TO, h.value + ";tag=" + (opts?.toTag ?? randomToken(6))));
        } else rf.push(h);
        break;
      case HDR.TIMESTAMP:
        if (status === 100) rf.push(h);
        break;
    }
  }
  if (opts?.headers) for (const [n, v] of opts.headers) rf.push(HeaderField.make(n, v));
  res.setBody(opts?.body ?? EMPTY, opts?.contentType);
  return res;
}
