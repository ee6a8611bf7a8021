/**
 * SIP message model: a parsed or built message, its header lines, cheap accessors for what a
 * proxy reads and edits, and serialisation.
 *
 * A parsed message keeps the raw Buffer and, per header line, its byte offsets. Values are decoded
 * only when read. Serialisation copies unchanged header lines byte-exact (adjacent unchanged lines
 * in one copy) and writes only the lines that were edited. The headers a proxy edits (Via, Route,
 * Record-Route, Max-Forwards, Request-URI) have dedicated cheap accessors.
 *
 * The parser is in parse.ts, the response factory in response.ts, the output slabs in out-buffer.ts.
 */
import { CSeq, HDR, Via, canonicalName, knownById, knownHeader, parseCSeq, parseCSeqBytes, parseVia, parseViaBytes } from "./headers.js";
import { ByteText, indexOfTopLevelComma, indexOfTopLevelCommaBytes, parseUint, parseUintBytes, splitList } from "./syntax.js";
import { NameAddr, SipUri, parseNameAddr, parseUri } from "./uri.js";
import { allocOut } from "./out-buffer.js";

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

  /**
   * @internal how many values this (list) line holds, as splitList counts them (top-level
   * commas, empty values not counted), counting no further than `max`. On an unfolded parsed
   * line of ASCII it works on the bytes (no string is built).
   */
  countValues(max: number): number {
    const src = this.src;
    let n = 0;
    if (src !== null && !this.folded) {
      const buf = src.buf;
      const end = this.ve;
      // the usual line: no comma in it at all (one memchr), so one value or none
      const comma = buf.indexOf(44, this.vs);
      if (comma < 0 || comma >= end) {
        const k = trimKeeps(buf, this.vs, end);
        if (k >= 0) return k > 0 && max > 0 ? 1 : 0;
      }
      // values between top-level commas, each counted when trim keeps something of it
      let from = this.vs;
      for (;;) {
        const c = indexOfTopLevelCommaBytes(buf, from, end);
        const e = c < 0 ? end : c;
        const k = trimKeeps(buf, from, e);
        if (k < 0) break; // non-ASCII where trim may differ: the string path decides
        if (k > 0 && ++n >= max) return n;
        if (c < 0) return n;
        from = c + 1;
      }
      n = 0;
    }
    const v = this.value;
    let start = 0;
    for (;;) {
      const c = indexOfTopLevelComma(v, start);
      if ((c < 0 ? v.slice(start) : v.slice(start, c)).trim().length > 0 && ++n >= max) return n;
      if (c < 0) return n;
      start = c + 1;
    }
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

/**
 * Whether String.prototype.trim keeps anything of buf[from, end) decoded: 1 yes, 0 no (only
 * tab, LF, VT, FF, CR, space), -1 unknown (a non-ASCII byte before anything else: trim also
 * removes some non-ASCII spaces).
 */
function trimKeeps(buf: Buffer, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    const b = buf[i]!;
    if (b >= 0x80) return -1;
    if (b !== 32 && (b < 9 || b > 13)) return 1;
  }
  return 0;
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

  /**
   * How many Via values the message has (vias.length), counting no further than `max`: a proxy
   * asks "is there one left?" or "is the top one the only one?" of every response.
   */
  viaCount(max = Infinity): number {
    const fl = this.fields;
    let n = 0;
    for (let i = 0; i < fl.length && n < max; i++) {
      const f = fl[i]!;
      if (f.id === HDR.VIA) n += f.countValues(max - n);
    }
    return n;
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

export { canonicalName };
