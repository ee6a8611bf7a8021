/**
 * Hot lookup path benchmark: RouteTable (src/routing/table.ts) against a plain Map.get baseline
 * (and an object-trie baseline up to 1M entries) in the same process.
 *
 *   npm run bench:lookup                       # 100k and 1M DIDs
 *   node --expose-gc dist/bench/lookup.js [--json] [--entries N] [--queries N] [--rounds N]
 *                                         [--clock cpu|wall] [--no-objtrie] [--objtrie-all] [--unique-values]
 *
 * Data: N exact DIDs clustered in number blocks of 1000 (NANP thousands-blocks, plus +44/+49/+61
 * ranges), each block 20-100% filled; 10k prefix routes of 4-10 digits; a default route; ~2000
 * shared route objects. Query streams of fresh strings (hash not yet computed, as if just parsed):
 * exact hits, prefix-only hits, misses (default route; half in unassigned slots of our blocks) and a
 * mix (70/15/15). ratio_to_map = table ns / Map.get ns on the same stream; Map.get only answers
 * exact keys, the table does the full longest-prefix match. Lookup passes are timed with process CPU
 * time by default (--clock wall for wall time): other work on a shared machine then inflates both
 * sides less; medians of --rounds passes after a warm-up pass. Before each pass the benchmark runs
 * a full GC and then waits until the GC's helper threads are idle (lib.ts quiesce()): their
 * sweeping would otherwise be charged to the pass and disturb it (at 10M entries it more than
 * doubled both sides' times). Update cases use wall time over
 * batches of 1000 operations (median batch).
 */

import { RouteTable } from "../src/routing/table.js";
import {
  clockFn,
  type Clock,
  fullGc,
  hasGc,
  measure,
  median,
  memBytes,
  nowNs,
  parseArgs,
  quiesce,
  randInt,
  Reporter,
  result,
  rng,
  shuffle,
  sink,
  StringPack,
} from "./lib.js";

interface Route {
  id: number;
  tenant: string;
  targets: string[];
}

const args = parseArgs();
const rep = new Reporter(args.json);
const sizes = args.option("entries") !== undefined ? [args.int("entries", 1_000_000)] : [100_000, 1_000_000];
const QUERIES = args.int("queries", 1_000_000);
const ROUNDS = args.int("rounds", 5);
const PREFIXES = args.int("prefixes", 10_000);
const OBJTRIE_MAX = args.flag("no-objtrie") ? 0 : 1_000_000;
/** Every DID gets its own route object (as if each route were parsed separately, no sharing). */
const UNIQUE = args.flag("unique-values");
const CLOCK: Clock = args.option("clock") === "wall" ? "wall" : "cpu";
const clock = clockFn(CLOCK);

if (!hasGc()) rep.note("# warning: run with node --expose-gc for memory numbers and steady timings");

// ---------------------------------------------------------------- data

interface Dataset {
  dids: string[];
  didRoutes: Route[];
  prefixes: string[]; // digits only
  prefixRoutes: Route[];
  defaultRoute: Route;
}

function makeRoutes(n: number): Route[] {
  const out: Route[] = [];
  for (let i = 0; i < n; i++) out.push({ id: i, tenant: `t${i % 300}`, targets: [`sip:pbx${i}@10.0.${i >> 8}.${i & 255}`] });
  return out;
}

function digits(r: () => number, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(48 + Math.floor(r() * 10));
  return s;
}

/** A random block prefix (all digits of a number but the last three). */
function blockPrefix(r: () => number): string {
  const x = r();
  if (x < 0.85) return "1" + randInt(r, 2, 9) + digits(r, 2) + randInt(r, 2, 9) + digits(r, 2) + digits(r, 1); // NANP
  if (x < 0.91) return "4420" + digits(r, 5); // +44 20 xxxx xxxx (12 digits)
  if (x < 0.96) return "4930" + digits(r, randInt(r, 4, 6)); // +49 30 …, 11-13 digits
  return "61" + "2378"[randInt(r, 0, 3)] + digits(r, 5); // +61 x xxxx xxxx
}

function makeDataset(n: number, seed: number): Dataset {
  const r = rng(seed);
  const routes = makeRoutes(2000);
  const dids: string[] = [];
  const didRoutes: Route[] = [];
  const seenBlocks = new Set<string>();
  const perm = new Int16Array(1000);
  for (let i = 0; i < 1000; i++) perm[i] = i;
  while (dids.length < n) {
    const b = blockPrefix(r);
    if (seenBlocks.has(b)) continue;
    seenBlocks.add(b);
    const fill = 0.2 + 0.8 * r();
    const k = Math.min(n - dids.length, Math.max(1, Math.round(fill * 1000)));
    const blockRoute = routes[randInt(r, 0, routes.length - 1)];
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(r() * (1000 - i));
      const t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
      dids.push("+" + b + String(perm[i]).padStart(3, "0"));
      if (UNIQUE) didRoutes.push({ id: dids.length, tenant: blockRoute.tenant, targets: blockRoute.targets });
      else didRoutes.push(r() < 0.05 ? routes[randInt(r, 0, routes.length - 1)] : blockRoute);
    }
  }
  const ccs = ["1", "44", "49", "61", "33", "34", "39", "81", "55", "52", "86", "91", "7", "27", "234", "353", "358"];
  const pset = new Set<string>();
  while (pset.size < PREFIXES) {
    const len = randInt(r, 4, 10);
    let p: string;
    if (r() < 0.05) p = dids[randInt(r, 0, dids.length - 1)].slice(1, 1 + Math.max(7, len));
    else {
      const cc = ccs[randInt(r, 0, ccs.length - 1)];
      p = cc + digits(r, Math.max(0, len - cc.length));
    }
    pset.add(p);
  }
  const prefixes = [...pset];
  const prefixRoutes = prefixes.map(() => routes[randInt(r, 0, routes.length - 1)]);
  return { dids, didRoutes, prefixes, prefixRoutes, defaultRoute: routes[0] };
}

/**
 * (key, value) pairs in random order (sources deliver hash order, not sorted), built in that order
 * from fresh flat strings, as a parser would allocate them.
 */
function tableEntries(d: Dataset): [string, Route][] {
  const keys: string[] = [...d.dids];
  const vals: Route[] = [...d.didRoutes];
  for (let i = 0; i < d.prefixes.length; i++) {
    keys.push("+" + d.prefixes[i] + "*");
    vals.push(d.prefixRoutes[i]);
  }
  keys.push("*");
  vals.push(d.defaultRoute);
  const order = shuffle(rng(7), Array.from(keys, (_, i) => i));
  const fresh = new StringPack(order.map((i) => keys[i])).fresh();
  return order.map((i, j) => [fresh[j], vals[i]]);
}

interface Streams {
  exact: string[];
  prefix: string[];
  miss: string[];
  mixed: string[];
}

function makeStreams(d: Dataset, t: RouteTable<Route>, q: number, seed: number): Streams {
  const r = rng(seed);
  const exact: string[] = [];
  for (let i = 0; i < q; i++) exact.push(d.dids[randInt(r, 0, d.dids.length - 1)]);
  const prefix: string[] = [];
  for (let tries = 0; prefix.length < q && tries < q * 20; tries++) {
    const p = d.prefixes[randInt(r, 0, d.prefixes.length - 1)];
    const total = Math.min(15, Math.max(p.length + 1, randInt(r, 11, 12)));
    const s = "+" + p + digits(r, total - p.length);
    t.lookup(s);
    if (t.match.kind === 2) prefix.push(s);
  }
  const miss: string[] = [];
  for (let tries = 0; miss.length < q && tries < q * 20; tries++) {
    let s: string;
    if (tries & 1) s = "+1" + randInt(r, 2, 9) + digits(r, 9);
    else {
      const did = d.dids[randInt(r, 0, d.dids.length - 1)];
      s = did.slice(0, -2) + digits(r, 2); // an unassigned number in one of our blocks
    }
    t.lookup(s);
    if (t.match.kind === 3) miss.push(s);
    else if (args.flag("debug") && tries < 5) rep.note(`# miss candidate ${s} -> ${t.match.kind} ${t.matchedKey()} default=${String(t.get("*") !== undefined)} ${JSON.stringify(t.counts())}`);
  }
  const mixed: string[] = [];
  for (let i = 0; i < q; i++) {
    const x = r();
    const src = x < 0.7 ? exact : x < 0.85 ? prefix : miss;
    mixed.push(src[randInt(r, 0, src.length - 1)]);
  }
  if (args.flag("debug")) rep.note(`# streams exact=${exact.length} prefix=${prefix.length} miss=${miss.length}`);
  return { exact, prefix, miss, mixed };
}

// ---------------------------------------------------------------- baselines

/** Object trie baseline: one object per digit node, exact and prefix values on nodes. */
class ObjNode<V> {
  c: (ObjNode<V> | undefined)[] | undefined = undefined;
  e: V | undefined = undefined;
  p: V | undefined = undefined;
}

class ObjTrie<V> {
  readonly root = new ObjNode<V>();
  set(key: string, value: V): void {
    const prefix = key.endsWith("*");
    const end = prefix ? key.length - 1 : key.length;
    let n = this.root;
    for (let i = key.charCodeAt(0) === 43 ? 1 : 0; i < end; i++) {
      const d = key.charCodeAt(i) - 48;
      if (n.c === undefined) n.c = [undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined];
      let next = n.c[d];
      if (next === undefined) n.c[d] = next = new ObjNode<V>();
      n = next;
    }
    if (prefix) n.p = value;
    else n.e = value;
  }
  lookup(s: string): V | undefined {
    let n: ObjNode<V> | undefined = this.root;
    let best = n.p;
    for (let i = s.charCodeAt(0) === 43 ? 1 : 0; i < s.length; i++) {
      const c: (ObjNode<V> | undefined)[] | undefined = n.c;
      if (c === undefined) return best;
      n = c[s.charCodeAt(i) - 48];
      if (n === undefined) return best;
      if (n.p !== undefined) best = n.p;
    }
    return n.e !== undefined ? n.e : best;
  }
}

function runTable(t: RouteTable<Route>, qs: string[]): number {
  let hits = 0;
  for (let i = 0; i < qs.length; i++) if (t.lookup(qs[i]) !== undefined) hits++;
  return hits;
}

function runMap(m: Map<string, Route>, qs: string[]): number {
  let hits = 0;
  for (let i = 0; i < qs.length; i++) if (m.get(qs[i]) !== undefined) hits++;
  return hits;
}

function runObj(t: ObjTrie<Route>, qs: string[]): number {
  let hits = 0;
  for (let i = 0; i < qs.length; i++) if (t.lookup(qs[i]) !== undefined) hits++;
  return hits;
}

/** Times one pass over fresh copies of the stream; returns ns/op and heap bytes allocated per op. */
function timePass(pack: StringPack, run: (qs: string[]) => number): { ns: number; alloc: number } {
  const qs = pack.fresh();
  fullGc(true);
  quiesce();
  const h0 = process.memoryUsage().heapUsed;
  const t0 = clock();
  sink.n += run(qs);
  const dt = clock() - t0;
  const h1 = process.memoryUsage().heapUsed;
  return { ns: dt / qs.length, alloc: Math.max(0, h1 - h0) / qs.length };
}

// ---------------------------------------------------------------- cases

function benchSize(n: number): void {
  const d = makeDataset(n, 42 + n);
  const entries = tableEntries(d);
  const keys = entries.length;
  const buildRounds = n >= 5_000_000 ? 1 : 3;

  // Build: table
  let table: RouteTable<Route> | undefined;
  const tb: number[] = [];
  const tbc: number[] = [];
  let tableBytes = 0;
  for (let i = 0; i < buildRounds; i++) {
    table = undefined;
    const m = measure(() => RouteTable.build(entries));
    table = m.result;
    tb.push(m.ms);
    tbc.push(m.cpuMs);
    tableBytes = m.bytes;
  }
  const t = table as RouteTable<Route>;

  // Build: Map of the exact keys, from fresh key strings (key strings themselves not counted)
  const didPack = new StringPack(d.dids);
  let map: Map<string, Route> | undefined;
  const mb: number[] = [];
  const mbc: number[] = [];
  let mapBytes = 0;
  for (let i = 0; i < buildRounds; i++) {
    map = undefined;
    const fresh = didPack.fresh();
    const m = measure(() => {
      const mm = new Map<string, Route>();
      for (let j = 0; j < fresh.length; j++) mm.set(fresh[j], d.didRoutes[j]);
      return mm;
    });
    map = m.result;
    mb.push(m.ms);
    mbc.push(m.cpuMs);
    mapBytes = m.bytes;
  }
  const mp = map as Map<string, Route>;
  const mapBuild = median(mb);
  rep.report(
    result("build/table", n, (median(tb) * 1e6) / keys, {
      build_ms: median(tb),
      build_cpu_ms: median(tbc),
      bytes_per_entry: tableBytes / keys,
      ratio_to_map: median(tb) / mapBuild,
      keys,
      typed_bytes_per_entry: t.byteLength / keys,
      distinct_values: t.distinctValues,
    }),
  );
  rep.report(result("build/map", n, (mapBuild * 1e6) / n, { build_ms: mapBuild, build_cpu_ms: median(mbc), bytes_per_entry: mapBytes / n, ratio_to_map: 1, keys: n }));

  // Sanity: the table agrees with the Map on exact keys
  for (let i = 0; i < Math.min(d.dids.length, 10000); i++) {
    if (t.lookup(d.dids[i]) !== mp.get(d.dids[i])) throw new Error(`table/map disagree on ${d.dids[i]}`);
  }

  let obj: ObjTrie<Route> | undefined;
  if (n <= OBJTRIE_MAX) {
    const m = measure(() => {
      const o = new ObjTrie<Route>();
      for (const [k, v] of entries) o.set(k, v);
      return o;
    });
    obj = m.result;
    rep.report(result("build/object-trie", n, (m.ms * 1e6) / keys, { build_ms: m.ms, bytes_per_entry: m.bytes / keys, ratio_to_map: m.ms / mapBuild, keys }));
  }

  const streams = makeStreams(d, t, Math.min(QUERIES, Math.max(100_000, n)), 9 + n);
  const kinds: (keyof Streams)[] = ["mixed", "exact", "prefix", "miss"];
  // Warm up every code path on every stream before timing anything.
  for (const kind of kinds) {
    sink.n += runTable(t, streams[kind]) + runMap(mp, streams[kind]);
    if (obj) sink.n += runObj(obj, streams[kind]);
  }
  for (const kind of kinds) {
    const pack = new StringPack(streams[kind]);
    const tt: number[] = [];
    const tm: number[] = [];
    const to: number[] = [];
    const ta: number[] = [];
    const withObj = obj !== undefined && (kind === "mixed" || args.flag("objtrie-all"));
    for (let round = 0; round <= ROUNDS; round++) {
      const a = timePass(pack, (qs) => runTable(t, qs));
      const b = timePass(pack, (qs) => runMap(mp, qs));
      const c = withObj ? timePass(pack, (qs) => runObj(obj as ObjTrie<Route>, qs)) : undefined;
      if (round === 0) continue; // warm-up
      tt.push(a.ns);
      ta.push(a.alloc);
      tm.push(b.ns);
      if (c) to.push(c.ns);
    }
    const mapNs = median(tm);
    const q = pack.length;
    rep.report(result(`lookup/${kind}`, n, median(tt), { ratio_to_map: median(tt) / mapNs, alloc_per_op: median(ta), queries: q, clock: CLOCK }));
    rep.report(result(`lookup/${kind}/map`, n, mapNs, { ratio_to_map: 1, queries: q, clock: CLOCK }));
    if (to.length) rep.report(result(`lookup/${kind}/object-trie`, n, median(to), { ratio_to_map: median(to) / mapNs, queries: q, clock: CLOCK }));
  }
  obj = undefined;

  benchUpdates(n, d, t, mp);
}

/** Single-key set (new key, replaced value) and delete, in batches; median batch ns/op. */
function benchUpdates(n: number, d: Dataset, t: RouteTable<Route>, mp: Map<string, Route>): void {
  const r = rng(5 + n);
  const count = 100_000;
  const batch = 1000;
  const fresh: string[] = [];
  const seen = new Set<string>();
  while (fresh.length < count) {
    const s =
      fresh.length & 1
        ? "+1" + randInt(r, 2, 9) + digits(r, 9) // mostly new pages
        : d.dids[randInt(r, 0, d.dids.length - 1)].slice(0, -2) + digits(r, 2); // existing pages
    if (mp.has(s) || seen.has(s)) continue;
    seen.add(s);
    fresh.push(s);
  }
  const pack = new StringPack(fresh);
  const route = d.defaultRoute;
  const other = d.prefixRoutes[0];
  const existing = new StringPack(d.dids.slice(0, count));

  const time = (keysArr: string[], op: (k: string) => void): { median: number; mean: number } => {
    const per: number[] = [];
    let total = 0;
    for (let i = 0; i < keysArr.length; i += batch) {
      const end = Math.min(keysArr.length, i + batch);
      const t0 = nowNs();
      for (let j = i; j < end; j++) op(keysArr[j]);
      const dt = nowNs() - t0;
      total += dt;
      per.push(dt / (end - i));
    }
    return { median: median(per), mean: total / keysArr.length };
  };

  fullGc();
  const m0 = memBytes();
  const tset = time(pack.fresh(), (k) => t.set(k, route));
  const mset = time(pack.fresh(), (k) => mp.set(k, route));
  const treplace = time(existing.fresh(), (k) => t.set(k, other));
  const mreplace = time(existing.fresh(), (k) => mp.set(k, other));
  const tdel = time(pack.fresh(), (k) => void t.delete(k));
  const mdel = time(pack.fresh(), (k) => void mp.delete(k));
  sink.n += memBytes() - m0;
  rep.report(result("update/set-new", n, tset.median, { ratio_to_map: tset.median / mset.median, mean_ns: tset.mean }));
  rep.report(result("update/set-replace", n, treplace.median, { ratio_to_map: treplace.median / mreplace.median, mean_ns: treplace.mean }));
  rep.report(result("update/delete", n, tdel.median, { ratio_to_map: tdel.median / mdel.median, mean_ns: tdel.mean }));
}

for (const n of sizes) benchSize(n);
if (sink.n === 0.5) console.log(""); // keep sink observable
