/**
 * The file route source: config/routes.yaml (or .json/.csv) loaded at start and watched. A change
 * is parsed and validated aside, then swapped in at once. A broken file keeps the last good table,
 * logs every error and counts the failure.
 */
import { readFileSync, statSync, watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "pino";
import type { RouteMetrics } from "../metrics.js";
import type { OutboundEntry } from "../outbound.js";
import type { Route } from "../route.js";
import { RouteTable, type RouteStore } from "../table.js";
import { formatFromPath, parseRouteDocument } from "./document.js";

export type LoadResult = { ok: true; table: RouteTable<Route>; outbound?: RouteTable<OutboundEntry> } | { ok: false; errors: string[] };

/** Extra validation of a whole table (errors name the key): e.g. targets that are didgate itself. */
export type TableCheck = (table: RouteTable<Route>) => string[];

/** Read and validate a route file into a table (no swap). */
export function loadRouteFile(path: string, check?: TableCheck): LoadResult {
  let text: string;
  let mtimeMs: number;
  try {
    text = readFileSync(path, "utf8");
    mtimeMs = statSync(path).mtimeMs;
  } catch (err) {
    return { ok: false, errors: [`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`] };
  }
  const doc = parseRouteDocument(text, formatFromPath(path));
  if (doc.errors.length > 0) return { ok: false, errors: doc.errors.map((e) => `${path}: ${e}`) };
  const table = RouteTable.build(doc.entries);
  table.version = String(Math.floor(mtimeMs));
  const extra = check?.(table) ?? [];
  if (extra.length > 0) return { ok: false, errors: extra.map((e) => `${path}: ${e}`) };
  const outbound = RouteTable.build(doc.outbound ?? []);
  outbound.version = table.version;
  return { ok: true, table, outbound };
}

export interface FileSourceOptions {
  path: string;
  watch: boolean;
  store: RouteStore<Route>;
  /** Receives the file's `outbound:` table (an empty table when the file has none). */
  outboundStore?: RouteStore<OutboundEntry>;
  logger: Logger;
  metrics: RouteMetrics;
  /** Debounce for bursts of file events (editors write in several steps). */
  debounceMs?: number;
  /** Extra validation of each loaded table. */
  check?: TableCheck;
}

export class FileRouteSource {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastText: string | undefined;
  /** Number of reloads attempted after the first load (for tests and /readyz detail). */
  reloads = 0;
  lastError: string[] | undefined;

  constructor(private readonly opts: FileSourceOptions) {}

  /** First load. Returns the errors when the file is broken (the caller decides to exit). */
  load(): LoadResult {
    const r = this.reloadNow("initial");
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
      this.opts.logger.warn({ err: (err as Error).message, path: this.opts.path }, "cannot watch route file; changes need a restart");
    }
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reloadNow("watch");
    }, this.opts.debounceMs ?? 100);
    this.timer.unref();
  }

  /** Load the file and swap it in if it is valid. */
  reloadNow(reason: string): LoadResult {
    const { path, store, logger, metrics } = this.opts;
    let text: string | undefined;
    try {
      text = readFileSync(path, "utf8");
    } catch {
      text = undefined;
    }
    if (reason === "watch" && text !== undefined && text === this.lastText) {
      // The last good file is back after a broken one: the table in use is its table already.
      if (this.lastError !== undefined) {
        this.lastError = undefined;
        logger.info({ path }, "route file restored to the table in use");
      }
      return { ok: true, table: store.current };
    }
    if (reason !== "initial") this.reloads++;
    const started = performance.now();
    const r = loadRouteFile(path, this.opts.check);
    if (!r.ok) {
      this.lastError = r.errors;
      metrics.reloads.inc({ source: "file", result: "failed" });
      logger.error({ path, errors: r.errors.slice(0, 50), error_count: r.errors.length, reason }, "route file rejected; keeping the last good table");
      return r;
    }
    this.lastText = text;
    this.lastError = undefined;
    store.swap(r.table);
    if (r.outbound !== undefined) this.opts.outboundStore?.swap(r.outbound);
    metrics.reloads.inc({ source: "file", result: "ok" });
    metrics.lastReload.set(Date.now() / 1000);
    metrics.observeTable("file", r.table.version, r.table.counts());
    logger.info({ path, entries: r.table.size, reason, ms: Math.round(performance.now() - started) }, "route table loaded from file");
    return r;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
  }
}
