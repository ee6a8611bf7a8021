/**
 * Bearer tokens from the config. A presented token is hashed and compared with every configured
 * token's hash in constant time (crypto.timingSafeEqual over equal-length SHA-256 digests), so
 * neither the length nor the content of a configured token leaks through timing. Tokens are never
 * logged: a principal carries a short fingerprint (the first 12 hex digits of the token's SHA-256)
 * that names it in audit records.
 */
import { createHash, timingSafeEqual } from "node:crypto";

export interface TokenConfig {
  token: string;
  tenant?: string | undefined;
  blocks?: readonly string[] | undefined;
}

export interface Principal {
  /** undefined: an admin token. */
  readonly tenant: string | undefined;
  /** "admin" or the tenant name: who, in audit records. */
  readonly who: string;
  /** Short fingerprint of the token (safe to log). */
  readonly fingerprint: string;
  /** Number blocks a tenant token may create keys in (route keys "+1…" or prefixes "+1…*"). */
  readonly blocks: readonly string[];
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

export function fingerprint(token: string): string {
  return sha256(token).toString("hex").slice(0, 12);
}

export class TokenAuth {
  private readonly entries: { hash: Buffer; principal: Principal }[];

  constructor(tokens: readonly TokenConfig[], tenantBlocks: Readonly<Record<string, readonly string[]>> = {}) {
    this.entries = tokens.map((t) => {
      const blocks = t.tenant === undefined ? [] : [...new Set([...(t.blocks ?? []), ...(tenantBlocks[t.tenant] ?? [])])];
      return {
        hash: sha256(t.token),
        principal: { tenant: t.tenant, who: t.tenant ?? "admin", fingerprint: fingerprint(t.token), blocks },
      };
    });
  }

  get size(): number {
    return this.entries.length;
  }

  /**
   * The principal of an Authorization header value, or why not. Every configured token is compared
   * (no early exit), so the time does not depend on which one matched.
   */
  authenticate(header: string | undefined): { ok: true; principal: Principal } | { ok: false; reason: "missing" | "malformed" | "unknown" } {
    if (header === undefined || header === "") return { ok: false, reason: "missing" };
    const m = /^Bearer[ \t]+(\S{1,1024})[ \t]*$/i.exec(header);
    if (!m) return { ok: false, reason: "malformed" };
    const h = sha256(m[1]!);
    let found: Principal | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(h, e.hash) && found === undefined) found = e.principal;
    }
    return found ? { ok: true, principal: found } : { ok: false, reason: "unknown" };
  }
}

/** True when a tenant may create `key`: the key lies inside one of its blocks. */
export function keyInBlocks(key: string, blocks: readonly string[]): boolean {
  if (key === "*") return false;
  const keyDigits = key.endsWith("*") ? key.slice(1, -1) : key.slice(1);
  const keyIsPrefix = key.endsWith("*");
  for (const b of blocks) {
    if (b.endsWith("*")) {
      // A block "+1512555*" holds the numbers under it and the prefixes at or below it.
      if (keyDigits.startsWith(b.slice(1, -1))) return true;
    } else if (!keyIsPrefix && key === b) return true;
  }
  return false;
}
