/**
 * GSM 7-bit with national language shift tables (3GPP TS 23.038 6.2.1.2.4, TS 23.040 9.2.3.24.15
 * and .16): a message may name a locking shift table (UDH IE 0x25: the basic alphabet is replaced)
 * and a single shift table (IE 0x24: what follows an escape 0x1B), by language code.
 *
 * Decoding: septets through the named tables. Encoding: for a text that does not fit the default
 * alphabet, the combination of allowed tables that keeps it in 7 bits with the fewest parts (the
 * IEs cost UDH octets, so the count includes them), or null when UCS-2 is as good or better.
 */
import { LOCKING_TABLES, SINGLE_SHIFT_TABLES } from "./national-tables.js";

/** Language codes by ISO 639-1 name (the `national_language` setting of a bind). */
export const NATIONAL_LANGUAGES: Readonly<Record<string, number>> = Object.freeze({
  tr: 1,
  es: 2,
  pt: 3,
  bn: 4,
  gu: 5,
  hi: 6,
  kn: 7,
  ml: 8,
  or: 9,
  pa: 10,
  ta: 11,
  te: 12,
  ur: 13,
});

const ESC = 0x1b;

interface Tables {
  /** septet -> UTF-16 code unit (0xFFFF escape / undefined -1). */
  decode: Int32Array;
  /** code unit -> septet. */
  encode: Map<number, number>;
}

function build(table: string, single: boolean): Tables {
  const decode = new Int32Array(128).fill(-1);
  const encode = new Map<number, number>();
  if (table.length !== 128) return { decode, encode };
  for (let i = 0; i < 128; i++) {
    const c = table.charCodeAt(i);
    if (c === 0xffff) continue;
    if (c === 0x20 && (single || i !== 0x20)) continue;
    if (single && (i === ESC || c === 0x0c)) continue;
    decode[i] = c;
    if (!encode.has(c)) encode.set(c, i);
  }
  return { decode, encode };
}

const LOCKING: Tables[] = LOCKING_TABLES.map((t) => build(t, false));
const SINGLE: Tables[] = SINGLE_SHIFT_TABLES.map((t) => build(t, true));

export function isNationalCode(code: number): boolean {
  return Number.isInteger(code) && code >= 0 && code < LOCKING.length;
}

/**
 * Decodes unpacked septets with a locking table (0: default; a language without a locking table,
 * such as Spanish, falls back to the default) and a single shift table (0: the default extension).
 * An unknown escape shows the basic character (TS 23.038 6.2.1.1).
 */
export function gsm7DecodeNational(septets: Uint8Array, locking: number, single: number): string {
  const l = LOCKING[locking] !== undefined && LOCKING[locking]!.encode.size > 0 ? LOCKING[locking]! : LOCKING[0]!;
  const s = SINGLE[single] ?? SINGLE[0]!;
  let out = "";
  for (let i = 0; i < septets.length; i++) {
    const x = septets[i]! & 0x7f;
    if (x === ESC) {
      if (i + 1 >= septets.length) break;
      const y = septets[++i]! & 0x7f;
      const c = s.decode[y]!;
      if (c >= 0) out += String.fromCharCode(c);
      else {
        const b = l.decode[y]!;
        out += b >= 0 ? String.fromCharCode(b) : " ";
      }
      continue;
    }
    const c = l.decode[x]!;
    out += c >= 0 ? String.fromCharCode(c) : " ";
  }
  return out;
}

/** Unpacked septets of text with the given tables, or null when a character is in neither. */
export function gsm7EncodeNational(text: string, locking: number, single: number): Uint8Array | null {
  const l = LOCKING[locking] !== undefined && LOCKING[locking]!.encode.size > 0 ? LOCKING[locking]! : LOCKING[0]!;
  const s = SINGLE[single] ?? SINGLE[0]!;
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const b = l.encode.get(c);
    if (b !== undefined) {
      out.push(b);
      continue;
    }
    const e = s.encode.get(c);
    if (e === undefined) return null;
    out.push(ESC, e);
  }
  return Uint8Array.from(out);
}

export interface NationalChoice {
  locking: number;
  single: number;
  septets: Uint8Array;
  parts: number;
  /** UDH octets of the national IEs (3 per IE). */
  ieOctets: number;
}

/** Parts a GSM 7-bit text of `n` septets takes with `ieOctets` of national IEs in every part. */
export function gsm7Parts(n: number, ieOctets: number): number {
  const single = ieOctets === 0 ? 160 : 160 - Math.ceil(((1 + ieOctets) * 8) / 7);
  if (n <= single) return 1;
  const per = 160 - Math.ceil(((1 + 5 + ieOctets) * 8) / 7);
  return Math.ceil(n / per);
}

/**
 * The septets cut into parts of a concatenated message with `ieOctets` of national IEs in every
 * UDH: as many septets per part as fit, but an escape (0x1B) never ends a part (it moves to the
 * next with the character it announces). One part when the whole fits a single message.
 */
export function splitNationalSeptets(septets: Uint8Array, ieOctets: number): Uint8Array[] {
  const single = ieOctets === 0 ? 160 : 160 - Math.ceil(((1 + ieOctets) * 8) / 7);
  if (septets.length <= single) return [septets];
  const per = 160 - Math.ceil(((1 + 5 + ieOctets) * 8) / 7);
  const chunks: Uint8Array[] = [];
  let at = 0;
  while (at < septets.length) {
    let end = Math.min(at + per, septets.length);
    if (end < septets.length && septets[end - 1] === ESC) end--;
    chunks.push(septets.subarray(at, end));
    at = end;
  }
  return chunks;
}

/** Parts of a UCS-2 text of `units` code units. */
export function ucs2Parts(units: number): number {
  return units <= 70 ? 1 : Math.ceil(units / 67);
}

/**
 * The best tables for a text among `allowed` language codes: the encoding with the fewest parts
 * (ties: fewer IEs). Returns null when no combination encodes the text, or when UCS-2 takes no
 * more parts (then the plain UCS-2 message is simpler for every handset).
 */
export function chooseNational(text: string, allowed: readonly number[]): NationalChoice | null {
  let best: NationalChoice | null = null;
  const codes = [0, ...allowed.filter((c) => c > 0 && isNationalCode(c))];
  for (const lk of codes) {
    if (lk !== 0 && LOCKING[lk]!.encode.size === 0) continue;
    for (const sg of codes) {
      if (lk === 0 && sg === 0) continue;
      const septets = gsm7EncodeNational(text, lk, sg);
      if (septets === null) continue;
      const ie = (lk !== 0 ? 3 : 0) + (sg !== 0 ? 3 : 0);
      const parts = splitNationalSeptets(septets, ie).length;
      if (best === null || parts < best.parts || (parts === best.parts && ie < best.ieOctets)) best = { locking: lk, single: sg, septets, parts, ieOctets: ie };
    }
  }
  if (best === null) return null;
  let units = 0;
  for (const _ of text) units += _.length;
  if (ucs2Parts(units) <= best.parts) return null;
  return best;
}

/** The national IEs of a UDH (0x24 single, 0x25 locking), read from the raw UDH bytes after UDHL. */
export function nationalIes(udh: Uint8Array): { locking: number; single: number } {
  let locking = 0;
  let single = 0;
  let i = 0;
  while (i + 1 < udh.length) {
    const iei = udh[i]!;
    const len = udh[i + 1]!;
    if (i + 2 + len > udh.length) break;
    if (len === 1 && iei === 0x24) single = udh[i + 2]!;
    if (len === 1 && iei === 0x25) locking = udh[i + 2]!;
    i += 2 + len;
  }
  return { locking: isNationalCode(locking) ? locking : 0, single: isNationalCode(single) ? single : 0 };
}
