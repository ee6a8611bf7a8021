/**
 * A Map bounded to `max` entries, the oldest inserted out first.
 *
 * The obvious form, `m.delete(m.keys().next().value)`, costs time in proportion to the entries
 * deleted before: a JavaScript Map keeps a deleted entry as a hole until the table is rebuilt,
 * and every new iterator walks over the holes from the start. A full map of 16,384 entries that
 * takes one and drops one per call spends 4.3 us per insertion that way against 1.4 us deleting
 * a known key (Node 24; 65,536 entries: 18 us against 2.6; a registrar's lockout table of 100,000:
 * 20 to 56 us per new key). Here the insertion order is kept in a queue of keys beside the map,
 * and the oldest is deleted by its key.
 *
 * Order is a Map's: setting an entry again does not move it; deleting it and setting it again
 * puts it last. A deleted key's slot stays in the queue, counted as stale (the stale slots of a
 * key always come before its live one), and is skipped when it comes out; the queue is rebuilt
 * from the map when it holds more than twice the live entries (plus a constant), so it stays
 * bounded and the rebuilds cost O(1) per operation over time.
 */
export class FifoCache<K, V> {
  private readonly m = new Map<K, V>();
  private q: (K | undefined)[] = [];
  private head = 0;
  /** Keys with slots in the queue that are not their live one, and how many. */
  private readonly stale = new Map<K, number>();

  constructor(readonly max: number) {
    if (!(max >= 0)) throw new Error("FifoCache needs max >= 0");
  }

  get size(): number {
    return this.m.size;
  }

  get(k: K): V | undefined {
    return this.m.get(k);
  }

  has(k: K): boolean {
    return this.m.has(k);
  }

  set(k: K, v: V): this {
    const m = this.m;
    const n = m.size;
    m.set(k, v);
    if (m.size === n) return this;
    this.q.push(k);
    while (m.size > this.max) {
      const old = this.oldestKey();
      if (old === undefined) break;
      m.delete(old);
      this.q[this.head++] = undefined;
    }
    this.tidy();
    return this;
  }

  delete(k: K): boolean {
    if (!this.m.delete(k)) return false;
    this.stale.set(k, (this.stale.get(k) ?? 0) + 1);
    this.tidy();
    return true;
  }

  /** The key of the oldest entry (undefined when empty). */
  oldestKey(): K | undefined {
    const q = this.q;
    const stale = this.stale;
    while (this.head < q.length) {
      const k = q[this.head] as K;
      const s = stale.size === 0 ? undefined : stale.get(k);
      if (s === undefined) return k;
      // a slot left by a delete: skipped
      if (s === 1) stale.delete(k);
      else stale.set(k, s - 1);
      q[this.head++] = undefined;
    }
    return undefined;
  }

  clear(): void {
    this.m.clear();
    this.stale.clear();
    this.q = [];
    this.head = 0;
  }

  keys(): IterableIterator<K> {
    return this.m.keys();
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.m.entries();
  }

  /** Slots queued (live or stale), for the tests of the bound. */
  get queued(): number {
    return this.q.length - this.head;
  }

  private tidy(): void {
    let q = this.q;
    if (this.head >= 1024 && this.head * 2 >= q.length) {
      this.q = q = q.slice(this.head);
      this.head = 0;
    }
    // stale slots piling up (deletes): the queue rebuilt from the map, in the map's order
    if (q.length - this.head > 2 * this.m.size + 1024) {
      this.q = [...this.m.keys()];
      this.head = 0;
      this.stale.clear();
    }
  }
}
