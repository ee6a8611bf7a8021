/**
 * SIP transports: UDP sockets, TCP and TLS listeners and connections (RFC 3261 section 18).
 *
 * - Listen URLs: "udp://0.0.0.0:5060", "tcp://[::1]:5060", "tls://host:port" (cert/key given).
 * - Streams are framed by Content-Length (framer.ts); a CRLFCRLF ping is answered with CRLF.
 * - Connections are kept in one table keyed by transport, remote address and port, so responses
 *   and later requests to the same peer reuse them; idle connections are closed; inbound
 *   connections are capped per source IP and in total.
 * - Backpressure: when a socket's write buffer is full we stop reading from it until it drains,
 *   and a peer whose unread output exceeds maxWriteBuffer is disconnected.
 * Nothing thrown by a handler escapes a socket callback.
 */
import dgram from "node:dgram";
import dns from "node:dns";
import net from "node:net";
import os from "node:os";
import tls from "node:tls";
import type { Logger } from "pino";
import { StreamFramer, type FrameSink } from "./framer.js";
import { setUdpReading } from "./udp-reading.js";
import type { SipMetrics } from "./metrics.js";

export type TransportKind = "udp" | "tcp" | "tls";

export interface TlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
  /** CA certificates for verifying peers (client side); system CAs when omitted. */
  ca?: string | Buffer | Array<string | Buffer>;
}

export interface ListenSpec {
  /** "udp://0.0.0.0:5060", "tcp://[::1]:5060", "tls://127.0.0.1:5061" (port 0: any free port). */
  url: string;
  /** Required for tls:// listeners. */
  tls?: TlsOptions;
  /** Host (or host:port) to put in Via/Record-Route instead of the bound address. */
  advertise?: string;
}

export interface ParsedListenUrl {
  transport: TransportKind;
  host: string;
  port: number;
}

/** Parse a listen URL; throws Error with a readable message on a bad URL (config-time only). */
export function parseListenUrl(url: string): ParsedListenUrl {
  const sep = url.indexOf("://");
  if (sep < 0) throw new Error(`listen URL "${url}": expected udp://, tcp:// or tls://HOST:PORT`);
  const scheme = url.slice(0, sep).toLowerCase();
  if (scheme !== "udp" && scheme !== "tcp" && scheme !== "tls") throw new Error(`listen URL "${url}": unknown transport "${scheme}"`);
  let rest = url.slice(sep + 3);
  if (rest.endsWith("/")) rest = rest.slice(0, -1);
  let host: string;
  let portStr: string | undefined;
  if (rest.startsWith("[")) {
    const e = rest.indexOf("]");
    if (e < 0) throw new Error(`listen URL "${url}": unterminated IPv6 address`);
    host = rest.slice(1, e);
    const after = rest.slice(e + 1);
    if (after.length > 0) {
      if (!after.startsWith(":")) throw new Error(`listen URL "${url}": bad port`);
      portStr = after.slice(1);
    }
  } else {
    const c = rest.lastIndexOf(":");
    if (c >= 0) {
      host = rest.slice(0, c);
      portStr = rest.slice(c + 1);
    } else host = rest;
  }
  if (host.length === 0) throw new Error(`listen URL "${url}": missing host`);
  const port = portStr === undefined ? (scheme === "tls" ? 5061 : 5060) : Number(portStr);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || (portStr !== undefined && !/^\d+$/.test(portStr)))
    throw new Error(`listen URL "${url}": port must be 0-65535`);
  return { transport: scheme, host, port };
}

/**
 * Receive buffer asked for on each UDP listener. The kernel's default (net.core.rmem_default,
 * 208 KiB on most distributions) holds a few hundred datagrams: a pause of the event loop of a
 * fraction of a second (a major GC, a route reload) at a few thousand messages per second
 * overflows it and the kernel drops datagrams, which the peers see as lost and retransmit 500 ms
 * later. The kernel caps what it grants at net.core.rmem_max (and reports twice that).
 */
export const UDP_RECV_BUFFER = 8 * 1024 * 1024;

/** Ask for UDP_RECV_BUFFER; the size granted (the kernel's report), 0 when it cannot be read. */
function deepenRecvBuffer(sock: dgram.Socket): number {
  try {
    sock.setRecvBufferSize(UDP_RECV_BUFFER);
  } catch {
    // not fatal: the kernel's default applies
  }
  try {
    return sock.getRecvBufferSize();
  } catch {
    return 0;
  }
}

export class Listener {
  /** "udp:127.0.0.1:5060" */
  readonly id: string;
  readonly transport: TransportKind;
  /** Bound address (IPv6 without brackets). */
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** host:port for Via sent-by and Record-Route (IPv6 in brackets). */
  readonly sentBy: string;
  /** host part of sentBy */
  readonly advertisedHost: string;
  readonly advertisedPort: number;
  /** @internal */ udp: dgram.Socket | null = null;
  /** UDP: whether this process reads the socket (false: it only sends from it, see TransportLayer.setUdpReading). */
  reading = true;
  /** @internal */ server: net.Server | null = null;
  /** UDP: the socket's kernel receive buffer in bytes, as the kernel reports it (0 for TCP/TLS). */
  recvBufferSize = 0;

  constructor(transport: TransportKind, address: string, port: number, advertise: string | undefined) {
    this.transport = transport;
    this.address = address;
    this.port = port;
    this.family = net.isIPv6(address) ? 6 : 4;
    let host: string;
    let aport = port;
    if (advertise) {
      const pu = parseListenUrl("udp://" + advertise);
      host = pu.host;
      if (advertise.lastIndexOf(":") > advertise.lastIndexOf("]")) aport = pu.port;
    } else if (address === "0.0.0.0" || address === "::") host = defaultAdvertise(this.family);
    else host = address;
    this.advertisedHost = net.isIPv6(host) ? "[" + host + "]" : host;
    this.advertisedPort = aport;
    this.sentBy = this.advertisedHost + ":" + aport;
    this.id = transport + ":" + (this.family === 6 ? "[" + address + "]" : address) + ":" + port;
  }
}

function defaultAdvertise(family: 4 | 6): string {
  const ifs = os.networkInterfaces();
  for (const list of Object.values(ifs)) {
    for (const a of list ?? []) {
      if (!a.internal && (a.family === "IPv4" ? 4 : 6) === family && !a.address.startsWith("fe80")) return a.address;
    }
  }
  return family === 6 ? "::1" : "127.0.0.1";
}

/** Where a message came from. */
export interface Source {
  readonly transport: TransportKind;
  readonly address: string;
  readonly port: number;
  /** The listener it arrived on (for outbound connections: the listener used in our Via). */
  readonly listener: Listener;
  /** The connection it arrived on (TCP/TLS), else null. */
  readonly connection: Connection | null;
}

/** Where to send: an IP address (not a name) and port. */
export interface Target {
  transport: TransportKind;
  address: string;
  port: number;
}

/** A copy of every SIP message received and sent (capture): transport, source, destination, bytes. */
export type CaptureTap = (transport: TransportKind, srcAddress: string, srcPort: number, dstAddress: string, dstPort: number, buf: Buffer) => void;

export interface TransportOptions {
  /** Mirror every message received and sent (SIP capture); undefined costs nothing. */
  capture?: CaptureTap;
  /** Largest message (framing limit on streams, datagram limit on UDP). */
  maxMessageSize: number;
  /** Close TCP/TLS connections idle this long (ms). Default 120000. */
  idleTimeoutMs?: number;
  /** Inbound connections per source IP. Default 64. */
  maxConnectionsPerIp?: number;
  /** Connections in total (inbound + outbound). Default 10000. */
  maxConnections?: number;
  /** Disconnect a peer whose unread output exceeds this many bytes. Default 4 MiB. */
  maxWriteBuffer?: number;
  /**
   * A TCP/TLS message must be complete within this many ms of its first byte (headers and body),
   * else the connection is closed: a peer trickling bytes cannot hold a connection. Default 5000.
   */
  messageTimeoutMs?: number;
  /**
   * Inbound connections from untrusted sources (isTrusted false) at most: the rest of
   * maxConnections stays for trusted ones. Default maxConnections / 5.
   */
  maxUntrustedConnections?: number;
  /** Idle timeout of inbound connections from untrusted sources (ms). Default min(idleTimeoutMs, 30000). */
  untrustedIdleTimeoutMs?: number;
  /** Whether an inbound connection's source is trusted (a configured peer). Default: every source. */
  isTrusted?: (address: string) => boolean;
  /** An inbound connection was refused by a limit. */
  onRefused?: (transport: TransportKind, address: string, port: number, reason: "per_ip" | "total" | "untrusted") => void;
  /** Monotonic clock (ms) for message deadlines. Default performance.now. */
  now?: () => number;
  /** Connect timeout for outbound TCP/TLS, ms. Default 10000. */
  connectTimeoutMs?: number;
  /** TLS client: verify server certificates (default true). */
  tlsVerify?: boolean;
  /** TLS client: CA certificates (default: system CAs). */
  tlsCa?: string | Buffer | Array<string | Buffer>;
  /** TLS client certificate (mutual TLS), optional. */
  tlsClientCert?: { cert: string | Buffer; key: string | Buffer };
  /**
   * Workers (sip.workers > 1): sees every UDP datagram first and returns true when it passed it
   * to the worker that owns it (src/workers/steer.ts). Undefined: the listener has no such step.
   */
  steer?: UdpSteer;
  /** Workers: TCP/TLS listeners share their port with the other workers (cluster). */
  sharedListen?: boolean;
}

/** See TransportOptions.steer. */
export type UdpSteer = (buf: Buffer, address: string, port: number) => boolean;

export interface TransportHandler {
  onMessage(buf: Buffer, source: Source): void;
  /** A stream could not be framed (connection is closed). */
  onFramingError(source: Source, reason: string): void;
  /** A TCP/TLS connection closed (transactions waiting on it can fail over). */
  onConnectionClosed?(conn: Connection): void;
}

export type SendErrorCallback = (err: Error) => void;

/** A TCP or TLS connection. */
export class Connection implements FrameSink {
  readonly key: string;
  readonly transport: TransportKind;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly outbound: boolean;
  readonly source: Source;
  /** True once connected (TLS: handshake done) and until closed. */
  ready = false;
  closed = false;
  /** @internal */ socket: net.Socket;
  /** @internal */ pending: Buffer[] = [];
  /** @internal */ pendingErr: Array<SendErrorCallback | undefined> = [];
  /** @internal When the first byte of the message being received arrived (monotonic ms), 0 when none. */
  partialSince = 0;
  private framer: StreamFramer;

  constructor(
    private readonly layer: TransportLayer,
    transport: TransportKind,
    socket: net.Socket,
    remoteAddress: string,
    remotePort: number,
    listener: Listener,
    outbound: boolean,
    maxMessageSize: number,
  ) {
    this.transport = transport;
    this.socket = socket;
    this.remoteAddress = remoteAddress;
    this.remotePort = remotePort;
    this.outbound = outbound;
    this.key = connKey(transport, remoteAddress, remotePort);
    this.source = { transport, address: remoteAddress, port: remotePort, listener, connection: this };
    this.framer = new StreamFramer(this, maxMessageSize);
  }

  /** @internal FrameSink */
  onFrame(msg: Buffer): void {
    this.layer.deliver(msg, this.source);
  }
  /** @internal FrameSink */
  onPing(): void {
    this.layer.metrics.keepalives.inc({ transport: this.transport });
    this.write(CRLF, undefined);
  }
  /** @internal FrameSink */
  onFramingError(reason: string): void {
    this.layer.framingError(this, reason);
    this.socket.destroy();
  }
  /** @internal */
  onData(chunk: Buffer): void {
    try {
      const before = this.framer.frames;
      this.framer.push(chunk);
      // the deadline runs from the first byte of each message, not from the last byte received
      if (this.framer.buffered === 0) this.partialSince = 0;
      else if (this.partialSince === 0 || this.framer.frames !== before) this.partialSince = this.layer.now();
    } catch (e) {
      // defensive: the framer and handlers are written not to throw
      this.layer.internalError(e);
      this.socket.destroy();
    }
  }

  /** Queue or write bytes. */
  write(buf: Buffer, onError: SendErrorCallback | undefined): void {
    if (this.closed) {
      if (onError) onError(new Error("connection closed"));
      return;
    }
    if (!this.ready) {
      this.pending.push(buf);
      this.pendingErr.push(onError);
      return;
    }
    const s = this.socket;
    const ok = s.write(buf);
    if (!ok) {
      if (s.writableLength > this.layer.maxWriteBuffer) {
        this.layer.metrics.transportErrors.inc({ transport: this.transport, reason: "write_buffer_full" });
        s.destroy();
        return;
      }
      // stop reading from a peer that does not read what we send
      s.pause();
    }
  }

  /** @internal */
  flush(): void {
    const p = this.pending;
    this.pending = [];
    this.pendingErr = [];
    for (const b of p) this.write(b, undefined);
  }

  /** @internal */
  failPending(err: Error): void {
    const cbs = this.pendingErr;
    this.pending = [];
    this.pendingErr = [];
    for (const cb of cbs) if (cb) safeCall(cb, err);
  }

  close(): void {
    this.socket.destroy();
  }
}

function safeCall(cb: SendErrorCallback, err: Error): void {
  try {
    cb(err);
  } catch {
    /* callbacks must not throw into the transport */
  }
}

const CRLF = Buffer.from("\r\n");

function onlyCrlf(b: Buffer): boolean {
  if (b.length === 0) return false;
  for (let i = 0; i < b.length; i++) if (b[i] !== 13 && b[i] !== 10) return false;
  return true;
}

const ADMITTED = Symbol("didgate.admitted");
type AdmittedSocket = net.Socket & { [ADMITTED]?: { trusted: boolean; done(): void } };

function connKey(t: TransportKind, addr: string, port: number): string {
  return t + "|" + addr + "|" + port;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

/**
 * The UDP sockets' address lookup. Targets are IP addresses already (names are resolved before a
 * send), and dgram's default lookup goes through dns.lookup, which answers an IP literal on the
 * next tick: a closure and a tick per datagram. An IP literal is answered at once here; anything
 * else still goes to dns.lookup.
 */
function ipLookup(address: string, family: unknown, cb: LookupCallback): void {
  const fam = address.indexOf(":") >= 0 ? (net.isIPv6(address) ? 6 : 0) : net.isIPv4(address) ? 4 : 0;
  if (fam !== 0) cb(null, address, fam);
  else dns.lookup(address, family as number, cb);
}

function normAddr(a: string | undefined): string {
  if (!a) return "";
  return a.startsWith("::ffff:") && a.indexOf(".") > 0 ? a.slice(7) : a;
}

export class TransportLayer {
  readonly listeners: Listener[] = [];
  /** The first UDP listener of each address family (the one UDP sends go out of). */
  private udp4: Listener | undefined;
  private udp6: Listener | undefined;
  /** @internal */ readonly metrics: SipMetrics;
  /** @internal */ readonly maxWriteBuffer: number;
  private readonly conns = new Map<string, Connection>();
  private readonly perIp = new Map<string, number>();
  /** TLS connections admitted and still in their handshake. */
  private handshaking = 0;
  private readonly idleMs: number;
  private readonly maxPerIp: number;
  private readonly maxConns: number;
  private readonly connectTimeoutMs: number;
  private readonly messageTimeoutMs: number;
  private readonly maxUntrusted: number;
  private readonly untrustedIdleMs: number;
  private untrusted = 0;
  private sweeper: NodeJS.Timeout | null = null;
  /** @internal */ readonly now: () => number;
  private closing = false;

  constructor(
    private readonly handler: TransportHandler,
    private readonly opts: TransportOptions,
    metrics: SipMetrics,
    private readonly log: Logger | undefined,
  ) {
    this.metrics = metrics;
    this.idleMs = opts.idleTimeoutMs ?? 120_000;
    this.maxPerIp = opts.maxConnectionsPerIp ?? 64;
    this.maxConns = opts.maxConnections ?? 10_000;
    this.maxWriteBuffer = opts.maxWriteBuffer ?? 4 * 1024 * 1024;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.messageTimeoutMs = opts.messageTimeoutMs ?? 5000;
    this.maxUntrusted = opts.maxUntrustedConnections ?? Math.max(1, Math.floor(this.maxConns / 5));
    this.untrustedIdleMs = opts.untrustedIdleTimeoutMs ?? Math.min(this.idleMs, 30_000);
    this.now = opts.now ?? (() => performance.now());
  }

  /** Inbound connections from untrusted sources right now. */
  get untrustedCount(): number {
    return this.untrusted;
  }

  /** Close connections whose current message is not complete within messageTimeoutMs. */
  private sweep(): void {
    const now = this.now();
    const limit = this.messageTimeoutMs;
    for (const c of this.conns.values()) {
      if (c.partialSince !== 0 && now - c.partialSince > limit) {
        c.partialSince = 0;
        this.metrics.transportErrors.inc({ transport: c.transport, reason: "message_timeout" });
        this.log?.debug({ peer: c.remoteAddress + ":" + c.remotePort }, "sip: incomplete message timed out, connection closed");
        c.close();
      }
    }
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /**
   * Read the UDP listeners, or stop reading them and only send from them (sip.workers > 1: the
   * workers that are not readers, src/workers/cluster.ts). False when this Node cannot pause a
   * socket: the listeners go on reading.
   */
  setUdpReading(on: boolean): boolean {
    let ok = true;
    for (const l of this.listeners) {
      if (l.udp === null || l.reading === on) continue;
      if (setUdpReading(l.udp, on)) l.reading = on;
      else ok = false;
    }
    return ok;
  }

  /** Find an open (or opening) connection to a peer. */
  getConnection(t: TransportKind, address: string, port: number): Connection | undefined {
    return this.conns.get(connKey(t, address, port));
  }

  async listen(spec: ListenSpec): Promise<Listener> {
    const u = parseListenUrl(spec.url);
    const host = u.host === "*" ? "0.0.0.0" : u.host;
    if (u.transport === "udp") {
      const sock = dgram.createSocket({ type: net.isIPv6(host) ? "udp6" : "udp4", reuseAddr: false, lookup: ipLookup });
      await new Promise<void>((resolve, reject) => {
        sock.once("error", reject);
        sock.bind(u.port, host, () => {
          sock.off("error", reject);
          resolve();
        });
      });
      const l = new Listener("udp", host, sock.address().port, spec.advertise);
      l.udp = sock;
      l.recvBufferSize = deepenRecvBuffer(sock);
      if (l.recvBufferSize > 0 && l.recvBufferSize < UDP_RECV_BUFFER / 4)
        this.log?.warn({ listener: l.id, recv_buffer: l.recvBufferSize, wanted: UDP_RECV_BUFFER }, "sip udp receive buffer capped by the kernel: raise net.core.rmem_max (sysctl) or bursts may be dropped");
      sock.on("error", (e) => this.log?.warn({ err: e, listener: l.id }, "sip udp socket error"));
      const steer = this.opts.steer;
      sock.on("message", (msg, rinfo) => {
        // RFC 5626 section 3.5.1 style "\r\n\r\n" keep-alives (sent by many UAs over UDP too):
        // not a message, not an error, no answer (UDP keep-alive answers are STUN, section 4.4.1)
        if (msg.length <= 8 && onlyCrlf(msg)) {
          this.metrics.keepalives.inc({ transport: "udp" });
          return;
        }
        try {
          const a = normAddr(rinfo.address);
          // workers: passed to the worker that owns it; an oversized datagram is not scanned (the
          // stack that got it refuses it)
          if (steer !== undefined && msg.length <= this.opts.maxMessageSize && steer(msg, a, rinfo.port)) return;
          const tap = this.opts.capture;
          if (tap !== undefined) tap("udp", a, rinfo.port, l.address, l.port, msg);
          this.handler.onMessage(msg, { transport: "udp", address: a, port: rinfo.port, listener: l, connection: null });
        } catch (e) {
          this.internalError(e);
        }
      });
      this.listeners.push(l);
      if (l.family === 4) this.udp4 ??= l;
      else this.udp6 ??= l;
      return l;
    }
    let server: net.Server;
    if (u.transport === "tls") {
      if (!spec.tls) throw new Error(`listen URL "${spec.url}": tls needs sip.tls.cert and sip.tls.key`);
      server = tls.createServer({ cert: spec.tls.cert, key: spec.tls.key, handshakeTimeout: 10_000 });
    } else server = net.createServer({ noDelay: true });
    server.maxConnections = this.maxConns;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ port: u.port, host, exclusive: this.opts.sharedListen !== true }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const addr = server.address() as net.AddressInfo;
    const l = new Listener(u.transport, host, addr.port, spec.advertise);
    l.server = server;
    server.on("error", (e) => this.log?.warn({ err: e, listener: l.id }, "sip listener error"));
    if (u.transport === "tls") {
      // admission on the raw connection, before the handshake: handshakes count against the limits
      server.on("connection", (raw: net.Socket) => void this.admit(l, raw));
      server.on("secureConnection", (s: tls.TLSSocket) => this.accept(l, s));
      server.on("tlsClientError", (e) => {
        this.metrics.transportErrors.inc({ transport: "tls", reason: "handshake" });
        this.log?.debug({ err: e }, "sip tls handshake failed");
      });
    } else
      server.on("connection", (s: net.Socket) => {
        if (this.admit(l, s)) this.accept(l, s);
      });
    this.listeners.push(l);
    if (this.sweeper === null) {
      this.sweeper = setInterval(() => this.sweep(), Math.max(100, Math.min(1000, Math.floor(this.messageTimeoutMs / 4))));
      this.sweeper.unref();
    }
    return l;
  }

  /**
   * Inbound connection limits, checked on the raw socket: per source IP, in total, and for
   * untrusted sources a share of the total, so a flood of connections from unknown addresses
   * cannot use up the capacity of configured peers. Counts are released when the socket closes.
   */
  private admit(l: Listener, s: net.Socket): boolean {
    s.on("error", () => {});
    const ip = normAddr(s.remoteAddress);
    if (this.closing || !ip) {
      s.destroy();
      return false;
    }
    const trusted = this.opts.isTrusted === undefined || this.opts.isTrusted(ip);
    const n = this.perIp.get(ip) ?? 0;
    const reason = n >= this.maxPerIp ? "per_ip" : this.conns.size + this.handshaking >= this.maxConns ? "total" : !trusted && this.untrusted >= this.maxUntrusted ? "untrusted" : null;
    if (reason !== null) {
      this.metrics.transportErrors.inc({ transport: l.transport, reason: "connection_limit" });
      if (this.opts.onRefused) {
        try {
          this.opts.onRefused(l.transport, ip, s.remotePort ?? 0, reason);
        } catch (e) {
          this.internalError(e);
        }
      }
      s.destroy();
      return false;
    }
    this.perIp.set(ip, n + 1);
    if (!trusted) this.untrusted++;
    const tlsPending = l.transport === "tls";
    if (tlsPending) this.handshaking++;
    let handshook = false;
    (s as AdmittedSocket)[ADMITTED] = { trusted, done: () => {
      if (tlsPending && !handshook) {
        handshook = true;
        this.handshaking--;
      }
    } };
    s.once("close", () => {
      if (tlsPending && !handshook) {
        handshook = true;
        this.handshaking--;
      }
      if (!trusted) this.untrusted--;
      const k = (this.perIp.get(ip) ?? 1) - 1;
      if (k <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, k);
    });
    return true;
  }

  private accept(l: Listener, s: net.Socket): void {
    s.on("error", () => {});
    const ip = normAddr(s.remoteAddress);
    const port = s.remotePort ?? 0;
    // a TLS socket wraps the admitted raw socket (its _parent / the socket it was created on)
    const raw = (s as unknown as { _parent?: net.Socket })._parent ?? s;
    const adm = (raw as AdmittedSocket)[ADMITTED] ?? (s as AdmittedSocket)[ADMITTED];
    adm?.done();
    if (this.closing || !ip || adm === undefined) {
      s.destroy();
      return;
    }
    const c = new Connection(this, l.transport, s, ip, port, l, false, this.opts.maxMessageSize);
    c.ready = true;
    this.register(c, adm.trusted ? this.idleMs : this.untrustedIdleMs);
  }

  private register(c: Connection, idleMs: number): void {
    const s = c.socket;
    const old = this.conns.get(c.key);
    this.conns.set(c.key, c);
    if (old && old !== c) old.close();
    this.metrics.connections.inc({ transport: c.transport });
    s.setNoDelay(true);
    s.setTimeout(idleMs);
    s.on("timeout", () => s.destroy());
    s.on("data", (d: Buffer) => c.onData(d));
    s.on("drain", () => s.resume());
    s.on("close", () => {
      c.closed = true;
      c.ready = false;
      if (this.conns.get(c.key) === c) this.conns.delete(c.key);
      this.metrics.connections.dec({ transport: c.transport });
      c.failPending(new Error("connection closed"));
      if (this.handler.onConnectionClosed) {
        try {
          this.handler.onConnectionClosed(c);
        } catch (e) {
          this.internalError(e);
        }
      }
    });
  }

  /**
   * Workers: a datagram another worker received on the shared UDP socket from address:port,
   * handled as if it had arrived here (on the UDP listener of its address family).
   */
  receiveHandedOff(buf: Buffer, address: string, port: number): void {
    if (this.closing) return;
    // an IP address: only IPv6 has a colon
    const l = address.indexOf(":") >= 0 ? this.udp6 : this.udp4;
    if (l === undefined) return;
    this.deliver(buf, { transport: "udp", address, port, listener: l, connection: null });
  }

  /** @internal */
  deliver(buf: Buffer, src: Source): void {
    try {
      const tap = this.opts.capture;
      if (tap !== undefined) tap(src.transport, src.address, src.port, src.listener.address, src.listener.port, buf);
      this.handler.onMessage(buf, src);
    } catch (e) {
      this.internalError(e);
    }
  }

  /** @internal */
  framingError(c: Connection, reason: string): void {
    try {
      this.handler.onFramingError(c.source, reason);
    } catch (e) {
      this.internalError(e);
    }
  }

  /** @internal */
  internalError(e: unknown): void {
    this.log?.error({ err: e }, "sip: internal error in message handler");
  }

  /** Pick the listener to use for sending over `t` to a peer of this address family. */
  pickListener(t: TransportKind, family: 4 | 6): Listener | undefined {
    let any: Listener | undefined;
    for (const l of this.listeners) {
      if (l.transport === t && l.family === family) return l;
      if (l.transport === t && any === undefined) any = l;
    }
    if (any) return any;
    for (const l of this.listeners) if (l.family === family) return l;
    return this.listeners[0];
  }

  /**
   * Send bytes. For TCP/TLS, `via` (an existing connection) is used when open; otherwise a
   * connection to the target is reused or opened. Errors are reported through onError.
   */
  send(buf: Buffer, target: Target, via: Connection | null, onError: SendErrorCallback | undefined): void {
    if (this.closing) {
      if (onError) safeCall(onError, new Error("transport closed"));
      return;
    }
    if (target.transport === "udp") {
      // an IP address: only IPv6 has a colon
      const fam: 4 | 6 = target.address.indexOf(":") >= 0 ? 6 : 4;
      const l = fam === 4 ? this.udp4 : this.udp6;
      if (l === undefined || l.udp === null) {
        this.metrics.transportErrors.inc({ transport: "udp", reason: "no_listener" });
        if (onError) safeCall(onError, new Error("no UDP listener for IPv" + fam));
        return;
      }
      if (buf.length > this.opts.maxMessageSize) {
        if (onError) safeCall(onError, new Error("message too large for UDP"));
        return;
      }
      const tap = this.opts.capture;
      if (tap !== undefined) tap("udp", l.address, l.port, target.address, target.port, buf);
      // fire and forget unless the caller wants send errors (a callback costs a tick per datagram)
      if (onError === undefined) l.udp.send(buf, target.port, target.address);
      else l.udp.send(buf, target.port, target.address, (err) => { if (err) { this.metrics.transportErrors.inc({ transport: "udp", reason: "send" }); safeCall(onError, err); } });
      return;
    }
    let c = via !== null && !via.closed ? via : this.conns.get(connKey(target.transport, target.address, target.port));
    if (c === undefined || c.closed) c = this.connect(target, onError);
    if (c === undefined) return;
    const tap = this.opts.capture;
    if (tap !== undefined) tap(target.transport, normAddr(c.socket.localAddress ?? ""), c.socket.localPort ?? 0, target.address, target.port, buf);
    c.write(buf, onError);
  }

  private connect(target: Target, onError: SendErrorCallback | undefined): Connection | undefined {
    if (this.conns.size >= this.maxConns) {
      this.metrics.transportErrors.inc({ transport: target.transport, reason: "connection_limit" });
      if (onError) safeCall(onError, new Error("connection limit reached"));
      return undefined;
    }
    const fam: 4 | 6 = net.isIPv6(target.address) ? 6 : 4;
    const l = this.pickListener(target.transport, fam);
    if (!l) {
      if (onError) safeCall(onError, new Error("no listener to send from"));
      return undefined;
    }
    let s: net.Socket;
    const readyEvent = target.transport === "tls" ? "secureConnect" : "connect";
    if (target.transport === "tls") {
      const o = this.opts;
      s = tls.connect({
        host: target.address,
        port: target.port,
        rejectUnauthorized: o.tlsVerify !== false,
        ca: o.tlsCa,
        cert: o.tlsClientCert?.cert,
        key: o.tlsClientCert?.key,
        servername: net.isIP(target.address) ? undefined : target.address,
      });
    } else s = net.connect({ host: target.address, port: target.port, noDelay: true });
    const c = new Connection(this, target.transport, s, target.address, target.port, l, true, this.opts.maxMessageSize);
    const timer = setTimeout(() => {
      if (!c.ready) s.destroy(new Error("connect timeout"));
    }, this.connectTimeoutMs);
    s.once(readyEvent, () => {
      clearTimeout(timer);
      c.ready = true;
      c.flush();
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      if (!c.ready) {
        this.metrics.transportErrors.inc({ transport: target.transport, reason: target.transport === "tls" ? "connect_tls" : "connect" });
        c.failPending(e);
      }
    });
    s.once("close", () => clearTimeout(timer));
    this.register(c, this.idleMs);
    return c;
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
    const waits: Promise<void>[] = [];
    for (const l of this.listeners) {
      if (l.udp) {
        const u = l.udp;
        waits.push(new Promise((r) => { try { u.close(() => r()); } catch { r(); } }));
      }
      if (l.server) {
        const sv = l.server;
        waits.push(new Promise((r) => sv.close(() => r())));
      }
    }
    for (const c of [...this.conns.values()]) {
      waits.push(new Promise((r) => {
        if (c.socket.destroyed) r();
        else {
          c.socket.once("close", () => r());
          c.socket.destroy();
        }
      }));
    }
    await Promise.all(waits);
    this.conns.clear();
  }
}
