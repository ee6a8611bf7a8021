/**
 * Exact-number store for RouteTable: "pages" of 100 consecutive numbers of one length, grouped by
 * blocks of 1000.
 *
 * A number of L digits (1..15) reading as N splits into page = floor(N / 100) and low = N % 100;
 * the page splits into block = floor(page / 10) and k = page % 10. The block id
 * `bid = block * 16 + L` (< 1.6e13, exact in a double, never 0) is looked up in a small NumMap
 * (trie-hash.ts: open addressing over a Float64Array of [bid, group] pairs); the group is a run of
 * 10 int32 in `groups` holding each page's slab offset + 1 (0 = no such page). The slab is one
 * Int32Array of value slots, 100 per page (NO_VALUE = 0 = empty, values are >= 1, so fresh zeroed
 * memory is an empty page).
 *
 * Why two levels: a lookup can afford one miss past L2 (the slab line). The block directory
 * (16 bytes per block) and the groups (40 bytes per block) are ten times smaller than a hash of
 * pages and stay in L2 with the prefix index, so an exact hit costs one memory miss and a number
 * without a page costs none.
 *
 * The page id `pid = page * 16 + L` names a page in the API (tests, bulk loads). Pages and groups
 * emptied by deletes go on free lists and are reused (an emptied page is all zeros again);
 * rebuilding a table compacts. bulkLoad() groups a batch by page (counting sort) before writing,
 * so a large build writes the slab page by page instead of at random.
 *
 * Pure; find()/slab reads allocate nothing.
 */

import { NO_VALUE } from "./trie.js";
import { NumMap } from "./trie-hash.js";

export const PAGE_SIZE = 100;
/** Pages per group (one block of 1000 numbers). */
const GROUP = 10;

/** Page id of a number of `len` digits whose digits except the last two read as `page`. */
export function pageId(page: number, len: number): number {
  return page * 16 + len;
}

/** Block id of a number of `len` digits whose digits except the last three read as `block`. */
export function blockId(block: number, len: number): number {
  return block * 16 + len;
}

export class PageMap {
  /** bid -> group index. */
  readonly dir: NumMap;
  /** Per group, GROUP slots of (slab offset + 1), 0 = page absent. */
  groups: Int32Array;
  /** Value slots, PAGE_SIZE per page. */
  slab: Int32Array;
  /** Filled slots per page (indexed by page number = offset / PAGE_SIZE). */
  fill: Uint8Array;
  /** Stored numbers. */
  count = 0;
  /** Live pages. */
  livePages = 0;
  /**
   * Per-group cache for numbers of the block that are not stored exactly (RouteTable fills it):
   * the longest prefix covering the whole block (value index, 0 = none, and its length), valid
   * while cacheEpoch[g] equals the prefix index's epoch; cacheDepth DEEP means "some prefix ends
   * inside this block, do the full match".
   */
  cacheValue: Int32Array;
  cacheDepth: Uint8Array;
  cacheEpoch: Int32Array;
  private groupFill: Uint8Array;
  private pagesUsed = 0; // high-water mark of page numbers
  private groupsUsed = 0; // high-water mark of group numbers
  private freePages: number[] = [];
  private freeGroups: number[] = [];
  // Scratch outputs of locate().
  private lBid = 0;
  private lK = 0;

  constructor(initialPages = 16) {
    const pages = Math.max(1, initialPages);
    const groups = Math.max(1, Math.ceil(pages / 4));
    this.dir = new NumMap(groups);
    this.groups = new Int32Array(groups * GROUP);
    this.groupFill = new Uint8Array(groups);
    this.cacheValue = new Int32Array(groups);
    this.cacheDepth = new Uint8Array(groups);
    this.cacheEpoch = new Int32Array(groups);
    this.slab = new Int32Array(pages * PAGE_SIZE);
    this.fill = new Uint8Array(pages);
  }

  /** Bytes held by the typed arrays. */
  get byteLength(): number {
    return (
      this.dir.byteLength +
      this.groups.byteLength +
      this.groupFill.byteLength * 10 + // groupFill, cacheValue, cacheDepth, cacheEpoch
      this.slab.byteLength +
      this.fill.byteLength
    );
  }

  /** Makes room in the block directory for about `numbers` numbers without rehashing. */
  reserve(numbers: number): void {
    this.dir.reserve(Math.ceil(numbers / 640));
  }

  /** Slab offset of page `pid`, or -1. */
  find(pid: number): number {
    this.locate(pid);
    const g = this.dir.get(this.lBid);
    return g < 0 ? -1 : this.groups[g * GROUP + this.lK] - 1;
  }

  /** Value at (pid, low) or NO_VALUE. */
  get(pid: number, low: number): number {
    const base = this.find(pid);
    return base < 0 ? NO_VALUE : this.slab[base + low];
  }

  /** Stores value (>= 1) at (pid, low); returns the replaced value or NO_VALUE. */
  set(pid: number, low: number, value: number): number {
    const base = this.findOrAdd(pid);
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
    const g = this.dir.get(this.lBid);
    if (g < 0) return NO_VALUE;
    const gi = g * GROUP + this.lK;
    const base = this.groups[gi] - 1;
    if (base < 0) return NO_VALUE;
    const old = this.slab[base + low];
    if (old === 0) return NO_VALUE;
    this.slab[base + low] = NO_VALUE;
    this.count--;
    const p = base / PAGE_SIZE;
    if (--this.fill[p] === 0) {
      this.groups[gi] = 0;
      this.freePages.push(p); // all its slots are 0 again
      this.livePages--;
      if (--this.groupFill[g] === 0) {
        this.dir.delete(this.lBid);
        this.freeGroups.push(g); // all its slots are 0 again
      }
    }
    return old;
  }

  /** Calls fn(pid, low, value) for every stored number (page order is hash order). */
  forEach(fn: (pid: number, low: number, value: number) => void): void {
    this.dir.forEach((bid, g) => {
      const len = bid % 16;
      const block = (bid - len) / 16;
      for (let k = 0; k < GROUP; k++) {
        const base = this.groups[g * GROUP + k] - 1;
        if (base < 0) continue;
        const pid = pageId(block * GROUP + k, len);
        for (let low = 0; low < PAGE_SIZE; low++) {
          const v = this.slab[base + low];
          if (v !== 0) fn(pid, low, v);
        }
      }
    });
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
    const gneed = Math.max(1, this.groupsUsed);
    if (this.groupFill.length > gneed + (gneed >> 6) + 1) {
      this.groups = this.groups.slice(0, gneed * GROUP);
      this.groupFill = this.groupFill.slice(0, gneed);
      this.cacheValue = this.cacheValue.slice(0, gneed);
      this.cacheDepth = this.cacheDepth.slice(0, gneed);
      this.cacheEpoch = this.cacheEpoch.slice(0, gneed);
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

  private findOrAdd(pid: number): number {
    const p = this.pageOf(pid, false);
    return p * PAGE_SIZE;
  }

  /**
   * Page number of `pid`, adding the page (and its group) when absent. With `deferSlab` the slab
   * is not grown (bulkLoad grows it once, to pagesUsed).
   */
  private pageOf(pid: number, deferSlab: boolean): number {
    this.locate(pid);
    const bid = this.lBid;
    let g = this.dir.get(bid);
    if (g < 0) {
      if (this.freeGroups.length > 0) g = this.freeGroups.pop() as number;
      else {
        g = this.groupsUsed++;
        if (g >= this.groupFill.length) this.ensureGroups(Math.max(16, this.groupFill.length * 2));
      }
      this.dir.set(bid, g);
      this.cacheEpoch[g] = 0; // no epoch is 0: the cache is invalid
    }
    const gi = g * GROUP + this.lK;
    const b = this.groups[gi];
    if (b !== 0) return (b - 1) / PAGE_SIZE;
    let p: number;
    if (this.freePages.length > 0) p = this.freePages.pop() as number;
    else {
      p = this.pagesUsed++;
      if (!deferSlab && p >= this.fill.length) this.ensurePages(Math.max(16, this.fill.length * 2));
    }
    // all its slots are 0: fresh memory, or a page emptied by deletes
    this.groups[gi] = p * PAGE_SIZE + 1;
    this.groupFill[g]++;
    this.livePages++;
    return p;
  }

  /** Makes room for `pages` pages in the slab (exactly that many when it grows). */
  private ensurePages(pages: number): void {
    if (pages <= this.fill.length) return;
    const slab = new Int32Array(pages * PAGE_SIZE);
    slab.set(this.slab);
    const fill = new Uint8Array(pages);
    fill.set(this.fill);
    this.slab = slab;
    this.fill = fill;
  }

  private ensureGroups(groups: number): void {
    if (groups <= this.groupFill.length) return;
    const g = new Int32Array(groups * GROUP);
    g.set(this.groups);
    const f = new Uint8Array(groups);
    f.set(this.groupFill);
    this.groups = g;
    this.groupFill = f;
    this.cacheValue = growTo(this.cacheValue, new Int32Array(groups));
    this.cacheDepth = growTo(this.cacheDepth, new Uint8Array(groups));
    this.cacheEpoch = growTo(this.cacheEpoch, new Int32Array(groups));
  }
}

function growTo<T extends Int32Array | Uint8Array>(from: T, to: T): T {
  to.set(from);
  return to;
}
