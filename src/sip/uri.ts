/**
 * SIP URIs (RFC 3261 19.1) and name-addr / addr-spec values (From, To, Contact, Route,
 * Record-Route). Unknown schemes are kept opaque. Parsers return null on bad syntax; never throw.
 */
import {
  HOST_CHARS,
  PARAM_CHARS,
  Param,
  USER_CHARS,
  TOKEN_CHARS,
  formatParams,
  getParam,
  isHex,
  parseParams,
  quote,
  quotedEnd,
  unescapePercent,
  unquote,
  setParamIn,
} from "./syntax.js";

export class SipUri {
  /** Lower-case scheme: "sip", "sips", "tel", or any other. */
  scheme: string;
  /** User part, still %-escaped (see `userUnescaped`); undefined when absent. */
  user: string | undefined = undefined;
  password: string | undefined = undefined;
  /** Host as written (IPv6 references keep their brackets); "" for non-SIP schemes. */
  host = "";
  port: number | undefined = undefined;
  /** URI parameters, names lower-cased. */
  params: Param[] = [];
  /** Raw header part after '?', without the '?'. */
  headers: string | undefined = undefined;
  /** Everything after "scheme:" for schemes other than sip/sips. */
  opaque: string | undefined = undefined;

  constructor(scheme: string) {
    this.scheme = scheme;
  }

  get isSip(): boolean {
    return this.scheme === "sip" || this.scheme === "sips";
  }

  get userUnescaped(): string | undefined {
    return this.user === undefined ? undefined : unescapePercent(this.user);
  }

  /** Host without IPv6 brackets, lower-cased: suitable for socket APIs and comparisons. */
  get hostname(): string {
    const h = this.host;
    if (h.length > 1 && h.charCodeAt(0) === 91) return h.slice(1, -1).toLowerCase();
    return h.toLowerCase();
  }

  param(name: string): string | null | undefined {
    return getParam(this.params, name);
  }

  setParam(name: string, value: string | null): this {
    setParamIn(this.params, name, value);
    return this;
  }

  deleteParam(name: string): this {
    const n = name.toLowerCase();
    this.params = this.params.filter((p) => p[0] !== n);
    return this;
  }

  clone(): SipUri {
    const u = new SipUri(this.scheme);
    u.user = this.user;
    u.password = this.password;
    u.host = this.host;
    u.port = this.port;
    u.params = this.params.map((p) => [p[0], p[1]] as Param);
    u.headers = this.headers;
    u.opaque = this.opaque;
    return u;
  }

  toString(): string {
    if (!this.isSip) return this.scheme + ":" + (this.opaque ?? "");
    let s = this.scheme + ":";
    if (this.user !== undefined) {
      s += this.user;
      if (this.password !== undefined) s += ":" + this.password;
      s += "@";
    }
    s += this.host;
    if (this.port !== undefined) s += ":" + this.port;
    s += formatParams(this.params);
    if (this.headers !== undefined) s += "?" + this.headers;
    return s;
  }
}

function validEscapedRun(s: string, start: number, end: number, table: Uint8Array, extra: number): boolean {
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */) {
      if (i + 2 >= end) return false;
      if (!isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) return false;
      i += 2;
      continue;
    }
    if (c > 255 || (table[c] === 0 && c !== extra)) return false;
  }
  return true;
}

/** Validate a host: IPv6 reference, IPv4 or hostname. */
export function isValidHost(h: string): boolean {
  if (h.length === 0) return false;
  if (h.charCodeAt(0) === 91) {
    if (h.charCodeAt(h.length - 1) !== 93 || h.length < 4) return false;
    for (let i = 1; i < h.length - 1; i++) {
      const c = h.charCodeAt(i);
      if (!(isHex(c) || c === 58 /* : */ || c === 46 /* . */)) return false;
    }
    return true;
  }
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c > 255 || HOST_CHARS[c] === 0) return false;
  }
  return true;
}

/** isValidHost over the bytes buf[s, e). */
export function isValidHostBytes(buf: Buffer, s: number, e: number): boolean {
  if (e <= s) return false;
  if (buf[s] === 91) {
    if (buf[e - 1] !== 93 || e - s < 4) return false;
    for (let i = s + 1; i < e - 1; i++) {
      const c = buf[i]!;
      if (!(isHex(c) || c === 58 /* : */ || c === 46 /* . */)) return false;
    }
    return true;
  }
  for (let i = s; i < e; i++) if (HOST_CHARS[buf[i]!] === 0) return false;
  return true;
}

/** Parse any URI. For sip/sips the structure is validated; other schemes are kept opaque. */
export function parseUri(s: string): SipUri | null {
  const colon = s.indexOf(":");
  if (colon <= 0) return null;
  for (let i = 0; i < colon; i++) {
    const c = s.charCodeAt(i);
    const alpha = (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
    if (!(alpha || (i > 0 && ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46)))) return null;
  }
  const scheme = s.slice(0, colon).toLowerCase();
  const u = new SipUri(scheme);
  if (scheme !== "sip" && scheme !== "sips") {
    if (colon + 1 >= s.length) return null;
    for (let i = colon + 1; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c <= 32 || c === 34 || c === 60 || c === 62 || c === 127) return null;
    }
    u.opaque = s.slice(colon + 1);
    return u;
  }
  let i = colon + 1;
  const n = s.length;
  const at = s.indexOf("@", i);
  if (at >= 0) {
    // userinfo: user[:password]
    let pw = -1;
    for (let j = i; j < at; j++) {
      if (s.charCodeAt(j) === 58) {
        pw = j;
        break;
      }
    }
    const userEnd = pw >= 0 ? pw : at;
    if (userEnd === i && pw < 0) return null;
    if (!validEscapedRun(s, i, userEnd, USER_CHARS, -1)) return null;
    u.user = s.slice(i, userEnd);
    if (pw >= 0) {
      if (!validEscapedRun(s, pw + 1, at, USER_CHARS, -1)) return null;
      u.password = s.slice(pw + 1, at);
    }
    i = at + 1;
  }
  const hs = i;
  if (i < n && s.charCodeAt(i) === 91) {
    const e = s.indexOf("]", i);
    if (e < 0) return null;
    i = e + 1;
  } else {
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c > 255 || HOST_CHARS[c] === 0) break;
      i++;
    }
  }
  u.host = s.slice(hs, i);
  if (!isValidHost(u.host)) return null;
  if (i < n && s.charCodeAt(i) === 58) {
    i++;
    const ps = i;
    let port = 0;
    while (i < n) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      port = port * 10 + c;
      i++;
    }
    if (i === ps || i - ps > 5 || port > 65535) return null;
    u.port = port;
  }
  while (i < n && s.charCodeAt(i) === 59) {
    i++;
    const ns = i;
    let eq = -1;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 59 || c === 63) break;
      if (c === 61 && eq < 0) eq = i;
      i++;
    }
    const nameEnd = eq >= 0 ? eq : i;
    if (nameEnd === ns) return null;
    if (!validEscapedRun(s, ns, nameEnd, PARAM_CHARS, -1)) return null;
    if (eq >= 0 && !validEscapedRun(s, eq + 1, i, PARAM_CHARS, -1)) return null;
    u.params.push([s.slice(ns, nameEnd).toLowerCase(), eq >= 0 ? s.slice(eq + 1, i) : null]);
  }
  if (i < n && s.charCodeAt(i) === 63) {
    if (!validEscapedRun(s, i + 1, n, PARAM_CHARS, 44)) return null;
    u.headers = s.slice(i + 1);
    i = n;
  }
  if (i !== n) return null;
  return u;
}

/** A name-addr (`"Bob" <sip:bob@b.example>;tag=1`) or addr-spec (`sip:bob@b.example;tag=1`). */
export class NameAddr {
  /** Display name, unquoted; undefined when absent. */
  displayName: string | undefined;
  /** The URI text (without angle brackets). */
  uri: string;
  /** Header parameters (after the URI), names lower-cased. */
  params: Param[];
  private _parsed: SipUri | null | undefined = undefined;

  constructor(uri: string, displayName?: string, params?: Param[]) {
    this.uri = uri;
    this.displayName = displayName;
    this.params = params ?? [];
  }

  /** The URI parsed (cached); null when it does not parse. */
  get parsedUri(): SipUri | null {
    if (this._parsed === undefined) this._parsed = parseUri(this.uri);
    return this._parsed;
  }

  get tag(): string | undefined {
    const t = getParam(this.params, "tag");
    return t === null ? undefined : t;
  }

  param(name: string): string | null | undefined {
    return getParam(this.params, name);
  }

  setParam(name: string, value: string | null): this {
    setParamIn(this.params, name, value);
    return this;
  }

  toString(): string {
    let s = "";
    if (this.displayName !== undefined && this.displayName.length > 0) s = quote(this.displayName) + " ";
    return s + "<" + this.uri + ">" + formatParams(this.params);
  }
}

function isLws(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/** Parse one name-addr / addr-spec value (already split from a list). Null on bad syntax. */
export function parseNameAddr(input: string): NameAddr | null {
  const s = input;
  let i = 0;
  const n = s.length;
  while (i < n && isLws(s.charCodeAt(i))) i++;
  if (i >= n) return null;
  let display: string | undefined;
  let uriStart: number;
  let uriEnd: number;
  let after: number;
  const c0 = s.charCodeAt(i);
  if (c0 === 34) {
    const e = quotedEnd(s, i);
    if (e < 0) return null;
    display = unquote(s.slice(i, e));
    i = e;
    while (i < n && isLws(s.charCodeAt(i))) i++;
    if (i >= n || s.charCodeAt(i) !== 60) return null;
  }
  if (display === undefined) {
    // Either `*(token LWS) <uri>` or an addr-spec.
    const lt = s.indexOf("<", i);
    if (lt >= 0) {
      // display name must be tokens separated by LWS
      let j = i;
      while (j < lt) {
        const c = s.charCodeAt(j);
        if (!(isLws(c) || (c < 256 && TOKEN_CHARS[c] === 1))) return null;
        j++;
      }
      const d = s.slice(i, lt).trim();
      if (d.length > 0) display = d;
      i = lt;
    }
  }
  if (i < n && s.charCodeAt(i) === 60) {
    const gt = s.indexOf(">", i + 1);
    if (gt < 0) return null;
    uriStart = i + 1;
    uriEnd = gt;
    after = gt + 1;
  } else {
    // addr-spec: URI runs until the first ';' (header params follow) or LWS
    uriStart = i;
    let j = i;
    while (j < n) {
      const c = s.charCodeAt(j);
      if (c === 59 || isLws(c)) break;
      if (c === 60 || c === 62 || c === 34) return null;
      j++;
    }
    uriEnd = j;
    after = j;
  }
  if (uriEnd <= uriStart) return null;
  const uri = s.slice(uriStart, uriEnd);
  for (let k = 0; k < uri.length; k++) {
    const c = uri.charCodeAt(k);
    if (c <= 32 || c === 60 || c === 62) return null;
  }
  if (uri.indexOf(":") <= 0) return null;
  const params = parseParams(s, after, []);
  if (params === null) return null;
  return new NameAddr(uri, display, params);
}
