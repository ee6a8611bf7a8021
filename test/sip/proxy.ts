/**
 * A minimal stateful proxy built from the SIP stack, for interop tests only (the real proxy,
 * RFC 3261 section 16, lives elsewhere). Initial requests addressed to the proxy go to a fixed
 * target; requests with a Route or a foreign Request-URI follow it (loose routing).
 */
import type { Registry } from "prom-client";
import {
  SipStack,
  destinationFromUri,
  parseNameAddr,
  type ClientTransaction,
  type ClientTxHandler,
  type Destination,
  type ServerTransaction,
  type SipMessage,
  type SipStackHandler,
  type Source,
  type SipStackOptions,
} from "../../src/sip/index.js";

export interface TestProxyOptions extends Partial<SipStackOptions> {
  listen: string[];
  target: Destination;
  recordRoute?: boolean;
  /** Drop the first 2xx to INVITE coming back from downstream (simulates a lost 200). */
  dropFirst2xx?: boolean;
  registry?: Registry;
}

class Forward implements ClientTxHandler {
  constructor(
    private readonly proxy: TestProxy,
    private readonly stx: ServerTransaction,
  ) {}
  onResponse(res: SipMessage): void {
    if (res.status === 100) return;
    if (res.status >= 200 && res.status < 300 && res.cseq?.method === "INVITE" && this.proxy.opts.dropFirst2xx && !this.proxy.dropped) {
      this.proxy.dropped = true;
      return;
    }
    res.popVia();
    this.proxy.forwardedResponses.push(res.status);
    this.stx.respond(res);
  }
  onTimeout(): void {
    this.stx.reply(408);
  }
  onTransportError(): void {
    this.stx.reply(503);
  }
}

export class TestProxy implements SipStackHandler {
  stack!: SipStack;
  dropped = false;
  /** Methods of requests forwarded in client transactions. */
  readonly forwardedRequests: string[] = [];
  readonly forwardedAcks: number[] = [];
  readonly forwardedResponses: number[] = [];
  readonly pending = new Map<ServerTransaction, ClientTransaction>();

  private constructor(readonly opts: TestProxyOptions) {}

  static async create(opts: TestProxyOptions): Promise<TestProxy> {
    const p = new TestProxy(opts);
    p.stack = await SipStack.create({ ...opts, listen: opts.listen }, p);
    return p;
  }

  get port(): number {
    return this.stack.listeners[0]!.port;
  }

  /** Loose routing: pop our own Route, then pick the next hop. */
  private route(req: SipMessage): Destination | null {
    const top = req.topRoute;
    if (top !== undefined) {
      const u = parseNameAddr(top)?.parsedUri;
      if (u && this.stack.isLocalUri(u)) req.popRoute();
    }
    const next = req.topRoute;
    if (next !== undefined) {
      const u = parseNameAddr(next)?.parsedUri;
      return u ? destinationFromUri(u, this.opts.target.transport) : null;
    }
    const ruri = req.parsedRequestUri;
    if (ruri === null) return null;
    if (this.stack.isLocalUri(ruri)) {
      const t = this.opts.target;
      req.requestUri = "sip:" + (ruri.user ?? "service") + "@" + t.host + ":" + t.port + (t.transport === "udp" ? "" : ";transport=" + t.transport);
      return t;
    }
    return destinationFromUri(ruri, this.opts.target.transport);
  }

  onRequest(tx: ServerTransaction): void {
    const req = tx.request;
    if (req.method === "CANCEL") {
      const inv = tx.cancels;
      if (inv === null) {
        tx.reply(481);
        return;
      }
      tx.reply(200);
      this.pending.get(inv)?.cancel();
      return;
    }
    const fwd = req.clone();
    if (fwd.decrementMaxForwards() < 0) {
      tx.reply(483);
      return;
    }
    const dest = this.route(fwd);
    if (dest === null) {
      tx.reply(416);
      return;
    }
    if (this.opts.recordRoute !== false && req.method === "INVITE" && req.toTag === undefined) {
      const l = tx.source.listener;
      fwd.pushRecordRoute("<sip:" + l.sentBy + ";lr" + (l.transport === "udp" ? "" : ";transport=" + l.transport) + ">");
    }
    this.forwardedRequests.push(req.method);
    const ctx = this.stack.request(fwd, dest, new Forward(this, tx));
    if (req.method === "INVITE") {
      this.pending.set(tx, ctx);
      tx.events.onTerminated = (t) => this.pending.delete(t);
    }
  }

  onAck(ack: SipMessage): void {
    const fwd = ack.clone();
    if (fwd.decrementMaxForwards() < 0) return;
    const dest = this.route(fwd);
    if (dest === null) return;
    this.forwardedAcks.push(1);
    this.stack.sendStateless(fwd, dest);
  }

  onStrayResponse(res: SipMessage, _src: Source): void {
    if (res.vias.length < 2) return;
    res.popVia();
    this.stack.sendResponseStateless(res);
  }

  close(): Promise<void> {
    return this.stack.close();
  }
}
