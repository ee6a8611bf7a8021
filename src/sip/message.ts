/**
 * SIP message: parse from a Buffer, read/edit headers, serialise.
 *
 * The parser keeps the raw Buffer and, per header line, its byte offsets. Values are decoded only
 * when read. Serialisation copies unchanged header lines byte-exact (adjacent unchanged lines in
 * one copy) and writes only the lines that were edited. The headers a proxy edits (Via, Route,
 * Record-Route, Max-Forwards, Request-URI) have dedicated cheap accessors.
 */
import { randomBytes } from "node:crypto";
import { CSeq, HDR, Via, canonicalName, NAME_ACCEPT, NAME_CLASS, NAME_CLASSES, NAME_NEXT, NAME_ROOT, knownById, knownHeader, parseCSeq, parseCSeqBytes, parseVia, parseViaBytes } from "./headers.js";
import { ByteText, indexOfTopLevelComma, indexOfTopLevelCommaBytes, isToken, parseUint, parseUintBytes, splitList } from "./syntax.js";
import { NameAddr, SipUri, parseNameAddr, parseUri } from "./uri.js";

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

/**
 * The head (start line and header lines) of a parsed buffer, decoded once, on first use, as latin1:
 * one character per byte, so string offsets are byte offsets and a value is a cheap substring.
 * When the head has a byte >= 0x80, values are UTF-8 decoded from the buffer instead (as written).
 * @internal
 */
export class RawText implements ByteText {
  readonly buf: Buffer;
  /** Bytes [0, limit) are decoded: every header line lies before it. */
  limit: number;
  private _s: string | null = null;
  private _ascii = false;

  constructor(buf: Buffer, limit: number) {
    this.buf = buf;
    this.limit = limit;
  }

  /** Value text of buf[a, b). */
  text(a: number, b: number): string {
    if (this._s === null) this.decode();
    return this._ascii ? this._s!.slice(a, b) : this.buf.toString("utf8", a, b);
  }

  /** buf[a, b) as latin1 (for bytes known to be ASCII, like header names). */
  latin1(a: number, b: number): string {
    if (this._s === null) this.decode();
    return this._s!.slice(a, b);
  }

  private decode(): void {
    const s = this.buf.toString("latin1", 0, this.limit);
    this._s = s;
    // a latin1 string has as many UTF-8 bytes as characters iff every byte is ASCII
    this._ascii = Buffer.byteLength(s, "utf8") === s.length;
  }
}

/** One header line (maybe folded). Immutable: edits replace the field object. */
export class HeaderField {
  /** Header id (HDR.*), 0 for headers the stack does not know. */
  readonly id: number;
  /** Buffer the raw line lives in; null for a field built by the stack. */
  readonly buf: Buffer | null;
  /** Raw line span [start, end), end includes the line terminator. */
  readonly start: number;
  readonly end: number;
  private readonly src: RawText | null;
  private readonly vs: number;
  private readonly ve: number;
  private readonly nameEnd: number;
  private readonly folded: boolean;
  private _value: string | undefined;
  private _name: string | undefined;
  private _lname: string | undefined;
  private _line: string | undefined;
  private _lineBytes: number;

  constructor(
    id: number,
    src: RawText | null,
    start: number,
    end: number,
    vs: number,
    ve: number,
    nameEnd: number,
    folded: boolean,
    name: string | undefined,
    value: string | undefined,
  ) {
    this.id = id;
    this.src = src;
    this.buf = src === null ? null : src.buf;
    this.start = start;
    this.end = end;
    this.vs = vs;
    this.ve = ve;
    this.nameEnd = nameEnd;
    this.folded = folded;
    this._name = name;
    this._value = value;
    this._lname = undefined;
    this._line = undefined;
    this._lineBytes = 0;
  }

  /** A field built by the stack (serialised as "Name: value"). */
  static make(name: string, value: string): HeaderField {
    const k = knownHeader(name.toLowerCase());
    return new HeaderField(k ? k.id : 0, null, -1, -1, 0, 0, 0, false, k ? k.display : name, value);
  }

  static makeKnown(id: number, value: string): HeaderField {
    return new HeaderField(id, null, -1, -1, 0, 0, 0, false, knownById(id)!.display, value);
  }

  /** Header name: canonical spelling for known headers (compact forms expanded), else as written. */
  get name(): string {
    let n = this._name;
    if (n === undefined) {
      const k = knownById(this.id);
      n = this._name = k ? k.display : this.src!.latin1(this.start, this.nameEnd);
    }
    return n;
  }

  /** Lower-case long name (for comparisons). */
  get lname(): string {
    let n = this._lname;
    if (n === undefined) {
      const k = knownById(this.id);
      n = this._lname = k ? k.lname : this.name.toLowerCase();
    }
    return n;
  }

  /** Value with surrounding whitespace trimmed and line folding replaced by a single space. */
  get value(): string {
    let v = this._value;
    if (v === undefined) {
      v = this.src!.text(this.vs, this.ve);
      if (this.folded) v = unfold(v);
      this._value = v;
    }
    return v;
  }

  get isRaw(): boolean {
    return this.src !== null;
  }

  // Readers for the values a proxy looks at. On an unfolded parsed line they work on the bytes
  // (no value string is built); otherwise on the value string. Both give the same result.

  /** @internal the first value of this (list) line, parsed as a Via */
  firstVia(): Via | null {
    const src = this.src;
    if (src !== null && !this.folded) {
      const c = indexOfTopLevelCommaBytes(src.buf, this.vs, this.ve);
      return parseViaBytes(src, this.vs, c < 0 ? this.ve : c);
    }
    const v = this.value;
    const c = indexOfTopLevelComma(v, 0);
    return parseVia(c < 0 ? v : v.slice(0, c));
  }

  /** @internal the value parsed as a CSeq; `method` is reused as its method when it matches */
  cseq(method: string): CSeq | null {
    const src = this.src;
    if (src !== null && !this.folded) return parseCSeqBytes(src, this.vs, this.ve, method);
    return parseCSeq(this.value);
  }

  /** @internal the value as a non-negative integer <= max, -1 when it is not one */
  uint(max: number): number {
    if (this.src !== null && !this.folded) return parseUintBytes(this.src.buf, this.vs, this.ve, max);
    return parseUint(this.value, max);
  }

  /**
   * @internal the value split at its first top-level comma: [first value, rest], both trimmed;
   * rest is null when there is no comma.
   */
  splitFirst(): [string, string | null] {
    const src = this.src;
    if (src !== null && !this.folded) {
      const c = indexOfTopLevelCommaBytes(src.buf, this.vs, this.ve);
      if (c < 0) return [this.value.trim(), null];
      return [src.text(this.vs, c).trim(), src.text(c + 1, this.ve).trim()];
    }
    const v = this.value;
    const c = indexOfTopLevelComma(v, 0);
    if (c < 0) return [v.trim(), null];
    return [v.slice(0, c).trim(), v.slice(c + 1).trim()];
  }

  /** @internal "Name: value\r\n" of a built field (cached) */
  line(): string {
    let l = this._line;
    if (l === undefined) l = this._line = this.name + ": " + this.value + "\r\n";
    return l;
  }

  /** @internal UTF-8 bytes of line() (cached) */
  lineBytes(): number {
    if (this._lineBytes === 0) this._lineBytes = Buffer.byteLength(this.line(), "utf8");
    return this._lineBytes;
  }
}

function unfold(v: string): string {
  let out = "";
  let i = 0;
  while (i < v.length) {
    const c = v.charCodeAt(i);
    if (c === 13 || c === 10) {
      // collapse CR/LF and the whitespace around it into one space
      while (out.length > 0 && (out.endsWith(" ") || out.endsWith("\t"))) out = out.slice(0, -1);
      while (i < v.length) {
        const d = v.charCodeAt(i);
        if (d !== 13 && d !== 10 && d !== 32 && d !== 9) break;
        i++;
      }
      out += " ";
    } else {
      out += v[i];
      i++;
    }
  }
  return out;
}

const REASONS: Record<number, string> = {
  100: "Trying",
  180: "Ringing",
  181: "Call Is Being Forwarded",
  182: "Queued",
  183: "Session Progress",
  200: "OK",
  202: "Accepted",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Moved Temporarily",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  410: "Gone",
  413: "Request Entity Too Large",
  414: "Request-URI Too Long",
  415: "Unsupported Media Type",
  416: "Unsupported URI Scheme",
  420: "Bad Extension",
  480: "Temporarily Unavailable",
  481: "Call/Transaction Does Not Exist",
  482: "Loop Detected",
  483: "Too Many Hops",
  484: "Address Incomplete",
  486: "Busy Here",
  487: "Request Terminated",
  488: "Not Acceptable Here",
  491: "Request Pending",
  500: "Server Internal Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Server Time-out",
  505: "Version Not Supported",
  513: "Message Too Large",
  600: "Busy Everywhere",
  603: "Decline",
  604: "Does Not Exist Anywhere",
  606: "Not Acceptable",
};

export function defaultReason(status: number): string {
  const r = REASONS[status];
  if (r !== undefined) return r;
  if (status < 200) return "Session Progress";
  if (status < 300) return "OK";
  if (status < 400) return "Redirect";
  if (status < 500) return "Client Error";
  if (status < 600) return "Server Error";
  return "Global Failure";
}

export class SipMessage {
  /** The buffer the message was parsed from; null for messages built by the stack. */
  raw: Buffer | null = null;
  readonly isRequest: boolean;
  /** Request method ("" for responses). */
  method: string;
  /** Response status (0 for requests). */
  status: number;
  /** Header lines in order. Treat as read-only; edit through the methods. */
  fields: HeaderField[] = [];

  /** Decoded head of the parsed buffer (null for messages built by the stack). */
  private text: RawText | null = null;
  private slStart = -1;
  private slEnd = -1;
  private slDirty = true;
  /** Request-URI (requests) or reason phrase (responses) as raw bytes [tStart, tEnd), decoded on use. */
  private tStart = 0;
  private tEnd = 0;
  private _uri: string | null;
  private _reason: string | null;
  /** The body; null while it is still the untouched span [bodyStart, bodyEnd) of raw. */
  private _body: Buffer | null;
  private bodyStart = 0;
  private bodyEnd = 0;
  /** Offset of the blank line that ends the parsed header section. */
  private hdrEnd = -1;
  private _ruri: SipUri | null | undefined = undefined;
  private _topVia: Via | null | undefined = undefined;
  private _cseq: CSeq | null | undefined = undefined;
  private _from: NameAddr | null | undefined = undefined;
  private _to: NameAddr | null | undefined = undefined;

  private constructor(isRequest: boolean, method: string, uri: string | null, status: number, reason: string | null) {
    this.isRequest = isRequest;
    this.method = method;
    this._uri = uri;
    this.status = status;
    this._reason = reason;
    this._body = EMPTY;
  }

  /** Build a request. Headers are written in the given order; Content-Length is added. */
  static request(method: string, uri: string, headers: ReadonlyArray<readonly [string, string]> = [], body?: Buffer | string): SipMessage {
    const m = new SipMessage(true, method, uri, 0, "");
    for (const [n, v] of headers) m.fields.push(HeaderField.make(n, v));
    m.setBody(body === undefined ? EMPTY : body);
    return m;
  }

  /** Build a response. Headers are written in the given order; Content-Length is added. */
  static response(status: number, reason: string | undefined, headers: ReadonlyArray<readonly [string, string]> = [], body?: Buffer | string): SipMessage {
    const m = new SipMessage(false, "", "", status, reason ?? defaultReason(status));
    for (const [n, v] of headers) m.fields.push(HeaderField.make(n, v));
    m.setBody(body === undefined ? EMPTY : body);
    return m;
  }

  /**
   * @internal used by the parser: [tStart, tEnd) is the Request-URI of a request or the reason
   * phrase of a response, decoded when first read.
   */
  static _parsed(text: RawText, isRequest: boolean, method: string, status: number, slStart: number, slEnd: number, tStart: number, tEnd: number): SipMessage {
    const m = new SipMessage(isRequest, method, isRequest ? null : "", status, isRequest ? "" : null);
    m.raw = text.buf;
    m.text = text;
    m.slStart = slStart;
    m.slEnd = slEnd;
    m.slDirty = false;
    m.tStart = tStart;
    m.tEnd = tEnd;
    return m;
  }

  /** @internal used by the parser: the body is raw[start, end); the header section ended at hdrEnd. */
  _setParsedBody(hdrEnd: number, start: number, end: number): void {
    this.hdrEnd = hdrEnd;
    this.bodyStart = start;
    this.bodyEnd = end;
    this._body = start === end ? EMPTY : null;
  }

  /** A copy that can be edited independently (shares the immutable raw buffer and body). */
  clone(): SipMessage {
    const m = new SipMessage(this.isRequest, this.method, this._uri, this.status, this._reason);
    m.raw = this.raw;
    m.text = this.text;
    m.slStart = this.slStart;
    m.slEnd = this.slEnd;
    m.slDirty = this.slDirty;
    m.tStart = this.tStart;
    m.tEnd = this.tEnd;
    m.fields = this.fields.slice();
    m._body = this._body;
    m.bodyStart = this.bodyStart;
    m.bodyEnd = this.bodyEnd;
    m.hdrEnd = this.hdrEnd;
    return m;
  }

  /** Response reason phrase ("" for requests). */
  get reason(): string {
    let r = this._reason;
    if (r === null) r = this._reason = this.text!.text(this.tStart, this.tEnd);
    return r;
  }
  set reason(r: string) {
    this._reason = r;
  }

  /** The body (Content-Length bytes). Replace with setBody(). */
  get body(): Buffer {
    let b = this._body;
    if (b === null) b = this._body = this.raw!.subarray(this.bodyStart, this.bodyEnd);
    return b;
  }
  set body(b: Buffer) {
    this._body = b;
  }

  // ---- start line ----

  get requestUri(): string {
    let u = this._uri;
    if (u === null) u = this._uri = this.text!.text(this.tStart, this.tEnd);
    return u;
  }
  set requestUri(uri: string) {
    this._uri = uri;
    this._ruri = undefined;
    this.slDirty = true;
  }
  /** Request-URI parsed (cached); null if it does not parse. */
  get parsedRequestUri(): SipUri | null {
    if (this._ruri === undefined) this._ruri = parseUri(this.requestUri);
    return this._ruri;
  }
  setStatus(status: number, reason?: string): void {
    this.status = status;
    this.reason = reason ?? defaultReason(status);
    this.slDirty = true;
  }

  // ---- generic header access ----

  private indexOfId(id: number, lname: string, from: number): number {
    const f = this.fields;
    if (id !== 0) {
      for (let i = from; i < f.length; i++) if (f[i]!.id === id) return i;
    } else {
      for (let i = from; i < f.length; i++) {
        const h = f[i]!;
        if (h.id === 0 && h.lname === lname) return i;
      }
    }
    return -1;
  }

  private resolve(name: string): [number, string] {
    const l = name.toLowerCase();
    const k = knownHeader(l);
    return k ? [k.id, k.lname] : [0, l];
  }

  /** Value of the first header with this name (case-insensitive, compact forms accepted). */
  get(name: string): string | undefined {
    const [id, l] = this.resolve(name);
    const i = this.indexOfId(id, l, 0);
    return i < 0 ? undefined : this.fields[i]!.value;
  }

  /** @internal fast path by id */
  getById(id: number): string | undefined {
    const i = this.indexOfId(id, "", 0);
    return i < 0 ? undefined : this.fields[i]!.value;
  }

  has(name: string): boolean {
    const [id, l] = this.resolve(name);
    return this.indexOfId(id, l, 0) >= 0;
  }

  /** Values of every line with this name (one string per line, not split at commas). */
  getAll(name: string): string[] {
    const [id, l] = this.resolve(name);
    const out: string[] = [];
    for (let i = this.indexOfId(id, l, 0); i >= 0; i = this.indexOfId(id, l, i + 1)) out.push(this.fields[i]!.value);
    return out;
  }

  /** Every value of a list header (Via, Route, Contact, ...), split at top-level commas. */
  getList(name: string): string[] {
    const lines = this.getAll(name);
    if (lines.length === 1) return splitList(lines[0]!);
    const out: string[] = [];
    for (const l of lines) for (const v of splitList(l)) out.push(v);
    return out;
  }

  /** Replace every line of this header by one line with `value` (at the first one's place). */
  set(name: string, value: string): void {
    const [id, l] = this.resolve(name);
    const i = this.indexOfId(id, l, 0);
    const f = HeaderField.make(name, value);
    if (i < 0) this.fields.push(f);
    else {
      this.fields[i] = f;
      for (let j = this.indexOfId(id, l, i + 1); j >= 0; j = this.indexOfId(id, l, j)) this.fields.splice(j, 1);
    }
    this.invalidate(id);
  }

  /** Add a line at the end of the header section. */
  append(name: string, value: string): void {
    const f = HeaderField.make(name, value);
    this.fields.push(f);
    this.invalidate(f.id);
  }

  /** Add a line before the first line of the same header (or at the top when there is none). */
  prepend(name: string, value: string): void {
    const f = HeaderField.make(name, value);
    const i = this.indexOfId(f.id, f.lname, 0);
    this.fields.splice(i < 0 ? 0 : i, 0, f);
    this.invalidate(f.id);
  }

  /** Remove every line of this header; returns how many lines were removed. */
  remove(name: string): number {
    const [id, l] = this.resolve(name);
    let n = 0;
    for (let j = this.indexOfId(id, l, 0); j >= 0; j = this.indexOfId(id, l, j)) {
      this.fields.splice(j, 1);
      n++;
    }
    if (n > 0) this.invalidate(id);
    return n;
  }

  /** Keep only the header lines whose lower-case long name passes `keep`; returns how many were removed. */
  retainHeaders(keep: (lname: string) => boolean): number {
    let n = 0;
    for (let i = this.fields.length - 1; i >= 0; i--) {
      const f = this.fields[i]!;
      if (keep(f.lname)) continue;
      this.fields.splice(i, 1);
      this.invalidate(f.id);
      n++;
    }
    return n;
  }

  /**
   * Remove the first value of a list header (the first comma-separated element of its first line)
   * and return it. A line left empty is removed.
   */
  popFirst(name: string): string | undefined {
    const [id, l] = this.resolve(name);
    return this.popFirstAt(id, l);
  }

  private popFirstAt(id: number, lname: string): string | undefined {
    const i = this.indexOfId(id, lname, 0);
    if (i < 0) return undefined;
    const f = this.fields[i]!;
    const [first, rest] = f.splitFirst();
    this.invalidate(id);
    if (rest === null || rest.length === 0) this.fields.splice(i, 1);
    else this.fields[i] = new HeaderField(f.id, null, -1, -1, 0, 0, 0, false, f.name, rest);
    return first;
  }

  /** Insert before the first line of this header; when there is none, after the Via lines. */
  private insertFirst(id: number, value: string): void {
    const f = HeaderField.makeKnown(id, value);
    let i = this.indexOfId(id, "", 0);
    if (i < 0) {
      i = 0;
      if (id !== HDR.VIA) {
        const fl = this.fields;
        for (let j = 0; j < fl.length; j++) if (fl[j]!.id === HDR.VIA) i = j + 1;
      }
    }
    this.fields.splice(i, 0, f);
    this.invalidate(id);
  }

  private invalidate(id: number): void {
    switch (id) {
      case HDR.VIA:
        this._topVia = undefined;
        break;
      case HDR.CSEQ:
        this._cseq = undefined;
        break;
      case HDR.FROM:
        this._from = undefined;
        break;
      case HDR.TO:
        this._to = undefined;
        break;
    }
  }

  // ---- proxy-edited headers ----

  /** Top Via, parsed (cached). null when absent or unparsable. */
  get topVia(): Via | null {
    if (this._topVia === undefined) {
      const i = this.indexOfId(HDR.VIA, "", 0);
      this._topVia = i < 0 ? null : this.fields[i]!.firstVia();
    }
    return this._topVia;
  }

  /** Every Via value, top first, as strings. */
  get vias(): string[] {
    return this.getList("via");
  }

  /** Add a Via on top (value like "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK..."). */
  pushVia(value: string): void {
    this.insertFirst(HDR.VIA, value);
  }

  /** Remove the top Via value and return it. */
  popVia(): string | undefined {
    return this.popFirstAt(HDR.VIA, "");
  }

  /** Replace the top Via value (keeps other values of the same line). */
  replaceTopVia(value: string): void {
    const i = this.indexOfId(HDR.VIA, "", 0);
    if (i < 0) {
      this.insertFirst(HDR.VIA, value);
      return;
    }
    const f = this.fields[i]!;
    const v = f.value;
    const comma = indexOfTopLevelComma(v, 0);
    const nv = comma < 0 ? value : value + "," + v.slice(comma + 1);
    this.fields[i] = new HeaderField(HDR.VIA, null, -1, -1, 0, 0, 0, false, f.name, nv);
    this._topVia = undefined;
  }

  get routes(): string[] {
    return this.getList("route");
  }
  /** Remove the first Route value and return it. */
  popRoute(): string | undefined {
    return this.popFirstAt(HDR.ROUTE, "");
  }
  /** First Route value without removing it. */
  get topRoute(): string | undefined {
    const v = this.getById(HDR.ROUTE);
    if (v === undefined) return undefined;
    const c = indexOfTopLevelComma(v, 0);
    return (c < 0 ? v : v.slice(0, c)).trim();
  }
  pushRoute(value: string): void {
    this.insertFirst(HDR.ROUTE, value);
  }

  get recordRoutes(): string[] {
    return this.getList("record-route");
  }
  /** Add a Record-Route value on top (value like "<sip:10.0.0.1;lr>"). */
  pushRecordRoute(value: string): void {
    this.insertFirst(HDR.RECORD_ROUTE, value);
  }

  /** Max-Forwards as a number; undefined when absent, -1 when unparsable. */
  get maxForwards(): number | undefined {
    const i = this.indexOfId(HDR.MAX_FORWARDS, "", 0);
    return i < 0 ? undefined : this.fields[i]!.uint(0x7fffffff);
  }
  set maxForwards(n: number) {
    const i = this.indexOfId(HDR.MAX_FORWARDS, "", 0);
    const f = HeaderField.makeKnown(HDR.MAX_FORWARDS, String(n));
    if (i < 0) this.fields.push(f);
    else this.fields[i] = f;
  }
  /**
   * Proxy step 16.6.3: decrement Max-Forwards, adding "Max-Forwards: 70" if absent
   * (value: initial - 1 ... callers decide). Returns the new value, or -1 if it was 0 or bad.
   */
  decrementMaxForwards(defaultValue = 70): number {
    const cur = this.maxForwards;
    if (cur === undefined) {
      this.maxForwards = defaultValue;
      return defaultValue;
    }
    if (cur <= 0) return -1;
    this.maxForwards = cur - 1;
    return cur - 1;
  }

  // ---- other parsed headers ----

  get callId(): string | undefined {
    return this.getById(HDR.CALL_ID);
  }
  get cseq(): CSeq | null {
    if (this._cseq === undefined) {
      const i = this.indexOfId(HDR.CSEQ, "", 0);
      this._cseq = i < 0 ? null : this.fields[i]!.cseq(this.method);
    }
    return this._cseq;
  }
  get from(): NameAddr | null {
    if (this._from === undefined) {
      const v = this.getById(HDR.FROM);
      this._from = v === undefined ? null : parseNameAddr(v);
    }
    return this._from;
  }
  get to(): NameAddr | null {
    if (this._to === undefined) {
      const v = this.getById(HDR.TO);
      this._to = v === undefined ? null : parseNameAddr(v);
    }
    return this._to;
  }
  get fromTag(): string | undefined {
    return this.from?.tag;
  }
  get toTag(): string | undefined {
    return this.to?.tag;
  }

  /** Replace the body and set Content-Length (and Content-Type when given). */
  setBody(body: Buffer | string, contentType?: string): void {
    const b = typeof body === "string" ? Buffer.from(body, "utf8") : body;
    this._body = b;
    const i = this.indexOfId(HDR.CONTENT_LENGTH, "", 0);
    const f = HeaderField.makeKnown(HDR.CONTENT_LENGTH, String(b.length));
    if (i < 0) this.fields.push(f);
    else this.fields[i] = f;
    if (contentType !== undefined) this.set("Content-Type", contentType);
  }

  // ---- serialisation ----

  /** The start line without its line terminator. */
  get startLine(): string {
    if (!this.slDirty && this.raw !== null) {
      let e = this.slEnd - 1;
      if (e > this.slStart && this.raw[e - 1] === 13) e--;
      return this.raw.toString("utf8", this.slStart, e);
    }
    return this.isRequest ? this.method + " " + this.requestUri + " SIP/2.0" : "SIP/2.0 " + this.status + " " + this.reason;
  }

  /**
   * Serialise into one Buffer. Unchanged bytes (start line, header lines, blank line, body) are
   * copied byte-exact from the parsed buffer, adjacent ones in one copy; adjacent built lines are
   * written with one string write.
   */
  toBuffer(): Buffer {
    const fields = this.fields;
    const n = fields.length;
    const raw = this.raw;
    let sl: string | null = null;
    // all built text (start line, built lines) in one string: one UTF-8 length check for all
    let built = "";
    let size = 0;
    if (this.slDirty || raw === null) built = sl = this.startLine + "\r\n";
    else size = this.slEnd - this.slStart;
    let hasCl = false;
    for (let i = 0; i < n; i++) {
      const f = fields[i]!;
      if (f.id === HDR.CONTENT_LENGTH) hasCl = true;
      if (f.buf !== null) size += f.end - f.start;
      else built += f.line();
    }
    const ascii = built.length === 0 || Buffer.byteLength(built, "utf8") === built.length;
    if (ascii) size += built.length;
    else {
      if (sl !== null) size += Buffer.byteLength(sl, "utf8");
      for (let i = 0; i < n; i++) {
        const f = fields[i]!;
        if (f.buf === null) size += f.lineBytes();
      }
    }
    const enc = ascii ? "latin1" : "utf8";
    const body = this._body; // null: still the untouched span of raw
    const bodyLen = body === null ? this.bodyEnd - this.bodyStart : body.length;
    let clLine: string | null = null;
    if (!hasCl) {
      clLine = "Content-Length: " + bodyLen + "\r\n";
      size += clLine.length;
    }
    size += 2 + bodyLen;
    const out = allocOut(size);
    let off = 0;
    // pending run of raw bytes [runStart, runEnd) of runBuf, or pending built text
    let runBuf: Buffer | null = null;
    let runStart = 0;
    let runEnd = 0;
    let pend = "";
    if (sl !== null) pend = sl;
    else {
      runBuf = raw;
      runStart = this.slStart;
      runEnd = this.slEnd;
    }
    for (let i = 0; i < n; i++) {
      const f = fields[i]!;
      const fb = f.buf;
      if (fb !== null) {
        if (fb === runBuf && f.start === runEnd) {
          runEnd = f.end;
          continue;
        }
        if (runBuf !== null) off += runBuf.copy(out, off, runStart, runEnd);
        else if (pend.length > 0) {
          off += out.write(pend, off, enc);
          pend = "";
        }
        runBuf = fb;
        runStart = f.start;
        runEnd = f.end;
      } else {
        if (runBuf !== null) {
          off += runBuf.copy(out, off, runStart, runEnd);
          runBuf = null;
        }
        const l = f.line();
        pend = pend.length === 0 ? l : pend + l;
      }
    }
    if (clLine !== null) {
      if (runBuf !== null) {
        off += runBuf.copy(out, off, runStart, runEnd);
        runBuf = null;
      }
      pend += clLine;
    }
    const he = this.hdrEnd;
    if (body === null && runBuf === raw && runEnd === he && this.bodyStart === he + 2 && raw![he] === 13) {
      // the blank line and the body follow the last unchanged line in raw: one copy
      off += raw!.copy(out, off, runStart, this.bodyEnd);
    } else {
      if (runBuf !== null) off += runBuf.copy(out, off, runStart, runEnd);
      pend += "\r\n";
      off += out.write(pend, off, enc);
      if (body === null) off += raw!.copy(out, off, this.bodyStart, this.bodyEnd);
      else off += body.copy(out, off);
    }
    return off === size ? out : out.subarray(0, off);
  }

  toString(): string {
    return this.toBuffer().toString("utf8");
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Output buffers for serialised messages, carved from 64 KiB slabs: a slice of a slab costs about
 * a third of Buffer.allocUnsafe here (whose 8 KiB pool is renewed every few messages). A slab
 * lives as long as any message cut from it (transactions keep theirs for retransmission, about
 * 32 s at most), so the memory held stays about the bytes of live messages. Larger messages get
 * their own buffer.
 */
const SLAB_SIZE = 64 * 1024;
const SLAB_MAX_PIECE = 4096;
let slab = Buffer.allocUnsafeSlow(0);
let slabOff = 0;
function allocOut(size: number): Buffer {
  if (size > SLAB_MAX_PIECE) return Buffer.allocUnsafe(size);
  if (slabOff + size > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabOff = 0;
  }
  const b = slab.subarray(slabOff, slabOff + size);
  slabOff = (slabOff + size + 7) & ~7;
  return b;
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

export { canonicalName };
