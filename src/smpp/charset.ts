/**
 * Text for SMPP: the data_coding octet, GSM 03.38 (default alphabet + extension table, septet
 * packing), IA5, Latin-1, UCS2 with surrogate pairs, and encoders for sending.
 * No regex and no per-call closures; tables are built once per module load (read-only constants).
 */

export type TextEncoding = "gsm7" | "ascii" | "latin1" | "ucs2" | "binary";

/** What a data_coding octet says (SMPP 3.4 5.2.19 for 0x00-0x0F, 3GPP TS 23.038 section 4 above). */
export interface DataCoding {
  /** The raw data_coding octet. */
  value: number;
  /**
   * How to read the user data. "default" is data_coding 0, the SMSC default alphabet, which the
   * peer configuration resolves (GSM 03.38 unless configured otherwise).
   */
  alphabet: "default" | "gsm7" | "ascii" | "latin1" | "ucs2" | "binary";
  /** Message class 0-3 when the DCS gives one. */
  message_class?: number;
  /** TS 23.038 compressed flag (text is then delivered as binary: didgate does not decompress). */
  compressed?: boolean;
  /** Message waiting indication groups 0xC0-0xEF. */
  mwi?: { active: boolean; kind: "voicemail" | "fax" | "email" | "other"; store: boolean };
  /** Coding group 01xx: automatic deletion. */
  auto_delete?: boolean;
  /** True when the value is reserved or not one didgate can turn into text (kept as binary). */
  unknown?: boolean;
}

const MWI_KINDS = ["voicemail", "fax", "email", "other"] as const;

/** Parse a data_coding octet. 0x10-0xFF are TS 23.038 groups, not `& 0x0F`. */
export function parseDataCoding(dc: number): DataCoding {
  const v = dc & 0xff;
  if (v < 0x10) {
    switch (v) {
      case 0x00:
        return { value: v, alphabet: "default" };
      case 0x01:
        return { value: v, alphabet: "ascii" };
      case 0x02:
      case 0x04:
        return { value: v, alphabet: "binary" };
      case 0x03:
        return { value: v, alphabet: "latin1" };
      case 0x08:
        return { value: v, alphabet: "ucs2" };
      default:
        // 5 JIS, 6 Cyrillic, 7 Hebrew, 9 pictogram, 10 ISO-2022-JP, 13 JIS X 0212, 14 KS C 5601, reserved
        return { value: v, alphabet: "binary", unknown: true };
    }
  }
  const group = v >> 4;
  if (group <= 0x7) {
    // 00xx xxxx general data coding, 01xx xxxx same with automatic deletion
    const compressed = (v & 0x20) !== 0;
    const hasClass = (v & 0x10) !== 0;
    const alpha = (v >> 2) & 0x03;
    const out: DataCoding = {
      value: v,
      alphabet: compressed ? "binary" : alpha === 0 ? "gsm7" : alpha === 1 ? "binary" : alpha === 2 ? "ucs2" : "binary",
    };
    if (hasClass) out.message_class = v & 0x03;
    if (compressed) out.compressed = true;
    if (alpha === 3) out.unknown = true;
    if (group >= 0x4) out.auto_delete = true;
    return out;
  }
  if (group <= 0xb) return { value: v, alphabet: "binary", unknown: true }; // reserved groups
  if (group <= 0xe) {
    // 1100 discard (GSM7), 1101 store (GSM7), 1110 store (UCS2)
    return {
      value: v,
      alphabet: group === 0xe ? "ucs2" : "gsm7",
      mwi: { active: (v & 0x08) !== 0, kind: MWI_KINDS[v & 0x03]!, store: group !== 0xc },
    };
  }
  // 1111 data coding / message class
  return { value: v, alphabet: (v & 0x04) !== 0 ? "binary" : "gsm7", message_class: v & 0x03 };
}

// ---------------------------------------------------------------------------------------------
// GSM 03.38

/** The GSM 7-bit default alphabet, index = septet. */
const GSM_BASIC =
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u001bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
  "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/** Extension table (after 0x1B). */
const GSM_EXT: ReadonlyArray<readonly [number, string]> = [
  [0x0a, "\f"],
  [0x14, "^"],
  [0x28, "{"],
  [0x29, "}"],
  [0x2f, "\\"],
  [0x3c, "["],
  [0x3d, "~"],
  [0x3e, "]"],
  [0x40, "|"],
  [0x65, "€"],
];

const GSM_BASIC_CODES = new Uint16Array(128);
for (let i = 0; i < 128; i++) GSM_BASIC_CODES[i] = GSM_BASIC.charCodeAt(i);
/** Extension table code units; 0 = not in the table. */
const GSM_EXT_CODES = new Uint16Array(128);
for (const [k, c] of GSM_EXT) GSM_EXT_CODES[k] = c.charCodeAt(0);

/** char code -> septet (basic) or 0x1B00|septet (extension); -1 when not representable. */
const GSM_ENCODE = new Map<number, number>();
for (let i = 0; i < 128; i++) if (i !== 0x1b) GSM_ENCODE.set(GSM_BASIC.charCodeAt(i), i);
for (const [k, c] of GSM_EXT) GSM_ENCODE.set(c.charCodeAt(0), 0x1b00 | k);
// Latin-1 fast table for code points < 256
const GSM_ENCODE_FAST = new Int32Array(256).fill(-1);
for (const [cp, v] of GSM_ENCODE) if (cp < 256) GSM_ENCODE_FAST[cp] = v;

/**
 * Decode unpacked septets (one per octet, high bit ignored) to text. An unknown escape shows the
 * basic character (TS 23.038 6.2.1.1); an escape at the very end is dropped.
 */
export function gsm7Decode(septets: Uint8Array, start = 0, end = septets.length): string {
  const n = end - start;
  if (n <= 0) return "";
  // UTF-16LE into a buffer, one native call to make a flat string (faster than concatenation).
  const out = Buffer.allocUnsafe(n * 2);
  let j = 0;
  for (let i = start; i < end; i++) {
    const s = septets[i]! & 0x7f;
    let c: number;
    if (s === 0x1b) {
      if (i + 1 >= end) break;
      const x = septets[++i]! & 0x7f;
      const ext = GSM_EXT_CODES[x]!;
      c = ext !== 0 ? ext : x === 0x1b ? 0x20 : GSM_BASIC_CODES[x]!;
    } else {
      c = GSM_BASIC_CODES[s]!;
    }
    out[j++] = c & 0xff;
    out[j++] = c >> 8;
  }
  return out.toString("utf16le", 0, j);
}

/** String from the first `n` UTF-16 code units of `u`, in chunks (bounded argument count). */
function codesToString(u: Uint16Array, n: number): string {
  const CHUNK = 8192;
  if (n <= CHUNK) return String.fromCharCode.apply(null, u.subarray(0, n) as unknown as number[]);
  let out = "";
  for (let i = 0; i < n; i += CHUNK) out += String.fromCharCode.apply(null, u.subarray(i, Math.min(n, i + CHUNK)) as unknown as number[]);
  return out;
}

/** Encode text as unpacked septets; returns null if a character is not in GSM 03.38 (basic+ext). */
export function gsm7Encode(text: string): Uint8Array | null {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const cp = text.charCodeAt(i);
    const v = cp < 256 ? GSM_ENCODE_FAST[cp]! : (GSM_ENCODE.get(cp) ?? -1);
    if (v < 0) return null;
    n += v > 0xff ? 2 : 1;
  }
  const out = new Uint8Array(n);
  let j = 0;
  for (let i = 0; i < text.length; i++) {
    const cp = text.charCodeAt(i);
    const v = cp < 256 ? GSM_ENCODE_FAST[cp]! : GSM_ENCODE.get(cp)!;
    if (v > 0xff) {
      out[j++] = 0x1b;
      out[j++] = v & 0x7f;
    } else out[j++] = v;
  }
  return out;
}

/** Septet count of text in GSM 03.38, or -1 if not representable. */
export function gsm7Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const cp = text.charCodeAt(i);
    const v = cp < 256 ? GSM_ENCODE_FAST[cp]! : (GSM_ENCODE.get(cp) ?? -1);
    if (v < 0) return -1;
    n += v > 0xff ? 2 : 1;
  }
  return n;
}

/**
 * Pack septets into octets (TS 23.038 6.1.2.1.1). `fillBits` (0-6) leading zero bits go first, as
 * after a UDH. When the last octet has 7 spare bits, they are zero (the receiver drops a trailing
 * zero septet; see gsm7Unpack).
 */
export function gsm7Pack(septets: Uint8Array, fillBits = 0): Buffer {
  const totalBits = fillBits + septets.length * 7;
  const out = Buffer.alloc((totalBits + 7) >> 3);
  let bit = fillBits;
  for (let i = 0; i < septets.length; i++) {
    const s = septets[i]! & 0x7f;
    const byte = bit >> 3;
    const shift = bit & 7;
    out[byte] = out[byte]! | ((s << shift) & 0xff);
    if (shift > 1) out[byte + 1] = out[byte + 1]! | (s >> (8 - shift));
    bit += 7;
  }
  return out;
}

/**
 * Unpack octets to septets, skipping `fillBits` leading bits. When exactly 7 bits remain unused in
 * the last octet and they decode to 0x00, that septet is padding and is dropped.
 */
export function gsm7Unpack(
  packed: Uint8Array,
  start = 0,
  end = packed.length,
  fillBits = 0,
  septetCount = -1,
): Uint8Array {
  const bits = (end - start) * 8 - fillBits;
  if (bits <= 0) return new Uint8Array(0);
  let count = Math.floor(bits / 7);
  const out = new Uint8Array(count);
  let bit = fillBits;
  for (let i = 0; i < count; i++) {
    const byte = start + (bit >> 3);
    const shift = bit & 7;
    let v = packed[byte]! >> shift;
    if (shift > 1 && byte + 1 < end) v |= packed[byte + 1]! << (8 - shift);
    out[i] = v & 0x7f;
    bit += 7;
  }
  // Exactly 7 spare bits look like one more septet; zero there is padding, not "@" (ambiguous
  // by construction: TS 23.038 advises senders to pad with CR instead). An explicit count wins.
  if (septetCount >= 0) {
    if (septetCount < count) count = septetCount;
  } else if (count > 0 && bits % 7 === 0 && out[count - 1] === 0) count--;
  return count === out.length ? out : out.subarray(0, count);
}

// ---------------------------------------------------------------------------------------------
// Other alphabets

/**
 * UCS2 / UTF-16BE to string, with surrogate pairs; lone surrogates become U+FFFD, and so does an
 * odd trailing octet (half a code unit): the text shows that something was lost instead of being
 * cut short without a trace.
 */
export function ucs2Decode(buf: Uint8Array, start = 0, end = buf.length): string {
  const s = ucs2DecodeEven(buf, start, end);
  return ((end - start) & 1) === 1 && end > start ? s + "\ufffd" : s;
}

function ucs2DecodeEven(buf: Uint8Array, start: number, end: number): string {
  const n = (end - start) >> 1;
  if (n <= 0) return "";
  // Native path: swap to UTF-16LE and let V8 build the string; then check for lone surrogates.
  const le = Buffer.allocUnsafe(n * 2);
  le.set(buf.subarray(start, start + n * 2));
  le.swap16();
  const s = le.toString("utf16le");
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      if (c <= 0xdbff && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          i++;
          continue;
        }
      }
      return ucs2DecodeStrict(buf, start, end);
    }
  }
  return s;
}

/** Slow path: replace lone surrogates with U+FFFD. */
function ucs2DecodeStrict(buf: Uint8Array, start: number, end: number): string {
  const n = (end - start) >> 1;
  const units = new Uint16Array(n);
  let w = 0;
  for (let i = 0; i < n; i++) {
    let u = (buf[start + 2 * i]! << 8) | buf[start + 2 * i + 1]!;
    if (u >= 0xd800 && u <= 0xdbff) {
      const next = i + 1 < n ? (buf[start + 2 * i + 2]! << 8) | buf[start + 2 * i + 3]! : 0;
      if (next >= 0xdc00 && next <= 0xdfff) {
        units[w++] = u;
        u = next;
        i++;
      } else u = 0xfffd;
    } else if (u >= 0xdc00 && u <= 0xdfff) u = 0xfffd;
    units[w++] = u;
  }
  return codesToString(units, w);
}

/** String to UCS2 (UTF-16BE). Characters outside the BMP become surrogate pairs. */
export function ucs2Encode(text: string): Buffer {
  const out = Buffer.allocUnsafe(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    const u = text.charCodeAt(i);
    out[2 * i] = u >> 8;
    out[2 * i + 1] = u & 0xff;
  }
  return out;
}

export function latin1Decode(buf: Buffer, start = 0, end = buf.length): string {
  return buf.toString("latin1", start, end);
}

/** IA5 / ASCII: octets above 0x7F are not IA5; they are kept as Latin-1 rather than lost. */
export function ia5Decode(buf: Buffer, start = 0, end = buf.length): string {
  return buf.toString("latin1", start, end);
}

/** True when every code unit fits in Latin-1. */
export function isLatin1(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Encoding choice for sending

export interface EncodedText {
  data_coding: number;
  encoding: TextEncoding;
  /** Unpacked septets for gsm7 (SMPP carries one septet per octet), octets otherwise. */
  bytes: Buffer;
}

/**
 * Encode text for sending: GSM 03.38 (data_coding 0, unpacked, as SMPP carries it) when every
 * character fits, otherwise UCS2 (data_coding 8). `prefer` forces one.
 */
export function encodeText(text: string, prefer?: "gsm7" | "ucs2" | "latin1"): EncodedText {
  if (prefer !== "ucs2" && prefer !== "latin1") {
    const s = gsm7Encode(text);
    if (s !== null) return { data_coding: 0x00, encoding: "gsm7", bytes: Buffer.from(s.buffer, s.byteOffset, s.length) };
  }
  if (prefer === "latin1" && isLatin1(text)) {
    return { data_coding: 0x03, encoding: "latin1", bytes: Buffer.from(text, "latin1") };
  }
  return { data_coding: 0x08, encoding: "ucs2", bytes: ucs2Encode(text) };
}

/**
 * Split encoded user data into SMS segments of at most `max` units, never splitting a GSM escape
 * sequence or a UTF-16 surrogate pair.
 */
export function splitSegments(enc: EncodedText, maxOctets: number): Buffer[] {
  const b = enc.bytes;
  if (b.length <= maxOctets) return [b];
  const out: Buffer[] = [];
  let pos = 0;
  if (enc.encoding === "ucs2") {
    const step = maxOctets & ~1;
    while (pos < b.length) {
      let end = Math.min(pos + step, b.length);
      if (end < b.length) {
        const hi = b[end - 2]!;
        if (hi >= 0xd8 && hi <= 0xdb) end -= 2; // keep the pair together
      }
      out.push(b.subarray(pos, end));
      pos = end;
    }
    return out;
  }
  while (pos < b.length) {
    let end = Math.min(pos + maxOctets, b.length);
    if (enc.encoding === "gsm7" && end < b.length) {
      // do not end a segment on an escape: count trailing 0x1B run
      let k = end - 1;
      let esc = 0;
      while (k >= pos && b[k] === 0x1b) {
        esc++;
        k--;
      }
      if (esc % 2 === 1) end--;
    }
    out.push(b.subarray(pos, end));
    pos = end;
  }
  return out;
}
