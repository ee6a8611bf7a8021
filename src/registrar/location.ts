/**
 * The location service: the contacts (bindings) registered for each address of record.
 *
 * A binding is keyed by its RFC 5626 instance and reg-id when the phone sends them (so a phone that
 * re-registers, even from a new address or port, replaces its own binding and not another
 * device's), else by its Contact URI (RFC 3261 10.3). Each binding records where the REGISTER
 * came from (transport, address, port: the NAT binding, RFC 3581 received/rport) and which edge
 * holds that flow, so a call is sent to the address the phone can be reached at, through the edge
 * that holds its connection.
 *
 * Stores: Redis (a HASH per AOR of binding JSON plus a ZSET of expiry times, the whole key
 * expiring with its last binding: every edge sees a registration at once) and memory (one edge).
 */
import type { Cluster, Redis } from "ioredis";

export interface Binding {
  /** The Contact URI as registered. */
  contact: string;
  /** Epoch ms. */
  expiresAt: number;
  /** q value 0..1 (RFC 3261 10.2.1.2), 1 when absent. */
  q: number;
  instance?: string;
  regId?: number;
  callId: string;
  cseq: number;
  /** Where the REGISTER came from (send calls here: the NAT's public side). */
  transport: "udp" | "tcp" | "tls";
  address: string;
  port: number;
  /** The edge that received it (holds the TCP/TLS connection or NAT pinhole). */
  edge: string;
  /**
   * Where other edges reach `edge` ("sip:HOST:PORT;transport=T"): a call arriving at another edge
   * goes there, with a signed flow token, and that edge sends it over the phone's flow (RFC 3327
   * Path in effect, docs/registrar.md "Several edges").
   */
  edgeUri?: string;
  /** Path header values the REGISTER carried (RFC 3327), outermost first. */
  path?: string[];
  /** Epoch ms of registration (for `users show`). */
  registeredAt: number;
}

/** The key a binding replaces others by. */
export function bindingKey(b: Pick<Binding, "contact" | "instance" | "regId">): string {
  if (b.instance !== undefined) return "i:" + b.instance + ":" + (b.regId ?? 0);
  return "c:" + b.contact;
}

export interface LocationStore {
  /** Live bindings of an AOR (expired ones left out). */
  lookup(aor: string): Promise<Binding[]>;
  /**
   * Applies one REGISTER's changes atomically: `upsert` adds or replaces bindings by key, `remove`
   * deletes keys, `removeAll` clears the AOR first. Returns the AOR's live bindings after.
   */
  update(aor: string, change: { upsert?: Binding[]; remove?: string[]; removeAll?: boolean }): Promise<Binding[]>;
  /** Number of AORs with bindings (metrics); may be approximate. */
  count(): Promise<number>;
}

export class MemoryLocationStore implements LocationStore {
  private readonly aors = new Map<string, Map<string, Binding>>();
  constructor(
    private readonly now: () => number = Date.now,
    /** Bound on AORs held. */
    private readonly maxAors = 1_000_000,
  ) {}

  private live(aor: string): Map<string, Binding> | undefined {
    const m = this.aors.get(aor);
    if (m === undefined) return undefined;
    const now = this.now();
    for (const [k, b] of m) if (b.expiresAt <= now) m.delete(k);
    if (m.size === 0) {
      this.aors.delete(aor);
      return undefined;
    }
    return m;
  }

  async lookup(aor: string): Promise<Binding[]> {
    return [...(this.live(aor)?.values() ?? [])];
  }

  async update(aor: string, change: { upsert?: Binding[]; remove?: string[]; removeAll?: boolean }): Promise<Binding[]> {
    let m = this.live(aor);
    if (change.removeAll) m?.clear();
    for (const k of change.remove ?? []) m?.delete(k);
    if (change.upsert !== undefined && change.upsert.length > 0) {
      if (m === undefined) {
        if (this.aors.size >= this.maxAors) this.sweep();
        if (this.aors.size >= this.maxAors) throw new Error("location store full");
        m = new Map();
        this.aors.set(aor, m);
      }
      for (const b of change.upsert) m.set(bindingKey(b), b);
    }
    return this.lookup(aor);
  }

  private sweep(): void {
    for (const aor of [...this.aors.keys()]) this.live(aor);
  }

  async count(): Promise<number> {
    this.sweep();
    return this.aors.size;
  }
}

const UPDATE = `
local h, z = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local removeAll = ARGV[2] == '1'
local aor = ARGV[3]
local nrem = tonumber(ARGV[4])
if removeAll then redis.call('DEL', h, z) end
for i = 1, nrem do
  redis.call('HDEL', h, ARGV[4 + i])
  redis.call('ZREM', z, ARGV[4 + i])
end
local j = 5 + nrem
while j <= #ARGV do
  redis.call('HSET', h, ARGV[j], ARGV[j + 2])
  redis.call('ZADD', z, tonumber(ARGV[j + 1]), ARGV[j])
  j = j + 3
end
local dead = redis.call('ZRANGEBYSCORE', z, '-inf', now)
for _, k in ipairs(dead) do redis.call('HDEL', h, k) end
redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
local last = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
if #last == 0 then
  redis.call('DEL', h, z)
  redis.call('SREM', KEYS[3], aor)
  return {}
end
redis.call('PEXPIREAT', h, tonumber(last[2]))
redis.call('PEXPIREAT', z, tonumber(last[2]))
redis.call('SADD', KEYS[3], aor)
return redis.call('HVALS', h)
`;

export class RedisLocationStore implements LocationStore {
  constructor(
    private readonly redis: Redis | Cluster,
    /** Key prefix; with Redis Cluster it needs a hash tag ("{didgate}:"): one script touches an AOR's two keys. */
    private readonly prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    redis.defineCommand("didgateLocUpdate", { numberOfKeys: 3, lua: UPDATE });
  }

  private keys(aor: string): [string, string, string] {
    return [`${this.prefix}loc:${aor}`, `${this.prefix}loc:${aor}:exp`, `${this.prefix}loc:aors`];
  }

  async lookup(aor: string): Promise<Binding[]> {
    const now = this.now();
    const vals = await this.redis.hvals(this.keys(aor)[0]);
    const out: Binding[] = [];
    for (const v of vals) {
      try {
        const b = JSON.parse(v) as Binding;
        if (b.expiresAt > now) out.push(b);
      } catch {
        // an entry not written by us: ignore
      }
    }
    return out;
  }

  async update(aor: string, change: { upsert?: Binding[]; remove?: string[]; removeAll?: boolean }): Promise<Binding[]> {
    const rem = change.remove ?? [];
    const args: (string | number)[] = [this.now(), change.removeAll ? "1" : "0", aor, rem.length, ...rem];
    for (const b of change.upsert ?? []) args.push(bindingKey(b), b.expiresAt, JSON.stringify(b));
    const vals = (await (this.redis as unknown as { didgateLocUpdate: (...a: (string | number)[]) => Promise<string[]> }).didgateLocUpdate(...this.keys(aor), ...args)) ?? [];
    const out: Binding[] = [];
    for (const v of vals) out.push(JSON.parse(v) as Binding);
    return out;
  }

  /** AORs registered (an AOR whose bindings all expired without a later REGISTER is counted until one comes). */
  async count(): Promise<number> {
    return this.redis.scard(this.keys("")[2]);
  }
}
