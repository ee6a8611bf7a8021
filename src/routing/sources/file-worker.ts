/**
 * The worker thread that loads a route file (see file.ts): it reads, parses and validates the
 * file and builds the table's structure, so that the main thread only turns the distinct entries
 * into route objects (in slices) and swaps the table in.
 *
 * Messages to the parent, in order:
 *   { type: "unchanged" }                      the file's hash equals workerData.lastHash; done
 *   { type: "routes", firstId, bytes, ends }   the entry texts with ids firstId, firstId + 1, …
 *                                               (identical texts share one id) joined, as UTF-8
 *                                               bytes (moved, not copied: they stay out of the
 *                                               receiver's JS heap); entry i ends at byte ends[i]
 *                                               (starts at ends[i - 1], or 0)
 *   { type: "reset" }                          forget the routes sent so far (the document is
 *                                               read again by the reference parser)
 *   { type: "errors", errors, count, hash }    the file is broken: the first errors, how many
 *   { type: "table", state, hash, mtimeMs, entries, distinct, identity }
 *                                               the table's structure, values as entry ids;
 *                                               identity: value slot i holds id i - 1 for every
 *                                               slot (no slot freed by a duplicate key);
 *                                               outbound: the `outbound:` section as JSON text
 *   { type: "failed", message }                could not read the file
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { setPriority } from "node:os";
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import type { Config } from "../../config/schema.js";
import { selfTargetEntryCheck } from "../../edge/self-targets.js";
import { parseOutboundSection, type OutboundEntry } from "../outbound.js";
import { EntryColumns, RouteTable, tableTransferList } from "../table.js";
import { scanRouteDocument, validateEntry, type DocError, type RouteFormat } from "./document.js";
import { errMessage } from "../../util/errors.js";

export interface FileWorkerData {
  kind: "didgate-route-file";
  path: string;
  format: RouteFormat;
  /** Hash of the last file loaded: an identical file is answered "unchanged". */
  lastHash: string;
  /** At most this many errors are sent (all are counted). */
  maxErrors: number;
  /** Entry texts per "routes" message. */
  batch: number;
  /**
   * Flow control: [0] counts the "routes" messages the parent has turned into routes. The worker
   * waits while `inFlight` of its messages are not, so that a slower main thread does not pile up
   * the whole file's texts in its queue.
   */
  consumed: SharedArrayBuffer;
  inFlight: number;
  /** The sip section of the config: routes whose targets are didgate itself are errors. */
  selfTargets?: Config["sip"];
}

export type FileWorkerMessage =
  | { type: "unchanged" }
  | { type: "routes"; firstId: number; bytes: Uint8Array; ends: Int32Array }
  | { type: "reset" }
  | { type: "errors"; errors: DocError[]; count: number; hash: string }
  | { type: "table"; state: ReturnType<RouteTable<number>["exportState"]>; hash: string; mtimeMs: number; entries: number; distinct: number; identity: boolean; outbound?: OutboundTransfer }
  | { type: "failed"; message: string };

const utf8 = new TextEncoder();

/** Identical entry texts are shared; the lookup turns itself off when texts do not repeat. */
const DEDUP_WINDOW = 4096;

function run(d: FileWorkerData): void {
  const post = (m: FileWorkerMessage, transfer?: ArrayBuffer[]) => parentPort!.postMessage(m, transfer);
  let buf: Buffer | undefined;
  let mtimeMs: number;
  try {
    buf = readFileSync(d.path);
    mtimeMs = statSync(d.path).mtimeMs;
  } catch (err) {
    post({ type: "failed", message: `cannot read (${(err as NodeJS.ErrnoException).code ?? errMessage(err)})` });
    return;
  }
  const hash = createHash("sha256").update(buf).digest("hex");
  if (hash === d.lastHash) {
    post({ type: "unchanged" });
    return;
  }
  const text = buf.toString("utf8");
  buf = undefined; // the bytes are not needed once decoded

  let cols = new EntryColumns<number>();
  let seen: Map<string, number> | undefined = new Map();
  let hits = 0;
  let uniqueFrom = Infinity;
  let nextId = 0;
  let batch: string[] = [];
  let batchFirst = 0;
  const errors: DocError[] = [];
  let errorCount = 0;
  const onError = (e: DocError) => {
    errorCount++;
    if (errors.length < d.maxErrors) errors.push(e);
  };
  const consumed = new Int32Array(d.consumed);
  let posted = 0;
  const flush = () => {
    if (batch.length === 0) return;
    for (;;) {
      const c = Atomics.load(consumed, 0);
      if (posted - c < d.inFlight) break;
      Atomics.wait(consumed, 0, c, 1000);
    }
    posted++;
    const ends = new Int32Array(batch.length);
    const bytes = utf8.encode(batch.join(""));
    let at = 0;
    if (bytes.length === at + batch.reduce((n, t) => n + t.length, 0)) {
      for (let i = 0; i < batch.length; i++) ends[i] = at += batch[i]!.length; // ASCII: one byte per unit
    } else {
      for (let i = 0; i < batch.length; i++) ends[i] = at += Buffer.byteLength(batch[i]!, "utf8");
    }
    post({ type: "routes", firstId: batchFirst, bytes, ends }, [bytes.buffer, ends.buffer]);
    batch = [];
    batchFirst = nextId;
  };
  const selfCheck = d.selfTargets ? selfTargetEntryCheck(d.selfTargets) : undefined;
  let outbound: OutboundTransfer | undefined;
  const stop = scanRouteDocument(text, d.format, {
    entry(key, value, line, col, entryText) {
      const route = validateEntry(key, value, line, col, onError);
      if (route !== undefined && selfCheck) {
        const errs = selfCheck(key, route);
        if (errs.length > 0) {
          for (const message of errs) onError({ line, col, message });
          return;
        }
      }
      if (route === undefined || errorCount > 0) return; // once broken, only the errors matter
      const t = entryText ?? JSON.stringify(value);
      let id: number | undefined;
      if (seen !== undefined) {
        id = seen.get(t);
        if (id !== undefined) hits++;
        else seen.set(t, nextId);
        if (seen.size + hits >= DEDUP_WINDOW && hits * 100 < seen.size + hits && uniqueFrom === Infinity) {
          // Under 1 % repeats: every entry from here on gets an id of its own.
          seen = undefined;
          uniqueFrom = cols.length + 1;
        }
      }
      if (id === undefined) {
        id = nextId++;
        batch.push(t);
        if (batch.length >= d.batch) flush();
      }
      cols.push(key, id);
    },
    reset() {
      cols = new EntryColumns<number>();
      seen = new Map();
      hits = 0;
      uniqueFrom = Infinity;
      nextId = 0;
      batch = [];
      batchFirst = 0;
      posted = Atomics.load(consumed, 0);
      errors.length = 0;
      errorCount = 0;
      outbound = undefined;
      post({ type: "reset" });
    },
    outbound(value, line, col) {
      const o = parseOutboundSection(value);
      for (const message of o.errors) onError({ line, col, message });
      outbound = o.errors.length > 0 || value === undefined ? undefined : outboundTransfer(o.entries);
    },
  });
  for (const e of stop) onError(e);
  if (errorCount > 0) {
    post({ type: "errors", errors, count: errorCount, hash });
    return;
  }
  flush();
  cols.uniqueFrom = uniqueFrom;
  const table = RouteTable.build(cols);
  const entries = cols.length;
  cols = new EntryColumns<number>();
  const state = table.exportState((id) => id);
  let identity = state.ids.length === nextId + 1;
  for (let i = 1; identity && i < state.ids.length; i++) identity = state.ids[i] === i - 1;
  const transfer = tableTransferList(state);
  if (outbound !== undefined) transfer.push(...tableTransferList(outbound.state));
  post({ type: "table", state, hash, mtimeMs, entries, distinct: nextId, identity, ...(outbound !== undefined ? { outbound } : {}) }, transfer);
}

/**
 * The outbound section, built here: its table with one id per distinct entry, and those entries as
 * JSON `[key, entry][]` (a few distinct carrier lists for many prefixes), so the main thread only
 * turns the distinct entries into objects and adopts the table.
 */
export interface OutboundTransfer {
  state: ReturnType<RouteTable<number>["exportState"]>;
  values: string;
}

function outboundTransfer(entries: [string, OutboundEntry][]): OutboundTransfer {
  const ids = new Map<string, number>();
  const values: [string, unknown][] = [];
  const cols = new EntryColumns<number>();
  for (const [key, e] of entries) {
    const t = JSON.stringify(e.source);
    let id = ids.get(t);
    if (id === undefined) {
      id = values.length;
      ids.set(t, id);
      values.push([key, e.source]);
    }
    cols.push(key, id);
  }
  return { state: RouteTable.build(cols).exportState((id) => id), values: JSON.stringify(values) };
}

if (!isMainThread && parentPort && (workerData as FileWorkerData | undefined)?.kind === "didgate-route-file") {
  // A load is background work: on Linux the nice value is per thread and pid 0 names the calling
  // thread, so this lowers the loader alone and SIP/SMPP on the main thread win the CPU when both
  // want it (two cores, a 1M-entry parse of seconds). Not permitted or not Linux: no change.
  try {
    setPriority(0, 10);
  } catch {
    /* keep the default priority */
  }
  try {
    run(workerData as FileWorkerData);
  } catch (err) {
    parentPort.postMessage({ type: "failed", message: errMessage(err) } satisfies FileWorkerMessage);
  }
}
