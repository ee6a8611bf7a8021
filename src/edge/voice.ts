/**
 * VoiceEdge: the SIP edge policy (issue #5). Carrier trunk INVITE in, routed call out.
 *
 *   source address → trunk (exact IPs, then CIDRs, most specific first; never from headers unless
 *   the packet comes from a trunk marked front_proxy, which may name the real source in
 *   X-Forwarded-For) → Max-Forwards → trunk CPS bucket / global in-flight cap → DID (Request-URI
 *   or To user, normalised with the trunk's plan) and caller (P-Asserted-Identity, else From) →
 *   routing decision → stateful proxy to the targets (src/edge/proxy.ts).
 *
 * Packets from addresses that are not trunks are dropped silently (or 403 with
 * sip.unknown_source: reject), after a bounded per-source flood guard; the only requests they may
 * send are in-dialog requests carrying our signed Record-Route back towards the caller (BYE from
 * the callee). In-dialog requests go only where the dialog's token allows (src/sip/rr.ts):
 * anything else gets 403 (ACK: dropped) and counts in didgate_sip_forged_requests_total.
 *
 * Answers: 484 bad DID, 404 no route, sip.gone_status (410) quarantine/released, 503 + Retry-After
 * over CPS or in-flight cap or draining, 483 Max-Forwards 0, 482 loop, 200 to OPTIONS from a trunk.
 *
 * Customers (sip.customers, by source and/or digest) place calls the other way: digest (407/403),
 * caller-ID ownership (403), then on-net to a number's route or off-net to the carriers of the
 * outbound table (src/edge/originate.ts); a carrier over its CPS or max_calls is passed over,
 * every carrier busy is 503 + Retry-After. Route targets "tel:+E164" forward through the same
 * table (Diversion / History-Info), loops end with 482.
 *
 * A call to a pool number goes through the caller's masking session to the other party,
 * presenting the proxy number (src/edge/masking.ts, docs/masking.md); a caller without a session
 * gets the number's own route, else 404 "no masking session for this caller".
 */
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { Decider } from "../routing/decide.js";
import { normalizeNumber } from "../routing/number.js";
import { DEFAULT_FAILOVER_ON, DEFAULT_RING_TIMEOUT_S, type Route } from "../routing/route.js";
import type { OutboundEntry } from "../routing/outbound.js";
import { RouteStore } from "../routing/table.js";
import {
  rewriteRecordRoute,
  routeInDialog,
  targetKey,
  uriTransport,
  TargetResolver,
  type DialogRoute,
  type DialogSigner,
  type Flow,
  type ForgedReason,
  type ResolvedTarget,
  type ServerTransaction,
  type SipMessage,
  type SipStackHandler,
  type Source,
  type TransportKind,
} from "../sip/index.js";
import { codeLabel } from "../sip/metrics.js";
import { AddressMatcher } from "../util/net.js";
import { TargetHealth } from "./health.js";
import { HealthShare } from "./health-share.js";
import type { RedisConnector } from "../redis/client.js";
import { FloodGuard } from "./limits.js";
import { RefusalLog } from "./refusals.js";
import { DialogForward, ProxyCall, type CallInfo, type ProxyHost } from "./proxy.js";
import { TrunkTable, type Trunk } from "./trunks.js";
import { randomBytes } from "node:crypto";
import { DigestAuth, nonceBinding } from "../sip/digest.js";
import { MATCH_DEFAULT } from "../routing/table.js";
import type { Target } from "../routing/route.js";
import { CallCounter } from "./calls.js";
import { CallShare } from "./calls-share.js";
import { CarrierTable } from "./carriers.js";
import { CustomerTable, type Customer } from "./customers.js";
import { divertedNumbers, Originator, type Leg } from "./originate.js";
import { failClass, OutboundMetrics } from "./outbound-metrics.js";
import { VoiceMetrics, type CallOutcome } from "./voice-metrics.js";
import type { InboundVerdict, StirPolicy } from "./stir.js";
import type { CallRecords } from "./cdr.js";
import type { EdgeStack, EdgeStackFactory } from "./stack.js";
import type { ActivityRecorder } from "../records/activity.js";
import type { SessionStore } from "../masking/sessions.js";
import type { MaskingMetrics } from "../masking/metrics.js";
import { errMessage } from "../util/errors.js";
import { unredacted } from "../ops/logger.js";
import { cutMaskedRecordRoute, decideMasked, maskedDialogAllows, maskRequest, MASKED_DIALOG_METHODS, maskStrayResponse, maskTowardsCaller, type MaskResult } from "./masking.js";
import { buildRegistrar, type ContactLeg, type DigestSettings, type RegistrarEdge } from "./registrar.js";
import type { VoiceSettings } from "./voice-options.js";
import { ALL_USERS_KEY } from "./registrar-calls.js";

export interface VoiceEdgeOptions {
  /**
   * Builds the SIP stack with this edge as its handler (start() calls it once). app.ts builds it
   * from config.sip: listeners, TLS files, timers, transport limits, capture.
   */
  createStack: EdgeStackFactory;
  /** Signs and checks our Record-Route values (its secrets from the config or the state directory). */
  signer: DialogSigner;
  /** STIR/SHAKEN verification and signing (stir configured). */
  stir?: StirPolicy;
  /** Call detail records and number activity. */
  cdr?: CallRecords;
  activity?: ActivityRecorder;
  /** What the edge reads of the config (src/config/wire.ts maps it). */
  settings: VoiceSettings;
  store: RouteStore<Route>;
  /** The outbound table (carriers by destination prefix); empty when not given. */
  outbound?: RouteStore<OutboundEntry>;
  decider: Decider;
  logger: Logger;
  registry: Registry;
  /** Epoch ms (schedules, rate limits). */
  now?: () => number;
  /** routes.redis's endpoint: target health is shared with the other edges through it. */
  redis?: RedisConnector;
  /** Masking sessions (masking.pools configured): calls to a pool number go through them. */
  masking?: { store: SessionStore; metrics?: MaskingMetrics };
  /**
   * A SIP worker (sip.workers > 1): a BYE for which this worker holds neither a max_calls slot nor
   * a call record goes to the other workers (the call was set up on another one, say over TCP).
   */
  endElsewhere?: (callId: string, byCallee: boolean) => void;
}

/** During a drain, how long SIP must be quiet before the edge stops (after INVITEs finished). */
export const DRAIN_QUIET_MS = 1500;
/** How often a drain looks again. */
const DRAIN_POLL_MS = 50;

const KNOWN_METHODS = new Set(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO", "PRACK", "REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE", "REGISTER", "PUBLISH"]);
const ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK, REFER, NOTIFY";
const UNKNOWN = "unknown";


function methodLabel(m: string): string {
  return KNOWN_METHODS.has(m) ? m : "other";
}

export class VoiceEdge implements SipStackHandler, ProxyHost {
  listeners: { transport: string; address: string; port: number }[] = [];
  stack!: EdgeStack;
  readonly metrics: VoiceMetrics;
  readonly health: TargetHealth;
  /** Health shared with other edges through Redis (routes.redis configured). */
  healthShare: HealthShare | undefined;
  readonly resolver: TargetResolver;
  readonly logger: Logger;
  private settings: VoiceSettings;
  private trunks: TrunkTable;
  private flood: FloodGuard;
  /** First refusal per unknown source: warn once (bounded, rate-limited). */
  private readonly refusals: RefusalLog;
  /** sip.pingers: sources whose OPTIONS get 200. */
  private pingers = new AddressMatcher<true>();
  /** Source address -> trunk, for addresses that matched a trunk (cleared on reload). */
  private readonly trunkCache = new Map<string, Trunk>();
  private readonly now: () => number;
  private draining = false;
  private readonly calls = new Map<ServerTransaction, ProxyCall>();
  private readonly dialogInvites = new Map<ServerTransaction, DialogForward>();
  /** INVITEs waiting for a STIR certificate fetch (bounded by max_inflight_invites via calls.size). */
  private readonly verifying = new Map<ServerTransaction, { cancelled: boolean }>();
  private readonly dialogDone = (f: DialogForward): void => this.forwardDone(f);
  private stripNames: string[] = [];
  private trunkHeader: string | undefined;
  private keyHeader: string | undefined;
  recordRoute: boolean;
  /** Signs and checks our Record-Route values. */
  readonly signer: DialogSigner;
  private customers: CustomerTable;
  private carriers: CarrierTable;
  /** Source address -> customer, for addresses that matched a customer (cleared on reload). */
  private readonly customerCache = new Map<string, Customer>();
  private digest: DigestAuth;
  readonly callCounter: CallCounter;
  readonly outboundMetrics: OutboundMetrics;
  private readonly originator: Originator;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** max_calls across edges (routes.redis configured). */
  callShare: CallShare | undefined;
  private readonly unknownCarriers = new Set<string>();
  /** REGISTER and calls to registered users (sip.registrar configured). */
  readonly registrar: RegistrarEdge | undefined;

  constructor(private readonly opts: VoiceEdgeOptions) {
    this.settings = opts.settings;
    this.signer = opts.signer;
    this.logger = opts.logger;
    this.now = opts.now ?? Date.now;
    this.metrics = new VoiceMetrics(opts.registry);
    this.trunks = new TrunkTable(this.settings.trunks, this.now);
    this.customers = new CustomerTable(this.settings.customers, this.now);
    this.carriers = new CarrierTable(this.settings.trunks, this.now);
    this.digest = this.makeDigest(this.settings.auth);
    this.callCounter = new CallCounter(this.now);
    this.outboundMetrics = new OutboundMetrics(opts.registry, () => this.callCounter);
    if (this.settings.redisPrefix !== undefined && opts.redis) {
      this.callShare = new CallShare({
        redis: opts.redis,
        prefix: this.settings.redisPrefix,
        edgeId: this.settings.edgeId,
        logger: this.logger,
        counter: this.callCounter,
        keys: () => this.limitedKeys(),
        ttlMs: () => this.settings.max_call_s * 1000 + 60_000,
        now: this.now,
      });
      this.callCounter.share = this.callShare;
    }
    const outbound = opts.outbound ?? new RouteStore<OutboundEntry>();
    this.originator = new Originator({
      store: opts.store,
      outbound,
      decider: opts.decider,
      carriers: () => this.carriers,
      host: () => this.stack?.listeners[0]?.sentBy ?? "didgate.invalid",
      onUnknownCarrier: (n) => {
        if (this.unknownCarriers.size < 1000 && !this.unknownCarriers.has(n)) {
          this.unknownCarriers.add(n);
          this.logger.warn({ carrier: n }, "outbound table names a carrier that is not configured (sip.trunks[].termination); skipped");
        }
      },
    });
    const fl = this.settings.flood;
    this.flood = new FloodGuard(fl.per_source_pps, fl.max_sources, this.now);
    this.refusals = new RefusalLog({ now: this.now, maxSources: fl.max_sources });
    this.recordRoute = this.settings.record_route;
    this.applyHeaders(this.settings);
    this.applyPingers(this.settings);
    this.health = new TargetHealth({
      config: this.settings.health,
      logger: this.logger,
      now: this.now,
      onDownCount: (n) => this.metrics.targetsDown.set(n),
      onChange: (key, down, ttl) => this.healthShare?.publish(key, down, ttl),
    });
    const prefix = this.settings.redisPrefix;
    if (prefix !== undefined && this.opts.redis) {
      this.healthShare = new HealthShare({
        redis: this.opts.redis,
        prefix,
        edgeId: this.settings.edgeId,
        logger: this.logger,
        onRemote: (key, down, ttl) => this.health.remote(key, down, ttl),
      });
    }
    this.resolver = new TargetResolver({ canSend: (t, fam) => this.canSend(t, fam), ...(this.settings.dns_servers !== undefined ? { servers: this.settings.dns_servers } : {}) });
    this.registrar = buildRegistrar(this.settings, { ...opts, now: this.now, stack: () => this.stack, answerStrangers: () => this.settings.unknown_source === "reject", signer: () => this.signer });
  }

  private applyHeaders(c: VoiceSettings): void {
    const h = c.headers;
    this.trunkHeader = h.trunk;
    this.keyHeader = h.route_key;
    const names: string[] = [];
    if (h.trunk) names.push(h.trunk);
    if (h.route_key) names.push(h.route_key);
    for (const s of h.strip) names.push(s);
    this.stripNames = names;
  }

  private applyPingers(c: VoiceSettings): void {
    const m = new AddressMatcher<true>();
    for (const p of c.pingers) m.add(p, true);
    this.pingers = m;
  }

  private canSend(t: TransportKind, fam: 4 | 6): boolean {
    for (const l of this.stack?.listeners ?? []) if (l.family === fam && (t === "udp" ? l.transport === "udp" : true)) return true;
    return false;
  }

  /** Creates the SIP stack (createStack) when sip.listen has listeners. */
  async start(): Promise<void> {
    if (this.settings.listen.length === 0) return;
    this.stack = await this.opts.createStack(this);
    // calls whose BYE was lost give their max_calls slot back at their deadline
    this.sweepTimer = setInterval(() => this.callCounter.sweep(), 10_000);
    this.sweepTimer.unref();
    await this.callShare?.start();
    this.listeners = this.stack.listeners.map((l) => ({ transport: l.transport, address: l.address, port: l.port }));
    this.health.start(this.stack);
    await this.healthShare?.start();
    await this.registrar?.start();
  }

  /**
   * SIGHUP: apply trunks, customers, limits, headers, pingers, health and registrar users. What
   * needs a restart (listeners, the stack's timers, the registrar's other settings) is reported by
   * reloadVoice (src/config/wire.ts); the rest of the new settings is taken as it is.
   */
  reload(b: VoiceSettings): void {
    const a = this.settings;
    const same = (x: unknown, y: unknown): boolean => JSON.stringify(x) === JSON.stringify(y);
    this.trunks = new TrunkTable(b.trunks, this.now, this.trunks);
    this.trunkCache.clear();
    this.customers = new CustomerTable(b.customers, this.now, this.customers);
    this.customerCache.clear();
    this.carriers = new CarrierTable(b.trunks, this.now, this.carriers);
    this.unknownCarriers.clear();
    if (!same(a.auth, b.auth)) this.digest = this.makeDigest(b.auth);
    if (!same(a.flood, b.flood)) this.flood = new FloodGuard(b.flood.per_source_pps, b.flood.max_sources, this.now);
    this.recordRoute = b.record_route;
    this.applyHeaders(b);
    this.applyPingers(b);
    this.health.configure(b.health);
    if (b.registrar !== undefined) this.registrar?.reloadUsers(b.registrar);
    this.settings = b;
  }

  /**
   * New INVITEs get 503 from now on. Resolves when the INVITEs in flight have their final
   * responses and then SIP has been quiet for a moment (in-dialog requests, the ACK and BYE of calls
   * just set up, have no dialog state to wait on), or at `deadlineMs` (epoch ms of `now`).
   */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    const stack = this.stack as EdgeStack | undefined;
    if (stack === undefined) return;
    const pause = () => new Promise<void>((resolve) => stack.timers.set(DRAIN_POLL_MS, { onTimer: () => resolve() }, 0));
    while (this.inFlight() > 0 && this.now() < deadlineMs) await pause();
    while (this.now() - this.lastRequestAt < DRAIN_QUIET_MS && this.now() < deadlineMs) await pause();
  }

  /** Wall time of the last request received (drain lingers while in-dialog requests still come). */
  lastRequestAt = 0;

  /**
   * Initial INVITEs (and in-dialog INVITEs) still waiting for their final response, those waiting
   * for a STIR certificate or a masking session lookup included (they have had 100 Trying: they go
   * on as calls once that answers).
   */
  inFlight(): number {
    return this.calls.size + this.dialogInvites.size + this.verifying.size;
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.callShare?.close();
    this.health.stop();
    await this.healthShare?.close();
    if (this.stack) await this.stack.close();
    await this.registrar?.close();
    this.calls.clear();
    this.dialogInvites.clear();
    // a certificate fetch or session lookup that answers after this starts nothing
    for (const p of this.verifying.values()) p.cancelled = true;
    this.verifying.clear();
  }

  mono(): number {
    return performance.now();
  }

  /** @internal ProxyHost */
  isOwnTarget(r: ResolvedTarget): boolean {
    return this.stack.isOwnAddress(r.transport, r.address, r.port);
  }

  // ------------------------------------------------------------------ SipStackHandler

  /** Trunk of a request: by packet source; through X-Forwarded-For only from a front proxy. */
  private trunkOf(req: SipMessage, src: Source): Trunk | undefined {
    let t = this.trunkCache.get(src.address);
    if (t === undefined) {
      t = this.trunks.match(src.address);
      // only addresses that are trunks are cached (a bounded, small set): scanners cannot grow it
      if (t !== undefined) {
        if (this.trunkCache.size >= 4096) this.trunkCache.clear();
        this.trunkCache.set(src.address, t);
      }
    }
    if (t === undefined || !t.frontProxy) return t;
    const xff = req.get("x-forwarded-for");
    if (xff === undefined) return t;
    const c = xff.indexOf(",");
    const real = (c < 0 ? xff : xff.slice(0, c)).trim();
    return this.trunks.match(real);
  }

  /** Connections from trunks and customers (by source) are trusted: untrusted ones share a smaller cap (sip.tcp). */
  isTrusted(address: string): boolean {
    return this.trunkCache.has(address) || this.trunks.match(address) !== undefined || this.customerOf(address) !== undefined;
  }

  onConnectionRefused(transport: TransportKind, address: string, port: number, reason: string): void {
    this.refused(transport, address, port, "connection refused (" + reason + ")");
  }

  /**
   * Count a refusal of a source that is not a trunk, and warn about the first one of each address
   * (bounded and rate-limited), naming the nearest trunk: often a carrier sending from an address
   * missing in its sources.
   */
  private refused(transport: TransportKind, address: string, port: number, what: string): void {
    this.metrics.refusedOf(transport, "").inc();
    if (!this.refusals.first(address)) return;
    const near = this.trunks.nearest(address);
    this.logger.warn(
      { source: address, port, transport, refused: what, nearest_trunk: near?.trunk, common_prefix_bits: near?.commonBits, suppressed: this.refusals.suppressed || undefined },
      "sip: refused a source that is not a trunk (first time for this address; later ones are counted in didgate_sip_refused_total)",
    );
    this.refusals.suppressed = 0;
  }

  /** The stack answers a malformed message with 400 only for trunks (or rate-limited with `reject`). */
  mayAnswer(src: Source): boolean {
    if (this.isTrusted(src.address)) return true;
    return this.settings.unknown_source === "reject" && this.flood.allow(src.address);
  }

  /**
   * Workers: whether a CANCEL from `src` that matches no INVITE on this worker may be passed to the
   * next (SipStackOptions.unmatchedCancel): from a trunk or a customer, yes; from another source
   * only within its flood guard, which the hand-off would otherwise come before.
   */
  mayPassCancel(src: Source): boolean {
    return this.isTrusted(src.address) || this.flood.allow(src.address);
  }

  onRequest(tx: ServerTransaction): void {
    this.lastRequestAt = this.now();
    const req = tx.request;
    const src = tx.source;
    const method = req.method;
    const trunk = this.trunkOf(req, src);
    const cust = trunk === undefined ? this.customerOf(src.address) : undefined;
    const tname = trunk !== undefined ? trunk.name : cust !== undefined ? cust.name : UNKNOWN;
    // another edge's call for a phone whose flow this edge holds: authorised by its signed token,
    // not by its source (edges are not trunks of each other)
    if (method === "INVITE" && this.registrar !== undefined && req.toTag === undefined) {
      const relay = this.registrar.relayFlow(req);
      if (relay !== undefined && "flow" in relay) return this.relayInvite(tx, relay.flow);
      if (relay !== undefined) {
        this.registrar.metrics.relays.labels({ result: "refused" }).inc();
        if (!this.flood.allow(src.address)) {
          this.refused(src.transport, src.address, src.port, method + " (flood guard)");
          tx.terminate();
          return;
        }
        this.logger.info({ source: src.address, port: src.port, transport: src.transport, reason: relay.refused, call_id: req.callId }, "sip call from another edge refused (flow token)");
        return this.final(tx, RELAY_LABEL, 403, "Forbidden (flow token)");
      }
    }
    if (trunk === undefined && cust === undefined && !this.flood.allow(src.address)) {
      this.refused(src.transport, src.address, src.port, method + " (flood guard)");
      tx.terminate();
      return;
    }
    this.metrics.request(tname, methodLabel(method)).inc();

    if (method === "CANCEL") {
      const inv = tx.cancels;
      if (inv === null) {
        if (trunk === undefined) return this.reject(tx, "cancel without transaction");
        tx.reply(481);
        return;
      }
      tx.reply(200);
      const pending = this.verifying.get(inv);
      if (pending !== undefined) {
        pending.cancelled = true;
        this.verifying.delete(inv);
        inv.reply(487);
        return;
      }
      const call = this.calls.get(inv);
      if (call !== undefined) call.cancel();
      else this.dialogInvites.get(inv)?.cancel();
      return;
    }

    if (method === "REGISTER" && this.registrar !== undefined) {
      void this.registrar.onRegister(tx);
      return;
    }
    const inDialog = req.toTag !== undefined;
    if (inDialog) {
      this.inDialog(tx, trunk, cust);
      return;
    }
    // a phone of a registered user calling out (src/edge/registrar-calls.ts)
    if (method === "INVITE" && trunk === undefined && cust === undefined && this.registrar?.calls?.isUserCall(req) === true) return this.customerInvite(tx, undefined, true);
    if (trunk === undefined && (cust !== undefined || this.customers.anySource)) {
      // a customer (by source), or maybe one that authenticates by digest from anywhere
      if (method === "INVITE") return this.customerInvite(tx, cust);
      if (method === "OPTIONS" && cust !== undefined) return this.final(tx, tname, 200, undefined, [["Allow", ALLOW], ["Accept", "application/sdp"]]);
      if (cust !== undefined) {
        if (method === "BYE" || method === "UPDATE" || method === "INFO" || method === "PRACK") return this.final(tx, tname, 481);
        return this.final(tx, tname, 405, undefined, [["Allow", ALLOW]]);
      }
    }
    if (trunk === undefined) {
      // keep-alive pings of our own targets (a PBX that pings its proxy) and of configured health
      // checkers: a 200, or they mark didgate down
      if (method === "OPTIONS" && (this.health.knowsAddress(src.address) || this.pingers.match(src.address) !== undefined)) {
        this.final(tx, UNKNOWN, 200, undefined, [["Allow", ALLOW], ["Accept", "application/sdp"]]);
        return;
      }
      if (method === "INVITE") this.callResult(tx, UNKNOWN, "rejected_acl", 0, undefined, undefined, null, null);
      return this.reject(tx, "unknown source");
    }
    if (method === "INVITE") {
      this.invite(tx, trunk);
      return;
    }
    if (method === "OPTIONS") {
      this.final(tx, tname, 200, undefined, [["Allow", ALLOW], ["Accept", "application/sdp"]]);
      return;
    }
    // requests outside a dialog other than INVITE/OPTIONS: a dialog that does not exist, or not ours
    if (method === "BYE" || method === "UPDATE" || method === "INFO" || method === "PRACK") this.final(tx, tname, 481);
    else this.final(tx, tname, 405, undefined, [["Allow", ALLOW]]);
  }

  /** Unknown source: drop (no answer, no transaction kept) or 403 (after the flood guard). */
  private reject(tx: ServerTransaction, why: string): void {
    this.refused(tx.source.transport, tx.source.address, tx.source.port, tx.method + " (" + why + ")");
    if (this.settings.unknown_source === "reject") {
      tx.reply(403);
      this.metrics.final(UNKNOWN, "403").inc();
    } else tx.terminate();
    this.logger.debug({ source: tx.source.address, port: tx.source.port, method: tx.method, reason: why }, "sip request from unknown source");
  }

  private final(tx: ServerTransaction, trunk: string, status: number, reason?: string, headers?: Array<[string, string]>): void {
    tx.reply(status, reason, headers ? { headers } : undefined);
    this.metrics.final(trunk, codeLabel(status)).inc();
  }

  private stripInternal(m: SipMessage): void {
    const n = this.stripNames;
    for (let i = 0; i < n.length; i++) m.remove(n[i]!);
  }

  // ------------------------------------------------------------------ initial INVITE

  private invite(tx: ServerTransaction, trunk: Trunk): void {
    const req = tx.request;
    const t0 = this.mono();
    const tname = trunk.name;
    if (this.draining) return this.refuse(tx, tname, 503, "draining", t0, [["Retry-After", "5"]]);
    const mf = req.maxForwards;
    if (mf === 0) return this.refuse(tx, tname, 483, "too_many_hops", t0);
    if (mf === -1) return this.refuse(tx, tname, 400, "invalid_number", t0, undefined, "Bad Request (Max-Forwards)");
    if (this.stack.isLooped(req)) {
      this.logger.warn({ trunk: tname, call_id: req.callId, ruri: req.requestUri }, "sip INVITE came back to didgate (loop)");
      return this.refuse(tx, tname, 482, "loop", t0);
    }
    const wait = trunk.cps.take();
    if (wait > 0) return this.refuse(tx, tname, 503, "rate_limited", t0, [["Retry-After", String(wait)]]);
    // INVITEs waiting for a session lookup or a STIR certificate count as in flight too
    if (this.calls.size + this.verifying.size >= this.settings.max_inflight_invites) return this.refuse(tx, tname, 503, "rate_limited", t0, [["Retry-After", "1"]]);

    const didIn = trunk.didFrom === "ruri" ? req.requestUri : req.get("to") ?? "";
    const did = normalizeNumber(didIn, trunk.plan);
    if (!did.ok) return this.refuse(tx, tname, 484, "invalid_number", t0);
    const callerIn = req.get("p-asserted-identity") ?? req.get("from");
    let caller: string | undefined;
    if (callerIn !== undefined) {
      const c = normalizeNumber(callerIn, trunk.plan);
      if (c.ok) caller = c.e164;
    }
    if (this.opts.masking?.store.isPoolNumber(did.e164) === true) return this.maskedInvite(tx, trunk.name, did.e164, caller, t0, () => this.routeInvite(tx, trunk, did.e164, caller, t0));
    this.routeInvite(tx, trunk, did.e164, caller, t0);
  }

  /**
   * Another edge's INVITE for a phone registered here (docs/registrar.md, "Several edges"), its
   * flow token checked: sent over the phone's flow as it is (the other edge routed it and keeps
   * its record), Record-Routed so the dialog's requests pass here too. A TCP/TLS connection that
   * is gone answers 430 Flow Failed (RFC 5626): the other edge moves on to its next target.
   */
  private relayInvite(tx: ServerTransaction, flow: Flow): void {
    const req = tx.request;
    const relays = this.registrar!.metrics.relays;
    if (this.draining) return this.relayRefused(tx, 503, "draining", [["Retry-After", "5"]]);
    const mf = req.maxForwards;
    if (mf === 0) return this.relayRefused(tx, 483, "too_many_hops");
    if (mf === -1) return this.relayRefused(tx, 400, "invalid_number", undefined, "Bad Request (Max-Forwards)");
    if (this.stack.isLooped(req)) return this.relayRefused(tx, 482, "loop");
    if (this.calls.size + this.verifying.size >= this.settings.max_inflight_invites) return this.relayRefused(tx, 503, "rate_limited", [["Retry-After", "1"]]);
    if (flow.transport !== "udp") {
      const c = this.stack.transport.getConnection(flow.transport, flow.address, flow.port);
      if (c === undefined || c.closed) {
        relays.labels({ result: "flow_failed" }).inc();
        return this.relayRefused(tx, 430, "failed");
      }
    }
    relays.labels({ result: "relayed" }).inc();
    const leg: ContactLeg = { uri: req.requestUri, priority: 1, weight: 1, user: "", sendTo: { ...flow, key: targetKey(flow.transport, flow.address, flow.port) } };
    const info: CallInfo = {
      trunk: RELAY_LABEL,
      did: "",
      caller: undefined,
      routeKey: null,
      targets: [leg],
      failoverOn: [],
      // the edge that routed the call times its ringing and cancels
      ringMs: RELAY_RING_MS,
      inviteMs: this.settings.invite_timeout_s * 1000,
      startedAt: this.mono(),
      relay: true,
    };
    const base = req.clone();
    base.decrementMaxForwards();
    base.popRoute();
    tx.reply(100);
    this.startCall(tx, base, info);
  }

  /** A relayed call refused here: counted and answered; the edge that routed it keeps the record. */
  private relayRefused(tx: ServerTransaction, status: number, outcome: CallOutcome, headers?: Array<[string, string]>, reason?: string): void {
    this.final(tx, RELAY_LABEL, status, reason, headers);
    this.metrics.call(RELAY_LABEL, outcome).inc();
  }

  /** An inbound INVITE to a DID by its route (after the checks of invite()). */
  private routeInvite(tx: ServerTransaction, trunk: Trunk, didE164: string, caller: string | undefined, t0: number): void {
    const req = tx.request;
    const tname = trunk.name;
    const did = { e164: didE164 };
    const d = this.opts.decider.decideVoice(this.opts.store.current, did.e164, caller, this.now());
    if (d.outcome !== "routed") {
      if (d.outcome === "gone") return this.refuse(tx, tname, this.settings.gone_status, "gone", t0, undefined, undefined, did.e164, caller, d.key);
      return this.refuse(tx, tname, 404, "not_found", t0, undefined, d.outcome === "no_targets" ? "Not Found (no voice targets)" : undefined, did.e164, caller, d.key);
    }
    const voice = d.route?.voice;
    let targets: readonly Target[] = d.targets;
    let outbound = false;
    if (voice !== undefined && hasForward(targets)) {
      // forwarding to phone numbers: on-net numbers followed, others through the outbound table
      const x = this.originator.expand(targets, did.e164, caller, voice.forwardCallerId, this.now(), divertedNumbers(req.getAll("diversion"), req.getAll("history-info")));
      if (x.legs.length === 0) {
        if (x.loop) return this.refuse(tx, tname, 482, "loop", t0, undefined, "Loop Detected (forwarding)", did.e164, caller, d.key);
        return this.refuse(tx, tname, 404, "no_route", t0, undefined, "Not Found (no outbound route)", did.e164, caller, d.key);
      }
      targets = this.opts.stir?.signing ? this.opts.stir.signLegs(x.legs, "C", caller, req.getAll("identity").length > 0) : x.legs;
      outbound = x.legs.some((l) => l.carrier !== undefined);
    }
    const info: CallInfo = {
      trunk: tname,
      did: did.e164,
      caller,
      routeKey: d.key,
      targets,
      outbound,
      ring: voice?.ring ?? "sequential",
      failoverOn: voice?.failoverOn ?? DEFAULT_FAILOVER_ON,
      ringMs: (voice?.ringTimeoutS ?? DEFAULT_RING_TIMEOUT_S) * 1000,
      inviteMs: (voice?.inviteTimeoutS ?? this.settings.invite_timeout_s) * 1000,
      startedAt: t0,
    };
    const base = req.clone();
    base.decrementMaxForwards();
    base.remove("route");
    this.stripInternal(base);
    if (this.trunkHeader) base.append(this.trunkHeader, tname);
    if (this.keyHeader && d.key !== null) base.append(this.keyHeader, d.key);
    const stir = this.opts.stir;
    if (stir !== undefined && stir.verifying) {
      // STIR/SHAKEN (src/edge/stir.ts): verstat on the identity the target sees, or a refusal
      const v = stir.verifyInbound(tname, base, caller, did.e164, voice?.stirOnFail ?? "mark");
      if (v instanceof Promise) {
        // a certificate fetch (bounded by stir.verify.budget_ms): the carrier hears 100 meanwhile
        tx.reply(100);
        const pending = { cancelled: false };
        this.verifying.set(tx, pending);
        void v.then((r) => {
          this.verifying.delete(tx);
          if (pending.cancelled) return;
          this.afterVerify(tx, base, info, r);
        });
        return;
      }
      if (v !== null) return this.afterVerify(tx, base, info, v);
    }
    tx.reply(100);
    this.startCall(tx, base, info);
  }

  /**
   * An INVITE to a pool number (docs/masking.md): the caller's session sends it to the other
   * party presenting the proxy number; a caller without a session gets the number's own route,
   * or 404 "no masking session for this caller". The session lookup is one Redis GET: the carrier
   * hears 100 meanwhile, and a CANCEL then ends it with 487. From a trunk or a customer (`tname`
   * its name): `ownRoute` goes on as an unmasked call of that source would; a customer's call
   * holds one of its max_calls slots, freed here when the call does not start.
   */
  private maskedInvite(tx: ServerTransaction, tname: string, did: string, caller: string | undefined, t0: number, ownRoute: () => void, customer?: { name: string; callId: string }): void {
    const m = this.opts.masking!;
    tx.reply(100);
    const pending = { cancelled: false };
    this.verifying.set(tx, pending);
    const count = (result: MaskResult): void => m.metrics?.routed.inc({ kind: "call", result });
    const release = (): void => {
      if (customer !== undefined) this.callCounter.release("c:" + customer.name, customer.callId);
    };
    void decideMasked(m.store, this.originator, did, caller, m.store.tenantOf(did)).then((x) => {
      this.verifying.delete(tx);
      if (pending.cancelled) return release();
      count(x.result);
      if (x.result !== "routed" && x.result !== "own_route") release();
      switch (x.result) {
        case "own_route":
          return ownRoute();
        case "no_session":
          return this.refuse(tx, tname, 404, "not_found", t0, undefined, "Not Found (no masking session for this caller)", did, caller);
        case "loop":
          return this.refuse(tx, tname, 482, "loop", t0, undefined, "Loop Detected (a masking pool number calling a pool number)", did, caller);
        case "no_outbound":
          return this.refuse(tx, tname, 404, "no_route", t0, undefined, "Not Found (no outbound route)", did, caller);
        case "store_error":
          this.logger.warn({ trunk: tname, did, err: x.error }, "masking session store did not answer; call refused with 503");
          return this.refuse(tx, tname, 503, "failed", t0, [["Retry-After", "1"]], "Service Unavailable (masking sessions)", did, caller);
      }
      const info: CallInfo = {
        trunk: tname,
        did,
        caller,
        routeKey: null,
        targets: x.legs,
        outbound: true,
        ring: "sequential",
        failoverOn: DEFAULT_FAILOVER_ON,
        ringMs: DEFAULT_RING_TIMEOUT_S * 1000,
        inviteMs: this.settings.invite_timeout_s * 1000,
        startedAt: t0,
        mask: x.call,
        ...(customer !== undefined ? { customer: customer.name } : {}),
      };
      const base = tx.request.clone();
      base.decrementMaxForwards();
      base.remove("route");
      this.stripInternal(base);
      maskRequest(base, did, this.maskHost(), true);
      this.startCall(tx, base, info);
    }).catch((err: unknown) => {
      // a bug must not take the edge down: this call fails, the others go on
      this.verifying.delete(tx);
      this.logger.error({ trunk: tname, did, err: errMessage(err) }, "masked call failed");
      if (!this.calls.has(tx)) {
        release();
        this.refuse(tx, tname, 500, "failed", t0);
      }
    });
  }

  /** Host of the From of masked requests: our advertised address. */
  private maskHost(): string {
    return this.stack.listeners[0]?.advertisedHost ?? "didgate.invalid";
  }

  /** An in-dialog request (or ACK) of a masked call: the proxy number towards the callee, no identities either way. */
  private maskInDialog(fwd: SipMessage, upstream: boolean, proxy: string): void {
    if (upstream) maskTowardsCaller(fwd, proxy, this.maskHost());
    else maskRequest(fwd, proxy, this.maskHost(), false);
  }

  /** Inbound calls whose Identity was checked: refused (on_fail: reject), or routed marked. */
  private afterVerify(tx: ServerTransaction, base: SipMessage, info: CallInfo, v: InboundVerdict): void {
    info.verstat = v.result.verstat;
    if (v.result.attest !== null) info.attest = v.result.attest;
    if (v.reject !== 0) {
      this.logger.info({ trunk: info.trunk, did: info.did, caller: info.caller, reason: v.result.reason, detail: v.result.detail }, "sip call refused: STIR verification failed");
      return this.refuse(tx, info.trunk, v.reject, "stir_failed", info.startedAt, undefined, v.reason, info.did, info.caller, info.routeKey ?? undefined);
    }
    tx.reply(100);
    this.startCall(tx, base, info);
  }

  private startCall(tx: ServerTransaction, base: SipMessage, info: CallInfo): void {
    const call = new ProxyCall(this, tx, base, info);
    this.calls.set(tx, call);
    this.metrics.inflightNow = this.calls.size;
    call.start();
  }

  private refuse(
    tx: ServerTransaction,
    trunk: string,
    status: number,
    outcome: CallOutcome,
    t0: number,
    headers?: Array<[string, string]>,
    reason?: string,
    did?: string,
    caller?: string,
    key?: string | null,
  ): void {
    this.final(tx, trunk, status, reason, headers);
    this.callResult(tx, trunk, outcome, status, did, caller, key ?? null, null, t0);
  }

  /** @internal ProxyHost */
  callDone(call: ProxyCall, outcome: CallOutcome, code: number): void {
    this.calls.delete(call.stx);
    const cu = call.info.customer;
    if (cu !== undefined) {
      if (outcome === "routed") this.outboundMetrics.answer("customer", cu);
      else {
        this.callCounter.release("c:" + cu, call.stx.callId);
        this.callCounter.release(ALL_USERS_KEY, call.stx.callId);
        this.outboundMetrics.fail("customer", cu, code === 408 ? "timeout" : code === 487 ? "cancelled" : failClass(code));
      }
    }
    this.metrics.inflightNow = this.calls.size;
    this.metrics.final(call.info.trunk, codeLabel(code)).inc();
    const i = call.info;
    this.callResult(call.stx, i.trunk, outcome, code, i.did, i.caller, i.routeKey, call.tried, i.startedAt, call);
  }

  /** Metrics and the one log line of a call. */
  private callResult(
    tx: ServerTransaction,
    trunk: string,
    outcome: CallOutcome,
    code: number,
    did: string | undefined,
    caller: string | undefined,
    key: string | null,
    tried: readonly string[] | null,
    t0?: number,
    call?: ProxyCall,
  ): void {
    this.metrics.call(trunk, outcome).inc();
    const ms = t0 === undefined ? undefined : this.mono() - t0;
    if (ms !== undefined) this.metrics.setupOf(trunk, "").observe(ms / 1000);
    if (outcome === "rejected_acl") return; // scanners: no log line per packet (debug in reject())
    const i = call?.info;
    // fixed fields, no secret among them: logged without the redaction pass
    unredacted(this.logger).info(
      {
        trunk, did, caller, route_key: key, targets: tried ?? [], code, outcome, setup_ms: ms === undefined ? undefined : Math.round(ms * 100) / 100, call_id: tx.callId,
        ...(i?.verstat !== undefined ? { verstat: i.verstat, attest: i.attest ?? null } : {}),
      },
      "call",
    );
    if (outcome === "challenged") return; // the call is not attempted yet: its authenticated INVITE follows
    if (i?.relay === true) return; // the edge that routed the call keeps its record
    const cust = this.customers.byName(i?.customer ?? trunk) ?? this.registrar?.calls?.byName(i?.customer ?? trunk);
    const customer = i?.customer !== undefined || (cust !== undefined && this.trunks.byName(trunk) === undefined) ? cust : undefined;
    if (outcome === "routed") {
      if (customer !== undefined && caller !== undefined) this.opts.activity?.touch(caller, "out");
      else if (customer === undefined && did !== undefined) this.opts.activity?.touch(did, "in");
    }
    const cdr = this.opts.cdr;
    if (cdr === undefined) return;
    const nowE = this.now();
    const nowM = this.mono();
    const epoch = (m: number): number => Math.round(nowE - (nowM - m));
    const route = key !== null ? this.opts.store.current.get(key) : undefined;
    const leg = call?.answeredTarget as Leg | undefined;
    cdr.finished(
      {
        callId: tx.callId,
        direction: i?.mask !== undefined ? "masked" : customer !== undefined ? (i?.outbound ? "outbound" : "onnet") : i?.outbound ? "forwarded" : "inbound",
        ...(i?.mask !== undefined ? { session: i.mask.session } : {}),
        ...(customer === undefined ? { trunk } : { customer: customer.name }),
        ...((customer?.tenant ?? route?.tenant ?? i?.mask?.tenant) !== undefined ? { tenant: customer?.tenant ?? route?.tenant ?? i?.mask?.tenant } : {}),
        ...(did !== undefined ? { did, callee: i?.mask?.other ?? did } : {}),
        ...(caller !== undefined ? { caller } : {}),
        routeKey: key,
        inviteAt: epoch(t0 ?? nowM),
        ...(i?.attest !== undefined ? { attest: i.attest } : {}),
        ...(i?.verstat !== undefined ? { verstat: i.verstat } : {}),
      },
      {
        targets: tried ?? [],
        code,
        outcome,
        ...(call !== undefined && call.provisionalAt > 0 ? { provisionalAt: epoch(call.provisionalAt) } : {}),
        ...(call !== undefined && call.answeredAt > 0 ? { answerAt: epoch(call.answeredAt) } : {}),
        finalAt: nowE,
        ...(leg?.carrier !== undefined ? { carrier: leg.carrier.name } : {}),
      },
    );
  }

  // ------------------------------------------------------------------ outbound calls (customers)

  private makeDigest(a: DigestSettings): DigestAuth {
    // without a configured secret, nonces are good on this process only (one edge, or a restart
    // makes clients authenticate again: they get a fresh challenge)
    return new DigestAuth({ realm: a.realm, secret: a.secret !== undefined ? Buffer.from(a.secret, "utf8") : randomBytes(32), nonceTtlMs: a.nonce_ttl_s * 1000, algorithms: a.algorithms, now: this.now });
  }

  /** Customer owning a source address (only addresses that matched are cached: a bounded set). */
  private customerOf(address: string): Customer | undefined {
    if (this.customers.size === 0) return undefined;
    let c = this.customerCache.get(address);
    if (c === undefined) {
      c = this.customers.match(address);
      if (c !== undefined) {
        if (this.customerCache.size >= 4096) this.customerCache.clear();
        this.customerCache.set(address, c);
      }
    }
    return c;
  }

  /**
   * An INVITE from a customer (by source), or from an unknown source when some customer
   * authenticates by digest alone. Order: Max-Forwards, loop, digest (407 challenge, 403 wrong
   * credentials or a replayed nonce), CPS, destination (484), caller ID ownership (403), max_calls,
   * then on-net (an active number of ours: its route) or off-net (the outbound table's carriers;
   * 404 without a route).
   */
  private customerInvite(tx: ServerTransaction, bySource: Customer | undefined, user = false): void {
    const req = tx.request;
    const t0 = this.mono();
    let cu = bySource;
    const label = cu?.name ?? UNKNOWN;
    if (this.draining) return this.refuse(tx, label, 503, "draining", t0, [["Retry-After", "5"]]);
    const mf = req.maxForwards;
    if (mf === 0) return this.refuse(tx, label, 483, "too_many_hops", t0);
    if (mf === -1) return this.refuse(tx, label, 400, "invalid_number", t0, undefined, "Bad Request (Max-Forwards)");
    if (this.stack.isLooped(req)) return this.refuse(tx, label, 482, "loop", t0);
    let userCaller: string | undefined;
    if (user) {
      const a = this.registrar!.calls!.authorize(req, tx.source.address);
      if (!a.ok) return this.refuse(tx, label, a.status, a.outcome, t0, a.headers, a.reason);
      cu = a.customer;
      userCaller = a.callerIn;
    } else if (cu === undefined || cu.digest !== undefined) {
      const known = cu;
      const bind = nonceBinding(tx.source.address, req.callId);
      const r = this.digest.verify("INVITE", req.getAll("proxy-authorization"), (user) => {
        if (known !== undefined) return known.digest!.username === user ? known.digest!.password : undefined;
        const c = this.customers.byUser(user);
        // a customer with sources authenticates only from them
        return c !== undefined && !c.bySource ? c.digest!.password : undefined;
      }, bind);
      if (!r.ok) {
        if (r.reason === "bad_credentials" || r.reason === "replay") {
          this.logger.info({ customer: known?.name, source: tx.source.address, reason: r.reason, call_id: req.callId }, "customer authentication failed");
          return this.refuse(tx, label, 403, "auth_failed", t0, undefined, r.reason === "replay" ? "Forbidden (nonce reused)" : "Forbidden (bad credentials)");
        }
        const ch = this.digest.challenge(r.reason === "stale", bind);
        return this.refuse(tx, label, 407, "challenged", t0, ch.map((v) => ["Proxy-Authenticate", v] as [string, string]));
      }
      cu ??= this.customers.byUser(r.username)!;
    }
    const name = cu.name;
    this.outboundMetrics.attempt("customer", name);
    const wait = cu.cps.take();
    if (wait > 0) {
      this.outboundMetrics.cps("customer", name);
      return this.refuse(tx, name, 503, "rate_limited", t0, [["Retry-After", String(wait)]]);
    }
    // INVITEs waiting for a masking session lookup count as in flight too
    if (this.calls.size + this.verifying.size >= this.settings.max_inflight_invites) return this.refuse(tx, name, 503, "rate_limited", t0, [["Retry-After", "1"]]);
    const dest = normalizeNumber(req.requestUri, cu.plan);
    if (!dest.ok) return this.refuse(tx, name, 484, "invalid_number", t0);
    const callerIn = user ? userCaller : req.get("p-asserted-identity") ?? req.get("from");
    const c = callerIn === undefined ? undefined : normalizeNumber(callerIn, cu.plan);
    const caller = c !== undefined && c.ok ? c.e164 : undefined;
    if (cu.callerId === "owned") {
      const why = caller === undefined ? "no caller ID" : this.notOwned(caller, cu.tenant);
      if (why !== null) return this.refuse(tx, name, 403, "caller_id_refused", t0, undefined, "Forbidden (" + why + ")", dest.e164, caller);
    }
    const callId = req.callId ?? "";
    const ttl = this.settings.max_call_s * 1000;
    // A new INVITE with the Call-ID of a call in progress: the limits and the call record count
    // calls by Call-ID, so it would take no slot and get no record of its own. That holds for
    // another call (another From tag) and for a fork of the same one (same From tag, another
    // branch, maybe another number: a merged request, RFC 3261 8.2.2.2), whose forks could
    // otherwise all be answered on one slot and one record.
    if (this.callCounter.holds(callId)) return this.refuse(tx, name, 482, "loop", t0, undefined, "Loop Detected (Call-ID of a call in progress)", dest.e164, caller);
    if (!this.callCounter.acquire("c:" + name, callId, cu.maxCalls, ttl)) {
      this.outboundMetrics.limit("customer", name);
      if (user) this.registrar!.calls!.overLimit.labels({ limit: "max_calls" }).inc();
      return this.refuse(tx, name, 503, "rate_limited", t0, [["Retry-After", "1"]], "Service Unavailable (max_calls)", dest.e164, caller);
    }
    // a pool number: the caller's masking session, as for a carrier's call (docs/masking.md)
    if (this.opts.masking?.store.isPoolNumber(dest.e164) === true) return this.maskedInvite(tx, name, dest.e164, caller, t0, () => this.customerRoute(tx, cu, dest.e164, caller, callId, t0, user), { name, callId });
    this.customerRoute(tx, cu, dest.e164, caller, callId, t0, user);
  }

  /** A customer's INVITE, checked and counted (customerInvite): on-net by the number's route, else off-net. */
  private customerRoute(tx: ServerTransaction, cu: Customer, destE164: string, caller: string | undefined, callId: string, t0: number, user: boolean): void {
    const req = tx.request;
    const name = cu.name;
    const dest = { e164: destE164 };
    const now = this.now();
    let targets: readonly Target[];
    let key: string | null;
    let outbound: boolean;
    let failoverOn = DEFAULT_FAILOVER_ON;
    let ringS = DEFAULT_RING_TIMEOUT_S;
    let inviteS: number | undefined;
    let ring: "sequential" | "simultaneous" = "sequential";
    const own = this.originator.onNet(dest.e164);
    if (own !== undefined) {
      // on-net: the number's route, as for a call from a carrier
      const d = this.opts.decider.decideVoice(this.opts.store.current, dest.e164, caller, now);
      if (d.outcome !== "routed") {
        this.callCounter.release("c:" + name, callId);
        return this.refuse(tx, name, 404, "not_found", t0, undefined, "Not Found (no voice targets)", dest.e164, caller, d.key);
      }
      const v = d.route!.voice!;
      const x = this.originator.expand(d.targets, dest.e164, caller, v.forwardCallerId, now, divertedNumbers(req.getAll("diversion"), req.getAll("history-info")));
      if (x.legs.length === 0) {
        this.callCounter.release("c:" + name, callId);
        return x.loop ? this.refuse(tx, name, 482, "loop", t0, undefined, "Loop Detected (forwarding)", dest.e164, caller, d.key) : this.refuse(tx, name, 404, "no_route", t0, undefined, "Not Found (no outbound route)", dest.e164, caller, d.key);
      }
      targets = x.legs;
      key = d.key;
      outbound = x.legs.some((l) => l.carrier !== undefined);
      failoverOn = v.failoverOn;
      ringS = v.ringTimeoutS;
      inviteS = v.inviteTimeoutS;
      ring = v.ring;
    } else {
      const legs = this.originator.carrierLegs(dest.e164, 1, [], []);
      if (legs.length === 0) {
        this.callCounter.release("c:" + name, callId);
        return this.refuse(tx, name, 404, "no_route", t0, undefined, "Not Found (no outbound route)", dest.e164, caller);
      }
      targets = legs;
      key = null;
      outbound = true;
    }
    const stir = this.opts.stir;
    if (stir?.signing && outbound) {
      // A: an authenticated customer that owns the calling number; B: known, number not checked
      targets = stir.signLegs(targets as readonly Leg[], cu.callerId === "owned" ? "A" : "B", caller, false);
    }
    const info: CallInfo = {
      trunk: name,
      did: dest.e164,
      caller,
      routeKey: key,
      targets,
      failoverOn,
      ringMs: ringS * 1000,
      inviteMs: (inviteS ?? this.settings.invite_timeout_s) * 1000,
      startedAt: t0,
      outbound,
      customer: name,
      ring,
      ...(stir?.signing && outbound && caller !== undefined ? { attest: cu.callerId === "owned" ? "A" : "B" } : {}),
    };
    const uc = user ? this.registrar!.calls! : undefined;
    if (uc?.maxTotal !== undefined) {
      // all registered users together, taken last: a call refused for another reason holds no slot
      if (!this.callCounter.acquire(ALL_USERS_KEY, callId, uc.maxTotal, this.settings.max_call_s * 1000)) {
        this.callCounter.release("c:" + name, callId);
        this.outboundMetrics.limit("customer", name);
        uc.overLimit.labels({ limit: "max_calls_total" }).inc();
        return this.refuse(tx, name, 503, "rate_limited", t0, [["Retry-After", "1"]], "Service Unavailable (max_calls_total)", dest.e164, caller, key);
      }
    }
    const base = req.clone();
    base.decrementMaxForwards();
    base.remove("route");
    // credentials for our realm are consumed here (RFC 3261 22.3)
    base.remove("proxy-authorization");
    this.stripInternal(base);
    // the caller ID checked above, as the identity the carrier may trust (RFC 3325); the other
    // headers that name a caller were not checked, and a carrier may read them: they go (a
    // customer's own PASSporT too: it may name any number, and didgate signs with stir.sign)
    if (caller !== undefined) {
      base.set("P-Asserted-Identity", "<tel:" + caller + ">");
      base.remove("remote-party-id");
      base.remove("p-preferred-identity");
      if (user || cu.callerId === "owned") base.remove("identity");
    }
    if (user && caller !== undefined) this.registrar!.calls!.rewrite(base, caller);
    if (this.keyHeader && key !== null) base.append(this.keyHeader, key);
    tx.reply(100);
    const call = new ProxyCall(this, tx, base, info);
    this.calls.set(tx, call);
    this.metrics.inflightNow = this.calls.size;
    call.start();
  }

  /** Why the tenant may not use this caller ID, or null when it owns it (active or porting out). */
  private notOwned(caller: string, tenant: string): string | null {
    const t = this.opts.store.current;
    const r = t.lookup(caller);
    if (r === undefined || t.match.kind === MATCH_DEFAULT) return "caller ID not a number of ours";
    if (r.tenant !== tenant) return "caller ID owned by another tenant";
    if (r.state !== "active" && r.state !== "porting_out") return "caller ID not active";
    return null;
  }

  /** @internal ProxyHost: registered users among the targets are looked up (src/edge/registrar.ts). */
  expand(targets: readonly Target[], ring: "sequential" | "simultaneous", callId: string): Promise<{ targets: Target[]; ring: "sequential" | "simultaneous" }> | null {
    const r = this.registrar;
    return r !== undefined && r.hasUsers(targets) ? r.expand(targets, ring, callId) : null;
  }

  /** @internal ProxyHost: a carrier leg gets the call only under its max_calls and CPS. */
  admit(call: ProxyCall, t: Target): boolean {
    const c = (t as Leg).carrier;
    if (c === undefined) return true;
    const id = call.stx.callId;
    const key = "k:" + c.name;
    const had = this.callCounter.count(key);
    if (!this.callCounter.acquire(key, id, c.maxCalls, this.settings.max_call_s * 1000)) {
      this.outboundMetrics.limit("carrier", c.name);
      return false;
    }
    if (c.cps !== undefined && c.cps.take() > 0) {
      if (this.callCounter.count(key) > had) this.callCounter.release(key, id);
      this.outboundMetrics.cps("carrier", c.name);
      return false;
    }
    this.outboundMetrics.attempt("carrier", c.name);
    return true;
  }

  /** @internal ProxyHost */
  targetDone(call: ProxyCall, t: Target, code: number, answered: boolean): void {
    const c = (t as Leg).carrier;
    if (c === undefined) return;
    if (answered) {
      this.outboundMetrics.answer("carrier", c.name);
      return;
    }
    this.callCounter.release("k:" + c.name, call.stx.callId);
    this.outboundMetrics.fail("carrier", c.name, code === 0 ? "transport" : code === 408 ? "timeout" : code === 487 ? "cancelled" : failClass(code));
  }

  /** Whether any call can hold a slot (customers, carriers or registered users configured). */
  private countsCalls(): boolean {
    return this.customers.customers.length > 0 || this.carriers.names().length > 0 || this.registrar !== undefined;
  }

  /** Counter keys of the customers and carriers that have a max_calls. */
  private limitedKeys(): string[] {
    const out: string[] = [];
    for (const c of this.customers.customers) if (c.maxCalls !== undefined) out.push("c:" + c.name);
    for (const n of this.carriers.names()) if (this.carriers.get(n)!.maxCalls !== undefined) out.push("k:" + n);
    for (const k of this.registrar?.calls?.keys() ?? []) out.push(k);
    return out;
  }

  /** A BYE passed: the call's max_calls slots are free. False: this edge held none. */
  private endCall(callId: string | undefined): boolean {
    if (callId === undefined) return false;
    let freed = false;
    for (const k of this.callCounter.keys()) if (this.callCounter.release(k, callId)) freed = true;
    return freed;
  }

  /**
   * Another worker passed the BYE of a call (endElsewhere): its slots and its record, if this
   * worker holds them. Idempotent.
   */
  endedElsewhere(callId: string, byCallee: boolean): void {
    this.endCall(callId);
    this.opts.cdr?.bye(callId, byCallee);
  }

  // ------------------------------------------------------------------ in-dialog requests

  /**
   * Requests with a To tag: loose-route by our signed Record-Route (src/sip/rr.ts), only for
   * dialogs we set up and only to that dialog's next hops. Towards the callee only from a trunk;
   * towards the caller from anywhere (the callee is not a trunk).
   */
  private inDialog(tx: ServerTransaction, trunk: Trunk | undefined, cust?: Customer): void {
    const req = tx.request;
    const tname = trunk !== undefined ? trunk.name : cust !== undefined ? cust.name : UNKNOWN;
    const fwd = req.clone();
    const r = routeInDialog(this.stack, fwd, this.signer);
    if ("forged" in r) {
      // a request for a dialog that is not (or no longer) ours, addressed to us: 481
      if (r.forged === "no_route" && trunk !== undefined && req.parsedRequestUri !== null && this.stack.isLocalUri(req.parsedRequestUri)) return this.final(tx, tname, 481);
      return this.forged(tx, trunk, r.forged);
    }
    // a masked dialog passes only what a call needs (REFER, NOTIFY, MESSAGE… may name a party)
    if (r.binding.mask !== undefined && !maskedDialogAllows(req.method)) return this.final(tx, tname, 405, "Method Not Allowed (masked call)", [["Allow", MASKED_DIALOG_METHODS.join(", ")]]);
    const dest = this.nextHop(r, trunk !== undefined || cust !== undefined || fromCaller(r, tx.source));
    if (typeof dest === "string") return this.forged(tx, trunk, dest);
    if (fwd.decrementMaxForwards() < 0) return this.final(tx, tname, 483);
    // The call ends when the other side answers the BYE (RFC 3261 15.1.1: for its sender the
    // session is over whatever the answer), or does not answer it: then its max_calls slots are
    // free and its record ends. A 481 (the To tag names no dialog there, as a forged one does)
    // ends nothing, nor does a challenge (the BYE comes again with credentials).
    let byeDone: ((status: number) => void) | null = null;
    if (req.method === "BYE") {
      const callId = req.callId;
      const upstream = r.upstream;
      byeDone = (status) => {
        if (status === 481 || status === 401 || status === 407) return;
        const freed = this.endCall(callId);
        // towards the caller (upstream) means the callee hung up
        const recorded = this.opts.cdr?.bye(callId, upstream) === true;
        // set up on another worker (a TCP connection is held by one worker; this BYE came by UDP)
        if (!freed && !recorded && callId !== undefined && this.opts.endElsewhere !== undefined && (this.opts.cdr !== undefined || this.countsCalls())) this.opts.endElsewhere(callId, upstream);
      };
    }
    if (!r.upstream) this.stripInternal(fwd);
    const mask = r.binding.mask;
    if (mask !== undefined) this.maskInDialog(fwd, r.upstream, mask);
    if (req.method === "INVITE") {
      const f = new DialogForward(tx, this.stack, this.dialogDone, mask !== undefined);
      this.dialogInvites.set(tx, f);
      tx.reply(100);
      this.send(fwd, dest, f);
    } else this.send(fwd, dest, new DialogForward(tx, this.stack, null, mask !== undefined, byeDone));
  }

  /** Refuse an in-dialog request that is not authorised: 403 to a trunk, nothing (or 403 with reject) to others. */
  private forged(tx: ServerTransaction, trunk: Trunk | undefined, reason: ForgedReason): void {
    this.metrics.forgedOf(reason, "").inc();
    if (trunk === undefined) return this.reject(tx, "in-dialog request refused: " + reason);
    this.logger.debug({ trunk: trunk.name, source: tx.source.address, method: tx.method, call_id: tx.callId, reason }, "sip in-dialog request refused");
    this.final(tx, trunk.name, 403, "Forbidden (not a dialog of this proxy)");
  }

  private send(fwd: SipMessage, dest: { uri: string; dflt: TransportKind; flow: NextFlow | null }, f: DialogForward): void {
    if (dest.flow !== null) {
      f.ctx = this.stack.request(fwd, { transport: dest.flow.transport, host: dest.flow.address, port: dest.flow.port }, f);
      return;
    }
    const r = this.resolver.resolveSync(dest.uri, dest.dflt);
    if (r !== undefined) {
      if ("error" in r) f.onTransportError();
      else f.ctx = this.stack.request(fwd, { transport: r.transport, host: r.address, port: r.port }, f);
      return;
    }
    void this.resolver.resolve(dest.uri, dest.dflt).then((x) => {
      // a CANCEL answered while the name was being resolved: the request is not sent
      if (f.cancelled) return;
      if ("error" in x) f.onTransportError();
      else f.ctx = this.stack.request(fwd, { transport: x.transport, host: x.address, port: x.port }, f);
    });
  }

  private forwardDone(f: DialogForward): void {
    for (const [k, v] of this.dialogInvites) if (v === f) this.dialogInvites.delete(k);
  }

  /**
   * Where an in-dialog request goes, or why it may not. Towards the callee: only from a trunk, and
   * only to a next hop the token allows (the target, the callee's Contact or its proxy). Towards
   * the caller: to a next hop the token allows (the caller's Contact or proxy, the flow's address)
   * or to an address of the flow's trunk (a target refresh within the carrier); it is sent over the
   * recorded flow (a TCP/TLS connection still open is reused) unless the next hop resolves to an
   * address of a trunk.
   */
  private nextHop(r: DialogRoute, fromTrunk: boolean): { uri: string; dflt: TransportKind; flow: NextFlow | null } | ForgedReason {
    const uri = r.next.toString();
    if (!r.upstream) {
      if (!fromTrunk) return "direction";
      if (!r.hopAllowed) return "next_hop";
      return { uri, dflt: "udp", flow: null };
    }
    const flow = r.flow;
    const res = this.resolver.resolveSync(uri, flow?.transport ?? "udp");
    const resolved = res !== undefined && !("error" in res) ? res : null;
    if (!r.hopAllowed) {
      const ft = flow === null ? undefined : this.trunks.match(flow.address);
      if (ft === undefined || resolved === null || this.trunks.match(resolved.address) !== ft) return "next_hop";
    }
    if (flow === null) return { uri, dflt: "udp", flow: null };
    if (flow.transport !== "udp" && this.stack.transport.getConnection(flow.transport, flow.address, flow.port) !== undefined) return { uri, dflt: flow.transport, flow };
    const t = uriTransport(r.next, flow.transport);
    if (t !== null && resolved !== null && this.trunks.match(resolved.address) !== undefined) return { uri, dflt: flow.transport, flow: null };
    return { uri, dflt: flow.transport, flow };
  }

  onAck(ack: SipMessage, source: Source): void {
    this.lastRequestAt = this.now();
    const trunk = this.trunkOf(ack, source);
    if (trunk === undefined && !this.flood.allow(source.address)) {
      this.refused(source.transport, source.address, source.port, "ACK (flood guard)");
      return;
    }
    this.metrics.request(trunk === undefined ? UNKNOWN : trunk.name, "ACK").inc();
    const fwd = ack.clone();
    const r = routeInDialog(this.stack, fwd, this.signer);
    if ("forged" in r) {
      this.metrics.forgedOf(r.forged, "").inc();
      return;
    }
    const dest = this.nextHop(r, trunk !== undefined || fromCaller(r, source) || this.customerOf(source.address) !== undefined);
    if (typeof dest === "string") {
      this.metrics.forgedOf(dest, "").inc();
      return;
    }
    if (fwd.decrementMaxForwards() < 0) return;
    if (!r.upstream) this.stripInternal(fwd);
    if (r.binding.mask !== undefined) this.maskInDialog(fwd, r.upstream, r.binding.mask);
    if (dest.flow !== null) {
      this.stack.sendStateless(fwd, { transport: dest.flow.transport, host: dest.flow.address, port: dest.flow.port });
      return;
    }
    const x = this.resolver.resolveSync(dest.uri, dest.dflt);
    if (x !== undefined) {
      if (!("error" in x)) this.stack.sendStateless(fwd, { transport: x.transport, host: x.address, port: x.port });
      return;
    }
    void this.resolver.resolve(dest.uri, dest.dflt).then((y) => {
      if (!("error" in y)) this.stack.sendStateless(fwd, { transport: y.transport, host: y.address, port: y.port });
    });
  }

  /** A response no client transaction wants (late 2xx retransmission): relay it by its Via. */
  onStrayResponse(res: SipMessage, source: Source): void {
    const v = res.topVia;
    if (v === null || !this.stack.isLocal(v.hostname, v.port)) return;
    if (res.viaCount(2) < 2) {
      // RFC 3261 16.7 step 3: no Via left after ours: the response was meant for us
      this.stack.metrics.dropped.inc({ reason: "response_no_via" });
      return;
    }
    // Without a transaction only a 2xx to an INVITE of a dialog didgate set up is relayed (the
    // callee retransmits it until the ACK, RFC 3261 16.7 step 10): it carries our Record-Route,
    // signed for its Call-ID. Anything else would let any host have didgate send bytes it chose,
    // from didgate's address, to whatever address its second Via names.
    if (res.status < 200 || res.status >= 300 || res.cseq?.method !== "INVITE" || res.recordRoutes.length === 0) {
      this.stack.metrics.dropped.inc({ reason: "stray_response" });
      return;
    }
    if (this.trunks.match(source.address) === undefined && this.customerOf(source.address) === undefined && !this.flood.allow(source.address)) {
      this.refused(source.transport, source.address, source.port, "response (flood guard)");
      return;
    }
    res.popVia();
    // a masked call's 2xx retransmission: no identity of the callee (src/edge/masking.ts)
    const masked = /;dgm=([^;>,]+)/.exec(res.recordRoutes.join(","));
    // the route set must start at didgate (src/edge/masking.ts); either way our value must verify
    const ours = masked !== null ? cutMaskedRecordRoute(this.stack, res, this.signer) : rewriteRecordRoute(this.stack, res, this.signer);
    if (!ours) {
      this.stack.metrics.dropped.inc({ reason: "stray_response" });
      return;
    }
    if (masked !== null) maskStrayResponse(res, masked[1]!, this.maskHost());
    this.stack.sendResponseStateless(res);
  }

  /** Trunks with their CPS in use, and the targets being tracked (status view). */
  status(): { trunks: Array<{ name: string; cps: number; cps_in_use: number; calls: number | null; max_calls: number | null }>; targets: Array<{ target: string; state: "up" | "down"; reason: string | null }>; calls: number } {
    return {
      trunks: this.trunks.trunks.map((t) => ({ name: t.name, cps: t.cps.limit, cps_in_use: t.cps.inUse(), calls: null, max_calls: null })),
      targets: this.health.list(),
      calls: this.calls.size,
    };
  }

}

type NextFlow = { transport: TransportKind; address: string; port: number };

/** The trunk label of calls from other edges to phones registered here (a fixed word: metrics). */
const RELAY_LABEL = "edge";

/** Ring time of a relayed call: Timer C (RFC 3261 16.6), the routing edge cancels before. */
const RELAY_RING_MS = 180_000;

/**
 * A request towards the callee from the address the dialog's INVITE came from (the caller's flow
 * in the signed token): a customer that authenticates by digest, not by source.
 */
function hasForward(targets: readonly Target[]): boolean {
  for (let i = 0; i < targets.length; i++) if (targets[i]!.uri.charCodeAt(0) === 116 /* t */) return true;
  return false;
}

function fromCaller(r: DialogRoute, src: Source): boolean {
  return !r.upstream && r.flow !== null && r.flow.address === src.address;
}
