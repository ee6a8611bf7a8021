/**
 * Low-level SIP grammar helpers (RFC 3261 section 25): character classes, comma-list splitting that
 * respects quoted strings and angle brackets, generic ";name=value" parameter lists.
 * No regex, no closures: these run on the hot path.
 */

/** 1 for RFC 3261 `token` characters. */
export const TOKEN_CHARS = new Uint8Array(256);
/** 1 for characters allowed in a hostname (alnum, '-', '.', '_' tolerated). */
export const HOST_CHARS = new Uint8Array(256);
/** 1 for unreserved / escaped / user-unreserved characters of a SIP URI user part (no '%'). */
export const USER_CHARS = new Uint8Array(256);
/** 1 for characters valid in URI params / headers (paramchar, hnv-unreserved, unreserved, '=' etc.). */
export const PARAM_CHARS = new Uint8Array(256);

function mark(table: Uint8Array, chars: string): void {
  for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)] = 1;
}
{
  const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  mark(TOKEN_CHARS, alnum + "-.!%*_+`'~");
  mark(HOST_CHARS, alnum + "-._");
  mark(USER_CHARS, alnum + "-_.!~*'()" + "&=+$,;?/");
  mark(PARAM_CHARS, alnum + "-_.!~*'()" + "[]/:&+$" + "?=");
}

export type Param = [name: string, value: string | null];

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255 || TOKEN_CHARS[c] === 0) return false;
  }
  return true;
}

function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/** Index of the first comma at top level (outside "quotes" and <angle brackets>), or -1. */
export function indexOfTopLevelComma(s: string, from: number): number {
  let inQuote = false;
  let angle = false;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inQuote) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inQuote = false;
    } else if (c === 34) inQuote = true;
    else if (angle) {
      if (c === 62 /* > */) angle = false;
    } else if (c === 60 /* < */) angle = true;
    else if (c === 44 /* , */) return i;
  }
  return -1;
}

/** Split a header value at top-level commas; each element trimmed; empty elements dropped. */
export function splitList(s: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const i = indexOfTopLevelComma(s, start);
    const part = (i < 0 ? s.slice(start) : s.slice(start, i)).trim();
    if (part.length > 0) out.push(part);
    if (i < 0) return out;
    start = i + 1;
  }
}

/** End index (exclusive) of a quoted string starting at s[i] === '"', or -1 when unterminated. */
export function quotedEnd(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 92) j++;
    else if (c === 34) return j + 1;
  }
  return -1;
}

/** Remove surrounding quotes and backslash escapes. */
export function unquote(s: string): string {
  if (s.length < 2 || s.charCodeAt(0) !== 34 || s.charCodeAt(s.length - 1) !== 34) return s;
  let out = "";
  for (let i = 1; i < s.length - 1; i++) {
    let c = s[i]!;
    if (c === "\\" && i + 1 < s.length - 1) c = s[++i]!;
    out += c;
  }
  return out;
}

/** Quote a string for use as a display name or quoted parameter value. */
export function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"' || c === "\\") out += "\\";
    out += c;
  }
  return out + '"';
}

/**
 * Parse ";a=b;c;d="x y"" starting at index `from` (which should point at a ';' or at LWS before
 * it). Names are lower-cased; values kept verbatim (quotes included). Returns null on bad syntax.
 */
export function parseParams(s: string, from: number, out: Param[]): Param[] | null {
  let i = from;
  const n = s.length;
  for (;;) {
    while (i < n && isWs(s.charCodeAt(i))) i++;
    if (i >= n) return out;
    if (s.charCodeAt(i) !== 59 /* ; */) return null;
    i++;
    while (i < n && isWs(s.charCodeAt(i))) i++;
    const ns = i;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c > 255 || TOKEN_CHARS[c] === 0) break;
      i++;
    }
    if (i === ns) return null;
    const name = s.slice(ns, i).toLowerCase();
    while (i < n && isWs(s.charCodeAt(i))) i++;
    if (i < n && s.charCodeAt(i) === 61 /* = */) {
      i++;
      while (i < n && isWs(s.charCodeAt(i))) i++;
      const vs = i;
      if (i < n && s.charCodeAt(i) === 34) {
        const e = quotedEnd(s, i);
        if (e < 0) return null;
        i = e;
      } else {
        // token, host (incl. IPv6 reference) or other gen-value
        while (i < n) {
          const c = s.charCodeAt(i);
          if (c === 59 || isWs(c) || c === 44) break;
          if (c === 91 /* [ */) {
            const e = s.indexOf("]", i);
            if (e < 0) return null;
            i = e + 1;
            continue;
          }
          if (c === 34 || c === 60 || c === 62) return null;
          i++;
        }
        if (i === vs) return null;
      }
      out.push([name, s.slice(vs, i)]);
    } else {
      out.push([name, null]);
    }
  }
}

export function getParam(params: readonly Param[], name: string): string | null | undefined {
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    if (p[0] === name) return p[1];
  }
  return undefined;
}

/** Set (or add) a parameter; names are stored lower-case. */
export function setParamIn(params: Param[], name: string, value: string | null): void {
  const n = name.toLowerCase();
  for (const p of params) {
    if (p[0] === n) {
      p[1] = value;
      return;
    }
  }
  params.push([n, value]);
}

export function formatParams(params: readonly Param[]): string {
  let out = "";
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    out += p[1] === null ? ";" + p[0] : ";" + p[0] + "=" + p[1];
  }
  return out;
}

/** Parse a non-negative decimal integer that spans the whole string; -1 on error or > max. */
export function parseUint(s: string, max: number): number {
  if (s.length === 0 || s.length > 10) return -1;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v > max ? -1 : v;
}

/** Decode %HH escapes (for comparing URI user parts); invalid escapes are left as they are. */
export function unescapePercent(s: string): string {
  if (s.indexOf("%") < 0) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "%" && i + 2 < s.length && isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2))) {
      out += String.fromCharCode(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else out += c;
  }
  return out;
}

export function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

// ---- the same grammar over bytes of a parsed buffer (no string is built to look at a value) ----
//
// Each *Bytes function accepts exactly what its string twin accepts on the UTF-8 decoding of the
// same bytes (every delimiter is ASCII, and bytes >= 0x80 are in no character class), and builds the
// same strings (test/sip/props.test.ts checks this on random input).

/** A parsed buffer and how a byte range of it becomes text. */
export interface ByteText {
  readonly buf: Buffer;
  /** buf[a, b) as a string (UTF-8). */
  text(a: number, b: number): string;
}

function isWsB(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/** indexOfTopLevelComma over buf[from, end); -1 when there is none. */
export function indexOfTopLevelCommaBytes(buf: Buffer, from: number, end: number): number {
  let inQuote = false;
  let angle = false;
  for (let i = from; i < end; i++) {
    const c = buf[i]!;
    if (inQuote) {
      if (c === 92) i++;
      else if (c === 34) inQuote = false;
    } else if (c === 34) inQuote = true;
    else if (angle) {
      if (c === 62) angle = false;
    } else if (c === 60) angle = true;
    else if (c === 44) return i;
  }
  return -1;
}

/** quotedEnd over buf[i, end) with buf[i] === '"'. */
export function quotedEndBytes(buf: Buffer, i: number, end: number): number {
  for (let j = i + 1; j < end; j++) {
    const c = buf[j]!;
    if (c === 92) j++;
    else if (c === 34) return j + 1;
  }
  return -1;
}

/** parseUint over buf[s, e). */
export function parseUintBytes(buf: Buffer, s: number, e: number, max: number): number {
  if (e <= s || e - s > 10) return -1;
  let v = 0;
  for (let i = s; i < e; i++) {
    const c = buf[i]! - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v > max ? -1 : v;
}

/** Parameter names the stack reads, returned without building a string. */
const PARAM_NAMES_BY_LEN: string[][] = [];
for (const n of ["branch", "rport", "received", "maddr", "ttl", "lr", "transport", "user", "tag", "method"]) {
  (PARAM_NAMES_BY_LEN[n.length] ??= []).push(n);
}

/** Lower-case name of the token bytes buf[s, e). */
function paramName(src: ByteText, s: number, e: number): string {
  const list = PARAM_NAMES_BY_LEN[e - s];
  if (list !== undefined) {
    const buf = src.buf;
    outer: for (let k = 0; k < list.length; k++) {
      const n = list[k]!;
      // token bytes: `| 0x20` lower-cases letters and maps no other token byte onto a letter
      for (let i = 0; i < n.length; i++) if ((buf[s + i]! | 0x20) !== n.charCodeAt(i)) continue outer;
      return n;
    }
  }
  return src.text(s, e).toLowerCase();
}

/** parseParams over buf[from, end). */
export function parseParamsBytes(src: ByteText, from: number, end: number, out: Param[]): Param[] | null {
  const buf = src.buf;
  const T = TOKEN_CHARS;
  let i = from;
  for (;;) {
    while (i < end && isWsB(buf[i]!)) i++;
    if (i >= end) return out;
    if (buf[i] !== 59) return null;
    i++;
    while (i < end && isWsB(buf[i]!)) i++;
    const ns = i;
    while (i < end && T[buf[i]!] === 1) i++;
    if (i === ns) return null;
    const name = paramName(src, ns, i);
    while (i < end && isWsB(buf[i]!)) i++;
    if (i < end && buf[i] === 61) {
      i++;
      while (i < end && isWsB(buf[i]!)) i++;
      const vs = i;
      if (i < end && buf[i] === 34) {
        const e = quotedEndBytes(buf, i, end);
        if (e < 0) return null;
        i = e;
      } else {
        while (i < end) {
          const c = buf[i]!;
          if (c === 59 || isWsB(c) || c === 44) break;
          if (c === 91) {
            const e = buf.indexOf(93, i);
            if (e < 0 || e >= end) return null;
            i = e + 1;
            continue;
          }
          if (c === 34 || c === 60 || c === 62) return null;
          i++;
        }
        if (i === vs) return null;
      }
      out.push([name, src.text(vs, i)]);
    } else {
      out.push([name, null]);
    }
  }
}
