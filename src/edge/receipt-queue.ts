/**
 * Receipts waiting for their submitter to be bound where they can be sent. A receipt is sent at
 * once when the submitting account has a session on this edge that can receive deliver_sm;
 * otherwise it waits here, and every edge holding such a session takes the account's waiting
 * receipts (each one once). In spool mode the queue is a Redis list per account, so a message
 * delivered by another edge's worker still reaches the edge the submitter is bound to; without
 * Redis it is a bounded in-memory queue (the submitter reconnecting to this edge gets them).
 */
import type { OutboundReceipt } from "../smpp/types.js";

/** A waiting receipt and when it was queued (epoch ms). */
export interface Waiting {
  at: number;
  r: OutboundReceipt;
}

export interface PendingReceipts {
  push(peer: string, w: Waiting): Promise<void>;
  /** Up to `n` of the oldest waiting receipts of `peer`, removed from the queue. */
  take(peer: string, n: number): Promise<Waiting[]>;
  /** Put receipts taken but not sent back at the head. */
  putBack(peer: string, list: Waiting[]): Promise<void>;
}

/** In memory, at most `max` receipts in all (the oldest are dropped first). */
export class MemoryPendingReceipts implements PendingReceipts {
  private readonly q = new Map<string, Waiting[]>();
  private total = 0;

  constructor(private readonly max = 100_000) {}

  async push(peer: string, w: Waiting): Promise<void> {
    let l = this.q.get(peer);
    if (l === undefined) this.q.set(peer, (l = []));
    l.push(w);
    if (++this.total > this.max) this.dropOldest();
  }

  async take(peer: string, n: number): Promise<Waiting[]> {
    const l = this.q.get(peer);
    if (l === undefined) return [];
    const out = l.splice(0, n);
    this.total -= out.length;
    if (l.length === 0) this.q.delete(peer);
    return out;
  }

  async putBack(peer: string, list: Waiting[]): Promise<void> {
    if (list.length === 0) return;
    const l = this.q.get(peer) ?? [];
    this.q.set(peer, [...list, ...l]);
    this.total += list.length;
    while (this.total > this.max) this.dropOldest();
  }

  get size(): number {
    return this.total;
  }

  private dropOldest(): void {
    let oldest: string | undefined;
    let at = Infinity;
    for (const [k, l] of this.q) if (l.length > 0 && l[0]!.at < at) (at = l[0]!.at), (oldest = k);
    if (oldest === undefined) return;
    const l = this.q.get(oldest)!;
    l.shift();
    this.total--;
    if (l.length === 0) this.q.delete(oldest);
  }
}

/** The few Redis commands the Redis queue uses (an ioredis client). */
export interface ReceiptRedis {
  multi(): { rpush(k: string, v: string): unknown; ltrim(k: string, a: number, b: number): unknown; pexpire(k: string, ms: number): unknown; exec(): Promise<unknown> };
  lpop(key: string, count: number): Promise<string[] | null>;
  lpush(key: string, ...values: string[]): Promise<number>;
}

/** A Redis list per account, `<prefix>smpp:receipts:<system_id>`, capped and expiring. */
export class RedisPendingReceipts implements PendingReceipts {
  constructor(
    private readonly redis: ReceiptRedis,
    private readonly prefix: string,
    private readonly maxPerPeer = 100_000,
    private readonly ttlMs = 72 * 3600_000,
  ) {}

  private key(peer: string): string {
    return `${this.prefix}smpp:receipts:${encodeURIComponent(peer)}`;
  }

  async push(peer: string, w: Waiting): Promise<void> {
    const k = this.key(peer);
    const m = this.redis.multi();
    m.rpush(k, JSON.stringify(w));
    m.ltrim(k, -this.maxPerPeer, -1);
    m.pexpire(k, this.ttlMs);
    await m.exec();
  }

  async take(peer: string, n: number): Promise<Waiting[]> {
    const raw = (await this.redis.lpop(this.key(peer), n)) ?? [];
    const out: Waiting[] = [];
    for (const s of raw) {
      const w = parseWaiting(s);
      if (w !== undefined) out.push(w);
    }
    return out;
  }

  async putBack(peer: string, list: Waiting[]): Promise<void> {
    if (list.length === 0) return;
    // LPUSH prepends one by one: push in reverse to keep the order.
    await this.redis.lpush(this.key(peer), ...list.map((w) => JSON.stringify(w)).reverse());
  }
}

function isAddr(a: unknown): boolean {
  const x = a as { addr?: unknown; ton?: unknown; npi?: unknown } | null;
  return typeof x === "object" && x !== null && typeof x.addr === "string" && typeof x.ton === "number" && typeof x.npi === "number";
}

/** A stored receipt back, or undefined when it is not one (never throws). */
export function parseWaiting(s: string): Waiting | undefined {
  try {
    const w = JSON.parse(s) as Waiting;
    const r = w?.r;
    if (typeof w.at !== "number" || typeof r !== "object" || r === null) return undefined;
    if (typeof r.text !== "string" || typeof r.message_id !== "string" || typeof r.message_state !== "number") return undefined;
    if (!isAddr(r.source) || !isAddr(r.destination)) return undefined;
    return w;
  } catch {
    return undefined;
  }
}
