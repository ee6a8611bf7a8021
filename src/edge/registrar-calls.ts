/**
 * Calls from registered users (docs/registrar.md, "Calls from registered users"): a phone that
 * registers as sip:USER@<registrar domain> places outbound calls as a customer of its user's
 * tenant, authenticated by the same credentials.
 *
 * An INVITE is a user's when it comes from a source that is neither a trunk nor a customer and its
 * From URI names the registrar domain. It is challenged with 407 Proxy-Authenticate (RFC 3261
 * 22.3) in the registrar's realm, so the password of REGISTER answers it; nonces expire and cannot
 * be replayed (src/sip/digest.ts), and failures count towards the REGISTER lockout of the same
 * source and user. The user then becomes a customer (src/edge/customers.ts) of its tenant with
 * caller_id: owned and the per-user limits of sip.registrar.calls; the rest (caller-ID ownership,
 * outbound table, on-net routes) is the customer path of src/edge/voice.ts.
 *
 * The caller ID a user claims: P-Asserted-Identity, else P-Preferred-Identity, else the From user
 * when it is not the user's own name, else the user's configured caller_id.
 */
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { userSecret, type Lockout, type RegistrarUser } from "../registrar/register.js";
import type { NumberPlan } from "../routing/number.js";
import { nonceBinding, parseDigestCredentials, type DigestAuth } from "../sip/digest.js";
import type { SipMessage } from "../sip/index.js";
import type { Customer } from "./customers.js";
import { TokenBucket, type Now } from "./limits.js";

/** `sip.registrar.calls` as configured (the fields read here). */
export interface CallsConfig {
  country_code?: string | undefined;
  national_prefix?: string | undefined;
  cps: number;
  max_calls: number;
  max_calls_total?: number | undefined;
}

export const CALL_AUTH_OUTCOMES = ["challenged", "authenticated", "auth_failed", "locked_out"] as const;
export type CallAuthOutcome = (typeof CALL_AUTH_OUTCOMES)[number];

/** A registrar user with what calls need (the caller ID shown when the phone asserts none). */
export interface CallingUser extends RegistrarUser {
  caller_id?: string | undefined;
}

/** The max_calls counter key of all users' calls together (max_calls_total). */
export const ALL_USERS_KEY = "r:all";

export const CALL_LIMITS = ["max_calls", "max_calls_total"] as const;
export type CallLimit = (typeof CALL_LIMITS)[number];

export type CallAuth =
  | { ok: true; customer: Customer; user: string; callerIn: string | undefined }
  | { ok: false; status: number; outcome: "challenged" | "auth_failed"; reason?: string; headers?: Array<[string, string]> };

export interface UserCallsOptions {
  domain: string;
  config: CallsConfig;
  auth: DigestAuth;
  user: (name: string) => CallingUser | undefined;
  perUser: Lockout;
  perSource: Lockout;
  registry: Registry;
  logger: Logger;
  now: Now;
}

export class UserCalls {
  /** Customer name ("USER@domain") -> the user as a customer; one per user who has called. */
  private readonly customers = new Map<string, Customer>();
  private readonly domain: string;
  private config: CallsConfig;
  private plan: NumberPlan;
  readonly outcomes: Counter<"outcome">;
  readonly overLimit: Counter<"limit">;

  constructor(private readonly o: UserCallsOptions) {
    this.domain = o.domain.toLowerCase();
    this.config = o.config;
    this.plan = planOf(o.config);
    this.outcomes = new Counter({
      name: "didgate_registrar_call_auth_total",
      help: "INVITEs from registered users by authentication outcome (challenged, authenticated, auth_failed: wrong password, unknown user or a reused nonce, locked_out)",
      labelNames: ["outcome"],
      registers: [o.registry],
    });
    for (const x of CALL_AUTH_OUTCOMES) this.outcomes.labels({ outcome: x });
    this.overLimit = new Counter({
      name: "didgate_registrar_calls_over_limit_total",
      help: "Calls from registered users refused with 503 for a limit on calls at once: the user's (max_calls) or all users' together (max_calls_total)",
      labelNames: ["limit"],
      registers: [o.registry],
    });
    for (const x of CALL_LIMITS) this.overLimit.labels({ limit: x });
  }

  /** Is this out-of-dialog INVITE a registered user's (its From names the registrar domain)? */
  isUserCall(req: SipMessage): boolean {
    const u = req.from?.parsedUri;
    return u !== null && u !== undefined && u.isSip && u.hostname.toLowerCase() === this.domain;
  }

  /** SIGHUP: new limits and number plan; users gone from the config lose their customer. */
  reload(config: CallsConfig): void {
    this.config = config;
    this.plan = planOf(config);
    for (const [name, c] of this.customers) {
      const u = this.o.user(c.name.slice(0, c.name.lastIndexOf("@")));
      if (u === undefined || u.tenant !== c.tenant) this.customers.delete(name);
      else c.cps.configure(config.cps, Math.max(1, config.cps));
    }
  }

  /** The customer of a user by its name ("USER@domain"), for call records. */
  byName(name: string): Customer | undefined {
    return this.customers.get(name);
  }

  /** Calls at once by all users together, or undefined (no such limit). */
  get maxTotal(): number | undefined {
    return this.config.max_calls_total;
  }

  /** max_calls counter keys (shared across edges with routes.redis). */
  keys(): string[] {
    const out = [...this.customers.keys()].map((n) => "c:" + n);
    if (this.config.max_calls_total !== undefined) out.push(ALL_USERS_KEY);
    return out;
  }

  /** Digest (407, 403), lockout, then the user as a customer of its tenant. */
  authorize(req: SipMessage, source: string): CallAuth {
    const creds = req.getAll("proxy-authorization");
    let claimed: string | undefined;
    for (const v of creds) {
      const c = parseDigestCredentials(v);
      if (c !== null && c.realm === this.o.auth.realm) {
        claimed = c.username;
        break;
      }
    }
    if (this.o.perSource.locked(source) || (claimed !== undefined && this.o.perUser.locked(source + " " + claimed))) {
      return this.fail("locked_out", source, req);
    }
    const bind = nonceBinding(source, req.callId);
    const v = this.o.auth.verify("INVITE", creds.length > 0 ? creds : undefined, (name) => userSecret(this.o.user(name)), bind);
    if (!v.ok) {
      if (v.reason === "missing" || v.reason === "stale" || v.reason === "bad_nonce" || v.reason === "malformed") {
        this.outcomes.labels({ outcome: "challenged" }).inc();
        return { ok: false, status: 407, outcome: "challenged", headers: this.o.auth.challenge(v.reason === "stale", bind).map((c) => ["Proxy-Authenticate", c] as [string, string]) };
      }
      if (claimed !== undefined) this.o.perUser.fail(source + " " + claimed);
      this.o.perSource.fail(source);
      return this.fail(v.reason === "replay" ? "replay" : "auth_failed", source, req);
    }
    this.o.perUser.succeed(source + " " + v.username);
    const user = this.o.user(v.username)!;
    this.outcomes.labels({ outcome: "authenticated" }).inc();
    return { ok: true, customer: this.customerOf(user), user: user.user, callerIn: this.callerIn(req, user) };
  }

  private fail(why: "auth_failed" | "replay" | "locked_out", source: string, req: SipMessage): CallAuth {
    this.outcomes.labels({ outcome: why === "replay" ? "auth_failed" : why }).inc();
    // neither the user name nor the credentials: a wrong password and an unknown user look alike
    if (why !== "locked_out") this.o.logger.info({ source, reason: why, call_id: req.callId }, "registered user call refused (authentication)");
    return { ok: false, status: 403, outcome: "auth_failed", reason: why === "replay" ? "Forbidden (nonce reused)" : "Forbidden (bad credentials)" };
  }

  private callerIn(req: SipMessage, user: CallingUser): string | undefined {
    const asserted = req.get("p-asserted-identity") ?? req.get("p-preferred-identity");
    if (asserted !== undefined) return asserted;
    const fu = req.from?.parsedUri?.userUnescaped;
    if (fu !== undefined && fu.length > 0 && fu !== user.user) return req.get("from");
    return user.caller_id === undefined ? undefined : "<tel:" + user.caller_id + ">";
  }

  private customerOf(u: CallingUser): Customer {
    const name = u.user + "@" + this.domain;
    let c = this.customers.get(name);
    if (c === undefined || c.tenant !== u.tenant) {
      const cps = c?.cps ?? new TokenBucket(this.config.cps, Math.max(1, this.config.cps), this.o.now);
      c = { name, tenant: u.tenant, plan: this.plan, callerId: "owned", cps, maxCalls: this.config.max_calls, digest: undefined, bySource: false };
      this.customers.set(name, c);
    } else if (c.plan !== this.plan || c.maxCalls !== this.config.max_calls) {
      c = { ...c, plan: this.plan, maxCalls: this.config.max_calls };
      this.customers.set(name, c);
    }
    return c;
  }

  /**
   * The call towards the carrier: From names the checked caller ID at the registrar domain
   * (display name and tag kept: the dialog is the same), and P-Preferred-Identity is consumed
   * (RFC 3325: P-Asserted-Identity, set by the caller, replaces it).
   */
  rewrite(m: SipMessage, caller: string): void {
    m.remove("p-preferred-identity");
    const f = m.from;
    if (f === null) return;
    const d = f.displayName !== undefined && f.displayName.length > 0 ? '"' + f.displayName.replace(/["\\]/g, "") + '" ' : "";
    const tag = f.tag;
    m.set("From", d + "<sip:" + caller + "@" + this.domain + ">" + (tag !== undefined ? ";tag=" + tag : ""));
  }
}

function planOf(c: CallsConfig): NumberPlan {
  const plan: NumberPlan = {};
  if (c.country_code !== undefined) plan.countryCode = c.country_code;
  if (c.national_prefix !== undefined) plan.nationalPrefix = c.national_prefix;
  return plan;
}
