/**
 * Counts per key over a fixed window that starts at the key's first count, bounded (an LRU): the
 * rate bounds of messages a sender has sent on (forwards, masked relays). A place is taken when a
 * message comes, so that messages arriving together are all counted, and given back when the
 * message is not accepted after all.
 */
import { LRUCache } from "lru-cache";

export class WindowCounts {
  private readonly counts: LRUCache<string, { n: number }>;

  constructor(windowMs: number, maxKeys: number) {
    this.counts = new LRUCache({ max: maxKeys, ttl: windowMs, ttlAutopurge: false });
  }

  /** Take a place for `key` unless `limit` are taken in its window: a function that gives it back (once), or null. */
  take(key: string, limit: number): (() => void) | null {
    let c = this.counts.get(key, { updateAgeOnGet: false });
    if (c !== undefined && c.n >= limit) return null;
    if (c === undefined) this.counts.set(key, (c = { n: 1 }));
    else c.n++;
    const slot = c;
    let back = false;
    return () => {
      if (back) return;
      back = true;
      if (slot.n > 0) slot.n--;
    };
  }
}
