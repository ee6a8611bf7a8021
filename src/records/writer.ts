/**
 * Call and message records: written once per call attempt / message, kept on local disk first,
 * then sent to the Redis stream `<prefix>cdr` (consumer groups let a billing system follow it),
 * optionally also to a rotated JSON-lines file.
 *
 * Durability: `write()` appends the record to `records.log` in the state directory (one JSON line)
 * in the same tick; a pump sends lines to Redis in batches (pipelined XADD, MAXLEN ~) and then
 * records how far it got in `records.offset`. A Redis outage only delays records: they stay in the
 * log and go out in order when Redis is back, and a restart resumes from the saved offset. The log
 * is read from disk in chunks, so an outage costs disk, not memory. Delivery is at least once (a
 * crash between the XADD and the offset write sends that batch again): every record carries an
 * `id` for the consumer to deduplicate. The log is truncated once everything in it was sent.
 * Data is written with write(2) at once (it survives the process being killed) and fsync'd every
 * `fsyncMs` (power loss costs at most that much).
 */
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, statSync, writeFileSync, writeSync, readFileSync, ftruncateSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";

export type RecordType = "call" | "message";

export interface RecordWriterOptions {
  /** Directory of records.log / records.offset. */
  stateDir: string;
  redis?: Redis | Cluster;
  /** Stream key, e.g. "didgate:cdr". */
  stream: string;
  /** XADD MAXLEN ~. */
  maxlen?: number;
  /** Optional JSON-lines copy, rotated by size. */
  jsonl?: { path: string; maxBytes: number; keep: number };
  /** Called with every record (e.g. a signed call.completed webhook); must not throw or block. */
  onRecord?: (type: RecordType, rec: Record<string, unknown>) => void;
  logger: Logger;
  registry?: Registry;
  fsyncMs?: number;
  batch?: number;
}

const CHUNK = 256 * 1024;

export class RecordWriter {
  private readonly logPath: string;
  private readonly offsetPath: string;
  private fd: number;
  private size: number;
  private offset: number;
  private pumping = false;
  private backoffMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private syncTimer: NodeJS.Timeout | null = null;
  private dirty = false;
  private closed = false;
  private down = false;
  private jsonlFd = -1;
  private jsonlSize = 0;
  private readonly written: Counter<"type"> | undefined;
  private readonly sent: Counter | undefined;
  private readonly pendingBytes: Gauge | undefined;

  constructor(private readonly o: RecordWriterOptions) {
    mkdirSync(o.stateDir, { recursive: true });
    this.logPath = join(o.stateDir, "records.log");
    this.offsetPath = join(o.stateDir, "records.offset");
    this.fd = openSync(this.logPath, "a+");
    this.size = fstatSync(this.fd).size;
    let off = 0;
    if (existsSync(this.offsetPath)) {
      const n = Number(readFileSync(this.offsetPath, "utf8").trim());
      if (Number.isInteger(n) && n >= 0 && n <= this.size) off = n;
    }
    this.offset = o.redis === undefined ? this.size : off;
    if (o.jsonl) this.openJsonl();
    if (o.registry) {
      this.written = new Counter({ name: "didgate_records_total", help: "Call and message records written", labelNames: ["type"], registers: [o.registry] });
      this.sent = new Counter({ name: "didgate_records_sent_total", help: "Records sent to the Redis stream", registers: [o.registry] });
      this.pendingBytes = new Gauge({ name: "didgate_records_pending_bytes", help: "Bytes of records on disk not yet in Redis", registers: [o.registry], collect: () => this.pendingBytes?.set(this.size - this.offset) });
    }
    const fsyncMs = o.fsyncMs ?? 1000;
    this.syncTimer = setInterval(() => this.sync(), fsyncMs);
    this.syncTimer.unref();
    if (this.offset < this.size) this.schedule(0);
  }

  /** Bytes on disk not yet sent. */
  get pending(): number {
    return this.size - this.offset;
  }

  write(type: RecordType, rec: Record<string, unknown>): void {
    if (this.closed) return;
    const line = JSON.stringify({ type, ...rec }) + "\n";
    const b = Buffer.from(line, "utf8");
    writeSync(this.fd, b, 0, b.length, this.size);
    this.size += b.length;
    this.dirty = true;
    this.written?.inc({ type });
    if (this.o.jsonl) this.writeJsonl(b);
    try {
      this.o.onRecord?.(type, rec);
    } catch (err) {
      this.o.logger.warn({ err: err instanceof Error ? err.message : String(err) }, "record hook failed");
    }
    if (this.o.redis === undefined) {
      this.offset = this.size;
      this.compact();
    } else if (!this.pumping && this.timer === null) this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.closed || this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.pump();
    }, ms);
    this.timer.unref();
  }

  private sync(): void {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      fsyncSync(this.fd);
      if (this.jsonlFd >= 0) fsyncSync(this.jsonlFd);
    } catch {
      // the next interval tries again
    }
  }

  /** Reads whole lines from `from`, up to about CHUNK bytes. */
  private readLines(from: number): { lines: string[]; bytes: number } {
    const len = Math.min(CHUNK, this.size - from);
    if (len <= 0) return { lines: [], bytes: 0 };
    const buf = Buffer.allocUnsafe(len);
    const n = readSync(this.fd, buf, 0, len, from);
    let end = buf.lastIndexOf(10, n - 1);
    if (end < 0) {
      // one line longer than a chunk: read it whole
      const whole = Buffer.allocUnsafe(this.size - from);
      const m = readSync(this.fd, whole, 0, whole.length, from);
      end = whole.indexOf(10);
      if (end < 0 || end >= m) return { lines: [], bytes: 0 };
      return { lines: [whole.toString("utf8", 0, end)], bytes: end + 1 };
    }
    const text = buf.toString("utf8", 0, end);
    return { lines: text.split("\n"), bytes: end + 1 };
  }

  private async pump(): Promise<void> {
    const redis = this.o.redis;
    if (redis === undefined || this.pumping || this.closed) return;
    this.pumping = true;
    try {
      const max = this.o.batch ?? 500;
      while (!this.closed && this.offset < this.size) {
        const { lines, bytes } = this.readLines(this.offset);
        if (bytes === 0) break;
        // send at most `max` lines per round trip
        let used = 0;
        let consumed = 0;
        while (consumed < lines.length) {
          const part = lines.slice(consumed, consumed + max);
          const p = redis.pipeline();
          for (const l of part) {
            let type = "call";
            let id = "";
            try {
              const j = JSON.parse(l) as { type?: string; id?: string };
              type = j.type === "message" ? "message" : "call";
              id = typeof j.id === "string" ? j.id : "";
            } catch {
              continue;
            }
            p.xadd(this.o.stream, "MAXLEN", "~", this.o.maxlen ?? 10_000_000, "*", "type", type, "id", id, "json", l);
          }
          const res = await p.exec();
          if (res === null || res.some(([err]) => err !== null)) throw new Error(res?.find(([e]) => e !== null)?.[0]?.message ?? "pipeline aborted");
          for (const l of part) used += Buffer.byteLength(l, "utf8") + 1;
          consumed += part.length;
          this.offset += used;
          used = 0;
          this.sent?.inc(part.length);
          this.saveOffset();
        }
      }
      if (this.down) {
        this.down = false;
        this.o.logger.info({ stream: this.o.stream }, "records: Redis reachable again, backlog sent");
      }
      this.backoffMs = 0;
      this.compact();
    } catch (err) {
      if (!this.down) {
        this.down = true;
        this.o.logger.warn({ err: err instanceof Error ? err.message : String(err), pending_bytes: this.pending }, "records: Redis unreachable, keeping records on disk");
      }
      this.backoffMs = Math.min(30_000, Math.max(250, this.backoffMs * 2));
    } finally {
      this.pumping = false;
    }
    if (this.offset < this.size) this.schedule(this.backoffMs);
  }

  private saveOffset(): void {
    const tmp = this.offsetPath + ".tmp";
    writeFileSync(tmp, String(this.offset));
    renameSync(tmp, this.offsetPath);
  }

  /** Everything sent: start the log again from zero. */
  private compact(): void {
    if (this.offset !== this.size || this.size < 1024 * 1024) return;
    ftruncateSync(this.fd, 0);
    this.size = 0;
    this.offset = 0;
    if (this.o.redis !== undefined) this.saveOffset();
  }

  private openJsonl(): void {
    const j = this.o.jsonl!;
    mkdirSync(dirname(j.path), { recursive: true });
    this.jsonlFd = openSync(j.path, "a");
    this.jsonlSize = statSync(j.path).size;
  }

  private writeJsonl(b: Buffer): void {
    const j = this.o.jsonl!;
    if (this.jsonlSize + b.length > j.maxBytes && this.jsonlSize > 0) {
      closeSync(this.jsonlFd);
      for (let i = j.keep - 1; i >= 1; i--) {
        const from = `${j.path}.${i}`;
        if (existsSync(from)) renameSync(from, `${j.path}.${i + 1}`);
      }
      if (j.keep >= 1) renameSync(j.path, `${j.path}.1`);
      this.openJsonl();
      this.jsonlSize = 0;
    }
    writeSync(this.jsonlFd, b);
    this.jsonlSize += b.length;
  }

  /** Sends what it can within `deadlineMs`, then closes the files (what is left goes out on the next start). */
  async close(deadlineMs = 2000): Promise<void> {
    const end = Date.now() + deadlineMs;
    if (this.o.redis !== undefined && !this.down) {
      while (this.offset < this.size && Date.now() < end) {
        if (!this.pumping) await this.pump();
        else await new Promise((r) => setTimeout(r, 10));
        if (this.down) break;
      }
    }
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.syncTimer !== null) clearInterval(this.syncTimer);
    this.dirty = true;
    this.sync();
    closeSync(this.fd);
    if (this.jsonlFd >= 0) closeSync(this.jsonlFd);
  }
}
