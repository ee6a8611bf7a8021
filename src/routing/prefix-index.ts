/**
 * PrefixIndex: the prefix keys and the default route of a RouteTable.
 *
 * - Prefixes of 1-3 digits: a direct Int32Array (1110 slots).
 * - Prefixes of 4-15 digits: one NumMap keyed by `10^L + n` for a prefix of L digits reading as
 *   the number n (< 10^L; the key is < 2e15, exact in a double, unique per (L, n)), plus a
 *   Uint16Array "head mask" indexed by the first 5 digits whose bit L says "some prefix of length L
 *   starts with these 5 digits" (a 4-digit prefix sets bit 4 on its 10 heads; per-(head, length)
 *   counts keep the bits right under deletes).
 * - The default route is the prefix of length 0.
 * - `epoch` changes on every change (RouteTable caches per number block the longest prefix
 *   covering the whole block, valid for one epoch), and `deep` counts, per block id
 *   (page-map.ts blockId), the prefixes that end inside that block (cover only part of it).
 *
 * Longest-prefix match reads the head mask (200 KB, stays in L2), probes only the lengths it
 * names, longest first (usually 0-2 probes), then the short prefixes, then the default. A digit
 * trie of the same prefixes is ~10x larger and its walk is a chain of dependent loads.
 *
 * Values are int32 >= 1 (0 = none). Pure; longestMatch() allocates nothing.
 */

import { NumMap, type NumMapState } from "./num-map.js";
import { MAX_DIGITS, NO_VALUE } from "./trie.js";

/** 10^0 .. 10^16 */
export const POW10: readonly number[] = Object.freeze(Array.from({ length: 17 }, (_, i) => 10 ** i));
/** Offset of the 1-, 2- and 3-digit prefixes in the short array. */
const SHORT_OFF = Int32Array.of(0, 0, 10, 110);
/** POW10 as a Float64Array (the hot path reads it; a frozen array holds boxed doubles). */
const P10 = Float64Array.from(POW10);
const HEAD = 5; // digits of the head mask index
const HEADS = 100_000;
const LONG = 4; // prefixes of LONG digits and more live in the hash

export interface PrefixIndexState {
  map: NumMapState;
  deep: NumMapState;
  headCount: NumMapState;
  short: Int32Array;
  heads: Uint16Array;
  def: number;
  count: number;
  epoch: number;
}

export class PrefixIndex {
  readonly map: NumMap = new NumMap();
  /** Value of the default route (length 0), NO_VALUE if none. */
  def = NO_VALUE;
  /** Prefixes stored (the default not included). */
  count = 0;
  /** Length (digits) of the match returned by the last longestMatch(); 0 for the default. */
  depth = 0;
  /** Changes with every set/delete that changed something; never 0. */
  epoch = 1;
  /** Block id -> number of prefixes ending inside that block. */
  readonly deep: NumMap = new NumMap();
  private readonly short: Int32Array = new Int32Array(1110);
  /** Per leading 5 digits: bit l set when some prefix of l >= 4 digits starts like that. */
  private readonly heads: Uint16Array = new Uint16Array(HEADS);
  /** head * 16 + len -> prefixes of that length behind the bit. */
  private readonly headCount: NumMap = new NumMap();

  /** The index's state as transferable parts (see RouteTable.exportState). */
  exportState(): PrefixIndexState {
    return { map: this.map.exportState(), deep: this.deep.exportState(), headCount: this.headCount.exportState(), short: this.short, heads: this.heads, def: this.def, count: this.count, epoch: this.epoch };
  }

  /** An index over the given state (the arrays are taken, not copied). */
  static fromState(s: PrefixIndexState): PrefixIndex {
    const p = new PrefixIndex();
    const w = p as unknown as { map: NumMap; deep: NumMap; headCount: NumMap; short: Int32Array; heads: Uint16Array };
    w.map = NumMap.fromState(s.map);
    w.deep = NumMap.fromState(s.deep);
    w.headCount = NumMap.fromState(s.headCount);
    w.short = s.short;
    w.heads = s.heads;
    p.def = s.def;
    p.count = s.count;
    p.epoch = s.epoch;
    return p;
  }

  get byteLength(): number {
    return this.map.byteLength + this.deep.byteLength + this.short.byteLength + this.heads.byteLength + this.headCount.byteLength;
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
        const v = this.map.get(P10[l] + pre[l]);
        if (v > 0) {
          this.depth = l;
          return v;
        }
        bits ^= 1 << l;
      }
    } else if (len === LONG && this.map.size !== 0) {
      const v = this.map.get(P10[LONG] + pre[LONG]);
      if (v > 0) {
        this.depth = LONG;
        return v;
      }
    }
    const short = this.short;
    for (let l = len < LONG - 1 ? len : LONG - 1; l >= 1; l--) {
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
    if (len < LONG) return this.short[SHORT_OFF[len] + num];
    const v = this.map.get(POW10[len] + num);
    return v < 0 ? NO_VALUE : v;
  }

  /** Stores value (>= 1); returns the replaced value or NO_VALUE. */
  set(num: number, len: number, value: number): number {
    this.bump();
    if (len === 0) {
      const old = this.def;
      this.def = value;
      return old;
    }
    if (len < LONG) {
      const old = this.short[SHORT_OFF[len] + num];
      this.short[SHORT_OFF[len] + num] = value;
      if (old === NO_VALUE) {
        this.count++;
        this.markDeep(num, len, 1);
      }
      return old;
    }
    const old = this.map.set(POW10[len] + num, value);
    if (old >= 0) return old;
    this.count++;
    this.markDeep(num, len, 1);
    this.countHeads(num, len, 1);
    return NO_VALUE;
  }

  /** Removes a prefix (len 0: the default); returns its value or NO_VALUE. */
  delete(num: number, len: number): number {
    if (len === 0) {
      const old = this.def;
      this.def = NO_VALUE;
      if (old !== NO_VALUE) this.bump();
      return old;
    }
    if (len < LONG) {
      const old = this.short[SHORT_OFF[len] + num];
      this.short[SHORT_OFF[len] + num] = NO_VALUE;
      if (old !== NO_VALUE) {
        this.count--;
        this.markDeep(num, len, -1);
        this.bump();
      }
      return old;
    }
    const old = this.map.delete(POW10[len] + num);
    if (old < 0) return NO_VALUE;
    this.count--;
    this.markDeep(num, len, -1);
    this.bump();
    this.countHeads(num, len, -1);
    return old;
  }

  /**
   * Counts (delta +1/-1) a prefix of len >= LONG digits under its 5-digit head (a 4-digit prefix
   * under each of its 10 heads) and keeps the head bits in step.
   */
  private countHeads(num: number, len: number, delta: number): void {
    const first = len >= HEAD ? Math.floor(num / POW10[len - HEAD]) : num * 10;
    const last = len >= HEAD ? first : first + 9;
    for (let head = first; head <= last; head++) {
      const key = head * 16 + len;
      const c = this.headCount.get(key);
      if (delta > 0) {
        this.headCount.set(key, c < 0 ? 1 : c + 1);
        this.heads[head] |= 1 << len;
      } else if (c <= 1) {
        this.headCount.delete(key);
        this.heads[head] &= ~(1 << len);
      } else this.headCount.set(key, c - 1);
    }
  }

  private bump(): void {
    this.epoch = this.epoch === 0x7fffffff ? 1 : this.epoch + 1;
  }

  /**
   * Counts (delta +1/-1) a prefix of `len` digits reading as `num` in the blocks it covers only in
   * part: those of the numbers of len, len + 1 and len + 2 digits (a block is all digits of a
   * number but the last three; numbers of 3 digits or fewer are all in block 0 of their length).
   */
  private markDeep(num: number, len: number, delta: number): void {
    for (let n = len; n <= len + 2 && n <= MAX_DIGITS; n++) {
      const bl = n - 3; // block digits
      const block = bl <= 0 ? 0 : Math.floor(num / POW10[len - bl]);
      const bid = block * 16 + n;
      const c = this.deep.get(bid);
      if (delta > 0) this.deep.set(bid, c < 0 ? 1 : c + 1);
      else if (c <= 1) this.deep.delete(bid);
      else this.deep.set(bid, c - 1);
    }
  }

  /** Calls fn(digits, value) for every prefix (not the default): short ones, then hash order. */
  forEach(fn: (digits: string, value: number) => void): void {
    for (let len = 1; len < LONG; len++) {
      for (let num = 0; num < POW10[len]; num++) {
        const v = this.short[SHORT_OFF[len] + num];
        if (v !== NO_VALUE) fn(String(num).padStart(len, "0"), v);
      }
    }
    this.map.forEach((key, value) => {
      let len = LONG;
      while (POW10[len + 1] <= key) len++;
      fn(String(key - POW10[len]).padStart(len, "0"), value);
    });
  }
}
