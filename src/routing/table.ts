/**
 * The route table: longest-prefix-match of E.164 numbers against route keys.
 *
 * Keys (README.md "Routes"):
 *   "+15125550100"  exact number, 1..15 digits after "+"
 *   "+1512555*"     prefix, 1..15 digits; the longest matching prefix wins
 *   "*"             the default route
 * An exact key beats any prefix; any prefix beats the default.
 *
 * API
 * ```ts
 * type KeyKind = "exact" | "prefix" | "default";
 * function parseRouteKey(key: string): { kind: KeyKind; digits: string } | { error: string }; // never throws
 * function routeKeyOf(kind: KeyKind, digits: string): string;                                 // inverse
 *
 * class RouteTable<V> {
 *   static build<V>(entries: Iterable<readonly [string, V]>): RouteTable<V>; // bulk; throws RangeError naming a bad key; later duplicates win
 *   set(key: string, value: V): void;      // upsert; throws RangeError on an invalid key
 *   delete(key: string): boolean;          // false when absent or invalid
 *   get(key: string): V | undefined;       // by key string (exact, prefix or "*"), no LPM
 *   has(key: string): boolean;
 *   lookup(number: string): V | undefined; // hot path, LPM; "+E164" or bare digits
 *   readonly match: RouteMatch;            // reusable result of the last lookup(): kind, length
 *   matchedKey(): string;                  // key of the last lookup's match ("" if none); allocates
 *   readonly size: number;
 *   counts(): { exact: number; prefix: number; default: number };
 *   entries(): IterableIterator<[string, V]>; // every key once; order: default, prefixes, exact (unspecified within)
 *   keys(): IterableIterator<string>;
 *   distinctValues: number;                // interned value objects currently referenced
 *   byteLength: number;                    // typed-array bytes held (not counting values)
 *   version: string;                       // free-form, set by the source
 * }
 * class RouteStore<V> { current: RouteTable<V>; swap(next: RouteTable<V>): RouteTable<V> } // returns old
 * ```
 *
 * lookup() contract: the number is "+" followed by 1..15 digits, or the digits alone. Anything else
 * (empty, too long, a non-digit) matches nothing, not even the default: normalise and validate
 * first. lookup() allocates nothing, uses no regex and no closures; it stores the matched kind in
 * `match.kind` (0 none, 1 exact, 2 prefix, 3 default) and the matched key's digit count in
 * `match.length` (0 for the default and for no match).
 *
 * Design: values are interned (identity, via a Map) into an array with refcounts; the structures
 * store int32 value indexes (>= 1; 0 means empty, and values[0] is undefined). Exact keys live in
 * pages of 100 consecutive numbers of one length, grouped in blocks of 1000 (page-map.ts: a hash
 * of block ids whose 64-byte line holds the block's 10 page offsets into a slab of value slots and
 * the cache of its covering prefix); prefixes live in prefix-index.ts (1-3 digits in a direct
 * array, 4-15 digits in a hash keyed by (length, digits) plus, per leading 5 digits, a mask of the
 * prefix lengths present). A lookup parses the digits once (keeping the value of every leading run
 * of digits in `pre`), probes the block line and the page (exact hit: the block line and the slab
 * line; at 1M numbers the block table and the prefix index stay in L2). A number of a known block
 * that is not stored exactly takes the block's cached longest covering prefix (in the block's
 * line, valid for one prefix epoch, bypassed when a prefix ends inside the block); any other
 * number probes the prefix lengths the mask names, longest first, then the short prefixes, then
 * the default. build() collects exact keys into flat arrays and writes the slab grouped by page.
 * Every set/delete leaves the table consistent when it returns (JS is single-threaded; a reader
 * never sees half a change). Reloads build a new table and swap it in through RouteStore.
 */

import { MAX_DIGITS, NO_VALUE } from "./trie.js";
import { B_CACHE_DEPTH, B_CACHE_EPOCH, B_CACHE_VALUE, B_PAGES, PageMap, PAGE_SIZE, pageId, type PageMapState } from "./page-map.js";
import { PrefixIndex, type PrefixIndexState } from "./prefix-index.js";

export type KeyKind = "exact" | "prefix" | "default";

export type ParsedRouteKey = { kind: KeyKind; digits: string };

/** 0 none, 1 exact, 2 prefix, 3 default. */
export type MatchKind = 0 | 1 | 2 | 3;
export const MATCH_NONE = 0;
export const MATCH_EXACT = 1;
export const MATCH_PREFIX = 2;
export const MATCH_DEFAULT = 3;

export interface RouteMatch {
  kind: MatchKind;
  /** Digits of the matched key (0 for the default or no match). */
  length: number;
}

/** cacheDepth marker: a prefix ends inside the block, match the number in full. */
const DEEP = 255;

// Internal key classes returned by scanKey (0 = invalid).
const K_INVALID = 0;
const K_EXACT = 1;
const K_PREFIX = 2;
const K_DEFAULT = 3;

/** Why a key is invalid, or "" when it is valid. */
function keyError(key: string): string {
  if (typeof key !== "string") return "key must be a string";
  if (key === "*") return "";
  if (key.length === 0) return "empty key";
  if (key.charCodeAt(0) !== 43) return 'must be "*", "+<digits>" or "+<digits>*"';
  const end = key.charCodeAt(key.length - 1) === 42 ? key.length - 1 : key.length;
  const n = end - 1;
  if (n < 1) return "no digits after '+'";
  for (let i = 1; i < end; i++) {
    const c = key.charCodeAt(i);
    if (c < 48 || c > 57) return `invalid character ${JSON.stringify(key[i])} at position ${i}`;
  }
  if (n > MAX_DIGITS) return `${n} digits, at most ${MAX_DIGITS} allowed`;
  return "";
}

/** True for a valid route key (the check parseRouteKey makes, without allocating). */
export function isRouteKey(key: string): boolean {
  return keyError(key) === "";
}

/** Parses a route key; never throws. */
export function parseRouteKey(key: string): ParsedRouteKey | { error: string } {
  const err = keyError(key);
  if (err !== "") return { error: err };
  if (key === "*") return { kind: "default", digits: "" };
  if (key.charCodeAt(key.length - 1) === 42) return { kind: "prefix", digits: key.slice(1, -1) };
  return { kind: "exact", digits: key.slice(1) };
}

/** The key string for a kind and digits (inverse of parseRouteKey). */
export function routeKeyOf(kind: KeyKind, digits: string): string {
  return kind === "default" ? "*" : kind === "prefix" ? `+${digits}*` : `+${digits}`;
}

function invalidKey(key: unknown): RangeError {
  const shown = typeof key === "string" ? JSON.stringify(key.length > 40 ? key.slice(0, 40) + "…" : key) : String(key);
  return new RangeError(`invalid route key ${shown}: ${keyError(key as string)}`);
}

export class RouteTable<V> {
  /** Free-form version set by the source (stream id, file mtime, …). */
  version = "";
  /** Result details of the last lookup(); the object is reused. */
  readonly match: RouteMatch = { kind: 0, length: 0 };

  private readonly prefixes: PrefixIndex = new PrefixIndex();
  private readonly pages: PageMap;
  /** pre[l] = value of the first l digits of the number being looked up. */
  private readonly pre = new Float64Array(MAX_DIGITS + 1);
  private values: (V | undefined)[] = [undefined]; // index 0 = no value
  /** fromStateLazy(): makes the value of a slot not made yet (undefined in `values`). */
  private fill: ((vi: number) => V | undefined) | undefined;
  private refs: Int32Array = new Int32Array(16);
  private readonly index = new Map<V, number>();
  private readonly freeValues: number[] = [];
  /** Live value slots not in `index` (see addUnindexed). */
  private unindexed = 0;
  // Scratch outputs of scanKey (avoids allocating on set/delete/get).
  private sNum = 0; // value of the key's digits
  private sLen = 0; // digit count (0 for the default)
  private sPid = 0;
  private sLow = 0;

  constructor(opts: { pages?: number } = {}) {
    this.pages = new PageMap(opts.pages ?? 16);
  }

  /**
   * Builds a table from (key, value) pairs in one pass. Throws RangeError naming the first invalid
   * key. A key given twice keeps its last value.
   */
  static build<V>(entries: Iterable<readonly [key: string, value: V]> | EntryColumns<V>): RouteTable<V> {
    const t = new RouteTable<V>({ pages: 1 });
    if (entries instanceof EntryColumns) {
      const st = t.beginBuild(entries.length);
      const keys = entries.keys;
      const values = entries.values;
      const u = Math.min(keys.length, entries.uniqueFrom);
      for (let i = 0; i < u; i++) t.buildAdd(st, keys[i]!, values[i]!);
      st.unique = true;
      for (let i = u; i < keys.length; i++) t.buildAdd(st, keys[i]!, values[i]!);
      t.endBuild(st);
    } else {
      const st = t.beginBuild(Array.isArray(entries) ? entries.length : 0);
      for (const entry of entries) t.buildAdd(st, entry[0], entry[1]);
      t.endBuild(st);
    }
    return t;
  }

  /**
   * The table's structure as plain data and typed arrays, for another thread to rebuild it with
   * fromState() (post it with tableTransferList(state) to move the arrays instead of copying them;
   * this table must not be used afterwards). Each value is exported as the number `idOf(value)`
   * gives; the receiver maps the numbers back to values.
   */
  exportState(idOf: (value: V) => number): RouteTableState {
    const ids = new Int32Array(this.values.length).fill(-1);
    for (let i = 1; i < this.values.length; i++) {
      const v = this.valueAt(i);
      if (v !== undefined) ids[i] = idOf(v);
    }
    return { pages: this.pages.exportState(), prefixes: this.prefixes.exportState(), refs: this.refs, ids, freeValues: this.freeValues.slice(), version: this.version };
  }

  /**
   * A table over an exported structure (arrays taken, not copied); `valueOf(id)` gives the value
   * for each exported id. The values are not entered in the identity index (like a bulk build's
   * used-once values): lookups are the same, a later set() of one of these objects takes a slot of
   * its own.
   */
  static fromState<V>(s: RouteTableState, valueOf: (id: number) => V): RouteTable<V> {
    // Pushed, not `new Array(n)`: V8 gives an array made that way with more than 100k elements
    // dictionary elements, and lookup() reads this array on every call.
    const values: (V | undefined)[] = [undefined];
    for (let i = 1; i < s.ids.length; i++) {
      const id = s.ids[i]!;
      values.push(id < 0 ? undefined : valueOf(id));
    }
    return RouteTable.fromStateValues(s, values);
  }

  /**
   * fromState() with values made when first needed: `valueOf(id)` is called on the first lookup
   * that reaches a slot, and its answer kept. Taking a large table in then allocates no object per
   * value (a million route objects made at once on the main thread cost it long garbage
   * collection pauses); `valueOf` must not throw. `values`: an array of undefined to take as the
   * value slots (built by pushing; grown or cut to the state's length).
   */
  static fromStateLazy<V>(s: RouteTableState, valueOf: (id: number) => V, values: (V | undefined)[] = [undefined]): RouteTable<V> {
    // `values` may come grown already (a loader pushes an undefined per entry as the entries
    // arrive: a million pushes at once are a long pause where fresh memory is slow to map).
    if (values.length > s.ids.length) values.length = s.ids.length;
    for (let i = values.length; i < s.ids.length; i++) values.push(undefined);
    const t = RouteTable.fromStateValues<V>(s, values);
    const ids = s.ids;
    t.fill = (vi) => {
      const id = ids[vi]!;
      return id < 0 ? undefined : valueOf(id);
    };
    return t;
  }

  /**
   * fromState() with the values given by slot: `values[i]` is the value of the id in `s.ids[i]`
   * (index 0 unused). The array is taken as it is (no copy): build it by pushing.
   */
  static fromStateValues<V>(s: RouteTableState, values: (V | undefined)[]): RouteTable<V> {
    const t = new RouteTable<V>({ pages: 1 });
    const w = t as unknown as { pages: PageMap; prefixes: PrefixIndex; refs: Int32Array; values: (V | undefined)[]; freeValues: number[]; unindexed: number };
    w.pages = PageMap.fromState(s.pages);
    w.prefixes = PrefixIndex.fromState(s.prefixes);
    w.refs = s.refs;
    let live = 0;
    for (let i = 1; i < s.ids.length; i++) if (s.ids[i]! >= 0) live++;
    w.values = values;
    w.freeValues = s.freeValues.slice();
    w.unindexed = live;
    t.version = s.version;
    return t;
  }

  // Exact keys are collected into flat arrays and loaded grouped by page; prefixes go straight
  // into the prefix index. Value refcounts are taken here; bulkLoad reports overwritten duplicates.
  private beginBuild(hint: number): BuildState<V> {
    this.pages.reserve(hint);
    const cap = Math.max(1024, hint);
    return { cap, pids: new Float64Array(cap), lows: new Uint8Array(cap), vis: new Int32Array(cap), n: 0, lastValue: undefined, lastIndex: 0, unique: false };
  }

  private buildAdd(st: BuildState<V>, key: string, value: V): void {
    const kind = this.scanKey(key);
    if (kind === K_INVALID) throw invalidKey(key);
    let vi: number;
    if (st.unique) vi = this.addUnindexed(value);
    else if (st.lastIndex !== 0 && value === st.lastValue) {
      vi = st.lastIndex;
      this.refs[vi]++;
    } else {
      vi = this.intern(value);
      st.lastValue = value;
      st.lastIndex = vi;
    }
    if (kind === K_EXACT) {
      const n = st.n;
      if (n === st.cap) {
        st.cap *= 2;
        st.pids = grow(st.pids, new Float64Array(st.cap));
        st.lows = grow(st.lows, new Uint8Array(st.cap));
        st.vis = grow(st.vis, new Int32Array(st.cap));
      }
      st.pids[n] = this.sPid;
      st.lows[n] = this.sLow;
      st.vis[n] = vi;
      st.n = n + 1;
    } else {
      const old = this.prefixes.set(this.sNum, this.sLen, vi);
      if (old !== NO_VALUE) this.release(old);
    }
  }

  private endBuild(st: BuildState<V>): void {
    this.pages.bulkLoad(st.pids, st.lows, st.vis, st.n, (old) => this.release(old));
    this.pages.trim();
  }

  /** Inserts or replaces one key. Throws RangeError on an invalid key. */
  set(key: string, value: V): void {
    const kind = this.scanKey(key);
    if (kind === K_INVALID) throw invalidKey(key);
    this.put(kind, this.intern(value));
  }

  /** Removes one key; false when it was absent (or is not a valid key). */
  delete(key: string): boolean {
    const kind = this.scanKey(key);
    let old: number;
    if (kind === K_EXACT) old = this.pages.delete(this.sPid, this.sLow);
    else if (kind === K_PREFIX || kind === K_DEFAULT) old = this.prefixes.delete(this.sNum, this.sLen);
    else return false;
    if (old === NO_VALUE) return false;
    this.release(old);
    return true;
  }

  /** The value stored under exactly this key (no longest-prefix match). */
  get(key: string): V | undefined {
    return this.valueAt(this.indexOfKey(key));
  }

  has(key: string): boolean {
    return this.indexOfKey(key) !== NO_VALUE;
  }

  /**
   * Longest-prefix-match lookup of a number ("+" and 1..15 digits, or bare digits). Returns the
   * value of the exact key, else of the longest prefix, else of the default, else undefined; sets
   * `match`. Allocates nothing.
   */
  lookup(number: string): V | undefined {
    const m = this.match;
    const n = number.length;
    const start = n !== 0 && number.charCodeAt(0) === 43 ? 1 : 0;
    const len = n - start;
    if (len < 1 || len > MAX_DIGITS) {
      m.kind = MATCH_NONE;
      m.length = 0;
      return undefined;
    }
    const pre = this.pre;
    let acc = 0;
    for (let i = start, l = 1; i < n; i++, l++) {
      const d = number.charCodeAt(i) - 48;
      if (d < 0 || d > 9) {
        m.kind = MATCH_NONE;
        m.length = 0;
        return undefined;
      }
      acc = acc * 10 + d;
      pre[l] = acc;
    }
    // Exact: block line -> page -> slot (page-map.ts).
    const page = len > 2 ? pre[len - 2] : 0;
    const block = len > 3 ? pre[len - 3] : 0;
    const pages = this.pages;
    const prefixes = this.prefixes;
    let vi: number;
    const s = pages.findBlock(block * 16 + len);
    if (s >= 0) {
      // one 64-byte line: the block's pages and the cache of its covering prefix
      const blocks = pages.blocks;
      const b = blocks[s + B_PAGES + page - block * 10];
      if (b !== 0) {
        vi = pages.slab[b - 1 + acc - page * 100];
        if (vi !== 0) {
          m.kind = MATCH_EXACT;
          m.length = len;
          return this.values[vi] ?? this.valueAt(vi);
        }
      }
      // A known block: the longest prefix covering the whole block is cached in its line.
      if (blocks[s + B_CACHE_EPOCH] !== prefixes.epoch) this.fillBlockCache(s, block * 16 + len, len);
      const depth = blocks[s + B_CACHE_DEPTH];
      if (depth !== DEEP) {
        vi = blocks[s + B_CACHE_VALUE];
        return this.matched(vi, depth);
      }
    }
    vi = prefixes.longestMatch(pre, len);
    return this.matched(vi, prefixes.depth);
  }

  /** Sets `match` for a prefix/default match of value vi at depth digits (vi 0: no match). */
  private matched(vi: number, depth: number): V | undefined {
    const m = this.match;
    if (vi === 0) {
      m.kind = MATCH_NONE;
      m.length = 0;
      return undefined;
    }
    m.kind = depth === 0 ? MATCH_DEFAULT : MATCH_PREFIX;
    m.length = depth;
    return this.values[vi] ?? this.valueAt(vi);
  }

  /** Fills the block cache in line s for the number in `pre` (of len digits, block id bid). */
  private fillBlockCache(s: number, bid: number, len: number): void {
    const blocks = this.pages.blocks;
    const prefixes = this.prefixes;
    if (prefixes.deep.get(bid) > 0) blocks[s + B_CACHE_DEPTH] = DEEP;
    else {
      const bl = len - 3; // digits of the block: prefixes up to that long cover all of it
      blocks[s + B_CACHE_VALUE] = bl > 0 ? prefixes.longestMatch(this.pre, bl) : prefixes.def;
      blocks[s + B_CACHE_DEPTH] = bl > 0 ? prefixes.depth : 0;
    }
    blocks[s + B_CACHE_EPOCH] = prefixes.epoch;
  }

  /** Key string of the last lookup's match ("" when it matched nothing). Allocates. */
  matchedKey(): string {
    // The digits of the last number stay in `pre` (storing the string itself would cost a write
    // barrier per lookup).
    const m = this.match;
    switch (m.kind) {
      case MATCH_EXACT:
        return "+" + digitsOf(this.pre[m.length], m.length);
      case MATCH_PREFIX:
        return "+" + digitsOf(this.pre[m.length], m.length) + "*";
      case MATCH_DEFAULT:
        return "*";
      default:
        return "";
    }
  }

  get size(): number {
    return this.pages.count + this.prefixes.count + (this.prefixes.def !== NO_VALUE ? 1 : 0);
  }

  counts(): { exact: number; prefix: number; default: number } {
    return { exact: this.pages.count, prefix: this.prefixes.count, default: this.prefixes.def !== NO_VALUE ? 1 : 0 };
  }

  /** One past the highest value slot (walk [1, valueSlotEnd) in slices with forEachValueSlot). */
  get valueSlotEnd(): number {
    return this.values.length;
  }

  /**
   * Calls fn(value, keys, slot) for each live value slot in [from, to): its value and how many
   * keys (of every kind) hold it. A value not made yet (fromStateLazy) is made for the call and
   * not kept, so a walk over a large lazily built table leaves it as lazy as it was.
   */
  forEachValueSlot(from: number, to: number, fn: (value: V, keys: number, slot: number) => void): void {
    const end = Math.min(to, this.values.length, this.refs.length);
    for (let vi = Math.max(1, from); vi < end; vi++) {
      const n = this.refs[vi]!;
      if (n <= 0) continue;
      const v = this.values[vi] ?? this.fill?.(vi);
      if (v !== undefined) fn(v, n, vi);
    }
  }

  /** The value slot of the default and of every prefix, once per key (to tell them from exact keys). */
  prefixSlots(): number[] {
    const out: number[] = [];
    if (this.prefixes.def !== NO_VALUE) out.push(this.prefixes.def);
    this.prefixes.forEach((_d, vi) => out.push(vi));
    return out;
  }

  /** Value slots in use: the distinct value objects referenced by some key (a value built in as used once counts once per slot). */
  get distinctValues(): number {
    return this.index.size + this.unindexed;
  }

  /** Bytes held in typed arrays (excludes the value objects and the interning Map). */
  get byteLength(): number {
    return this.pages.byteLength + this.prefixes.byteLength + this.refs.byteLength;
  }

  /** Every (key, value); order: the default, prefixes, then exact keys (unspecified order). */
  *entries(): IterableIterator<[string, V]> {
    const def = this.prefixes.def;
    if (def !== NO_VALUE) yield ["*", this.valueAt(def) as V];
    const out: [string, number][] = [];
    this.prefixes.forEach((digits, vi) => out.push(["+" + digits + "*", vi]));
    for (const [k, vi] of out) yield [k, this.valueAt(vi) as V];
    const exact: [number, number, number][] = [];
    this.pages.forEach((pid, low, vi) => exact.push([pid, low, vi]));
    for (const [pid, low, vi] of exact) yield [exactKey(pid, low), this.valueAt(vi) as V];
  }

  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  // ---- internals ----

  private indexOfKey(key: string): number {
    const kind = this.scanKey(key);
    if (kind === K_EXACT) return this.pages.get(this.sPid, this.sLow);
    if (kind === K_PREFIX || kind === K_DEFAULT) return this.prefixes.get(this.sNum, this.sLen);
    return NO_VALUE;
  }

  /** Stores value index vi (already counted) under a scanned key, releasing any old value. */
  private put(kind: number, vi: number): void {
    const old =
      kind === K_EXACT ? this.pages.set(this.sPid, this.sLow, vi) : this.prefixes.set(this.sNum, this.sLen, vi);
    if (old !== NO_VALUE) this.release(old);
  }

  /**
   * Classifies a key without allocating; for valid keys fills sNum/sLen and, for exact keys,
   * sPid/sLow.
   */
  private scanKey(key: string): number {
    if (typeof key !== "string") return K_INVALID;
    const n = key.length;
    if (n === 1 && key.charCodeAt(0) === 42) {
      this.sNum = 0;
      this.sLen = 0;
      return K_DEFAULT;
    }
    if (n < 2 || key.charCodeAt(0) !== 43) return K_INVALID;
    const isPrefix = key.charCodeAt(n - 1) === 42;
    const end = isPrefix ? n - 1 : n;
    const len = end - 1;
    if (len < 1 || len > MAX_DIGITS) return K_INVALID;
    let page = 0;
    let low = 0;
    const split = end - 2;
    for (let i = 1; i < end; i++) {
      const d = key.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return K_INVALID;
      if (i < split) page = page * 10 + d;
      else low = low * 10 + d;
    }
    this.sNum = page * 100 + low;
    this.sLen = len;
    if (isPrefix) return K_PREFIX;
    this.sPid = pageId(page, len);
    this.sLow = low;
    return K_EXACT;
  }

  /** Index of value (interned by identity), with its refcount incremented. */
  private intern(value: V): number {
    let vi = this.index.get(value);
    if (vi === undefined) {
      vi = this.newSlot(value);
      this.index.set(value, vi);
    }
    this.refs[vi]++;
    return vi;
  }

  /**
   * A slot of its own for a value used by one key (a bulk build's EntryColumns.uniqueFrom part):
   * not entered in the identity index, which costs most of a large build of distinct values. A
   * later set() of the same object gets another slot; lookups are the same either way.
   */
  private addUnindexed(value: V): number {
    const vi = this.newSlot(value);
    this.refs[vi] = 1;
    this.unindexed++;
    return vi;
  }

  /** The value in slot vi, made now if the table is lazy and it was not made yet. */
  private valueAt(vi: number): V | undefined {
    const v = this.values[vi];
    if (v !== undefined || this.fill === undefined || vi === 0 || vi >= this.values.length || this.refs[vi] === 0) return v;
    const made = this.fill(vi);
    this.values[vi] = made;
    return made;
  }

  private newSlot(value: V): number {
    const vi = this.freeValues.length > 0 ? (this.freeValues.pop() as number) : this.values.length;
    if (vi === this.values.length) this.values.push(value);
    else this.values[vi] = value;
    if (vi >= this.refs.length) {
      const refs = new Int32Array(Math.max(this.refs.length * 2, vi + 1));
      refs.set(this.refs);
      this.refs = refs;
    }
    this.refs[vi] = 0;
    return vi;
  }

  private release(vi: number): void {
    if (--this.refs[vi] === 0) {
      const v = this.values[vi] as V;
      if (this.index.get(v) === vi) this.index.delete(v);
      else this.unindexed--;
      this.values[vi] = undefined;
      this.freeValues.push(vi);
    }
  }
}

function grow<T extends Float64Array | Uint8Array | Int32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

/** `num` as exactly `len` digits (leading zeros kept). */
function digitsOf(num: number, len: number): string {
  return String(num).padStart(len, "0");
}

/** Exact key string for page id and low two digits. */
function exactKey(pid: number, low: number): string {
  const len = pid % 16;
  const num = ((pid - len) / 16) * PAGE_SIZE + low;
  return "+" + String(num).padStart(len, "0");
}

/** A RouteTable's structure (RouteTable.exportState). */
export interface RouteTableState {
  pages: PageMapState;
  prefixes: PrefixIndexState;
  refs: Int32Array;
  /** Per value slot, the exported id of its value (-1: free slot; slot 0 is never used). */
  ids: Int32Array;
  freeValues: number[];
  version: string;
}

/** The distinct ArrayBuffers of an exported table, to transfer with postMessage. */
export function tableTransferList(s: RouteTableState): ArrayBuffer[] {
  const arrays = [
    s.pages.blocks,
    s.pages.tags,
    s.pages.slab,
    s.pages.fill,
    s.prefixes.map.slots,
    s.prefixes.deep.slots,
    s.prefixes.headCount.slots,
    s.prefixes.short,
    s.prefixes.heads,
    s.refs,
    s.ids,
  ];
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
}

interface BuildState<V> {
  cap: number;
  pids: Float64Array;
  lows: Uint8Array;
  vis: Int32Array;
  n: number;
  lastValue: V | undefined;
  lastIndex: number;
  /** Values from here on are used once each (EntryColumns.uniqueFrom): no interning. */
  unique: boolean;
}

/**
 * (key, value) pairs kept as two columns: a million-entry load then holds two pointers per entry
 * instead of a two-element array each. RouteTable.build takes it directly; iterating yields pairs.
 */
export class EntryColumns<V> implements Iterable<[string, V]> {
  readonly keys: string[] = [];
  readonly values: V[] = [];
  /**
   * Entries from this index on have values used by that entry alone (no other entry holds the
   * same object): RouteTable.build gives them slots without interning. Infinity: unknown.
   */
  uniqueFrom = Infinity;

  get length(): number {
    return this.keys.length;
  }

  push(key: string, value: V): void {
    this.keys.push(key);
    this.values.push(value);
  }

  *[Symbol.iterator](): IterableIterator<[string, V]> {
    for (let i = 0; i < this.keys.length; i++) yield [this.keys[i]!, this.values[i]!];
  }
}

/** Holds the live table; sources build a new table and swap it in whole. */
export class RouteStore<V> {
  current: RouteTable<V>;

  constructor(initial: RouteTable<V> = new RouteTable<V>()) {
    this.current = initial;
  }

  /** Installs `next` and returns the table it replaced. */
  swap(next: RouteTable<V>): RouteTable<V> {
    const old = this.current;
    this.current = next;
    return old;
  }
}
