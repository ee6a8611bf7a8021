/**
 * Answer deadlines of the API's requests, checked by one timer. Every request that has not been
 * answered `ms` after it arrived gets a 503 ("timeout"); a route with its own (longer)
 * `handlerTimeout` is left to fastify's.
 *
 * fastify's own `handlerTimeout` does the same with an AbortController, a timer and a listener per
 * request, and aborts the controller when each request closes, answered or not: that abort builds
 * a DOMException (a stack trace) per request, about 3 % of the CPU of the HTTP send path at load.
 * Here a request costs one Map entry: the requests all have the same time limit, so the Map's
 * insertion order is their deadline order and a sweep stops at the first one not yet due. A
 * request is answered at the latest `ms` + one sweep interval after it arrived.
 */
import type { FastifyReply } from "fastify";

export class Deadlines {
  private readonly live = new Map<FastifyReply, number>();
  private timer: NodeJS.Timeout | null = null;
  private readonly every: number;

  constructor(
    private readonly ms: number,
    private readonly expire: (reply: FastifyReply) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.every = Math.max(10, Math.min(250, Math.floor(ms / 4)));
  }

  get size(): number {
    return this.live.size;
  }

  add(reply: FastifyReply): void {
    this.live.set(reply, this.now() + this.ms);
    if (this.timer === null) {
      this.timer = setInterval(() => this.sweep(), this.every);
      this.timer.unref();
    }
  }

  delete(reply: FastifyReply): void {
    this.live.delete(reply);
  }

  /** Answer 503 to every request that is due and not answered yet (the timer calls it). */
  sweep(): void {
    const t = this.now();
    for (const [reply, due] of this.live) {
      if (due > t) break;
      this.live.delete(reply);
      if (reply.sent !== true && reply.raw.headersSent !== true) this.expire(reply);
    }
    if (this.live.size === 0) this.stop();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
