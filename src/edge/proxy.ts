/**
 * Forking policy of the SIP edge (RFC 3261 section 16): which target gets the call next, and when.
 *
 * ProxyCall: one initial INVITE, sent to the route's targets one after the other (sequential
 * forking). Per branch: Request-URI = target URI, our Via (by the stack, with a loop-detection
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
  type SipStack,
  type TimerHandle,
  type TimerTarget,
} from "../sip/index.js";
import { parseUri } from "../sip/uri.js";
import { hopOfAddress, hopOfUri, inviteBinding, loopBranch, loopHash, recordRouteFor, rewriteRecordRoute, type DialogBinding, type DialogSigner } from "../sip/rr.js";
import type { Target } from "../routing/route.js";
import type { TargetHealth } from "./health.js";
import type { ResolvedTarget, ResolveResult, TargetResolver } from "../sip/resolve.js";
import { targetKey } from "../sip/resolve.js";
import type { VoiceMetrics, CallOutcome } from "./voice-metrics.js";

/** What a call needs from the edge. */
export interface ProxyHost {
  readonly stack: SipStack;
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
  /** The call sent its final response upstream (or was cancelled). */
  callDone(call: ProxyCall, outcome: CallOutcome, code: number): void;
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
}

/** One initial INVITE being proxied. */
export class ProxyCall implements ClientTxHandler, TimerTarget {
  /** Targets tried, for the call log: "uri=code". */
  readonly tried: string[] = [];
  private idx = 0;
  private ctx: ClientTransaction | null = null;
  private cur: ResolvedTarget | null = null;
  private curUri = "";
  private best: SipMessage | null = null;
  /** best arrived without a Via below ours: answer with its status, do not forward it */
  private bestOwn = false;
  private ringTimer: TimerHandle = null;
  private inviteTimer: TimerHandle = null;
  /** A target was didgate itself (answer 482 when nothing else answered). */
  private sawLoop = false;
  private readonly loopHash: string;
  private readonly up: DialogBinding;
  private cleanupTimer: TimerHandle = null;
  private zombies: ClientTransaction[] | null = null;
  private order: readonly Target[];
  finished = false;
  private cancelled = false;
  private branchSeq = 0;
  private sendingSeq = 0;
  finalCode = 0;
  private answeredBy: ClientTransaction | null = null;

  constructor(
    private readonly host: ProxyHost,
    readonly stx: ServerTransaction,
    /** Prepared request: Max-Forwards decremented, internal headers handled, Route removed. */
    private readonly base: SipMessage,
    readonly info: CallInfo,
  ) {
    this.order = info.targets;
    const src = stx.source;
    this.loopHash = loopHash(stx.request);
    this.up = inviteBinding(stx.request, { transport: src.transport, address: src.address, port: src.port }, []);
  }

  start(): void {
    const h = this.host.health;
    if (h.down > 0) this.order = this.healthyOrder();
    this.next();
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

  /** Try the next target, or give up with the best response. */
  private next(): void {
    if (this.finished) return;
    if (this.idx >= this.order.length) {
      this.finishBest();
      return;
    }
    const t = this.order[this.idx++]!;
    this.curUri = t.uri;
    const r = this.host.resolver.resolveSync(t.uri);
    if (r !== undefined) this.onResolved(r);
    else void this.host.resolver.resolve(t.uri).then((x) => this.onResolved(x));
  }

  private onResolved(r: ResolveResult): void {
    if (this.finished) return;
    if ("error" in r) {
      this.tried.push(this.curUri + "=dns");
      this.host.logger.debug({ uri: this.curUri, err: r.error }, "sip target unresolvable");
      this.failover(true);
      return;
    }
    if (this.host.isOwnTarget(r)) {
      // RFC 3261 16.3 step 4 / 16.6: a route pointing at ourselves would loop until Max-Forwards
      // or a rate limit ends it
      this.tried.push(this.curUri + "=loop");
      this.sawLoop = true;
      this.host.logger.warn({ uri: this.curUri, did: this.info.did, route_key: this.info.routeKey }, "sip target is didgate itself (loop); skipped");
      this.failover(true);
      return;
    }
    const stack = this.host.stack;
    const fwd = this.base.clone();
    fwd.requestUri = this.curUri;
    if (this.host.recordRoute) {
      const out = stack.listenerFor(r.transport, r.address);
      const down = [hopOfAddress(r.address, r.port)];
      const u = parseUri(this.curUri);
      if (u !== null && u.isSip) {
        const h = hopOfUri(u);
        if (h !== down[0]) down.unshift(h);
      }
      const b: DialogBinding = { ...this.up, down };
      const signer = this.host.signer;
      fwd.pushRecordRoute(recordRouteFor(this.stx.source.listener, b, signer));
      if (out !== undefined && out !== this.stx.source.listener) fwd.pushRecordRoute(recordRouteFor(out, b, signer));
    }
    this.cur = r;
    this.host.health.track(r, this.curUri);
    // a send error can be reported synchronously, from inside request(): it is for this branch
    const seq = ++this.branchSeq;
    this.sendingSeq = seq;
    const branch = loopBranch(this.loopHash, stack.newBranch().slice(7));
    const tx = stack.request(fwd, { transport: r.transport, host: r.address, port: r.port }, this, { branch });
    this.sendingSeq = 0;
    if (this.branchSeq === seq && !this.finished) {
      this.ctx = tx;
      if (this.info.inviteMs > 0 && !tx.terminated) this.inviteTimer = stack.timers.set(this.info.inviteMs, this, INVITE_TIMEOUT);
    }
  }

  /** True when tx is the current branch (or the one being sent right now). */
  private current(tx: ClientTransaction): boolean {
    return tx === this.ctx || (this.sendingSeq !== 0 && this.ctx === null);
  }

  /** Move on after a failed branch (or give up). */
  private failover(allowed: boolean): void {
    this.ctx = null;
    this.cur = null;
    if (this.cancelled || this.finished) return;
    if (allowed && this.idx < this.order.length) {
      this.host.metrics.failoverOf(this.info.trunk, "").inc();
      this.next();
    } else this.finishBest();
  }

  private clearRing(): void {
    if (this.ringTimer !== null) {
      this.host.stack.timers.clear(this.ringTimer);
      this.ringTimer = null;
    }
    this.clearInviteTimer();
  }

  private clearInviteTimer(): void {
    if (this.inviteTimer !== null) {
      this.host.stack.timers.clear(this.inviteTimer);
      this.inviteTimer = null;
    }
  }

  // ---- ClientTxHandler

  onResponse(res: SipMessage, tx: ClientTransaction): void {
    const st = res.status;
    if (tx !== this.ctx) {
      // an older branch (cancelled on ring timeout): only a 2xx matters, and it must go upstream
      if (st >= 200 && st < 300) this.forward2xx(res, tx);
      return;
    }
    if (st < 200) {
      this.clearInviteTimer();
      if (this.ringTimer === null) {
        this.host.health.alive(this.cur!.key);
        this.ringTimer = this.host.stack.timers.set(this.info.ringMs, this, RING);
      }
      if (st === 100) return;
      if (this.finished) return;
      res.popVia();
      if (this.noViaLeft(res)) return;
      // a provisional response with a To tag sets up an early dialog (reliable 1xx, PRACK, UPDATE)
      if (this.host.recordRoute && res.toTag !== undefined) rewriteRecordRoute(this.host.stack, res, this.host.signer);
      this.stx.respond(res);
      return;
    }
    this.clearRing();
    if (st < 300) {
      this.forward2xx(res, tx);
      return;
    }
    this.host.health.alive(this.cur!.key);
    this.tried.push(this.curUri + "=" + st);
    // only our Via: the response may not be forwarded (RFC 3261 16.7 step 3); if it is the best
    // one, didgate answers with its status itself
    const own = res.vias.length < 2;
    if (own) this.host.stack.metrics.dropped.inc({ reason: "response_no_via" });
    if (this.best === null || rank(st) < rank(this.best.status)) {
      this.best = res;
      this.bestOwn = own;
    }
    if (st >= 600) {
      this.failover(false);
      return;
    }
    this.failover(this.info.failoverOn.includes(st));
  }

  /** After popping our Via: true (and counted) when none is left, then it must not be forwarded. */
  private noViaLeft(res: SipMessage): boolean {
    if (res.vias.length > 0) return false;
    this.host.stack.metrics.dropped.inc({ reason: "response_no_via" });
    return true;
  }

  private forward2xx(res: SipMessage, tx: ClientTransaction): void {
    res.popVia();
    if (this.noViaLeft(res)) {
      // a 2xx that cannot go upstream: the callee answered a call the caller never hears of; move on
      if (this.answeredBy === null && tx === this.ctx) {
        this.tried.push(this.curUri + "=no_via");
        this.failover(true);
      }
      return;
    }
    if (this.host.recordRoute) rewriteRecordRoute(this.host.stack, res, this.host.signer);
    // RFC 3261 16.7 step 10: a 2xx always goes upstream, even after the server transaction
    // answered 487 to a CANCEL (the 200 crossed it): then statelessly, over the request's
    // connection or per its Via; the caller ACKs and hangs up.
    if (!this.stx.respond(res)) this.host.stack.sendResponseStateless(res, this.stx.source);
    if (this.answeredBy === null) {
      this.answeredBy = tx;
      this.tried.push(this.curUri + "=" + res.status);
      if (tx !== this.ctx && this.ctx !== null) this.cancelBranch();
      this.ctx = null;
      this.finish("routed", res.status);
    }
  }

  onTimeout(tx: ClientTransaction): void {
    if (!this.current(tx)) return;
    this.clearRing();
    this.tried.push(this.curUri + "=timeout");
    this.host.health.suspect(this.cur!, this.curUri, "timer B");
    this.failover(true);
  }

  onTransportError(tx: ClientTransaction, err: Error): void {
    if (!this.current(tx)) return;
    this.clearRing();
    this.tried.push(this.curUri + "=transport_error");
    this.host.health.suspect(this.cur!, this.curUri, "transport error: " + err.message);
    this.failover(true);
  }

  onTimer(kind: number): void {
    if (kind === CLEANUP) {
      this.cleanupTimer = null;
      const z = this.zombies;
      this.zombies = null;
      if (z !== null) for (const t of z) t.terminate();
      return;
    }
    if (kind === INVITE_TIMEOUT) {
      // no provisional response in time: the target is not there (or too slow to be useful);
      // CANCEL goes out if a provisional response still arrives (RFC 3261 9.1)
      this.inviteTimer = null;
      if (this.ctx === null || this.finished) return;
      this.tried.push(this.curUri + "=invite_timeout");
      this.host.health.suspect(this.cur!, this.curUri, "invite timeout");
      this.cancelBranch();
      this.failover(true);
      return;
    }
    // RING: the target rang too long
    this.ringTimer = null;
    if (this.ctx === null || this.finished) return;
    this.tried.push(this.curUri + "=ring_timeout");
    this.cancelBranch();
    this.failover(this.info.failoverOn.includes(408));
  }

  /** CANCEL the current branch; it is terminated 64*T1 later if it never completes. */
  private cancelBranch(): void {
    const c = this.ctx;
    if (c === null) return;
    this.ctx = null;
    c.cancel();
    (this.zombies ??= []).push(c);
    if (this.cleanupTimer === null) this.cleanupTimer = this.host.stack.timers.set(64 * this.host.stack.timerConfig.t1, this, CLEANUP);
  }

  /** Upstream CANCEL: cancel the pending branch, answer 487. */
  cancel(): void {
    if (this.finished) return;
    this.cancelled = true;
    this.clearRing();
    this.tried.push(this.curUri + "=cancelled");
    this.cancelBranch();
    this.stx.reply(487);
    this.finish("cancelled", 487);
  }

  private finishBest(): void {
    if (this.finished) return;
    const b = this.best;
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
    if (this.bestOwn) this.stx.reply(b.status, b.reason);
    else {
      b.popVia();
      this.stx.respond(b);
    }
    this.finish("failed", b.status);
  }

  private finish(outcome: CallOutcome, code: number): void {
    if (this.finished) return;
    this.finished = true;
    this.finalCode = code;
    this.clearRing();
    this.host.callDone(this, outcome, code);
  }
}

/** Forwards one in-dialog request (or a re-INVITE) and relays its responses. */
export class DialogForward implements ClientTxHandler {
  ctx: ClientTransaction | null = null;
  constructor(
    private readonly stx: ServerTransaction,
    private readonly stack: SipStack,
    private readonly done: ((f: DialogForward) => void) | null,
  ) {}
  onResponse(res: SipMessage): void {
    if (res.status === 100) return;
    res.popVia();
    if (res.vias.length === 0) {
      // RFC 3261 16.7 step 3: meant for us, not forwarded; a final one is answered by us instead
      this.stack.metrics.dropped.inc({ reason: "response_no_via" });
      if (res.status < 200) return;
      // a 2xx to a re-INVITE carries the callee's session description: it cannot be rebuilt
      if (res.status < 300 && this.stx.isInvite) this.stx.reply(500, "Server Internal Error (response without Via)");
      else this.stx.reply(res.status, res.reason);
    } else this.stx.respond(res);
    if (res.status >= 200 && this.done !== null) this.done(this);
  }
  onTimeout(): void {
    this.stx.reply(408);
    if (this.done !== null) this.done(this);
  }
  onTransportError(): void {
    this.stx.reply(503, "Service Unavailable (next hop unreachable)");
    if (this.done !== null) this.done(this);
  }
  cancel(): void {
    this.ctx?.cancel();
  }
}

export { targetKey };
