/**
 * Exact-number store for RouteTable: "pages" of 100 consecutive numbers of one length.
 *
 * A number of L digits (1..15) splits into page = all digits but the last two, and low = the last
 * two (0..99). The page id `pid = page * 16 + L` (< 1.6e14, exact in a double, never 0) is looked
 * up in a NumMap (trie-hash.ts: open addressing over a Float64Array of [pid, base] pairs). `base` is
 * the page's
 * offset in one Int32Array slab of int32 value slots (NO_VALUE = 0 = empty, values are >= 1, so
 * fresh zeroed memory is an empty page). Pages emptied by deletes go on a free list and are reused
 * (an emptied page is all zeros again); rebuilding a table compacts. bulkLoad() groups a batch by
 * page (counting sort) before writing, so a large build writes the slab page by page instead of at
 * random.
 *
 * Pure; find()/slab reads allocate nothing.
 */

import { NO_VALUE } from "./trie.js";
import { NumMap } from "./trie-hash.js";

export const PAGE_SIZE = 100;

/** Page id of a number of `len` digits whose digits except the last two read as `page`. */
export function pageId(page: number, len: number): number {
  return page * 16 + len;
}

export class PageMap {
  /** pid -> slab base. */
  readonly table: NumMap;
  /** Value slots, PAGE_SIZE per page. */
  slab: Int32Array;
  /** Filled slots per page (indexed by page number = base / PAGE_SIZE). */
  fill: Uint8Array;
  /** Stored numbers. */
  count = 0;
  private pagesUsed = 0; // high-water mark of page numbers
  private freePages: number[] = [];

  constructor(initialPages = 16) {
    const pages = Math.max(1, initialPages);
    this.table = new NumMap(pages);
    this.slab = new Int32Array(pages * PAGE_SIZE);
    this.fill = new Uint8Array(pages);
  }

  /** Live pages. */
  get livePages(): number {
    return this.table.size;
  }

  /** Bytes held by the typed arrays. */
  get byteLength(): number {
    return this.table.byteLength + this.slab.byteLength + this.fill.byteLength;
  }

  /** Slab base of page `pid`, or -1. Hot path. */
  find(pid: number): number {
    return this.table.get(pid);
  }

  /** Value at (pid, low) or NO_VALUE. */
  get(pid: number, low: number): number {
    const base = this.table.get(pid);
    return base < 0 ? NO_VALUE : this.slab[base + low];
  }

  /** Stores value (>= 1) at (pid, low); returns the replaced value or NO_VALUE. */
  set(pid: number, low: number, value: number): number {
    let base = this.table.get(pid);
    if (base < 0) base = this.addPage(pid);
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
    const base = this.table.get(pid);
    if (base < 0) return NO_VALUE;
    const old = this.slab[base + low];
    if (old === 0) return NO_VALUE;
    this.slab[base + low] = NO_VALUE;
    this.count--;
    const p = base / PAGE_SIZE;
    if (--this.fill[p] === 0) {
      this.table.delete(pid);
      this.freePages.push(p); // all its slots are 0 again
    }
    return old;
  }

  /** Calls fn(pid, low, value) for every stored number (page order is hash order). */
  forEach(fn: (pid: number, low: number, value: number) => void): void {
    this.table.forEach((pid, base) => {
      for (let low = 0; low < PAGE_SIZE; low++) {
        const v = this.slab[base + low];
        if (v !== 0) fn(pid, low, v);
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
    const table = this.table;
    let used = this.pagesUsed;
    for (let i = 0; i < n; i++) {
      const pid = pids[i];
      let base = table.get(pid);
      if (base < 0) {
        const p = this.freePages.length > 0 ? (this.freePages.pop() as number) : used++;
        base = p * PAGE_SIZE;
        table.set(pid, base);
      }
      pageOf[i] = base / PAGE_SIZE;
    }
    this.ensurePages(used);
    this.pagesUsed = used;
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

  private addPage(pid: number): number {
    let p: number;
    if (this.freePages.length > 0) {
      p = this.freePages.pop() as number;
    } else {
      p = this.pagesUsed++;
      if (p >= this.fill.length) this.ensurePages(Math.max(16, this.fill.length * 2));
    }
    const base = p * PAGE_SIZE; // all slots are 0: fresh memory, or a page emptied by deletes
    this.table.set(pid, base);
    return base;
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
}
