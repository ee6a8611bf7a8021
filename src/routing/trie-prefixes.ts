/**
 * PrefixIndex: the prefix keys and the default route of a RouteTable.
 *
 * - Prefixes of 1-3 digits: a direct Int32Array (1110 slots).
 * - Prefixes of 4-15 digits: one NumMap keyed by `10^L + n` for a prefix of L digits reading as
 *   the number n (< 10^L; the key is < 2e15, exact in a double, unique per (L, n)), plus a
 *   Uint16Array "head mask" indexed by the first 4 digits whose bit L says "some prefix of length L
 *   starts with these 4 digits" (per-(head, length) counts keep it right under deletes).
 * - The default route is the prefix of length 0.
 *
 * Longest-prefix match reads the head mask (20 KB, stays in cache), probes only the lengths it
 * names, longest first (usually 0-2 probes), then the short prefixes, then the default. A digit
 * trie of the same prefixes is ~10x larger and its walk is a chain of dependent loads.
 *
 * Values are int32 >= 1 (0 = none). Pure; longestMatch() allocates nothing.
 */

import { NumMap } from "./trie-hash.js";
import { NO_VALUE } from "./trie.js";

/** 10^0 .. 10^16 */
export const POW10: readonly number[] = Object.freeze(Array.from({ length: 17 }, (_, i) => 10 ** i));
/** Offset of the 1-, 2- and 3-digit prefixes in the short array. */
const SHORT_OFF: readonly number[] = Object.freeze([0, 0, 10, 110]);
const HEAD = 4; // digits of the head mask index
const HEADS = 10_000;

export class PrefixIndex {
  readonly map = new NumMap();
  /** Value of the default route (length 0), NO_VALUE if none. */
  def = NO_VALUE;
  /** Prefixes stored (the default not included). */
  count = 0;
  /** Length (digits) of the match returned by the last longestMatch(); 0 for the default. */
  depth = 0;
  private readonly short = new Int32Array(1110);
  private readonly heads = new Uint16Array(HEADS);
  private headCount: Int32Array | undefined; // [head * 16 + len], allocated on first long prefix

  get byteLength(): number {
    return this.map.byteLength + this.short.byteLength + this.heads.byteLength + (this.headCount?.byteLength ?? 0);
  }

  /**
   * Longest stored prefix of a number of `len` digits, given pre[l] = value of its first l digits
   * (l = 1..len). Returns the value (the default if no prefix matches, NO_VALUE if there is none)
   * and sets `depth`. Hot path.
   */
  longestMatch(pre: Float64Array, len: number): number {
    if (len >= HEAD) {
      let bits = this.heads[pre[HEAD]] & ((2 << len) - 1);
      while (bits !== 0) {
        const l = 31 - Math.clz32(bits);
        const v = this.map.get(POW10[l] + pre[l]);
        if (v > 0) {
          this.depth = l;
          return v;
        }
        bits ^= 1 << l;
      }
    }
    const short = this.short;
    for (let l = len < HEAD - 1 ? len : HEAD - 1; l >= 1; l--) {
      const v = short[SHORT_OFF[l] + pre[l]];
      if (v !== 0) {
        this.depth = l;
        return v;
      }
    }
    this.depth = 0;
    return this.def;
  }

  /** Value of the prefix of `len` digits reading as `num` (len 0: the default), or NO_VALUE. */
  get(num: number, len: number): number {
    if (len === 0) return this.def;
    if (len < HEAD) return this.short[SHORT_OFF[len] + num];
    const v = this.map.get(POW10[len] + num);
    return v < 0 ? NO_VALUE : v;
  }

  /** Stores value (>= 1); returns the replaced value or NO_VALUE. */
  set(num: number, len: number, value: number): number {
    if (len === 0) {
      const old = this.def;
      this.def = value;
      return old;
    }
    if (len < HEAD) {
      const old = this.short[SHORT_OFF[len] + num];
      this.short[SHORT_OFF[len] + num] = value;
      if (old === NO_VALUE) this.count++;
      return old;
    }
    const old = this.map.set(POW10[len] + num, value);
    if (old >= 0) return old;
    this.count++;
    const head = Math.floor(num / POW10[len - HEAD]);
    const counts = (this.headCount ??= new Int32Array(HEADS * 16));
    if (counts[head * 16 + len]++ === 0) this.heads[head] |= 1 << len;
    return NO_VALUE;
  }

  /** Removes a prefix (len 0: the default); returns its value or NO_VALUE. */
  delete(num: number, len: number): number {
    if (len === 0) {
      const old = this.def;
      this.def = NO_VALUE;
      return old;
    }
    if (len < HEAD) {
      const old = this.short[SHORT_OFF[len] + num];
      this.short[SHORT_OFF[len] + num] = NO_VALUE;
      if (old !== NO_VALUE) this.count--;
      return old;
    }
    const old = this.map.delete(POW10[len] + num);
    if (old < 0) return NO_VALUE;
    this.count--;
    const head = Math.floor(num / POW10[len - HEAD]);
    const counts = this.headCount as Int32Array;
    if (--counts[head * 16 + len] === 0) this.heads[head] &= ~(1 << len);
    return old;
  }

  /** Calls fn(digits, value) for every prefix (not the default): short ones, then hash order. */
  forEach(fn: (digits: string, value: number) => void): void {
    for (let len = 1; len < HEAD; len++) {
      for (let num = 0; num < POW10[len]; num++) {
        const v = this.short[SHORT_OFF[len] + num];
        if (v !== NO_VALUE) fn(String(num).padStart(len, "0"), v);
      }
    }
    this.map.forEach((key, value) => {
      let len = HEAD;
      while (POW10[len + 1] <= key) len++;
      fn(String(key - POW10[len]).padStart(len, "0"), value);
    });
  }
}
