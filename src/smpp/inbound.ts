/**
 * Inbound message PDUs (deliver_sm / submit_sm / data_sm) from any peer, after the decode stage
 * (decode.ts: refusal, receipt, whole message or part): parts reassembled (in memory or in the
 * durable part store), handed to onMessage / onReceipt, and answered only when the handler's
 * promise settles (or its time runs out: temporary failure).
 */
import type { Logger } from "pino";
import type { Clock } from "../util/clock.js";
import { STATUS } from "./constants.js";
import { type Pdu, type Tlv } from "./codec.js";
import { parseDataCoding, type DataCoding, type TextEncoding } from "./charset.js";
import { concatUnits, decodeUnits, type ConcatInfo } from "./message.js";
import { Reassembler } from "./reassembly.js";
import { decodeMessagePdu, setBody, setTimes, type Part, type PeerContext } from "./decode.js";
import type { SmppMetrics } from "./metrics.js";
import type { SmppSession } from "./session.js";
export type { Part, PeerContext } from "./decode.js";
import type { AcceptResult, DurablePartAdd, DurablePartStore, InboundCommand, InboundHandlers, InboundSms, PeerOptions, Receipt, SmsAddress } from "./types.js";

export interface InboundOptions {
  handlers: InboundHandlers;
  logger: Logger;
  clock: Clock;
  metrics: SmppMetrics;
  handlerTimeoutMs: number;
  /** maxBuffersPerPeer: open buffers per app account (default a quarter of maxBuffers, at least 10). */
  reassembly: { timeoutMs: number; maxBuffers: number; maxBytes: number; maxBuffersPerPeer?: number | undefined };
  /**
   * Durable reassembly buffers: when given, parts of concatenated messages are kept here (and not
   * in memory) before they are answered, so a restart loses no acknowledged part.
   */
  partStore?: DurablePartStore;
  /** How often to sweep the durable store for timed-out buffers (ms, default 1000). */
  partSweepMs?: number;
}

const TIMEOUT = Symbol("timeout");

/**
 * The durable reassembly buffers this edge opened per app account: max_buffers is shared by every
 * peer (and edge), so one app sending first parts that never complete could take them all and
 * leave the carriers' long messages refused. A buffer counts from its first part stored here until
 * it completes, is swept or forgotten, or its timeout (twice over) passes (another edge may have
 * completed it). Bounded: at most `max` keys per app, and apps are the configured accounts.
 */
class PeerBuffers {
  private readonly open = new Map<string, Map<string, number>>();
  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
    private readonly clock: Clock,
  ) {}

  /** May a part of `key` be stored for `peer`: its buffer is open already, or the peer has room. */
  admit(peer: string, key: string): boolean {
    const m = this.open.get(peer);
    if (m === undefined || m.size < this.max || m.has(key)) return true;
    const now = this.clock.now();
    for (const [k, until] of m) if (until <= now) m.delete(k);
    return m.size < this.max;
  }

  stored(peer: string, key: string): void {
    let m = this.open.get(peer);
    if (m === undefined) this.open.set(peer, (m = new Map()));
    if (!m.has(key)) m.set(key, this.clock.now() + this.ttlMs);
  }

  closed(peer: string, key: string): void {
    const m = this.open.get(peer);
    if (m === undefined) return;
    m.delete(key);
    if (m.size === 0) this.open.delete(peer);
  }
}

export function tempStatusOf(p: PeerOptions): number {
  return p.temp_fail_status ?? STATUS.ESME_RX_T_APPN;
}

export function statusFor(result: AcceptResult | undefined, peer: PeerOptions): number {
  switch (result?.status) {
    case "accepted":
      return STATUS.ESME_ROK;
    case "invalid_destination":
      return STATUS.ESME_RINVDSTADR;
    case "invalid_source":
      return STATUS.ESME_RINVSRCADR;
    case "invalid_schedule":
      return STATUS.ESME_RINVSCHED;
    case "invalid_expiry":
      return STATUS.ESME_RINVEXPIRY;
    case "permanent":
      return STATUS.ESME_RX_R_APPN;
    default:
      return tempStatusOf(peer);
  }
}

export class InboundProcessor {
  draining = false;
  /** Handler calls not yet settled (for drain). */
  inFlight = 0;
  private readonly reasm: Reassembler<Part>;
  private readonly sweepTimer: unknown;
  private readonly store: DurablePartStore | undefined;
  private readonly peerBuffers: PeerBuffers;
  /** Peers whose refusal for a full share was logged (configured peers: bounded). */
  private readonly peerFullLogged = new Set<string>();
  private sweeping = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: InboundOptions) {
    this.store = o.partStore;
    this.peerBuffers = new PeerBuffers(o.reassembly.maxBuffersPerPeer ?? Math.max(10, Math.floor(o.reassembly.maxBuffers / 4)), 2 * o.reassembly.timeoutMs, o.clock);
    this.reasm = new Reassembler<Part>({
      timeoutMs: o.reassembly.timeoutMs,
      maxBuffers: o.reassembly.maxBuffers,
      maxBytes: o.reassembly.maxBytes,
      clock: o.clock,
      onIncomplete: (parts, total, reason) => this.incomplete(parts, total, reason),
    });
    if (this.store !== undefined) {
      this.sweepTimer = o.clock.setInterval(() => void this.durableSweep(), o.partSweepMs ?? 1000);
    } else {
      const every = Math.max(50, Math.min(1000, Math.floor(o.reassembly.timeoutMs / 4)));
      this.sweepTimer = o.clock.setInterval(() => this.reasm.sweep(), every);
    }
  }

  get reassemblyBuffers(): number {
    return this.reasm.size;
  }

  get reassemblyBytes(): number {
    return this.reasm.bytes;
  }

  /** Handle one message PDU; answers it on `session` exactly once. Never throws. */
  handle(session: SmppSession, pdu: Pdu, peer: PeerContext): void {
    const m = this.o.metrics;
    if (this.draining) {
      m.inbound.labels(peer.name, "message", "draining").inc();
      session.respond(pdu, tempStatusOf(peer.options));
      return;
    }
    const d = decodeMessagePdu(pdu, peer, this.o.clock.now());
    switch (d.kind) {
      case "refused":
        m.inbound.labels(peer.name, "message", d.reason).inc();
        // (counted above; logged at warn for the first few of the session only)
        if (d.reason === "payload_and_short_message") {
          this.o.logger[session.badPduLevel()]({ peer: peer.name, sm_length: pdu.short_message.length }, "smpp: PDU with both short_message and message_payload refused");
        } else {
          this.o.logger[session.badPduLevel()]({ peer: peer.name, status: d.status }, "smpp: malformed user data header");
        }
        session.respond(pdu, d.status);
        return;
      case "receipt":
        void this.receipt(session, pdu, peer, d.receipt);
        return;
      case "single":
        void this.deliver(session, pdu, peer, d.msg, null);
        return;
    }
    const { part, concat: c } = d;
    const message_id = part.message_id;
    if (this.store !== undefined) {
      void this.durablePart(this.store, session, pdu, peer, c, part);
      return;
    }
    const key =
      peer.kind + "\u0000" + peer.name + "\u0000" + pdu.source_addr + "\u0000" + pdu.destination_addr + "\u0000" +
      c.kind + "\u0000" + c.ref + "\u0000" + c.total;
    const r = this.reasm.add(key, c.total, c.seq, part, part.units.length + 64);
    if (r.kind === "stored") {
      m.inbound.labels(peer.name, "part", "stored").inc();
      session.respond(pdu, STATUS.ESME_ROK, message_id);
      return;
    }
    if (r.kind === "duplicate") {
      m.inbound.labels(peer.name, "part", "duplicate").inc();
      session.respond(pdu, STATUS.ESME_ROK, message_id);
      return;
    }
    const msg = this.assemble(r.parts, c.total, false);
    msg.message_id = message_id;
    void this.deliver(session, pdu, peer, msg, { key, total: c.total, parts: r.parts, last: c.seq });
  }

  private assemble(parts: Part[], total: number, partial: boolean): InboundSms {
    parts.sort((a, b) => a.seq - b.seq);
    const first = parts[0]!;
    let received = first.received_at;
    for (const p of parts) if (p.received_at < received) received = p.received_at;
    const dcs: DataCoding = parseDataCoding(first.data_coding);
    const msg: InboundSms = {
      peer: first.peer.name,
      peer_kind: first.peer.kind,
      command: first.command,
      source: first.source,
      destination: first.destination,
      encoding: first.encoding,
      data_coding: first.data_coding,
      dcs,
      esm_class: first.esm_class,
      protocol_id: first.protocol_id,
      registered_delivery: first.registered_delivery,
      service_type: first.service_type,
      parts: parts.length,
      total_parts: total,
      partial,
      message_id: first.message_id,
      part_ids: parts.map((p) => p.message_id),
      received_at: new Date(received),
      tlvs: first.tlvs,
    };
    setTimes(msg, first);
    // A receipt is wanted when any part asked for one (SMSCs set it on the first part, or on all).
    for (const p of parts) if ((msg.registered_delivery & 0x03) === 0) msg.registered_delivery = p.registered_delivery;
    let same = true;
    for (const p of parts) if (p.encoding !== first.encoding) same = false;
    if (same) {
      setBody(msg, first.encoding, concatUnits(parts.map((p) => p.units)), true, first.national ?? 0);
    } else {
      // Parts disagree on data_coding: decode each on its own.
      let text = "";
      for (const p of parts) text += decodeUnits(p.encoding, p.units, p.national ?? 0) ?? Buffer.from(p.units).toString("latin1");
      msg.text = text;
    }
    return msg;
  }

  private async deliver(
    session: SmppSession | null,
    pdu: Pdu | null,
    peer: PeerContext,
    msg: InboundSms,
    multi: { key: string; total: number; parts: Part[]; last: number } | null,
  ): Promise<AcceptResult["status"]> {
    const kind = msg.partial ? "partial" : "message";
    const result = await this.callHandler(() => this.o.handlers.onMessage(msg), peer, msg.message_id);
    const res = result === TIMEOUT || result === undefined ? "temporary" : (result as AcceptResult).status;
    this.o.metrics.inbound.labels(peer.name, kind, res).inc();
    // The edge (src/edge/sms.ts) logs the outcome line at info with the route; this is the SMPP
    // view, except when the handler did not answer in time (the PDU gets the temporary status).
    this.o.logger[result === TIMEOUT ? "warn" : "debug"](
      {
        peer: peer.name,
        command: msg.command,
        from: msg.source.addr,
        to: msg.destination.addr,
        message_id: msg.message_id,
        parts: msg.parts,
        partial: msg.partial,
        encoding: msg.encoding,
        result: result === TIMEOUT ? "timeout" : res,
      },
      "smpp: inbound message",
    );
    if (session !== null && pdu !== null) {
      const status = statusFor(result === TIMEOUT ? undefined : (result as AcceptResult | undefined), peer.options);
      session.respond(pdu, status, msg.message_id);
      if (multi !== null && status === tempStatusOf(peer.options) && !this.draining) {
        // Put the other parts back, so that the peer's retry of this part completes the message again.
        const keep = multi.parts.filter((p) => p.seq !== multi.last);
        this.reasm.restore(
          multi.key,
          multi.total,
          keep.map((p) => p.seq),
          keep,
          keep.map((p) => p.units.length + 64),
        );
      }
    }
    return res;
  }

  /**
   * A part of a concatenated message with a durable store: answered once the store holds it.
   * The complete message's buffer is forgotten only once the handler took (or refused) it; after a
   * temporary failure it stays, so the peer's retry of the final part completes it again (and if
   * no retry comes, the sweep delivers it).
   */
  private async durablePart(store: DurablePartStore, session: SmppSession, pdu: Pdu, peer: PeerContext, c: ConcatInfo, part: Part): Promise<void> {
    const m = this.o.metrics;
    const key = durableKey(peer, pdu.source_addr, pdu.destination_addr, c);
    // apps only: a carrier may spread one message's parts over binds on several edges, and this
    // edge would not learn that another one completed a buffer it counted
    const counted = peer.kind === "account" && (peer.options as { role?: string }).role === "app";
    if (counted && !this.peerBuffers.admit(peer.name, key)) {
      m.inbound.labels(peer.name, "part", "peer_full").inc();
      if (this.peerFullLogged.has(peer.name) === false) {
        this.peerFullLogged.add(peer.name);
        this.o.logger.warn({ peer: peer.name }, "smpp: this peer has its share of reassembly buffers open: part declined with a temporary failure (logged once per peer)");
      }
      session.respond(pdu, tempStatusOf(peer.options));
      return;
    }
    let r: DurablePartAdd | typeof TIMEOUT | undefined;
    this.enter();
    try {
      const adding = store.add(key, c.total, c.seq, encodePart(part));
      r = await this.bounded(adding);
      // answered temporary meanwhile: a completion that comes late is not delivered here (the
      // peer's retry or the sweep will), so it must not stay marked as being delivered
      if (r === TIMEOUT) void adding.then((x) => x.kind === "complete" && store.release?.(key)).catch(() => undefined);
    } catch (err) {
      this.o.logger.warn({ peer: peer.name, err: (err as Error)?.message }, "smpp: part store failed: part declined with a temporary failure");
      r = undefined;
    } finally {
      this.leave();
    }
    if (r === undefined || r === TIMEOUT) {
      if (r === TIMEOUT) this.o.logger.warn({ peer: peer.name }, "smpp: part store timed out: part declined with a temporary failure");
      m.inbound.labels(peer.name, "part", "error").inc();
      session.respond(pdu, tempStatusOf(peer.options));
      return;
    }
    if (counted) {
      if (r.kind === "stored" || r.kind === "duplicate") this.peerBuffers.stored(peer.name, key);
      else this.peerBuffers.closed(peer.name, key);
    }
    switch (r.kind) {
      case "stored":
      case "duplicate":
        m.inbound.labels(peer.name, "part", r.kind).inc();
        session.respond(pdu, STATUS.ESME_ROK, part.message_id);
        return;
      case "full":
        m.inbound.labels(peer.name, "part", "full").inc();
        this.o.logger.warn({ peer: peer.name }, "smpp: reassembly buffers full: part declined with a temporary failure");
        session.respond(pdu, tempStatusOf(peer.options));
        return;
      case "late": {
        // Its buffer timed out and was handed out already: this part goes on its own.
        m.reassemblyIncomplete.labels("late").inc();
        void this.deliver(session, pdu, peer, this.assemble([part], c.total, true), null);
        return;
      }
      case "complete": {
        const parts = decodeParts(r.parts);
        if (parts.length === 0) parts.push(part);
        const res = await this.deliver(session, pdu, peer, this.assemble(parts, c.total, parts.length < c.total), null);
        if (res !== "temporary") {
          await this.forget(store, key);
          // a repeated part taken while it was delivered counted it open again
          this.peerBuffers.closed(peer.name, key);
        } else store.release?.(key);
        return;
      }
    }
  }

  /** One pass over the durable store's timed-out buffers (every partSweepMs). */
  private sweepFailing = false;

  private async durableSweep(): Promise<void> {
    const store = this.store;
    if (store === undefined || this.sweeping || this.draining) return;
    this.sweeping = true;
    this.enter();
    try {
      const list = await store.sweep(100);
      if (this.sweepFailing) {
        this.sweepFailing = false;
        this.o.logger.info("smpp: part store sweep works again");
      }
      await Promise.all(list.map((b) => this.deliverSwept(store, b)));
    } catch (err) {
      // The sweep runs every second: log the failure once (its store is down), not every pass.
      this.o.logger[this.sweepFailing ? "debug" : "warn"]({ err: (err as Error)?.message }, "smpp: part store sweep failed");
      this.sweepFailing = true;
    } finally {
      this.sweeping = false;
      this.leave();
    }
  }

  private async deliverSwept(store: DurablePartStore, b: { key: string; total: number; parts: (string | undefined)[] }): Promise<void> {
    const parts = decodeParts(b.parts);
    if (parts.length === 0) {
      this.o.logger.warn({ key: b.key }, "smpp: swept reassembly buffer holds no readable part: dropped");
      await this.forget(store, b.key);
      return;
    }
    const partial = parts.length < b.total;
    const peer = parts[0]!.peer;
    this.peerBuffers.closed(peer.name, b.key);
    if (partial) {
      this.o.metrics.reassemblyIncomplete.labels("timeout").inc();
      this.o.logger.warn({ peer: peer.name, parts: parts.length, total: b.total, reason: "timeout" }, "smpp: delivering incomplete message");
    }
    // (Complete when an edge stopped between completing it and forgetting it.)
    const res = await this.deliver(null, null, peer, this.assemble(parts, b.total, partial), null);
    // Temporary: the lease runs out and a later sweep (of any edge) tries again.
    if (res !== "temporary") await this.forget(store, b.key);
  }

  private async forget(store: DurablePartStore, key: string): Promise<void> {
    try {
      await store.done(key);
    } catch (err) {
      // The buffer stays due: a sweep hands it out again (delivery at least once).
      this.o.logger.warn({ key, err: (err as Error)?.message }, "smpp: part store done() failed");
    }
  }

  /** `p`, or TIMEOUT after handlerTimeoutMs. */
  private bounded<T>(p: Promise<T>): Promise<T | typeof TIMEOUT> {
    let timer: unknown;
    const timeout = new Promise<typeof TIMEOUT>((resolve) => {
      timer = this.o.clock.setTimeout(() => resolve(TIMEOUT), this.o.handlerTimeoutMs);
    });
    return Promise.race([p, timeout]).finally(() => this.o.clock.clearTimeout(timer));
  }

  private enter(): void {
    this.inFlight++;
  }

  private leave(): void {
    if (--this.inFlight === 0 && this.idleWaiters.length > 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  private async receipt(session: SmppSession, pdu: Pdu, peer: PeerContext, r: Receipt): Promise<void> {
    const result = await this.callHandler(async () => {
      await this.o.handlers.onReceipt(r);
      return { status: "accepted" } as AcceptResult;
    }, peer, r.message_id);
    const ok = result !== TIMEOUT && result !== undefined;
    this.o.metrics.inbound.labels(peer.name, "receipt", ok ? "accepted" : "temporary").inc();
    this.o.logger.debug({ peer: peer.name, message_id: r.message_id, stat: r.stat, result: ok ? "accepted" : result === TIMEOUT ? "timeout" : "error" }, "smpp: receipt");
    session.respond(pdu, ok ? STATUS.ESME_ROK : tempStatusOf(peer.options));
  }

  /** Run a handler with a deadline; undefined when it threw, TIMEOUT when it did not settle in time. */
  private async callHandler(
    fn: () => Promise<AcceptResult>,
    peer: PeerContext,
    id: string,
  ): Promise<AcceptResult | undefined | typeof TIMEOUT> {
    this.enter();
    let timer: unknown;
    try {
      const timeout = new Promise<typeof TIMEOUT>((resolve) => {
        timer = this.o.clock.setTimeout(() => resolve(TIMEOUT), this.o.handlerTimeoutMs);
      });
      const r = await Promise.race([fn(), timeout]);
      if (r !== TIMEOUT && (r === null || typeof r !== "object" || typeof (r as AcceptResult).status !== "string")) {
        this.o.logger.error({ peer: peer.name, message_id: id }, "smpp: handler returned no AcceptResult");
        return undefined;
      }
      return r;
    } catch (e) {
      this.o.logger.error({ err: e, peer: peer.name, message_id: id }, "smpp: handler failed");
      return undefined;
    } finally {
      this.o.clock.clearTimeout(timer);
      this.leave();
    }
  }

  private incomplete(parts: Part[], total: number, reason: "timeout" | "evicted" | "shutdown"): void {
    this.o.metrics.reassemblyIncomplete.labels(reason).inc();
    const msg = this.assemble(parts, total, true);
    const peer = parts[0]!.peer;
    this.o.logger.warn({ peer: peer.name, parts: parts.length, total, reason }, "smpp: delivering incomplete message");
    // Out of the cache's callback before calling user code.
    queueMicrotask(() => void this.deliver(null, null, peer, msg, null));
  }

  /** Resolves when no handler call is in flight (or after timeoutMs). */
  idle(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = this.o.clock.setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        this.o.clock.clearTimeout(t);
        resolve();
      });
    });
  }

  /** Deliver buffered parts as incomplete (shutdown). With a durable store they stay where they are. */
  flush(): void {
    this.reasm.flush();
  }

  close(): void {
    this.o.clock.clearInterval(this.sweepTimer);
  }
}

/**
 * The durable buffer's key: peer kind and name, addresses, concatenation kind, reference and total,
 * each URI-encoded (readable in Redis, unambiguous).
 */
export function durableKey(peer: PeerContext, source: string, destination: string, c: ConcatInfo): string {
  return `${peer.kind}:${encodeURIComponent(peer.name)}:${encodeURIComponent(source)}:${encodeURIComponent(destination)}:${c.kind}:${c.ref}:${c.total}`;
}

/** A part as stored in the durable store (JSON; binary fields base64). */
interface StoredPart {
  v: 1;
  seq: number;
  units: string;
  encoding: TextEncoding;
  national?: number;
  data_coding: number;
  esm_class: number;
  protocol_id: number;
  registered_delivery: number;
  service_type: string;
  command: InboundCommand;
  source: SmsAddress;
  destination: SmsAddress;
  tlvs: [number, string][];
  received_at: number;
  message_id: string;
  peer: string;
  peer_kind: "account" | "bind";
  schedule_delivery_time?: string;
  validity_period?: string;
}

function encodePart(p: Part): string {
  const tlvs: [number, string][] = [];
  for (const t of p.tlvs) tlvs.push([t.tag, Buffer.from(t.value).toString("base64")]);
  const s: StoredPart = {
    v: 1,
    seq: p.seq,
    units: Buffer.from(p.units.buffer, p.units.byteOffset, p.units.length).toString("base64"),
    encoding: p.encoding,
    ...(p.national !== undefined ? { national: p.national } : {}),
    data_coding: p.data_coding,
    esm_class: p.esm_class,
    protocol_id: p.protocol_id,
    registered_delivery: p.registered_delivery,
    service_type: p.service_type,
    command: p.command,
    source: p.source,
    destination: p.destination,
    tlvs,
    received_at: p.received_at,
    message_id: p.message_id,
    peer: p.peer.name,
    peer_kind: p.peer.kind,
  };
  setTimes(s, p);
  return JSON.stringify(s);
}

const ENCODINGS: ReadonlySet<string> = new Set<TextEncoding>(["gsm7", "ascii", "latin1", "ucs2", "binary"]);
const COMMANDS: ReadonlySet<string> = new Set<InboundCommand>(["deliver_sm", "submit_sm", "data_sm"]);

function isInt(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x);
}

function isAddress(x: unknown): x is SmsAddress {
  const a = x as SmsAddress | null;
  return typeof a === "object" && a !== null && typeof a.addr === "string" && isInt(a.ton) && isInt(a.npi);
}

/** A stored part back, or undefined when it is not one (never throws). Its peer has default options. */
export function decodePart(text: string): Part | undefined {
  let s: StoredPart;
  try {
    s = JSON.parse(text) as StoredPart;
  } catch {
    return undefined;
  }
  if (typeof s !== "object" || s === null || s.v !== 1) return undefined;
  if (!isInt(s.seq) || typeof s.units !== "string" || !ENCODINGS.has(s.encoding) || !COMMANDS.has(s.command)) return undefined;
  if (!isInt(s.data_coding) || !isInt(s.esm_class) || !isInt(s.protocol_id) || !isInt(s.registered_delivery)) return undefined;
  if (typeof s.service_type !== "string" || !isAddress(s.source) || !isAddress(s.destination)) return undefined;
  if (typeof s.received_at !== "number" || typeof s.message_id !== "string" || typeof s.peer !== "string") return undefined;
  if (s.peer_kind !== "account" && s.peer_kind !== "bind") return undefined;
  if (s.national !== undefined && !isInt(s.national)) return undefined;
  if ((s.schedule_delivery_time !== undefined && typeof s.schedule_delivery_time !== "string") || (s.validity_period !== undefined && typeof s.validity_period !== "string")) return undefined;
  if (!Array.isArray(s.tlvs)) return undefined;
  const tlvs: Tlv[] = [];
  for (const t of s.tlvs) {
    if (!Array.isArray(t) || !isInt(t[0]) || typeof t[1] !== "string") return undefined;
    tlvs.push({ tag: t[0], value: Buffer.from(t[1], "base64") });
  }
  const part: Part = {
    seq: s.seq,
    units: new Uint8Array(Buffer.from(s.units, "base64")),
    encoding: s.encoding,
    ...(s.national !== undefined ? { national: s.national } : {}),
    data_coding: s.data_coding,
    esm_class: s.esm_class,
    protocol_id: s.protocol_id,
    registered_delivery: s.registered_delivery,
    service_type: s.service_type,
    command: s.command,
    source: { addr: s.source.addr, ton: s.source.ton, npi: s.source.npi },
    destination: { addr: s.destination.addr, ton: s.destination.ton, npi: s.destination.npi },
    tlvs,
    received_at: s.received_at,
    message_id: s.message_id,
    peer: { name: s.peer, kind: s.peer_kind, options: {} },
  };
  setTimes(part, s);
  return part;
}

/** The readable parts among `list` (index seq-1), in order. */
function decodeParts(list: readonly (string | undefined)[]): Part[] {
  const out: Part[] = [];
  for (const t of list) {
    if (t === undefined) continue;
    const p = decodePart(t);
    if (p !== undefined) out.push(p);
  }
  return out;
}
