/**
 * The file route source: config/routes.yaml (or .json/.csv) loaded at start and watched. A change
 * is parsed and validated aside, then swapped in at once. A broken file keeps the last good table,
 * logs every error (with its line and column) and counts the failure.
 *
 * The daemon loads in a worker thread (file-worker.ts): reading, parsing, validating and building
 * the table's structure happen there; the main thread keeps the distinct entries' texts it
 * receives (UTF-8 bytes outside the JS heap, one buffer per batch, no object per entry), takes the table's arrays over and swaps it
 * in. An entry becomes a route object when a lookup first reaches it. The command line (lookup, check-config) loads on its own thread: loadRouteFile().
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { pino, type Logger } from "pino";
import { Registry } from "prom-client";
import type { Config } from "../../config/schema.js";
import { selfTargetCheck } from "../../edge/self-targets.js";
import { RouteMetrics } from "../metrics.js";
import { parseOutbound, parseOutboundSection, type OutboundEntry } from "../outbound.js";
import { parseRouteJson, type Route } from "../route.js";
import { EntryColumns, RouteStore, RouteTable } from "../table.js";
import { formatDocError, formatFromPath, scanRouteDocument, validateEntry } from "./document.js";
import type { FileWorkerData, FileWorkerMessage, OutboundTransfer } from "./file-worker.js";
import { errMessage } from "../../util/errors.js";

export type LoadResult = { ok: true; table: RouteTable<Route>; outbound?: RouteTable<OutboundEntry> } | { ok: false; errors: string[] };

/** Extra validation of a whole table (errors name the key): e.g. targets that are didgate itself. */
export type TableCheck = (table: RouteTable<Route>) => string[];

/** Read and validate a route file into a table (no swap), on this thread. */
export function loadRouteFile(path: string, check?: TableCheck): LoadResult {
  let text: string;
  let mtimeMs: number;
  try {
    text = readFileSync(path, "utf8");
    mtimeMs = statSync(path).mtimeMs;
  } catch (err) {
    return { ok: false, errors: [`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? errMessage(err)})`] };
  }
  let cols = new EntryColumns<Route>();
  const errors: string[] = [];
  let outboundEntries: [string, OutboundEntry][] = [];
  const onError = (e: Parameters<Parameters<typeof validateEntry>[4]>[0]) => void errors.push(formatDocError(e, path));
  const stop = scanRouteDocument(text, formatFromPath(path), {
    entry(key, value, line, col) {
      const route = validateEntry(key, value, line, col, onError);
      if (route !== undefined && errors.length === 0) cols.push(key, route);
    },
    reset() {
      cols = new EntryColumns<Route>();
      errors.length = 0;
      outboundEntries = [];
    },
    outbound(value, line, col) {
      const o = parseOutboundSection(value);
      outboundEntries = o.entries;
      for (const message of o.errors) onError({ line, col, message });
    },
  });
  for (const e of stop) errors.push(formatDocError(e, path));
  if (errors.length > 0) return { ok: false, errors };
  cols.uniqueFrom = 0; // every entry was parsed into an object of its own
  const table = RouteTable.build(cols);
  table.version = String(Math.floor(mtimeMs));
  const extra = check?.(table) ?? [];
  if (extra.length > 0) return { ok: false, errors: extra.map((e) => `${path}: ${e}`) };
  const outbound = RouteTable.build(outboundEntries);
  outbound.version = table.version;
  return { ok: true, table, outbound };
}

/**
 * Loads a route file through the loader thread (as the daemon does) into a table of its own, for
 * the command line (lookup, check-config): parsing runs on a second core and routes are compiled
 * on first use. Every error is listed. Falls back to loadRouteFile() where there is no worker.
 */
export async function loadRouteFileInWorker(path: string, selfTargets?: Config["sip"]): Promise<LoadResult> {
  const store = new RouteStore<Route>(RouteTable.build<Route>([]));
  const source = new FileRouteSource({
    path,
    watch: false,
    store,
    logger: pino({ level: "silent" }),
    metrics: new RouteMetrics(new Registry()),
    maxErrors: Infinity,
    ...(selfTargets ? { selfTargets, check: selfTargetCheck(selfTargets) } : {}),
  });
  try {
    return await source.load();
  } finally {
    source.close();
  }
}

/**
 * The compiled worker script. Under the test runner this module runs from the TypeScript sources,
 * whose imports name .js files that only exist in the compiled tree: use the compiled worker.
 */
export function fileWorkerPath(): string | undefined {
  const here = import.meta.url;
  const candidates = here.endsWith(".ts") ? [new URL("../../../dist/src/routing/sources/file-worker.js", here)] : [new URL("./file-worker.js", here)];
  for (const u of candidates) {
    const p = fileURLToPath(u);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export interface FileSourceOptions {
  path: string;
  watch: boolean;
  store: RouteStore<Route>;
  /** Receives the file's `outbound:` table (an empty table when the file has none). */
  outboundStore?: RouteStore<OutboundEntry>;
  logger: Logger;
  metrics: RouteMetrics;
  /** Wall clock, epoch ms (default Date.now): the time of the last reload in the metrics. */
  now?: () => number;
  /** Debounce for bursts of file events (editors write in several steps). */
  debounceMs?: number;
  /** Load in a worker thread (default true; false: on the main thread, in one go). */
  worker?: boolean;
  /** Errors kept from a broken file (all are counted; default 1000). */
  maxErrors?: number;
  /** Entries per batch sent by the loader thread (default 2000). */
  batchSize?: number;
  /** Batches the loader thread may have waiting on the main thread (default 8). */
  inFlight?: number;
  /**
   * The sip section of the config: a route whose targets are didgate itself is an error. Checked
   * entry by entry in the loader thread (with the entry's place); `check` is used instead when the
   * file is loaded on the main thread.
   */
  selfTargets?: Config["sip"];
  /** Extra validation of each table loaded on the main thread (see selfTargets). */
  check?: TableCheck;
}

/** How a load went, for the log and for tests. */
export interface LoadStats {
  worker: boolean;
  entries: number;
  distinct: number;
  /** Longest main-thread step spent on this load (wall clock): taking the table over. */
  maxSliceMs: number;
  /** The same slice's CPU time on the main thread (0 where the runtime cannot tell). */
  maxSliceCpuMs: number;
  /** Time to put the table together from the transferred arrays (part of one slice). */
  assembleMs?: number;
  ms: number;
}

/** CPU time of this thread in ms (process.threadCpuUsage exists from Node 23.9; 0 before). */
function threadCpuMs(): number {
  const f = (process as unknown as { threadCpuUsage?: () => { user: number; system: number } }).threadCpuUsage;
  if (typeof f !== "function") return 0;
  const u = f.call(process);
  return (u.user + u.system) / 1000;
}

export class FileRouteSource {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastHash = "";
  private running: Promise<LoadResult> | undefined;
  private again: string | undefined;
  private worker: Worker | undefined;
  private closed = false;
  /** Number of reloads attempted after the first load (for tests and /readyz detail). */
  reloads = 0;
  lastError: string[] | undefined;
  /** Details of the last successful load. */
  lastStats: LoadStats | undefined;

  constructor(private readonly opts: FileSourceOptions) {}

  /** First load. Returns the errors when the file is broken (the caller decides to exit). */
  async load(): Promise<LoadResult> {
    const r = await this.reload("initial");
    if (r.ok && this.opts.watch) this.startWatching();
    return r;
  }

  private startWatching(): void {
    const dir = dirname(this.opts.path);
    const name = basename(this.opts.path);
    try {
      // Watch the directory: editors and deploy tools replace the file by rename.
      this.watcher = watch(dir, { persistent: false }, (_event, file) => {
        if (file === null || file === name) this.schedule();
      });
      this.watcher.on("error", (err) => this.opts.logger.warn({ err: err.message, path: this.opts.path }, "route file watch error"));
    } catch (err) {
      this.opts.logger.warn({ err: errMessage(err), path: this.opts.path }, "cannot watch route file; changes need a restart");
    }
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reload("watch");
    }, this.opts.debounceMs ?? 100);
    this.timer.unref();
  }

  /**
   * Loads the file and swaps it in if it is valid. One load runs at a time: a request while one
   * runs makes one more load after it (whose result the promise gives).
   */
  reload(reason: string): Promise<LoadResult> {
    if (this.running) {
      this.again = reason;
      return this.running.then(() => this.running ?? this.reload(reason));
    }
    const p = this.loadOnce(reason).finally(() => {
      this.running = undefined;
      const again = this.again;
      this.again = undefined;
      if (again !== undefined && !this.closed) this.running = this.reload(again);
    });
    this.running = p;
    return p;
  }

  /** Back-compat name of reload(). */
  reloadNow(reason: string): Promise<LoadResult> {
    return this.reload(reason);
  }

  private async loadOnce(reason: string): Promise<LoadResult> {
    const { path, store, logger, metrics } = this.opts;
    const started = performance.now();
    const workerPath = this.opts.worker === false ? undefined : fileWorkerPath();
    let r: LoadResult | "unchanged";
    let stats: LoadStats;
    if (workerPath !== undefined) {
      const w = await this.loadInWorker(workerPath, reason);
      r = w.result;
      stats = w.stats;
    } else {
      const t0 = performance.now();
      let text: string | undefined;
      try {
        text = readFileSync(path, "utf8");
      } catch {
        text = undefined;
      }
      const hash = text === undefined ? "" : createHash("sha256").update(text).digest("hex");
      if (reason !== "initial" && text !== undefined && hash === this.lastHash) r = "unchanged";
      else {
        r = loadRouteFile(path, this.opts.check);
        if (r.ok) this.lastHash = hash;
      }
      const ms = performance.now() - t0;
      stats = { worker: false, entries: r !== "unchanged" && r.ok ? r.table.size : 0, distinct: r !== "unchanged" && r.ok ? r.table.distinctValues : 0, maxSliceMs: ms, maxSliceCpuMs: ms, ms };
    }
    if (r === "unchanged") {
      // The last good file is back after a broken one: the table in use is its table already.
      if (this.lastError !== undefined) {
        this.lastError = undefined;
        logger.info({ path }, "route file restored to the table in use");
      }
      return { ok: true, table: store.current };
    }
    if (reason !== "initial") this.reloads++;
    if (!r.ok) {
      this.lastError = r.errors;
      metrics.reloads.inc({ source: "file", result: "failed" });
      logger.error({ path, errors: r.errors.slice(0, 50), error_count: r.errors.length, reason }, "route file rejected; keeping the last good table");
      return r;
    }
    this.lastError = undefined;
    store.swap(r.table);
    if (r.outbound !== undefined) this.opts.outboundStore?.swap(r.outbound);
    stats.ms = performance.now() - started;
    this.lastStats = stats;
    metrics.reloads.inc({ source: "file", result: "ok" });
    metrics.lastReload.set((this.opts.now ?? Date.now)() / 1000);
    metrics.observeTable("file", r.table.version, r.table.counts());
    logger.info(
      { path, entries: r.table.size, distinct: stats.distinct, reason, ms: Math.round(stats.ms), worker: stats.worker, max_slice_ms: Math.round(stats.maxSliceMs * 10) / 10, max_slice_cpu_ms: Math.round(stats.maxSliceCpuMs * 10) / 10, assemble_ms: Math.round((stats.assembleMs ?? 0) * 10) / 10 },
      "route table loaded from file",
    );
    return r;
  }

  /** One load through the worker; the main thread keeps the entry texts and adopts the table. */
  private loadInWorker(workerPath: string, reason: string): Promise<{ result: LoadResult | "unchanged"; stats: LoadStats }> {
    const { path } = this.opts;
    const stats: LoadStats = { worker: true, entries: 0, distinct: 0, maxSliceMs: 0, maxSliceCpuMs: 0, ms: 0 };
    return new Promise((resolve) => {
      const consumedBuf = new SharedArrayBuffer(4);
      const consumed = new Int32Array(consumedBuf);
      const data: FileWorkerData = {
        kind: "didgate-route-file",
        path,
        format: formatFromPath(path),
        lastHash: reason === "initial" ? "" : this.lastHash,
        maxErrors: this.opts.maxErrors ?? 1000,
        batch: this.opts.batchSize ?? 2000,
        consumed: consumedBuf,
        inFlight: this.opts.inFlight ?? 8,
        ...(this.opts.selfTargets ? { selfTargets: this.opts.selfTargets } : {}),
      };
      const consumedOne = (n = 1) => {
        Atomics.add(consumed, 0, n);
        Atomics.notify(consumed, 0);
      };
      let worker: Worker;
      try {
        worker = new Worker(workerPath, { workerData: data });
      } catch (err) {
        resolve({ result: { ok: false, errors: [`${path}: cannot start the loader thread (${errMessage(err)})`] }, stats });
        return;
      }
      this.worker = worker;
      // The entry texts as the worker sent them, in batches of consecutive ids; an entry becomes a
      // route when a lookup first reaches it (RouteTable.fromStateLazy), so taking a large table in
      // makes no object per entry here.
      let batches: EntryBatch[] = [];
      // The table's value slots, one per entry, grown as the entries arrive (slot 0 unused).
      let slots: (Route | undefined)[] = [undefined];
      let done = false;
      const finish = (result: LoadResult | "unchanged") => {
        if (done) return;
        done = true;
        this.worker = undefined;
        void worker.terminate();
        resolve({ result, stats });
      };
      const timed = (work: () => void) => {
        const t0 = performance.now();
        const c0 = threadCpuMs();
        work();
        const slice = performance.now() - t0;
        if (slice > stats.maxSliceMs) stats.maxSliceMs = slice;
        const cpu = threadCpuMs() - c0;
        if (cpu > stats.maxSliceCpuMs) stats.maxSliceCpuMs = cpu;
      };
      const adopt = (t: Extract<FileWorkerMessage, { type: "table" }>) => {
        try {
          const a0 = performance.now();
          const built = RouteTable.fromStateLazy<Route>(t.state, routeMaker(batches), slots);
          // The outbound section: built and validated in the worker; its distinct entries here.
          const outbound = t.outbound === undefined ? RouteTable.build<OutboundEntry>([]) : adoptOutbound(t.outbound);
          stats.assembleMs = performance.now() - a0;
          built.version = String(Math.floor(t.mtimeMs));
          this.lastHash = t.hash;
          stats.entries = t.entries;
          stats.distinct = t.distinct;
          batches = [];
          slots = [undefined];
          outbound.version = built.version;
          finish({ ok: true, table: built, outbound });
        } catch (err) {
          finish({ ok: false, errors: [`${path}: ${errMessage(err)}`] });
        }
      };
      worker.on("message", (m: FileWorkerMessage) => {
        if (done) return;
        switch (m.type) {
          case "unchanged":
            finish("unchanged");
            return;
          case "routes":
            batches.push({ firstId: m.firstId, bytes: m.bytes, ends: m.ends });
            for (let i = 0; i < m.ends.length; i++) slots.push(undefined);
            consumedOne();
            return;
          case "reset":
            batches = [];
            slots = [undefined];
            return;
          case "errors": {
            const errors = m.errors.map((e) => formatDocError(e, path));
            if (m.count > m.errors.length) errors.push(`${path}: … and ${m.count - m.errors.length} more errors`);
            finish({ ok: false, errors });
            return;
          }
          case "table":
            timed(() => adopt(m));
            return;
          case "failed":
            finish({ ok: false, errors: [`${path}: ${m.message}`] });
            return;
        }
      });
      worker.on("error", (err) => finish({ ok: false, errors: [`${path}: loader thread failed (${err.message})`] }));
      worker.on("exit", (code) => {
        // After its last message the worker exits; that message may still be in the queue.
        if (!done) finish({ ok: false, errors: [`${path}: loader thread exited (${code}) before the table was ready`] });
      });
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
    void this.worker?.terminate();
  }
}

/** Texts of the entries with ids firstId, firstId + 1, … as UTF-8: entry i ends at byte ends[i] (starts at ends[i - 1], or 0). */
interface EntryBatch {
  firstId: number;
  bytes: Uint8Array;
  ends: Int32Array;
}

const utf8 = new TextDecoder();

/** The route of entry `id`, compiled from its text in the batch that holds it. */
function routeMaker(batches: EntryBatch[]): (id: number) => Route {
  return (id) => {
    let lo = 0;
    let hi = batches.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (batches[mid]!.firstId <= id) lo = mid;
      else hi = mid - 1;
    }
    const b = batches[lo];
    const i = b === undefined ? -1 : id - b.firstId;
    const res = b !== undefined && i >= 0 && i < b.ends.length ? parseRouteJson("", utf8.decode(b.bytes.subarray(i === 0 ? 0 : b.ends[i - 1]!, b.ends[i]!))) : undefined;
    // Validated in the worker; should it not validate here, the route never routes rather than throw.
    return res?.ok ? res.route : UNROUTABLE;
  };
}

const UNROUTABLE: Route = { state: "quarantine", tenant: undefined, voice: undefined, sms: undefined, releasedAt: undefined, portDate: undefined, source: {} };

/** The outbound table the worker built: its distinct entries (validated there) made objects here. */
function adoptOutbound(o: OutboundTransfer): RouteTable<OutboundEntry> {
  const entries = (JSON.parse(o.values) as [string, unknown][]).map(([key, v]) => {
    const r = parseOutbound(key, v);
    if (!r.ok) throw new Error(r.errors.join("; "));
    return r.entry;
  });
  return RouteTable.fromState<OutboundEntry>(o.state, (id) => entries[id]!);
}
