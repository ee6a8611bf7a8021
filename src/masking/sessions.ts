/**
 * Number masking sessions: two parties (a, b) talk through a proxy number from a pool; a call or
 * message from a to the proxy goes to b, presenting the proxy number, and from b to a.
 *
 * Pooling rule: a proxy number serves many sessions at once as long as no participant is in two
 * sessions on the same proxy number (then "who is calling the proxy" still names one session).
 * Allocation checks that rule and claims the number atomically: in Redis one script run, so two
 * edges never hand out a clash; in memory (one edge without Redis) one synchronous step.
 *
 * Redis keys (under the configured prefix; with Redis Cluster the prefix must carry a hash tag
 * such as "{didgate}:" since the script touches keys it derives):
 *   <prefix>mask:pool:<name>          SET   the pool's numbers
 *   <prefix>mask:pooltenant:<name>    STRING the pool's tenant
 *   <prefix>mask:pools                SET   the pool names (config and API)
 *   <prefix>mask:pools:v              STRING incremented on every pool change: edges poll it and
 *                                     reload the pools when it moved (refreshPools)
 *   <prefix>mask:s:<id>               HASH  id, a, b, proxy, pool, tenant, expires_at (ms)
 *   <prefix>mask:p:<proxy>:<party>    STRING "<id> <other party>"
 * Every session key expires at the session's expiry (PEXPIREAT), so an expired session stops
 * routing at its expiry on every edge, with nothing to clean up.
 */
import { randomBytes } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { Script } from "../redis/script.js";

export interface MaskSession {
  id: string;
  a: string;
  b: string;
  proxy: string;
  pool: string;
  tenant: string;
  /** Epoch ms. */
  expiresAt: number;
}

export type CreateResult = { ok: true; session: MaskSession } | { ok: false; code: "pool_exhausted" | "unknown_pool" | "same_party" | "party_is_proxy" };

/** The other party for a call or message from `party` to `proxy`, if a session says so. */
export interface MaskRoute {
  id: string;
  other: string;
}

/** A pool as the store knows it. */
export interface PoolInfo {
  name: string;
  tenant: string;
  numbers: readonly string[];
}

export interface SessionStore {
  /**
   * Pool name -> numbers, replacing what the store had for that pool; true when written. With
   * `ifVersion` (poolsVersionSeen() when the change was checked against poolList()), nothing is
   * written and false is answered when the pools changed since: the check is to be made again.
   */
  setPool(name: string, tenant: string, numbers: readonly string[], ifVersion?: string | null): Promise<boolean>;
  /** The version of the pools poolList() shows (Redis: the change counter at the last refreshPools; null: never changed). */
  poolsVersionSeen(): string | null;
  /** The pools known here (after the last refreshPools with Redis). */
  poolList(): PoolInfo[];
  poolInfo(name: string): PoolInfo | undefined;
  /** Removes a pool; "in_use" while sessions of it are alive. */
  deletePool(name: string): Promise<"deleted" | "unknown" | "in_use">;
  /** Learns the pool changes other edges made (Redis: one GET when nothing changed). */
  refreshPools(): Promise<void>;
  create(pool: string, a: string, b: string, ttlMs: number): Promise<CreateResult>;
  get(id: string): Promise<MaskSession | null>;
  delete(id: string): Promise<boolean>;
  /** Routing: the session (if any) of `party` on `proxy`. */
  route(proxy: string, party: string): Promise<MaskRoute | null>;
  /** Numbers of a pool (routing needs to know which called numbers may be proxies). */
  isPoolNumber(number: string): boolean;
  /** The tenant of the pool a number belongs to (records). */
  tenantOf(number: string): string | undefined;
  /** Sessions alive per pool (metrics). */
  activeByPool(): Promise<Map<string, number>>;
  /** Sessions alive in a pool, soonest expiry first, at most `limit`. */
  list(pool: string, limit: number): Promise<MaskSession[]>;
}

function newId(): string {
  return "ses_" + randomBytes(12).toString("base64url");
}

const CREATE = `
local pool = KEYS[1]
local prefix = ARGV[1]
local a, b, id, poolname = ARGV[2], ARGV[3], ARGV[4], ARGV[6]
local tenant = redis.call('GET', prefix .. 'mask:pooltenant:' .. poolname) or ''
local expires = tonumber(ARGV[7])
local start = tonumber(ARGV[8])
local nums = redis.call('SMEMBERS', pool)
local n = #nums
if n == 0 then return {0, 'unknown_pool'} end
table.sort(nums)
for i = 0, n - 1 do
  local p = nums[((start + i) % n) + 1]
  local ka = prefix .. 'mask:p:' .. p .. ':' .. a
  local kb = prefix .. 'mask:p:' .. p .. ':' .. b
  if redis.call('EXISTS', ka) == 0 and redis.call('EXISTS', kb) == 0 then
    local ks = prefix .. 'mask:s:' .. id
    redis.call('SET', ka, id .. ' ' .. b, 'PXAT', expires)
    redis.call('SET', kb, id .. ' ' .. a, 'PXAT', expires)
    redis.call('HSET', ks, 'id', id, 'a', a, 'b', b, 'proxy', p, 'pool', poolname, 'tenant', tenant, 'expires_at', tostring(expires))
    redis.call('PEXPIREAT', ks, expires)
    redis.call('ZADD', prefix .. 'mask:active:' .. poolname, expires, id)
    redis.call('ZREMRANGEBYSCORE', prefix .. 'mask:active:' .. poolname, '-inf', tonumber(ARGV[9]))
    return {1, p, tenant}
  end
end
return {0, 'pool_exhausted'}
`;

const DELETE = `
local prefix = ARGV[1]
local ks = prefix .. 'mask:s:' .. ARGV[2]
local s = redis.call('HMGET', ks, 'a', 'b', 'proxy', 'pool')
if not s[1] then return 0 end
local function drop(k)
  local v = redis.call('GET', k)
  if v and string.sub(v, 1, #ARGV[2] + 1) == ARGV[2] .. ' ' then redis.call('DEL', k) end
end
drop(prefix .. 'mask:p:' .. s[3] .. ':' .. s[1])
drop(prefix .. 'mask:p:' .. s[3] .. ':' .. s[2])
redis.call('ZREM', prefix .. 'mask:active:' .. s[4], ARGV[2])
redis.call('DEL', ks)
return 1
`;

/**
 * A pool's numbers and tenant, written unless the pools' change counter moved from what the
 * caller checked against. KEYS pool set, pool tenant, pools set, change counter; ARGV expected
 * counter ("*": any, "": never changed), tenant, name, numbers... Returns 1 written, 0 moved.
 */
const SET_POOL = new Script(`
if ARGV[1] ~= '*' and (redis.call('GET', KEYS[4]) or '') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 4, #ARGV, 500 do redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV))) end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('INCR', KEYS[4])
return 1
`);

/** Sessions in Redis: every edge sees a session the moment it is created. */
export class RedisSessionStore implements SessionStore {
  private readonly pools = new Map<string, { tenant: string; numbers: Set<string> }>();
  /** Pool number -> its pool's tenant. */
  private readonly poolNumbers = new Map<string, string>();

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    redis.defineCommand("didgateMaskCreate", { numberOfKeys: 1, lua: CREATE });
    redis.defineCommand("didgateMaskDelete", { numberOfKeys: 0, lua: DELETE });
  }

  async setPool(name: string, tenant: string, numbers: readonly string[], ifVersion?: string | null): Promise<boolean> {
    const p = this.prefix;
    const keys = [`${p}mask:pool:${name}`, `${p}mask:pooltenant:${name}`, `${p}mask:pools`, `${p}mask:pools:v`];
    const expect = ifVersion === undefined ? "*" : (ifVersion ?? "");
    const r = await SET_POOL.run(this.redis, keys, [expect, tenant, name, ...numbers]);
    if (Number(r) !== 1) return false;
    this.remember(name, tenant, numbers);
    return true;
  }

  poolsVersionSeen(): string | null {
    return this.poolsVersion;
  }

  poolList(): PoolInfo[] {
    return [...this.pools].map(([name, p]) => ({ name, tenant: p.tenant, numbers: [...p.numbers] }));
  }

  poolInfo(name: string): PoolInfo | undefined {
    const p = this.pools.get(name);
    return p === undefined ? undefined : { name, tenant: p.tenant, numbers: [...p.numbers] };
  }

  async deletePool(name: string): Promise<"deleted" | "unknown" | "in_use"> {
    const exists = await this.redis.sismember(`${this.prefix}mask:pools`, name);
    if (exists !== 1 && !this.pools.has(name)) return "unknown";
    if ((await this.redis.zcount(`${this.prefix}mask:active:${name}`, `(${this.now()}`, "+inf")) > 0) return "in_use";
    const m = this.redis.multi();
    m.del(`${this.prefix}mask:pool:${name}`, `${this.prefix}mask:pooltenant:${name}`, `${this.prefix}mask:active:${name}`);
    m.srem(`${this.prefix}mask:pools`, name);
    m.incr(`${this.prefix}mask:pools:v`);
    await m.exec();
    this.pools.delete(name);
    this.reindex();
    return "deleted";
  }

  private poolsVersion: string | null = null;

  async refreshPools(): Promise<void> {
    const v = await this.redis.get(`${this.prefix}mask:pools:v`);
    if (v === this.poolsVersion) return;
    const names = new Set(await this.redis.smembers(`${this.prefix}mask:pools`));
    for (const name of names) await this.loadPool(name);
    for (const name of [...this.pools.keys()]) if (!names.has(name)) this.pools.delete(name);
    this.reindex();
    this.poolsVersion = v;
  }

  /** Learns a pool kept in Redis (changed by the API on another edge). */
  async loadPool(name: string): Promise<void> {
    const [numbers, tenant] = await Promise.all([this.redis.smembers(`${this.prefix}mask:pool:${name}`), this.redis.get(`${this.prefix}mask:pooltenant:${name}`)]);
    this.remember(name, tenant ?? "", numbers);
  }

  private remember(name: string, tenant: string, numbers: readonly string[]): void {
    this.pools.set(name, { tenant, numbers: new Set(numbers) });
    this.reindex();
  }

  private reindex(): void {
    this.poolNumbers.clear();
    for (const p of this.pools.values()) for (const n of p.numbers) this.poolNumbers.set(n, p.tenant);
  }

  async create(pool: string, a: string, b: string, ttlMs: number): Promise<CreateResult> {
    if (a === b) return { ok: false, code: "same_party" };
    // a party that is a proxy number would relay each message (and call) back into a session
    if (this.isPoolNumber(a) || this.isPoolNumber(b)) return { ok: false, code: "party_is_proxy" };
    const p = this.pools.get(pool);
    const id = newId();
    const now = this.now();
    const expiresAt = now + ttlMs;
    const n = p?.numbers.size ?? 1;
    const start = Math.floor(this.random() * Math.max(1, n));
    const r = (await (this.redis as unknown as { didgateMaskCreate: (...a: (string | number)[]) => Promise<[number, string, string?]> }).didgateMaskCreate(
      `${this.prefix}mask:pool:${pool}`,
      this.prefix,
      a,
      b,
      id,
      "",
      pool,
      expiresAt,
      start,
      now,
    )) as [number, string, string?];
    if (r[0] !== 1) return { ok: false, code: r[1] === "unknown_pool" ? "unknown_pool" : "pool_exhausted" };
    return { ok: true, session: { id, a, b, proxy: r[1], pool, tenant: r[2] ?? "", expiresAt } };
  }

  async get(id: string): Promise<MaskSession | null> {
    const h = await this.redis.hgetall(`${this.prefix}mask:s:${id}`);
    if (h.id === undefined) return null;
    const expiresAt = Number(h.expires_at);
    if (expiresAt <= this.now()) return null;
    return { id: h.id, a: h.a!, b: h.b!, proxy: h.proxy!, pool: h.pool!, tenant: h.tenant ?? "", expiresAt };
  }

  async delete(id: string): Promise<boolean> {
    const r = await (this.redis as unknown as { didgateMaskDelete: (...a: string[]) => Promise<number> }).didgateMaskDelete(this.prefix, id);
    return r === 1;
  }

  async route(proxy: string, party: string): Promise<MaskRoute | null> {
    if (!this.poolNumbers.has(proxy)) return null;
    const v = await this.redis.get(`${this.prefix}mask:p:${proxy}:${party}`);
    if (v === null) return null;
    const sp = v.indexOf(" ");
    if (sp <= 0) return null;
    return { id: v.slice(0, sp), other: v.slice(sp + 1) };
  }

  isPoolNumber(number: string): boolean {
    return this.poolNumbers.has(number);
  }

  tenantOf(number: string): string | undefined {
    return this.poolNumbers.get(number);
  }

  async activeByPool(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const now = this.now();
    for (const name of this.pools.keys()) out.set(name, await this.redis.zcount(`${this.prefix}mask:active:${name}`, `(${now}`, "+inf"));
    return out;
  }

  async list(pool: string, limit: number): Promise<MaskSession[]> {
    const ids = await this.redis.zrangebyscore(`${this.prefix}mask:active:${pool}`, `(${this.now()}`, "+inf", "LIMIT", 0, limit);
    const out: MaskSession[] = [];
    // one at a time: with Redis Cluster the session hashes may live on different nodes
    for (const id of ids) {
      const s = await this.get(id);
      if (s !== null) out.push(s);
    }
    return out;
  }
}

/** Sessions in memory: one edge without Redis (same rules, same answers). */
export class MemorySessionStore implements SessionStore {
  private readonly pools = new Map<string, { tenant: string; numbers: string[] }>();
  /** Pool number -> its pool's tenant. */
  private readonly poolNumbers = new Map<string, string>();
  private readonly sessions = new Map<string, MaskSession>();
  /** "<proxy> <party>" -> session id */
  private readonly byParty = new Map<string, string>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
    /** Bound on live sessions (memory). */
    private readonly maxSessions = 1_000_000,
  ) {}

  async setPool(name: string, tenant: string, numbers: readonly string[]): Promise<boolean> {
    this.pools.set(name, { tenant, numbers: [...numbers].sort() });
    this.reindex();
    return true;
  }

  /** One process: a check and the write that follows it are not interleaved with another's. */
  poolsVersionSeen(): string | null {
    return null;
  }

  private reindex(): void {
    this.poolNumbers.clear();
    for (const p of this.pools.values()) for (const n of p.numbers) this.poolNumbers.set(n, p.tenant);
  }

  poolList(): PoolInfo[] {
    return [...this.pools].map(([name, p]) => ({ name, tenant: p.tenant, numbers: [...p.numbers] }));
  }

  poolInfo(name: string): PoolInfo | undefined {
    const p = this.pools.get(name);
    return p === undefined ? undefined : { name, tenant: p.tenant, numbers: [...p.numbers] };
  }

  async deletePool(name: string): Promise<"deleted" | "unknown" | "in_use"> {
    if (!this.pools.has(name)) return "unknown";
    this.sweep();
    for (const s of this.sessions.values()) if (s.pool === name) return "in_use";
    this.pools.delete(name);
    this.reindex();
    return "deleted";
  }

  async refreshPools(): Promise<void> {}

  private live(id: string | undefined): MaskSession | null {
    if (id === undefined) return null;
    const s = this.sessions.get(id);
    if (s === undefined) return null;
    if (s.expiresAt <= this.now()) {
      this.drop(s);
      return null;
    }
    return s;
  }

  private drop(s: MaskSession): void {
    this.sessions.delete(s.id);
    if (this.byParty.get(s.proxy + " " + s.a) === s.id) this.byParty.delete(s.proxy + " " + s.a);
    if (this.byParty.get(s.proxy + " " + s.b) === s.id) this.byParty.delete(s.proxy + " " + s.b);
  }

  private sweep(): void {
    const now = this.now();
    for (const s of this.sessions.values()) if (s.expiresAt <= now) this.drop(s);
  }

  async create(pool: string, a: string, b: string, ttlMs: number): Promise<CreateResult> {
    if (a === b) return { ok: false, code: "same_party" };
    // a party that is a proxy number would relay each message (and call) back into a session
    if (this.isPoolNumber(a) || this.isPoolNumber(b)) return { ok: false, code: "party_is_proxy" };
    const p = this.pools.get(pool);
    if (p === undefined || p.numbers.length === 0) return { ok: false, code: "unknown_pool" };
    if (this.sessions.size >= this.maxSessions) this.sweep();
    if (this.sessions.size >= this.maxSessions) return { ok: false, code: "pool_exhausted" };
    const n = p.numbers.length;
    const start = Math.floor(this.random() * n);
    for (let i = 0; i < n; i++) {
      const proxy = p.numbers[(start + i) % n]!;
      if (this.live(this.byParty.get(proxy + " " + a)) !== null || this.live(this.byParty.get(proxy + " " + b)) !== null) continue;
      const s: MaskSession = { id: newId(), a, b, proxy, pool, tenant: p.tenant, expiresAt: this.now() + ttlMs };
      this.sessions.set(s.id, s);
      this.byParty.set(proxy + " " + a, s.id);
      this.byParty.set(proxy + " " + b, s.id);
      return { ok: true, session: { ...s } };
    }
    return { ok: false, code: "pool_exhausted" };
  }

  async get(id: string): Promise<MaskSession | null> {
    const s = this.live(id);
    return s === null ? null : { ...s };
  }

  async delete(id: string): Promise<boolean> {
    const s = this.live(id);
    if (s === null) return false;
    this.drop(s);
    return true;
  }

  async route(proxy: string, party: string): Promise<MaskRoute | null> {
    if (!this.poolNumbers.has(proxy)) return null;
    const s = this.live(this.byParty.get(proxy + " " + party));
    if (s === null) return null;
    return { id: s.id, other: s.a === party ? s.b : s.a };
  }

  isPoolNumber(number: string): boolean {
    return this.poolNumbers.has(number);
  }

  tenantOf(number: string): string | undefined {
    return this.poolNumbers.get(number);
  }

  async activeByPool(): Promise<Map<string, number>> {
    this.sweep();
    const out = new Map<string, number>();
    for (const name of this.pools.keys()) out.set(name, 0);
    for (const s of this.sessions.values()) out.set(s.pool, (out.get(s.pool) ?? 0) + 1);
    return out;
  }

  async list(pool: string, limit: number): Promise<MaskSession[]> {
    this.sweep();
    const out: MaskSession[] = [];
    for (const s of this.sessions.values()) if (s.pool === pool) out.push({ ...s });
    out.sort((x, y) => x.expiresAt - y.expiresAt);
    return out.slice(0, limit);
  }
}
