/** Raw UDP/TCP peers for stack tests: they send bytes and collect parsed messages. */
import dgram from "node:dgram";
import net from "node:net";
import { StreamFramer } from "../../src/sip/framer.js";
import { SipMessage, SipParseError, parseMessage } from "../../src/sip/index.js";

abstract class Collector {
  readonly msgs: SipMessage[] = [];
  readonly raw: Buffer[] = [];
  readonly unparsable: Buffer[] = [];
  private waiters: Array<() => void> = [];

  protected push(buf: Buffer, stream: boolean): void {
    this.raw.push(buf);
    const m = parseMessage(buf, { stream });
    // a 400 may echo a malformed header back: keep such answers apart instead of throwing
    if (m instanceof SipParseError) {
      this.unparsable.push(buf);
      return;
    }
    this.msgs.push(m);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Wait for the next message (in arrival order after the ones already taken). */
  private taken = 0;
  async next(timeoutMs = 3000): Promise<SipMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.msgs.length <= this.taken) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timeout waiting for a SIP message (got " + this.msgs.length + ")");
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.msgs[this.taken++]!;
  }

  /** Assert nothing new arrives within ms. */
  async none(ms = 150): Promise<void> {
    const before = this.msgs.length;
    await new Promise((r) => setTimeout(r, ms));
    if (this.msgs.length > Math.max(before, this.taken))
      throw new Error("unexpected message: " + this.msgs[this.msgs.length - 1]!.startLine);
  }

  get pendingCount(): number {
    return this.msgs.length - this.taken;
  }
}

export class UdpPeer extends Collector {
  private constructor(readonly sock: dgram.Socket) {
    super();
    sock.on("message", (b) => this.push(b, false));
  }
  static async create(host = "127.0.0.1", port = 0): Promise<UdpPeer> {
    const s = dgram.createSocket(net.isIPv6(host) ? "udp6" : "udp4");
    await new Promise<void>((r) => s.bind(port, host, () => r()));
    return new UdpPeer(s);
  }
  get port(): number {
    return this.sock.address().port;
  }
  send(data: string | Buffer, port: number, host = "127.0.0.1"): Promise<void> {
    return new Promise((r) => this.sock.send(typeof data === "string" ? Buffer.from(data) : data, port, host, () => r()));
  }
  close(): Promise<void> {
    return new Promise((r) => this.sock.close(() => r()));
  }
}

export class TcpPeer extends Collector {
  readonly pings: number[] = [];
  closed = false;
  private framer: StreamFramer;
  private closeWaiters: Array<() => void> = [];
  private constructor(readonly sock: net.Socket) {
    super();
    this.framer = new StreamFramer(
      {
        onFrame: (b) => this.push(b, true),
        onPing: () => this.pings.push(1),
        onFramingError: () => sock.destroy(),
      },
      1 << 20,
    );
    sock.on("data", (d) => {
      if (d.length === 2 && d[0] === 13 && d[1] === 10) this.pings.push(2);
      else this.framer.push(d);
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      this.closed = true;
      for (const f of this.closeWaiters) f();
    });
  }
  static async connect(port: number, host = "127.0.0.1"): Promise<TcpPeer> {
    const s = net.connect({ port, host });
    await new Promise<void>((resolve, reject) => {
      s.once("connect", () => resolve());
      s.once("error", reject);
    });
    return new TcpPeer(s);
  }
  get port(): number {
    return this.sock.localPort!;
  }
  write(data: string | Buffer): void {
    this.sock.write(data);
  }
  /** Resolves true when the server closes the connection within ms. */
  waitClosed(ms = 3000): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    return new Promise((r) => {
      const t = setTimeout(() => r(false), ms);
      this.closeWaiters.push(() => {
        clearTimeout(t);
        r(true);
      });
    });
  }
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((r) => {
      this.sock.once("close", () => r());
      this.sock.destroy();
    });
  }
}

let n = 0;
/** A request as text. `via` is the full top Via value. */
export function request(method: string, opts: { via: string; cseq?: number; cseqMethod?: string; callId?: string; toTag?: string; fromTag?: string; extra?: string[]; body?: string; ruri?: string }): string {
  const body = opts.body ?? "";
  return (
    [
      `${method} ${opts.ruri ?? "sip:service@127.0.0.1"} SIP/2.0`,
      `Via: ${opts.via}`,
      "Max-Forwards: 70",
      "From: <sip:alice@example.com>;tag=" + (opts.fromTag ?? "ft"),
      "To: <sip:service@example.com>" + (opts.toTag ? ";tag=" + opts.toTag : ""),
      `Call-ID: ${opts.callId ?? "call-" + ++n + "@test"}`,
      `CSeq: ${opts.cseq ?? 1} ${opts.cseqMethod ?? method}`,
      ...(opts.extra ?? []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      "",
      body,
    ].join("\r\n")
  );
}

export function toText(m: SipMessage): string {
  return m.toBuffer().toString();
}
