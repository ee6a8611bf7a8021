/**
 * SmppService: the SMPP side of didgate as one object. It runs the server (if `listen` is set) and
 * the outbound binds, decodes and reassembles what arrives, and hands messages and receipts to
 * the handlers. It knows nothing of DIDs or routes.
 */
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { systemClock, type Clock } from "../util/clock.js";
import { SmppClient } from "./client.js";
import { InboundProcessor } from "./inbound.js";
import { SmppMetrics } from "./metrics.js";
import { SmppServer } from "./server.js";
import type { MessageOps } from "./ops.js";
import type { SmppSession } from "./session.js";
import type { DurablePartStore, InboundHandlers, OutboundReceipt, OutboundSms, SendResult, SmppAccount, SmppConfig } from "./types.js";

export interface SmppServiceOptions extends InboundHandlers {
  config: SmppConfig;
  logger: Logger;
  registry: Registry;
  clock?: Clock;
  /** Random source for reconnect jitter (default Math.random). */
  random?: () => number;
  /**
   * Durable reassembly buffers (spool mode): parts of concatenated messages are kept there instead
   * of in memory, so acknowledged parts survive a restart. Swept every `partSweepMs` (default 1000).
   */
  partStore?: DurablePartStore;
  partSweepMs?: number;
  /** Answers app accounts' query_sm / cancel_sm / replace_sm (src/smpp/ops.ts). */
  ops?: () => MessageOps | undefined;
}

export class SmppService {
  readonly server: SmppServer | null;
  readonly clients = new Map<string, SmppClient>();
  readonly metrics: SmppMetrics;
  private readonly inbound: InboundProcessor;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private started = false;

  constructor(o: SmppServiceOptions) {
    const cfg = o.config;
    this.clock = o.clock ?? systemClock;
    this.logger = o.logger;
    this.metrics = new SmppMetrics(o.registry, {
      windows: () => this.windows(),
      reassemblyBuffers: () => this.inbound.reassemblyBuffers,
      reassemblyBytes: () => this.inbound.reassemblyBytes,
    });
    this.inbound = new InboundProcessor({
      handlers: { onMessage: o.onMessage, onReceipt: o.onReceipt },
      logger: o.logger,
      clock: this.clock,
      metrics: this.metrics,
      handlerTimeoutMs: (cfg.handler_timeout_s ?? 10) * 1000,
      reassembly: {
        timeoutMs: (cfg.reassembly?.timeout_s ?? 60) * 1000,
        maxBuffers: cfg.reassembly?.max_buffers ?? 10000,
        maxBuffersPerPeer: cfg.reassembly?.max_buffers_per_peer,
        maxBytes: cfg.reassembly?.max_bytes ?? 32 * 1024 * 1024,
      },
      ...(o.partStore !== undefined ? { partStore: o.partStore } : {}),
      ...(o.partSweepMs !== undefined ? { partSweepMs: o.partSweepMs } : {}),
    });
    const deps = { logger: o.logger, clock: this.clock, metrics: this.metrics, inbound: this.inbound, random: o.random, ...(o.ops !== undefined ? { ops: o.ops } : {}) };
    this.server = cfg.listen !== undefined ? new SmppServer(cfg, deps) : null;
    for (const b of cfg.binds ?? []) {
      if (this.clients.has(b.name)) throw new Error(`smpp.binds: duplicate name "${b.name}"`);
      if (this.server?.hasAccount(b.name)) throw new Error(`smpp.binds: name "${b.name}" is also an account system_id`);
      this.clients.set(b.name, new SmppClient(b, cfg, deps));
    }
    const outbinds = [...this.clients.values()].filter((c) => c.byOutbind);
    if (outbinds.length > 0) {
      if (this.server === null) throw new Error("smpp.binds: outbind needs smpp.listen (the SMSC connects to it)");
      this.server.addOutbinds(outbinds);
    }
  }

  /** Listen (if configured) and start every outbound bind. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.server !== null) await this.server.listen();
    for (const c of this.clients.values()) c.start();
  }

  /** SIGHUP: apply a new account list to the server (see SmppServer.updateAccounts). */
  updateAccounts(accounts: readonly SmppAccount[]): { added: string[]; changed: string[]; removed: string[] } {
    return this.server?.updateAccounts(accounts) ?? { added: [], changed: [], removed: [] };
  }

  /** The server's address (port 0 in config gives a free port). */
  address(): AddressInfo | null {
    return this.server?.address() ?? null;
  }

  /** deliver_sm to an app account bound to didgate (round robin across its binds). */
  deliverToApp(system_id: string, msg: OutboundSms): Promise<SendResult> {
    if (this.server === null) return Promise.resolve({ outcome: "permanent", message_ids: [], error: "no_server" });
    return this.server.deliver(system_id, msg);
  }

  /** A delivery receipt to an account bound to didgate's server. */
  sendReceipt(system_id: string, r: OutboundReceipt): Promise<SendResult> {
    if (this.server === null) return Promise.resolve({ outcome: "permanent", message_ids: [], error: "no_server" });
    return this.server.sendReceipt(system_id, r);
  }

  /** Server accounts with a session that can take deliver_sm now. */
  receivingAccounts(): Iterable<string> {
    return this.server?.receivingAccounts() ?? [];
  }

  /** The role of a server account, if there is one with this system_id. */
  accountRole(system_id: string): "carrier" | "app" | undefined {
    return this.server?.accountRole(system_id);
  }

  /** submit_sm through an outbound bind. */
  submit(bind: string, msg: OutboundSms): Promise<SendResult> {
    const c = this.clients.get(bind);
    if (c === undefined) return Promise.resolve({ outcome: "permanent", message_ids: [], error: "unknown_bind" });
    return c.submit(msg);
  }

  /**
   * Send to a peer named by a route's `sms.smpp`: an app account's system_id, else an outbound
   * bind's name.
   */
  send(peer: string, msg: OutboundSms): Promise<SendResult> {
    if (this.server?.hasAccount(peer)) return this.server.deliver(peer, msg);
    return this.submit(peer, msg);
  }

  /** Is the peer (account or bind) bound now? */
  isBound(peer: string): boolean {
    if (this.server !== null && this.server.boundCount(peer) > 0) return true;
    return this.clients.get(peer)?.isBound ?? false;
  }

  /** true once the server listens (if any); binds may still be connecting. */
  get ready(): boolean {
    return this.started && (this.server === null || this.server.address() !== null);
  }

  /**
   * Drain: answer new message PDUs with temporary failure, let handlers in flight finish (up to
   * timeoutMs), unbind everything politely, deliver incomplete reassembly buffers, close.
   */
  async drain(timeoutMs = 5000): Promise<void> {
    this.inbound.draining = true;
    const t0 = this.clock.now();
    await this.inbound.idle(timeoutMs);
    const left = Math.max(100, timeoutMs - (this.clock.now() - t0));
    await Promise.all([
      this.server?.drain(left) ?? Promise.resolve(),
      ...[...this.clients.values()].map((c) =>
        Promise.race([c.stop(), new Promise<void>((r) => this.clock.setTimeout(r, left))]).then(() => c.close()),
      ),
    ]);
    this.inbound.flush();
    await this.inbound.idle(left);
    this.inbound.close();
  }

  /** Stop at once: close every session and the listener. */
  async close(): Promise<void> {
    this.inbound.draining = true;
    for (const c of this.clients.values()) c.close();
    await this.server?.close();
    this.inbound.close();
  }

  /** Outbound binds: state and window use (status view). */
  bindStates(): Array<{ name: string; state: string; window: number | null; in_flight: number | null }> {
    const out: Array<{ name: string; state: string; window: number | null; in_flight: number | null }> = [];
    for (const c of this.clients.values()) {
      const s = c.current;
      out.push({ name: c.name, state: c.state, window: c.cfg.window ?? null, in_flight: s !== null ? s.inFlightOut : null });
    }
    return out;
  }

  /** Sessions bound to the server. */
  get sessionCount(): number {
    let n = 0;
    if (this.server !== null) for (const _ of this.server.allSessions()) n++;
    return n;
  }

  private *windows(): Iterable<[string, "in" | "out", number]> {
    const sessions: SmppSession[] = [];
    if (this.server !== null) for (const s of this.server.allSessions()) sessions.push(s);
    for (const c of this.clients.values()) if (c.current !== null) sessions.push(c.current);
    for (const s of sessions) {
      yield [s.peer, "in", s.inFlightIn];
      yield [s.peer, "out", s.inFlightOut];
    }
  }
}
