/**
 * Hand-off of a SIP datagram to the worker that owns it (sip.workers > 1, src/workers/steer.ts).
 *
 * Each worker binds a UDP socket on 127.0.0.1 (port 0); the primary collects the ports and gives
 * every worker the list. A datagram is passed on with the address and port it really came from,
 * and the owner handles it as if it had received it itself (its answers leave from the shared
 * SIP socket, so the peer sees no difference).
 *
 * Frame: 1 byte version (4), 8 bytes token, then one or more records: 1 byte hops (0 for a
 * datagram passed to its owner; for a CANCEL passed round the workers, how many have looked for
 * its INVITE), 1 byte address length L, L bytes address (ASCII), 2 bytes source port, 2 bytes
 * datagram length D (both big endian), D bytes of the datagram unchanged. The datagrams handed to
 * one worker while a worker reads its socket (one turn of its event loop) leave in one frame, as
 * many as fit in a UDP datagram: under load a hand-off costs one send and one wake-up for several
 * datagrams. The token is a random secret the
 * primary makes at boot and gives the workers over IPC; it is checked (constant time) before
 * anything else. Frames are accepted only from 127.0.0.1, from the port of a live worker's
 * hand-off socket (the primary sends the list again as soon as a worker exits), and with the
 * token: another local process cannot inject messages with a forged source, even from a dead
 * worker's freed port.
 */
import { timingSafeEqual } from "node:crypto";
import dgram from "node:dgram";

export type HandoffReceiver = (buf: Buffer, address: string, port: number, hops: number) => void;

const VERSION = 4;
/** Bytes of the per-boot token in a frame. */
export const TOKEN_BYTES = 8;
/** Version and token. */
const H = 1 + TOKEN_BYTES;
/** A record's bytes besides its address and datagram: hops, address length, port, datagram length. */
const R = 6;
/** Largest frame: the largest UDP payload over IPv4. */
export const MAX_FRAME = 65507;

export interface HandedOff {
  buf: Buffer;
  address: string;
  port: number;
  hops: number;
}

/** The token as bytes (hex from the primary); throws when it is not TOKEN_BYTES long. */
export function parseToken(hex: string): Buffer {
  const t = Buffer.from(hex, "hex");
  if (t.length !== TOKEN_BYTES) throw new Error("hand-off token must be " + TOKEN_BYTES + " bytes");
  return t;
}

/** Bytes a datagram takes in a frame. */
function recordBytes(buf: Buffer, address: string): number {
  return R + Buffer.byteLength(address, "latin1") + buf.length;
}

/** Encode a frame of records (exported for the unit tests and the bench). */
export function encodeFrame(records: readonly HandedOff[], token: Buffer): Buffer {
  let size = H;
  for (const r of records) size += recordBytes(r.buf, r.address);
  const out = Buffer.allocUnsafe(size);
  out[0] = VERSION;
  token.copy(out, 1, 0, TOKEN_BYTES);
  let o = H;
  for (const r of records) {
    const alen = Buffer.byteLength(r.address, "latin1");
    out[o] = r.hops;
    out[o + 1] = alen;
    out.write(r.address, o + 2, "latin1");
    o += 2 + alen;
    out.writeUInt16BE(r.port, o);
    out.writeUInt16BE(r.buf.length, o + 2);
    r.buf.copy(out, o + 4);
    o += 4 + r.buf.length;
  }
  return out;
}

/**
 * Decode a frame; null when it is not one (a record cut short, bytes after the last) or its token
 * is not `token`.
 */
export function decodeFrame(frame: Buffer, token: Buffer): HandedOff[] | null {
  if (frame.length < H + R + 1 || token.length !== TOKEN_BYTES) return null;
  if (!timingSafeEqual(frame.subarray(1, 1 + TOKEN_BYTES), token)) return null;
  if (frame[0] !== VERSION) return null;
  const out: HandedOff[] = [];
  let o = H;
  while (o < frame.length) {
    if (frame.length < o + R + 1) return null;
    const hops = frame[o]!;
    const alen = frame[o + 1]!;
    if (alen === 0 || frame.length < o + R + alen) return null;
    const address = frame.toString("latin1", o + 2, o + 2 + alen);
    o += 2 + alen;
    const port = frame.readUInt16BE(o);
    const len = frame.readUInt16BE(o + 2);
    o += 4;
    if (frame.length < o + len) return null;
    out.push({ buf: frame.subarray(o, o + len), address, port, hops });
    o += len;
  }
  return out;
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
      const fs = decodeFrame(frame, token);
      if (fs === null) return;
      const r = h.receiver;
      if (r === undefined) {
        h.dropped += fs.length;
        return;
      }
      for (const f of fs) r(f.buf, f.address, f.port, f.hops);
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

  /**
   * Pass a datagram (from address:port) to worker `owner`; false when its port is not known or the
   * datagram does not fit in a frame (the caller handles it). It leaves, with the others for that
   * worker, once this turn of the event loop has read what was waiting (setImmediate).
   */
  send(owner: number, buf: Buffer, address: string, port: number, hops = 0): boolean {
    const p = this.peers[owner];
    if (p === undefined || p === 0 || this.token === undefined) return false;
    const size = recordBytes(buf, address);
    if (H + size > MAX_FRAME) return false;
    let q = this.queued[owner];
    if (q === undefined) this.queued[owner] = q = { records: [], bytes: H };
    if (q.bytes + size > MAX_FRAME) this.sendFrame(owner, q);
    q.records.push({ buf, address, port, hops });
    q.bytes += size;
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(this.flush);
    }
    return true;
  }

  /** Datagrams waiting to be handed to each worker (by index), with their frame's size so far. */
  private readonly queued: Array<{ records: HandedOff[]; bytes: number } | undefined> = [];
  private flushing = false;
  /** Frames sent since the process started (didgate_sip_worker_handoff_frames_total). */
  frames = 0;

  private readonly flush = (): void => {
    this.flushing = false;
    for (let owner = 0; owner < this.queued.length; owner++) {
      const q = this.queued[owner];
      if (q !== undefined && q.records.length > 0) this.sendFrame(owner, q);
    }
  };

  /**
   * Send what is queued for `owner` as one frame, to its hand-off port as the primary last gave it
   * (none when that worker has gone since: those datagrams are lost with it, as in one process).
   */
  private sendFrame(owner: number, q: { records: HandedOff[]; bytes: number }): void {
    const records = q.records;
    q.records = [];
    q.bytes = H;
    const p = this.peers[owner];
    const token = this.token;
    if (p === undefined || p === 0 || token === undefined) return;
    this.frames++;
    this.sock.send(encodeFrame(records, token), p, "127.0.0.1");
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
