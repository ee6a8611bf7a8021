/**
 * Header names (ids, compact forms, canonical spelling), Via and CSeq values.
 */
import { ByteText, Param, TOKEN_CHARS, formatParams, getParam, parseParams, parseParamsBytes, parseUint, setParamIn } from "./syntax.js";
import { isValidHost, isValidHostBytes } from "./uri.js";

/** Ids of headers the stack looks at; every other header has id OTHER (0). */
export const HDR = {
  OTHER: 0,
  VIA: 1,
  FROM: 2,
  TO: 3,
  CALL_ID: 4,
  CSEQ: 5,
  CONTACT: 6,
  CONTENT_LENGTH: 7,
  CONTENT_TYPE: 8,
  MAX_FORWARDS: 9,
  ROUTE: 10,
  RECORD_ROUTE: 11,
  SUPPORTED: 12,
  SUBJECT: 13,
  CONTENT_ENCODING: 14,
  EVENT: 15,
  REFER_TO: 16,
  REFERRED_BY: 17,
  SESSION_EXPIRES: 18,
  ALLOW_EVENTS: 19,
  IDENTITY: 20,
  ACCEPT_CONTACT: 21,
  REJECT_CONTACT: 22,
  REQUEST_DISPOSITION: 23,
  IDENTITY_INFO: 24,
  TIMESTAMP: 25,
  RETRY_AFTER: 26,
  PROXY_REQUIRE: 27,
  REQUIRE: 28,
  ALLOW: 29,
  USER_AGENT: 30,
  SERVER: 31,
  UNSUPPORTED: 32,
  WWW_AUTHENTICATE: 33,
  PROXY_AUTHENTICATE: 34,
  AUTHORIZATION: 35,
  PROXY_AUTHORIZATION: 36,
  REASON: 37,
} as const;

interface KnownHeader {
  id: number;
  /** lower-case long name */
  lname: string;
  /** canonical spelling used when the stack writes the header */
  display: string;
}

const KNOWN_LIST: Array<[number, string, string | null]> = [
  [HDR.VIA, "Via", "v"],
  [HDR.FROM, "From", "f"],
  [HDR.TO, "To", "t"],
  [HDR.CALL_ID, "Call-ID", "i"],
  [HDR.CSEQ, "CSeq", null],
  [HDR.CONTACT, "Contact", "m"],
  [HDR.CONTENT_LENGTH, "Content-Length", "l"],
  [HDR.CONTENT_TYPE, "Content-Type", "c"],
  [HDR.MAX_FORWARDS, "Max-Forwards", null],
  [HDR.ROUTE, "Route", null],
  [HDR.RECORD_ROUTE, "Record-Route", null],
  [HDR.SUPPORTED, "Supported", "k"],
  [HDR.SUBJECT, "Subject", "s"],
  [HDR.CONTENT_ENCODING, "Content-Encoding", "e"],
  [HDR.EVENT, "Event", "o"],
  [HDR.REFER_TO, "Refer-To", "r"],
  [HDR.REFERRED_BY, "Referred-By", "b"],
  [HDR.SESSION_EXPIRES, "Session-Expires", "x"],
  [HDR.ALLOW_EVENTS, "Allow-Events", "u"],
  [HDR.IDENTITY, "Identity", "y"],
  [HDR.ACCEPT_CONTACT, "Accept-Contact", "a"],
  [HDR.REJECT_CONTACT, "Reject-Contact", "j"],
  [HDR.REQUEST_DISPOSITION, "Request-Disposition", "d"],
  [HDR.IDENTITY_INFO, "Identity-Info", "n"],
  [HDR.TIMESTAMP, "Timestamp", null],
  [HDR.RETRY_AFTER, "Retry-After", null],
  [HDR.PROXY_REQUIRE, "Proxy-Require", null],
  [HDR.REQUIRE, "Require", null],
  [HDR.ALLOW, "Allow", null],
  [HDR.USER_AGENT, "User-Agent", null],
  [HDR.SERVER, "Server", null],
  [HDR.UNSUPPORTED, "Unsupported", null],
  [HDR.WWW_AUTHENTICATE, "WWW-Authenticate", null],
  [HDR.PROXY_AUTHENTICATE, "Proxy-Authenticate", null],
  [HDR.AUTHORIZATION, "Authorization", null],
  [HDR.PROXY_AUTHORIZATION, "Proxy-Authorization", null],
  [HDR.REASON, "Reason", null],
];

/** By lower-case long or compact name. Immutable after module load. */
const BY_NAME = new Map<string, KnownHeader>();
/** Per id. */
const BY_ID: KnownHeader[] = [];

for (const [id, display, compact] of KNOWN_LIST) {
  const k: KnownHeader = { id, lname: display.toLowerCase(), display };
  BY_ID[id] = k;
  BY_NAME.set(k.lname, k);
  if (compact) BY_NAME.set(compact, k);
}

/** Known header of a lower-case (long or compact) name, else undefined. */
export function knownHeader(lname: string): KnownHeader | undefined {
  return BY_NAME.get(lname);
}

export function knownById(id: number): KnownHeader | undefined {
  return BY_ID[id];
}

/**
 * Header names on the parse path: a trie over the known long and compact names, walked one byte at
 * a time while the name's token characters are checked (one pass, no hashing, no compare after):
 *
 *   let st = NAME_ROOT;
 *   for (; i < end; i++) { const k = NAME_CLASS[buf[i]]; if (k === 0) break; st = NAME_NEXT[st * NAME_CLASSES + k]; }
 *   id = NAME_ACCEPT[st];   // 0: not a known name (or no name at all)
 *
 * NAME_CLASS: 0 for a byte that is not a token character, 1..26 for a letter (either case), 27 for
 * '-', 28 for any other token character. State 0 is "no known name has this prefix" (it loops).
 */
export const NAME_CLASSES = 29;
export const NAME_ROOT = 1;
export const NAME_CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) if (TOKEN_CHARS[c] === 1) NAME_CLASS[c] = 28;
for (let c = 0; c < 26; c++) NAME_CLASS[65 + c] = NAME_CLASS[97 + c] = 1 + c;
NAME_CLASS[45] = 27;

function buildNameTrie(): { next: Uint16Array; accept: Uint8Array } {
  const next: number[] = [];
  const accept: number[] = [];
  let states = 2; // 0: dead, 1: root
  const add = (name: string, id: number): void => {
    let st = NAME_ROOT;
    for (let i = 0; i < name.length; i++) {
      const slot = st * NAME_CLASSES + NAME_CLASS[name.charCodeAt(i)]!;
      if (next[slot] === undefined) next[slot] = states++;
      st = next[slot]!;
    }
    accept[st] = id;
  };
  for (const [id, display, compact] of KNOWN_LIST) {
    add(display.toLowerCase(), id);
    if (compact !== null) add(compact, id);
  }
  const n = new Uint16Array(states * NAME_CLASSES);
  for (let i = 0; i < next.length; i++) n[i] = next[i] ?? 0;
  const a = new Uint8Array(states);
  for (let i = 0; i < accept.length; i++) a[i] = accept[i] ?? 0;
  return { next: n, accept: a };
}
const NAME_TRIE = buildNameTrie();
export const NAME_NEXT: Uint16Array = NAME_TRIE.next;
export const NAME_ACCEPT: Uint8Array = NAME_TRIE.accept;

/** Canonical spelling for a header name given by an API user ("call-id" -> "Call-ID", "v" -> "Via"). */
export function canonicalName(name: string): string {
  const k = BY_NAME.get(name.toLowerCase());
  return k ? k.display : name;
}

/** One Via value: `SIP/2.0/UDP host:port;branch=...;received=...;rport`. */
export class Via {
  protocol: string;
  /** Upper-case transport: UDP, TCP, TLS, SCTP, WS, WSS, ... */
  transport: string;
  host: string;
  port: number | undefined;
  params: Param[];

  constructor(transport: string, host: string, port: number | undefined, params: Param[], protocol = "SIP/2.0") {
    this.protocol = protocol;
    this.transport = transport;
    this.host = host;
    this.port = port;
    this.params = params;
  }

  get branch(): string | undefined {
    const b = getParam(this.params, "branch");
    return b === null ? undefined : b;
  }
  get received(): string | undefined {
    const r = getParam(this.params, "received");
    return r === null ? undefined : r;
  }
  /** undefined: no rport; null: rport without value (request asks for it); number: filled in. */
  get rport(): number | null | undefined {
    const r = getParam(this.params, "rport");
    if (r === undefined || r === null) return r;
    const v = parseUint(r, 65535);
    return v < 0 ? undefined : v;
  }
  get maddr(): string | undefined {
    const r = getParam(this.params, "maddr");
    return r === null ? undefined : r;
  }
  /** host without IPv6 brackets, lower-cased */
  get hostname(): string {
    const h = this.host;
    if (h.length > 1 && h.charCodeAt(0) === 91) return h.slice(1, -1).toLowerCase();
    return h.toLowerCase();
  }
  /** "host:port" with the port as written (empty when absent): the sent-by used in matching. */
  get sentBy(): string {
    return this.port === undefined ? this.host.toLowerCase() : this.host.toLowerCase() + ":" + this.port;
  }

  param(name: string): string | null | undefined {
    return getParam(this.params, name);
  }

  setParam(name: string, value: string | null): this {
    setParamIn(this.params, name, value);
    return this;
  }

  toString(): string {
    return (
      this.protocol +
      "/" +
      this.transport +
      " " +
      this.host +
      (this.port === undefined ? "" : ":" + this.port) +
      formatParams(this.params)
    );
  }
}

function skipLws(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 13 && c !== 10) break;
    i++;
  }
  return i;
}

function readToken(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c > 255 || TOKEN_CHARS[c] === 0) break;
    i++;
  }
  return i;
}

/** Parse one Via value (already split from a list). Null on bad syntax. */
export function parseVia(s: string): Via | null {
  let i = skipLws(s, 0);
  // protocol-name / version / transport with optional LWS around '/'
  let e = readToken(s, i);
  if (e === i) return null;
  const name = s.slice(i, e);
  i = skipLws(s, e);
  if (s.charCodeAt(i) !== 47) return null;
  i = skipLws(s, i + 1);
  e = readToken(s, i);
  if (e === i) return null;
  const version = s.slice(i, e);
  i = skipLws(s, e);
  if (s.charCodeAt(i) !== 47) return null;
  i = skipLws(s, i + 1);
  e = readToken(s, i);
  if (e === i) return null;
  const transport = s.slice(i, e).toUpperCase();
  i = e;
  const ws = i;
  i = skipLws(s, i);
  if (i === ws) return null;
  // sent-by
  const hs = i;
  if (s.charCodeAt(i) === 91) {
    const rb = s.indexOf("]", i);
    if (rb < 0) return null;
    i = rb + 1;
  } else {
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 58 || c === 59 || c === 32 || c === 9 || c === 13 || c === 10 || c === 44) break;
      i++;
    }
  }
  const host = s.slice(hs, i);
  if (!isValidHost(host)) return null;
  let port: number | undefined;
  i = skipLws(s, i);
  if (s.charCodeAt(i) === 58) {
    i = skipLws(s, i + 1);
    const ps = i;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      i++;
    }
    const p = parseUint(s.slice(ps, i), 65535);
    if (p < 0) return null;
    port = p;
  }
  const params = parseParams(s, i, []);
  if (params === null) return null;
  const protocol = name === "SIP" && version === "2.0" ? "SIP/2.0" : name + "/" + version;
  return new Via(transport, host, port, params, protocol);
}

export interface CSeq {
  seq: number;
  method: string;
}

/** Parse a CSeq value: 32-bit sequence number (< 2**31) and a method token. Null on bad syntax. */
export function parseCSeq(s: string): CSeq | null {
  let i = skipLws(s, 0);
  const ns = i;
  let seq = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    seq = seq * 10 + c;
    i++;
  }
  if (i === ns || i - ns > 10 || seq > 0x7fffffff) return null;
  const ws = i;
  i = skipLws(s, i);
  if (i === ws) return null;
  const ms = i;
  i = readToken(s, i);
  if (i === ms) return null;
  const method = s.slice(ms, i);
  if (skipLws(s, i) !== s.length) return null;
  return { seq, method };
}

// ---- Via and CSeq over bytes of a parsed buffer (twins of parseVia / parseCSeq, see syntax.ts) ----

function skipLwsB(buf: Buffer, i: number, e: number): number {
  while (i < e) {
    const c = buf[i]!;
    if (c !== 32 && c !== 9 && c !== 13 && c !== 10) break;
    i++;
  }
  return i;
}

function readTokenB(buf: Buffer, i: number, e: number): number {
  const T = TOKEN_CHARS;
  while (i < e && T[buf[i]!] === 1) i++;
  return i;
}

/** True when the token bytes buf[s, e) equal the ASCII string w (exactly, or ignoring case). */
function bytesEqual(buf: Buffer, s: number, e: number, w: string, ignoreCase: boolean): boolean {
  if (e - s !== w.length) return false;
  const m = ignoreCase ? 0x20 : 0;
  for (let i = 0; i < w.length; i++) if ((buf[s + i]! | m) !== (w.charCodeAt(i) | m)) return false;
  return true;
}

const TRANSPORTS = ["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"];

/** Upper-case transport of the token bytes buf[s, e). */
function transportOf(src: ByteText, s: number, e: number): string {
  for (let k = 0; k < TRANSPORTS.length; k++) {
    const t = TRANSPORTS[k]!;
    if (bytesEqual(src.buf, s, e, t, true)) return t;
  }
  return src.text(s, e).toUpperCase();
}

/** parseVia over the bytes buf[s, e) of one Via value (already split from a list). */
export function parseViaBytes(src: ByteText, s: number, e: number): Via | null {
  const buf = src.buf;
  let i = skipLwsB(buf, s, e);
  let t = readTokenB(buf, i, e);
  if (t === i) return null;
  const nameS = i;
  const nameE = t;
  i = skipLwsB(buf, t, e);
  if (i >= e || buf[i] !== 47) return null;
  i = skipLwsB(buf, i + 1, e);
  t = readTokenB(buf, i, e);
  if (t === i) return null;
  const verS = i;
  const verE = t;
  i = skipLwsB(buf, t, e);
  if (i >= e || buf[i] !== 47) return null;
  i = skipLwsB(buf, i + 1, e);
  t = readTokenB(buf, i, e);
  if (t === i) return null;
  const transport = transportOf(src, i, t);
  i = t;
  const ws = i;
  i = skipLwsB(buf, i, e);
  if (i === ws) return null;
  // sent-by
  const hs = i;
  if (i < e && buf[i] === 91) {
    const rb = buf.indexOf(93, i);
    if (rb < 0 || rb >= e) return null;
    i = rb + 1;
  } else {
    while (i < e) {
      const c = buf[i]!;
      if (c === 58 || c === 59 || c === 32 || c === 9 || c === 13 || c === 10 || c === 44) break;
      i++;
    }
  }
  if (!isValidHostBytes(buf, hs, i)) return null;
  const host = src.text(hs, i);
  let port: number | undefined;
  i = skipLwsB(buf, i, e);
  if (i < e && buf[i] === 58) {
    i = skipLwsB(buf, i + 1, e);
    const ps = i;
    let p = 0;
    while (i < e) {
      const c = buf[i]! - 48;
      if (c < 0 || c > 9) break;
      p = p * 10 + c;
      i++;
    }
    if (i === ps || i - ps > 10 || p > 65535) return null;
    port = p;
  }
  const params = parseParamsBytes(src, i, e, []);
  if (params === null) return null;
  const protocol =
    bytesEqual(buf, nameS, nameE, "SIP", false) && bytesEqual(buf, verS, verE, "2.0", false)
      ? "SIP/2.0"
      : src.text(nameS, nameE) + "/" + src.text(verS, verE);
  return new Via(transport, host, port, params, protocol);
}

/**
 * parseCSeq over the bytes buf[s, e). `method` is returned as the CSeq method (no string built)
 * when the bytes spell it exactly.
 */
export function parseCSeqBytes(src: ByteText, s: number, e: number, method: string): CSeq | null {
  const buf = src.buf;
  let i = skipLwsB(buf, s, e);
  const ns = i;
  let seq = 0;
  while (i < e) {
    const c = buf[i]! - 48;
    if (c < 0 || c > 9) break;
    seq = seq * 10 + c;
    i++;
  }
  if (i === ns || i - ns > 10 || seq > 0x7fffffff) return null;
  const ws = i;
  i = skipLwsB(buf, i, e);
  if (i === ws) return null;
  const ms = i;
  i = readTokenB(buf, i, e);
  if (i === ms) return null;
  if (skipLwsB(buf, i, e) !== e) return null;
  return { seq, method: method.length > 0 && bytesEqual(buf, ms, i, method, false) ? method : src.text(ms, i) };
}
