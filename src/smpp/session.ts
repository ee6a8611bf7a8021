/**
 * One SMPP session over a stream socket, for either side:
 *  - side "esme": didgate bound out to an SMSC (it sends bind, receives deliver_sm);
 *  - side "smsc": a peer bound to didgate's server (it sends bind, then messages).
 *
 * The session frames and decodes PDUs, answers enquire_link and unbind itself, answers malformed
 * and unknown PDUs with generic_nack and carries on, enforces bind state (ESME_RINVBNDSTS,
 * ESME_RALYBND), caps PDUs in flight in both directions, times out our requests, sends
 * enquire_link on an interval, and closes on silence. Everything else goes to a SessionHandler.
 * Nothing throws out of a socket callback.
 */
import type { Socket } from "node:net";
import type { Logger } from "pino";
import type { Clock } from "../util/clock.js";
import { CMD, RESP_BIT, STATUS, commandName } from "./constants.js";
import { HEADER_LENGTH, Pdu, PduError, decodePdu, encodeHeader, encodePdu, encodeSmResp } from "./codec.js";
import { isOpCommand } from "./ops.js";

export type SessionSide = "esme" | "smsc";
export type SessionState = "open" | "binding" | "bound_rx" | "bound_tx" | "bound_trx" | "unbinding" | "closed";

export interface SessionOptions {
  maxPduLength: number;
  /** Our requests in flight at once; more wait in a queue. */
  windowOut: number;
  /** The peer's message requests in flight (handed on, not yet answered); more get ESME_RTHROTTLED. */
  windowIn: number;
  responseTimeoutMs: number;
  /** 0 disables. */
  enquireLinkMs: number;
  /** Close when nothing has been received for this long (default 2 * enquireLinkMs + responseTimeoutMs; 0 disables). */
  inactivityMs?: number;
  /** Close when not bound within this long (server side). 0 disables. */
  bindTimeoutMs?: number;
  /** Most requests queued behind a full window (default 10000). */
  maxQueue?: number;
  /**
   * Close when a PDU's bytes started arriving this long ago and it is still not complete (not an
   * idle timer: bytes trickling in do not extend it). 0 or absent disables.
   */
  pduTimeoutMs?: number;
  clock: Clock;
  logger: Logger;
}

export interface SessionHandler {
  /**
   * A request the session does not answer itself: bind_* (side smsc), submit_sm / deliver_sm /
   * data_sm. The handler must answer each exactly once (respond / respondBind).
   */
  onRequest(session: SmppSession, pdu: Pdu): void;
  onClose(session: SmppSession, reason: string): void;
  /** Every PDU in and out, for metrics. */
  onPdu(session: SmppSession, direction: "in" | "out", command_id: number, status: number): void;
}

export class SessionError extends Error {
  constructor(
    /** closed: the session closed after the request went out (answer unknown); unsent: before it went out. */
    readonly code: "timeout" | "closed" | "unsent" | "queue_full" | "not_bound",
    message: string,
  ) {
    super(message);
    this.name = "SessionError";
  }
}

interface Pending {
  command_id: number;
  deadline: number;
  resolve(p: Pdu): void;
  reject(e: Error): void;
}

interface Queued {
  pdu: Pdu;
  resolve(p: Pdu): void;
  reject(e: Error): void;
}

const MAX_SEQ = 0x7fffffff;

function isMessageCommand(id: number): boolean {
  return id === CMD.submit_sm || id === CMD.deliver_sm || id === CMD.data_sm;
}

function isBindCommand(id: number): boolean {
  return id === CMD.bind_receiver || id === CMD.bind_transmitter || id === CMD.bind_transceiver;
}

export class SmppSession {
  state: SessionState = "open";
  /** system_id of the bound peer (side smsc) or our bind name (side esme); set by the owner. */
  peer = "-";
  /** Free slot for the owner (account / bind config). */
  context: unknown = undefined;
  readonly remoteAddress: string;

  private readonly pending = new Map<number, Pending>();
  private readonly queue: Queued[] = [];
  private queueHead = 0;
  private seq = 0;
  private inflightIn = 0;
  /** Of inflightIn: query/cancel/replace requests not yet answered. */
  private opsIn = 0;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private needed = 4;
  private lastReceived: number;
  private lastEnquire: number;
  private readonly openedAt: number;
  private enquirePending = false;
  private readonly timer: unknown;
  private closeReason = "";
  private inactivityMs: number;
  private enquireLinkMs: number;
  private readonly maxQueue: number;
  private windowOut: number;
  private windowIn: number;
  private badPdus = 0;

  /**
   * The log level for one more PDU of this session refused as malformed (a PDU it cannot take
   * apart, or a message PDU whose content is refused): the first few at warn, then debug, so that
   * a peer's flood of junk is not a flood of log lines.
   */
  badPduLevel(): "warn" | "debug" {
    return this.badPdus++ < 5 ? "warn" : "debug";
  }
  /** When the first byte of the PDU now being received arrived (0: none pending). */
  private partialSince = 0;
  /** Reading stopped until what we wrote drains (the peer is not reading it). */
  private readPaused = false;
  /** The peer's unbind, answered once the requests it sent before it are (at the latest after the response timeout). */
  private peerUnbind: { seq: number; timer: unknown } | null = null;
  private readonly listeners = {
    data: (c: Buffer): void => this.onData(c),
    error: (e: Error): void => this.onSocketError(e),
    close: (): void => this.onSocketClose(),
    end: (): void => {
      if (this.state !== "closed") this.socket.end();
    },
  };

  constructor(
    readonly socket: Socket,
    readonly side: SessionSide,
    readonly opts: SessionOptions,
    private readonly handler: SessionHandler,
    /** An id for logs, unique within the owner. */
    readonly id = 0,
  ) {
    this.remoteAddress = normaliseAddress(socket.remoteAddress ?? "");
    const now = opts.clock.now();
    this.lastReceived = now;
    this.lastEnquire = now;
    this.openedAt = now;
    this.enquireLinkMs = opts.enquireLinkMs;
    this.inactivityMs =
      opts.inactivityMs ?? (opts.enquireLinkMs > 0 ? 2 * opts.enquireLinkMs + opts.responseTimeoutMs : 0);
    this.maxQueue = opts.maxQueue ?? 10000;
    this.windowOut = Math.max(1, opts.windowOut);
    this.windowIn = Math.max(1, opts.windowIn);
    socket.setNoDelay(true);
    socket.on("data", this.listeners.data);
    socket.on("error", this.listeners.error);
    socket.on("close", this.listeners.close);
    socket.on("end", this.listeners.end);
    let tick = Math.min(1000, Math.floor(opts.responseTimeoutMs / 4));
    if (opts.enquireLinkMs > 0) tick = Math.min(tick, Math.floor(opts.enquireLinkMs / 2));
    tick = Math.max(20, tick);
    this.timer = opts.clock.setInterval(() => this.onTick(), tick);
  }

  get isClosed(): boolean {
    return this.state === "closed";
  }

  get isBound(): boolean {
    return this.state === "bound_rx" || this.state === "bound_tx" || this.state === "bound_trx";
  }

  /** Can we send messages (submit_sm as ESME, deliver_sm as SMSC) on this session? */
  get canSendMessages(): boolean {
    // a peer that unbound takes nothing new while its last requests are answered
    if (this.peerUnbind !== null) return false;
    if (this.side === "esme") return this.state === "bound_tx" || this.state === "bound_trx";
    return this.state === "bound_rx" || this.state === "bound_trx";
  }

  /** Change the windows (after a bind tells whose session this is). */
  setWindows(out: number | undefined, inbound: number | undefined): void {
    if (out !== undefined) this.windowOut = Math.max(1, out);
    if (inbound !== undefined) this.windowIn = Math.max(1, inbound);
    this.pump();
  }

  /** Change the enquire_link interval (after a bind tells whose session this is). Timer granularity stays. */
  setEnquireLink(ms: number): void {
    this.enquireLinkMs = ms;
    if (this.opts.inactivityMs === undefined) this.inactivityMs = ms > 0 ? 2 * ms + this.opts.responseTimeoutMs : 0;
  }

  get inFlightOut(): number {
    return this.pending.size;
  }

  get inFlightIn(): number {
    return this.inflightIn;
  }

  get queued(): number {
    return this.queue.length - this.queueHead;
  }

  /** Requests sent and not answered yet, plus those waiting for room in the window. */
  get outstanding(): number {
    return this.pending.size + this.queue.length - this.queueHead;
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  private onData(chunk: Buffer): void {
    if (this.state === "closed") return;
    this.lastReceived = this.opts.clock.now();
    let buf: Buffer;
    if (this.buffered === 0) {
      buf = chunk;
    } else {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered < this.needed) return;
      buf = Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
    }
    let pos = 0;
    let framed = false;
    const max = this.opts.maxPduLength;
    while (!this.isClosed) {
      const avail = buf.length - pos;
      if (avail < 4) {
        this.needed = 4;
        break;
      }
      const len = buf.readUInt32BE(pos);
      if (len < HEADER_LENGTH || len > max) {
        this.badLength(buf, pos, len);
        return;
      }
      if (avail < len) {
        this.needed = len;
        break;
      }
      this.frame(buf, pos, len);
      framed = true;
      pos += len;
    }
    if (pos >= buf.length) this.partialSince = 0;
    else if (framed || this.partialSince === 0) this.partialSince = this.lastReceived;
    if (!this.isClosed && pos < buf.length) {
      // Copy a small remainder so one tiny tail does not pin a large socket chunk.
      const rest = buf.length - pos < 4096 ? Buffer.from(buf.subarray(pos)) : buf.subarray(pos);
      this.chunks = [rest];
      this.buffered = rest.length;
    }
    if (!this.readPaused && !this.isClosed && this.socket.writableLength > OUT_PAUSE_BYTES) this.pauseReading();
  }

  /**
   * The peer does not read what we send (answers to its enquire_links, its submits): stop reading
   * it until our output drains, so its requests wait in the kernel's buffers, not as answers in
   * our memory. A peer that never reads stops being answered, then its session times out.
   */
  private pauseReading(): void {
    this.readPaused = true;
    this.socket.pause();
    this.socket.once("drain", () => {
      this.readPaused = false;
      if (this.state !== "closed") this.socket.resume();
    });
  }

  private badLength(buf: Buffer, pos: number, len: number): void {
    const seq = buf.length - pos >= HEADER_LENGTH ? buf.readUInt32BE(pos + 12) : 0;
    this.opts.logger.warn(
      { session: this.id, peer: this.peer, command_length: len, max: this.opts.maxPduLength },
      "smpp: invalid command_length, closing session",
    );
    this.handler.onPdu(this, "in", 0, STATUS.ESME_RINVCMDLEN);
    this.writeRaw(encodeHeader(CMD.generic_nack, STATUS.ESME_RINVCMDLEN, seq), CMD.generic_nack, STATUS.ESME_RINVCMDLEN);
    this.close("invalid command_length " + len, true);
  }

  private frame(buf: Buffer, pos: number, len: number): void {
    let decoded: Pdu | PduError;
    try {
      decoded = decodePdu(buf, pos, len);
    } catch (e) {
      // decodePdu does not throw; this is a last line of defence.
      decoded = new PduError(buf.readUInt32BE(pos + 4), buf.readUInt32BE(pos + 12), STATUS.ESME_RSYSERR, String(e));
    }
    try {
      if (decoded instanceof PduError) this.onBadPdu(decoded, buf, pos);
      else this.onPduIn(decoded);
    } catch (e) {
      this.opts.logger.error({ err: e, session: this.id, peer: this.peer }, "smpp: error handling PDU");
      const seq = buf.readUInt32BE(pos + 12);
      const id = buf.readUInt32BE(pos + 4);
      if ((id & RESP_BIT) === 0) this.writeRaw(encodeHeader(CMD.generic_nack, STATUS.ESME_RSYSERR, seq), CMD.generic_nack, STATUS.ESME_RSYSERR);
    }
  }

  private onBadPdu(err: PduError, buf: Buffer, pos: number): void {
    this.handler.onPdu(this, "in", err.command_id, buf.readUInt32BE(pos + 8));
    // A flood of junk must not become a flood of log lines: the first few per session at warn.
    this.opts.logger[this.badPduLevel()](
      { session: this.id, peer: this.peer, command: commandName(err.command_id), seq: err.sequence_number, status: err.status, reason: err.reason },
      "smpp: malformed or unknown PDU",
    );
    if ((err.command_id & RESP_BIT) !== 0 && err.status !== STATUS.ESME_RINVCMDID) {
      // A response we cannot take apart: settle the request with the header we could read.
      const p = new Pdu(err.command_id, err.sequence_number, buf.readUInt32BE(pos + 8));
      this.settle(p);
      return;
    }
    this.writeRaw(encodeHeader(CMD.generic_nack, err.status, err.sequence_number), CMD.generic_nack, err.status);
  }

  private onPduIn(p: Pdu): void {
    this.handler.onPdu(this, "in", p.command_id, p.command_status);
    const id = p.command_id;
    if ((id & RESP_BIT) !== 0) {
      if (id === CMD.enquire_link_resp) this.enquirePending = false;
      this.settle(p);
      return;
    }
    switch (id) {
      case CMD.enquire_link:
        this.writeRaw(encodeHeader(CMD.enquire_link_resp, 0, p.sequence_number), CMD.enquire_link_resp, 0);
        return;
      case CMD.unbind:
        // the submits it sent before unbinding are answered first: an app that never hears of a
        // message it sent would send it again
        if (this.inflightIn === 0) return this.finishPeerUnbind(p.sequence_number);
        if (this.peerUnbind === null) {
          const seq = p.sequence_number;
          this.peerUnbind = { seq, timer: this.opts.clock.setTimeout(() => this.finishPeerUnbind(seq), this.opts.responseTimeoutMs) };
        }
        return;
      case CMD.alert_notification:
        // No response is defined for alert_notification.
        return;
      case CMD.outbind:
        // An SMSC asks the ESME to bind back on this connection (SMPP 3.4 2.2.1); it has no
        // response. Only on a fresh connection to our server; ignored anywhere else.
        if (this.side === "smsc" && this.state === "open") {
          this.state = "binding";
          this.hand(p);
        }
        return;
    }
    if (isBindCommand(id)) {
      if (this.side === "esme") return this.reject(p, STATUS.ESME_RINVBNDSTS);
      if (this.state === "open") {
        this.state = "binding";
        return this.hand(p);
      }
      if (this.state === "binding") return this.reject(p, STATUS.ESME_RINVBNDSTS);
      return this.reject(p, STATUS.ESME_RALYBND);
    }
    // after its unbind a peer sends no more requests (SMPP 3.4 4.2): refused while its last ones are answered
    if (this.peerUnbind !== null && (isMessageCommand(id) || isOpCommand(id))) return this.reject(p, STATUS.ESME_RINVBNDSTS);
    if (isMessageCommand(id)) {
      if (!this.acceptsMessages(id)) return this.reject(p, STATUS.ESME_RINVBNDSTS);
      if (this.inflightIn >= this.windowIn) return this.reject(p, STATUS.ESME_RTHROTTLED);
      this.inflightIn++;
      return this.hand(p);
    }
    if (isOpCommand(id) && this.side === "smsc" && (this.state === "bound_tx" || this.state === "bound_trx")) {
      // query_sm / cancel_sm / replace_sm: the owner answers (respondOp), within the same window.
      if (this.inflightIn >= this.windowIn) return this.reject(p, STATUS.ESME_RTHROTTLED);
      this.inflightIn++;
      this.opsIn++;
      return this.hand(p);
    }
    // Known but not supported here (submit_multi, broadcast_*; query/cancel/replace elsewhere).
    this.reject(p, this.isBound ? STATUS.ESME_RINVCMDID : STATUS.ESME_RINVBNDSTS);
  }

  private acceptsMessages(id: number): boolean {
    const s = this.state;
    if (s === "unbinding") return true; // the owner answers (drain: temporary failure)
    if (this.side === "smsc") {
      // A peer bound to us: ESMEs submit_sm; carriers peering with us also send deliver_sm.
      return s === "bound_tx" || s === "bound_trx";
    }
    if (id === CMD.submit_sm) return false;
    return s === "bound_rx" || s === "bound_trx";
  }

  private hand(p: Pdu): void {
    try {
      this.handler.onRequest(this, p);
    } catch (e) {
      this.opts.logger.error({ err: e, session: this.id, peer: this.peer }, "smpp: request handler threw");
      this.respond(p, STATUS.ESME_RSYSERR);
    }
  }

  /** Answer with the command's _resp (generic_nack when unknown) carrying `status`. */
  private reject(p: Pdu, status: number): void {
    const respId = (p.command_id | RESP_BIT) >>> 0;
    if (isMessageCommand(p.command_id)) {
      this.writeRaw(encodeSmResp(respId, status, p.sequence_number, ""), respId, status);
    } else {
      this.writeRaw(encodeHeader(respId, status, p.sequence_number), respId, status);
    }
  }

  private settle(p: Pdu): void {
    const pend = this.pending.get(p.sequence_number);
    if (pend === undefined) {
      this.opts.logger.debug({ session: this.id, peer: this.peer, command: commandName(p.command_id), seq: p.sequence_number }, "smpp: response without request");
      return;
    }
    if (p.command_id !== CMD.generic_nack && p.command_id !== ((pend.command_id | RESP_BIT) >>> 0)) {
      this.opts.logger.warn({ session: this.id, peer: this.peer, command: commandName(p.command_id), expected: commandName(pend.command_id | RESP_BIT) }, "smpp: response of the wrong type");
    }
    this.pending.delete(p.sequence_number);
    // a bind's answer sets the state here, before the PDUs that follow it in the same read: an
    // SMSC often sends queued receipts right behind bind_resp
    if (this.state === "binding" && this.side === "esme" && isBindCommand(pend.command_id)) this.bindAnswered(pend.command_id, p);
    pend.resolve(p);
    this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // Answering the peer

  /** Answer a message request (submit_sm / deliver_sm / data_sm) once. */
  respond(req: Pdu, status: number, message_id = ""): void {
    if (isMessageCommand(req.command_id) && this.inflightIn > 0) this.inflightIn--;
    if (this.state === "closed") return;
    const respId = (req.command_id | RESP_BIT) >>> 0;
    // deliver_sm_resp's message_id is unused (SMPP 3.4 4.6.2) and left empty, unless the peer
    // asked for a receipt: then it is the id the receipt will carry.
    const mid = req.command_id === CMD.deliver_sm && (req.registered_delivery & 0x03) === 0 ? "" : message_id;
    this.writeRaw(encodeSmResp(respId, status, req.sequence_number, mid), respId, status);
    if (this.peerUnbind !== null && this.inflightIn === 0) this.finishPeerUnbind(this.peerUnbind.seq);
  }

  /** unbind_resp to the peer's unbind, then the session ends. */
  private finishPeerUnbind(seq: number): void {
    if (this.state === "closed") return;
    if (this.peerUnbind !== null) this.opts.clock.clearTimeout(this.peerUnbind.timer);
    this.peerUnbind = null;
    this.writeRaw(encodeHeader(CMD.unbind_resp, 0, seq), CMD.unbind_resp, 0);
    this.close("peer unbound", true);
  }

  /** Answer a query_sm / cancel_sm / replace_sm handed to the owner, once (`buf`: the whole response). */
  respondOp(req: Pdu, status: number, buf?: Buffer): void {
    if (this.opsIn > 0) {
      this.opsIn--;
      if (this.inflightIn > 0) this.inflightIn--;
    }
    const respId = (req.command_id | RESP_BIT) >>> 0;
    this.writeRaw(buf ?? encodeHeader(respId, status, req.sequence_number), respId, status);
    if (this.peerUnbind !== null && this.inflightIn === 0) this.finishPeerUnbind(this.peerUnbind.seq);
  }

  /** Answer a bind (side smsc). On ESME_ROK the session becomes bound; otherwise it is closed. */
  respondBind(req: Pdu, status: number, system_id: string): void {
    const resp = new Pdu((req.command_id | RESP_BIT) >>> 0, req.sequence_number, status);
    resp.system_id = system_id;
    if (status === 0) {
      resp.tlvs = [{ tag: 0x0210, value: Buffer.from([0x34]) }];
      this.state = req.command_id === CMD.bind_receiver ? "bound_rx" : req.command_id === CMD.bind_transmitter ? "bound_tx" : "bound_trx";
    }
    this.writePdu(resp);
    if (status !== 0) this.close("bind refused", true);
  }

  // -------------------------------------------------------------------------------------------
  // Sending requests

  /**
   * Send a request and resolve with its response (any command_status, or generic_nack). Waits for
   * room in the window. Rejects with SessionError on timeout, close, or a full queue.
   */
  request(p: Pdu): Promise<Pdu> {
    // never written: not in doubt
    if (this.state === "closed") return Promise.reject(new SessionError("unsent", "session closed"));
    return new Promise<Pdu>((resolve, reject) => {
      if (this.pending.size < this.windowOut && this.queued === 0) {
        this.send(p, resolve, reject);
      } else if (this.queued >= this.maxQueue) {
        reject(new SessionError("queue_full", "send queue full"));
      } else {
        this.queue.push({ pdu: p, resolve, reject });
      }
    });
  }

  private send(p: Pdu, resolve: (p: Pdu) => void, reject: (e: Error) => void): void {
    if (++this.seq > MAX_SEQ) this.seq = 1;
    p.sequence_number = this.seq;
    this.pending.set(p.sequence_number, {
      command_id: p.command_id,
      deadline: this.opts.clock.now() + this.opts.responseTimeoutMs,
      resolve,
      reject,
    });
    let buf: Buffer;
    try {
      buf = encodePdu(p);
    } catch (e) {
      this.pending.delete(p.sequence_number);
      reject(e as Error);
      return;
    }
    this.writeRaw(buf, p.command_id, 0);
  }

  private pump(): void {
    while (this.queueHead < this.queue.length && this.pending.size < this.windowOut && this.state !== "closed") {
      const q = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as unknown as Queued;
      this.send(q.pdu, q.resolve, q.reject);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    } else if (this.queueHead === this.queue.length && this.queueHead > 0) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
  }

  private bindAnswered(reqId: number, resp: Pdu): void {
    if (resp.command_status === 0 && resp.command_id === ((reqId | RESP_BIT) >>> 0)) {
      this.state = reqId === CMD.bind_receiver ? "bound_rx" : reqId === CMD.bind_transmitter ? "bound_tx" : "bound_trx";
    } else {
      this.state = "open";
    }
  }

  /** Send a bind (side esme) and resolve with the response. The state follows the answer as it is read. */
  async bind(mode: "receiver" | "transmitter" | "transceiver", params: { system_id: string; password: string; system_type?: string; addr_ton?: number; addr_npi?: number; address_range?: string }): Promise<Pdu> {
    const id = mode === "receiver" ? CMD.bind_receiver : mode === "transmitter" ? CMD.bind_transmitter : CMD.bind_transceiver;
    const p = new Pdu(id);
    p.system_id = params.system_id;
    p.password = params.password;
    p.system_type = params.system_type ?? "";
    p.interface_version = 0x34;
    p.addr_ton = params.addr_ton ?? 0;
    p.addr_npi = params.addr_npi ?? 0;
    p.address_range = params.address_range ?? "";
    this.state = "binding";
    return this.request(p);
  }

  /** Polite close: unbind, wait for unbind_resp (or the response timeout), close. */
  async unbind(): Promise<void> {
    if (this.state === "closed") return;
    if (!this.isBound) {
      this.close("closed before bind", true);
      return;
    }
    this.state = "unbinding";
    try {
      await this.request(new Pdu(CMD.unbind));
    } catch {
      // timeout or close: close anyway
    }
    this.close("unbound", true);
  }

  // -------------------------------------------------------------------------------------------
  // Timers

  private onTick(): void {
    if (this.state === "closed") return;
    try {
      const now = this.opts.clock.now();
      // Response timeouts: the map is in send order and every deadline has the same offset.
      for (const [seq, p] of this.pending) {
        if (p.deadline > now) break;
        this.pending.delete(seq);
        if (p.command_id === CMD.enquire_link) {
          this.opts.logger.warn({ session: this.id, peer: this.peer }, "smpp: enquire_link unanswered, closing");
          p.reject(new SessionError("timeout", "enquire_link timed out"));
          this.close("enquire_link timeout", false);
          return;
        }
        this.opts.logger.warn({ session: this.id, peer: this.peer, command: commandName(p.command_id), seq }, "smpp: response timeout");
        p.reject(new SessionError("timeout", commandName(p.command_id) + " timed out"));
      }
      this.pump();
      const bindTimeout = this.opts.bindTimeoutMs ?? 0;
      if ((this.state === "open" || this.state === "binding") && bindTimeout > 0 && now - this.openedAt >= bindTimeout && this.side === "smsc") {
        this.close("no bind within " + bindTimeout + " ms", false);
        return;
      }
      const pduTimeout = this.opts.pduTimeoutMs ?? 0;
      if (pduTimeout > 0 && this.partialSince > 0 && now - this.partialSince >= pduTimeout) {
        this.opts.logger.warn({ session: this.id, peer: this.peer, remote: this.remoteAddress, buffered: this.buffered }, "smpp: PDU not complete in time, closing");
        this.close("PDU not complete within " + pduTimeout + " ms", false);
        return;
      }
      if (this.inactivityMs > 0 && now - this.lastReceived >= this.inactivityMs) {
        this.close("peer silent for " + (now - this.lastReceived) + " ms", false);
        return;
      }
      if (this.enquireLinkMs > 0 && this.isBound && !this.enquirePending && now - this.lastEnquire >= this.enquireLinkMs) {
        this.lastEnquire = now;
        this.enquirePending = true;
        this.request(new Pdu(CMD.enquire_link)).then(
          () => {
            this.enquirePending = false;
          },
          () => {
            this.enquirePending = false;
          },
        );
      }
    } catch (e) {
      this.opts.logger.error({ err: e, session: this.id }, "smpp: timer error");
    }
  }

  // -------------------------------------------------------------------------------------------
  // Writing and closing

  writePdu(p: Pdu): void {
    this.writeRaw(encodePdu(p), p.command_id, p.command_status);
  }

  private writeRaw(buf: Buffer, command_id: number, status: number): void {
    if (this.state === "closed" || this.socket.destroyed) return;
    this.handler.onPdu(this, "out", command_id, status);
    // PDUs written in one tick (a window's worth of responses) leave in one write: cork now,
    // uncork on the next tick.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(uncork, this);
    }
    this.socket.write(buf);
  }

  /** True while writes of this tick are being gathered (see writeRaw). */
  corked = false;

  /**
   * Close the session. `graceful` ends the socket after pending writes; otherwise it is destroyed.
   * Pending requests are rejected. onClose runs once.
   */
  close(reason: string, graceful = false): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.closeReason = reason;
    this.opts.clock.clearInterval(this.timer);
    if (this.peerUnbind !== null) this.opts.clock.clearTimeout(this.peerUnbind.timer);
    this.peerUnbind = null;
    const err = new SessionError("closed", "session closed: " + reason);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    const unsent = new SessionError("unsent", "session closed before it was sent: " + reason);
    for (let i = this.queueHead; i < this.queue.length; i++) this.queue[i]!.reject(unsent);
    this.queue.length = 0;
    this.queueHead = 0;
    this.chunks = [];
    this.buffered = 0;
    if (graceful) {
      this.socket.end();
      // Do not wait forever for the peer to close its side.
      const t = this.opts.clock.setTimeout(() => this.socket.destroy(), 2000);
      this.socket.once("close", () => this.opts.clock.clearTimeout(t));
    } else {
      this.socket.destroy();
    }
    try {
      this.handler.onClose(this, reason);
    } catch (e) {
      this.opts.logger.error({ err: e, session: this.id }, "smpp: close handler threw");
    }
  }

  /**
   * Stop being this socket's session without closing the socket: listeners and timers go, pending
   * requests are rejected, onClose runs with `reason`. The caller takes the socket over (an outbind
   * becomes an outbound bind's session). Bytes already buffered after the last whole PDU are dropped
   * (after an outbind the SMSC sends nothing until it gets the bind).
   */
  detach(reason: string): Socket {
    const s = this.socket;
    s.off("data", this.listeners.data);
    s.off("error", this.listeners.error);
    s.off("close", this.listeners.close);
    s.off("end", this.listeners.end);
    if (this.state !== "closed") {
      this.state = "closed";
      this.closeReason = reason;
      this.opts.clock.clearInterval(this.timer);
      const err = new SessionError("closed", "session detached: " + reason);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      const unsent = new SessionError("unsent", "session detached before it was sent: " + reason);
      for (let i = this.queueHead; i < this.queue.length; i++) this.queue[i]!.reject(unsent);
      this.queue.length = 0;
      this.queueHead = 0;
      this.chunks = [];
      this.buffered = 0;
      try {
        this.handler.onClose(this, reason);
      } catch (e) {
        this.opts.logger.error({ err: e, session: this.id }, "smpp: close handler threw");
      }
    }
    // A write corked in this tick is uncorked on the next one (writeRaw), for the new owner too.
    return s;
  }

  get reason(): string {
    return this.closeReason;
  }

  private onSocketError(e: Error): void {
    this.opts.logger.debug({ err: e, session: this.id, peer: this.peer }, "smpp: socket error");
    this.close("socket error: " + e.message, false);
  }

  private onSocketClose(): void {
    this.close("connection closed", false);
  }
}

/** "::ffff:127.0.0.1" -> "127.0.0.1". */
export function normaliseAddress(a: string): string {
  return a.startsWith("::ffff:") && a.indexOf(".") > 0 ? a.slice(7) : a;
}

/** Unsent output above which a session stops reading its peer (pauseReading). */
const OUT_PAUSE_BYTES = 1024 * 1024;

function uncork(s: SmppSession): void {
  s.corked = false;
  if (!s.socket.destroyed) s.socket.uncork();
}
