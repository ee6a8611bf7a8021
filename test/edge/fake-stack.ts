/**
 * A SIP stack without sockets for unit tests of the voice policy: it implements the edge's view of
 * the stack (EdgeStack) and the transaction layer's context (TxContext), so requests handed to the
 * edge are real ServerTransactions over the real parser, and their responses are recorded instead
 * of sent. Requests the edge sends downstream are recorded with their handler; a test answers them
 * with respond(). Time moves only with the ManualTimers.
 */
import { Registry } from "prom-client";
import type { EdgeClientTx, EdgeStack } from "../../src/edge/stack.js";
import {
  createResponse,
  isLooped,
  Listener,
  parseOrThrow,
  ServerTransaction,
  SipMetrics,
  type ClientTransaction,
  type ClientTxHandler,
  type Destination,
  type RequestOptions,
  type SipMessage,
  type SipStackHandler,
  type SipUri,
  type Source,
  type Target,
  type TimerConfig,
  type TransportKind,
  type TxContext,
} from "../../src/sip/index.js";
import { ManualTimers } from "../sip/manual-timers.js";

export const STACK_ADDRESS = "192.0.2.1";
export const STACK_PORT = 5060;

/** A client transaction the edge started: what it sent, where, and what it did with it since. */
export class FakeClientTx implements EdgeClientTx {
  cancelled = false;
  terminated = false;
  constructor(
    readonly request: SipMessage,
    readonly dest: Destination,
    public handler: ClientTxHandler,
  ) {}
  handOff(h: ClientTxHandler): void {
    if (!this.terminated) this.handler = h;
  }
  cancel(): void {
    this.cancelled = true;
  }
  terminate(): void {
    this.terminated = true;
  }
}

export class FakeStack implements EdgeStack, TxContext {
  readonly timers = new ManualTimers();
  readonly timerConfig: TimerConfig = { t1: 500, t2: 4000, t4: 5000 };
  readonly metrics = new SipMetrics(new Registry());
  readonly listeners: readonly Listener[] = [new Listener("udp", STACK_ADDRESS, STACK_PORT, undefined)];
  /** Responses sent on server transactions, in order, with where they went. */
  readonly responses: { res: SipMessage; to: Target }[] = [];
  /** Requests sent downstream through client transactions. */
  readonly requests: FakeClientTx[] = [];
  /** Requests and responses sent without a transaction. */
  readonly stateless: SipMessage[] = [];
  private seq = 0;
  private handler: SipStackHandler | undefined;

  readonly transport = {
    send: (buf: Buffer, target: Target): void => {
      this.responses.push({ res: parseOrThrow(buf), to: target });
    },
    getConnection: (): undefined => undefined,
    internalError: (): void => {},
  };

  /** The EdgeStackFactory: the edge hands itself as the handler. */
  readonly create = (handler: SipStackHandler): Promise<EdgeStack> => {
    this.handler = handler;
    return Promise.resolve(this);
  };

  /** A request arrives from address:port over UDP: a new server transaction for the handler. */
  receive(raw: string, address: string, port = 5060): ServerTransaction {
    const req = parseOrThrow(raw.replace(/\r?\n/g, "\r\n"));
    const src: Source = { transport: "udp", address, port, listener: this.listeners[0]!, connection: null };
    const tx = new ServerTransaction(this, req, src, `${req.topVia?.branch ?? ""} ${req.method}`, 32_000);
    if (this.handler === undefined) throw new Error("the stack was not started");
    this.handler.onRequest(tx);
    return tx;
  }

  /** Answer the i-th downstream request with `status` (its responses go to the edge's handler). */
  respond(i: number, status: number, toTag?: string): void {
    const c = this.requests[i]!;
    const res = createResponse(c.request, status, undefined, toTag !== undefined ? { toTag } : {});
    // ClientTxHandler names the stack's own class; the edge's handlers use no more of it than
    // EdgeClientTx has
    c.handler.onResponse(res, c as unknown as ClientTransaction);
  }

  /**
   * Moves the manual timers on by `ms` in steps of 50 ms, letting promise continuations run between
   * steps (a loop that awaits a timer sets its next one there).
   */
  async advance(ms: number): Promise<void> {
    for (let done = 0; done < ms; done += 50) {
      this.timers.advance(Math.min(50, ms - done));
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Status codes answered on server transactions so far. */
  statuses(): number[] {
    return this.responses.map((r) => r.res.status);
  }

  // ---- EdgeStack

  newBranch(): string {
    return "z9hG4bK" + "fake" + (++this.seq).toString(36);
  }
  isLocal(host: string, port: number | undefined): boolean {
    return host === STACK_ADDRESS && (port ?? STACK_PORT) === STACK_PORT;
  }
  isOwnAddress(_t: TransportKind, address: string, port: number): boolean {
    return address === STACK_ADDRESS && port === STACK_PORT;
  }
  isLooped(req: SipMessage): boolean {
    return isLooped((h, p) => this.isLocal(h, p), req);
  }
  isLocalUri(uri: SipUri): boolean {
    return uri.isSip && this.isLocal(uri.host, uri.port);
  }
  listenerFor(): Listener | undefined {
    return this.listeners[0];
  }
  request(req: SipMessage, dest: Destination, handler: ClientTxHandler, opts?: RequestOptions): EdgeClientTx {
    // as the real stack does: our Via on top, which the edge removes from the responses
    req.pushVia(`SIP/2.0/${dest.transport.toUpperCase()} ${STACK_ADDRESS}:${STACK_PORT};branch=${opts?.branch ?? this.newBranch()}`);
    const tx = new FakeClientTx(req, dest, handler);
    this.requests.push(tx);
    return tx;
  }
  sendStateless(req: SipMessage): void {
    this.stateless.push(req);
  }
  sendResponseStateless(res: SipMessage): boolean {
    this.stateless.push(res);
    return true;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }

  // ---- TxContext (server transactions end here; nothing to clean up without a table)

  serverTerminated(): void {}
  clientTerminated(): void {}
  responseTarget(tx: ServerTransaction): Target {
    return { transport: tx.source.transport, address: tx.source.address, port: tx.source.port };
  }
  sendCancel(): void {}
}

let pings = 0;
/** An OPTIONS to the stack from `fromIp` (a keep-alive or a monitor's ping). */
export function optionsRequest(fromIp: string): string {
  pings++;
  return [
    `OPTIONS sip:${STACK_ADDRESS}:${STACK_PORT} SIP/2.0`,
    `Via: SIP/2.0/UDP ${fromIp}:5060;branch=z9hG4bKping${pings}`,
    "Max-Forwards: 70",
    `From: <sip:ping@${fromIp}>;tag=p${pings}`,
    `To: <sip:${STACK_ADDRESS}>`,
    `Call-ID: ping-${pings}@${fromIp}`,
    "CSeq: 1 OPTIONS",
    "Content-Length: 0",
    "",
    "",
  ].join("\n");
}
