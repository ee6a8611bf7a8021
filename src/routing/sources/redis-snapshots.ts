/**
 * The local snapshots of a Redis-synced table: the route table (snapshot.ts format) after each full
 * load and every `snapshot_interval_s` after changes, and the outbound table beside it
 * ("<snapshot>.outbound", one JSON object). An edge started while Redis is down routes from them.
 *
 * A periodic snapshot collects the live table in slices with the event loop turning in between, so
 * a large table never stalls routing; changes applied meanwhile are recorded (`noteChange`) and
 * patched in at the end.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { parseOutboundSection, type OutboundEntry } from "../outbound.js";
import type { Route } from "../route.js";
import { EntryColumns, RouteTable, type RouteStore } from "../table.js";
import { errMessage } from "../../util/errors.js";
import type { RedisSyncMetrics } from "./redis-metrics.js";
import { writeSnapshot } from "./snapshot.js";

export interface RouteSnapshotsOptions {
  /** Snapshot file ("" for none). */
  path: string;
  intervalMs: number;
  store: RouteStore<Route>;
  outboundStore: RouteStore<OutboundEntry> | undefined;
  metrics: RedisSyncMetrics;
  logger: Logger;
  now: () => number;
  /** True once the owner is closing: a collection in progress gives up. */
  closed: () => boolean;
}

type Entries = readonly (readonly [string, Route])[] | EntryColumns<Route>;

export class RouteSnapshots {
  private dirty = false;
  private lastAt = 0;
  private writtenAt: number | undefined;
  private writing: Promise<void> | undefined;
  private outboundSaving: Promise<void> = Promise.resolve();
  /** While a snapshot collects the live table: the changes applied meanwhile (null: deleted). */
  private touched: Map<string, Route | null> | undefined;

  constructor(private readonly o: RouteSnapshotsOptions) {}

  get path(): string {
    return this.o.path;
  }

  /** When the last snapshot was written (epoch ms), if one was. */
  get lastWrittenAt(): number | undefined {
    return this.writtenAt;
  }

  /** The live table changed: the next periodic snapshot writes it. */
  markDirty(): void {
    this.dirty = true;
  }

  /** A key of the live table changed (null: deleted); needed while a collection runs. */
  noteChange(key: string, route: Route | null): void {
    this.touched?.set(key, route);
  }

  /** Many keys of the live table were set. */
  noteSet(keys: readonly string[], values: readonly Route[]): void {
    const t = this.touched;
    if (t) for (let i = 0; i < keys.length; i++) t.set(keys[i]!, values[i]!);
  }

  /** Writes a snapshot of the live table when it changed and the interval has passed. */
  periodic(): void {
    if (!this.dirty || !this.o.path || this.writing) return;
    if (this.o.now() - this.lastAt < this.o.intervalMs) return;
    this.dirty = false;
    this.lastAt = this.o.now();
    this.writing = this.ofLiveTable().finally(() => {
      this.writing = undefined;
    });
  }

  /** A full load was swapped in: snapshot its entries (the live table equals them). */
  afterFullLoad(version: string, entries: Entries): void {
    this.dirty = false;
    if (!this.o.path) return;
    if (this.writing) {
      // One at a time; the next periodic one catches up.
      this.dirty = true;
      return;
    }
    this.lastAt = this.o.now();
    this.writing = this.write(version, entries).finally(() => {
      this.writing = undefined;
    });
  }

  /** Writes the snapshot now (tests, shutdown hooks). */
  async now(): Promise<void> {
    await this.settle();
    if (!this.o.path) return;
    await this.ofLiveTable();
  }

  /** Waits for a snapshot write in progress. */
  async settle(): Promise<void> {
    await this.writing?.catch(() => undefined);
  }

  private async ofLiveTable(): Promise<void> {
    const table = this.o.store.current;
    const entries = await this.collect(table);
    if (entries === undefined) {
      this.dirty = true; // table replaced meanwhile (its full load writes its own snapshot) or closing
      return;
    }
    await this.write(table.version, entries);
  }

  /**
   * The live table's entries, collected in slices. Keys left untouched keep their (still
   * referenced) values. Undefined when the table was replaced meanwhile.
   */
  private async collect(table: RouteTable<Route>): Promise<[string, Route][] | undefined> {
    if (this.touched) return undefined;
    const touched = new Map<string, Route | null>();
    this.touched = touched;
    try {
      const out: [string, Route][] = [];
      const it = table.entries();
      for (;;) {
        let done = false;
        for (let i = 0; i < 5000; i++) {
          const r = it.next();
          if (r.done) {
            done = true;
            break;
          }
          out.push(r.value);
        }
        if (done) break;
        await new Promise<void>((r) => setImmediate(r));
        if (this.o.store.current !== table || this.o.closed()) return undefined;
      }
      if (touched.size > 0) {
        const seen = new Set<string>();
        let w = 0;
        for (let i = 0; i < out.length; i++) {
          const e = out[i]!;
          const t = touched.get(e[0]);
          if (t === undefined) out[w++] = e;
          else {
            seen.add(e[0]);
            if (t !== null) out[w++] = [e[0], t];
          }
        }
        out.length = w;
        for (const [k, v] of touched) if (v !== null && !seen.has(k)) out.push([k, v]);
      }
      return out;
    } finally {
      this.touched = undefined;
    }
  }

  private async write(version: string, entries: Entries): Promise<void> {
    const started = performance.now();
    const { path, metrics, logger } = this.o;
    try {
      await writeSnapshot(path, version, entries, this.o.now());
      this.writtenAt = this.o.now();
      metrics.snapshots.inc({ result: "ok" });
      metrics.snapshotAge.set(this.writtenAt / 1000);
      logger.debug({ path, entries: entries.length, version, ms: Math.round(performance.now() - started) }, "route snapshot written");
    } catch (err) {
      metrics.snapshots.inc({ result: "failed" });
      logger.error({ path, err: errMessage(err) }, "cannot write the route snapshot");
    }
  }

  // ---- the outbound table (small: written whole after a full load and after changes) --------------

  private outboundPath(): string {
    return this.o.path ? this.o.path + ".outbound" : "";
  }

  saveOutbound(): void {
    const path = this.outboundPath();
    const store = this.o.outboundStore;
    if (!path || store === undefined) return;
    const doc: Record<string, unknown> = {};
    for (const [k, e] of store.current.entries()) doc[k] = e.source;
    const text = JSON.stringify({ didgate_outbound_snapshot: 1, entries: doc }) + "\n";
    const tmp = `${path}.tmp-${process.pid}`;
    this.outboundSaving = this.outboundSaving
      .then(async () => {
        await mkdir(dirname(path), { recursive: true });
        await writeFile(tmp, text);
        await rename(tmp, path);
      })
      .catch((err: unknown) => this.o.logger.warn({ err: errMessage(err), path }, "outbound snapshot not written"));
  }

  /** Loads the outbound snapshot into the outbound store (none yet: outbound waits for Redis). */
  async loadOutbound(): Promise<void> {
    const path = this.outboundPath();
    const store = this.o.outboundStore;
    if (!path || store === undefined) return;
    try {
      const doc = JSON.parse(await readFile(path, "utf8")) as { didgate_outbound_snapshot?: number; entries?: unknown };
      if (doc.didgate_outbound_snapshot !== 1) return;
      const o = parseOutboundSection(doc.entries);
      store.swap(RouteTable.build(o.entries));
    } catch {
      // none yet (or unreadable): outbound calls wait for Redis
    }
  }
}
