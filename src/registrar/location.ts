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

/**
 * One REGISTER's changes. Checked and applied in one atomic step, so REGISTERs of one AOR that are
 * handled at the same time (several in one read, or at several edges) cannot together pass
 * `maxContacts` or let an older CSeq undo a newer one.
 */
export interface LocationChange {
  upsert?: Binding[];
  remove?: string[];
  removeAll?: boolean;
  /** The REGISTER's Call-ID and CSeq: a live binding that Call-ID wrote with an equal or higher CSeq is neither replaced nor removed. */
  order?: { callId: string; cseq: number };
  /** Refuse the whole change (null) when the AOR would have more live bindings than this. */
  maxContacts?: number;
}

export interface LocationStore {
  /** Live bindings of an AOR (expired ones left out). */
  lookup(aor: string): Promise<Binding[]>;
  /**
   * Applies one REGISTER's changes atomically: `upsert` adds or replaces bindings by key, `remove`
   * deletes keys, `removeAll` clears the AOR first. Returns the AOR's live bindings after, or null
   * (nothing changed) when they would be more than `maxContacts`.
   */
  update(aor: string, change: LocationChange): Promise<Binding[] | null>;
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

  async update(aor: string, change: LocationChange): Promise<Binding[] | null> {
    let m = this.live(aor);
    const o = change.order;
    const newer = (k: string): boolean => {
      const b = change.removeAll || o === undefined ? undefined : m?.get(k);
      return b !== undefined && b.callId === o!.callId && b.cseq >= o!.cseq;
    };
    const remove = (change.remove ?? []).filter((k) => !newer(k));
    const upsert = (change.upsert ?? []).filter((b) => !newer(bindingKey(b)));
    if (change.maxContacts !== undefined) {
      const after = new Set(change.removeAll ? [] : (m?.keys() ?? []));
      for (const k of remove) after.delete(k);
      for (const b of upsert) after.add(bindingKey(b));
      if (after.size > change.maxContacts) return null;
    }
    if (change.removeAll) m?.clear();
    for (const k of remove) m?.delete(k);
    if (upsert.length > 0) {
      if (m === undefined) {
        if (this.aors.size >= this.maxAors) this.sweep();
        if (this.aors.size >= this.maxAors) throw new Error("location store full");
        m = new Map();
        this.aors.set(aor, m);
      }
      for (const b of upsert) m.set(bindingKey(b), b);
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

/**
 * ARGV: now, removeAll, aor, maxContacts (0: none), order Call-ID ("": none), order CSeq, the
 * number of keys to remove, those keys, then per upsert: key, expiresAt, JSON. Returns the live
 * bindings (JSON), or -1 (nothing changed) when they would be more than maxContacts.
 */
const UPDATE = `
local h, z = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local removeAll = ARGV[2] == '1'
local aor = ARGV[3]
local max = tonumber(ARGV[4])
local ocid, ocseq = ARGV[5], tonumber(ARGV[6])
local nrem = tonumber(ARGV[7])
-- a live binding the same Call-ID wrote with an equal or higher CSeq stays as it is
local function newer(k)
  if removeAll or ocid == '' then return false end
  local v = redis.call('HGET', h, k)
  if not v then return false end
  local ok, b = pcall(cjson.decode, v)
  if not ok or type(b) ~= 'table' then return false end
  local cseq, exp = tonumber(b.cseq), tonumber(b.expiresAt)
  return b.callId == ocid and cseq ~= nil and cseq >= ocseq and exp ~= nil and exp > now
end
local rem, ups = {}, {}
for i = 1, nrem do
  if not newer(ARGV[7 + i]) then rem[#rem + 1] = ARGV[7 + i] end
end
local j = 8 + nrem
while j <= #ARGV do
  if not newer(ARGV[j]) then ups[#ups + 1] = j end
  j = j + 3
end
if max > 0 then
  local live, n = {}, 0
  if not removeAll then
    for _, k in ipairs(redis.call('ZRANGEBYSCORE', z, '(' .. now, '+inf')) do
      live[k] = true
      n = n + 1
    end
  end
  for _, k in ipairs(rem) do
    if live[k] then live[k] = nil; n = n - 1 end
  end
  for _, i in ipairs(ups) do
    if not live[ARGV[i]] then live[ARGV[i]] = true; n = n + 1 end
  end
  if n > max then return -1 end
end
if removeAll then redis.call('DEL', h, z) end
for _, k in ipairs(rem) do
  redis.call('HDEL', h, k)
  redis.call('ZREM', z, k)
end
for _, i in ipairs(ups) do
  redis.call('HSET', h, ARGV[i], ARGV[i + 2])
  redis.call('ZADD', z, tonumber(ARGV[i + 1]), ARGV[i])
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

  async update(aor: string, change: LocationChange): Promise<Binding[] | null> {
    const rem = change.remove ?? [];
    const o = change.order;
    const args: (string | number)[] = [this.now(), change.removeAll ? "1" : "0", aor, change.maxContacts ?? 0, o?.callId ?? "", o?.cseq ?? 0, rem.length, ...rem];
    for (const b of change.upsert ?? []) args.push(bindingKey(b), b.expiresAt, JSON.stringify(b));
    const r = await (this.redis as unknown as { didgateLocUpdate: (...a: (string | number)[]) => Promise<string[] | number | null> }).didgateLocUpdate(...this.keys(aor), ...args);
    if (r === -1) return null;
    const vals = Array.isArray(r) ? r : [];
    const out: Binding[] = [];
    for (const v of vals) out.push(JSON.parse(v) as Binding);
    return out;
  }

  /** AORs registered (an AOR whose bindings all expired without a later REGISTER is counted until one comes). */
  async count(): Promise<number> {
    return this.redis.scard(this.keys("")[2]);
  }
}
