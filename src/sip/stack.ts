/**
 * SipStack: transports + transaction layer. See index.ts for the API overview.
 */
import dns from "node:dns";
import net from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { Via } from "./headers.js";
import { SipMessage } from "./message.js";
import { DEFAULT_LIMITS, SipParseError, parseMessage, type ParseLimits } from "./parse.js";
import { canRespond, createResponse, randomToken } from "./response.js";
import { SipMetrics } from "./metrics.js";
import { ClientTransaction, ServerTransaction, type ClientTxHandler, type TimerConfig, type TxContext } from "./transaction.js";
import { realTimers, type Timers } from "./timers.js";
import {
  Connection,
  Listener,
  TransportLayer,
  type ListenSpec,
  type Source,
  type Target,
  type TlsOptions,
  type TransportKind,
  type TransportOptions,
} from "./transport.js";
import { SipUri, parseUri } from "./uri.js";
import { ownAddressMatcher } from "./local.js";
import { isLooped } from "./rr.js";

/** Where to send a request: a host (IP or DNS name, A/AAAA lookup only) and port. */
export interface Destination {
  transport: TransportKind;
  host: string;
  /** Default 5060 (5061 for tls). */
  port?: number;
}

export interface SipStackHandler {
  /** A new server transaction (every request except ACK and retransmissions). */
  onRequest(tx: ServerTransaction): void;
  /** An ACK that matched no transaction (the ACK for a 2xx; forward it statelessly). */
  onAck?(ack: SipMessage, source: Source): void;
  /** A response that matched no client transaction (e.g. a late 2xx retransmission). */
  onStrayResponse?(res: SipMessage, source: Source): void;
  /** A message that could not be parsed (after the stack answered 400 when it could). */
  onParseError?(err: SipParseError, source: Source): void;
  /**
   * May the stack answer a malformed message from this source with 400? Default yes. An edge
   * answers nothing to unknown sources (no amplification, nothing for scanners to learn).
   */
  mayAnswer?(source: Source): boolean;
  /**
   * Is an inbound TCP/TLS connection from this address from a configured peer? Untrusted
   * connections share a smaller cap (transport.maxUntrustedConnections), so they cannot lock out
   * the trusted ones. Default: every address is trusted.
   */
  isTrusted?(address: string): boolean;
  /** An inbound TCP/TLS connection was refused by a connection limit. */
  onConnectionRefused?(transport: TransportKind, address: string, port: number, reason: "per_ip" | "total" | "untrusted"): void;
}

export interface SipStackOptions extends Partial<TimerConfig> {
  /** Listen URLs or specs: "udp://0.0.0.0:5060", "tcp://[::1]:5060", "tls://127.0.0.1:5061". */
  listen: Array<string | ListenSpec>;
  /** Certificate/key for tls:// listeners given as plain URLs. */
  tls?: TlsOptions;
  logger?: Logger;
  /** prom-client Registry for the didgate_sip_* metrics (a private Registry when omitted). */
  registry?: Registry;
  /** Timer source; real timers by default. */
  timers?: Timers;
  limits?: Partial<ParseLimits>;
  /** Validate From, To and Request-URI on receipt too (see ParseOptions.strict). Default false. */
  strictParsing?: boolean;
  /** Server transactions in the table at most; beyond, new requests get 503. Default 50000. */
  maxServerTransactions?: number;
  /** Client transactions at most; beyond, request() reports a transport error. Default 50000. */
  maxClientTransactions?: number;
  /** Send "100 Trying" as soon as an INVITE server transaction is created. Default true. */
  autoTrying?: boolean;
  /** Server transactions still unanswered after this are dropped (ms). INVITE default 300000. */
  inviteServerLifetimeMs?: number;
  /**
   * Put in every branch this stack generates, after its random part ("-w3": worker 3 of
   * sip.workers, so a response finds its way back to the worker that sent the request).
   */
  branchTag?: string;
  /**
   * A CANCEL over UDP that matches no INVITE transaction of this stack, and whose INVITE may be
   * held elsewhere (sip.workers > 1: an INVITE over TCP/TLS is held by the worker that holds the
   * connection). `bytes` is the CANCEL as received (its top Via as sent, not fixed). True: it was passed on;
   * the stack neither answers nor keeps it.
   */
  unmatchedCancel?: (bytes: Buffer, m: SipMessage, src: Source) => boolean;
  /** Transport tuning (connection caps, idle and message timeouts, TLS client verification, ...). */
  transport?: Omit<TransportOptions, "maxMessageSize" | "isTrusted" | "onRefused">;
}

export interface RequestOptions {
  /** Branch for the Via the stack adds (default: a new unique branch). */
  branch?: string;
  /** false: the request already carries our Via as its top Via (e.g. CANCEL). Default true. */
  addVia?: boolean;
}

function viaTransport(t: TransportKind): string {
  return t === "udp" ? "UDP" : t === "tcp" ? "TCP" : "TLS";
}

/** Lower-case transport name of a Via transport token, or null if we do not speak it. */
function transportOfVia(v: Via): TransportKind | null {
  switch (v.transport) {
    case "UDP":
      return "udp";
    case "TCP":
      return "tcp";
    case "TLS":
      return "tls";
    default:
      return null;
  }
}

/**
 * Where to send a response (RFC 3261 18.2.2, RFC 3581): to `received` (else the sent-by host)
 * at `rport` (else the sent-by port, else 5060/5061). Null when the address is not an IP.
 */
export function responseTargetFromVia(via: Via): Target | null {
  const t = transportOfVia(via);
  if (t === null) return null;
  // A `maddr` is not followed: RFC 3261 18.2.2 means it for multicast, which didgate does not do,
  // and followed it would let any sender aim didgate's responses (and their retransmissions) at
  // a third address. `received` is the request's own source (fixVia).
  let address = via.received ?? via.hostname;
  if (address.length > 1 && address.charCodeAt(0) === 91) address = address.slice(1, -1);
  if (net.isIP(address) === 0) return null;
  const rp = via.rport;
  const port = typeof rp === "number" ? rp : via.port ?? (t === "tls" ? 5061 : 5060);
  return { transport: t, address, port };
}

/**
 * Destination for a SIP URI without DNS SRV/NAPTR: transport from ";transport=" (sips: tls),
 * host from maddr or the host part, port as given or 5060/5061.
 */
export function destinationFromUri(uri: SipUri | string, defaultTransport: TransportKind = "udp"): Destination | null {
  const u = typeof uri === "string" ? parseUri(uri) : uri;
  if (u === null || !u.isSip) return null;
  const tp = u.param("transport");
  let transport: TransportKind = defaultTransport;
  if (u.scheme === "sips") transport = "tls";
  else if (typeof tp === "string") {
    const l = tp.toLowerCase();
    if (l === "udp" || l === "tcp" || l === "tls") transport = l;
    else return null;
  }
  const maddr = u.param("maddr");
  const host = typeof maddr === "string" ? maddr : u.hostname;
  return { transport, host: host.startsWith("[") ? host.slice(1, -1) : host, port: u.port ?? (transport === "tls" ? 5061 : 5060) };
}

/** net.isIPv6 without its regular expression for the common case (no colon: not IPv6). */
function isV6(host: string): boolean {
  return host.indexOf(":") >= 0 && net.isIPv6(host);
}

const NOOP_CLIENT_HANDLER: ClientTxHandler = {
  onResponse() {},
  onTimeout() {},
  onTransportError() {},
};

export class SipStack implements TxContext {
  readonly timers: Timers;
  readonly timerConfig: TimerConfig;
  readonly metrics: SipMetrics;
  readonly transport: TransportLayer;
  readonly limits: Readonly<ParseLimits>;
  private handler: SipStackHandler;
  private readonly log: Logger | undefined;
  private readonly statelessSendFailed = (e: Error): void => this.log?.debug({ err: e }, "sip: stateless send failed");
  private readonly serverTx = new Map<string, ServerTransaction>();
  private readonly clientTx = new Map<string, ClientTransaction>();
  private readonly maxServer: number;
  private readonly maxClient: number;
  private readonly autoTrying: boolean;
  private readonly strict: boolean;
  private readonly inviteLifetime: number;
  private readonly branchPrefix: string;
  private seq = 0;
  private closed = false;
  private readonly parseOpts: { limits: Readonly<ParseLimits>; stream: boolean; strict: boolean };
  private readonly parseOptsStream: { limits: Readonly<ParseLimits>; stream: boolean; strict: boolean };

  private constructor(private readonly opts: SipStackOptions, handler: SipStackHandler) {
    this.handler = handler;
    this.branchPrefix = "z9hG4bK" + randomToken(5) + (opts.branchTag ?? "") + "-";
    this.log = opts.logger;
    this.timers = opts.timers ?? realTimers;
    this.timerConfig = { t1: opts.t1 ?? 500, t2: opts.t2 ?? 4000, t4: opts.t4 ?? 5000, ...(opts.wait !== undefined ? { wait: opts.wait } : {}) };
    this.metrics = new SipMetrics(opts.registry);
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.strict = opts.strictParsing === true;
    this.parseOpts = { limits: this.limits, stream: false, strict: this.strict };
    this.parseOptsStream = { limits: this.limits, stream: true, strict: this.strict };
    this.maxServer = opts.maxServerTransactions ?? 50_000;
    this.maxClient = opts.maxClientTransactions ?? 50_000;
    this.autoTrying = opts.autoTrying !== false;
    this.inviteLifetime = opts.inviteServerLifetimeMs ?? 300_000;
    this.transport = new TransportLayer(
      this,
      {
        ...opts.transport,
        maxMessageSize: this.limits.maxMessageSize,
        isTrusted: (a) => this.handler.isTrusted === undefined || this.handler.isTrusted(a),
        onRefused: (t, a, p, r) => this.handler.onConnectionRefused?.(t, a, p, r),
      },
      this.metrics,
      this.log,
    );
  }

  /** Create a stack and open its listeners. On a listen error every opened socket is closed. */
  static async create(opts: SipStackOptions, handler: SipStackHandler): Promise<SipStack> {
    const s = new SipStack(opts, handler);
    try {
      for (const l of opts.listen) {
        const spec: ListenSpec = typeof l === "string" ? { url: l } : l;
        if (spec.url.toLowerCase().startsWith("tls:") && !spec.tls) spec.tls = opts.tls;
        await s.transport.listen(spec);
      }
    } catch (e) {
      await s.transport.close();
      throw e;
    }
    return s;
  }

  /** Replace the handler (e.g. when the proxy is created after the stack). */
  setHandler(h: SipStackHandler): void {
    this.handler = h;
  }

  get listeners(): readonly Listener[] {
    return this.transport.listeners;
  }

  get serverTransactionCount(): number {
    return this.serverTx.size;
  }
  get clientTransactionCount(): number {
    return this.clientTx.size;
  }

  /** A new unique branch (with the RFC 3261 magic cookie). */
  newBranch(): string {
    return this.branchPrefix + (++this.seq).toString(36);
  }

  /** True when host:port names one of our listeners (bound or advertised address). */
  isLocal(host: string, port: number | undefined, transport?: TransportKind): boolean {
    let h = host.toLowerCase();
    if (h.startsWith("[")) h = h.slice(1, -1);
    for (const l of this.transport.listeners) {
      if (transport !== undefined && l.transport !== transport) continue;
      const ah = l.advertisedHost.startsWith("[") ? l.advertisedHost.slice(1, -1) : l.advertisedHost;
      const defPort = l.transport === "tls" ? 5061 : 5060;
      const p = port ?? defPort;
      if ((h === ah.toLowerCase() || h === l.address) && (p === l.advertisedPort || p === l.port)) return true;
    }
    return false;
  }

  private ownMatcher: ((t: TransportKind, address: string, port: number) => boolean) | null = null;

  /**
   * True when sending to transport/address/port would reach one of our own listeners (a wildcard
   * listener is reached on every local address): a target that would loop back to us.
   */
  isOwnAddress(transport: TransportKind, address: string, port: number): boolean {
    this.ownMatcher ??= ownAddressMatcher(this.transport.listeners);
    return this.ownMatcher(transport, address, port);
  }

  /** RFC 3261 16.3 step 4: the request carries a Via of ours with the loop hash it has now. */
  isLooped(req: SipMessage): boolean {
    return isLooped((h, p) => this.isLocal(h, p), req);
  }

  /** True when the URI points at this stack (for loose routing: "is the top Route me?"). */
  isLocalUri(uri: SipUri): boolean {
    return uri.isSip && this.isLocal(uri.host, uri.port);
  }

  /** Listener to use for sending to a destination (for building Record-Route / Contact). */
  listenerFor(transport: TransportKind, host: string): Listener | undefined {
    return this.transport.pickListener(transport, isV6(host) ? 6 : 4);
  }

  // ---------------------------------------------------------------- receive

  /** @internal TransportHandler */
  onMessage(buf: Buffer, src: Source): void {
    const r = parseMessage(buf, src.transport === "udp" ? this.parseOpts : this.parseOptsStream);
    if (r instanceof SipParseError) {
      this.metrics.parseErrors.inc({ transport: src.transport, reason: r.reason });
      const p = r.partial;
      if (canRespond(p) && (this.handler.mayAnswer === undefined || this.handler.mayAnswer(src))) {
        this.fixVia(p, src);
        const res = createResponse(p, r.status, r.status === 400 ? "Bad Request (" + r.detail.replace(/[\r\n]/g, " ") + ")" : undefined);
        this.sendResponseTo(res, src);
      } else this.metrics.dropped.inc({ reason: "unparsable" });
      if (this.handler.onParseError) this.handler.onParseError(r, src);
      return;
    }
    this.metrics.message("in", src.transport, r.isRequest, r.isRequest ? r.method : r.cseq!.method, r.status);
    if (r.isRequest) this.receiveRequest(r, src, buf);
    else this.receiveResponse(r, src);
  }

  /** @internal TransportHandler */
  onFramingError(src: Source, reason: string): void {
    this.metrics.parseErrors.inc({ transport: src.transport, reason: "framing" });
    this.log?.debug({ peer: src.address + ":" + src.port, reason }, "sip: stream framing error, connection closed");
  }

  /** @internal TransportHandler: fail client transactions still waiting on a closed connection */
  onConnectionClosed(conn: Connection): void {
    if (this.closed) return;
    for (const tx of this.clientTx.values()) {
      if (tx.connection === conn) tx.connectionLost();
    }
  }

  /** RFC 3261 18.2.1 / RFC 3581: add received (and fill rport) to the top Via. */
  private fixVia(m: SipMessage, src: Source): void {
    const v = m.topVia;
    if (v === null) return;
    const rport = v.rport;
    const rc = v.received;
    let changed = false;
    // received when the sent-by host is not the source (RFC 3261), when rport is there (RFC 3581),
    // and over a received the sender wrote itself: responses go to it
    if (rc !== undefined || rport !== undefined || v.hostname !== src.address) {
      const recv = src.address.indexOf(":") >= 0 ? "[" + src.address + "]" : src.address;
      if (rc !== recv) {
        v.setParam("received", recv);
        changed = true;
      }
    }
    // rport filled with the source port; a port the sender filled in itself is replaced too
    if (rport !== undefined && rport !== src.port) {
      v.setParam("rport", String(src.port));
      changed = true;
    }
    if (changed) m.replaceTopVia(v.toString());
  }

  private serverKey(m: SipMessage, method: string): string {
    const v = m.topVia!;
    const b = v.branch;
    if (b !== undefined && b.startsWith("z9hG4bK")) return b + "|" + v.sentBy + "|" + method;
    // RFC 2543 fallback (17.2.3): Request-URI, From tag, Call-ID, CSeq number, top Via
    return "2543|" + m.requestUri + "|" + (m.fromTag ?? "") + "|" + m.callId + "|" + m.cseq!.seq + "|" + m.vias[0] + "|" + method;
  }

  private receiveRequest(m: SipMessage, src: Source, bytes: Buffer): void {
    const method = m.method;
    // key before fixVia: retransmissions carry the same (unfixed) Via
    const key = this.serverKey(m, method === "ACK" ? "INVITE" : method);
    this.fixVia(m, src);
    if (method === "ACK") {
      const tx = this.serverTx.get(key);
      // RFC 6026 7.1: an ACK matching an INVITE transaction in the Accepted state (2xx sent)
      // goes to the TU, like any ACK for a 2xx
      if (tx !== undefined && tx.isInvite && tx.state !== "accepted") {
        tx.receiveAck(m);
        return;
      }
      if (this.handler.onAck) this.safe(() => this.handler.onAck!(m, src));
      return;
    }
    const old = this.serverTx.get(key);
    if (old !== undefined) {
      old.receiveRetransmission();
      return;
    }
    if (this.closed) return;
    // the bytes as received, not re-serialised: fixVia has added received/rport to the top Via, and
    // an RFC 2543 transaction is matched by the whole Via as sent
    // a CANCEL's INVITE: the same key with the INVITE method
    const inv = method === "CANCEL" ? this.serverTx.get(key.slice(0, key.length - 6) + "INVITE") : undefined;
    const uc = this.opts.unmatchedCancel;
    if (uc !== undefined && method === "CANCEL" && inv === undefined && src.transport === "udp" && uc(bytes, m, src)) return;
    if (this.serverTx.size >= this.maxServer) {
      this.metrics.dropped.inc({ reason: "server_transactions_full" });
      this.sendResponseTo(createResponse(m, 503, undefined, { headers: [["Retry-After", "5"]] }), src);
      return;
    }
    const lifetime = method === "INVITE" ? this.inviteLifetime : 64 * this.timerConfig.t1 + 10_000;
    const tx = new ServerTransaction(this, m, src, key, lifetime);
    this.serverTx.set(key, tx);
    (tx.isInvite ? this.metrics.txServerInvite : this.metrics.txServerOther).inc();
    if (method === "CANCEL") {
      if (inv !== undefined && inv.isInvite && !inv.terminated) {
        tx.cancels = inv;
        this.safe(() => inv.receiveCancel(tx));
      }
    } else if (tx.isInvite && this.autoTrying) tx.reply(100);
    try {
      this.handler.onRequest(tx);
    } catch (e) {
      this.transport.internalError(e);
      if (tx.lastStatus < 200 && !tx.terminated) tx.reply(500);
    }
  }

  private receiveResponse(m: SipMessage, src: Source): void {
    const v = m.topVia!;
    const b = v.branch;
    const tx = b === undefined ? undefined : this.clientTx.get(b + "|" + m.cseq!.method);
    if (tx !== undefined) {
      tx.receiveResponse(m);
      return;
    }
    if (this.handler.onStrayResponse) this.safe(() => this.handler.onStrayResponse!(m, src));
    else this.metrics.dropped.inc({ reason: "stray_response" });
  }

  private safe(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.transport.internalError(e);
    }
  }

  // ---------------------------------------------------------------- TxContext

  /** @internal */
  serverTerminated(tx: ServerTransaction): void {
    if (this.serverTx.get(tx.key) === tx) {
      this.serverTx.delete(tx.key);
      (tx.isInvite ? this.metrics.txServerInvite : this.metrics.txServerOther).dec();
    }
  }

  /** @internal */
  clientTerminated(tx: ClientTransaction): void {
    if (this.clientTx.get(tx.key) === tx) {
      this.clientTx.delete(tx.key);
      (tx.isInvite ? this.metrics.txClientInvite : this.metrics.txClientOther).dec();
    }
  }

  /** @internal */
  responseTarget(tx: ServerTransaction): Target | null {
    const v = tx.request.topVia;
    if (v === null) return null;
    const t = responseTargetFromVia(v);
    if (t === null) return null;
    // same transport as the request (a Via claiming another transport is not trusted)
    if (t.transport !== tx.source.transport) return { transport: tx.source.transport, address: tx.source.address, port: tx.source.port };
    return t;
  }

  /** @internal */
  sendCancel(inv: ClientTransaction): void {
    const req = inv.request;
    const h: Array<[string, string]> = [["Via", req.vias[0]!]];
    for (const r of req.getAll("route")) h.push(["Route", r]);
    h.push(["Max-Forwards", "70"]);
    h.push(["From", req.get("from") ?? ""]);
    h.push(["To", req.get("to") ?? ""]);
    h.push(["Call-ID", req.callId ?? ""]);
    h.push(["CSeq", (req.cseq?.seq ?? 0) + " CANCEL"]);
    const cancel = SipMessage.request("CANCEL", req.requestUri, h);
    this.startClient(cancel, inv.target, inv.branch, inv.cancelHandler ?? NOOP_CLIENT_HANDLER);
  }

  // ---------------------------------------------------------------- send

  /**
   * Send a request in a new client transaction. Unless opts.addVia is false, the stack adds its
   * Via (transport, our sent-by, a new branch, rport) on top of the request first. Destination
   * hosts that are names are resolved (A/AAAA) before sending.
   */
  request(req: SipMessage, dest: Destination, handler: ClientTxHandler, opts?: RequestOptions): ClientTransaction {
    const port = dest.port ?? (dest.transport === "tls" ? 5061 : 5060);
    let branch: string;
    if (opts?.addVia === false) {
      const v = req.topVia;
      branch = v?.branch ?? this.newBranch();
    } else {
      branch = opts?.branch ?? this.newBranch();
      req.pushVia(this.viaValue(dest.transport, dest.host, branch));
    }
    const isIp = net.isIP(dest.host) !== 0;
    const target: Target = { transport: dest.transport, address: dest.host, port };
    if (isIp) return this.startClient(req, target, branch, handler);
    const tx = this.makeClient(req, target, branch, handler);
    if (tx.terminated) return tx;
    dns.lookup(dest.host, (err, address) => {
      if (tx.terminated) return;
      if (err || !address) {
        tx.terminate();
        try {
          handler.onTransportError(tx, err ?? new Error("no address for " + dest.host));
        } catch (e) {
          this.transport.internalError(e);
        }
        return;
      }
      target.address = address;
      tx.start();
    });
    return tx;
  }

  private makeClient(req: SipMessage, target: Target, branch: string, handler: ClientTxHandler): ClientTransaction {
    const tx = new ClientTransaction(this, req, target, branch, handler);
    if (this.closed || this.clientTx.size >= this.maxClient || this.clientTx.has(tx.key)) {
      tx.state = "terminated";
      const err = new Error(this.closed ? "stack closed" : this.clientTx.has(tx.key) ? "duplicate branch" : "client transaction table full");
      queueMicrotask(() => {
        try {
          handler.onTransportError(tx, err);
        } catch (e) {
          this.transport.internalError(e);
        }
      });
      return tx;
    }
    this.clientTx.set(tx.key, tx);
    (tx.isInvite ? this.metrics.txClientInvite : this.metrics.txClientOther).inc();
    return tx;
  }

  private startClient(req: SipMessage, target: Target, branch: string, handler: ClientTxHandler): ClientTransaction {
    const tx = this.makeClient(req, target, branch, handler);
    if (!tx.terminated) tx.start();
    return tx;
  }

  /** The Via value this stack puts on requests it sends to `host` over `transport`. */
  viaValue(transport: TransportKind, host: string, branch: string): string {
    const l = this.transport.pickListener(transport, isV6(host) ? 6 : 4);
    const sentBy = l ? l.sentBy : "127.0.0.1";
    return "SIP/2.0/" + viaTransport(transport) + " " + sentBy + ";branch=" + branch + ";rport";
  }

  /**
   * Send a request without a transaction (ACK for a 2xx, stateless forwarding). Adds our Via
   * unless opts.addVia is false. Errors are only logged.
   */
  sendStateless(req: SipMessage, dest: Destination, opts?: RequestOptions): void {
    if (opts?.addVia !== false) req.pushVia(this.viaValue(dest.transport, dest.host, opts?.branch ?? this.newBranch()));
    const buf = req.toBuffer();
    const port = dest.port ?? (dest.transport === "tls" ? 5061 : 5060);
    const go = (address: string): void => {
      this.metrics.message("out", dest.transport, true, req.method, 0);
      // the error callback only when it would log something
      this.transport.send(buf, { transport: dest.transport, address, port }, null, this.log?.isLevelEnabled("debug") ? this.statelessSendFailed : undefined);
    };
    if (net.isIP(dest.host) !== 0) go(dest.host);
    else dns.lookup(dest.host, (err, a) => (err ? this.log?.debug({ err }, "sip: dns lookup failed") : go(a)));
  }

  /**
   * Send a response without a transaction, to where its top Via says (RFC 3261 18.2.2, RFC 3581),
   * reusing an open connection to that address when there is one (or `source.connection`).
   * Returns false when the top Via gives no usable address.
   */
  sendResponseStateless(res: SipMessage, source?: Source): boolean {
    if (source !== undefined) return this.sendResponseTo(res, source);
    const v = res.topVia;
    const t = v === null ? null : responseTargetFromVia(v);
    if (t === null) {
      this.metrics.dropped.inc({ reason: "response_unroutable" });
      return false;
    }
    this.metrics.message("out", t.transport, false, res.cseq?.method ?? "", res.status);
    this.transport.send(res.toBuffer(), t, null, undefined);
    return true;
  }

  private sendResponseTo(res: SipMessage, src: Source): boolean {
    const v = res.topVia;
    let t = v === null ? null : responseTargetFromVia(v);
    if (t === null || t.transport !== src.transport) t = { transport: src.transport, address: src.address, port: src.port };
    this.metrics.message("out", t.transport, false, res.cseq?.method ?? "", res.status);
    this.transport.send(res.toBuffer(), t, src.connection, undefined);
    return true;
  }

  /** Terminate every transaction (timers stop) and close every socket. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const tx of [...this.clientTx.values()]) tx.terminate();
    for (const tx of [...this.serverTx.values()]) tx.terminate();
    await this.transport.close();
  }
}
