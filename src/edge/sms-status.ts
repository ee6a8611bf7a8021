/**
 * Status histories of messages sent through the HTTP API (GET /v1/messages/{id}): what was
 * submitted and each status it went through (queued, sent, delivered, failed, …) with times.
 * With Redis a hash `<prefix>msg:<id>` and a list `<prefix>msg:<id>:h` (JSON entries), both expiring
 * after `ttlS` (default 72 h), shared by edges; without Redis a bounded in-memory map.
 */
import type { Cluster, Redis } from "ioredis";
import { LRUCache } from "lru-cache";

export interface MessageInfo {
  id: string;
  tenant: string | null;
  from: string;
  to: string;
  parts: number;
  encoding: string;
  created_at: string;
  client_ref?: string;
  /** The SMPP app account that submitted it (query_sm / cancel_sm / replace_sm answer only it). */
  account?: string;
}

export interface StatusEntry {
  status: string;
  at: string;
  [k: string]: unknown;
}

export interface MessageStatus extends MessageInfo {
  status: string;
  history: StatusEntry[];
}

export interface MessageStatusStore {
  create(info: MessageInfo, first: StatusEntry): Promise<void>;
  update(id: string, e: StatusEntry): Promise<void>;
  get(id: string): Promise<MessageStatus | null>;
  forget(id: string): Promise<void>;
  /**
   * Redis stores: what create() writes, as calls ([command, key, ...args]) for a script that makes
   * them together with other writes (the spool's enqueue).
   */
  createCalls?(info: MessageInfo, first: StatusEntry): (string | number)[][];
  /** Redis stores: the keys and TTL of a message's history (for a script that updates it with other writes). */
  redisKeys?(id: string): { hash: string; list: string; ttlS: number };
}

/** Entries a history keeps (the oldest go first). */
export const MAX_HISTORY = 20;

export class RedisMessageStatusStore implements MessageStatusStore {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly ttlS = 72 * 3600,
  ) {}

  private key(id: string): string {
    return `${this.prefix}msg:${id}`;
  }

  createCalls(info: MessageInfo, first: StatusEntry): (string | number)[][] {
    const k = this.key(info.id);
    return [
      ["HSET", k, "info", JSON.stringify(info), "status", first.status],
      ["EXPIRE", k, this.ttlS],
      ["RPUSH", k + ":h", JSON.stringify(first)],
      ["EXPIRE", k + ":h", this.ttlS],
    ];
  }

  redisKeys(id: string): { hash: string; list: string; ttlS: number } {
    const k = this.key(id);
    return { hash: k, list: k + ":h", ttlS: this.ttlS };
  }

  async create(info: MessageInfo, first: StatusEntry): Promise<void> {
    const k = this.key(info.id);
    const r = await this.redis
      .multi()
      .hset(k, { info: JSON.stringify(info), status: first.status })
      .expire(k, this.ttlS)
      .rpush(k + ":h", JSON.stringify(first))
      .expire(k + ":h", this.ttlS)
      .exec();
    const err = r?.find(([e]) => e !== null)?.[0];
    if (err) throw err;
  }

  async update(id: string, e: StatusEntry): Promise<void> {
    const k = this.key(id);
    // only for a message that exists (a late update after it expired creates nothing)
    if ((await this.redis.exists(k)) === 0) return;
    await this.redis
      .multi()
      .hset(k, "status", e.status)
      .rpush(k + ":h", JSON.stringify(e))
      .ltrim(k + ":h", -MAX_HISTORY, -1)
      .expire(k + ":h", this.ttlS)
      .exec();
  }

  async get(id: string): Promise<MessageStatus | null> {
    const k = this.key(id);
    const [h, l] = await Promise.all([this.redis.hgetall(k), this.redis.lrange(k + ":h", 0, -1)]);
    if (h.info === undefined) return null;
    const info = JSON.parse(h.info) as MessageInfo;
    return { ...info, status: h.status ?? "queued", history: l.map((x) => JSON.parse(x) as StatusEntry) };
  }

  async forget(id: string): Promise<void> {
    const k = this.key(id);
    await this.redis.del(k, k + ":h");
  }
}

export class MemoryMessageStatusStore implements MessageStatusStore {
  private readonly m: LRUCache<string, MessageStatus>;
  constructor(max = 100_000, ttlMs = 72 * 3600_000) {
    this.m = new LRUCache({ max, ttl: ttlMs });
  }
  async create(info: MessageInfo, first: StatusEntry): Promise<void> {
    this.m.set(info.id, { ...info, status: first.status, history: [first] });
  }
  async update(id: string, e: StatusEntry): Promise<void> {
    const s = this.m.get(id);
    if (s === undefined) return;
    s.status = e.status;
    s.history.push(e);
    if (s.history.length > MAX_HISTORY) s.history.shift();
  }
  async get(id: string): Promise<MessageStatus | null> {
    const s = this.m.get(id);
    return s === undefined ? null : { ...s, history: [...s.history] };
  }
  async forget(id: string): Promise<void> {
    this.m.delete(id);
  }
}
