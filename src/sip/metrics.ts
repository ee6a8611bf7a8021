/** prom-client metrics of the SIP stack, created on the Registry passed in (or a private one). */
import { Counter, Gauge, Registry } from "prom-client";
import { localChild, localGaugeChild, type LocalCount, type LocalGaugeDelta } from "../util/local-counter.js";

const METHODS = new Set([
  "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO", "SUBSCRIBE",
  "NOTIFY", "REFER", "MESSAGE", "PUBLISH",
]);

/** Method label with bounded cardinality: unknown methods become "other". */
export function methodLabel(m: string): string {
  return METHODS.has(m) ? m : "other";
}

/** Response codes registered with IANA (RFC 3261 21 and later RFCs). */
const CODES = new Set([
  100, 180, 181, 182, 183, 199, 200, 202, 204, 300, 301, 302, 305, 380, 400, 401, 402, 403, 404, 405,
  406, 407, 408, 410, 412, 413, 414, 415, 416, 417, 420, 421, 422, 423, 424, 425, 428, 429, 430, 433,
  436, 437, 438, 439, 440, 469, 470, 480, 481, 482, 483, 484, 485, 486, 487, 488, 489, 491, 493, 494,
  500, 501, 502, 503, 504, 505, 513, 555, 580, 600, 603, 604, 606, 607, 608,
]);

/**
 * Status code label with bounded cardinality: a response relayed from a target may carry any
 * three digits, so only registered codes are their own label; the rest count as "other".
 */
export function codeLabel(code: number): string {
  return CODES.has(code) ? String(code) : "other";
}

function counter<T extends string>(reg: Registry, name: string, help: string, labelNames: T[]): Counter<T> {
  const existing = reg.getSingleMetric(name);
  if (existing) return existing as Counter<T>;
  return new Counter<T>({ name, help, labelNames, registers: [reg] });
}

function gauge<T extends string>(reg: Registry, name: string, help: string, labelNames: T[]): Gauge<T> {
  const existing = reg.getSingleMetric(name);
  if (existing) return existing as Gauge<T>;
  return new Gauge<T>({ name, help, labelNames, registers: [reg] });
}

type MessageCount = LocalCount<"direction" | "transport" | "kind" | "method" | "code">;
interface MessageSlot {
  readonly req: Map<string, MessageCount>;
  /** method label -> code (0: not registered, label "other") */
  readonly res: Map<string, Map<number, MessageCount>>;
}

export class SipMetrics {
  readonly registry: Registry;
  readonly messages: Counter<"direction" | "transport" | "kind" | "method" | "code">;
  readonly parseErrors: Counter<"transport" | "reason">;
  readonly retransmissions: Counter<"direction" | "kind">;
  readonly transactions: Gauge<"side" | "type">;
  readonly transportErrors: Counter<"transport" | "reason">;
  readonly connections: Gauge<"transport">;
  readonly dropped: Counter<"reason">;
  readonly keepalives: Counter<"transport">;

  constructor(registry?: Registry) {
    const reg = (this.registry = registry ?? new Registry());
    this.messages = counter(reg, "didgate_sip_messages_total", "SIP messages received (in) and sent (out) by the SIP stack", [
      "direction", "transport", "kind", "method", "code",
    ]);
    this.parseErrors = counter(reg, "didgate_sip_parse_errors_total", "SIP messages that failed to parse or frame", ["transport", "reason"]);
    this.retransmissions = counter(reg, "didgate_sip_retransmissions_total",
      "SIP retransmissions: sent by our timers (out) and absorbed on receipt (in)", ["direction", "kind"]);
    this.transactions = gauge(reg, "didgate_sip_transactions", "SIP transactions in flight", ["side", "type"]);
    this.transportErrors = counter(reg, "didgate_sip_transport_errors_total", "SIP transport errors (connect, send, TLS)", ["transport", "reason"]);
    this.connections = gauge(reg, "didgate_sip_connections", "Open SIP TCP/TLS connections", ["transport"]);
    this.dropped = counter(reg, "didgate_sip_dropped_total", "SIP messages dropped without an answer", ["reason"]);
    this.txServerInvite = localGaugeChild(this.transactions, { side: "server", type: "invite" });
    this.txServerOther = localGaugeChild(this.transactions, { side: "server", type: "non_invite" });
    this.txClientInvite = localGaugeChild(this.transactions, { side: "client", type: "invite" });
    this.txClientOther = localGaugeChild(this.transactions, { side: "client", type: "non_invite" });
    this.keepalives = counter(reg, "didgate_sip_keepalives_total", "CRLF keep-alive pings received (RFC 5626; answered with CRLF on TCP/TLS)", ["transport"]);
  }

  /** Transactions in flight, side and type (server/client, INVITE or not), moved locally. */
  readonly txServerInvite: LocalGaugeDelta<"side" | "type">;
  readonly txServerOther: LocalGaugeDelta<"side" | "type">;
  readonly txClientInvite: LocalGaugeDelta<"side" | "type">;
  readonly txClientOther: LocalGaugeDelta<"side" | "type">;

  /** Local children of messages: by direction, then transport, then method label (and code). */
  private readonly messageCounts = { in: new Map<string, MessageSlot>(), out: new Map<string, MessageSlot>() };
  private readonly retransCounts = new Map<string, LocalCount<"direction" | "kind">>();

  message(direction: "in" | "out", transport: string, isRequest: boolean, method: string, code: number): void {
    // every part of the key is from a closed set (transports are ours): the maps stay small, and
    // no key string is built per message
    const byTransport = this.messageCounts[direction];
    let slot = byTransport.get(transport);
    if (slot === undefined) byTransport.set(transport, (slot = { req: new Map(), res: new Map() }));
    const m = methodLabel(method);
    let child: MessageCount | undefined;
    if (isRequest) {
      child = slot.req.get(m);
      if (child === undefined) slot.req.set(m, (child = localChild(this.messages, { direction, transport, kind: "request", method: m, code: "" })));
    } else {
      const c = CODES.has(code) ? code : 0;
      let byCode = slot.res.get(m);
      if (byCode === undefined) slot.res.set(m, (byCode = new Map()));
      child = byCode.get(c);
      if (child === undefined) byCode.set(c, (child = localChild(this.messages, { direction, transport, kind: "response", method: m, code: codeLabel(code) })));
    }
    child.inc();
  }

  /** retransmissions.inc({ direction, kind }) without label hashing. */
  retransmission(direction: "in" | "out", kind: "request" | "response"): void {
    const key = direction + kind;
    let child = this.retransCounts.get(key);
    if (child === undefined) {
      child = localChild(this.retransmissions, { direction, kind });
      this.retransCounts.set(key, child);
    }
    child.inc();
  }
}
