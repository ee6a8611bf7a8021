/**
 * One outbound bind: didgate connects to an SMSC as an ESME (receiver, transmitter or transceiver),
 * keeps the link alive with enquire_link, and reconnects with exponential backoff and jitter after
 * any loss (peer unbind, restart, network). TLS verifies the certificate unless told not to.
 */
import net from "node:net";
import tls from "node:tls";
import type { Logger } from "pino";
import type { Clock } from "../util/clock.js";
import { CMD, STATUS } from "./constants.js";
import type { Pdu } from "./codec.js";
import type { InboundProcessor, PeerContext } from "./inbound.js";
import type { SmppMetrics } from "./metrics.js";
import { buildMessagePdus, sendAll } from "./outbound.js";
import { SmppSession, type SessionHandler } from "./session.js";
import type { OutboundSms, SendResult, SmppBindConfig, SmppConfig } from "./types.js";

export interface ClientDeps {
  logger: Logger;
  clock: Clock;
  metrics: SmppMetrics;
  inbound: InboundProcessor;
  /** Random source for jitter (default Math.random). */
  random?: () => number;
}

export type ClientState = "stopped" | "connecting" | "binding" | "bound" | "waiting";

/** A link bound for this long was up: its next reconnect starts the backoff from reconnect_min_s again. */
const STABLE_LINK_MS = 10_000;

export class SmppClient implements SessionHandler {
  private session: SmppSession | null = null;
  private stopped = true;
  private attempt = 0;
  /** When the link was last bound (clock ms), null while it is not. */
  private boundAt: number | null = null;
  private retryTimer: unknown = null;
  private nextId = 0;
  private refCounter = 0;
  private readonly ctx: PeerContext;
  private readonly log: Logger;
  private waiters: (() => void)[] = [];
  /** State of the link. */
  state: ClientState = "stopped";
  /** Why the last attempt failed, for logs and tests. */
  lastError = "";

  constructor(
    readonly cfg: SmppBindConfig,
    private readonly defaults: SmppConfig,
    private readonly deps: ClientDeps,
  ) {
    this.ctx = { name: cfg.name, kind: "bind", options: cfg };
    this.log = deps.logger.child({ bind: cfg.name });
    deps.metrics.bindState.labels(cfg.name, "client").set(0);
  }

  get name(): string {
    return this.cfg.name;
  }

  get isBound(): boolean {
    return this.state === "bound";
  }

  /** The current session, if any. */
  get current(): SmppSession | null {
    return this.session;
  }

  /** Set up by an SMSC's outbind to didgate's server instead of connecting out. */
  get byOutbind(): boolean {
    return this.cfg.outbind === true;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (this.byOutbind) this.setState("waiting");
    else this.connect();
  }

  /**
   * An SMSC outbound to didgate's server with this bind's credentials: answer on that connection
   * with bind_receiver (SMPP 3.4 2.2.1) and serve it as this bind's session. A session still open
   * (the SMSC outbinds again after losing the link) is replaced. Returns false when stopped.
   */
  adoptOutbind(socket: net.Socket, remote: string): boolean {
    if (this.stopped) return false;
    const old = this.session;
    if (old !== null) {
      this.session = null;
      old.close("replaced by a new outbind", false);
    }
    this.log.info({ remote }, "smpp: outbind, binding back as receiver");
    this.open(socket, "receiver");
    return true;
  }

  /** Resolves once bound (or after timeoutMs, false). */
  whenBound(timeoutMs: number): Promise<boolean> {
    if (this.state === "bound") return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = this.deps.clock.setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      const w = (): void => {
        this.deps.clock.clearTimeout(t);
        resolve(true);
      };
      this.waiters.push(w);
    });
  }

  private setState(s: ClientState): void {
    this.state = s;
    this.deps.metrics.bindState.labels(this.cfg.name, "client").set(s === "bound" ? 1 : 0);
    if (s === "bound" && this.waiters.length > 0) {
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    }
  }

  private connect(): void {
    if (this.stopped) return;
    this.retryTimer = null;
    const c = this.cfg;
    this.setState("connecting");
    let socket: net.Socket;
    try {
      if (c.tls) {
        socket = tls.connect({
          host: c.host,
          port: c.port,
          servername: net.isIP(c.host) === 0 ? c.host : undefined,
          rejectUnauthorized: c.tls_verify !== false,
          ca: c.tls_ca,
        });
      } else {
        socket = net.connect({ host: c.host, port: c.port });
      }
    } catch (e) {
      this.lastError = (e as Error).message;
      this.scheduleReconnect();
      return;
    }
    this.open(socket, c.mode);
  }

  /** A session on a connected socket (dialled out, or an SMSC's outbind), then the bind. */
  private open(socket: net.Socket, mode: SmppBindConfig["mode"]): void {
    const c = this.cfg;
    const d = this.defaults;
    const session = new SmppSession(
      socket,
      "esme",
      {
        maxPduLength: d.max_pdu_bytes ?? 65536,
        windowOut: c.window ?? d.window ?? 10,
        windowIn: c.window_in ?? d.window_in ?? 100,
        responseTimeoutMs: (d.response_timeout_s ?? 30) * 1000,
        enquireLinkMs: (c.enquire_link_s ?? d.enquire_link_s ?? 30) * 1000,
        // an SMSC that trickles a PDU is cut off as an app would be, not only by enquire_link
        pduTimeoutMs: (d.pdu_timeout_s ?? 5) * 1000,
        clock: this.deps.clock,
        logger: this.log,
      },
      this,
      ++this.nextId,
    );
    session.peer = c.name;
    session.context = this;
    this.session = session;
    this.setState("binding");
    void this.bind(session, mode);
  }

  private async bind(session: SmppSession, mode: SmppBindConfig["mode"]): Promise<void> {
    const c = this.cfg;
    let resp: Pdu;
    try {
      resp = await session.bind(mode, {
        system_id: c.system_id,
        password: c.password,
        system_type: c.system_type,
        addr_ton: c.addr_ton,
        addr_npi: c.addr_npi,
        address_range: c.address_range,
      });
    } catch (e) {
      this.lastError = (e as Error).message;
      this.log.warn({ err: this.lastError }, "smpp: bind failed");
      session.close("bind failed", false);
      return;
    }
    if (session.isBound) {
      // the backoff starts again only once the link has stayed up (scheduleReconnect): an SMSC
      // that takes the bind and drops the link at once is not dialled again at the minimum delay
      this.boundAt = this.deps.clock.now();
      this.lastError = "";
      this.setState("bound");
      this.log.info({ host: c.host, port: c.port, remote: session.remoteAddress, mode, outbind: this.byOutbind, smsc: resp.system_id }, "smpp: bound to SMSC");
      return;
    }
    this.lastError = "bind refused with status 0x" + resp.command_status.toString(16);
    this.log.error({ status: resp.command_status }, "smpp: SMSC refused bind");
    session.close("bind refused", true);
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer !== null) return;
    if (this.byOutbind) {
      // The SMSC sets the link up again (its next outbind); nothing to dial.
      this.setState("waiting");
      return;
    }
    const min = (this.cfg.reconnect_min_s ?? 1) * 1000;
    const max = (this.cfg.reconnect_max_s ?? 60) * 1000;
    if (this.boundAt !== null && this.deps.clock.now() - this.boundAt >= STABLE_LINK_MS) this.attempt = 0;
    this.boundAt = null;
    const base = Math.min(max, min * 2 ** Math.min(this.attempt, 30));
    const rnd = (this.deps.random ?? Math.random)();
    const delay = Math.max(1, Math.round(base * (0.5 + rnd / 2)));
    this.attempt++;
    this.setState("waiting");
    this.deps.metrics.reconnects.labels(this.cfg.name).inc();
    this.log.info({ delay_ms: delay, attempt: this.attempt }, "smpp: reconnecting");
    this.retryTimer = this.deps.clock.setTimeout(() => this.connect(), delay);
  }

  // SessionHandler ----------------------------------------------------------------------------

  onRequest(session: SmppSession, pdu: Pdu): void {
    if (pdu.command_id === CMD.deliver_sm || pdu.command_id === CMD.data_sm) {
      this.deps.inbound.handle(session, pdu, this.ctx);
      return;
    }
    session.respond(pdu, STATUS.ESME_RINVBNDSTS);
  }

  onClose(session: SmppSession, reason: string): void {
    if (this.session !== session) return;
    this.session = null;
    this.log.info({ reason }, "smpp: link closed");
    if (this.lastError === "" && reason !== "unbound") this.lastError = reason;
    if (this.stopped) {
      this.setState("stopped");
      return;
    }
    this.scheduleReconnect();
  }

  onPdu(session: SmppSession, direction: "in" | "out", command_id: number, status: number): void {
    this.deps.metrics.pdu(session.peer, direction, command_id, status);
  }

  // Sending -----------------------------------------------------------------------------------

  /** submit_sm through this bind. */
  async submit(msg: OutboundSms): Promise<SendResult> {
    const s = this.session;
    if (s === null || !s.canSendMessages) {
      return { outcome: "temporary", message_ids: [], error: this.cfg.mode === "receiver" || s?.state === "bound_rx" ? "receiver_bind" : "not_bound" };
    }
    if (this.deps.inbound.draining) return { outcome: "temporary", message_ids: [], error: "draining" };
    let pdus: Pdu[];
    try {
      pdus = buildMessagePdus(CMD.submit_sm, msg, msg.reference ?? this.refCounter++ & 0xffff, this.cfg.long_messages, {
        languages: this.cfg.national_language,
        saved: (n) => this.deps.metrics.nationalPartsSaved.labels(this.cfg.name).inc(n),
      });
    } catch (e) {
      return { outcome: "permanent", message_ids: [], error: (e as Error).message };
    }
    return sendAll(pdus, (p) => s.request(p), this.cfg);
  }

  /** Unbind politely and stop reconnecting. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== null) {
      this.deps.clock.clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    const s = this.session;
    if (s !== null) await s.unbind();
    this.setState("stopped");
  }

  /** Close at once, no unbind. */
  close(): void {
    this.stopped = true;
    if (this.retryTimer !== null) {
      this.deps.clock.clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    this.session?.close("client closing", false);
    this.setState("stopped");
  }
}
