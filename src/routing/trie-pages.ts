/**
 * Exact-number store for RouteTable: "pages" of 100 consecutive numbers of one length.
 *
 * A number of L digits (1..15) splits into page = all digits but the last two, and low = the last
 * two (0..99). The page id `pid = page * 16 + L` (< 1.6e14, exact in a double, never 0) is looked
 * up in an open-addressing hash table (linear probing, Float64Array of [pid, base] pairs, pid 0 =
 * empty, load <= 1/2, backward-shift deletion so there are no tombstones). `base` is the page's
 * offset in one Int32Array slab of int32 value slots (NO_VALUE = empty). Pages emptied by deletes
 * go on a free list and are reused; rebuilding a table compacts.
 *
 * Pure; find()/slab reads allocate nothing.
 */

import { NO_VALUE } from "./trie.js";

export const PAGE_SIZE = 100;
const TWO32 = 4294967296;

/** Page id of a number of `len` digits whose digits except the last two read as `page`. */
export function pageId(page: number, len: number): number {
  return page * 16 + len;
}

function hashPid(pid: number): number {
  let h = (pid >>> 0) ^ Math.imul((pid / TWO32) | 0, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

export class PageMap {
  /** Hash slots, 2 doubles each: [pid, slab base]. */
  keys: Float64Array;
  /** Value slots, PAGE_SIZE per page. */
  slab: Int32Array;
  /** Filled slots per page (indexed by page number = base / PAGE_SIZE). */
  fill: Uint8Array;
  /** Stored numbers. */
  count = 0;
  /** Live pages (in the hash). */
  livePages = 0;
  private mask: number; // hash slots - 1
  private pagesUsed = 0; // high-water mark of page numbers
  private freePages: number[] = [];

  constructor(initialPages = 16) {
    let slots = 16;
    while (slots < initialPages * 2) slots *= 2;
    this.keys = new Float64Array(slots * 2);
    this.mask = slots - 1;
    const pages = Math.max(1, initialPages);
    this.slab = new Int32Array(pages * PAGE_SIZE);
    this.fill = new Uint8Array(pages);
  }

  /** Bytes held by the typed arrays. */
  get byteLength(): number {
    return this.keys.byteLength + this.slab.byteLength + this.fill.byteLength;
  }

  /** Slab base of page `pid`, or -1. Hot path. */
  find(pid: number): number {
    const keys = this.keys;
    const mask = this.mask;
    let s = hashPid(pid) & mask;
    for (;;) {
      const k = keys[s * 2];
      if (k === pid) return keys[s * 2 + 1];
      if (k === 0) return -1;
      s = (s + 1) & mask;
    }
  }

  /** Value at (pid, low) or NO_VALUE. */
  get(pid: number, low: number): number {
    const base = this.find(pid);
    return base < 0 ? NO_VALUE : this.slab[base + low];
  }

  /** Stores value (>= 0) at (pid, low); returns the replaced value or NO_VALUE. */
  set(pid: number, low: number, value: number): number {
    let base = this.find(pid);
    if (base < 0) base = this.addPage(pid);
    const slab = this.slab;
    const old = slab[base + low];
    slab[base + low] = value;
    if (old < 0) {
      this.count++;
      this.fill[base / PAGE_SIZE]++;
    }
    return old;
  }

  /** Removes (pid, low); returns the removed value or NO_VALUE. Frees the page when it empties. */
  delete(pid: number, low: number): number {
    const base = this.find(pid);
    if (base < 0) return NO_VALUE;
    const old = this.slab[base + low];
    if (old < 0) return NO_VALUE;
    this.slab[base + low] = NO_VALUE;
    this.count--;
    const p = base / PAGE_SIZE;
    if (--this.fill[p] === 0) {
      this.removeKey(pid);
      this.freePages.push(p);
    }
    return old;
  }

  /** Calls fn(pid, low, value) for every stored number (page order is hash order). */
  forEach(fn: (pid: number, low: number, value: number) => void): void {
    const keys = this.keys;
    for (let s = 0; s < keys.length; s += 2) {
      const pid = keys[s];
      if (pid === 0) continue;
      const base = keys[s + 1];
      for (let low = 0; low < PAGE_SIZE; low++) {
        const v = this.slab[base + low];
        if (v >= 0) fn(pid, low, v);
      }
    }
  }

  /** Shrinks the slab to the pages in use (after a bulk build). */
  trim(): void {
    const need = this.pagesUsed;
    if (this.fill.length > need + (need >> 6) + 1) {
      this.slab = this.slab.slice(0, Math.max(1, need) * PAGE_SIZE);
      this.fill = this.fill.slice(0, Math.max(1, need));
    }
  }

  private addPage(pid: number): number {
    let p: number;
    if (this.freePages.length > 0) {
      p = this.freePages.pop() as number;
    } else {
      p = this.pagesUsed++;
      if (p >= this.fill.length) {
        const cap = Math.max(16, this.fill.length * 2);
        const slab = new Int32Array(cap * PAGE_SIZE);
        slab.set(this.slab);
        const fill = new Uint8Array(cap);
        fill.set(this.fill);
        this.slab = slab;
        this.fill = fill;
      }
    }
    const base = p * PAGE_SIZE;
    this.slab.fill(NO_VALUE, base, base + PAGE_SIZE);
    this.fill[p] = 0;
    if ((this.livePages + 1) * 2 > this.mask + 1) this.rehash((this.mask + 1) * 2);
    this.insertKey(pid, base);
    this.livePages++;
    return base;
  }

  private insertKey(pid: number, base: number): void {
    const keys = this.keys;
    const mask = this.mask;
    let s = hashPid(pid) & mask;
    while (keys[s * 2] !== 0) s = (s + 1) & mask;
    keys[s * 2] = pid;
    keys[s * 2 + 1] = base;
  }

  private rehash(slots: number): void {
    const old = this.keys;
    this.keys = new Float64Array(slots * 2);
    this.mask = slots - 1;
    for (let s = 0; s < old.length; s += 2) if (old[s] !== 0) this.insertKey(old[s], old[s + 1]);
  }

  private removeKey(pid: number): void {
    const keys = this.keys;
    const mask = this.mask;
    let i = hashPid(pid) & mask;
    while (keys[i * 2] !== pid) i = (i + 1) & mask;
    // Backward-shift deletion: pull later members of the probe run into the hole.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const k = keys[j * 2];
      if (k === 0) break;
      const home = hashPid(k) & mask;
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      keys[i * 2] = k;
      keys[i * 2 + 1] = keys[j * 2 + 1];
      i = j;
    }
    keys[i * 2] = 0;
    keys[i * 2 + 1] = 0;
    this.livePages--;
  }
}
