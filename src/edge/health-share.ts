/**
 * Target health shared between edges through Redis (when routes.redis is configured): an edge that
 * marks a target down (probes failed, or a real call timed out) tells the others at once, so they
 * skip it too instead of each losing a call to find out; when it comes back up they hear that too.
 *
 *   SET  <prefix>health:<target>  <edge>  PX <ttl>     while down (a late joiner reads these)
 *   PUBLISH <prefix>health  "<down|up>\t<target>\t<edge>\t<ttl ms>"
 *
 * Remote verdicts expire on their own (ttl), so an edge that dies holding a "down" cannot keep a
 * target out of service. Local evidence always wins for the local edge: a remote "up" does not
 * clear a local "down".
 */
import type { Logger } from "pino";
import type { RedisClient, RedisConnector } from "../redis/client.js";
import { errMessage } from "../util/errors.js";

export interface HealthShareOptions {
  redis: RedisConnector;
  prefix: string;
  edgeId: string;
  logger: Logger;
  /** Apply a verdict from another edge. */
  onRemote(key: string, down: boolean, ttlMs: number): void;
}

export class HealthShare {
  private readonly pub: RedisClient;
  private readonly sub: RedisClient;
  private readonly channel: string;
  private closed = false;

  constructor(private readonly o: HealthShareOptions) {
    const quiet = { name: "didgate-health", redis: { maxRetriesPerRequest: 1 } };
    this.pub = o.redis.client(quiet);
    // ioredis's own re-subscription after a reconnect sends SUBSCRIBE and drops its promise: when
    // the connection ends before the answer (a Redis outage, a shutdown), that rejection is
    // unhandled, and an unhandled rejection ends a Node process. So this edge subscribes itself
    // on every "ready" and handles the answer: after each reconnect, and also once Redis comes
    // back when it was down at start (SUBSCRIBE twice to one channel is harmless).
    this.sub = o.redis.client({ ...quiet, redis: { ...quiet.redis, autoResubscribe: false } });
    this.channel = o.prefix + "health";
    for (const c of [this.pub, this.sub]) c.on("error", (err: Error) => o.logger.debug({ err: err.message }, "health share: redis error"));
    this.sub.on("ready", () => {
      if (this.closed) return;
      this.sub.subscribe(this.channel).catch((err: Error) => o.logger.debug({ err: err.message }, "health share: subscribe again failed"));
    });
  }

  async start(): Promise<void> {
    this.sub.on("message", (_ch: string, msg: string) => this.onMessage(msg));
    try {
      await Promise.all([this.pub.connect(), this.sub.connect()]);
      await this.sub.subscribe(this.channel);
      // Targets other edges hold down right now (standalone and Sentinel; a Cluster learns from
      // the channel only).
      if ("nodes" in this.pub) return;
      const redis = this.pub;
      let cursor = "0";
      let rounds = 0;
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", this.o.prefix + "health:*", "COUNT", 500);
        cursor = next;
        for (const k of keys) {
          const ttl = await redis.pttl(k);
          if (ttl > 0) this.o.onRemote(k.slice(this.o.prefix.length + 7), true, ttl);
        }
      } while (cursor !== "0" && ++rounds < 100);
    } catch (err) {
      // Health sharing is best effort: the edge routes on local health without it.
      this.o.logger.warn({ err: errMessage(err) }, "health share: Redis not reachable; target health stays local");
    }
  }

  private onMessage(msg: string): void {
    const [verdict, key, edge, ttl] = msg.split("\t");
    if (!key || edge === this.o.edgeId || (verdict !== "down" && verdict !== "up")) return;
    this.o.onRemote(key, verdict === "down", Number(ttl) > 0 ? Number(ttl) : 30_000);
  }

  /** This edge's verdict changed. */
  publish(key: string, down: boolean, ttlMs: number): void {
    if (this.closed) return;
    const k = this.o.prefix + "health:" + key;
    const msg = `${down ? "down" : "up"}\t${key}\t${this.o.edgeId}\t${Math.round(ttlMs)}`;
    const p = down ? this.pub.set(k, this.o.edgeId, "PX", Math.max(1000, Math.round(ttlMs))) : this.pub.del(k);
    Promise.all([p, this.pub.publish(this.channel, msg)]).catch((err: Error) => this.o.logger.debug({ err: err.message }, "health share: publish failed"));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pub.disconnect();
    this.sub.disconnect();
  }
}
