/**
 * The registrar at the SIP edge (docs/registrar.md): REGISTER from phones and PBXs, and the route
 * targets "sip:USER@<registrar domain>" that ring a user's registered contacts.
 *
 * REGISTER is processed by src/registrar/register.ts (digest, contacts, expiries, lockout); here it
 * is answered, counted and logged, and a TCP/TLS connection a phone registered over is kept open
 * while its binding lives (the phone is called over it: RFC 5626 flow reuse, the only way through
 * most NATs).
 *
 * A call to a user rings every live contact: contacts of equal q together, higher q first
 * (RFC 3261 16.6 q grouping, on the simultaneous ringing of src/edge/proxy.ts). Each contact is
 * sent to the address and port its REGISTER came from (RFC 3581 received/rport: the NAT's public
 * side), over the registered connection when it is still open on this edge; the Request-URI is the
 * registered Contact.
 */
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import type { Logger } from "pino";
import type { RedisClient, RedisConnector } from "../redis/client.js";
import { MemoryLocationStore, RedisLocationStore } from "../registrar/location.js";
import { Counter, Gauge, type Registry } from "prom-client";
import type { Binding, LocationStore } from "../registrar/location.js";
import { qGroups, Registrar, REGISTER_OUTCOMES, type RegisterOutcome, type RegistrarUser } from "../registrar/register.js";
import type { Target } from "../routing/route.js";
import { DigestAuth, type DigestAlgorithm } from "../sip/digest.js";
import type { ServerTransaction, SipMessage, TransportKind } from "../sip/index.js";
import type { EdgeStack } from "./stack.js";
import { targetKey } from "../sip/resolve.js";
import { flowToken, hopOfUri, parseFlowToken, type DialogSigner, type Flow } from "../sip/rr.js";
import type { Source } from "../sip/transport.js";
import { parseNameAddr, parseUri } from "../sip/uri.js";
import { UserCalls, type CallingUser, type CallsConfig } from "./registrar-calls.js";
import { MAX_STORED_USERS, RedisUserStore, type StoredUser } from "../registrar/users.js";
import { errMessage } from "../util/errors.js";

/** Where a leg to a registered contact is sent (its REGISTER's source). */
export interface ContactDest {
  readonly transport: TransportKind;
  readonly address: string;
  readonly port: number;
  readonly key: string;
}

/** A target that is one registered contact of a user. */
export interface ContactLeg extends Target {
  readonly sendTo?: ContactDest;
  readonly user: string;
  /** Sent through the edge that holds the phone's flow: the Route naming the flow (signed). */
  readonly add?: ReadonlyArray<readonly [string, string]>;
  /** sendTo is that other edge, not the phone: its answers are relayed as they are. */
  readonly throughEdge?: boolean;
}

/** What became of INVITEs from other edges for a flow of this one (metric label values). */
export const RELAY_RESULTS = ["relayed", "refused", "flow_failed"] as const;
export type RelayResult = (typeof RELAY_RESULTS)[number];

/** Why an INVITE naming a flow of this edge was refused (log lines). */
export type RelayRefusal = "malformed" | "bad_token" | "expired";

/** GET /v1/users/USER on the admin listener, `didgate users show USER`. */
export interface UserReport {
  user: string;
  tenant: string;
  aor: string;
  bindings: Array<{ contact: string; source: string; transport: string; expires_in_s: number; expires_at: string; registered_at: string; edge: string; q: number; instance?: string; reg_id?: number }>;
}

export const LOOKUP_RESULTS = ["found", "none", "error"] as const;
export type LookupResult = (typeof LOOKUP_RESULTS)[number];

/** `sip.registrar` as configured (the fields read here). */
export interface RegistrarSpec {
  domain: string;
  users: readonly CallingUser[];
  min_expires: number;
  max_expires: number;
  default_expires: number;
  realm?: string | undefined;
  edge_uri?: string | undefined;
  max_contacts: number;
  lockout: { max_failures: number; window_s: number; duration_s: number };
  calls?: CallsConfig | undefined;
}

/** What buildRegistrar needs besides the registrar's own settings. */
export interface RegistrarSettings {
  registrar?: RegistrarSpec | undefined;
  /** `sip.auth`: the nonce key and lifetime and the challenges offered (shared with customers). */
  auth: DigestSettings;
  /** routes.redis's key prefix: bindings and users are kept in Redis under it. */
  redisPrefix?: string | undefined;
  /** This edge's name in bindings (instance_id, else host:pid). */
  edgeId: string;
}

/** `sip.auth` as configured. */
export interface DigestSettings {
  realm: string;
  secret?: string | undefined;
  nonce_ttl_s: number;
  algorithms: readonly DigestAlgorithm[];
}

export interface RegistrarEdgeOptions {
  config: RegistrarSpec;
  /** Nonce key (sip.auth.secret when set, so every edge accepts another's nonces). */
  secret: Buffer;
  nonceTtlMs: number;
  algorithms: readonly DigestAlgorithm[];
  store: LocationStore;
  edgeId: string;
  registry: Registry;
  logger: Logger;
  now: () => number;
  /** The stack, once started (connection lookups). */
  stack: () => EdgeStack | undefined;
  /** The Redis client of a Redis store (connected in start(), closed in close()). */
  client?: RedisClient;
  /** Key prefix of the users kept in Redis (with client). */
  prefix?: string;
  /** sip.registrar.edge_uri: where other edges reach this one (default: the REGISTER's listener). */
  edgeUri?: string | undefined;
  /** Signs and checks the flow tokens of calls between edges (sip.dialog_secret; set once started). */
  signer?: () => DialogSigner | undefined;
  /**
   * sip.unknown_source is reject: a REGISTER for another domain gets its 404; otherwise (drop) it
   * gets nothing, like any other request of a scanner.
   */
  answerStrangers?: () => boolean;
}

/**
 * The registrar of a config, or undefined without sip.registrar. Bindings live in Redis (under
 * routes.redis.prefix, expiring with their last binding) when routes.redis is configured, so every
 * edge finds every phone; else in memory.
 */
export function buildRegistrar(
  settings: RegistrarSettings,
  o: { registry: Registry; logger: Logger; now: () => number; stack: () => EdgeStack | undefined; redis?: RedisConnector; answerStrangers?: () => boolean; signer?: () => DialogSigner | undefined },
): RegistrarEdge | undefined {
  const c = settings.registrar;
  if (c === undefined) return undefined;
  const prefix = settings.redisPrefix;
  // a Redis that is down fails REGISTERs (500) and lookups (the call's next target) at once
  // instead of queueing them while the phone and the caller wait
  const client = prefix !== undefined && o.redis !== undefined ? o.redis.client({ name: "didgate-registrar", redis: { maxRetriesPerRequest: 1, enableOfflineQueue: false } }) : undefined;
  client?.on("error", (err: Error) => o.logger.debug({ err: err.message }, "sip registrar: redis error"));
  const store = client !== undefined ? new RedisLocationStore(client, prefix!, o.now) : new MemoryLocationStore(o.now, 1_000_000);
  const a = settings.auth;
  return new RegistrarEdge({
    config: c,
    // without sip.auth.secret nonces are good on this process only (a phone that moves to another
    // edge is challenged again)
    secret: a.secret !== undefined ? Buffer.from(a.secret, "utf8") : randomBytes(32),
    nonceTtlMs: a.nonce_ttl_s * 1000,
    algorithms: a.algorithms,
    store,
    edgeId: settings.edgeId,
    registry: o.registry,
    logger: o.logger,
    now: o.now,
    stack: o.stack,
    answerStrangers: () => o.answerStrangers?.() ?? false,
    edgeUri: c.edge_uri,
    signer: o.signer,
    ...(client !== undefined ? { client, prefix: prefix! } : {}),
  });
}

/** How often an edge checks whether the users kept in Redis changed. */
const USER_POLL_MS = 2000;

/** Seconds a registered connection stays open after its last binding expired (a late re-REGISTER). */
const FLOW_GRACE_S = 30;

/**
 * Seconds a flow token of a call sent through another edge is good for: the INVITE and its
 * retransmissions (clocks of the edges may differ by some seconds).
 */
const FLOW_TOKEN_S = 120;

export class RegistrarMetrics {
  readonly registrations: Counter<"outcome">;
  readonly authFailures: Counter<"reason">;
  readonly lookups: Counter<"result">;
  readonly bindings: Gauge;
  readonly relays: Counter<"result">;
  constructor(registry: Registry, store: LocationStore) {
    const registers = [registry];
    this.registrations = new Counter({ name: "didgate_registrar_registrations_total", help: "REGISTER requests by outcome (registered, unregistered, fetched, challenged, auth_failed, locked_out, not_found, bad_request, interval_too_brief, too_many_contacts, error)", labelNames: ["outcome"], registers });
    this.authFailures = new Counter({ name: "didgate_registrar_auth_failures_total", help: "REGISTER refused with 403: wrong password or unknown user (auth_failed), or a source and user locked out after repeated failures (locked_out)", labelNames: ["reason"], registers });
    this.lookups = new Counter({ name: "didgate_registrar_lookups_total", help: "Location lookups for calls to registered users: found (some contact), none (480 unless another target answers), error (store unreachable), flow_gone (a TCP/TLS binding whose connection closed, its Contact not at the address it registered from: not called)", labelNames: ["result"], registers });
    this.bindings = new Gauge({
      name: "didgate_registrar_users_registered",
      help: "Users (addresses of record) with at least one registered contact",
      registers,
      // read from the shared store: every worker reports the same count
      aggregator: "max",
      async collect() {
        try {
          this.set(await store.count());
        } catch {
          // the store is unreachable: keep the last value
        }
      },
    });
    for (const o of REGISTER_OUTCOMES) this.registrations.labels({ outcome: o });
    for (const r of ["auth_failed", "locked_out"]) this.authFailures.labels({ reason: r });
    for (const r of LOOKUP_RESULTS) this.lookups.labels({ result: r });
    this.relays = new Counter({
      name: "didgate_registrar_edge_relays_total",
      help: "INVITEs from other edges for a phone whose flow this edge holds: relayed over the flow, refused (bad, expired or missing token: 403), flow_failed (the connection is gone: 430)",
      labelNames: ["result"],
      registers,
    });
    for (const r of RELAY_RESULTS) this.relays.labels({ result: r });
  }
}

export class RegistrarEdge {
  readonly registrar: Registrar;
  readonly metrics: RegistrarMetrics;
  private users: Map<string, CallingUser>;
  private readonly domain: string;
  /** Outbound calls of registered users (sip.registrar.calls configured). */
  readonly calls: UserCalls | undefined;
  /** Users kept in Redis (routes.redis configured), changed through the API. */
  readonly userStore: RedisUserStore | undefined;
  private stored = new Map<string, StoredUser>();
  private storedVersion: string | undefined;
  private userPoll: NodeJS.Timeout | undefined;
  /** hop of sip.registrar.edge_uri, when configured. */
  private readonly edgeHop: string | undefined;

  constructor(private readonly o: RegistrarEdgeOptions) {
    const c = o.config;
    this.domain = c.domain.toLowerCase();
    this.users = new Map(c.users.map((u) => [u.user, u]));
    this.metrics = new RegistrarMetrics(o.registry, o.store);
    const eu = o.edgeUri !== undefined ? parseUri(o.edgeUri) : null;
    this.edgeHop = eu !== null && eu.isSip ? hopOfUri(eu) : undefined;
    if (o.client !== undefined && o.prefix !== undefined) this.userStore = new RedisUserStore(o.client, o.prefix, c.realm ?? c.domain);
    const auth = new DigestAuth({ realm: c.realm ?? c.domain, secret: o.secret, nonceTtlMs: o.nonceTtlMs, algorithms: o.algorithms, now: o.now });
    this.registrar = new Registrar({
      domain: c.domain,
      user: (name) => this.user(name),
      auth,
      store: o.store,
      edgeId: o.edgeId,
      minExpires: c.min_expires,
      maxExpires: c.max_expires,
      defaultExpires: c.default_expires,
      maxContacts: c.max_contacts,
      lockout: { maxFailures: c.lockout.max_failures, windowMs: c.lockout.window_s * 1000, durationMs: c.lockout.duration_s * 1000 },
      now: o.now,
    });
    if (c.calls !== undefined) {
      const r = this.registrar;
      this.calls = new UserCalls({ domain: c.domain, config: c.calls, auth, user: (name) => this.user(name), perUser: r.perUser, perSource: r.perSource, registry: o.registry, logger: o.logger, now: o.now });
    }
  }

  async start(): Promise<void> {
    const c = this.o.client;
    if (c === undefined) return;
    try {
      await c.connect();
    } catch (err) {
      // ioredis keeps reconnecting; REGISTERs answer 500 until it is back
      this.o.logger.warn({ err }, "sip registrar: Redis unreachable (location store); retrying");
    }
    await this.syncUsers();
    this.userPoll = setInterval(() => void this.syncUsers(), USER_POLL_MS);
    this.userPoll.unref();
  }

  async close(): Promise<void> {
    if (this.userPoll !== undefined) clearInterval(this.userPoll);
    this.o.client?.disconnect();
  }

  /** A user of the config file, else one kept in Redis. */
  user(name: string): CallingUser | undefined {
    return this.users.get(name) ?? this.stored.get(name);
  }

  /** Reloads the users kept in Redis when another edge (or the API) changed them. */
  async syncUsers(): Promise<void> {
    const s = this.userStore;
    if (s === undefined) return;
    try {
      const v = await s.version();
      if (v === this.storedVersion) return;
      const all = await s.load();
      if (all.size > MAX_STORED_USERS) this.o.logger.warn({ users: all.size, max: MAX_STORED_USERS }, "sip registrar: more users in Redis than one edge keeps; the rest are ignored");
      this.stored = all.size > MAX_STORED_USERS ? new Map([...all].slice(0, MAX_STORED_USERS)) : all;
      this.storedVersion = v;
    } catch (err) {
      // keep the users loaded last; the next poll tries again
      this.o.logger.debug({ err: errMessage(err) }, "sip registrar: users not reloaded from Redis");
    }
  }

  /** Where a user is defined: the config file (read-only), Redis (the API) or nowhere. */
  userSource(name: string): "config" | "api" | undefined {
    return this.users.has(name) ? "config" : this.stored.has(name) ? "api" : undefined;
  }

  /** Every user name: the config file's, then Redis' (a name may come twice). */
  *userNames(): Iterable<string> {
    yield* this.users.keys();
    yield* this.stored.keys();
  }

  /** A user as the API shows it (never a password or hash). */
  userView(name: string): { user: string; tenant: string; caller_id?: string; source: "config" | "api"; updated_at?: string } | undefined {
    const u = this.user(name);
    const source = this.userSource(name);
    if (u === undefined || source === undefined) return undefined;
    const st = source === "api" ? this.stored.get(name) : undefined;
    return { user: u.user, tenant: u.tenant, ...(u.caller_id !== undefined ? { caller_id: u.caller_id } : {}), source, ...(st !== undefined && st.updated_at !== "" ? { updated_at: st.updated_at } : {}) };
  }

  /**
   * Creates or replaces a user in Redis (the caller checked it is not a config user); seen by this
   * edge at once. `{ taken }` (nothing written) when another tenant's user has the name.
   */
  async putUser(u: { user: string; tenant: string; password: string; caller_id?: string | undefined }): Promise<{ replaced: boolean } | { taken: string }> {
    const r = await this.userStore!.put(u, this.o.now());
    this.storedVersion = undefined;
    if ("taken" in r) return r;
    this.stored.set(u.user, r.stored);
    return { replaced: r.replaced };
  }

  /** Deletes a user kept in Redis and its bindings; false when there was none. */
  async deleteUser(name: string): Promise<boolean> {
    const had = await this.userStore!.delete(name);
    this.stored.delete(name);
    this.storedVersion = undefined;
    if (had) await this.o.store.update(`sip:${name}@${this.o.config.domain}`, { removeAll: true });
    return had;
  }

  /** SIGHUP: new users and passwords (domain, realm and expiries need a restart). */
  reloadUsers(c: RegistrarSpec): void {
    this.users = new Map(c.users.map((u) => [u.user, u]));
    if (c.calls !== undefined) this.calls?.reload(c.calls);
  }

  /** Answers one REGISTER (never throws). */
  async onRegister(tx: ServerTransaction): Promise<void> {
    const src = tx.source;
    let outcome: RegisterOutcome = "error";
    try {
      const r = await this.registrar.handle(tx.request, { transport: src.transport, address: src.address, port: src.port, edgeUri: this.edgeUriOf(src) });
      outcome = r.outcome;
      if (r.status === 200 && src.connection !== null && r.bindings !== undefined) {
        // keep the phone's connection open while a binding over it lives
        let until = 0;
        for (const b of r.bindings) if (b.edge === this.o.edgeId && b.transport === src.transport && b.address === src.address && b.port === src.port) until = Math.max(until, b.expiresAt);
        if (until > 0) src.connection.socket.setTimeout(Math.max(1000, until - this.o.now() + FLOW_GRACE_S * 1000));
      }
      if (r.outcome === "not_found" && this.o.answerStrangers?.() !== true) tx.terminate();
      else tx.reply(r.status, r.reason, { headers: r.headers });
      if (r.outcome === "registered" || r.outcome === "unregistered") {
        this.o.logger.info({ user: r.user, tenant: r.tenant, source: src.address, port: src.port, transport: src.transport, contacts: r.bindings?.length ?? 0, outcome: r.outcome }, "sip registration");
      } else if (r.outcome === "auth_failed" || r.outcome === "locked_out") {
        this.metrics.authFailures.labels({ reason: r.outcome }).inc();
        // locked out: already said once (the failures that led there), counted from then on
        const line = { source: src.address, port: src.port, transport: src.transport, outcome: r.outcome };
        if (r.outcome === "auth_failed") this.o.logger.info(line, "sip registration refused");
        else this.o.logger.debug(line, "sip registration refused");
      }
    } catch (err) {
      this.o.logger.warn({ err, source: src.address }, "sip registration failed: location store error");
      tx.reply(500, "Server Internal Error (location store)", { headers: [["Retry-After", "5"]] });
    }
    this.metrics.registrations.labels({ outcome }).inc();
  }

  /** Where other edges reach this one for a phone that registered through `src`. */
  private edgeUriOf(src: Source): string | undefined {
    if (this.o.edgeUri !== undefined) return this.o.edgeUri;
    const l = src.listener;
    const h = l.advertisedHost;
    // an advertised name is left out: the other edges would have to resolve it per call
    if (isIP(h.startsWith("[") ? h.slice(1, -1) : h) === 0) return undefined;
    return "sip:" + l.sentBy + ";transport=" + l.transport;
  }

  /**
   * The flow of this edge that an INVITE from another edge asks to be sent over (its top Route is
   * this edge, carrying a flow token), undefined when it asks for none, or why it is refused: the
   * token must be signed with the dialog secret for this Call-ID and not expired, so nobody who
   * reaches this edge can send requests down a phone's connection.
   */
  relayFlow(req: SipMessage): { flow: Flow } | { refused: RelayRefusal } | undefined {
    const top = req.topRoute;
    if (top === undefined || top.indexOf("dgp=") < 0) return undefined;
    const u = parseNameAddr(top)?.parsedUri;
    if (u === null || u === undefined || !u.isSip) return { refused: "malformed" };
    if (this.o.stack()?.isLocalUri(u) !== true && (this.edgeHop === undefined || hopOfUri(u) !== this.edgeHop)) return undefined;
    const flow = u.param("dgf");
    const expText = u.param("dgx");
    const sig = u.param("dgp");
    const exp = typeof expText === "string" && /^\d{1,12}$/.test(expText) ? Number(expText) : NaN;
    if (typeof flow !== "string" || typeof sig !== "string" || !Number.isInteger(exp)) return { refused: "malformed" };
    const signer = this.o.signer?.();
    if (signer === undefined || !signer.verifyFlow(req.callId ?? "", flow, exp, sig)) return { refused: "bad_token" };
    if (exp * 1000 < this.o.now()) return { refused: "expired" };
    const f = parseFlowToken(flow);
    return f === null ? { refused: "malformed" } : { flow: f };
  }

  /** A user's live bindings (`didgate users show`, tests). */
  bindings(user: string): Promise<Binding[]> {
    return this.o.store.lookup(`sip:${user}@${this.o.config.domain}`);
  }

  /** `didgate users show`: a configured user and its live bindings, or undefined. */
  async show(name: string): Promise<UserReport | undefined> {
    const u = this.user(name);
    if (u === undefined) return undefined;
    const now = this.o.now();
    const bs = (await this.bindings(name)).sort((a, b) => b.q - a.q || b.registeredAt - a.registeredAt);
    return {
      user: u.user,
      tenant: u.tenant,
      aor: `sip:${u.user}@${this.o.config.domain}`,
      bindings: bs.map((b) => ({
        contact: b.contact,
        source: b.address.indexOf(":") >= 0 ? `[${b.address}]:${b.port}` : `${b.address}:${b.port}`,
        transport: b.transport,
        expires_in_s: Math.max(0, Math.round((b.expiresAt - now) / 1000)),
        expires_at: new Date(b.expiresAt).toISOString(),
        registered_at: new Date(b.registeredAt).toISOString(),
        edge: b.edge,
        q: b.q,
        ...(b.instance !== undefined ? { instance: b.instance } : {}),
        ...(b.regId !== undefined ? { reg_id: b.regId } : {}),
      })),
    };
  }

  /** The user named by a target URI "sip:USER@<our domain>", else undefined. */
  userOf(uri: string): string | undefined {
    if (!uri.startsWith("sip:") && !uri.startsWith("sips:")) return undefined;
    // most targets are not users: a look at the host before parsing
    const at = uri.indexOf("@");
    if (at < 0 || uri.slice(at + 1, at + 1 + this.domain.length).toLowerCase() !== this.domain) return undefined;
    const u = parseUri(uri);
    if (u === null || !u.isSip || u.hostname.toLowerCase() !== this.domain || u.port !== undefined) return undefined;
    const name = u.userUnescaped;
    return name !== undefined && name.length > 0 ? name : undefined;
  }

  /** Does any target name a registered user (the call must look up the location first)? */
  hasUsers(targets: readonly Target[]): boolean {
    for (const t of targets) if (t.uri.charCodeAt(0) === 115 /* s */ && this.userOf(t.uri) !== undefined) return true;
    return false;
  }

  /**
   * The targets with each user replaced by its contacts. Contacts of one q ring together, higher q
   * first; so the result rings in priority groups (simultaneous): in a sequential route every
   * other target keeps a group of its own, in a simultaneous one contacts join their target's group.
   */
  async expand(targets: readonly Target[], ring: "sequential" | "simultaneous", callId = ""): Promise<{ targets: Target[]; ring: "sequential" | "simultaneous" }> {
    const out: Target[] = [];
    let prio = 0;
    let lastPrio: number | undefined;
    for (const t of targets) {
      const user = this.userOf(t.uri);
      const seq = ring === "sequential";
      if (!seq && t.priority !== lastPrio) prio++;
      lastPrio = t.priority;
      if (user === undefined) {
        if (seq) prio++;
        out.push({ ...t, priority: prio });
        continue;
      }
      let bs: Binding[];
      try {
        bs = await this.bindings(user);
      } catch (err) {
        this.metrics.lookups.labels({ result: "error" }).inc();
        this.o.logger.warn({ err, user }, "sip call: location lookup failed");
        continue;
      }
      this.metrics.lookups.labels({ result: bs.length > 0 ? "found" : "none" }).inc();
      for (const g of qGroups(bs)) {
        if (seq) prio++;
        for (const b of g) {
          const leg = this.leg(t, b, user, prio, callId);
          if (leg !== undefined) out.push(leg);
        }
      }
    }
    return { targets: out, ring: "simultaneous" };
  }

  private leg(t: Target, b: Binding, user: string, priority: number, callId: string): ContactLeg | undefined {
    const base = { uri: b.contact, priority, weight: t.weight, user, ...(t.timeoutS !== undefined ? { timeoutS: t.timeoutS } : {}) };
    if (b.edge !== this.o.edgeId && b.edgeUri !== undefined) {
      // the edge that holds the phone's connection or NAT binding sends it the call
      const via = this.throughEdge(b, callId);
      if (via !== undefined) return { ...base, ...via };
    }
    if (b.transport !== "udp") {
      // over the registered connection while it is open here; else to the Contact (a phone that
      // listens, or the edge that holds the flow: docs/registrar.md)
      const open = b.edge === this.o.edgeId ? this.o.stack()?.transport.getConnection(b.transport, b.address, b.port) : undefined;
      if (open === undefined || open.closed) {
        // only to a phone listening where it registered from: a Contact naming another host (a
        // carrier, anyone) would let a phone send calls there past the outbound rules. The host
        // the call would go to is the Contact's maddr when it has one (RFC 3261 19.1.1)
        const u = parseUri(b.contact);
        const maddr = u?.param("maddr");
        const host = u === null ? "" : (typeof maddr === "string" ? maddr : u.hostname).replace(/^\[|\]$/g, "");
        if (u === null || !u.isSip || isIP(host) === 0 || canonicalIp(host) !== canonicalIp(b.address)) {
          this.metrics.lookups.labels({ result: "flow_gone" }).inc();
          return undefined;
        }
        return base;
      }
    }
    return { ...base, sendTo: { transport: b.transport, address: b.address, port: b.port, key: targetKey(b.transport, b.address, b.port) } };
  }

  /**
   * The leg to a binding of another edge: sent to that edge with a Route naming it, the phone's
   * flow there and a token over this call's Call-ID (RFC 3327 Path and RFC 5626 flow tokens, as
   * Kamailio's outbound module does), so that edge sends it over the phone's flow.
   */
  private throughEdge(b: Binding, callId: string): Pick<ContactLeg, "sendTo" | "add" | "throughEdge"> | undefined {
    const signer = this.o.signer?.();
    const u = parseUri(b.edgeUri!);
    if (signer === undefined || u === null || !u.isSip || isIP(u.hostname) === 0) return undefined;
    const tp = u.param("transport");
    const transport: TransportKind = tp === "tcp" || tp === "tls" ? tp : "udp";
    const port = u.port ?? (transport === "tls" ? 5061 : 5060);
    const flow = flowToken(b.transport, b.address, b.port);
    const exp = Math.floor(this.o.now() / 1000) + FLOW_TOKEN_S;
    const route = "<" + b.edgeUri + ";lr;dgf=" + flow + ";dgx=" + exp + ";dgp=" + signer.signFlow(callId, flow, exp) + ">";
    return { sendTo: { transport, address: u.hostname, port, key: targetKey(transport, u.hostname, port) }, add: [["Route", route]], throughEdge: true };
  }
}

/** One spelling per address ("2001:DB8:0::1" and "2001:db8::1" are one IPv6 address). */
function canonicalIp(a: string): string {
  if (isIP(a) !== 6) return a;
  try {
    return new URL("http://[" + a + "]/").hostname;
  } catch {
    return a.toLowerCase();
  }
}
