/**
 * What the voice edge uses of the SIP stack (src/sip/stack.ts), as an interface: VoiceEdge,
 * ProxyCall, DialogForward, TargetHealth and the registrar go through it only. SipStack
 * implements it; a test can put a stack of its own in its place and drive the voice policy
 * without sockets.
 *
 * VoiceEdge does not build its stack: app.ts reads the TLS files, maps config.sip to the stack's
 * options and hands VoiceEdge a factory (EdgeStackFactory) that it calls in start() with itself as
 * the handler.
 */
import type { ClientTransaction, ClientTxHandler, Destination, Listener, RequestOptions, SipMessage, SipMetrics, SipStackHandler, SipUri, Source, TimerConfig, Timers, TransportKind, TransportLayer } from "../sip/index.js";

/** What the edge does with a client transaction it started: cancel it, or end it (a branch given up). */
export type EdgeClientTx = Pick<ClientTransaction, "cancel" | "terminate" | "terminated" | "handOff">;

export interface EdgeStack {
  /** The stack's timers (proxy ring and invite timers, health probes). */
  readonly timers: Timers;
  readonly timerConfig: Pick<TimerConfig, "t1">;
  readonly metrics: Pick<SipMetrics, "dropped">;
  /** Open connections (a registered contact's flow). */
  readonly transport: Pick<TransportLayer, "getConnection">;
  readonly listeners: readonly Listener[];
  newBranch(): string;
  isLocal(host: string, port: number | undefined, transport?: TransportKind): boolean;
  isOwnAddress(transport: TransportKind, address: string, port: number): boolean;
  isLooped(req: SipMessage): boolean;
  isLocalUri(uri: SipUri): boolean;
  listenerFor(transport: TransportKind, host: string): Listener | undefined;
  request(req: SipMessage, dest: Destination, handler: ClientTxHandler, opts?: RequestOptions): EdgeClientTx;
  sendStateless(req: SipMessage, dest: Destination, opts?: RequestOptions): void;
  sendResponseStateless(res: SipMessage, source?: Source): boolean;
  close(): Promise<void>;
}

/** Builds the stack, listening, with `handler` receiving its requests. */
export type EdgeStackFactory = (handler: SipStackHandler) => Promise<EdgeStack>;
