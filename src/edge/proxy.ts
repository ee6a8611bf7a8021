/**
 * Stateful proxying for the SIP edge (RFC 3261 section 16).
 *
 * ProxyCall: one initial INVITE, sent to the route's targets one after the other (sequential
 * forking). Per branch: Request-URI = target URI, our Via (by the stack), Record-Route(s); the
 * branch ends with a final response, Timer B, a transport error or the ring timeout (CANCEL).
 * It fails over on the route's failover_on codes, on Timer B, transport errors and DNS failures;
 * never after a 6xx or an upstream CANCEL. When every target failed, the best response per 16.7
 * goes upstream (408 when none answered).
 *
 * Record-Route: "<sip:HOST:PORT;lr[;transport=tcp];ftag=FROMTAG;dgc=T~ADDR~PORT>". ftag tells the
 * direction of a later in-dialog request (From tag equal: caller to callee); dgc is the carrier's
 * flow (transport, source address, port) so a request towards the carrier reuses its TCP/TLS
 * connection. When the trunk and target sides use different listeners (transport or interface)
 * two Record-Route values are added (RFC 5658 double record-routing). Nothing is kept per dialog:
 * an edge restarted mid-call still routes BYE.
 */
import type { Logger } from "pino";
import {
  parseNameAddr,
  type ClientTransaction,
  type ClientTxHandler,
  type Listener,
  type ServerTransaction,
  type SipMessage,
  type SipStack,
  type SipUri,
  type TimerHandle,
  type TimerTarget,
  type TransportKind,
} from "../sip/index.js";
import type { Target } from "../routing/route.js";
import type { TargetHealth } from "./health.js";
import type { ResolvedTarget, ResolveResult, TargetResolver } from "./resolve.js";
import { targetKey } from "./resolve.js";
import type { VoiceMetrics, CallOutcome } from "./voice-metrics.js";

/** What a call needs from the edge. */
export interface ProxyHost {
  readonly stack: SipStack;
  readonly resolver: TargetResolver;
  readonly health: TargetHealth;
  readonly metrics: VoiceMetrics;
  readonly logger: Logger;
  readonly recordRoute: boolean;
  /** Monotonic ms (setup time). */
  mono(): number;
  /** The call sent its final response upstream (or was cancelled). */
  callDone(call: ProxyCall, outcome: CallOutcome, code: number): void;
}

const RING = 1;
const CLEANUP = 2;

/** Response class rank for 16.7 best-response selection (lower is better). */
function rank(status: number): number {
  if (status >= 600) return 0;
  if (status >= 300 && status < 400) return 1;
  if (status >= 400 && status < 500) return 2;
  return 3; // 5xx
}

/** The carrier-facing flow token for the dgc Record-Route parameter. */
export function flowToken(transport: TransportKind, address: string, port: number): string {
  return transport + "~" + (address.indexOf(":") >= 0 ? "[" + address + "]" : address) + "~" + port;
}

export function parseFlowToken(s: string): { transport: TransportKind; address: string; port: number } | null {
  const a = s.indexOf("~");
  const b = s.lastIndexOf("~");
  if (a <= 0 || b <= a) return null;
  const t = s.slice(0, a);
  if (t !== "udp" && t !== "tcp" && t !== "tls") return null;
  let address = s.slice(a + 1, b);
  if (address.startsWith("[") && address.endsWith("]")) address = address.slice(1, -1);
  const port = Number(s.slice(b + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535 || address.length === 0) return null;
  return { transport: t, address, port };
}

/** Record-Route value for a listener. */
export function recordRouteFor(l: Listener, ftag: string, flow: string): string {
  return (
    "<sip:" + l.sentBy + ";lr" + (l.transport === "udp" ? "" : ";transport=" + l.transport) +
    (ftag.length > 0 ? ";ftag=" + ftag : "") + (flow.length > 0 ? ";dgc=" + flow : "") + ">"
  );
}

export interface CallInfo {
  trunk: string;
  did: string;
  caller: string | undefined;
  routeKey: string | null;
  targets: readonly Target[];
  failoverOn: readonly number[];
  ringMs: number;
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
  private ringTimer: TimerHandle = null;
  private cleanupTimer: TimerHandle = null;
  private zombies: ClientTransaction[] | null = null;
  private order: readonly Target[];
  private inRR: string;
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
    this.inRR = host.recordRoute ? recordRouteFor(src.listener, stx.request.fromTag ?? "", flowToken(src.transport, src.address, src.port)) : "";
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
    const stack = this.host.stack;
    const fwd = this.base.clone();
    fwd.requestUri = this.curUri;
    if (this.host.recordRoute) {
      const out = stack.listenerFor(r.transport, r.address);
      fwd.pushRecordRoute(this.inRR);
      if (out !== undefined && out !== this.stx.source.listener) fwd.pushRecordRoute(recordRouteFor(out, this.stx.request.fromTag ?? "", ""));
    }
    this.cur = r;
    this.host.health.track(r, this.curUri);
    // a send error can be reported synchronously, from inside request(): it is for this branch
    const seq = ++this.branchSeq;
    this.sendingSeq = seq;
    const tx = stack.request(fwd, { transport: r.transport, host: r.address, port: r.port }, this);
    this.sendingSeq = 0;
    if (this.branchSeq === seq && !this.finished) this.ctx = tx;
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
      if (this.ringTimer === null) {
        this.host.health.alive(this.cur!.key);
        this.ringTimer = this.host.stack.timers.set(this.info.ringMs, this, RING);
      }
      if (st === 100) return;
      if (this.finished) return;
      res.popVia();
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
    if (this.best === null || rank(st) < rank(this.best.status)) this.best = res;
    if (st >= 600) {
      this.failover(false);
      return;
    }
    this.failover(this.info.failoverOn.includes(st));
  }

  private forward2xx(res: SipMessage, tx: ClientTransaction): void {
    res.popVia();
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
    b.popVia();
    this.stx.respond(b);
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
    private readonly done: ((f: DialogForward) => void) | null,
  ) {}
  onResponse(res: SipMessage): void {
    if (res.status === 100) return;
    res.popVia();
    this.stx.respond(res);
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

/** Result of loose-routing an in-dialog request. */
export interface DialogRoute {
  /** Towards the carrier (true) or the target (false). */
  upstream: boolean;
  /** Carrier flow recorded in our Record-Route, if any. */
  flow: { transport: TransportKind; address: string; port: number } | null;
  /** The next hop URI: the first remaining Route or the Request-URI. */
  next: SipUri;
}

/**
 * Loose routing (16.4, 16.6 step 6-7): pops every Route that is ours (double Record-Route puts two),
 * then tells the direction from the ftag of the last one popped. Returns null when the request
 * carries no Route of ours (we did not record-route this dialog, or it is not a dialog of ours).
 */
export function routeInDialog(stack: SipStack, req: SipMessage): DialogRoute | null {
  let ours: SipUri | null = null;
  for (;;) {
    const top = req.topRoute;
    if (top === undefined) break;
    const u = parseNameAddr(top)?.parsedUri;
    if (u === null || u === undefined || !stack.isLocalUri(u)) break;
    ours = u;
    req.popRoute();
  }
  if (ours === null) return null;
  const ftag = ours.param("ftag");
  const upstream = typeof ftag === "string" ? req.fromTag !== ftag : false;
  const f = ours.param("dgc");
  const flow = typeof f === "string" ? parseFlowToken(f) : null;
  const top = req.topRoute;
  const next = top !== undefined ? parseNameAddr(top)?.parsedUri ?? null : req.parsedRequestUri;
  if (next === null || !next.isSip) return null;
  return { upstream, flow, next };
}

export { targetKey };
