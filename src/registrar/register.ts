/**
 * REGISTER processing (RFC 3261 section 10.3, RFC 5626 for instance/reg-id and flows, RFC 3327
 * Path, RFC 8760 digest algorithms).
 *
 * Order: the To URI must be sip:USER@DOMAIN of our domain (else 404); a source and user locked
 * out after repeated failures gets 403 without a check; digest credentials are checked (401 with
 * a challenge when missing or stale; 403 for a wrong password, an unknown user or a replayed
 * nonce: one answer, so accounts cannot be enumerated); then the contacts are applied: `*` with
 * Expires 0 removes every binding; each contact's expiry is its `expires` parameter, else the
 * Expires header, else the default, capped at max_expires; a non-zero expiry under min_expires
 * gets 423 with Min-Expires. A REGISTER older than the last one seen for a binding (same Call-ID,
 * lower or equal CSeq) does not change it. The 200 lists every live binding of the AOR.
 */
import { nonceBinding, type DigestAlgorithm, type DigestAuth, type DigestSecret } from "../sip/digest.js";
import { parseNameAddr } from "../sip/uri.js";
import type { SipMessage } from "../sip/index.js";
import { bindingKey, type Binding, type LocationStore } from "./location.js";
import { FifoCache } from "../util/fifo-cache.js";


/** Longest Contact URI (and Path value) a binding keeps, as Kamailio's location table does (512). */
export const MAX_URI_LENGTH = 512;
/** Most Path values a REGISTER may carry (each proxy on the way adds one). */
const MAX_PATH_VALUES = 5;
export const REGISTER_OUTCOMES = [
  "registered",
  "unregistered",
  "fetched",
  "challenged",
  "auth_failed",
  "locked_out",
  "not_found",
  "bad_request",
  "interval_too_brief",
  "too_many_contacts",
  "error",
] as const;
export type RegisterOutcome = (typeof REGISTER_OUTCOMES)[number];

export interface RegistrarUser {
  user: string;
  tenant: string;
  /** A user of the config file has its password; one kept in Redis its HA1s of the realm. */
  password?: string | undefined;
  ha1?: Partial<Record<DigestAlgorithm, string>> | undefined;
}

/** What digest checks a user's credentials against. */
export function userSecret(u: RegistrarUser | undefined): DigestSecret | undefined {
  if (u === undefined) return undefined;
  if (u.password !== undefined) return u.password;
  return u.ha1 !== undefined ? { ha1: u.ha1 } : undefined;
}

export interface RegisterSource {
  transport: "udp" | "tcp" | "tls";
  address: string;
  port: number;
  /** Where other edges reach the edge that received the REGISTER (recorded with the binding). */
  edgeUri?: string | undefined;
}

export interface RegistrarOptions {
  domain: string;
  /** The user's record, or undefined. */
  user(name: string): RegistrarUser | undefined;
  auth: DigestAuth;
  store: LocationStore;
  edgeId: string;
  minExpires?: number;
  maxExpires?: number;
  defaultExpires?: number;
  maxContacts?: number;
  lockout?: { maxFailures: number; windowMs: number; durationMs: number; maxEntries?: number };
  now?: () => number;
}

export interface RegisterResult {
  status: number;
  reason?: string;
  headers: Array<[string, string]>;
  outcome: RegisterOutcome;
  user?: string;
  tenant?: string;
  bindings?: Binding[];
}

interface Failures {
  count: number;
  first: number;
  lockedUntil: number;
}

/**
 * Failure counting per key with lockout, bounded: at the cap the entry whose window started first
 * goes (FifoCache: no walk over deleted entries per new key, which a flood of new keys would make
 * cost tens of µs each).
 */
export class Lockout {
  private readonly m: FifoCache<string, Failures>;
  constructor(
    private readonly o: { maxFailures: number; windowMs: number; durationMs: number; maxEntries?: number },
    private readonly now: () => number,
  ) {
    this.m = new FifoCache(o.maxEntries ?? 100_000);
  }
  locked(key: string): boolean {
    const f = this.m.get(key);
    if (f === undefined) return false;
    if (f.lockedUntil > this.now()) return true;
    if (f.lockedUntil !== 0) this.m.delete(key);
    return false;
  }
  fail(key: string): void {
    const now = this.now();
    let f = this.m.get(key);
    if (f === undefined || now - f.first > this.o.windowMs) {
      f = { count: 0, first: now, lockedUntil: 0 };
      // a new window: last in the order (at the cap the oldest goes)
      this.m.delete(key);
      this.m.set(key, f);
    }
    f.count++;
    if (f.count >= this.o.maxFailures) f.lockedUntil = now + this.o.durationMs;
  }
  succeed(key: string): void {
    this.m.delete(key);
  }
  get size(): number {
    return this.m.size;
  }
}

function uintOr(v: string | null | undefined, dflt: number): number {
  if (v === null || v === undefined || !/^\d{1,10}$/.test(v.trim())) return dflt;
  return Number(v.trim());
}

function unquoted(v: string | null | undefined): string | undefined {
  if (v === null || v === undefined) return undefined;
  const t = v.trim();
  return t.startsWith('"') && t.endsWith('"') && t.length >= 2 ? t.slice(1, -1) : t;
}

export class Registrar {
  private readonly o: Required<Omit<RegistrarOptions, "lockout">> & { lockout: NonNullable<RegistrarOptions["lockout"]> };
  /** Failures per (source address, user): guesses at one account never lock another. */
  readonly perUser: Lockout;
  /** Failures per source address over all users (a scan of many users from one place). */
  readonly perSource: Lockout;

  constructor(opts: RegistrarOptions) {
    this.o = {
      minExpires: 60,
      maxExpires: 3600,
      defaultExpires: 3600,
      maxContacts: 10,
      lockout: { maxFailures: 5, windowMs: 60_000, durationMs: 300_000 },
      now: Date.now,
      ...opts,
    } as typeof this.o;
    this.perUser = new Lockout(this.o.lockout, this.o.now);
    this.perSource = new Lockout({ ...this.o.lockout, maxFailures: this.o.lockout.maxFailures * 4 }, this.o.now);
  }

  get domain(): string {
    return this.o.domain;
  }

  async handle(req: SipMessage, src: RegisterSource): Promise<RegisterResult> {
    const to = req.to?.parsedUri;
    if (to === null || to === undefined || !to.isSip) return { status: 400, reason: "Bad Request (To)", headers: [], outcome: "bad_request" };
    if (to.hostname.toLowerCase() !== this.o.domain.toLowerCase()) return { status: 404, reason: "Not Found (domain)", headers: [], outcome: "not_found" };
    const name = to.userUnescaped;
    if (name === undefined || name.length === 0 || name.length > 128) return { status: 404, headers: [], outcome: "not_found" };
    const lockKey = src.address + " " + name;
    if (this.perUser.locked(lockKey) || this.perSource.locked(src.address)) return { status: 403, headers: [], outcome: "locked_out" };
    const creds = req.getAll("authorization");
    const bind = nonceBinding(src.address, req.callId);
    const v = this.o.auth.verify("REGISTER", creds.length > 0 ? creds : undefined, (u) => (u === name ? userSecret(this.o.user(u)) : undefined), bind);
    if (!v.ok) {
      // malformed credentials (no nonce or response, an algorithm not offered) prove nothing
      // about the password: challenged, not counted towards a lockout. Counted, anyone could lock
      // a user (or an address, over UDP with a forged source) out without a nonce, as calls are not
      if (v.reason === "missing" || v.reason === "stale" || v.reason === "bad_nonce" || v.reason === "malformed") {
        return { status: 401, headers: this.o.auth.challenge(v.reason === "stale", bind).map((c) => ["WWW-Authenticate", c] as [string, string]), outcome: "challenged" };
      }
      this.perUser.fail(lockKey);
      this.perSource.fail(src.address);
      return { status: 403, headers: [], outcome: "auth_failed" };
    }
    this.perUser.succeed(lockKey);
    const user = this.o.user(name)!;
    const aor = `sip:${name}@${this.o.domain}`;
    const callId = req.callId ?? "";
    const cseq = req.cseq?.seq ?? 0;
    const contacts = req.getList("contact");
    const now = this.o.now();
    const headerExpires = req.get("expires");
    const dflt = uintOr(headerExpires, this.o.defaultExpires);
    const base = { user: name, tenant: user.tenant };
    if (contacts.length === 0) {
      const bs = await this.o.store.lookup(aor);
      return { status: 200, headers: this.contactHeaders(bs, now), outcome: "fetched", bindings: bs, ...base };
    }
    if (contacts.some((c) => c.trim() === "*")) {
      if (contacts.length !== 1 || dflt !== 0) return { status: 400, reason: "Bad Request (* needs Expires: 0 and no other contact)", headers: [], outcome: "bad_request" };
      await this.o.store.update(aor, { removeAll: true });
      return { status: 200, headers: [], outcome: "unregistered", bindings: [], ...base };
    }
    const current = await this.o.store.lookup(aor);
    const byKey = new Map(current.map((b) => [bindingKey(b), b]));
    const upsert: Binding[] = [];
    const remove: string[] = [];
    const pathValues = req.getList("path");
    if (pathValues.length > MAX_PATH_VALUES || pathValues.some((p) => p.length > MAX_URI_LENGTH)) return { status: 400, reason: `Bad Request (more than ${MAX_PATH_VALUES} Path values or one over ${MAX_URI_LENGTH} characters)`, headers: [], outcome: "bad_request" };
    for (const raw of contacts) {
      const na = parseNameAddr(raw);
      const uri = na?.parsedUri;
      if (na === null || uri === null || uri === undefined || !uri.isSip) return { status: 400, reason: "Bad Request (Contact)", headers: [], outcome: "bad_request" };
      // a binding is kept, sent in every call's INVITE and written in its record: bounded
      const contact = uri.toString();
      if (contact.length > MAX_URI_LENGTH) return { status: 400, reason: `Bad Request (Contact over ${MAX_URI_LENGTH} characters)`, headers: [], outcome: "bad_request" };
      let exp = uintOr(na.param("expires"), dflt);
      if (exp !== 0 && exp < this.o.minExpires) {
        return { status: 423, headers: [["Min-Expires", String(this.o.minExpires)]], outcome: "interval_too_brief" };
      }
      exp = Math.min(exp, this.o.maxExpires);
      const instance = unquoted(na.param("+sip.instance"));
      const regIdText = na.param("reg-id");
      const b: Binding = {
        contact,
        expiresAt: now + exp * 1000,
        q: Math.min(1, Math.max(0, Number(na.param("q") ?? "1") || 0)),
        callId,
        cseq,
        transport: src.transport,
        address: src.address,
        port: src.port,
        edge: this.o.edgeId,
        registeredAt: now,
      };
      if (na.param("q") === undefined || na.param("q") === null) b.q = 1;
      if (instance !== undefined && instance.length > 0 && instance.length <= 256) b.instance = instance;
      if (regIdText !== null && regIdText !== undefined && /^\d{1,9}$/.test(regIdText)) b.regId = Number(regIdText);
      if (pathValues.length > 0) b.path = pathValues;
      if (src.edgeUri !== undefined) b.edgeUri = src.edgeUri;
      const key = bindingKey(b);
      const old = byKey.get(key);
      if (old !== undefined && old.callId === callId && old.cseq >= cseq) continue; // an older or repeated REGISTER
      if (exp === 0) remove.push(key);
      else upsert.push(b);
    }
    // max_contacts and the CSeq order are checked (again) where the change is applied: REGISTERs of
    // this AOR handled meanwhile (same read, another edge) may have changed what `current` says
    const bs = await this.o.store.update(aor, { upsert, remove, order: { callId, cseq }, maxContacts: this.o.maxContacts });
    if (bs === null) return { status: 403, reason: "Forbidden (too many contacts)", headers: [], outcome: "too_many_contacts" };
    const headers = this.contactHeaders(bs, now);
    const supported = req.getList("supported").map((s) => s.trim().toLowerCase());
    if (upsert.some((b) => b.regId !== undefined) && supported.includes("outbound")) headers.push(["Require", "outbound"]);
    if (pathValues.length > 0 && supported.includes("path")) for (const p of pathValues) headers.push(["Path", p]);
    return { status: 200, headers, outcome: upsert.length > 0 ? "registered" : "unregistered", bindings: bs, ...base };
  }

  private contactHeaders(bs: readonly Binding[], now: number): Array<[string, string]> {
    return bs.map((b) => {
      let v = "<" + b.contact + ">;expires=" + Math.max(0, Math.round((b.expiresAt - now) / 1000));
      if (b.q !== 1) v += ";q=" + b.q;
      if (b.instance !== undefined) v += ';+sip.instance="' + b.instance + '"';
      if (b.regId !== undefined) v += ";reg-id=" + b.regId;
      return ["Contact", v] as [string, string];
    });
  }
}

/**
 * Order of bindings for a call: highest q first; equal q rung together (RFC 3261 16.6 step 4's
 * "q-value grouping"). Returns the groups.
 */
export function qGroups(bs: readonly Binding[]): Binding[][] {
  const sorted = [...bs].sort((a, b) => b.q - a.q || b.registeredAt - a.registeredAt);
  const out: Binding[][] = [];
  for (const b of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0]!.q === b.q) last.push(b);
    else out.push([b]);
  }
  return out;
}
