/**
 * Property tests against a live session over loopback TCP: random and mutated PDUs never throw and
 * never stall the session; after each one, an enquire_link on the same session is still answered.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import net from "node:net";
import pino from "pino";
import { Registry } from "prom-client";
import { SmppService } from "../../src/smpp/service.js";
import { CMD } from "../../src/smpp/constants.js";
import { Pdu, encodeHeader, encodePdu } from "../../src/smpp/codec.js";

/** A bare TCP peer that frames responses by command_length; nothing else. */
class RawPeer {
  private buf = Buffer.alloc(0);
  private waiters: { seq: number; cmds: number[]; resolve: (b: Buffer) => void }[] = [];
  closed = false;
  private constructor(private readonly sock: net.Socket) {
    sock.setNoDelay(true);
    sock.on("data", (c: Buffer) => this.onData(c));
    sock.on("close", () => {
      this.closed = true;
    });
    sock.on("error", () => {});
  }
  static connect(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => resolve(new RawPeer(s)));
      s.once("error", reject);
    });
  }
  private onData(c: Buffer): void {
    this.buf = Buffer.concat([this.buf, c]);
    while (this.buf.length >= 16) {
      const len = this.buf.readUInt32BE(0);
      if (this.buf.length < len) break;
      const pdu = this.buf.subarray(0, len);
      this.buf = this.buf.subarray(len);
      const cmd = pdu.readUInt32BE(4);
      const seq = pdu.readUInt32BE(12);
      const i = this.waiters.findIndex((w) => w.seq === seq && w.cmds.includes(cmd));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(pdu);
    }
  }
  write(b: Buffer): void {
    this.sock.write(b);
  }
  expect(cmd: number | number[], seq: number, timeoutMs: number): Promise<Buffer | null> {
    const cmds = typeof cmd === "number" ? [cmd] : cmd;
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(null), timeoutMs);
      this.waiters.push({
        seq,
        cmds,
        resolve: (b) => {
          clearTimeout(t);
          resolve(b);
        },
      });
    });
  }
  close(): void {
    this.sock.destroy();
  }
}

let edge: SmppService;
let port: number;
let peer: RawPeer;
let seq = 1_000_000;

async function bound(): Promise<RawPeer> {
  if (peer && !peer.closed) return peer;
  const p = await RawPeer.connect(port);
  const b = new Pdu(CMD.bind_transceiver, ++seq);
  b.system_id = "fuzz";
  b.password = "pw";
  b.interface_version = 0x34;
  p.write(encodePdu(b));
  const r = await p.expect(CMD.bind_transceiver_resp, seq, 3000);
  expect(r?.readUInt32BE(8)).toBe(0);
  peer = p;
  return p;
}

/** Send `frame`, then an enquire_link; the session must answer it (or have closed cleanly). */
async function stillAlive(frame: Buffer): Promise<void> {
  const p = await bound();
  p.write(frame);
  const s = ++seq;
  p.write(encodeHeader(CMD.enquire_link, 0, s));
  const r = await p.expect(CMD.enquire_link_resp, s, 3000);
  if (r === null) {
    // Only a PDU that ends the session (unbind) may leave the enquire_link unanswered.
    await new Promise((res) => setTimeout(res, 50));
    expect(p.closed).toBe(true);
    expect(frame.readUInt32BE(4)).toBe(CMD.unbind);
  }
}

const knownIds = Object.values(CMD).filter((c) => c !== CMD.unbind);
const u8 = fc.integer({ min: 0, max: 255 });

const validSm = fc
  .record({
    id: fc.constantFrom(CMD.deliver_sm, CMD.submit_sm, CMD.data_sm),
    esm: fc.constantFrom(0, 0x40, 0x04, 0x44, 0x08),
    dc: u8,
    ud: fc.uint8Array({ maxLength: 200 }),
    tlvs: fc.array(fc.record({ tag: fc.integer({ min: 0, max: 0xffff }), value: fc.uint8Array({ maxLength: 12 }) }), { maxLength: 3 }),
  })
  .map((r) => {
    const p = new Pdu(r.id, 1);
    p.source_addr = "447700900123";
    p.destination_addr = "15125550100";
    p.esm_class = r.esm;
    p.data_coding = r.dc;
    if (r.id !== CMD.data_sm) p.short_message = Buffer.from(r.ud);
    p.tlvs = r.tlvs.map((t) => ({ tag: t.tag, value: Buffer.from(t.value) }));
    return encodePdu(p);
  });

const randomFrame = fc
  .tuple(fc.oneof(fc.constantFrom(...knownIds), fc.integer({ min: 0, max: 0xffffffff })), fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 0x7fffffff }))
  .map(([id, body, s]) => {
    const b = Buffer.concat([encodeHeader(id === CMD.unbind ? CMD.enquire_link : id, 0, s), Buffer.from(body)]);
    b.writeUInt32BE(b.length, 0);
    return b;
  });

const mutatedFrame = fc.tuple(validSm, fc.array(fc.tuple(fc.nat(), u8), { minLength: 1, maxLength: 8 }), fc.nat()).map(([b, muts, cut]) => {
  const m = Buffer.from(b);
  for (const [i, v] of muts) m[8 + (i % (m.length - 8))] = v; // header status/seq and body, not length or id
  const len = 16 + (cut % (m.length - 15));
  const out = m.subarray(0, len);
  out.writeUInt32BE(len, 0);
  return out;
});

beforeAll(async () => {
  edge = new SmppService({
    config: { listen: "127.0.0.1:0", handler_timeout_s: 1, accounts: [{ system_id: "fuzz", password: "pw", role: "carrier" }] },
    logger: pino({ level: "silent" }),
    registry: new Registry(),
    onMessage: async (m) => (m.parts % 2 === 0 ? { status: "temporary" } : { status: "accepted" }),
    onReceipt: () => {},
  });
  await edge.start();
  port = edge.address()!.port;
});

afterAll(async () => {
  peer?.close();
  await edge.close();
});

describe("live session under random input", () => {
  it("random PDUs (known and unknown command ids) never stall the session", async () => {
    await fc.assert(fc.asyncProperty(randomFrame, (f) => stillAlive(f)), { numRuns: 300 });
  });

  it("mutated message PDUs never stall the session", async () => {
    await fc.assert(fc.asyncProperty(mutatedFrame, (f) => stillAlive(f)), { numRuns: 300 });
  });

  it("valid message PDUs with random user data and TLVs are all answered", async () => {
    await fc.assert(
      fc.asyncProperty(validSm, async (f) => {
        const p = await bound();
        const s = ++seq;
        f.writeUInt32BE(s, 12);
        p.write(f);
        const id = f.readUInt32BE(4);
        const r = await p.expect([(id | 0x80000000) >>> 0, CMD.generic_nack], s, 3000);
        expect(r).not.toBeNull();
      }),
      { numRuns: 200 },
    );
  });

  it("a stream split at every byte boundary still frames correctly", async () => {
    const p = await bound();
    const frames: Buffer[] = [];
    const seqs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const s = ++seq;
      seqs.push(s);
      frames.push(encodeHeader(CMD.enquire_link, 0, s));
    }
    const all = Buffer.concat(frames);
    const waits = seqs.map((s) => p.expect(CMD.enquire_link_resp, s, 3000));
    for (let i = 0; i < all.length; i += 7) p.write(all.subarray(i, Math.min(all.length, i + 7)));
    for (const w of waits) expect(await w).not.toBeNull();
  });
});
