/**
 * Durable reassembly buffers without Redis (direct mode): the same protocol as RedisPartStore
 * (parts.ts), held in memory and written to an append-only journal in the state directory. add()
 * resolves only once its record is on disk (fdatasync), so a part answered ESME_ROK survives a
 * crash (kill -9, power loss with an honest disk): at start the journal is replayed, and the
 * buffers are completed by the parts still to come, or swept after their timeout and delivered as
 * partial, as in spool mode. A completed message whose delivery failed stays in its buffer (not
 * done) until it is delivered: the journal holds every message didgate has acknowledged and not
 * yet delivered.
 *
 * The journal is one JSON record per line:
 *   {"o":"a","k":key,"t":total,"s":seq,"p":part,"d":due}   a part (first of its buffer: due set)
 *   {"o":"s","k":key,"d":leaseUntil}                         handed out by a sweep
 *   {"o":"x","k":key}                                       done: forget the buffer
 *   {"o":"b","k":key,"t":total,"d":due,"w":swept,"p":{seq:part}}   a whole buffer (compaction)
 * Records written in the same turn of the event loop share one write and one fdatasync (group
 * commit). When the records outnumber the live parts several times over, the journal is rewritten
 * with the live buffers only (written aside, synced, renamed over, directory synced). A torn last
 * line (a crash during a write, whose add() therefore never resolved) is ignored at replay.
 *
 * One process owns the file: two didgate instances must not share a state directory.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { type TimeoutClock, systemClock } from "../util/clock.js";
import type { PartAddResult, SweptBuffer } from "./parts.js";

export interface JournalPartStoreOptions {
  /** The journal file (created with its directory). */
  path: string;
  /** How long a buffer waits for its missing parts (ms), like smpp.reassembly.timeout_s. */
  timeoutMs: number;
  /** Most buffers held at once; beyond it add() answers "full". 0 = unbounded. */
  maxBuffers?: number;
  /** Most part bytes (their stored text) held at once; beyond it add() answers "full". 0 = unbounded. */
  maxBytes?: number;
  /** How long a swept buffer is reserved for its sweep (ms). Default 60 s. */
  leaseMs?: number;
  clock?: TimeoutClock;
  /** Rewrite the journal when it holds this many records more than the live parts (default 10000). */
  compactAfter?: number;
}

interface Buffer_ {
  total: number;
  /** When the sweep takes it (ms): the timeout, or the end of a sweep's lease. */
  due: number;
  swept: boolean;
  parts: Map<number, string>;
}

type JournalRecord =
  | { o: "a"; k: string; t: number; s: number; p: string; d?: number }
  | { o: "s"; k: string; d: number }
  | { o: "x"; k: string }
  | { o: "b"; k: string; t: number; d: number; w: boolean; p: Record<string, string> };

export class JournalPartStore {
  private readonly o: JournalPartStoreOptions;
  private readonly clock: TimeoutClock;
  private readonly buffers = new Map<string, Buffer_>();
  private fh: FileHandle | undefined;
  private pending: { line: string; resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushing: Promise<void> | undefined;
  private records = 0;
  private liveParts = 0;
  private liveBytes = 0;
  private closed = false;
  /** Lines of the journal that could not be read at start (a torn last write). */
  readonly skippedAtReplay: number;

  /** Opens (creating) the journal and replays it; synchronous so the store is ready at once. */
  constructor(opts: JournalPartStoreOptions) {
    this.o = opts;
    this.clock = opts.clock ?? systemClock;
    mkdirSync(dirname(opts.path), { recursive: true });
    this.skippedAtReplay = this.replay();
    this.compactSync();
  }

  /** Open the append handle (call once before use). */
  async open(): Promise<void> {
    this.fh ??= await open(this.o.path, "a");
  }

  /** Buffers held. */
  async size(): Promise<number> {
    return this.buffers.size;
  }

  /** Store part `seq` (1-based) of `total`; resolves once the part is on disk. */
  async add(key: string, total: number, seq: number, part: string): Promise<PartAddResult> {
    if (!Number.isInteger(total) || total < 1 || !Number.isInteger(seq) || seq < 1 || seq > total) throw new RangeError(`bad part ${seq}/${total}`);
    let b = this.buffers.get(key);
    if (b !== undefined && b.parts.has(seq)) {
      // Answer a duplicate only once the first copy is on disk (its write may be in flight).
      if (this.flushing !== undefined) {
        await this.flushing.catch(() => undefined);
        if (this.buffers.get(key)?.parts.has(seq) !== true) return this.add(key, total, seq, part);
      }
      return { kind: "duplicate" };
    }
    if (b !== undefined && b.swept) return { kind: "late" };
    const maxBytes = this.o.maxBytes ?? 0;
    if (maxBytes > 0 && this.liveBytes + part.length > maxBytes) return { kind: "full" };
    const now = this.clock.now();
    let rec: JournalRecord;
    if (b === undefined) {
      const max = this.o.maxBuffers ?? 0;
      if (max > 0 && this.buffers.size >= max) return { kind: "full" };
      b = { total, due: now + this.o.timeoutMs, swept: false, parts: new Map() };
      this.buffers.set(key, b);
      rec = { o: "a", k: key, t: total, s: seq, p: part, d: b.due };
    } else {
      rec = { o: "a", k: key, t: b.total, s: seq, p: part };
    }
    b.parts.set(seq, part);
    this.liveParts++;
    this.liveBytes += part.length;
    const complete = b.parts.size >= b.total;
    if (complete) {
      // A completed message is delivered by the edge now; if that fails and nobody retries, the
      // sweep takes it when this runs out.
      b.due = now + this.o.timeoutMs;
      rec.d = b.due;
    }
    try {
      await this.append(rec);
    } catch (err) {
      // Not on disk: undo, so the part is answered with a temporary failure and comes again.
      b.parts.delete(seq);
      this.liveParts--;
      this.liveBytes -= part.length;
      if (b.parts.size === 0) this.buffers.delete(key);
      throw err;
    }
    if (!complete) return { kind: "stored" };
    return { kind: "complete", parts: orderedParts(b) as string[] };
  }

  /** The parts of a complete buffer neither swept nor done (see RedisPartStore.completed). */
  async completed(key: string): Promise<string[] | undefined> {
    const b = this.buffers.get(key);
    if (b === undefined || b.swept || b.parts.size < b.total) return undefined;
    return orderedParts(b) as string[];
  }

  /** Forget a buffer once its message was accepted for delivery. */
  async done(key: string): Promise<void> {
    const b = this.buffers.get(key);
    if (b === undefined) return;
    this.buffers.delete(key);
    this.liveParts -= b.parts.size;
    for (const p of b.parts.values()) this.liveBytes -= p.length;
    await this.append({ o: "x", k: key });
  }

  /** Buffers past their timeout (or left complete by a failed delivery), leased to the caller. */
  async sweep(limit = 100): Promise<SweptBuffer[]> {
    const now = this.clock.now();
    const until = now + (this.o.leaseMs ?? 60_000);
    const out: SweptBuffer[] = [];
    const marks: Promise<void>[] = [];
    for (const [key, b] of this.buffers) {
      if (out.length >= limit) break;
      if (b.due > now) continue;
      b.swept = true;
      b.due = until;
      marks.push(this.append({ o: "s", k: key, d: until }));
      out.push({ key, total: b.total, parts: orderedParts(b) });
    }
    await Promise.all(marks);
    return out;
  }

  /** Write what is queued, then close the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flushing?.catch(() => undefined);
    if (this.pending.length > 0) await this.flush().catch(() => undefined);
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
  }

  // ---- journal ----------------------------------------------------------------------------------

  private append(rec: JournalRecord): Promise<void> {
    if (this.closed) return Promise.reject(new Error("part journal closed"));
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ line: JSON.stringify(rec) + "\n", resolve, reject });
      // Every record of this turn of the event loop goes out in one write and one sync.
      if (this.flushing === undefined) this.flushing = new Promise<void>((r) => setImmediate(r)).then(() => this.flushLoop());
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length > 0) await this.flush();
    } finally {
      this.flushing = undefined;
    }
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    try {
      await this.open();
      await this.fh!.write(batch.map((b) => b.line).join(""));
      await this.fh!.datasync();
    } catch (err) {
      for (const b of batch) b.reject(err as Error);
      return;
    }
    this.records += batch.length;
    for (const b of batch) b.resolve();
    if (this.records > (this.o.compactAfter ?? 10_000) + 4 * this.liveParts) await this.compact();
  }

  /** Rewrites the journal with the live buffers (between two flushes: nothing else writes). */
  private async compact(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    this.compactSync();
    await this.open();
  }

  private compactSync(): void {
    const tmp = `${this.o.path}.tmp`;
    const fd = openSync(tmp, "w");
    try {
      let chunk = "";
      for (const [k, b] of this.buffers) {
        const p: Record<string, string> = {};
        for (const [seq, part] of b.parts) p[String(seq)] = part;
        chunk += JSON.stringify({ o: "b", k, t: b.total, d: b.due, w: b.swept, p } satisfies JournalRecord) + "\n";
        if (chunk.length > 1 << 20) {
          writeSync(fd, chunk);
          chunk = "";
        }
      }
      if (chunk.length > 0) writeSync(fd, chunk);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.o.path);
    // The rename is durable once the directory is synced.
    const dir = openSync(dirname(this.o.path), "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    this.records = this.buffers.size;
  }

  /** Rebuilds the buffers from the journal; returns the number of unreadable lines. */
  private replay(): number {
    let text: string;
    try {
      text = readFileSync(this.o.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw err;
    }
    let bad = 0;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      let r: JournalRecord;
      try {
        r = JSON.parse(line) as JournalRecord;
      } catch {
        bad++;
        continue;
      }
      if (typeof r !== "object" || r === null || typeof r.k !== "string") {
        bad++;
        continue;
      }
      this.apply(r);
    }
    this.liveParts = 0;
    this.liveBytes = 0;
    for (const b of this.buffers.values()) {
      this.liveParts += b.parts.size;
      for (const p of b.parts.values()) this.liveBytes += p.length;
    }
    return bad;
  }

  private apply(r: JournalRecord): void {
    switch (r.o) {
      case "a": {
        let b = this.buffers.get(r.k);
        if (b === undefined) {
          b = { total: r.t, due: r.d ?? this.clock.now() + this.o.timeoutMs, swept: false, parts: new Map() };
          this.buffers.set(r.k, b);
        } else if (r.d !== undefined) b.due = r.d;
        b.parts.set(r.s, r.p);
        return;
      }
      case "s": {
        const b = this.buffers.get(r.k);
        if (b !== undefined) {
          b.swept = true;
          b.due = r.d;
        }
        return;
      }
      case "x":
        this.buffers.delete(r.k);
        return;
      case "b":
        this.buffers.set(r.k, { total: r.t, due: r.d, swept: r.w, parts: new Map(Object.entries(r.p).map(([s, p]) => [Number(s), p])) });
        return;
    }
  }
}

function orderedParts(b: Buffer_): (string | undefined)[] {
  const out = new Array<string | undefined>(b.total);
  for (const [seq, part] of b.parts) if (seq >= 1 && seq <= b.total) out[seq - 1] = part;
  return out;
}
