/**
 * SIP parser: a Buffer to a SipMessage that keeps the buffer and per header line its byte offsets
 * (values are decoded when read), or a SipParseError. Never throws on network input.
 */
import { CSeq, HDR, Via, NAME_ACCEPT, NAME_CLASS, NAME_CLASSES, NAME_NEXT, NAME_ROOT } from "./headers.js";
import { isToken } from "./syntax.js";
import { HeaderField, RawText, SipMessage } from "./message.js";

export interface ParseLimits {
  /** Largest message accepted, bytes (headers + body). */
  maxMessageSize: number;
  /** Most header lines accepted. */
  maxHeaders: number;
  /** Longest single header (including folded continuation lines), bytes. Also the start line. */
  maxHeaderLength: number;
}

export const DEFAULT_LIMITS: Readonly<ParseLimits> = Object.freeze({
  maxMessageSize: 65535,
  maxHeaders: 100,
  maxHeaderLength: 8192,
});

export type ParseErrorReason =
  | "empty"
  | "too_large"
  | "bad_start_line"
  | "bad_version"
  | "bad_request_uri"
  | "bad_header"
  | "too_many_headers"
  | "header_too_long"
  | "nul_byte"
  | "bad_content_length"
  | "truncated_body"
  | "missing_header"
  | "duplicate_header"
  | "bad_cseq"
  | "cseq_method_mismatch"
  | "bad_via"
  | "bad_from_to"
  | "bad_max_forwards";

/**
 * A parse failure. Not an Error subclass (no stack capture: cheap under floods of garbage).
 * `partial` holds what could be parsed (start line and headers) when there is enough of a
 * message to answer it; `status` is the response code to answer with (400, 505, 513).
 */
export class SipParseError {
  constructor(
    readonly reason: ParseErrorReason,
    readonly detail: string,
    readonly partial: SipMessage | null,
    readonly status: number = 400,
  ) {}
  toString(): string {
    return "SIP parse error: " + this.reason + ": " + this.detail;
  }
}

export interface ParseOptions {
  limits?: Readonly<ParseLimits>;
  /**
   * true for a message framed from a stream (TCP/TLS): the buffer ends where the body ends. For a
   * datagram (false, default) a missing Content-Length means "the rest of the datagram".
   */
  stream?: boolean;
  /**
   * Also validate From, To and the Request-URI (full grammar). Off by default: a proxy only needs
   * the parts it uses to be well-formed (RFC 3261 16.3 step 1) and forwards the rest unchanged;
   * the stack always validates start line, header syntax, Content-Length, the presence of Via,
   * From, To, Call-ID and CSeq, CSeq itself and the top Via.
   */
  strict?: boolean;
}

function isWsByte(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

function err(reason: ParseErrorReason, detail: string, partial: SipMessage | null = null, status = 400): SipParseError {
  return new SipParseError(reason, detail, partial, status);
}

function isSipVersion(buf: Buffer, s: number, e: number): boolean {
  // "SIP/2.0", case-insensitive
  return (
    e - s === 7 &&
    (buf[s]! | 0x20) === 115 &&
    (buf[s + 1]! | 0x20) === 105 &&
    (buf[s + 2]! | 0x20) === 112 &&
    buf[s + 3] === 47 &&
    buf[s + 4] === 50 &&
    buf[s + 5] === 46 &&
    buf[s + 6] === 48
  );
}

/** Methods interned by the parser (no string decoded for them). */
const METHODS_BY_LEN: string[][] = [];
for (const m of ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO", "REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE", "PUBLISH"]) {
  (METHODS_BY_LEN[m.length] ??= []).push(m);
}

/** The method string when buf[s, e) spells a common method exactly (case-sensitive), else null. */
function knownMethod(buf: Buffer, s: number, e: number): string | null {
  const list = METHODS_BY_LEN[e - s];
  if (list === undefined) return null;
  outer: for (let k = 0; k < list.length; k++) {
    const m = list[k]!;
    for (let i = 0; i < m.length; i++) if (buf[s + i] !== m.charCodeAt(i)) continue outer;
    return m;
  }
  return null;
}

function startsWithSipSlash(buf: Buffer, s: number, e: number): boolean {
  return e - s >= 4 && (buf[s]! | 0x20) === 115 && (buf[s + 1]! | 0x20) === 105 && (buf[s + 2]! | 0x20) === 112 && buf[s + 3] === 47;
}

/**
 * Parse a SIP message. Never throws. Returns the message, or a SipParseError (with a partial
 * message when the headers could be read).
 */
export function parseMessage(buf: Buffer, opts?: ParseOptions): SipMessage | SipParseError {
  const lim = opts?.limits ?? DEFAULT_LIMITS;
  const CLS = NAME_CLASS;
  const NEXT = NAME_NEXT;
  const ACCEPT = NAME_ACCEPT;
  const stream = opts?.stream === true;
  const len = buf.length;
  if (len > lim.maxMessageSize) return err("too_large", "message of " + len + " bytes", null, 513);
  let pos = 0;
  while (pos < len && (buf[pos] === 13 || buf[pos] === 10)) pos++;
  if (pos >= len) return err("empty", "no start line");

  // ---- start line ----
  const slStart = pos;
  const lf = buf.indexOf(10, pos);
  if (lf < 0) return err("bad_start_line", "no line end");
  let le = lf;
  if (le > pos && buf[le - 1] === 13) le--;
  if (le - pos > lim.maxHeaderLength) return err("header_too_long", "start line");
  const text = new RawText(buf, len);
  let msg: SipMessage;
  const sp1 = buf.indexOf(32, pos);
  if (sp1 >= 0 && sp1 < le && startsWithSipSlash(buf, pos, le)) {
    // response
    if (!isSipVersion(buf, pos, sp1)) return err("bad_version", "response version", null, 505);
    let p = sp1 + 1;
    if (p + 3 > le) return err("bad_start_line", "status code");
    const d0 = buf[p]! - 48;
    const d1 = buf[p + 1]! - 48;
    const d2 = buf[p + 2]! - 48;
    if (d0 < 1 || d0 > 6 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return err("bad_start_line", "status code");
    const status = d0 * 100 + d1 * 10 + d2;
    p += 3;
    if (p < le && buf[p] !== 32) return err("bad_start_line", "status code");
    // reason phrase: buf[p + 1, le), decoded when read
    msg = SipMessage._parsed(text, false, "", status, slStart, lf + 1, p < le ? p + 1 : le, le);
  } else {
    if (sp1 < 0 || sp1 >= le || sp1 === pos) return err("bad_start_line", "no method");
    const sp2 = buf.lastIndexOf(32, le - 1);
    if (sp2 <= sp1 + 1) return err("bad_start_line", "no request-uri");
    if (buf.indexOf(32, sp1 + 1) !== sp2) return err("bad_request_uri", "whitespace in request-uri");
    let method = knownMethod(buf, pos, sp1);
    if (method === null) {
      method = buf.toString("latin1", pos, sp1);
      if (!isToken(method)) return err("bad_start_line", "method is not a token");
    }
    if (!isSipVersion(buf, sp2 + 1, le)) {
      if (startsWithSipSlash(buf, sp2 + 1, le)) return err("bad_version", "version not supported", null, 505);
      return err("bad_start_line", "bad version");
    }
    // Request-URI: buf[sp1 + 1, sp2), decoded when read
    msg = SipMessage._parsed(text, true, method, 0, slStart, lf + 1, sp1 + 1, sp2);
  }
  pos = lf + 1;

  // ---- headers ----
  const fields = msg.fields;
  let firstError: ParseErrorReason | null = null;
  let errDetail = "";
  let cl = -1;
  let nVia = 0, nFrom = 0, nTo = 0, nCallId = 0, nCseq = 0, nMf = 0;
  let hdrEnd = len;
  for (;;) {
    if (pos >= len) {
      // no blank line after the headers
      hdrEnd = len;
      if (firstError === null) (firstError = "bad_header"), (errDetail = "header section not terminated by an empty line");
      break;
    }
    const c = buf[pos]!;
    if (c === 10) {
      hdrEnd = pos;
      pos++;
      break;
    }
    if (c === 13 && (pos + 1 >= len || buf[pos + 1] === 10)) {
      hdrEnd = pos;
      pos += 2;
      break;
    }
    const ls = pos;
    let e = buf.indexOf(10, pos);
    let folded = false;
    while (e >= 0 && e + 1 < len && (buf[e + 1] === 32 || buf[e + 1] === 9)) {
      folded = true;
      e = buf.indexOf(10, e + 1);
    }
    if (e < 0) {
      hdrEnd = len;
      pos = len;
      if (firstError === null) (firstError = "bad_header"), (errDetail = "header section not terminated by an empty line");
      break;
    }
    const end = e + 1;
    let ce = e;
    if (ce > ls && buf[ce - 1] === 13) ce--;
    if (end - ls > lim.maxHeaderLength) return err("header_too_long", "header line of " + (end - ls) + " bytes", msg);
    if (fields.length >= lim.maxHeaders) return err("too_many_headers", "more than " + lim.maxHeaders, msg);
    pos = end;
    if (c === 32 || c === 9) {
      if (firstError === null) (firstError = "bad_header"), (errDetail = "continuation line without header");
      continue;
    }
    // header name: token characters, walked through the known-name trie in the same pass
    let ne = ls;
    let st = NAME_ROOT;
    while (ne < ce) {
      const k = CLS[buf[ne]!]!;
      if (k === 0) break;
      st = NEXT[st * NAME_CLASSES + k]!;
      ne++;
    }
    let p = ne;
    while (p < ce && (buf[p] === 32 || buf[p] === 9)) p++;
    if (ne === ls || p >= ce || buf[p] !== 58) {
      if (firstError === null) (firstError = "bad_header"), (errDetail = "bad header line");
      continue;
    }
    p++;
    while (p < ce && isWsByte(buf[p]!)) p++;
    let ve = ce;
    while (ve > p && isWsByte(buf[ve - 1]!)) ve--;
    const id = ACCEPT[st]!;
    fields.push(new HeaderField(id, text, ls, end, p, ve, ne, folded, undefined, undefined));
    switch (id) {
      case 0:
        break;
      case HDR.VIA:
        nVia++;
        break;
      case HDR.FROM:
        nFrom++;
        break;
      case HDR.TO:
        nTo++;
        break;
      case HDR.CALL_ID:
        nCallId++;
        break;
      case HDR.CSEQ:
        nCseq++;
        break;
      case HDR.MAX_FORWARDS:
        nMf++;
        break;
      case HDR.CONTENT_LENGTH: {
        let v = 0;
        let q = p;
        for (; q < ve; q++) {
          const d = buf[q]! - 48;
          if (d < 0 || d > 9) break;
          v = v * 10 + d;
          if (v > lim.maxMessageSize) break;
        }
        if (q !== ve || q === p) {
          if (firstError === null) (firstError = "bad_content_length"), (errDetail = "not a number or too large");
        } else if (cl >= 0 && cl !== v) {
          if (firstError === null) (firstError = "bad_content_length"), (errDetail = "conflicting values");
        } else cl = v;
        break;
      }
    }
  }
  // every header line lies before hdrEnd: decode no further when a value is read
  text.limit = hdrEnd;
  // NUL bytes anywhere in the start line or headers
  const nul = buf.indexOf(0, slStart);
  if (nul >= 0 && nul < hdrEnd) return err("nul_byte", "NUL in headers", msg);

  // ---- body ----
  const bodyStart = pos > len ? len : pos;
  let bodyEnd = len;
  if (cl >= 0) {
    if (bodyStart + cl > len) {
      if (firstError === null) (firstError = "truncated_body"), (errDetail = "Content-Length " + cl + " > " + (len - bodyStart) + " bytes");
    } else bodyEnd = bodyStart + cl;
  } else if (stream) bodyEnd = bodyStart;
  msg._setParsedBody(hdrEnd, bodyStart, bodyEnd);

  if (firstError !== null) return err(firstError, errDetail, msg);

  // ---- semantic checks ----
  if (nVia === 0 || nFrom === 0 || nTo === 0 || nCallId === 0 || nCseq === 0)
    return err("missing_header", "Via, From, To, Call-ID and CSeq are required", msg);
  if (nFrom > 1 || nTo > 1 || nCallId > 1 || nCseq > 1 || nMf > 1)
    return err("duplicate_header", "single-valued header repeated", msg);
  const cseq = msg.cseq;
  if (cseq === null) return err("bad_cseq", "bad CSeq", msg);
  if (msg.isRequest && cseq.method !== msg.method) return err("cseq_method_mismatch", "CSeq method differs from request method", msg);
  if (msg.topVia === null) return err("bad_via", "bad top Via", msg);
  if (nMf > 0 && msg.maxForwards! < 0) return err("bad_max_forwards", "bad Max-Forwards", msg);
  if (opts?.strict === true) {
    if (msg.from === null || msg.to === null) return err("bad_from_to", "bad From or To", msg);
    if (msg.isRequest && msg.parsedRequestUri === null) return err("bad_request_uri", "bad Request-URI", msg);
  }
  return msg;
}

/** parseMessage that throws the SipParseError (for tests and tools, not for network handlers). */
export function parseOrThrow(buf: Buffer | string, opts?: ParseOptions): SipMessage {
  const r = parseMessage(typeof buf === "string" ? Buffer.from(buf, "utf8") : buf, opts);
  if (r instanceof SipParseError) throw new Error(r.toString());
  return r;
}
