/**
 * The durable spool (Redis mode). An accepted message is XADDed to `<prefix>inbound` before the
 * PDU is answered; delivery workers of every edge read the stream through one consumer group
 * (`didgate-delivery`, consumer = instance id), so each entry goes to one worker.
 *
 * Life of an entry (each step is one atomic Lua script, see redis.ts):
 *   enqueue ─▶ stream ─XREADGROUP─▶ pending (this worker) ─▶ delivered: XACK + XDEL
 *                                                        ├─▶ retry: XACK + XDEL + ZADD retry (due)
 *                                                        └─▶ dead:  XACK + XDEL + XADD dlq
 *   retry ZSET ─(due; one timer per edge, atomic move)─▶ stream again
 *   pending longer than the visibility timeout (its edge died) ─XAUTOCLAIM─▶ another worker
 *
 * Guarantees: exactly one delivery per message while edges live (the group hands an entry to one
 * consumer, a retry re-enters the stream once). At least once across crashes: an edge killed after
 * the receiver's 2xx but before its XACK leaves the entry pending, and it is delivered again (same
 * webhook-id, so receivers can deduplicate).
 */
import type { Logger } from "pino";
import { type Attempter } from "./attempt.js";
import { type BackoffOptions, nextAttempt } from "./backoff.js";
import type { TimeoutClock } from "../util/clock.js";
import { type DeliveryMetrics, type SpoolStats, deadReasonLabel } from "./metrics.js";
import {
  ACK,
  DEAD,
  ENQUEUE,
  ENQUEUE_WITH,
  GROUP,
  MOVE_DUE,
  RETRY,
  type RedisConnect,
  type SpoolKeys,
  type SpoolWrites,
  ensureGroup,
  enqueueWithArgs,
  spoolKeys,
} from "./redis.js";
import type { RedisClient } from "../redis/client.js";
import { type StreamEntry, field, firstScore, isNoGroup, readReplyEntries } from "../redis/stream.js";
import { OutageLog } from "../util/outage-log.js";
import { delivered, notifyFinal } from "./direct.js";
import type { DeliveryJob, FinalOutcome } from "./types.js";
import { redactUrl } from "./webhook.js";
import { targetAtRest } from "./secret-ref.js";
import { errMessage } from "../util/errors.js";

/** A job as stored in the spool: the DeliveryJob plus the targets refused permanently. */
export interface SpoolRecord extends DeliveryJob {
  skip?: number;
  /** Why the last attempt failed, and when (epoch ms): `didgate messages pending` shows them. */
  lastError?: string;
  lastAttemptAt?: number;
}

export interface SpoolOptions {
  connect: RedisConnect;
  prefix: string;
  /** Consumer name in the group; stable across restarts of one edge is best (it re-reads its own pending entries at start). */
  instanceId: string;
  attempter: Attempter;
  metrics: DeliveryMetrics;
  logger: Logger;
  backoff: BackoffOptions;
  clock: TimeoutClock;
  /** Deliveries in progress at once in this edge. */
  maxInFlight: number;
  /** An entry pending this long (ms) belongs to a dead edge and is reclaimed. Must exceed the longest attempt. */
  visibilityMs: number;
  /** How often to look for such entries (ms). */
  reclaimIntervalMs: number;
  /**
   * A consumer with nothing pending and idle this long (ms) is an edge that left (its entries were
   * reclaimed): it is removed from the group, so the group does not collect every instance id
   * that ever ran. An edge that comes back is added again by its next read.
   */
  consumerIdleMs?: number;
  /** XREADGROUP BLOCK (ms). */
  blockMs: number;
  /** Longest wait between two looks at the retry schedule (ms); retries this edge scheduled are moved on time. */
  retryPollMs: number;
  /** Most messages in the spool (stream + retries); beyond it enqueue refuses. 0 = unbounded. */
  maxDepth: number;
  /** Dead-letter stream MAXLEN ~ (0 = never trimmed). */
  dlqMaxLen: number;
  random?: () => number;
  /** Told of each delivery and dead letter (see DeliveryOptions.onFinal). */
  onFinal?: (job: DeliveryJob, outcome: FinalOutcome) => void;
}

const MOVE_LIMIT = 500;

export class Spool {
  readonly keys: SpoolKeys;
  private readonly o: SpoolOptions;
  private readonly cmd: RedisClient;
  private readonly enq: RedisClient;
  private block: RedisClient | undefined;
  private readonly random: () => number;
  private running = false;
  private stopping = false;
  private inFlight = 0;
  private readonly active = new Set<string>();
  private slotWaiter: (() => void) | undefined;
  private idleWaiters: (() => void)[] = [];
  private readLoopDone: Promise<void> | undefined;
  private moveTimer: unknown;
  private moveAt = Infinity;
  private reclaimTimer: unknown;
  private lastConsumerSweep = 0;
  private claimCursor = "0-0";
  private rescanOwn = false;
  private readyWaiters: Set<(ok: boolean) => void> | undefined;
  /** Redis failures of the worker and of enqueue, logged as transitions (not once per retry). */
  readonly outage: OutageLog;

  constructor(opts: SpoolOptions) {
    this.o = opts;
    this.keys = spoolKeys(opts.prefix);
    this.cmd = opts.connect("command");
    this.enq = opts.connect("enqueue");
    this.random = opts.random ?? Math.random;
    this.outage = new OutageLog(
      opts.logger,
      {
        down: "spool: Redis unreachable; new messages get a temporary failure and delivery waits until it is back",
        still: "spool: Redis still unreachable",
        back: "spool: Redis reachable again; delivery resumes",
      },
      { now: opts.clock.now },
    );
    // Silence ioredis' unhandled 'error' events; failures surface on the commands.
    this.cmd.on("error", (err: Error) => opts.logger.debug({ err: err.message }, "spool redis error"));
    this.enq.on("error", (err: Error) => opts.logger.debug({ err: err.message }, "spool redis (enqueue) error"));
  }

  /** The command connection (for the dead-letter tools and tests). */
  get client(): RedisClient {
    return this.cmd;
  }

  /**
   * Whether enqueue can write now (the enqueue connection has no offline queue: while it is not
   * ready every new message gets a temporary failure). For /readyz.
   */
  writable(): { ok: true } | { ok: false; reason: string } {
    const st = this.enq.status;
    if (st === "ready") return { ok: true };
    const err = this.outage.error;
    return { ok: false, reason: `spool Redis not connected (${st}${err ? `: ${err}` : ""}); new messages get a temporary failure` };
  }

  /** Messages this edge is delivering right now. */
  get inFlightCount(): number {
    return this.inFlight;
  }

  /**
   * Store a job durably. Resolves true once Redis acknowledged the write (answer the PDU after
   * this), false when the spool is full (then `writes` are not made either); rejects when Redis
   * fails. `writes` are made in the same script, before the job is added; "refused" (nothing
   * written) when their `unless` member is in its set.
   */
  async enqueue(job: DeliveryJob, waitMs = 5_000, writes?: SpoolWrites): Promise<boolean | "refused"> {
    const rec: SpoolRecord = { id: job.id, body: job.body, target: targetAtRest(job.target), acceptedAt: job.acceptedAt, attempts: job.attempts, skip: 0 };
    if (job.receipt !== undefined) rec.receipt = job.receipt;
    if (this.enq.status !== "ready" && !(await this.enqReady(waitMs))) throw new Error("redis not connected");
    if (writes === undefined || (writes.calls.length === 0 && writes.unless === undefined)) {
      const r = await ENQUEUE.batched(this.enq, [this.keys.inbound, this.keys.retry], [this.o.maxDepth, JSON.stringify(rec)]);
      return r !== null;
    }
    const a = enqueueWithArgs(this.keys, this.o.maxDepth, JSON.stringify(rec), writes);
    const r = (await ENQUEUE_WITH.batched(this.enq, a.keys, a.args)) as [string, string | null] | 0 | null;
    if (r === null) return false;
    if (r === 0) return "refused";
    if (typeof r[1] === "string") this.o.logger.warn({ msg_id: job.id, err: r[1] }, "spool: a write made with the message failed (the message is queued)");
    return true;
  }

  /** Wait up to `ms` for the enqueue connection (it has no offline queue). One listener for all waiters. */
  private enqReady(ms: number): Promise<boolean> {
    const c = this.enq;
    if (c.status === "end") return Promise.resolve(false);
    if (this.readyWaiters === undefined) {
      const waiters = new Set<(ok: boolean) => void>();
      this.readyWaiters = waiters;
      c.once("ready", () => {
        this.readyWaiters = undefined;
        for (const w of waiters) w(true);
      });
    }
    const waiters = this.readyWaiters;
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => {
        waiters.delete(done);
        resolve(false);
      }, ms);
      const done = (ok: boolean) => {
        clearTimeout(t);
        resolve(ok);
      };
      waiters.add(done);
    });
  }

  /**
   * Start the worker: create the group (retrying while Redis is unreachable), read this consumer's
   * own pending entries, then new ones. Resolves once Redis answered, or after 5 s if it does not
   * (the worker keeps trying; accept() answers "temporary" meanwhile).
   */
  async start(): Promise<void> {
    if (this.running) return;
    let ready = false;
    try {
      await withDeadline(ensureGroup(this.cmd, this.keys.inbound), 5_000);
      ready = true;
    } catch (err) {
      this.outage.failure(errMessage(err), { op: "start" });
    }
    this.running = true;
    this.stopping = false;
    const block = this.o.connect("blocking");
    block.on("error", (err: Error) => this.o.logger.debug({ err: err.message }, "spool redis (reader) error"));
    // After a reconnect, a reply lost with the old connection may have handed us entries we never
    // saw: read our own pending entries again.
    let connectedOnce = block.status === "ready";
    block.on("ready", () => {
      if (connectedOnce) this.rescanOwn = true;
      connectedOnce = true;
    });
    this.block = block;
    this.readLoopDone = this.readLoop(block, ready);
    this.wakeMover(this.o.clock.now());
    this.reclaimTimer = this.o.clock.setTimeout(() => void this.reclaimTick(), this.o.reclaimIntervalMs);
  }

  /** Stop taking entries; wait up to `graceMs` for deliveries in progress. Unfinished entries stay pending (reclaimed later). */
  async stop(graceMs: number): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.running = false;
    this.o.clock.clearTimeout(this.moveTimer);
    this.o.clock.clearTimeout(this.reclaimTimer);
    this.moveTimer = undefined;
    this.moveAt = Infinity;
    this.block?.disconnect();
    this.slotWaiter?.();
    // ioredis leaves a command queued while it waits to reconnect unsettled after disconnect():
    // with Redis down, the read loop's XREADGROUP would never return. Do not wait for it long.
    let loopTimer: unknown;
    await Promise.race([this.readLoopDone, new Promise<void>((r) => (loopTimer = this.o.clock.setTimeout(r, 1_000)))]);
    this.o.clock.clearTimeout(loopTimer);
    if (this.inFlight > 0) {
      let timer: unknown;
      await Promise.race([
        new Promise<void>((r) => this.idleWaiters.push(r)),
        new Promise<void>((r) => {
          timer = this.o.clock.setTimeout(r, graceMs);
        }),
      ]);
      this.o.clock.clearTimeout(timer);
    }
  }

  /** Close the Redis connections (after stop). */
  async close(): Promise<void> {
    if (this.running) await this.stop(0);
    this.block?.disconnect();
    await Promise.all([quit(this.cmd), quit(this.enq)]);
  }

  /** Depth and oldest age of the shared spool. */
  async stats(): Promise<SpoolStats> {
    const k = this.keys;
    const res = await this.cmd
      .pipeline()
      .xlen(k.inbound)
      .zcard(k.retry)
      .xrange(k.inbound, "-", "+", "COUNT", "1")
      .zrange(k.retryAge, "0", "0", "WITHSCORES")
      .xlen(k.dlq)
      .exec();
    if (res === null) return { depth: 0, oldestAgeS: 0 };
    for (const [err] of res) if (err) throw err;
    const depth = Number(res[0][1]) + Number(res[1][1]);
    let oldest = Infinity;
    const first = res[2][1] as StreamEntry[];
    if (first.length > 0) {
      const acc = acceptedAtOf(field(first[0][1], "j"));
      if (acc !== undefined) oldest = acc;
    }
    const z = firstScore(res[3][1]);
    if (z !== undefined) oldest = Math.min(oldest, z);
    const now = this.o.clock.now();
    return { depth, oldestAgeS: oldest === Infinity ? 0 : Math.max(0, (now - oldest) / 1000), retry: Number(res[1][1]), deadLetters: Number(res[4][1]) };
  }

  // ------------------------------------------------------------ reading

  private async readLoop(block: RedisClient, groupReady: boolean): Promise<void> {
    while (!groupReady && !this.stopping) {
      try {
        await ensureGroup(this.cmd, this.keys.inbound);
        groupReady = true;
      } catch {
        await this.sleep(1000);
      }
    }
    let cursor = "0"; // this consumer's own pending entries (left by a previous run) first
    while (!this.stopping) {
      if (this.inFlight >= this.o.maxInFlight) {
        await new Promise<void>((r) => {
          this.slotWaiter = r;
        });
        this.slotWaiter = undefined;
        continue;
      }
      let reply: unknown;
      try {
        reply = await block.call(
          "XREADGROUP", "GROUP", GROUP, this.o.instanceId,
          "COUNT", this.o.maxInFlight - this.inFlight,
          "BLOCK", this.o.blockMs,
          "STREAMS", this.keys.inbound, cursor,
        );
      } catch (err) {
        if (this.stopping) break;
        cursor = "0";
        if (isNoGroup(err)) {
          await ensureGroup(this.cmd, this.keys.inbound).catch(() => undefined);
        } else {
          this.outage.failure(errMessage(err), { op: "read" });
        }
        await this.sleep(1000);
        continue;
      }
      this.outage.success();
      const entries = readReplyEntries(reply);
      if (this.rescanOwn) {
        this.rescanOwn = false;
        cursor = "0";
        for (let i = 0; i < entries.length; i++) this.dispatch(entries[i][0], entries[i][1]);
        continue;
      }
      if (cursor !== ">") {
        if (entries.length === 0) {
          cursor = ">";
          continue;
        }
        cursor = entries[entries.length - 1][0];
      }
      for (let i = 0; i < entries.length; i++) this.dispatch(entries[i][0], entries[i][1]);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.o.clock.setTimeout(r, ms));
  }

  private dispatch(entryId: string, fields: string[] | null): void {
    if (this.active.has(entryId)) return;
    if (fields === null) {
      // Deleted while pending: nothing to deliver.
      void this.cmd.call("XACK", this.keys.inbound, GROUP, entryId).catch(() => undefined);
      return;
    }
    // An entry without a job field is not ours: it goes to the dead-letter stream as it is.
    const json = field(fields, "j") ?? JSON.stringify(fields);
    this.active.add(entryId);
    this.inFlight++;
    this.o.metrics.inFlight.inc({ mode: "spool" });
    void this.handle(entryId, json).finally(() => {
      this.active.delete(entryId);
      this.inFlight--;
      this.o.metrics.inFlight.dec({ mode: "spool" });
      const w = this.slotWaiter;
      if (w !== undefined) w();
      if (this.inFlight === 0 && this.idleWaiters.length > 0) {
        const ws = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of ws) f();
      }
    });
  }

  private async handle(entryId: string, json: string): Promise<void> {
    let rec: SpoolRecord;
    try {
      rec = JSON.parse(json) as SpoolRecord;
      if (typeof rec.id !== "string" || typeof rec.acceptedAt !== "number" || rec.target === null || typeof rec.target !== "object") throw new Error("bad shape");
      if (typeof rec.attempts !== "number") rec.attempts = 0;
    } catch {
      await this.deadLetter(entryId, json, "corrupt spool entry", undefined);
      return;
    }
    const log = this.o.logger;
    const now0 = this.o.clock.now();
    // A message tried before and well past its max age (its edge crashed during every attempt, say)
    // goes to the DLQ untried. The normal last attempt, made at the deadline, is not caught here.
    if (rec.attempts > 0 && now0 >= rec.acceptedAt + this.o.backoff.maxAgeMs + this.o.visibilityMs) {
      await this.deadLetter(entryId, JSON.stringify(rec), "max_age", rec);
      return;
    }
    Object.defineProperty(rec, "spoolEntry", { value: { stream: this.keys.inbound, group: GROUP, id: entryId }, enumerable: false });
    const r = await this.o.attempter.round(rec, rec.skip ?? 0);
    const attempts = rec.attempts + 1;
    if (r.result.kind === "delivered") {
      // (acked: the forwarder's own script acknowledged the entry with what it wrote)
      if (r.result.acked !== true) await this.finish(() => ACK.run(this.cmd, [this.keys.inbound], [GROUP, entryId]), entryId);
      log.info({ msg_id: rec.id, target: r.kind, attempts, result: "delivered", age_ms: this.o.clock.now() - rec.acceptedAt }, "message delivered");
      notifyFinal(this.o.onFinal, rec, delivered(r.kind, r.result), log);
      return;
    }
    const next: SpoolRecord = { id: rec.id, body: rec.body, target: rec.target, acceptedAt: rec.acceptedAt, attempts, skip: r.skip, lastError: r.result.reason, lastAttemptAt: this.o.clock.now() };
    if (rec.receipt !== undefined) next.receipt = rec.receipt;
    if (r.result.kind === "dead") {
      await this.deadLetter(entryId, JSON.stringify(next), r.result.reason, next);
      return;
    }
    const now = this.o.clock.now();
    const d = nextAttempt(rec.acceptedAt, attempts, now, this.o.backoff, r.result.retryAfterMs, this.random);
    if (d.kind === "dead") {
      await this.deadLetter(entryId, JSON.stringify(next), "max_age (last: " + r.result.reason + ")", next);
      return;
    }
    const member = JSON.stringify(next);
    const ok = await this.finish(
      () => RETRY.run(this.cmd, [this.keys.inbound, this.keys.retry, this.keys.retryAge], [GROUP, entryId, d.dueAt, rec.acceptedAt, member]),
      entryId,
    );
    if (ok) {
      this.o.metrics.retries.inc({ kind: r.kind ?? "webhook" });
      log.warn(
        { msg_id: rec.id, target: r.kind, webhook: r.kind === "webhook" && rec.target.webhook ? redactUrl(rec.target.webhook) : undefined, smpp: r.kind === "smpp" ? rec.target.smpp : undefined, attempts, reason: r.result.reason, retry_in_ms: d.delayMs, retry_at: new Date(d.dueAt).toISOString() },
        "delivery failed; retry scheduled",
      );
      this.wakeMover(d.dueAt);
    }
  }

  private async deadLetter(entryId: string, json: string, reason: string, rec: SpoolRecord | undefined): Promise<void> {
    const ok = await this.finish(
      () => DEAD.run(this.cmd, [this.keys.inbound, this.keys.dlq], [GROUP, entryId, json, reason, this.o.clock.now(), this.o.instanceId, this.o.dlqMaxLen]),
      entryId,
    );
    if (ok) {
      this.o.metrics.deadLetters.inc({ reason: deadReasonLabel(reason) });
      this.o.logger.warn({ msg_id: rec?.id, attempts: rec?.attempts, result: "dead", reason }, "message dead-lettered");
      if (rec !== undefined) notifyFinal(this.o.onFinal, rec, { delivered: false, reason }, this.o.logger);
    }
  }

  /**
   * Run a state change, retrying while Redis fails (the delivery slot stays taken meanwhile, which
   * is the backpressure). When stopping it gives up: the entry stays pending and is reclaimed later.
   */
  private async finish(op: () => Promise<unknown>, entryId: string): Promise<boolean> {
    for (let i = 0; ; i++) {
      try {
        await op();
        return true;
      } catch (err) {
        if (this.stopping) {
          this.o.logger.warn({ entry: entryId, err: errMessage(err) }, "spool state change failed while stopping; entry stays pending");
          return false;
        }
        if (i === 4) this.o.logger.error({ entry: entryId, err: errMessage(err) }, "spool state change failing; still trying");
        await this.sleep(Math.min(5_000, 100 * 2 ** i));
      }
    }
  }

  // ------------------------------------------------------------ retries

  /** Make sure the mover runs no later than `at` (epoch ms). */
  private wakeMover(at: number): void {
    if (this.stopping || !this.running || at >= this.moveAt) return;
    this.o.clock.clearTimeout(this.moveTimer);
    this.moveAt = at;
    this.moveTimer = this.o.clock.setTimeout(() => void this.moveTick(), Math.max(0, at - this.o.clock.now()));
  }

  private async moveTick(): Promise<void> {
    this.moveTimer = undefined;
    this.moveAt = Infinity;
    if (this.stopping) return;
    const now = this.o.clock.now();
    let next = now + this.o.retryPollMs;
    try {
      const r = (await MOVE_DUE.run(this.cmd, [this.keys.retry, this.keys.retryAge, this.keys.inbound], [now, MOVE_LIMIT])) as [number, string | null];
      if (r[0] >= MOVE_LIMIT) next = now;
      else if (r[1] !== null && r[1] !== undefined) next = Math.min(next, Number(r[1]));
    } catch (err) {
      this.outage.failure(errMessage(err), { op: "retry schedule" });
    }
    this.wakeMover(next);
  }

  // ------------------------------------------------------------ reclaiming

  /** Removes consumers that left: nothing pending, idle past consumerIdleMs (at most once per sweep interval). */
  private async sweepConsumers(): Promise<void> {
    const idleMs = this.o.consumerIdleMs;
    if (idleMs === undefined) return;
    const now = this.o.clock.now();
    if (now - this.lastConsumerSweep < Math.min(idleMs, 60_000)) return;
    this.lastConsumerSweep = now;
    const rows = (await this.cmd.call("XINFO", "CONSUMERS", this.keys.inbound, GROUP)) as unknown[][];
    for (const row of rows) {
      const f = new Map<string, unknown>();
      for (let i = 0; i + 1 < row.length; i += 2) f.set(String(row[i]), row[i + 1]);
      const name = String(f.get("name"));
      if (name === this.o.instanceId || Number(f.get("pending")) !== 0 || !(Number(f.get("idle")) >= idleMs)) continue;
      // DELCONSUMER drops the consumer's pending entries too: checked and done in one script, so an
      // edge that read an entry in between keeps it.
      const r = await this.cmd.call("EVAL", DEL_IDLE_CONSUMER, 1, this.keys.inbound, GROUP, name);
      if (r === -1) continue;
      this.o.logger.info({ consumer: name, idle_ms: Number(f.get("idle")) }, "removed a spool consumer that left (nothing pending)");
    }
  }

  private async reclaimTick(): Promise<void> {
    this.reclaimTimer = undefined;
    if (this.stopping) return;
    let soon = false;
    const free = this.o.maxInFlight - this.inFlight;
    if (free > 0) {
      try {
        const r = (await this.cmd.call(
          "XAUTOCLAIM", this.keys.inbound, GROUP, this.o.instanceId, this.o.visibilityMs, this.claimCursor, "COUNT", free,
        )) as [string, StreamEntry[], string[]?];
        this.claimCursor = r[0];
        const entries = r[1];
        if (entries.length > 0) this.o.logger.info({ count: entries.length }, "reclaimed spool entries left pending by another worker");
        for (let i = 0; i < entries.length; i++) this.dispatch(entries[i][0], entries[i][1]);
        soon = r[0] !== "0-0";
      } catch (err) {
        if (isNoGroup(err)) await ensureGroup(this.cmd, this.keys.inbound).catch(() => undefined);
        else this.outage.failure(errMessage(err), { op: "reclaim" });
      }
    }
    if (!soon && !this.stopping) await this.sweepConsumers().catch(() => undefined);
    if (!this.stopping) this.reclaimTimer = this.o.clock.setTimeout(() => void this.reclaimTick(), soon ? 50 : this.o.reclaimIntervalMs);
  }
}

/** KEYS stream; ARGV group, consumer: remove the consumer only when nothing is pending for it (else -1). */
const DEL_IDLE_CONSUMER = `
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p == 0 then return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end
return -1
`;

async function quit(c: RedisClient): Promise<void> {
  if (c.status !== "ready") {
    c.disconnect();
    return;
  }
  try {
    await c.quit();
  } catch {
    c.disconnect();
  }
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

function acceptedAtOf(json: string | undefined): number | undefined {
  if (json === undefined) return undefined;
  try {
    const v = (JSON.parse(json) as { acceptedAt?: unknown }).acceptedAt;
    return typeof v === "number" ? v : undefined;
  } catch {
    return undefined;
  }
}
