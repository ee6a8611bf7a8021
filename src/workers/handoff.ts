/**
 * Hand-off of a SIP datagram to the worker that owns it (sip.workers > 1, src/workers/steer.ts).
 *
 * Each worker binds a UDP socket on 127.0.0.1 (port 0); the primary collects the ports and gives
 * every worker the list. A datagram is passed on with the address and port it really came from,
 * and the owner handles it as if it had received it itself (its answers leave from the shared
 * SIP socket, so the peer sees no difference).
 *
 * Frame: 1 byte version (1), 1 byte address length L, L bytes address (ASCII), 2 bytes source
 * port (big endian), then the datagram unchanged. Frames are accepted only from 127.0.0.1 and
 * from the port of another worker's hand-off socket: another local process cannot inject
 * messages with a forged source.
 */
import dgram from "node:dgram";

export type HandoffReceiver = (buf: Buffer, address: string, port: number) => void;

const VERSION = 1;

/** Encode a frame (exported for the unit tests and the bench). */
export function encodeFrame(buf: Buffer, address: string, port: number): Buffer {
  const alen = Buffer.byteLength(address, "latin1");
  const out = Buffer.allocUnsafe(4 + alen + buf.length);
  out[0] = VERSION;
  out[1] = alen;
  out.write(address, 2, "latin1");
  out.writeUInt16BE(port, 2 + alen);
  buf.copy(out, 4 + alen);
  return out;
}

/** Decode a frame; null when it is not one. */
export function decodeFrame(frame: Buffer): { buf: Buffer; address: string; port: number } | null {
  if (frame.length < 4 || frame[0] !== VERSION) return null;
  const alen = frame[1]!;
  if (alen === 0 || frame.length < 4 + alen) return null;
  const address = frame.toString("latin1", 2, 2 + alen);
  const port = frame.readUInt16BE(2 + alen);
  return { buf: frame.subarray(4 + alen), address, port };
}

export class Handoff {
  /** Hand-off ports of all workers, by index (set once the primary has them all). */
  private peers: number[] = [];
  private readonly peerSet = new Set<number>();
  private receiver: HandoffReceiver | undefined;
  /** Frames received before a receiver was set (the SIP stack starting) are dropped. */
  dropped = 0;

  private constructor(
    private readonly sock: dgram.Socket,
    readonly index: number,
  ) {}

  static async open(index: number): Promise<Handoff> {
    const sock = dgram.createSocket({ type: "udp4" });
    await new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      // exclusive: a worker's own socket, never shared through the cluster primary
      sock.bind({ address: "127.0.0.1", port: 0, exclusive: true }, () => {
        sock.off("error", reject);
        resolve();
      });
    });
    const h = new Handoff(sock, index);
    sock.on("error", () => {});
    sock.on("message", (frame, rinfo) => {
      if (rinfo.address !== "127.0.0.1" || !h.peerSet.has(rinfo.port)) return;
      const f = decodeFrame(frame);
      if (f === null) return;
      const r = h.receiver;
      if (r === undefined) {
        h.dropped++;
        return;
      }
      r(f.buf, f.address, f.port);
    });
    // large bursts: a deeper kernel buffer than the default
    try {
      sock.setRecvBufferSize(4 * 1024 * 1024);
      sock.setSendBufferSize(4 * 1024 * 1024);
    } catch {
      // not fatal: the kernel's limits apply
    }
    return h;
  }

  get port(): number {
    return this.sock.address().port;
  }

  setPeers(ports: number[]): void {
    this.peers = ports.slice();
    this.peerSet.clear();
    for (let i = 0; i < ports.length; i++) if (i !== this.index) this.peerSet.add(ports[i]!);
  }

  setReceiver(r: HandoffReceiver): void {
    this.receiver = r;
  }

  /** Pass a datagram (from address:port) to worker `owner`; false when its port is not known. */
  send(owner: number, buf: Buffer, address: string, port: number): boolean {
    const p = this.peers[owner];
    if (p === undefined) return false;
    this.sock.send(encodeFrame(buf, address, port), p, "127.0.0.1");
    return true;
  }

  close(): Promise<void> {
    return new Promise((r) => {
      try {
        this.sock.close(() => r());
      } catch {
        r();
      }
    });
  }
}
