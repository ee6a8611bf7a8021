/**
 * SIP capture as HEP version 3 (the Homer/sngrep encapsulation): every SIP message received and
 * sent is mirrored to a collector over UDP, one datagram per message.
 *
 * A HEP3 packet is "HEP3", the total length (uint16), then chunks of vendor id (uint16, 0 for the
 * generic chunks), type id (uint16), chunk length (uint16, header included) and payload:
 * 1 IP family (uint8: 2 IPv4, 10 IPv6), 2 IP protocol (uint8: 17 UDP, 6 TCP), 3/4 IPv4 source and
 * destination, 5/6 IPv6 ones, 7/8 ports (uint16), 9/10 timestamp seconds and microseconds
 * (uint32), 11 application protocol (uint8: 1 SIP), 12 capture agent id (uint32), 14 auth key,
 * 15 payload, 17 correlation id. All integers are big-endian.
 *
 * Capture never holds up SIP: the sender is fire-and-forget with a bound on datagrams in flight
 * (beyond it they are dropped and counted), optional sampling by Call-ID (both legs of a call are
 * kept or dropped together), and no allocation beyond the one packet buffer.
 */
import { createSocket, type Socket } from "node:dgram";
import { isIPv4, isIPv6 } from "node:net";

export interface HepMessage {
  /** "udp" | "tcp" | "tls" of the SIP transport. */
  transport: string;
  srcAddress: string;
  srcPort: number;
  dstAddress: string;
  dstPort: number;
  /** Epoch microseconds. */
  timeUs: number;
  payload: Buffer;
  /** Groups the messages of one call (the Call-ID for a proxy: both legs share it). */
  correlationId?: string;
}

function ipBytes(a: string, v6: boolean): Buffer | null {
  if (!v6) {
    const p = a.split(".");
    if (p.length !== 4) return null;
    const b = Buffer.allocUnsafe(4);
    for (let i = 0; i < 4; i++) b[i] = Number(p[i]);
    return b;
  }
  // expand "::" and an embedded IPv4 tail
  let s = a;
  const pct = s.indexOf("%");
  if (pct >= 0) s = s.slice(0, pct);
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(":");
  if (s.indexOf(".", lastColon) > 0) {
    const v4 = ipBytes(s.slice(lastColon + 1), false);
    if (v4 === null) return null;
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const [head, rest] = s.split("::") as [string, string | undefined];
  const hs = head.length > 0 ? head.split(":") : [];
  const rs = rest !== undefined && rest.length > 0 ? rest.split(":") : [];
  const groups = [...hs, ...Array<string>(8 - hs.length - rs.length).fill("0"), ...rs].map((g) => parseInt(g, 16));
  if (tail.length === 2) {
    groups[6] = tail[0]!;
    groups[7] = tail[1]!;
  }
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return null;
  const b = Buffer.allocUnsafe(16);
  for (let i = 0; i < 8; i++) b.writeUInt16BE(groups[i]!, i * 2);
  return b;
}

/** Encodes one HEP3 packet; null when an address is not an IP address of one family. */
export function encodeHep3(m: HepMessage, captureId: number, authKey?: string): Buffer | null {
  const v6 = isIPv6(m.srcAddress);
  if (v6 ? !isIPv6(m.dstAddress) : !(isIPv4(m.srcAddress) && isIPv4(m.dstAddress))) return null;
  const src = ipBytes(m.srcAddress, v6);
  const dst = ipBytes(m.dstAddress, v6);
  if (src === null || dst === null) return null;
  const corr = m.correlationId !== undefined ? Buffer.from(m.correlationId, "latin1") : null;
  const auth = authKey !== undefined ? Buffer.from(authKey, "utf8") : null;
  const ipLen = v6 ? 16 : 4;
  let len = 6;
  len += 7 + 7; // family, protocol
  len += 2 * (6 + ipLen);
  len += 8 + 8; // ports
  len += 10 + 10; // seconds, microseconds
  len += 7; // protocol type
  len += 10; // capture id
  if (auth !== null) len += 6 + auth.length;
  len += 6 + m.payload.length;
  if (corr !== null) len += 6 + corr.length;
  if (len > 0xffff) return null;
  const b = Buffer.allocUnsafe(len);
  b.write("HEP3", 0, "latin1");
  b.writeUInt16BE(len, 4);
  let o = 6;
  const head = (type: number, plen: number): void => {
    b.writeUInt16BE(0, o);
    b.writeUInt16BE(type, o + 2);
    b.writeUInt16BE(6 + plen, o + 4);
    o += 6;
  };
  head(1, 1);
  b[o++] = v6 ? 10 : 2;
  head(2, 1);
  b[o++] = m.transport === "udp" ? 17 : 6;
  head(v6 ? 5 : 3, ipLen);
  src.copy(b, o);
  o += ipLen;
  head(v6 ? 6 : 4, ipLen);
  dst.copy(b, o);
  o += ipLen;
  head(7, 2);
  b.writeUInt16BE(m.srcPort, o);
  o += 2;
  head(8, 2);
  b.writeUInt16BE(m.dstPort, o);
  o += 2;
  head(9, 4);
  b.writeUInt32BE(Math.floor(m.timeUs / 1e6) >>> 0, o);
  o += 4;
  head(10, 4);
  b.writeUInt32BE(Math.floor(m.timeUs % 1e6) >>> 0, o);
  o += 4;
  head(11, 1);
  b[o++] = 1;
  head(12, 4);
  b.writeUInt32BE(captureId >>> 0, o);
  o += 4;
  if (auth !== null) {
    head(14, auth.length);
    auth.copy(b, o);
    o += auth.length;
  }
  head(15, m.payload.length);
  m.payload.copy(b, o);
  o += m.payload.length;
  if (corr !== null) {
    head(17, corr.length);
    corr.copy(b, o);
    o += corr.length;
  }
  return b;
}

/** A decoded HEP3 packet (tests, tools). */
export interface HepDecoded {
  family: number;
  protocol: number;
  srcAddress: string;
  dstAddress: string;
  srcPort: number;
  dstPort: number;
  seconds: number;
  micros: number;
  protoType: number;
  captureId: number;
  authKey?: string;
  payload: Buffer;
  correlationId?: string;
}

function ipText(b: Buffer): string {
  if (b.length === 4) return b.join(".");
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i).toString(16));
  return g.join(":").replace(/(^|:)0(:0)+(:|$)/, "::").replace(/:{3,}/, "::");
}

/** Decodes a HEP3 packet; null when it is not one. */
export function decodeHep3(b: Buffer): HepDecoded | null {
  if (b.length < 6 || b.toString("latin1", 0, 4) !== "HEP3") return null;
  const total = b.readUInt16BE(4);
  if (total > b.length || total < 6) return null;
  const d: Partial<HepDecoded> = {};
  let o = 6;
  while (o + 6 <= total) {
    const vendor = b.readUInt16BE(o);
    const type = b.readUInt16BE(o + 2);
    const len = b.readUInt16BE(o + 4);
    if (len < 6 || o + len > total) return null;
    const p = b.subarray(o + 6, o + len);
    o += len;
    if (vendor !== 0) continue;
    switch (type) {
      case 1: d.family = p[0]!; break;
      case 2: d.protocol = p[0]!; break;
      case 3: case 5: d.srcAddress = ipText(p); break;
      case 4: case 6: d.dstAddress = ipText(p); break;
      case 7: d.srcPort = p.readUInt16BE(0); break;
      case 8: d.dstPort = p.readUInt16BE(0); break;
      case 9: d.seconds = p.readUInt32BE(0); break;
      case 10: d.micros = p.readUInt32BE(0); break;
      case 11: d.protoType = p[0]!; break;
      case 12: d.captureId = p.readUInt32BE(0); break;
      case 14: d.authKey = p.toString("utf8"); break;
      case 15: d.payload = Buffer.from(p); break;
      case 17: d.correlationId = p.toString("latin1"); break;
    }
  }
  if (d.payload === undefined || d.srcAddress === undefined || d.dstAddress === undefined) return null;
  return d as HepDecoded;
}

export interface HepSenderOptions {
  host: string;
  port: number;
  captureId: number;
  authKey?: string;
  /** Fraction of calls captured (by Call-ID hash), 1 = all. */
  sample?: number;
  /** Datagrams queued in the socket at most; beyond it new ones are dropped. */
  maxInFlight?: number;
  now?: () => number;
}

export interface HepCounters {
  sent: number;
  dropped: number;
  errors: number;
  sampledOut: number;
}

/** The Call-ID of a SIP message (full or compact header name), or undefined; reads the head only. */
export function callIdOf(buf: Buffer): string | undefined {
  const head = buf.toString("latin1", 0, Math.min(buf.length, 8192));
  const m = /\r\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]+)/i.exec(head);
  return m === null ? undefined : m[1]!.trim();
}

/** FNV-1a over a string: cheap, stable sampling of a call by its Call-ID. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class HepSender {
  private readonly socket: Socket;
  private inFlight = 0;
  private readonly max: number;
  private readonly threshold: number;
  private readonly now: () => number;
  readonly counters: HepCounters = { sent: 0, dropped: 0, errors: 0, sampledOut: 0 };
  private closed = false;
  private readonly done = (err: Error | null): void => {
    this.inFlight--;
    if (err) this.counters.errors++;
    else this.counters.sent++;
  };

  constructor(private readonly o: HepSenderOptions) {
    this.socket = createSocket(isIPv6(o.host) ? "udp6" : "udp4");
    this.socket.on("error", () => {
      this.counters.errors++;
    });
    this.socket.unref();
    this.max = o.maxInFlight ?? 1000;
    const s = o.sample ?? 1;
    this.threshold = s >= 1 ? 0x1_0000_0000 : Math.floor(Math.max(0, s) * 0x1_0000_0000);
    this.now = o.now ?? (() => Date.now() * 1000);
  }

  /** Mirrors one SIP message; never throws, never waits. */
  capture(transport: string, srcAddress: string, srcPort: number, dstAddress: string, dstPort: number, payload: Buffer, callId: string | undefined): void {
    if (this.closed) return;
    if (this.threshold < 0x1_0000_0000 && callId !== undefined && hash32(callId) >= this.threshold) {
      this.counters.sampledOut++;
      return;
    }
    if (this.inFlight >= this.max) {
      this.counters.dropped++;
      return;
    }
    const m: HepMessage = { transport, srcAddress, srcPort, dstAddress, dstPort, timeUs: this.now(), payload };
    if (callId !== undefined) m.correlationId = callId;
    const pkt = encodeHep3(m, this.o.captureId, this.o.authKey);
    if (pkt === null) {
      this.counters.dropped++;
      return;
    }
    this.inFlight++;
    try {
      this.socket.send(pkt, this.o.port, this.o.host, this.done);
    } catch {
      this.inFlight--;
      this.counters.errors++;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}
