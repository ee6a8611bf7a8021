/**
 * max_calls counted across edges through Redis (when routes.redis is configured): every edge keeps
 * its own calls (src/edge/calls.ts) and mirrors them into one sorted set per customer or carrier,
 *
 *   ZADD <prefix>calls:<key> <deadline ms> <edge>|<call id>     (the key expires after max_call_s)
 *
 * and reads back, every `intervalMs`, how many calls the other edges hold: the set's size after
 * removing members past their deadline, minus its own. A call admitted here checks its own calls
 * plus the others' last known count against max_calls. Nothing can leak: a member ends with its
 * call (ZREM) or at its deadline, an edge that dies stops refreshing nothing (its members expire),
 * and a Redis outage leaves every edge counting its own calls. The view of the other edges is at
 * most `intervalMs` old, so edges admitting at the same moment can overshoot a limit by the calls
 * set up within that interval.
 */
import type { Logger } from "pino";
import type { RedisClient, RedisConnector } from "../redis/client.js";
import type { CallCounter, CallShareHook } from "./calls.js";
import { errMessage } from "../util/errors.js";

export interface CallShareOptions {
  /** routes.redis's endpoint. */
  redis: RedisConnector;
  prefix: string;
  edgeId: string;
  logger: Logger;
  counter: CallCounter;
  /** Keys with a limit: the ones whose count across edges matters. */
  keys: () => readonly string[];
  /** Lifetime of a set without changes (max_call_s plus a margin). */
  ttlMs: () => number;
  intervalMs?: number;
  now?: () => number;
}

export class CallShare implements CallShareHook {
  private readonly redis: RedisClient;
  private readonly others = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing = false;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly o: CallShareOptions) {
    this.now = o.now ?? Date.now;
    this.redis = o.redis.client({ name: "didgate-calls", redis: { maxRetriesPerRequest: 1 } });
    this.redis.on("error", (err: Error) => o.logger.debug({ err: err.message }, "call share: redis error"));
  }

  private setKey(key: string): string {
    return this.o.prefix + "calls:" + key;
  }

  private member(callId: string): string {
    return this.o.edgeId + "|" + callId;
  }

  async start(): Promise<void> {
    try {
      await this.redis.connect();
      await this.refresh();
    } catch (err) {
      this.o.logger.warn({ err: errMessage(err) }, "call share: Redis not reachable; max_calls counted per edge");
    }
    this.timer = setInterval(() => void this.refresh(), this.o.intervalMs ?? 500);
    this.timer.unref();
  }

  /** Others' calls under key at the last refresh. */
  othersCount(key: string): number {
    return this.others.get(key) ?? 0;
  }

  added(key: string, callId: string, until: number): void {
    if (this.closed) return;
    const k = this.setKey(key);
    this.redis
      .multi()
      .zadd(k, String(until), this.member(callId))
      .pexpire(k, this.o.ttlMs())
      .exec()
      .catch((err: Error) => this.o.logger.debug({ err: err.message }, "call share: ZADD failed"));
  }

  removed(key: string, callId: string): void {
    if (this.closed) return;
    this.redis.zrem(this.setKey(key), this.member(callId)).catch((err: Error) => this.o.logger.debug({ err: err.message }, "call share: ZREM failed"));
  }

  /** Reads every limited key's size across edges (one pipeline). */
  async refresh(): Promise<void> {
    if (this.refreshing || this.closed || this.redis.status !== "ready") return;
    this.refreshing = true;
    try {
      const keys = this.o.keys();
      if (keys.length === 0) return;
      const p = this.redis.pipeline();
      const now = String(this.now());
      for (const k of keys) p.zremrangebyscore(this.setKey(k), "-inf", now).zcard(this.setKey(k));
      const res = await p.exec();
      if (res === null) return;
      keys.forEach((k, i) => {
        const [err, card] = res[i * 2 + 1]!;
        if (err) return;
        this.others.set(k, Math.max(0, Number(card) - this.o.counter.count(k)));
      });
    } catch (err) {
      this.o.logger.debug({ err: errMessage(err) }, "call share: refresh failed");
    } finally {
      this.refreshing = false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.redis.disconnect();
  }
}
