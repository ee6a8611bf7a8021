/**
 * Exact-number store for RouteTable: "pages" of 100 consecutive numbers of one length, grouped by
 * blocks of 1000.
 *
 * A number of L digits (1..15) reading as N splits into page = floor(N / 100) and low = N % 100;
 * the page splits into block = floor(page / 10) and k = page % 10. The block id
 * `bid = block * 16 + L` (< 1.6e13, exact in a double, never 0) names a line of the block table:
 * an open-addressing hash (linear probing, load <= 1/2) over one Int32Array whose slots are 16
 * int32, 64 bytes, one cache line (probes run over a separate array of 32-bit tags, 4 bytes a
 * slot, and read a line only on a tag match):
 *
 *   [0] unused (the low 32 bits of the bid are the slot's tag)  [1] bid high bits
 *   [2 .. 11] per page k of the block: its slab offset + 1 (0 = no such page)
 *   [12] cached value, [13] its depth, [14] the prefix epoch it is valid for (see RouteTable)
 *   [15] live pages of the block
 *
 * The slab is one typed array of value slots, 100 per page (NO_VALUE = 0 = empty, values are >= 1,
 * so fresh zeroed memory is an empty page): a Uint16Array while every value is below 65536 (a table
 * whose keys share at most 65535 distinct routes: half the bytes, so twice the numbers fit in the
 * caches and the TLB's reach), widened once to an Int32Array when a larger value is stored.
 *
 * Why one line per block: a lookup can afford one miss past L2 (the slab line). With the block's
 * id, its pages and the cache of its covering prefix in one line, an exact hit costs that line and
 * the slab line, and a number of a known block without its own entry costs the one line; at 10M
 * numbers the table no longer fits in L2 and every separate array would be another miss (and, on a
 * VM, another TLB miss).
 *
 * The page id `pid = page * 16 + L` names a page in the API (tests, bulk loads). Pages emptied by
 * deletes go on a free list and are reused (an emptied page is all zeros again); a block whose last
 * page empties leaves the table (backward-shift deletion, no tombstones); rebuilding a table
 * compacts. bulkLoad() groups a batch by page (counting sort) before writing, so a large build
 * writes the slab page by page instead of at random.
 *
 * Pure; findBlock() and slab reads allocate nothing.
 */

import { NO_VALUE } from "./trie.js";
import { hashKey } from "./num-map.js";

export const PAGE_SIZE = 100;
/** Pages per block. */
const GROUP = 10;
/** int32 per block-table slot (64 bytes). */
export const LINE = 16;
/** Offsets inside a block line. */
export const B_PAGES = 2;
export const B_CACHE_VALUE = 12;
export const B_CACHE_DEPTH = 13;
export const B_CACHE_EPOCH = 14;
const B_FILL = 15;
/** 2^-32 (exact scaling of a double). */
const INV_TWO32 = 2.3283064365386963e-10;

/** Page id of a number of `len` digits whose digits except the last two read as `page`. */
export function pageId(page: number, len: number): number {
  return page * 16 + len;
}

/** The block id of slot i: its tag (low 32 bits) and the high bits in its line. */
function bidAt(tags: Int32Array, b: Int32Array, i: number): number {
  return (tags[i]! >>> 0) + b[i * LINE + 1]! * 4294967296;
}

/** Block id of a number of `len` digits whose digits except the last three read as `block`. */
export function blockId(block: number, len: number): number {
  return block * 16 + len;
}

export interface PageMapState {
  blocks: Int32Array;
  tags: Int32Array;
  mask: number;
  blockCount: number;
  slab: Int32Array | Uint16Array;
  fill: Uint8Array;
  count: number;
  livePages: number;
  pagesUsed: number;
  freePages: number[];
}

export class PageMap {
  /** The block table: (mask + 1) lines of LINE int32 (layout at the top of this file). */
  blocks: Int32Array;
  /**
   * Per slot, the low 32 bits of its block id (never 0 for a valid id: 2^32 is a multiple of 16
   * and a block id's low 4 bits are its length, 1..15), 0 for an empty slot: a probe runs over this
   * small array (16 slots a cache line) and reads a block line only where the tag matches, so a
   * number of no known block costs no block line at all.
   */
  tags: Int32Array;
  /** Slots - 1 (a power of two minus one). */
  mask: number;
  /** Blocks in the table. */
  blockCount = 0;
  /** Value slots, PAGE_SIZE per page (Uint16Array until a value above 65535 is stored). */
  slab: Int32Array | Uint16Array;
  /** Filled slots per page (indexed by page number = offset / PAGE_SIZE). */
  fill: Uint8Array;
  /** Stored numbers. */
  count = 0;
  /** Live pages. */
  livePages = 0;
  private pagesUsed = 0; // high-water mark of page numbers
  private freePages: number[] = [];
  // Scratch outputs of locate().
  private lBid = 0;
  private lK = 0;

  constructor(initialPages = 16) {
    const pages = Math.max(1, initialPages);
    let n = 16;
    while (n < pages) n *= 2; // about one block per page or fewer
    this.blocks = new Int32Array(n * LINE);
    this.tags = new Int32Array(n);
    this.mask = n - 1;
    this.slab = new Uint16Array(pages * PAGE_SIZE);
    this.fill = new Uint8Array(pages);
  }

  /** The map's state as transferable parts (see RouteTable.exportState). */
  exportState(): PageMapState {
    return {
      blocks: this.blocks,
      tags: this.tags,
      mask: this.mask,
      blockCount: this.blockCount,
      slab: this.slab,
      fill: this.fill,
      count: this.count,
      livePages: this.livePages,
      pagesUsed: this.pagesUsed,
      freePages: this.freePages.slice(),
    };
  }

  /** A map over the given state (the arrays are taken, not copied). */
  static fromState(s: PageMapState): PageMap {
    const m = new PageMap(1);
    m.blocks = s.blocks;
    m.tags = s.tags;
    m.mask = s.mask;
    m.blockCount = s.blockCount;
    m.slab = s.slab;
    m.fill = s.fill;
    m.count = s.count;
    m.livePages = s.livePages;
    m.pagesUsed = s.pagesUsed;
    m.freePages = s.freePages.slice();
    return m;
  }

  /** True once the slab holds 32-bit values. */
  get wide(): boolean {
    return this.slab instanceof Int32Array;
  }

  /** Makes the slab hold 32-bit values (a one-time copy). */
  private widen(): void {
    if (this.slab instanceof Int32Array) return;
    const w = new Int32Array(this.slab.length);
    w.set(this.slab);
    this.slab = w;
  }

  /** Bytes held by the typed arrays. */
  get byteLength(): number {
    return this.blocks.byteLength + this.tags.byteLength + this.slab.byteLength + this.fill.byteLength;
  }

  /** Makes room in the block table for about `numbers` numbers without rehashing. */
  reserve(numbers: number): void {
    const blocks = Math.ceil(numbers / 640);
    let n = this.mask + 1;
    while (blocks * 2 > n) n *= 2;
    if (n !== this.mask + 1) this.rehash(n);
  }

  /** Index in `blocks` of the line of block `bid`, or -1. Hot path. */
  findBlock(bid: number): number {
    const lo = bid | 0;
    const tags = this.tags;
    const mask = this.mask;
    let i = hashKey(bid) & mask;
    for (;;) {
      const t = tags[i];
      if (t === lo) {
        const s = i * LINE;
        if (this.blocks[s + 1] === ((bid * INV_TWO32) | 0)) return s;
      } else if (t === 0) return -1;
      i = (i + 1) & mask;
    }
  }

  /** Slab offset of page `pid`, or -1. */
  find(pid: number): number {
    this.locate(pid);
    const s = this.findBlock(this.lBid);
    return s < 0 ? -1 : this.blocks[s + B_PAGES + this.lK] - 1;
  }

  /** Value at (pid, low) or NO_VALUE. */
  get(pid: number, low: number): number {
    const base = this.find(pid);
    return base < 0 ? NO_VALUE : this.slab[base + low];
  }

  /** Stores value (>= 1) at (pid, low); returns the replaced value or NO_VALUE. */
  set(pid: number, low: number, value: number): number {
    if (value > 0xffff) this.widen();
    const base = this.pageOf(pid, false) * PAGE_SIZE;
    const slab = this.slab;
    const old = slab[base + low];
    slab[base + low] = value;
    if (old === 0) {
      this.count++;
      this.fill[base / PAGE_SIZE]++;
    }
    return old;
  }

  /** Removes (pid, low); returns the removed value or NO_VALUE. Frees the page when it empties. */
  delete(pid: number, low: number): number {
    this.locate(pid);
    const s = this.findBlock(this.lBid);
    if (s < 0) return NO_VALUE;
    const blocks = this.blocks;
    const gi = s + B_PAGES + this.lK;
    const base = blocks[gi] - 1;
    if (base < 0) return NO_VALUE;
    const old = this.slab[base + low];
    if (old === 0) return NO_VALUE;
    this.slab[base + low] = NO_VALUE;
    this.count--;
    const p = base / PAGE_SIZE;
    if (--this.fill[p] === 0) {
      blocks[gi] = 0;
      this.freePages.push(p); // all its slots are 0 again
      this.livePages--;
      if (--blocks[s + B_FILL] === 0) this.removeBlock(s / LINE);
    }
    return old;
  }

  /** Calls fn(pid, low, value) for every stored number (block order is hash order). */
  forEach(fn: (pid: number, low: number, value: number) => void): void {
    const b = this.blocks;
    for (let s = 0; s < b.length; s += LINE) {
      if (this.tags[s / LINE] === 0) continue; // an empty slot
      const bid = bidAt(this.tags, b, s / LINE);
      const len = bid % 16;
      const block = (bid - len) / 16;
      for (let k = 0; k < GROUP; k++) {
        const base = b[s + B_PAGES + k] - 1;
        if (base < 0) continue;
        const pid = pageId(block * GROUP + k, len);
        for (let low = 0; low < PAGE_SIZE; low++) {
          const v = this.slab[base + low];
          if (v !== 0) fn(pid, low, v);
        }
      }
    }
  }

  /**
   * Stores n (pid, low, value) triples, later ones winning; calls onReplace(old) for every value
   * overwritten. Same result as n set() calls, but writes the slab grouped by page.
   */
  bulkLoad(pids: Float64Array, lows: Uint8Array, values: Int32Array, n: number, onReplace: (old: number) => void): void {
    // One scratch buffer (few large ArrayBuffer allocations: each one can trigger a full GC).
    const scratch = new ArrayBuffer(n * 9);
    const pageOf = new Int32Array(scratch, 0, n);
    const sVal = new Int32Array(scratch, n * 4, n);
    const sLow = new Uint8Array(scratch, n * 8, n);
    // 1. Page numbers: existing pages, else new ones (free list first), without touching the slab.
    let lastPid = -1;
    let lastPage = 0;
    for (let i = 0; i < n; i++) {
      const pid = pids[i];
      if (pid !== lastPid) {
        lastPid = pid;
        lastPage = this.pageOf(pid, true);
      }
      pageOf[i] = lastPage;
    }
    const used = this.pagesUsed;
    this.ensurePages(used);
    let max = 0;
    for (let i = 0; i < n; i++) if (values[i] > max) max = values[i];
    if (max > 0xffff) this.widen();
    // 2. Counting sort by page (stable, so later duplicates stay later).
    const start = new Int32Array(used + 1);
    for (let i = 0; i < n; i++) start[pageOf[i] + 1]++;
    for (let p = 0; p < used; p++) start[p + 1] += start[p];
    const next = start.slice(0, used);
    for (let i = 0; i < n; i++) {
      const j = next[pageOf[i]]++;
      sLow[j] = lows[i];
      sVal[j] = values[i];
    }
    // 3. Write the slab page by page.
    const slab = this.slab;
    const fill = this.fill;
    let added = 0;
    for (let p = 0; p < used; p++) {
      const base = p * PAGE_SIZE;
      for (let j = start[p], end = start[p + 1]; j < end; j++) {
        const slot = base + sLow[j];
        const old = slab[slot];
        slab[slot] = sVal[j];
        if (old === 0) {
          fill[p]++;
          added++;
        } else onReplace(old);
      }
    }
    this.count += added;
  }

  /** Shrinks the slab to the pages in use (after a bulk build). */
  trim(): void {
    const need = Math.max(1, this.pagesUsed);
    if (this.fill.length > need + (need >> 6) + 1) {
      this.slab = this.slab.slice(0, need * PAGE_SIZE);
      this.fill = this.fill.slice(0, need);
    }
  }

  /** Splits a page id into lBid / lK. */
  private locate(pid: number): void {
    const len = pid % 16;
    const page = (pid - len) / 16;
    const block = Math.floor(page / GROUP);
    this.lBid = blockId(block, len);
    this.lK = page - block * GROUP;
  }

  /**
   * Page number of `pid`, adding the page (and its block) when absent. With `deferSlab` the slab
   * is not grown (bulkLoad grows it once, to pagesUsed).
   */
  private pageOf(pid: number, deferSlab: boolean): number {
    this.locate(pid);
    const bid = this.lBid;
    let s = this.findBlock(bid);
    if (s < 0) s = this.addBlock(bid);
    const blocks = this.blocks;
    const gi = s + B_PAGES + this.lK;
    const b = blocks[gi];
    if (b !== 0) return (b - 1) / PAGE_SIZE;
    let p: number;
    if (this.freePages.length > 0) p = this.freePages.pop() as number;
    else {
      p = this.pagesUsed++;
      if (!deferSlab && p >= this.fill.length) this.ensurePages(Math.max(16, this.fill.length * 2));
    }
    // all its slots are 0: fresh memory, or a page emptied by deletes
    blocks[gi] = p * PAGE_SIZE + 1;
    blocks[s + B_FILL]++;
    this.livePages++;
    return p;
  }

  /** Adds an empty line for block `bid` (absent); returns its index in `blocks`. */
  private addBlock(bid: number): number {
    if ((this.blockCount + 1) * 2 > this.mask + 1) this.rehash((this.mask + 1) * 2);
    const b = this.blocks;
    const tags = this.tags;
    const mask = this.mask;
    let i = hashKey(bid) & mask;
    while (tags[i] !== 0) i = (i + 1) & mask;
    const s = i * LINE;
    b[s + 1] = (bid * INV_TWO32) | 0;
    tags[i] = bid | 0;
    // pages, cache and fill are 0: the cache epoch 0 is no epoch (the cache is invalid)
    this.blockCount++;
    return s;
  }

  /** Removes the line at slot i (its pages are all gone): backward-shift deletion. */
  private removeBlock(i: number): void {
    const b = this.blocks;
    const tags = this.tags;
    const mask = this.mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (tags[j] === 0) break;
      const sj = j * LINE;
      const home = hashKey(bidAt(tags, b, j)) & mask;
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      b.copyWithin(i * LINE, sj, sj + LINE);
      tags[i] = tags[j];
      i = j;
    }
    b.fill(0, i * LINE, i * LINE + LINE);
    tags[i] = 0;
    this.blockCount--;
  }

  /** Rebuilds the block table with n slots (a power of two), moving every line whole. */
  private rehash(n: number): void {
    const old = this.blocks;
    const oldTags = this.tags;
    const b = new Int32Array(n * LINE);
    const tags = new Int32Array(n);
    const mask = n - 1;
    for (let j = 0; j < oldTags.length; j++) {
      if (oldTags[j] === 0) continue;
      let i = hashKey(bidAt(oldTags, old, j)) & mask;
      while (tags[i] !== 0) i = (i + 1) & mask;
      b.set(old.subarray(j * LINE, j * LINE + LINE), i * LINE);
      tags[i] = oldTags[j]!;
    }
    this.blocks = b;
    this.tags = tags;
    this.mask = mask;
  }

  /** Makes room for `pages` pages in the slab (exactly that many when it grows). */
  private ensurePages(pages: number): void {
    if (pages <= this.fill.length) return;
    const slab = this.slab instanceof Int32Array ? new Int32Array(pages * PAGE_SIZE) : new Uint16Array(pages * PAGE_SIZE);
    slab.set(this.slab);
    const fill = new Uint8Array(pages);
    fill.set(this.fill);
    this.slab = slab;
    this.fill = fill;
  }
}
