/**
 * Hand-off of a SIP datagram to the worker that owns it (sip.workers > 1, src/workers/steer.ts).
 *
 * Each worker binds a UDP socket on 127.0.0.1 (port 0); the primary collects the ports and gives
 * every worker the list. A datagram is passed on with the address and port it really came from,
 * and the owner handles it as if it had received it itself (its answers leave from the shared
 * SIP socket, so the peer sees no difference).
 *
 * Frame: 1 byte version (3), 8 bytes token, 1 byte hops (0 for a datagram passed to its owner;
 * for a CANCEL passed round the workers, how many have looked for its INVITE), 1 byte address
 * length L, L bytes address (ASCII), 2 bytes source port (big endian), then the datagram unchanged. The token is a random secret the
 * primary makes at boot and gives the workers over IPC; it is checked (constant time) before
 * anything else. Frames are accepted only from 127.0.0.1, from the port of a live worker's
 * hand-off socket (the primary sends the list again as soon as a worker exits), and with the
 * token: another local process cannot inject messages with a forged source, even from a dead
 * worker's freed port.
 */
import { timingSafeEqual } from "node:crypto";
import dgram from "node:dgram";

export type HandoffReceiver = (buf: Buffer, address: string, port: number, hops: number) => void;

const VERSION = 3;
/** Bytes of the per-boot token in a frame. */
export const TOKEN_BYTES = 8;
/** Version, token and hops. */
const H = 2 + TOKEN_BYTES;

/** The token as bytes (hex from the primary); throws when it is not TOKEN_BYTES long. */
export function parseToken(hex: string): Buffer {
  const t = Buffer.from(hex, "hex");
  if (t.length !== TOKEN_BYTES) throw new Error("hand-off token must be " + TOKEN_BYTES + " bytes");
  return t;
}

/** Encode a frame (exported for the unit tests and the bench). */
export function encodeFrame(buf: Buffer, address: string, port: number, token: Buffer, hops = 0): Buffer {
  const alen = Buffer.byteLength(address, "latin1");
  const out = Buffer.allocUnsafe(H + 3 + alen + buf.length);
  out[0] = VERSION;
  token.copy(out, 1, 0, TOKEN_BYTES);
  out[1 + TOKEN_BYTES] = hops;
  out[H] = alen;
  out.write(address, H + 1, "latin1");
  out.writeUInt16BE(port, H + 1 + alen);
  buf.copy(out, H + 3 + alen);
  return out;
}

/** Decode a frame; null when it is not one or its token is not `token`. */
export function decodeFrame(frame: Buffer, token: Buffer): { buf: Buffer; address: string; port: number; hops: number } | null {
  if (frame.length < H + 3 || token.length !== TOKEN_BYTES) return null;
  if (!timingSafeEqual(frame.subarray(1, 1 + TOKEN_BYTES), token)) return null;
  if (frame[0] !== VERSION) return null;
  const alen = frame[H]!;
  if (alen === 0 || frame.length < H + 3 + alen) return null;
  const address = frame.toString("latin1", H + 1, H + 1 + alen);
  const port = frame.readUInt16BE(H + 1 + alen);
  return { buf: frame.subarray(H + 3 + alen), address, port, hops: frame[1 + TOKEN_BYTES]! };
}

export class Handoff {
  /** Hand-off ports of all workers, by index (set once the primary has them all). */
  private peers: number[] = [];
  private readonly peerSet = new Set<number>();
  private token: Buffer | undefined;
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
      const token = h.token;
      if (token === undefined || rinfo.address !== "127.0.0.1" || !h.peerSet.has(rinfo.port)) return;
      const f = decodeFrame(frame, token);
      if (f === null) return;
      const r = h.receiver;
      if (r === undefined) {
        h.dropped++;
        return;
      }
      r(f.buf, f.address, f.port, f.hops);
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

  /**
   * The live workers' hand-off ports by index (0: that worker is gone) and the boot's token (hex).
   * Frames are accepted from every live worker's port, but sent only to the workers in `serving`
   * (those that have started; all when undefined): a worker still starting has no SIP stack to
   * take them, and the one that got a datagram handles it instead.
   */
  setPeers(ports: number[], token: string, serving?: readonly number[]): void {
    this.token = parseToken(token);
    this.peers = ports.map((p, i) => (serving === undefined || serving.includes(i) ? p : 0));
    this.peerSet.clear();
    for (let i = 0; i < ports.length; i++) if (i !== this.index && ports[i]! > 0) this.peerSet.add(ports[i]!);
  }

  setReceiver(r: HandoffReceiver): void {
    this.receiver = r;
  }

  /** Pass a datagram (from address:port) to worker `owner`; false when its port is not known. */
  send(owner: number, buf: Buffer, address: string, port: number, hops = 0): boolean {
    const p = this.peers[owner];
    const token = this.token;
    if (p === undefined || p === 0 || token === undefined) return false;
    this.sock.send(encodeFrame(buf, address, port, token, hops), p, "127.0.0.1");
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
