/**
 * Forking policy of the SIP edge (RFC 3261 section 16): which target gets the call next, and when.
 *
 * ProxyCall: one initial INVITE, sent to the route's targets one after the other (sequential
 * forking), or a priority group at once (simultaneous ringing: parallel forking, the first 2xx
 * wins and the others get CANCEL). Per branch: Request-URI = target URI, our Via (by the stack, with a loop-detection
 * branch), Record-Route(s) signed for the dialog (src/sip/rr.ts); the branch ends with a final
 * response, Timer B, the INVITE timeout (no provisional response in time), a transport error or the
 * ring timeout (CANCEL). It fails over on the route's failover_on codes, on Timer B, the INVITE
 * timeout, transport errors and DNS failures; never after a 6xx or an upstream CANCEL. A target
 * that is didgate itself is skipped (482 when no other target is left). When every target failed,
 * the best response per 16.7 goes upstream (408 when none answered).
 *
 * When the trunk and target sides use different listeners (transport or interface) two
 * Record-Route values are added (RFC 5658 double record-routing). Responses that set up the dialog
 * get our values rewritten with the callee's next hop (16.7 step 9). Nothing is kept per dialog:
 * an edge restarted mid-call still routes BYE.
 */
import type { Logger } from "pino";
import {
  type ClientTransaction,
  type ClientTxHandler,
  type ServerTransaction,
  type SipMessage,
  type TimerHandle,
  type TimerTarget,
} from "../sip/index.js";
import { parseNameAddr, parseUri } from "../sip/uri.js";
import { hopOfAddress, hopOfUri, inviteBinding, loopBranch, loopHash, recordRouteFor, rewriteRecordRoute, type DialogBinding, type DialogSigner } from "../sip/rr.js";
import type { Target } from "../routing/route.js";
import type { TargetHealth } from "./health.js";
import type { ResolvedTarget, ResolveResult, TargetResolver } from "../sip/resolve.js";
import { targetKey } from "../sip/resolve.js";
import type { VoiceMetrics, CallOutcome } from "./voice-metrics.js";
import type { EdgeClientTx, EdgeStack } from "./stack.js";
import { rebuildMaskedRecordRoute, unmaskResponse, type MaskedCall } from "./masking.js";

/** What a call needs from the edge. */
export interface ProxyHost {
  readonly stack: EdgeStack;
  readonly resolver: TargetResolver;
  readonly health: TargetHealth;
  readonly metrics: VoiceMetrics;
  readonly logger: Logger;
  readonly recordRoute: boolean;
  /** Signs the Record-Route of each dialog. */
  readonly signer: DialogSigner;
  /** True when the target is one of our own listeners (a route pointing at didgate itself). */
  isOwnTarget(r: ResolvedTarget): boolean;
  /** Monotonic ms (setup time). */
  mono(): number;
  /**
   * May this target get the call now (a carrier's CPS and max_calls)? false: passed over at once
   * for the next one. A target admitted is given back through targetDone.
   */
  admit?(call: ProxyCall, t: Target): boolean;
  /** A target admitted by admit() is done: answered (2xx) or not (final, timeout, cancelled). */
  targetDone?(call: ProxyCall, t: Target, code: number, answered: boolean): void;
  /** The call sent its final response upstream (or was cancelled). */
  callDone(call: ProxyCall, outcome: CallOutcome, code: number): void;
  /**
   * Targets that must be looked up first (registered users, docs/registrar.md): the targets to
   * ring instead and how, or null when there is nothing to look up.
   */
  expand?(targets: readonly Target[], ring: "sequential" | "simultaneous", callId: string): Promise<{ targets: Target[]; ring: "sequential" | "simultaneous" }> | null;
}

const RING = 1;
const CLEANUP = 2;
const INVITE_TIMEOUT = 3;

/** Response class rank for 16.7 best-response selection (lower is better). */
function rank(status: number): number {
  if (status >= 600) return 0;
  if (status >= 300 && status < 400) return 1;
  if (status >= 400 && status < 500) return 2;
  return 3; // 5xx
}

export interface CallInfo {
  trunk: string;
  did: string;
  caller: string | undefined;
  routeKey: string | null;
  targets: readonly Target[];
  failoverOn: readonly number[];
  ringMs: number;
  /** No provisional response from a target in this time: next target (0: off, Timer B only). */
  inviteMs: number;
  startedAt: number;
  /**
   * Outbound (to carriers): a 503 from every carrier, or every carrier over its limits, answers
   * 503 with Retry-After (the carriers are busy) instead of 500.
   */
  outbound?: boolean;
  /** The customer placing the call (outbound), for its limits and metrics. */
  customer?: string;
  /** simultaneous: each priority group rings at once (RFC 3261 16.7 parallel forking). */
  ring?: "sequential" | "simultaneous";
  /** STIR/SHAKEN: the inbound verification result and attestation, for the call's log and record. */
  verstat?: string;
  attest?: string;
  /** A call through a masking session (src/edge/masking.ts): the dialog is marked masked. */
  mask?: MaskedCall;
  /**
   * Another edge's call to a phone whose flow this edge holds (docs/registrar.md, "Several
   * edges"): always Record-Routed (the dialog's requests must keep using the flow), no record of
   * its own (the other edge keeps the call's).
   */
  relay?: boolean;
}

/** Extra per-target data of outbound and forwarded legs (src/edge/originate.ts). */
interface LegLike extends Target {
  readonly set?: ReadonlyArray<readonly [string, string]>;
  readonly add?: ReadonlyArray<readonly [string, string]>;
  readonly carrier?: { readonly failoverOn: readonly number[] };
  /** Where to send instead of resolving the URI (a registered contact's flow). */
  readonly sendTo?: ResolvedTarget;
  /** sendTo is the edge that holds the contact's flow, not the contact: answers pass as they are. */
  readonly throughEdge?: boolean;
}

/** One attempt at one target: its client transaction and timers. */
class Branch implements ClientTxHandler, TimerTarget {
  ctx: EdgeClientTx | null = null;
  res: ResolvedTarget | null = null;
  ringTimer: TimerHandle = null;
  inviteTimer: TimerHandle = null;
  /** Given by the host's admit(): to be given back once. */
  admitted: boolean;
  /** Over: failed, answered, or cancelled by us; only a late 2xx still matters. */
  done = false;
  /** A provisional response came (the ring timer runs). */
  ringing = false;
  /** Our signed Record-Route values as sent on this branch (top first). */
  rr: readonly string[] = [];

  constructor(
    private readonly call: ProxyCall,
    readonly t: LegLike,
    admitted: boolean,
  ) {
    this.admitted = admitted;
  }

  onResponse(res: SipMessage, tx: ClientTransaction): void {
    this.call.onBranchResponse(this, res, tx);
  }
  onTimeout(): void {
    this.call.onBranchTimeout(this);
  }
  onTransportError(_tx: ClientTransaction, err: Error): void {
    this.call.onBranchTransportError(this, err);
  }
  onTimer(kind: number): void {
    this.call.onBranchTimer(this, kind);
  }
}

/**
 * One initial INVITE being proxied. Targets are tried in groups: one target at a time
 * (sequential), or every target of one priority at once (simultaneous, RFC 3261 16.7 parallel
 * forking: the first 2xx wins and the other branches get CANCEL). A group that fails moves on to
 * the next group when a failure allows it (failover_on, timeouts, transport errors); a 6xx ends
 * the call (16.7 step 5: pending branches cancelled).
 */
export class ProxyCall implements TimerTarget {
  /** Targets tried, for the call log: "uri=code". */
  readonly tried: string[] = [];
  private idx = 0;
  private readonly active: Branch[] = [];
  /** A failure of the current group allows the next group. */
  private groupFailover = false;
  private best: SipMessage | null = null;
  /** best arrived without a Via below ours: answer with its status, do not forward it */
  private bestOwn = false;
  /** A target was didgate itself (answer 482 when nothing else answered). */
  private sawLoop = false;
  /** A masked call's branch answered a 3xx or 485, not relayed (answer 480 when nothing else answered). */
  private maskRedirected = false;
  private readonly loopHash: string;
  private readonly up: DialogBinding;
  private cleanupTimer: TimerHandle = null;
  private zombies: EdgeClientTx[] | null = null;
  private order: readonly Target[];
  finished = false;
  private cancelled = false;
  finalCode = 0;
  /** Monotonic ms of the first provisional response forwarded upstream, and of the 2xx (0: none). */
  provisionalAt = 0;
  answeredAt = 0;
  /** The target that answered (its carrier, for records). */
  answeredTarget: Target | undefined;
  private answered = false;
  /** Targets passed over for being at their limits. */
  limited = 0;

  constructor(
    private readonly host: ProxyHost,
    readonly stx: ServerTransaction,
    /**
     * Prepared request: Max-Forwards decremented, internal headers handled, Route removed. Let go
     * once the call is finished (no branch starts after that): a finished call is held 32 s by
     * its transactions, and this copy is not needed for that.
     */
    private base: SipMessage | null,
    readonly info: CallInfo,
  ) {
    this.order = info.targets;
    const src = stx.source;
    this.loopHash = loopHash(stx.request);
    const up = inviteBinding(stx.request, { transport: src.transport, address: src.address, port: src.port }, []);
    this.up = info.mask !== undefined ? { ...up, mask: info.mask.proxy } : up;
  }

  /** Record-Route on this call: as configured, and always on a masked call (its in-dialog requests must pass here to stay masked). */
  private get recordRoute(): boolean {
    return this.host.recordRoute || this.info.mask !== undefined || this.info.relay === true;
  }

  start(): void {
    const x = this.info.relay === true ? null : this.host.expand?.(this.info.targets, this.info.ring ?? "sequential", this.stx.callId);
    if (x !== undefined && x !== null) {
      void x.then((r) => {
        if (this.finished) return;
        if (r.targets.length === 0) {
          this.stx.reply(480, "Temporarily Unavailable (not registered)");
          this.finish("failed", 480);
          return;
        }
        this.order = r.targets;
        this.info.ring = r.ring;
        this.nextGroup();
      });
      return;
    }
    const h = this.host.health;
    if (h.down > 0) this.order = this.healthyOrder();
    this.nextGroup();
  }

  /** Targets not marked down, in decision order; all of them when none is up. */
  private healthyOrder(): readonly Target[] {
    const up: Target[] = [];
    const r = this.host.resolver;
    for (const t of this.info.targets) {
      const x = r.resolveSync(t.uri);
      if (x === undefined || "error" in x || !this.host.health.isDown(x.key)) up.push(t);
    }
    return up.length > 0 ? up : this.info.targets;
  }

  /**
   * Start the next group: the next target (sequential) or every target of the next priority
   * (simultaneous). Targets over their limits are passed over at once; when none is left, the
   * best response goes upstream.
   */
  private nextGroup(): void {
    while (!this.finished) {
      if (this.idx >= this.order.length) {
        this.finishBest();
        return;
      }
      this.groupFailover = false;
      const first = this.order[this.idx]!;
      let end = this.idx + 1;
      if (this.info.ring === "simultaneous") while (end < this.order.length && this.order[end]!.priority === first.priority) end++;
      const group: Branch[] = [];
      for (; this.idx < end; this.idx++) {
        const t = this.order[this.idx]! as LegLike;
        const admit = this.host.admit;
        if (admit !== undefined && !admit.call(this.host, this, t)) {
          // over CPS or max_calls: passed over, no waiting
          this.tried.push(t.uri + "=over_limit");
          this.limited++;
          continue;
        }
        group.push(new Branch(this, t, admit !== undefined));
      }
      if (group.length === 0) continue;
      for (const b of group) this.active.push(b);
      for (const b of group) if (!b.done && !this.finished) this.startBranch(b);
      // every branch of the group may have failed synchronously (DNS error, own target)
      if (this.active.length > 0 || this.finished) return;
      if (!this.groupFailover || this.cancelled) {
        this.finishBest();
        return;
      }
    }
  }

  private startBranch(b: Branch): void {
    if (b.t.sendTo !== undefined) return this.onResolved(b, b.t.sendTo);
    const r = this.host.resolver.resolveSync(b.t.uri);
    if (r !== undefined) this.onResolved(b, r);
    else void this.host.resolver.resolve(b.t.uri).then((x) => this.onResolved(b, x));
  }

  private onResolved(b: Branch, r: ResolveResult): void {
    if (this.finished || b.done) return;
    const uri = b.t.uri;
    if ("error" in r) {
      this.host.logger.debug({ uri, err: r.error }, "sip target unresolvable");
      this.branchFailed(b, "dns", 0, true);
      return;
    }
    if (this.host.isOwnTarget(r)) {
      // RFC 3261 16.3 step 4 / 16.6: a route pointing at ourselves would loop until Max-Forwards
      // or a rate limit ends it
      this.sawLoop = true;
      this.host.logger.warn({ uri, did: this.info.did, route_key: this.info.routeKey }, "sip target is didgate itself (loop); skipped");
      this.branchFailed(b, "loop", 0, true);
      return;
    }
    const stack = this.host.stack;
    const base = this.base;
    if (base === null) return;
    const fwd = base.clone();
    fwd.requestUri = uri;
    const t = b.t;
    if (t.set !== undefined) for (const [n, v] of t.set) fwd.set(n, v);
    // prepended: Diversion lists the most recent diversion first (RFC 5806)
    if (t.add !== undefined) for (let i = t.add.length - 1; i >= 0; i--) fwd.prepend(t.add[i]![0], t.add[i]![1]);
    if (this.recordRoute) {
      const out = stack.listenerFor(r.transport, r.address);
      const down = [hopOfAddress(r.address, r.port)];
      const u = parseUri(uri);
      if (u !== null && u.isSip) {
        const h = hopOfUri(u);
        if (h !== down[0]) down.unshift(h);
      }
      const bind: DialogBinding = { ...this.up, down };
      const signer = this.host.signer;
      // one token for both values of a double Record-Route
      const sig = signer.sign(bind);
      fwd.pushRecordRoute(recordRouteFor(this.stx.source.listener, bind, signer, sig));
      if (out !== undefined && out !== this.stx.source.listener) fwd.pushRecordRoute(recordRouteFor(out, bind, signer, sig));
      if (this.info.mask !== undefined) b.rr = fwd.recordRoutes.slice(0, out !== undefined && out !== this.stx.source.listener ? 2 : 1);
    }
    b.res = r;
    this.host.health.track(r, uri);
    const branch = loopBranch(this.loopHash, stack.newBranch().slice(7));
    // a send error can be reported synchronously, from inside request(): b.done is set then
    const tx = stack.request(fwd, { transport: r.transport, host: r.address, port: r.port }, b, { branch });
    if (b.done) return;
    b.ctx = tx;
    if (this.info.inviteMs > 0 && !tx.terminated) b.inviteTimer = stack.timers.set(this.info.inviteMs, b, INVITE_TIMEOUT);
  }

  /** Answers after which the next target is tried: the carrier's for a carrier leg. */
  private failOn(b: Branch): readonly number[] {
    return b.t.carrier?.failoverOn ?? this.info.failoverOn;
  }

  private clearTimers(b: Branch): void {
    const timers = this.host.stack.timers;
    if (b.ringTimer !== null) {
      timers.clear(b.ringTimer);
      b.ringTimer = null;
    }
    if (b.inviteTimer !== null) {
      timers.clear(b.inviteTimer);
      b.inviteTimer = null;
    }
  }

  /** Give a branch's target back to the host (limits), once. */
  private release(b: Branch, code: number, answered: boolean): void {
    if (!b.admitted) return;
    b.admitted = false;
    this.host.targetDone?.(this, b.t, code, answered);
  }

  private remove(b: Branch): void {
    const i = this.active.indexOf(b);
    if (i >= 0) this.active.splice(i, 1);
  }

  /**
   * A branch failed (what: the log word, code: its answer or 408/0). When it was the last one of
   * its group, the next group is tried if a failure of the group allows it.
   */
  private branchFailed(b: Branch, what: string, code: number, allowed: boolean): void {
    if (b.done) return;
    b.done = true;
    this.clearTimers(b);
    this.remove(b);
    this.tried.push(b.t.uri + "=" + what);
    this.release(b, code, false);
    if (allowed) this.groupFailover = true;
    if (this.finished || this.cancelled || this.active.length > 0) return;
    if (this.groupFailover && this.idx < this.order.length) {
      this.host.metrics.failoverOf(this.info.trunk, "").inc();
      this.nextGroup();
    } else this.finishBest();
  }

  /** CANCEL a branch; its transaction is terminated 64*T1 later if it never completes. */
  private cancelBranch(b: Branch): void {
    const c = b.ctx;
    b.ctx = null;
    if (c === null) return;
    c.cancel();
    (this.zombies ??= []).push(c);
    if (this.cleanupTimer === null) this.cleanupTimer = this.host.stack.timers.set(64 * this.host.stack.timerConfig.t1, this, CLEANUP);
  }

  /** CANCEL every pending branch but `keep` (a 2xx arrived, a 6xx, or the caller cancelled). */
  private cancelOthers(keep: Branch | null, code: number, what: string): void {
    for (const b of this.active.slice()) {
      if (b === keep) continue;
      b.done = true;
      this.clearTimers(b);
      this.remove(b);
      this.tried.push(b.t.uri + "=" + what);
      this.cancelBranch(b);
      this.release(b, code, false);
    }
  }

  // ---- branch events

  onBranchResponse(b: Branch, res: SipMessage, tx: ClientTransaction): void {
    const st = res.status;
    if (b.done || this.finished) {
      // a branch we gave up (cancelled) or a call already answered: only a 2xx matters, and it
      // must go upstream (16.7 step 10)
      if (st >= 200 && st < 300) this.forward2xx(b, res, tx);
      return;
    }
    if (st < 200) {
      if (b.inviteTimer !== null) {
        this.host.stack.timers.clear(b.inviteTimer);
        b.inviteTimer = null;
      }
      if (!b.ringing) {
        b.ringing = true;
        this.host.health.alive(b.res!.key);
        const ts = b.t.timeoutS;
        b.ringTimer = this.host.stack.timers.set(ts !== undefined ? ts * 1000 : this.info.ringMs, b, RING);
      }
      if (st === 100) return;
      res.popVia();
      if (this.noViaLeft(res)) return;
      if (b.t.sendTo !== undefined && b.t.throughEdge !== true && res.toTag !== undefined) flowContact(res, b.t.sendTo);
      // a provisional response with a To tag sets up an early dialog (reliable 1xx, PRACK, UPDATE)
      if (this.info.mask !== undefined) {
        if (res.toTag !== undefined) this.maskedRecordRoute(b, res);
        unmaskResponse(res, this.stx.request);
      } else if (this.recordRoute && res.toTag !== undefined) rewriteRecordRoute(this.host.stack, res, this.host.signer);
      if (this.provisionalAt === 0) this.provisionalAt = this.host.mono();
      this.stx.respond(res);
      return;
    }
    this.clearTimers(b);
    if (st < 300) {
      this.forward2xx(b, res, tx);
      return;
    }
    this.host.health.alive(b.res!.key);
    if (st === 430 && b.t.throughEdge === true) {
      // RFC 5626 5.3: Flow Failed is meant for the proxy that chose the flow; upstream the phone
      // is simply not reachable now
      res.setStatus(480, "Temporarily Unavailable (flow failed)");
      return this.onBranchResponse(b, res, tx);
    }
    if (this.info.mask !== undefined && ((st >= 300 && st < 400) || st === 485)) {
      // a redirect, or a 485 with its alternatives, names a target the callee's side chose (its
      // own number, or one that would get the caller's number): never relayed on a masked call,
      // the branch failed (the next carrier, else 480 from didgate)
      this.maskRedirected = true;
      this.branchFailed(b, String(st), st, true);
      return;
    }
    // only our Via: the response may not be forwarded (RFC 3261 16.7 step 3); if it is the best
    // one, didgate answers with its status itself
    const own = res.viaCount(2) < 2;
    if (own) this.host.stack.metrics.dropped.inc({ reason: "response_no_via" });
    if (this.best === null || rank(st) < rank(this.best.status)) {
      this.best = res;
      this.bestOwn = own;
    }
    if (st >= 600) {
      // 16.7 step 5: a 6xx ends the search; pending branches are cancelled
      this.cancelOthers(b, 487, "cancelled");
      this.groupFailover = false;
      this.idx = this.order.length;
      this.branchFailed(b, String(st), st, false);
      return;
    }
    this.branchFailed(b, String(st), st, this.failOn(b).includes(st));
  }

  /** After popping our Via: true (and counted) when none is left, then it must not be forwarded. */
  private noViaLeft(res: SipMessage): boolean {
    if (res.viaCount(1) > 0) return false;
    this.host.stack.metrics.dropped.inc({ reason: "response_no_via" });
    return true;
  }

  /**
   * The Record-Route a masked call's caller gets (its route set): the values above our first one
   * (the callee's proxies), our signed values as this branch sent them, then exactly the caller's
   * own Record-Route of its INVITE. Whatever the callee's side put below ours, or a list without
   * ours, could take the caller's in-dialog requests (and the caller's number) off didgate's path.
   */
  private maskedRecordRoute(b: Branch, res: SipMessage): void {
    rebuildMaskedRecordRoute(this.host.stack, res, b.rr, this.stx.request.recordRoutes, this.host.signer);
  }

  private forward2xx(b: Branch, res: SipMessage, tx: ClientTransaction): void {
    const host = this.host;
    const masked = this.info.mask !== undefined;
    // a masked call's route set is rebuilt from the branch and the caller's request; otherwise our
    // Record-Route is signed again (the closure holds the host, not the call: see handOff below)
    const rewrite = masked
      ? (r: SipMessage): void => {
          this.maskedRecordRoute(b, r);
          unmaskResponse(r, this.stx.request);
        }
      : this.recordRoute
        ? (r: SipMessage): void => void rewriteRecordRoute(host.stack, r, host.signer)
        : null;
    const up = new Answered2xx(host, this.stx, b.t.throughEdge !== true ? b.t.sendTo : undefined, rewrite);
    if (!up.relay(res)) {
      // a 2xx that cannot go upstream: the callee answered a call the caller never hears of; move on
      if (!this.answered && !b.done) this.branchFailed(b, "no_via", 0, true);
      return;
    }
    if (this.answered) return;
    this.answered = true;
    this.answeredAt = this.host.mono();
    this.answeredTarget = b.t;
    b.done = true;
    this.remove(b);
    this.tried.push(b.t.uri + "=" + res.status);
    this.release(b, res.status, true);
    this.cancelOthers(b, 487, "cancelled");
    this.finish("routed", res.status);
    // the 32 s of Accepted (RFC 6026) need only what relaying a 2xx retransmission needs, not the
    // call; a masked call's 2xx is rebuilt from the call's own state, so it keeps the branch
    if (!masked) tx.handOff(up);
  }

  onBranchTimeout(b: Branch): void {
    if (b.done || this.finished) return;
    if (b.res !== null) this.host.health.suspect(b.res, b.t.uri, "timer B");
    this.branchFailed(b, "timeout", 408, true);
  }

  onBranchTransportError(b: Branch, err: Error): void {
    if (b.done || this.finished) return;
    if (b.res !== null) this.host.health.suspect(b.res, b.t.uri, "transport error: " + err.message);
    this.branchFailed(b, "transport_error", 0, true);
  }

  onBranchTimer(b: Branch, kind: number): void {
    if (kind === INVITE_TIMEOUT) {
      // no provisional response in time: the target is not there (or too slow to be useful);
      // CANCEL goes out if a provisional response still arrives (RFC 3261 9.1)
      b.inviteTimer = null;
      if (b.done || this.finished) return;
      if (b.res !== null) this.host.health.suspect(b.res, b.t.uri, "invite timeout");
      this.cancelBranch(b);
      this.branchFailed(b, "invite_timeout", 408, true);
      return;
    }
    // RING: the target rang too long
    b.ringTimer = null;
    if (b.done || this.finished) return;
    this.cancelBranch(b);
    this.branchFailed(b, "ring_timeout", 408, this.failOn(b).includes(408));
  }

  onTimer(kind: number): void {
    if (kind !== CLEANUP) return;
    this.cleanupTimer = null;
    const z = this.zombies;
    this.zombies = null;
    if (z !== null) for (const t of z) t.terminate();
  }

  /** Upstream CANCEL: cancel the pending branches, answer 487. */
  cancel(): void {
    if (this.finished) return;
    this.cancelled = true;
    this.cancelOthers(null, 487, "cancelled");
    this.stx.reply(487);
    this.finish("cancelled", 487);
  }

  private finishBest(): void {
    if (this.finished) return;
    const b = this.best;
    if (b === null && this.maskRedirected) {
      this.stx.reply(480, "Temporarily Unavailable");
      this.finish("failed", 480);
      return;
    }
    if (this.info.outbound === true && (b === null ? this.limited > 0 : b.status === 503)) {
      // every carrier over its limits or answering 503: busy, try again later
      this.stx.reply(503, "Service Unavailable (all carriers busy)", { headers: [["Retry-After", "1"]] });
      this.finish("failed", 503);
      return;
    }
    if (b === null) {
      if (this.sawLoop) {
        this.stx.reply(482);
        this.finish("loop", 482);
        return;
      }
      this.stx.reply(408);
      this.finish("failed", 408);
      return;
    }
    if (b.status === 503) {
      // RFC 3261 16.7 step 6: a 503 is not forwarded as such
      this.stx.reply(500, "Server Internal Error (all targets unavailable)");
      this.finish("failed", 500);
      return;
    }
    if (this.bestOwn) this.stx.reply(b.status, this.info.mask !== undefined ? undefined : b.reason);
    else {
      b.popVia();
      if (this.info.mask !== undefined) unmaskResponse(b, this.stx.request);
      this.stx.respond(b);
    }
    this.finish("failed", b.status);
  }

  private finish(outcome: CallOutcome, code: number): void {
    if (this.finished) return;
    this.finished = true;
    this.base = null;
    this.finalCode = code;
    this.host.callDone(this, outcome, code);
  }
}

/**
 * The answer of a registered contact (sent to its flow): its Contact is made to name the flow's
 * address, port and transport, so in-dialog requests reach a phone behind NAT (the Contact it
 * gives names its private address) and over its TCP/TLS connection (as Kamailio's
 * fix_nated_contact does). The SDP is left alone.
 */
function flowContact(res: SipMessage, d: ResolvedTarget): void {
  const v = res.get("contact");
  if (v === undefined) return;
  const na = parseNameAddr(v);
  const u = na?.parsedUri;
  if (na === null || na === undefined || u === null || u === undefined || !u.isSip) return;
  u.host = d.address.indexOf(":") >= 0 ? "[" + d.address + "]" : d.address;
  u.port = d.port;
  u.setParam("transport", d.transport);
  na.uri = u.toString();
  res.set("contact", na.toString());
}

/**
 * How a branch's 2xx goes upstream (ProxyCall.forward2xx); after the call is finished, the handler
 * of its client transaction for the rest of Accepted (2xx retransmissions), in place of the call.
 */
class Answered2xx implements ClientTxHandler {
  constructor(
    private readonly host: ProxyHost,
    private readonly stx: ServerTransaction,
    /** The registered contact's flow the answer came from (its Contact is rewritten to it). */
    private readonly flow: ResolvedTarget | undefined,
    /** Record-Route (and masking) of the 2xx; null: none. */
    private readonly rewrite: ((res: SipMessage) => void) | null,
  ) {}

  /**
   * RFC 3261 16.7 step 10: a 2xx always goes upstream, even after the server transaction answered
   * 487 to a CANCEL (the 200 crossed it), or after another branch answered: then statelessly,
   * over the request's connection or per its Via; the caller ACKs (and hangs up). False when no
   * Via is left after ours (it was meant for us: not sent).
   */
  relay(res: SipMessage): boolean {
    res.popVia();
    if (res.viaCount(1) === 0) {
      this.host.stack.metrics.dropped.inc({ reason: "response_no_via" });
      return false;
    }
    if (this.flow !== undefined) flowContact(res, this.flow);
    this.rewrite?.(res);
    if (!this.stx.respond(res)) this.host.stack.sendResponseStateless(res, this.stx.source);
    return true;
  }

  onResponse(res: SipMessage): void {
    if (res.status >= 200 && res.status < 300) this.relay(res);
  }
  onTimeout(): void {}
  onTransportError(): void {}
}

/** Forwards one in-dialog request (or a re-INVITE) and relays its responses. */
export class DialogForward implements ClientTxHandler {
  ctx: EdgeClientTx | null = null;
  /** Cancelled before it was sent (its next hop was still being resolved): it is never sent. */
  cancelled = false;
  constructor(
    private readonly stx: ServerTransaction,
    private readonly stack: EdgeStack,
    private readonly done: ((f: DialogForward) => void) | null,
    /** A request of a masked dialog (src/edge/masking.ts): its responses are unmasked. */
    private readonly masked = false,
    /** Told the final status once (408: no answer, 0: not sent or the transport failed). */
    private readonly final: ((status: number) => void) | null = null,
  ) {}
  onResponse(res: SipMessage): void {
    if (res.status === 100) return;
    res.popVia();
    if (res.viaCount(1) === 0) {
      // RFC 3261 16.7 step 3: meant for us, not forwarded; a final one is answered by us instead
      this.stack.metrics.dropped.inc({ reason: "response_no_via" });
      if (res.status < 200) return;
      // a 2xx to a re-INVITE carries the callee's session description: it cannot be rebuilt
      if (res.status < 300 && this.stx.isInvite) this.stx.reply(500, "Server Internal Error (response without Via)");
      else this.stx.reply(res.status, this.masked ? undefined : res.reason);
    } else {
      if (this.masked) unmaskResponse(res, this.stx.request);
      this.stx.respond(res);
    }
    if (res.status >= 200) {
      this.final?.(res.status);
      if (this.done !== null) this.done(this);
    }
  }
  onTimeout(): void {
    this.stx.reply(408);
    this.final?.(408);
    if (this.done !== null) this.done(this);
  }
  onTransportError(): void {
    this.stx.reply(503, "Service Unavailable (next hop unreachable)");
    this.final?.(0);
    if (this.done !== null) this.done(this);
  }
  /** The caller's CANCEL: the request sent is cancelled; one not sent yet is ended with 487 and never sent. */
  cancel(): void {
    if (this.ctx !== null) return this.ctx.cancel();
    if (this.cancelled) return;
    this.cancelled = true;
    this.stx.reply(487);
    if (this.done !== null) this.done(this);
  }
}

export { targetKey };
