/**
 * Counters counted in plain numbers on hot paths and folded into their prom-client Counter when
 * it is collected (a scrape of /metrics, or Counter.get()): an increment is one addition instead
 * of prom-client's label hashing, and the output at /metrics is the same (a series appears once
 * it has been incremented, like a prom-client child).
 */
import type { Counter, LabelValues } from "prom-client";

/** One label set of a counter; inc() costs an addition. */
export class LocalCount<T extends string = string> {
  /** @internal not yet folded into the counter */
  n = 0;
  /** @internal incremented since the last fold (inc(0) shows the series too) */
  touched = false;
  constructor(readonly labels: LabelValues<T>) {}

  inc(v = 1): void {
    this.n += v;
    this.touched = true;
  }
}

type Collectable = { collect?: () => unknown };

const children = new WeakMap<object, LocalCount[]>();

/** Fold every local count of `counter` into it (done by its collect; exported for tests). */
export function foldLocal(counter: Counter<string>): void {
  const list = children.get(counter);
  if (list === undefined) return;
  for (const c of list) {
    if (!c.touched) continue;
    const n = c.n;
    c.n = 0;
    c.touched = false;
    counter.inc(c.labels, n);
  }
}

/**
 * A child of `counter` for `labels`, counted locally. Create one per label set and keep it (the
 * counter keeps its children for its lifetime); label values must come from closed sets.
 */
export function localChild<T extends string>(counter: Counter<T>, labels: LabelValues<T>): LocalCount<T> {
  let list = children.get(counter);
  if (list === undefined) {
    list = [];
    children.set(counter, list);
    const m = counter as unknown as Collectable;
    const prev = m.collect;
    m.collect = function (this: unknown) {
      foldLocal(counter as unknown as Counter<string>);
      return prev?.call(this);
    };
  }
  const c = new LocalCount<T>(labels);
  list.push(c as LocalCount);
  return c;
}
