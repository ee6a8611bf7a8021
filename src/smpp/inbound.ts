/**
 * Inbound message PDUs (deliver_sm / submit_sm / data_sm) from any peer: receipts apart, parts
 * reassembled, text decoded, handed to onMessage / onReceipt, and answered only when the handler's
 * promise settles (or its time runs out: temporary failure).
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Clock } from "./clock.js";
import { CMD, STATUS, TLV } from "./constants.js";
import { type Pdu, type Tlv, tlvString } from "./codec.js";
import { parseDataCoding, type DataCoding, type TextEncoding } from "./charset.js";
import {
  concatUnits,
  decodeUnits,
  extractUserData,
  isFinalStat,
  isReceipt,
  normaliseReceiptId,
  parseReceiptText,
  partUnits,
  receiptKind,
  resolveEncoding,
  statFromState,
  type UserData,
} from "./message.js";
import { Reassembler } from "./reassembly.js";
import type { SmppMetrics } from "./metrics.js";
import type { SmppSession } from "./session.js";
import type {
  AcceptResult,
  InboundCommand,
  InboundHandlers,
  InboundSms,
  PeerOptions,
  Receipt,
  SmsAddress,
} from "./types.js";

export interface PeerContext {
  name: string;
  kind: "account" | "bind";
  options: PeerOptions;
}

/** One stored part of a concatenated message. */
interface Part {
  seq: number;
  units: Uint8Array;
  encoding: TextEncoding;
  data_coding: number;
  esm_class: number;
  protocol_id: number;
  registered_delivery: number;
  service_type: string;
  command: InboundCommand;
  source: SmsAddress;
  destination: SmsAddress;
  tlvs: Tlv[];
  received_at: number;
  message_id: string;
  peer: PeerContext;
}

export interface InboundOptions {
  handlers: InboundHandlers;
  logger: Logger;
  clock: Clock;
  metrics: SmppMetrics;
  handlerTimeoutMs: number;
  reassembly: { timeoutMs: number; maxBuffers: number; maxBytes: number };
}

const TIMEOUT = Symbol("timeout");

function commandOf(id: number): InboundCommand {
  return id === CMD.submit_sm ? "submit_sm" : id === CMD.data_sm ? "data_sm" : "deliver_sm";
}

function copyTlvs(tlvs: readonly Tlv[]): Tlv[] {
  const out: Tlv[] = [];
  for (const t of tlvs) if (t.tag !== TLV.message_payload) out.push({ tag: t.tag, value: Buffer.from(t.value) });
  return out;
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
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: InboundOptions) {
    this.reasm = new Reassembler<Part>({
      timeoutMs: o.reassembly.timeoutMs,
      maxBuffers: o.reassembly.maxBuffers,
      maxBytes: o.reassembly.maxBytes,
      clock: o.clock,
      onIncomplete: (parts, total, reason) => this.incomplete(parts, total, reason),
    });
    const every = Math.max(50, Math.min(1000, Math.floor(o.reassembly.timeoutMs / 4)));
    this.sweepTimer = o.clock.setInterval(() => this.reasm.sweep(), every);
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
    if (isReceipt(pdu.esm_class)) {
      // Some SMSCs send receipts with esm_class 0x44 (UDHI set) and a plain receipt text.
      const plain = looksLikeReceiptText(pdu.short_message.length > 0 ? pdu.short_message : pdu.tlv(TLV.message_payload));
      let rud = extractUserData(pdu, plain);
      if (typeof rud === "number") rud = extractUserData(pdu, true) as UserData;
      void this.receipt(session, pdu, peer, rud);
      return;
    }
    const ud = extractUserData(pdu);
    if (typeof ud === "number") {
      m.inbound.labels(peer.name, "message", "bad_udh").inc();
      this.o.logger.warn({ peer: peer.name, status: ud }, "smpp: malformed user data header");
      session.respond(pdu, ud);
      return;
    }
    const dcs = parseDataCoding(pdu.data_coding);
    const encoding = resolveEncoding(dcs, peer.options);
    const units = partUnits(encoding, ud, peer.options);
    const message_id = randomUUID();
    if (ud.concat === null) {
      const msg: InboundSms = {
        peer: peer.name,
        peer_kind: peer.kind,
        command: commandOf(pdu.command_id),
        source: { addr: pdu.source_addr, ton: pdu.source_addr_ton, npi: pdu.source_addr_npi },
        destination: { addr: pdu.destination_addr, ton: pdu.dest_addr_ton, npi: pdu.dest_addr_npi },
        encoding,
        data_coding: pdu.data_coding,
        dcs,
        esm_class: pdu.esm_class,
        protocol_id: pdu.protocol_id,
        registered_delivery: pdu.registered_delivery,
        service_type: pdu.service_type,
        parts: 1,
        total_parts: 1,
        partial: false,
        message_id,
        received_at: new Date(this.o.clock.now()),
        tlvs: copyTlvs(pdu.tlvs),
      };
      setBody(msg, encoding, units, true);
      const smscId = pdu.tlv(TLV.receipted_message_id);
      if (smscId !== undefined) msg.smsc_message_id = tlvString(smscId);
      void this.deliver(session, pdu, peer, msg, null);
      return;
    }
    const c = ud.concat;
    const part: Part = {
      seq: c.seq,
      units: Uint8Array.from(units),
      encoding,
      data_coding: pdu.data_coding,
      esm_class: pdu.esm_class,
      protocol_id: pdu.protocol_id,
      registered_delivery: pdu.registered_delivery,
      service_type: pdu.service_type,
      command: commandOf(pdu.command_id),
      source: { addr: pdu.source_addr, ton: pdu.source_addr_ton, npi: pdu.source_addr_npi },
      destination: { addr: pdu.destination_addr, ton: pdu.dest_addr_ton, npi: pdu.dest_addr_npi },
      tlvs: copyTlvs(pdu.tlvs),
      received_at: this.o.clock.now(),
      message_id,
      peer,
    };
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
      received_at: new Date(received),
      tlvs: first.tlvs,
    };
    let same = true;
    for (const p of parts) if (p.encoding !== first.encoding) same = false;
    if (same) {
      setBody(msg, first.encoding, concatUnits(parts.map((p) => p.units)), true);
    } else {
      // Parts disagree on data_coding: decode each on its own.
      let text = "";
      for (const p of parts) text += decodeUnits(p.encoding, p.units) ?? Buffer.from(p.units).toString("latin1");
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
  ): Promise<void> {
    const kind = msg.partial ? "partial" : "message";
    const result = await this.callHandler(() => this.o.handlers.onMessage(msg), peer, msg.message_id);
    const res = result === TIMEOUT || result === undefined ? "temporary" : (result as AcceptResult).status;
    this.o.metrics.inbound.labels(peer.name, kind, res).inc();
    this.o.logger.info(
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
  }

  private async receipt(session: SmppSession, pdu: Pdu, peer: PeerContext, ud: UserData): Promise<void> {
    const dcs = parseDataCoding(pdu.data_coding);
    const enc = resolveEncoding(dcs, peer.options);
    const raw = enc === "ucs2" || enc === "gsm7" ? (decodeUnits(enc, partUnits(enc, ud, peer.options)) ?? "") : ud.payload.toString("latin1");
    const t = parseReceiptText(raw);
    const stateTlv = pdu.tlv(TLV.message_state);
    const message_state = stateTlv !== undefined ? stateTlv[0] : undefined;
    const ridTlv = pdu.tlv(TLV.receipted_message_id);
    const rid = ridTlv !== undefined ? tlvString(ridTlv) : undefined;
    const stat = t.stat ?? statFromState(message_state) ?? "UNKNOWN";
    const r: Receipt = {
      peer: peer.name,
      peer_kind: peer.kind,
      command: commandOf(pdu.command_id),
      kind: receiptKind(pdu.esm_class),
      message_id: rid !== undefined && rid.length > 0 ? rid : t.id !== undefined ? normaliseReceiptId(t.id, peer.options) : "",
      stat,
      final: isFinalStat(stat) || (message_state !== undefined && message_state >= 2 && message_state <= 5) || message_state === 8,
      delivered: stat === "DELIVRD" || stat === "DELIVERED" || message_state === 2,
      raw,
      source: { addr: pdu.source_addr, ton: pdu.source_addr_ton, npi: pdu.source_addr_npi },
      destination: { addr: pdu.destination_addr, ton: pdu.dest_addr_ton, npi: pdu.dest_addr_npi },
      received_at: new Date(this.o.clock.now()),
      tlvs: copyTlvs(pdu.tlvs),
    };
    if (message_state !== undefined) r.message_state = message_state;
    if (t.id !== undefined) r.text_id = t.id;
    if (t.sub !== undefined) r.sub = t.sub;
    if (t.dlvrd !== undefined) r.dlvrd = t.dlvrd;
    if (t.submit_date !== undefined) r.submit_date = t.submit_date;
    if (t.done_date !== undefined) r.done_date = t.done_date;
    if (t.err !== undefined) r.err = t.err;
    if (t.text !== undefined) r.text = t.text;
    const nec = pdu.tlv(TLV.network_error_code);
    if (nec !== undefined && nec.length === 3) r.network_error = { type: nec[0]!, code: (nec[1]! << 8) | nec[2]! };
    const result = await this.callHandler(async () => {
      await this.o.handlers.onReceipt(r);
      return { status: "accepted" } as AcceptResult;
    }, peer, r.message_id);
    const ok = result !== TIMEOUT && result !== undefined;
    this.o.metrics.inbound.labels(peer.name, "receipt", ok ? "accepted" : "temporary").inc();
    this.o.logger.info({ peer: peer.name, message_id: r.message_id, stat: r.stat, result: ok ? "accepted" : result === TIMEOUT ? "timeout" : "error" }, "smpp: receipt");
    session.respond(pdu, ok ? STATUS.ESME_ROK : tempStatusOf(peer.options));
  }

  /** Run a handler with a deadline; undefined when it threw, TIMEOUT when it did not settle in time. */
  private async callHandler(
    fn: () => Promise<AcceptResult>,
    peer: PeerContext,
    id: string,
  ): Promise<AcceptResult | undefined | typeof TIMEOUT> {
    this.inFlight++;
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
      if (--this.inFlight === 0 && this.idleWaiters.length > 0) {
        const w = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of w) f();
      }
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

  /** Deliver buffered parts as incomplete (shutdown). */
  flush(): void {
    this.reasm.flush();
  }

  close(): void {
    this.o.clock.clearInterval(this.sweepTimer);
  }
}

function setBody(msg: InboundSms, encoding: TextEncoding, units: Uint8Array, copy: boolean): void {
  const text = decodeUnits(encoding, units);
  if (text !== undefined) msg.text = text;
  else msg.binary = copy ? Buffer.from(units) : Buffer.from(units.buffer, units.byteOffset, units.length);
}

/** Does the user data start with "id:" (any case)? Then a UDHI bit on a receipt is a lie. */
function looksLikeReceiptText(b: Buffer | undefined): boolean {
  return b !== undefined && b.length >= 3 && (b[0]! | 0x20) === 0x69 && (b[1]! | 0x20) === 0x64 && b[2] === 0x3a;
}
