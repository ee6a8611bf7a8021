/**
 * Counters counted in plain numbers on hot paths and folded into their prom-client Counter when
 * it is collected (a scrape of /metrics, or Counter.get()): an increment is one addition instead
 * of prom-client's label hashing, and the output at /metrics is the same (a series appears once
 * it has been incremented, like a prom-client child).
 */
import type { Counter, Gauge, Histogram, LabelValues } from "prom-client";

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

/**
 * The local children of `metric` kept in `map`; the first time, the metric's collect is wrapped
 * so that `fold` runs before it (each scrape sees what was counted locally).
 */
function childrenOf<C>(map: WeakMap<object, C[]>, metric: object, fold: () => void): C[] {
  let list = map.get(metric);
  if (list === undefined) {
    list = [];
    map.set(metric, list);
    const m = metric as Collectable;
    const prev = m.collect;
    m.collect = function (this: unknown) {
      fold();
      return prev?.call(this);
    };
  }
  return list;
}

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
  const list = childrenOf(children, counter, () => foldLocal(counter as unknown as Counter<string>));
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
  const list = childrenOf(gaugeChildren, gauge, () => foldLocalGauge(gauge as unknown as Gauge<string>));
  const c = new LocalGaugeDelta<T>(labels);
  list.push(c as LocalGaugeDelta);
  return c;
}

/** What prom-client 15 keeps per label set of a Histogram (its hashMap values). */
interface HistogramEntry {
  labels: Record<string, string | number>;
  bucketValues: Record<string, number>;
  sum: number;
  count: number;
}

/**
 * One label set of a histogram observed on a hot path: observe() finds the bucket and adds to
 * local numbers, folded into the histogram's entry for these labels when it is collected. The
 * child is the only writer of its label set, so the sum it keeps (all observations, in order)
 * is the sum prom-client would have: the /metrics text is the same as with observe().
 */
export class LocalObserve {
  /** @internal per upper bound, observed since the last fold */
  readonly pending: Float64Array;
  /** @internal observations since the last fold */
  n = 0;
  /** @internal sum of every observation since the entry was created, in order */
  sum = 0;
  /** @internal sum of the observations since the last fold */
  pendingSum = 0;
  /** @internal the histogram's entry, its map and key as of the last fold */
  entry: HistogramEntry | null = null;
  map: object | null = null;
  key = "";
  constructor(readonly labels: Record<string, string>, readonly bounds: readonly number[]) {
    this.pending = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    if (!Number.isFinite(v)) throw new TypeError("Value is not a valid number: " + v);
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        this.pending[i]!++;
        break;
      }
    }
    this.sum += v;
    this.pendingSum += v;
    this.n++;
  }
}

type HistogramInternals = { hashMap: Record<string, HistogramEntry>; upperBounds: readonly number[] };
const histogramChildren = new WeakMap<object, LocalObserve[]>();

function sameLabels(a: Record<string, string | number>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (String(a[k]) !== b[k]) return false;
  return true;
}

/** Fold every local child of `hist` into it (done by its collect; exported for tests). */
export function foldLocalHistogram(hist: Histogram<string>): void {
  const list = histogramChildren.get(hist);
  if (list === undefined) return;
  const h = hist as unknown as HistogramInternals;
  for (const c of list) {
    if (c.n === 0) continue;
    let e = c.entry;
    if (e === null || c.map !== h.hashMap || h.hashMap[c.key] !== e) {
      // first fold, or the histogram was reset (or the labels removed) since the last one: the
      // entry prom-client keeps for these labels, new; its sum is what was observed since
      if (e !== null) c.sum = c.pendingSum;
      let key = Object.keys(h.hashMap).find((k) => sameLabels(h.hashMap[k]!.labels, c.labels));
      if (key === undefined) {
        hist.zero(c.labels);
        key = Object.keys(h.hashMap).find((k) => sameLabels(h.hashMap[k]!.labels, c.labels))!;
      }
      e = c.entry = h.hashMap[key]!;
      c.map = h.hashMap;
      c.key = key;
    }
    const bounds = c.bounds;
    for (let i = 0; i < bounds.length; i++) {
      const k = c.pending[i]!;
      if (k === 0) continue;
      e.bucketValues[bounds[i]!] = (e.bucketValues[bounds[i]!] ?? 0) + k;
      c.pending[i] = 0;
    }
    e.count += c.n;
    e.sum = c.sum;
    c.n = 0;
    c.pendingSum = 0;
  }
}

/**
 * A child of `hist` for `labels`, observed locally (see LocalObserve). Create one per label set
 * and keep it, and observe that label set through it only; label values from closed sets.
 */
export function localHistogramChild<T extends string>(hist: Histogram<T>, labels: LabelValues<T>): LocalObserve {
  const list = childrenOf(histogramChildren, hist, () => foldLocalHistogram(hist as unknown as Histogram<string>));
  const c = new LocalObserve(labels as Record<string, string>, (hist as unknown as HistogramInternals).upperBounds);
  list.push(c);
  return c;
}
