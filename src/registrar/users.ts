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

  /** Creates or replaces a user; the password becomes its HA1s of the realm. */
  async put(u: { user: string; tenant: string; password: string; caller_id?: string | undefined }, now: number): Promise<StoredUser> {
    const s: StoredUser = {
      user: u.user,
      tenant: u.tenant,
      ha1: { MD5: digestHa1("MD5", u.user, this.realm, u.password), "SHA-256": digestHa1("SHA-256", u.user, this.realm, u.password) },
      ...(u.caller_id !== undefined ? { caller_id: u.caller_id } : {}),
      updated_at: new Date(now).toISOString(),
    };
    await this.client.multi().hset(this.hash, u.user, JSON.stringify(s)).incr(this.ver).exec();
    return s;
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
