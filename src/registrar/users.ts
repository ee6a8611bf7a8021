/**
 * Registrar users kept in Redis (changed through the API, docs/registrar.md "Users in Redis").
 *
 *   <prefix>reg:{users}   HASH user -> JSON { user, tenant, caller_id?, ha1: { MD5, SHA-256 }, updated_at }
 *   <prefix>reg:{users}:v STRING incremented on every change: edges poll it and reload the hash
 *
 * No password is stored: only HA1 = H(user:realm:password) for MD5 and SHA-256 (RFC 7616 3.4.2),
 * which answers digest challenges of that realm and nothing else.
 */
import type { RedisClient } from "../redis/client.js";
import { Script } from "../redis/script.js";
import { digestHa1, type DigestAlgorithm } from "../sip/digest.js";
import type { RegistrarUser } from "./register.js";

export interface StoredUser extends RegistrarUser {
  ha1: Partial<Record<DigestAlgorithm, string>>;
  caller_id?: string | undefined;
  updated_at: string;
}

/** A user name the API and the command line accept: a SIP user part of 1-64 characters. */
export const USER_NAME = /^[A-Za-z0-9_.!~*'()&=+$,;?/-]{1,64}$/;

/** The most users one edge loads (a bound on memory; more are refused by put()). */
export const MAX_STORED_USERS = 1_000_000;

export class RedisUserStore {
  private readonly hash: string;
  private readonly ver: string;
  constructor(
    private readonly client: RedisClient,
    prefix: string,
    private readonly realm: string,
  ) {
    this.hash = prefix + "reg:{users}";
    this.ver = prefix + "reg:{users}:v";
  }

  /** The change counter ("0" when never changed). */
  async version(): Promise<string> {
    return (await this.client.get(this.ver)) ?? "0";
  }

  /** Every stored user (entries that do not parse are skipped). */
  async load(): Promise<Map<string, StoredUser>> {
    const all = await this.client.hgetall(this.hash);
    const out = new Map<string, StoredUser>();
    for (const [name, json] of Object.entries(all)) {
      const u = parseStored(name, json);
      if (u !== undefined) out.set(name, u);
    }
    return out;
  }

  async get(name: string): Promise<StoredUser | undefined> {
    const json = await this.client.hget(this.hash, name);
    return json === null ? undefined : parseStored(name, json);
  }

  /**
   * Creates or replaces a user of `u.tenant`; the password becomes its HA1s of the realm. A name is
   * one user of one tenant: when another tenant's user has it, nothing is written and the answer
   * is `{ taken: <its tenant> }`. The check and the write are one script, so two tenants creating
   * the same name at once cannot both succeed.
   */
  async put(u: { user: string; tenant: string; password: string; caller_id?: string | undefined }, now: number): Promise<{ stored: StoredUser; replaced: boolean } | { taken: string }> {
    const s: StoredUser = {
      user: u.user,
      tenant: u.tenant,
      ha1: { MD5: digestHa1("MD5", u.user, this.realm, u.password), "SHA-256": digestHa1("SHA-256", u.user, this.realm, u.password) },
      ...(u.caller_id !== undefined ? { caller_id: u.caller_id } : {}),
      updated_at: new Date(now).toISOString(),
    };
    const r = (await PUT_USER.run(this.client, [this.hash, this.ver], [u.user, u.tenant, JSON.stringify(s)])) as [string, string];
    if (r[0] === "taken") return { taken: r[1] };
    return { stored: s, replaced: r[0] === "replaced" };
  }

  /** False when there was no such user. */
  async delete(name: string): Promise<boolean> {
    const r = await this.client.multi().hdel(this.hash, name).incr(this.ver).exec();
    return Number(r?.[0]?.[1] ?? 0) > 0;
  }

  async count(): Promise<number> {
    return this.client.hlen(this.hash);
  }
}

/**
 * KEYS users hash, version; ARGV name, tenant, JSON. {"taken", tenant} when another tenant's user
 * has the name (an entry that does not parse is replaced: it is no user), else the write and
 * {"created"|"replaced", ""}.
 */
const PUT_USER = new Script(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, v = pcall(cjson.decode, cur)
  if ok and type(v) == 'table' and type(v.tenant) == 'string' and v.tenant ~= ARGV[2] then return {'taken', v.tenant} end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
if cur then return {'replaced', ''} end
return {'created', ''}
`);

function parseStored(name: string, json: string): StoredUser | undefined {
  try {
    const v = JSON.parse(json) as Partial<StoredUser>;
    if (v === null || typeof v !== "object" || typeof v.tenant !== "string" || typeof v.ha1 !== "object" || v.ha1 === null) return undefined;
    const ha1: Partial<Record<DigestAlgorithm, string>> = {};
    if (typeof v.ha1.MD5 === "string") ha1.MD5 = v.ha1.MD5;
    if (typeof v.ha1["SHA-256"] === "string") ha1["SHA-256"] = v.ha1["SHA-256"];
    return { user: name, tenant: v.tenant, ha1, ...(typeof v.caller_id === "string" ? { caller_id: v.caller_id } : {}), updated_at: typeof v.updated_at === "string" ? v.updated_at : "" };
  } catch {
    return undefined;
  }
}
