/**
 * RFC 3261 section 17 transactions (with the RFC 6026 "Accepted" states), driven by an
 * injectable Timers. Timer names follow the RFC: A/B/D (INVITE client), E/F/K (non-INVITE
 * client), G/H/I (INVITE server), J (non-INVITE server), L/M (RFC 6026).
 *
 * Retransmissions only happen on UDP; on TCP/TLS timers A, E, G are not started and D, I, J, K
 * are zero. Timeouts (B, F, H) apply on every transport.
 */
import { HDR } from "./headers.js";
import { SipMessage } from "./message.js";
import { SipParseError, parseMessage, type ParseLimits } from "./parse.js";
import { createResponse, randomToken, type ResponseOptions } from "./response.js";
import type { SipMetrics } from "./metrics.js";
import type { TimerHandle, TimerTarget, Timers } from "./timers.js";
import type { Connection, Source, Target, TransportLayer } from "./transport.js";

export interface TimerConfig {
  /** RTT estimate, ms (default 500). */
  t1: number;
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses, ms (default 4000). */
  t2: number;
  /** Maximum time a message stays in the network, ms (default 5000). */
  t4: number;
  /**
   * How long a finished transaction stays, over UDP, to absorb retransmissions (timers D and J of
   * RFC 3261, L and M of RFC 6026), ms: at most 64 × T1 (32 s, the RFCs' value; D at most 32 s).
   * Shorter, a finished call's state is let go sooner (Kamailio's tm keeps it 5 s: wt_timer); a
   * retransmission that comes later is handled as the stateless proxy would (a 2xx is relayed
   * by our signed Record-Route, a request is forwarded again).
   */
  wait?: number;
}

/** What a transaction needs from the stack. */
export interface TxContext {
  readonly timers: Timers;
  readonly timerConfig: TimerConfig;
  readonly metrics: SipMetrics;
  readonly transport: Pick<TransportLayer, "send" | "getConnection" | "internalError">;
  /** @internal */ serverTerminated(tx: ServerTransaction): void;
  /** @internal */ clientTerminated(tx: ClientTransaction): void;
  /** @internal */ responseTarget(tx: ServerTransaction): Target | null;
  /** @internal */ sendCancel(tx: ClientTransaction): void;
}

export type ServerTxState = "trying" | "proceeding" | "completed" | "confirmed" | "accepted" | "terminated";
export type ClientTxState = "calling" | "trying" | "proceeding" | "completed" | "accepted" | "terminated";

const G = 1, H = 2, I = 3, J = 4, L = 5, LIFETIME = 6;

/** Optional callbacks of a server transaction (set them on `tx.events`). */
export interface ServerTxEvents {
  /** Timer H fired: no ACK came for our non-2xx final response to an INVITE. */
  onAckTimeout?(tx: ServerTransaction): void;
  /** The ACK for our non-2xx final response arrived. */
  onAck?(tx: ServerTransaction, ack: SipMessage): void;
  /** A CANCEL matching this INVITE transaction arrived (before the stack reports the CANCEL). */
  onCancel?(tx: ServerTransaction, cancel: ServerTransaction): void;
  /** Sending a response failed (connection gone, no route). */
  onTransportError?(tx: ServerTransaction, err: Error): void;
  onTerminated?(tx: ServerTransaction): void;
}

/**
 * How long a finished transaction stays: TimerConfig.wait, at most `max` (the RFC's value), and at
 * least T2 (a request whose final response was lost comes again within T2: it must find its transaction).
 */
function linger(tc: TimerConfig, max = 64 * tc.t1): number {
  return Math.min(max, Math.max(tc.wait ?? Infinity, tc.t2));
}

/** Limits for parsing a request again from bytes we sent or already parsed once (ours may exceed the wire limits). */
const OWN_LIMITS: ParseLimits = { maxMessageSize: 1 << 30, maxHeaders: 1 << 20, maxHeaderLength: 1 << 30 };

/** A transaction's request parsed again from its bytes, after the parsed one was let go. */
function parseAgain(buf: Buffer, what: string): SipMessage {
  const p = parseMessage(buf, { limits: OWN_LIMITS });
  if (p instanceof SipParseError) throw new Error(what + " does not parse again: " + p.toString());
  return p;
}

export class ServerTransaction implements TimerTarget {
  /**
   * The request as received. Let go once a final response is sent (the transaction then lives on
   * for up to 32 s with only what absorbing retransmissions needs); parsed again from the bytes
   * received if anyone asks after that (a change made to it before is not in that copy).
   */
  get request(): SipMessage {
    return (this.req ??= parseAgain(this.raw!, "server transaction: received request"));
  }
  private req: SipMessage | null;
  private readonly raw: Buffer | null;
  /** The request's Call-ID ("" when it had none); kept when the parsed request is let go. */
  get callId(): string {
    return (this.cid ??= this.request.callId ?? "");
  }
  private cid: string | undefined = undefined;
  readonly source: Source;
  /** @internal table key */
  readonly key: string;
  readonly isInvite: boolean;
  readonly method: string;
  state: ServerTxState;
  /** For a CANCEL: the INVITE server transaction it cancels (null when none matched). */
  cancels: ServerTransaction | null = null;
  /** For an INVITE: set once a matching CANCEL arrived. */
  cancelled = false;
  /** To-tag used by reply() for every response of this transaction. */
  private tag: string | undefined;
  /** The To-tag of responses this transaction generates; made on first use (a proxied request never needs one). */
  get toTag(): string {
    return (this.tag ??= randomToken(6));
  }
  events: ServerTxEvents = {};
  /** Last status sent (0 before any). */
  lastStatus = 0;
  private lastResponse: Buffer | null = null;
  private target: Target | null | undefined = undefined;
  private retransTimer: TimerHandle = null;
  private endTimer: TimerHandle = null;
  private interval = 0;
  private readonly reliable: boolean;

  constructor(
    private readonly ctx: TxContext,
    request: SipMessage,
    source: Source,
    key: string,
    lifetimeMs: number,
  ) {
    this.req = request;
    this.raw = request.raw;
    this.source = source;
    this.key = key;
    this.method = request.method;
    this.isInvite = request.method === "INVITE";
    this.state = this.isInvite ? "proceeding" : "trying";
    this.reliable = source.transport !== "udp";
    // safety net so a TU that never answers cannot pin the entry forever
    this.endTimer = ctx.timers.set(lifetimeMs, this, LIFETIME);
  }

  get terminated(): boolean {
    return this.state === "terminated";
  }

  /** Build a response to this request (To-tag = tx.toTag) and send it. */
  reply(status: number, reason?: string, opts?: ResponseOptions): SipMessage {
    const res = createResponse(this.request, status, reason, { ...opts, toTag: opts?.toTag ?? this.toTag });
    this.respond(res);
    return res;
  }

  /**
   * Send a response (built with createResponse or forwarded from downstream). Returns false when
   * the transaction state does not allow it (already final, terminated).
   */
  respond(res: SipMessage): boolean {
    const st = res.status;
    const s = this.state;
    if (s === "terminated" || s === "completed" || s === "confirmed") return false;
    if (s === "accepted") {
      // RFC 6026: 2xx retransmissions from the TU pass through; nothing else
      if (st < 200 || st >= 300) return false;
      this.send(res.toBuffer(), st, res);
      return true;
    }
    const buf = res.toBuffer();
    this.lastResponse = buf;
    this.lastStatus = st;
    this.send(buf, st, res);
    if (st < 200) {
      if (s === "trying") this.state = "proceeding";
      return true;
    }
    if (this.raw !== null) {
      // the voice edge reads the Call-ID until the call ends: kept, not parsed again then
      this.cid ??= this.req?.callId ?? "";
      this.req = null;
    }
    const t = this.ctx.timers;
    const tc = this.ctx.timerConfig;
    this.clearTimers();
    if (this.isInvite) {
      if (st < 300) {
        this.state = "accepted";
        this.endTimer = t.set(linger(tc), this, L);
      } else {
        this.state = "completed";
        if (!this.reliable) {
          this.interval = tc.t1;
          this.retransTimer = t.set(this.interval, this, G);
        }
        this.endTimer = t.set(64 * tc.t1, this, H);
      }
    } else {
      this.state = "completed";
      this.endTimer = t.set(this.reliable ? 0 : linger(tc), this, J);
    }
    return true;
  }

  private send(buf: Buffer, status: number, _res: SipMessage): void {
    if (this.target === undefined) this.target = this.ctx.responseTarget(this);
    const tg = this.target;
    this.ctx.metrics.message("out", this.source.transport, false, this.method, status);
    if (tg === null) {
      this.transportError(new Error("no route for the response (top Via unusable)"));
      return;
    }
    this.ctx.transport.send(buf, tg, this.source.connection, this.events.onTransportError ? (e) => this.transportError(e) : undefined);
  }

  private transportError(e: Error): void {
    this.ctx.metrics.transportErrors.inc({ transport: this.source.transport, reason: "response" });
    this.events.onTransportError?.(this, e);
  }

  /** @internal a retransmission of the request arrived */
  receiveRetransmission(): void {
    this.ctx.metrics.retransmission("in", "request");
    if ((this.state === "proceeding" || this.state === "completed") && this.lastResponse !== null) {
      this.ctx.metrics.retransmission("out", "response");
      this.send(this.lastResponse, this.lastStatus, null as unknown as SipMessage);
    }
  }

  /** @internal an ACK matching this INVITE transaction arrived */
  receiveAck(ack: SipMessage): void {
    if (this.state === "completed") {
      this.state = "confirmed";
      this.clearTimers();
      this.endTimer = this.ctx.timers.set(this.reliable ? 0 : this.ctx.timerConfig.t4, this, I);
      this.events.onAck?.(this, ack);
    } else {
      this.ctx.metrics.retransmission("in", "request");
    }
  }

  /** @internal */
  receiveCancel(cancel: ServerTransaction): void {
    this.cancelled = true;
    this.events.onCancel?.(this, cancel);
  }

  onTimer(kind: number): void {
    if (this.state === "terminated") return;
    switch (kind) {
      case G:
        if (this.state !== "completed" || this.lastResponse === null) return;
        this.ctx.metrics.retransmission("out", "response");
        this.send(this.lastResponse, this.lastStatus, null as unknown as SipMessage);
        this.interval = Math.min(this.interval * 2, this.ctx.timerConfig.t2);
        this.retransTimer = this.ctx.timers.set(this.interval, this, G);
        return;
      case H:
        this.terminate();
        this.events.onAckTimeout?.(this);
        return;
      default:
        this.terminate();
    }
  }

  private clearTimers(): void {
    const t = this.ctx.timers;
    if (this.retransTimer !== null) t.clear(this.retransTimer);
    if (this.endTimer !== null) t.clear(this.endTimer);
    this.retransTimer = this.endTimer = null;
  }

  /** Terminate now (stops timers, removes the transaction from the table). */
  terminate(): void {
    if (this.state === "terminated") return;
    this.state = "terminated";
    this.clearTimers();
    this.ctx.serverTerminated(this);
    this.events.onTerminated?.(this);
  }
}

/** Callbacks of a client transaction. */
export interface ClientTxHandler {
  /** Every response matched to the transaction (1xx, the final one, and 2xx retransmissions). */
  onResponse(res: SipMessage, tx: ClientTransaction): void;
  /** Timer B / F fired: no final response. */
  onTimeout(tx: ClientTransaction): void;
  /** The request could not be sent (connect failed, connection lost, no listener). */
  onTransportError(tx: ClientTransaction, err: Error): void;
  onTerminated?(tx: ClientTransaction): void;
}

const A = 11, B = 12, D = 13, E = 14, F = 15, K = 16, M = 17;

/** The handler of a transaction whose final response was delivered and that will call it no more. */
const FINISHED: ClientTxHandler = { onResponse: () => {}, onTimeout: () => {}, onTransportError: () => {} };

export class ClientTransaction implements TimerTarget {
  /**
   * The request as sent. Let go once a final response has been delivered (the transaction then
   * lives on for 32 s with only what absorbing retransmissions needs); parsed again from the bytes
   * sent if anyone asks after that.
   */
  get request(): SipMessage {
    return (this.req ??= parseAgain(this.buf, "client transaction: own request"));
  }
  private req: SipMessage | null;
  readonly target: Target;
  /** @internal table key */
  readonly key: string;
  readonly branch: string;
  readonly isInvite: boolean;
  readonly method: string;
  state: ClientTxState;
  /** Highest status received (0 before any response). */
  lastStatus = 0;
  /** The connection the request went out on, once known (TCP/TLS). */
  connection: Connection | null = null;
  /** @internal */ cancelRequested = false;
  /** @internal */ cancelHandler: ClientTxHandler | undefined = undefined;
  private buf: Buffer;
  private ackBuf: Buffer | null = null;
  private retransTimer: TimerHandle = null;
  private endTimer: TimerHandle = null;
  private interval: number;
  private readonly reliable: boolean;
  private readonly onErr = (e: Error): void => this.onSendError(e);

  constructor(
    private readonly ctx: TxContext,
    request: SipMessage,
    target: Target,
    branch: string,
    private handler: ClientTxHandler,
  ) {
    this.req = request;
    this.target = target;
    this.branch = branch;
    this.method = request.method;
    this.isInvite = request.method === "INVITE";
    this.key = branch + "|" + request.method;
    this.state = this.isInvite ? "calling" : "trying";
    this.reliable = target.transport !== "udp";
    this.buf = request.toBuffer();
    this.interval = ctx.timerConfig.t1;
  }

  /** @internal send the request and start timers */
  start(): void {
    const t = this.ctx.timers;
    const tc = this.ctx.timerConfig;
    this.transmit(false);
    if (this.state === "terminated") return;
    if (!this.reliable) this.retransTimer = t.set(this.interval, this, this.isInvite ? A : E);
    this.endTimer = t.set(64 * tc.t1, this, this.isInvite ? B : F);
  }

  get terminated(): boolean {
    return this.state === "terminated";
  }

  private transmit(retrans: boolean): void {
    const m = this.ctx.metrics;
    if (retrans) m.retransmission("out", "request");
    else m.message("out", this.target.transport, true, this.method, 0);
    this.ctx.transport.send(this.buf, this.target, null, this.onErr);
    if (this.connection === null && this.target.transport !== "udp")
      this.connection = this.ctx.transport.getConnection(this.target.transport, this.target.address, this.target.port) ?? null;
  }

  /** @internal the connection the request went out on closed */
  connectionLost(): void {
    this.onSendError(new Error("connection closed before a final response"));
  }

  private onSendError(err: Error): void {
    if (this.state === "terminated" || this.state === "completed" || this.state === "accepted") return;
    this.terminate();
    this.safe(() => this.handler.onTransportError(this, err));
  }

  /**
   * Cancel this INVITE (RFC 3261 9.1): sends a CANCEL to the same target once a provisional
   * response has arrived (deferred until then). No-op after a final response.
   */
  cancel(handler?: ClientTxHandler): void {
    if (!this.isInvite || this.cancelRequested) return;
    if (this.state !== "calling" && this.state !== "proceeding") return;
    this.cancelRequested = true;
    this.cancelHandler = handler;
    if (this.state === "proceeding") this.ctx.sendCancel(this);
  }

  /** @internal a response matched this transaction */
  receiveResponse(res: SipMessage): void {
    const st = res.status;
    const s = this.state;
    const t = this.ctx.timers;
    const tc = this.ctx.timerConfig;
    if (s === "terminated") return;
    if (s === "completed") {
      // retransmitted final response: re-send the ACK (INVITE), absorb
      this.ctx.metrics.retransmission("in", "response");
      if (this.ackBuf !== null && st >= 300) this.ctx.transport.send(this.ackBuf, this.target, this.connection, undefined);
      return;
    }
    if (s === "accepted") {
      // RFC 6026: 2xx retransmissions go to the TU, others are absorbed
      if (st >= 200 && st < 300) this.deliver(res);
      else this.ctx.metrics.retransmission("in", "response");
      return;
    }
    if (st < 200) {
      if (s === "calling" || s === "trying") {
        this.state = "proceeding";
        if (this.isInvite) {
          if (this.retransTimer !== null) t.clear(this.retransTimer);
          this.retransTimer = null;
          // RFC 3261: timer B only guards the Calling state
          if (this.endTimer !== null) t.clear(this.endTimer);
          this.endTimer = null;
          if (this.cancelRequested) this.ctx.sendCancel(this);
        }
      }
      if (st > this.lastStatus) this.lastStatus = st;
      this.deliver(res);
      return;
    }
    this.lastStatus = st;
    this.clearTimers();
    if (this.isInvite) {
      if (st < 300) {
        this.state = "accepted";
        this.endTimer = t.set(linger(tc), this, M);
      } else {
        this.state = "completed";
        this.ackBuf = this.buildAck(res).toBuffer();
        this.ctx.transport.send(this.ackBuf, this.target, this.connection, undefined);
        this.endTimer = t.set(this.reliable ? 0 : linger(tc, 32_000), this, D);
      }
    } else {
      this.state = "completed";
      this.endTimer = t.set(this.reliable ? 0 : tc.t4, this, K);
    }
    this.deliver(res);
    this.req = null;
    // Completed: retransmissions are absorbed here and the handler is not called again (none has
    // onTerminated but a few): let it go, not hold it (a call, its branches) for Timer D's 32 s
    if (this.state === "completed" && this.handler.onTerminated === undefined) this.handler = FINISHED;
  }

  /**
   * Hand the rest of the transaction to another handler: in Accepted, a finished call keeps for
   * its 2xx retransmissions only what relaying them needs, not the whole call.
   */
  handOff(handler: ClientTxHandler): void {
    if (this.state !== "terminated") this.handler = handler;
  }

  private deliver(res: SipMessage): void {
    try {
      this.handler.onResponse(res, this);
    } catch (e) {
      this.ctx.transport.internalError(e);
    }
  }

  private safe(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.ctx.transport.internalError(e);
    }
  }

  /** ACK for a non-2xx final response (RFC 3261 17.1.1.3). */
  private buildAck(res: SipMessage): SipMessage {
    const req = this.request;
    const h: Array<[string, string]> = [["Via", req.vias[0]!]];
    for (const r of req.getAll("route")) h.push(["Route", r]);
    h.push(["Max-Forwards", "70"]);
    h.push(["From", req.getById(HDR.FROM) ?? ""]);
    h.push(["To", res.getById(HDR.TO) ?? ""]);
    h.push(["Call-ID", req.callId ?? ""]);
    h.push(["CSeq", (req.cseq?.seq ?? 0) + " ACK"]);
    return SipMessage.request("ACK", req.requestUri, h);
  }

  onTimer(kind: number): void {
    if (this.state === "terminated") return;
    const tc = this.ctx.timerConfig;
    switch (kind) {
      case A:
        if (this.state !== "calling") return;
        this.transmit(true);
        this.interval *= 2;
        this.retransTimer = this.ctx.timers.set(this.interval, this, A);
        return;
      case E:
        if (this.state !== "trying" && this.state !== "proceeding") return;
        this.transmit(true);
        this.interval = this.state === "proceeding" ? tc.t2 : Math.min(this.interval * 2, tc.t2);
        this.retransTimer = this.ctx.timers.set(this.interval, this, E);
        return;
      case B:
      case F:
        this.terminate();
        this.safe(() => this.handler.onTimeout(this));
        return;
      default:
        // D, K, M
        this.terminate();
    }
  }

  private clearTimers(): void {
    const t = this.ctx.timers;
    if (this.retransTimer !== null) t.clear(this.retransTimer);
    if (this.endTimer !== null) t.clear(this.endTimer);
    this.retransTimer = this.endTimer = null;
  }

  /** Terminate now (stops timers, removes from the table; late responses become stray). */
  terminate(): void {
    if (this.state === "terminated") return;
    this.state = "terminated";
    this.clearTimers();
    this.ctx.clientTerminated(this);
    if (this.handler.onTerminated) this.safe(() => this.handler.onTerminated!(this));
  }
}
