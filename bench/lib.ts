/**
 * Shared benchmark helpers: argument parsing, timing, GC and memory measurement, seeded random
 * numbers, fresh (un-hashed) strings, and result output (one JSON object per line with --json, a
 * readable table otherwise). Run benchmarks with `node --expose-gc` so memory numbers are exact.
 *
 * Result fields (docs/benchmarks.md): every case has name, entries, ns_per_op, ops_per_s; cases
 * with a Map baseline add ratio_to_map; table builds add build_ms and bytes_per_entry.
 */

import { Buffer } from "node:buffer";

// ---------------------------------------------------------------- arguments

export interface BenchArgs {
  json: boolean;
  /** Raw argv after the script. */
  argv: string[];
  /** Value of `--name V` or `--name=V`, else undefined. */
  option(name: string): string | undefined;
  /** Integer option (accepts 1e6, 1_000_000, 10M, 100k). */
  int(name: string, dflt: number): number;
  flag(name: string): boolean;
}

export function parseArgs(argv: string[] = process.argv.slice(2)): BenchArgs {
  const option = (name: string): string | undefined => {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === `--${name}`) return argv[i + 1];
      if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
    }
    return undefined;
  };
  return {
    json: argv.includes("--json"),
    argv,
    option,
    flag: (name) => argv.includes(`--${name}`),
    int: (name, dflt) => {
      const v = option(name);
      if (v === undefined) return dflt;
      const n = parseCount(v);
      if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a count: ${v}`);
      return n;
    },
  };
}

/** "1000000", "1e6", "1_000_000", "10M", "100k" -> number. */
export function parseCount(v: string): number {
  const s = v.replace(/_/g, "").trim();
  const mult = /[kK]$/.test(s) ? 1e3 : /[mM]$/.test(s) ? 1e6 : 1;
  return Math.round(Number(mult === 1 ? s : s.slice(0, -1)) * mult);
}

// ---------------------------------------------------------------- time, gc, memory

/** Monotonic nanoseconds as a number. */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/** Process CPU time (user + system) in nanoseconds (microsecond resolution). */
export function cpuNs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) * 1000;
}

export type Clock = "cpu" | "wall";

/**
 * Nanosecond clock by name. "cpu" (process CPU time) ignores time spent descheduled, so it is the
 * steadier choice on a shared machine; it also counts other threads (GC helpers), so use it for
 * loops that do not allocate or over runs long enough to average out.
 */
export function clockFn(clock: Clock): () => number {
  return clock === "cpu" ? cpuNs : nowNs;
}

const gcFn = (globalThis as { gc?: () => void }).gc;

export function hasGc(): boolean {
  return typeof gcFn === "function";
}

/** Full GC (twice, to let finalisation settle; once with quick=true); no-op without --expose-gc. */
export function fullGc(quick = false): void {
  if (gcFn) {
    gcFn();
    if (!quick) gcFn();
  }
}

/**
 * Waits (spinning) until this process runs only this thread: the CPU time of the process grows no
 * faster than the wall clock over a 10 ms slice (at most maxMs). After a forced full GC of a large
 * heap, V8's helper threads go on sweeping for a while; timed with the process CPU clock their work
 * would be charged to the measured loop, and their unmapping of freed memory flushes this
 * thread's TLB (on a VM each TLB miss is a nested page walk), which slows a loop that misses
 * memory on every iteration several times over, whatever the clock.
 */
export function quiesce(maxMs = 5000): void {
  const deadline = nowNs() + maxMs * 1e6;
  for (;;) {
    const w0 = nowNs();
    const c0 = cpuNs();
    while (nowNs() - w0 < 10e6) {
      // spin
    }
    const dw = nowNs() - w0;
    const dc = cpuNs() - c0;
    if (dc < dw * 1.1 || nowNs() > deadline) return;
  }
}

/** JS heap in use plus ArrayBuffer memory (typed arrays live outside the heap). */
export function memBytes(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/**
 * Runs fn and returns its result with the time it took and the memory it retains (heap plus
 * array buffers, measured after a full GC before and after; 0 without --expose-gc).
 */
export function measure<T>(fn: () => T): { result: T; ms: number; cpuMs: number; bytes: number } {
  fullGc();
  const m0 = memBytes();
  const c0 = cpuNs();
  const t0 = nowNs();
  const result = fn();
  const ms = (nowNs() - t0) / 1e6;
  const cpuMs = (cpuNs() - c0) / 1e6;
  fullGc();
  const bytes = hasGc() ? memBytes() - m0 : 0;
  return { result, ms, cpuMs, bytes };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** Keeps results observable so loops are not optimised away. */
export const sink = { n: 0 };

// ---------------------------------------------------------------- random

/** Seeded PRNG (mulberry32): returns floats in [0, 1). Deterministic across runs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integer in [lo, hi] (inclusive). */
export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** In-place Fisher-Yates shuffle. */
export function shuffle<T>(r: () => number, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

// ---------------------------------------------------------------- strings

/**
 * A list of ASCII strings packed in one buffer, from which fresh copies can be made: new flat
 * strings whose hash V8 has not computed yet, like strings just parsed off the network.
 */
export class StringPack {
  private readonly buf: Buffer;
  private readonly offsets: Int32Array;
  readonly length: number;

  constructor(strings: readonly string[]) {
    this.length = strings.length;
    this.offsets = new Int32Array(strings.length + 1);
    let total = 0;
    for (let i = 0; i < strings.length; i++) {
      this.offsets[i] = total;
      total += strings[i].length;
    }
    this.offsets[strings.length] = total;
    this.buf = Buffer.allocUnsafe(total);
    for (let i = 0; i < strings.length; i++) this.buf.write(strings[i], this.offsets[i], "latin1");
  }

  /** Fresh string copies (a new array of new strings on every call). */
  fresh(): string[] {
    const out = new Array<string>(this.length);
    const o = this.offsets;
    for (let i = 0; i < this.length; i++) out[i] = this.buf.toString("latin1", o[i], o[i + 1]);
    return out;
  }
}

// ---------------------------------------------------------------- results

export interface BenchResult {
  name: string;
  entries: number;
  ns_per_op: number;
  ops_per_s: number;
  ratio_to_map?: number;
  build_ms?: number;
  bytes_per_entry?: number;
  [extra: string]: string | number | boolean | undefined;
}

/** Builds a result from a per-op time, rounding for display. */
export function result(
  name: string,
  entries: number,
  nsPerOp: number,
  extra: Omit<Partial<BenchResult>, "name" | "entries" | "ns_per_op" | "ops_per_s"> = {},
): BenchResult {
  const r: BenchResult = {
    name,
    entries,
    ns_per_op: round(nsPerOp, 1),
    ops_per_s: Math.round(1e9 / nsPerOp),
  };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) r[k] = typeof v === "number" ? round(v, 3) : v;
  return r;
}

export function round(x: number, digits: number): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Prints results as JSON lines (--json) or as a table, row by row. */
export class Reporter {
  readonly rows: BenchResult[] = [];
  private headerDone = false;
  private static readonly cols: [keyof BenchResult | string, string, number][] = [
    ["name", "case", 28],
    ["entries", "entries", 9],
    ["ns_per_op", "ns/op", 9],
    ["ops_per_s", "ops/s", 11],
    ["ratio_to_map", "ratio_map", 9],
    ["build_ms", "build_ms", 9],
    ["bytes_per_entry", "B/entry", 8],
    ["alloc_per_op", "alloc/op", 8],
  ];

  constructor(private readonly json: boolean, private readonly out: (line: string) => void = (l) => console.log(l)) {}

  report(r: BenchResult): void {
    this.rows.push(r);
    if (this.json) {
      this.out(JSON.stringify(r));
      return;
    }
    if (!this.headerDone) {
      this.headerDone = true;
      this.out(Reporter.cols.map(([, h, w], i) => (i === 0 ? h.padEnd(w) : h.padStart(w))).join(" "));
    }
    this.out(
      Reporter.cols
        .map(([k, , w], i) => {
          const v = r[k as string];
          const s = v === undefined ? "" : typeof v === "number" ? fmt(v) : String(v);
          return i === 0 ? s.padEnd(w) : s.padStart(w);
        })
        .join(" "),
    );
  }

  /** A comment line (ignored in --json mode except on stderr). */
  note(text: string): void {
    if (this.json) process.stderr.write(text + "\n");
    else this.out(text);
  }
}

function fmt(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}
