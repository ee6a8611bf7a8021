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
 *
 * Webhook: with `webhook` set, a second cursor over the same log (`records.webhook.offset`) posts
 * each call record as a signed `call.completed` (and, when asked, each message record as
 * `message.completed`) in log order, at least once, with the record id as `webhook-id`. A receiver
 * that is down or answers 5xx/429 is retried with backoff from the same record (the log keeps it);
 * a permanent refusal (4xx, a refused address) or a record older than `maxAgeMs` is skipped and
 * counted. The log is truncated only once both the stream and the webhook are past its end.
 *
 * Tenant usage: every record counts into `didgate_tenant_calls_total`,
 * `didgate_tenant_call_seconds_total`, `didgate_tenant_messages_total` and
 * `didgate_tenant_message_parts_total` by tenant and direction, for per-tenant panels. Tenants come
 * from route entries (operator data, not the network); past `maxTenants` distinct values the rest
 * count as "other", so the series stay bounded.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, statSync, writeFileSync, writeSync, readFileSync, ftruncateSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { redactUrl, type WebhookSender } from "../delivery/webhook.js";
import { errMessage } from "../util/errors.js";

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
  /** Called with every record; must not throw or block. */
  onRecord?: (type: RecordType, rec: Record<string, unknown>) => void;
  /** Signed call.completed (and message.completed) webhook fed from the log. */
  webhook?: RecordWebhook;
  /** Distinct tenant label values before the rest count as "other" (default 1000). */
  maxTenants?: number;
  logger: Logger;
  registry?: Registry;
  fsyncMs?: number;
  batch?: number;
}

const CHUNK = 256 * 1024;

export interface RecordWebhook {
  sender: WebhookSender;
  url: string;
  secret?: string;
  /** Record types posted (default: call only). */
  types: readonly RecordType[];
  /** Records older than this when their turn comes are skipped (ms). */
  maxAgeMs: number;
  /** Requests in flight at once (default 16). */
  concurrency?: number;
  /** Wall clock (ms). */
  now: () => number;
}

const DIRECTIONS = new Set(["inbound", "outbound", "forwarded", "masked", "onnet"]);

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
  private readonly hookOffsetPath: string;
  private hookOffset: number;
  private hookBusy = false;
  private hookBackoffMs = 0;
  private hookTimer: NodeJS.Timeout | null = null;
  private hookDown = false;
  private readonly hookSent: Counter<"outcome"> | undefined;
  private readonly tenantCalls: Counter<"tenant" | "direction"> | undefined;
  private readonly tenantSeconds: Counter<"tenant" | "direction"> | undefined;
  private readonly tenantMessages: Counter<"tenant" | "direction"> | undefined;
  private readonly tenantParts: Counter<"tenant" | "direction"> | undefined;
  private readonly tenants = new Set<string>();

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
    this.hookOffsetPath = join(o.stateDir, "records.webhook.offset");
    this.hookOffset = this.size;
    if (o.webhook !== undefined && existsSync(this.hookOffsetPath)) {
      const n = Number(readFileSync(this.hookOffsetPath, "utf8").trim());
      if (Number.isInteger(n) && n >= 0 && n <= this.size) this.hookOffset = n;
    }
    if (o.jsonl) this.openJsonl();
    if (o.registry) {
      this.written = new Counter({ name: "didgate_records_total", help: "Call and message records written", labelNames: ["type"], registers: [o.registry] });
      this.sent = new Counter({ name: "didgate_records_sent_total", help: "Records sent to the Redis stream", registers: [o.registry] });
      this.pendingBytes = new Gauge({ name: "didgate_records_pending_bytes", help: "Bytes of records on disk not yet in Redis", registers: [o.registry], collect: () => this.pendingBytes?.set(this.size - this.offset) });
      const registers = [o.registry];
      if (o.webhook !== undefined) this.hookSent = new Counter({ name: "didgate_records_webhook_total", help: "Record webhooks (call.completed, message.completed) by outcome", labelNames: ["outcome"], registers });
      const td = ["tenant", "direction"] as const;
      this.tenantCalls = new Counter({ name: "didgate_tenant_calls_total", help: "Call records by tenant and direction", labelNames: td, registers });
      this.tenantSeconds = new Counter({ name: "didgate_tenant_call_seconds_total", help: "Billable call seconds (answer to hangup) by tenant and direction", labelNames: td, registers });
      this.tenantMessages = new Counter({ name: "didgate_tenant_messages_total", help: "Message records by tenant and direction", labelNames: td, registers });
      this.tenantParts = new Counter({ name: "didgate_tenant_message_parts_total", help: "Message parts (segments) by tenant and direction", labelNames: td, registers });
    }
    const fsyncMs = o.fsyncMs ?? 1000;
    this.syncTimer = setInterval(() => this.sync(), fsyncMs);
    this.syncTimer.unref();
    if (this.offset < this.size) this.schedule(0);
    if (this.hookOffset < this.size) this.scheduleHook(0);
  }

  /** Bytes on disk not yet sent to the stream. */
  get pending(): number {
    return this.size - this.offset;
  }

  /** Bytes on disk not yet posted to the webhook. */
  get webhookPending(): number {
    return this.size - this.hookOffset;
  }

  private tenantLabel(t: unknown): string {
    if (typeof t !== "string" || t === "") return "none";
    if (this.tenants.has(t)) return t;
    if (this.tenants.size >= (this.o.maxTenants ?? 1000)) return "other";
    this.tenants.add(t);
    return t;
  }

  private countUsage(type: RecordType, rec: Record<string, unknown>): void {
    if (this.tenantCalls === undefined) return;
    const labels = { tenant: this.tenantLabel(rec.tenant), direction: DIRECTIONS.has(rec.direction as string) ? (rec.direction as string) : "other" };
    if (type === "call") {
      this.tenantCalls.inc(labels);
      const ms = typeof rec.billable_ms === "number" ? rec.billable_ms : 0;
      if (ms > 0) this.tenantSeconds!.inc(labels, ms / 1000);
    } else {
      this.tenantMessages!.inc(labels);
      const parts = typeof rec.parts === "number" && rec.parts > 0 ? rec.parts : 1;
      this.tenantParts!.inc(labels, parts);
    }
  }

  write(type: RecordType, rec: Record<string, unknown>): void {
    if (this.closed) return;
    const line = JSON.stringify({ type, ...rec }) + "\n";
    const b = Buffer.from(line, "utf8");
    writeSync(this.fd, b, 0, b.length, this.size);
    this.size += b.length;
    this.dirty = true;
    this.written?.inc({ type });
    this.countUsage(type, rec);
    if (this.o.jsonl) this.writeJsonl(b);
    try {
      this.o.onRecord?.(type, rec);
    } catch (err) {
      this.o.logger.warn({ err: errMessage(err) }, "record hook failed");
    }
    if (this.o.webhook === undefined) this.hookOffset = this.size;
    else if (!this.hookBusy && this.hookTimer === null) this.scheduleHook(0);
    if (this.o.redis === undefined) {
      this.offset = this.size;
      this.compact();
    } else if (!this.pumping && this.timer === null) this.schedule(0);
  }

  private scheduleHook(ms: number): void {
    if (this.closed || this.hookTimer !== null || this.o.webhook === undefined) return;
    this.hookTimer = setTimeout(() => {
      this.hookTimer = null;
      void this.pumpHook();
    }, ms);
    this.hookTimer.unref();
  }

  /** Posts records from the webhook cursor in order, a batch at a time, until caught up or refused. */
  private async pumpHook(): Promise<void> {
    const h = this.o.webhook;
    if (h === undefined || this.hookBusy || this.closed) return;
    this.hookBusy = true;
    let stalled = false;
    try {
      const conc = h.concurrency ?? 16;
      while (!this.closed && this.hookOffset < this.size && !stalled) {
        const { lines, bytes } = this.readLines(this.hookOffset);
        if (bytes === 0) break;
        for (let i = 0; i < lines.length && !stalled; i += conc) {
          const batch = lines.slice(i, i + conc);
          const results = await Promise.all(batch.map((l) => this.postOne(h, l)));
          for (let k = 0; k < batch.length; k++) {
            if (!results[k]) {
              stalled = true;
              break;
            }
            this.hookOffset += Buffer.byteLength(batch[k]!, "utf8") + 1;
          }
          this.saveHookOffset();
          if (this.closed) break;
        }
      }
    } finally {
      this.hookBusy = false;
    }
    if (stalled) {
      this.hookBackoffMs = Math.min(30_000, Math.max(500, this.hookBackoffMs * 2));
      if (!this.hookDown) {
        this.hookDown = true;
        this.o.logger.warn({ url: redactUrl(h.url), pending_bytes: this.webhookPending }, "records: webhook receiver not taking records, retrying");
      }
    } else {
      this.hookBackoffMs = 0;
      if (this.hookDown) {
        this.hookDown = false;
        this.o.logger.info({ url: redactUrl(h.url) }, "records: webhook receiver takes records again");
      }
      this.compact();
    }
    if (this.hookOffset < this.size) this.scheduleHook(this.hookBackoffMs);
  }

  /** One record to the webhook: true when done with it (delivered, or skipped for good). */
  private async postOne(h: RecordWebhook, line: string): Promise<boolean> {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return true;
    }
    const type: RecordType = rec.type === "message" ? "message" : "call";
    if (!h.types.includes(type)) return true;
    const at = Date.parse(String(rec.end_at ?? rec.final_at ?? rec.at ?? ""));
    if (Number.isFinite(at) && h.now() - at > h.maxAgeMs) {
      this.hookSent?.inc({ outcome: "expired" });
      return true;
    }
    const id = typeof rec.id === "string" ? rec.id : "";
    const { type: _t, ...data } = rec;
    const body = JSON.stringify({ type: type === "call" ? "call.completed" : "message.completed", timestamp: new Date(h.now()).toISOString(), data });
    const a = await h.sender.send(h.url, id, body, h.secret);
    if (a.result.kind === "delivered") {
      this.hookSent?.inc({ outcome: "delivered" });
      return true;
    }
    // In-order delivery: a record the receiver rejects as such (4xx other than 408/429) would
    // otherwise hold every later record back until max_age; it is skipped like a 410.
    const rejected = a.status >= 400 && a.status < 500 && a.status !== 408 && a.status !== 429;
    if (a.result.kind === "dead" || rejected) {
      this.hookSent?.inc({ outcome: "refused" });
      this.o.logger.warn({ url: redactUrl(h.url), status: a.status, record: id }, "records: webhook refused a record for good; skipped");
      return true;
    }
    this.hookSent?.inc({ outcome: "retry" });
    return false;
  }

  private saveHookOffset(): void {
    const tmp = this.hookOffsetPath + ".tmp";
    writeFileSync(tmp, String(this.hookOffset));
    renameSync(tmp, this.hookOffsetPath);
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
        this.o.logger.warn({ err: errMessage(err), pending_bytes: this.pending }, "records: Redis unreachable, keeping records on disk");
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

  /** Everything sent (stream and webhook): start the log again from zero. */
  private compact(): void {
    if (this.offset !== this.size || this.hookOffset !== this.size || this.size < 1024 * 1024) return;
    ftruncateSync(this.fd, 0);
    this.size = 0;
    this.offset = 0;
    this.hookOffset = 0;
    if (this.o.redis !== undefined) this.saveOffset();
    if (this.o.webhook !== undefined) this.saveHookOffset();
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
    if (this.o.webhook !== undefined) {
      while (this.hookOffset < this.size && !this.hookDown && Date.now() < end) {
        if (!this.hookBusy) await this.pumpHook();
        else await new Promise((r) => setTimeout(r, 10));
      }
    }
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.hookTimer !== null) clearTimeout(this.hookTimer);
    if (this.syncTimer !== null) clearInterval(this.syncTimer);
    this.dirty = true;
    this.sync();
    closeSync(this.fd);
    if (this.jsonlFd >= 0) closeSync(this.jsonlFd);
  }
}

