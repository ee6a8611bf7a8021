/**
 * Durable reassembly buffers (spool mode): parts of a concatenated message that the edge has
 * acknowledged are kept in Redis, so a restart mid-message loses no part, and any edge can complete
 * a message whose first parts arrived at another.
 *
 * Keys under the prefix:
 *   <prefix>parts:<key>   HASH  "#t" → total, "<seq>" → part (an opaque string chosen by the edge)
 *   <prefix>parts:due     ZSET  <key> scored by the time its buffer times out (ms)
 *
 * Protocol for the edge:
 *   r = await store.add(key, total, seq, part)   // before answering the part's PDU ESME_ROK
 *     "stored" / "duplicate" → answer ESME_ROK; "full" → temporary failure
 *     "late" (its buffer timed out and was swept) → deliver this part alone as partial, like a sweep
 *     "complete" (parts in order) → build the message, delivery.accept(job), then store.done(key)
 *   every few seconds: for (const b of await store.sweep()) { deliver b.parts as partial; store.done(b.key) }
 * A crash between "complete" and done() leaves the buffer in the due set: the sweep hands it out
 * again (then with every part present). sweep() leases what it returns for `leaseMs`, so two edges
 * do not sweep the same buffer; an edge that dies holding a lease lets it expire and another sweeps.
 * Delivery of a swept or completed buffer is therefore at least once.
 */
import type { RedisClient } from "../redis/client.js";
import { Script } from "../redis/script.js";
import { systemClock, type TimeoutClock } from "../util/clock.js";

export type PartAddResult =
  | { kind: "stored" }
  | { kind: "duplicate" }
  | { kind: "full" }
  /** The buffer of this key already timed out and was swept: deliver this part on its own (partial). */
  | { kind: "late" }
  /** Every part, index seq-1. */
  | { kind: "complete"; parts: string[] };

export interface SweptBuffer {
  key: string;
  total: number;
  /** Index seq-1; undefined where the part never came. */
  parts: (string | undefined)[];
}

/** What the SMPP service needs of a durable part store (RedisPartStore, JournalPartStore). */
export interface PartStore {
  add(key: string, total: number, seq: number, part: string): Promise<PartAddResult>;
  completed(key: string): Promise<string[] | undefined>;
  done(key: string): Promise<void>;
  sweep(limit?: number): Promise<SweptBuffer[]>;
  size(): Promise<number>;
}

export interface PartStoreOptions {
  client: RedisClient;
  prefix: string;
  /** How long a buffer waits for its missing parts (ms), like smpp.reassembly_timeout_s. */
  timeoutMs: number;
  /** Most buffers held at once across all edges; beyond it add() answers "full". 0 = unbounded. */
  maxBuffers?: number;
  /** How long a swept buffer is reserved for the sweeping edge (ms). Default 60 s. */
  leaseMs?: number;
  clock?: TimeoutClock;
}

/** KEYS hash, due. ARGV seq, part, total, deadline, key, maxBuffers, guard ttl ms. */
const ADD = new Script(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {0} end
if redis.call('HEXISTS', KEYS[1], '#s') == 1 then return {4} end
local fresh = redis.call('EXISTS', KEYS[1]) == 0
if fresh then
  local max = tonumber(ARGV[6])
  if max > 0 and redis.call('ZCARD', KEYS[2]) >= max then return {3} end
  redis.call('HSET', KEYS[1], '#t', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
local total = tonumber(redis.call('HGET', KEYS[1], '#t'))
if redis.call('HLEN', KEYS[1]) - 1 >= total then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
  return {2, redis.call('HGETALL', KEYS[1])}
end
return {1}
`);

/** KEYS due. ARGV now, limit, lease until, hash prefix. Returns { key, HGETALL… } pairs. */
const SWEEP = new Script(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i = 1, #due do
  local h = redis.call('HGETALL', ARGV[4] .. due[i])
  if #h == 0 then
    redis.call('ZREM', KEYS[1], due[i])
  else
    redis.call('ZADD', KEYS[1], ARGV[3], due[i])
    redis.call('HSET', ARGV[4] .. due[i], '#s', '1')
    out[#out + 1] = due[i]
    out[#out + 1] = h
  end
end
return out
`);

/** KEYS hash. A complete buffer not swept (nor done): HGETALL, else nil. */
const COMPLETE = new Script(`
if redis.call('HEXISTS', KEYS[1], '#s') == 1 then return false end
local total = tonumber(redis.call('HGET', KEYS[1], '#t'))
if total == nil or redis.call('HLEN', KEYS[1]) - 1 < total then return false end
return redis.call('HGETALL', KEYS[1])
`);

/** KEYS hash, due. ARGV key. */
const DONE = new Script(`
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`);

function toParts(flat: string[]): { total: number; parts: (string | undefined)[] } {
  let total = 0;
  for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] === "#t") total = Number(flat[i + 1]);
  const parts = new Array<string | undefined>(total);
  for (let i = 0; i + 1 < flat.length; i += 2) {
    if (flat[i].charCodeAt(0) === 35 /* # */) continue;
    const seq = Number(flat[i]);
    if (seq >= 1 && seq <= total) parts[seq - 1] = flat[i + 1];
  }
  return { total, parts };
}

export class RedisPartStore implements PartStore {
  private readonly o: PartStoreOptions;
  private readonly clock: TimeoutClock;
  private readonly hashPrefix: string;
  private readonly due: string;

  constructor(opts: PartStoreOptions) {
    this.o = opts;
    this.clock = opts.clock ?? systemClock;
    this.hashPrefix = `${opts.prefix}parts:`;
    this.due = `${opts.prefix}parts:due`;
  }

  /** Store part `seq` (1-based) of `total` under the reassembly `key`; resolves after Redis acknowledged it. */
  async add(key: string, total: number, seq: number, part: string): Promise<PartAddResult> {
    if (!Number.isInteger(total) || total < 1 || !Number.isInteger(seq) || seq < 1 || seq > total) throw new RangeError(`bad part ${seq}/${total}`);
    const deadline = this.clock.now() + this.o.timeoutMs;
    // The hash outlives its timeout by a day as a leak guard; the sweep normally removes it first.
    const guard = this.o.timeoutMs + 86_400_000;
    const r = (await ADD.run(this.o.client, [this.hashPrefix + key, this.due], [seq, part, total, deadline, key, this.o.maxBuffers ?? 0, guard])) as [number, string[]?];
    switch (Number(r[0])) {
      case 0:
        return { kind: "duplicate" };
      case 1:
        return { kind: "stored" };
      case 3:
        return { kind: "full" };
      case 4:
        return { kind: "late" };
      default: {
        const { parts } = toParts(r[1] ?? []);
        return { kind: "complete", parts: parts as string[] };
      }
    }
  }

  /**
   * The parts of `key` (in order) when its buffer holds every part and was neither swept nor done:
   * a completed message whose delivery was declined (temporary failure) or is still in progress.
   */
  async completed(key: string): Promise<string[] | undefined> {
    const r = (await COMPLETE.run(this.o.client, [this.hashPrefix + key], [])) as string[] | null;
    if (r === null || r.length === 0) return undefined;
    return toParts(r).parts as string[];
  }

  /** Forget a buffer once its message was accepted for delivery. */
  async done(key: string): Promise<void> {
    await DONE.run(this.o.client, [this.hashPrefix + key, this.due], [key]);
  }

  /** Buffers past their timeout (or left by a crash), leased to the caller for `leaseMs`. */
  async sweep(limit = 100): Promise<SweptBuffer[]> {
    const now = this.clock.now();
    const r = (await SWEEP.run(this.o.client, [this.due], [now, limit, now + (this.o.leaseMs ?? 60_000), this.hashPrefix])) as (string | string[])[];
    const out: SweptBuffer[] = [];
    for (let i = 0; i + 1 < r.length; i += 2) {
      const { total, parts } = toParts(r[i + 1] as string[]);
      out.push({ key: r[i] as string, total, parts });
    }
    return out;
  }

  /** Buffers held (all edges). */
  async size(): Promise<number> {
    return Number(await this.o.client.zcard(this.due));
  }
}
