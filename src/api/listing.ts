/**
 * Paged listing of the in-memory route table in key order. The table has no order of its own, so
 * a sorted copy of its keys is kept: built on the first listing (and again when the table is
 * replaced by a reload, or when many keys changed since), with the keys changed since the build
 * kept aside in a small set (fed by the change stream) and merged in while listing. The table
 * itself stays the truth: a key that is listed must still be in it.
 *
 * The cursor is the last key a page looked at (base64url), so paging is stable under concurrent
 * writes: a page never repeats a key of an earlier page, and keys added behind the cursor are
 * not seen. A page looks at a bounded number of keys (a tenant's entries may be sparse in a large
 * table), so it may hold fewer items than asked and still have a next cursor.
 */
import type { Route } from "../routing/route.js";
import type { RouteStore, RouteTable } from "../routing/table.js";

export interface ListPage {
  items: [string, Route][];
  /** Where the next page starts; undefined at the end. */
  next: string | undefined;
}

function lowerBound(a: readonly string[], x: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index with a[i] > x. */
function upperBound(a: readonly string[], x: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class KeyIndex {
  private table: RouteTable<Route> | undefined;
  private sorted: string[] = [];
  private readonly changed = new Set<string>();
  private changedSorted: string[] | undefined;
  private builtAt = 0;
  private builtVersion = "";

  constructor(
    private readonly store: RouteStore<Route>,
    private readonly now: () => number = Date.now,
    /** Rebuild when the table's version moved and the build is older than this (default 60 s). */
    private readonly maxAgeMs = 60_000,
  ) {}

  /** A key was set or deleted in the live table (from the change stream). */
  noteChanged(key: string): void {
    if (this.table === undefined) return;
    this.changed.add(key);
    this.changedSorted = undefined;
  }

  private ensure(): RouteTable<Route> {
    const t = this.store.current;
    const stale =
      this.table !== t ||
      this.changed.size > Math.max(10_000, this.sorted.length / 10) ||
      (t.version !== this.builtVersion && this.now() - this.builtAt > this.maxAgeMs);
    if (stale) {
      const keys: string[] = [];
      for (const k of t.keys()) keys.push(k);
      keys.sort();
      this.sorted = keys;
      this.table = t;
      this.changed.clear();
      this.changedSorted = undefined;
      this.builtAt = this.now();
      this.builtVersion = t.version;
    }
    return t;
  }

  /**
   * Keys starting with `prefix` (string prefix: "+1512" lists "+1512*", "+15125550100", …), after
   * `after` (exclusive), in order, up to `limit` items for which `accept` is true, looking at no
   * more than `maxScan` keys.
   */
  page(prefix: string, after: string | undefined, limit: number, accept: (route: Route) => boolean, maxScan = 100_000): ListPage {
    const t = this.ensure();
    this.changedSorted ??= [...this.changed].sort();
    const a = this.sorted;
    const b = this.changedSorted;
    const from = after !== undefined && after >= prefix ? after : undefined;
    let i = from !== undefined ? upperBound(a, from) : lowerBound(a, prefix);
    let j = from !== undefined ? upperBound(b, from) : lowerBound(b, prefix);
    const items: [string, Route][] = [];
    let scanned = 0;
    let last: string | undefined;
    for (;;) {
      const ka = i < a.length ? a[i]! : undefined;
      const kb = j < b.length ? b[j]! : undefined;
      let k: string;
      if (ka === undefined && kb === undefined) return { items, next: undefined };
      if (kb === undefined || (ka !== undefined && ka < kb)) {
        k = ka!;
        i++;
      } else if (ka === undefined || kb < ka) {
        k = kb;
        j++;
      } else {
        k = ka;
        i++;
        j++;
      }
      if (!k.startsWith(prefix)) {
        // Both lists are sorted: past the prefix in one means done with it there; drain the other.
        if (k > prefix) {
          if (k === ka) i = a.length;
          if (k === kb) j = b.length;
        }
        continue;
      }
      last = k;
      const v = t.get(k);
      if (v !== undefined && accept(v)) {
        items.push([k, v]);
        if (items.length >= limit) return { items, next: this.more(prefix, k, i, j) ? k : undefined };
      }
      if (++scanned >= maxScan) return { items, next: last };
    }
  }

  /** Whether either list has a key with the prefix at or after the given positions. */
  private more(prefix: string, _after: string, i: number, j: number): boolean {
    const a = this.sorted;
    const b = this.changedSorted!;
    return (i < a.length && a[i]!.startsWith(prefix)) || (j < b.length && b[j]!.startsWith(prefix));
  }
}
