/**
 * Counters counted in plain numbers on hot paths and folded into their prom-client Counter when
 * it is collected (a scrape of /metrics, or Counter.get()): an increment is one addition instead
 * of prom-client's label hashing, and the output at /metrics is the same (a series appears once
 * it has been incremented, like a prom-client child).
 */
import type { Counter, Gauge, LabelValues } from "prom-client";

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

/** One label set of a gauge moved by inc()/dec() on a hot path: the moves are summed locally. */
export class LocalGaugeDelta<T extends string = string> {
  /** @internal not yet folded into the gauge */
  n = 0;
  /** @internal moved since the last fold (a series appears once moved, like a prom-client child) */
  touched = false;
  constructor(readonly labels: LabelValues<T>) {}

  inc(): void {
    this.n++;
    this.touched = true;
  }

  dec(): void {
    this.n--;
    this.touched = true;
  }
}

const gaugeChildren = new WeakMap<object, LocalGaugeDelta[]>();

/** Fold every local delta of `gauge` into it (done by its collect; exported for tests). */
export function foldLocalGauge(gauge: Gauge<string>): void {
  const list = gaugeChildren.get(gauge);
  if (list === undefined) return;
  const g = gauge;
  for (const c of list) {
    if (!c.touched) continue;
    const n = c.n;
    c.n = 0;
    c.touched = false;
    if (n >= 0) g.inc(c.labels, n);
    else g.dec(c.labels, -n);
  }
}

/**
 * A child of `gauge` for `labels` whose inc()/dec() are summed locally and added to the gauge when
 * it is collected (the value at /metrics is the same as with gauge.inc/dec). Create one per label
 * set and keep it; label values must come from closed sets. Not for gauges that are also set().
 */
export function localGaugeChild<T extends string>(gauge: Gauge<T>, labels: LabelValues<T>): LocalGaugeDelta<T> {
  let list = gaugeChildren.get(gauge);
  if (list === undefined) {
    list = [];
    gaugeChildren.set(gauge, list);
    const m = gauge as unknown as Collectable;
    const prev = m.collect;
    m.collect = function (this: unknown) {
      foldLocalGauge(gauge as unknown as Gauge<string>);
      return prev?.call(this);
    };
  }
  const c = new LocalGaugeDelta<T>(labels);
  list.push(c as LocalGaugeDelta);
  return c;
}
