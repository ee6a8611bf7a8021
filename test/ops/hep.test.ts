import { createSocket } from "node:dgram";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeHep3, encodeHep3, HepSender } from "../../src/ops/hep.js";

const INVITE = Buffer.from("INVITE sip:+15125550100@127.0.0.1 SIP/2.0\r\nCall-ID: abc@1\r\nContent-Length: 0\r\n\r\n", "latin1");

describe("HEP3 capture", () => {
  it("encodes every chunk Homer reads (IPv4)", () => {
    const b = encodeHep3({ transport: "udp", srcAddress: "127.0.0.2", srcPort: 5070, dstAddress: "127.0.0.1", dstPort: 5060, timeUs: 1_764_000_000_123_456, payload: INVITE, correlationId: "abc@1" }, 2001, "k3y")!;
    expect(b.toString("latin1", 0, 4)).toBe("HEP3");
    expect(b.readUInt16BE(4)).toBe(b.length);
    const d = decodeHep3(b)!;
    expect(d).toMatchObject({ family: 2, protocol: 17, srcAddress: "127.0.0.2", dstAddress: "127.0.0.1", srcPort: 5070, dstPort: 5060, seconds: 1_764_000_000, micros: 123_456, protoType: 1, captureId: 2001, authKey: "k3y", correlationId: "abc@1" });
    expect(d.payload.equals(INVITE)).toBe(true);
  });

  it("encodes IPv6 and TCP", () => {
    const d = decodeHep3(encodeHep3({ transport: "tls", srcAddress: "::1", srcPort: 5061, dstAddress: "2001:db8::1:2", dstPort: 5061, timeUs: 0, payload: INVITE }, 7)!)!;
    expect(d).toMatchObject({ family: 10, protocol: 6, srcAddress: "::1", dstAddress: "2001:db8::1:2", captureId: 7 });
    expect(d.correlationId).toBeUndefined();
    expect(encodeHep3({ transport: "udp", srcAddress: "::1", srcPort: 1, dstAddress: "127.0.0.1", dstPort: 1, timeUs: 0, payload: INVITE }, 1)).toBeNull();
  });

  it("round-trips any message, and the decoder never throws", () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), fc.uint8Array({ maxLength: 3000 }), fc.string({ maxLength: 80 }), (a, b, p, q, payload, cid) => {
        const m = { transport: "udp", srcAddress: a, srcPort: p, dstAddress: b, dstPort: q, timeUs: 1e15, payload: Buffer.from(payload), correlationId: cid.replace(/[^\x20-\x7e]/g, "") };
        const d = decodeHep3(encodeHep3(m, 1)!)!;
        expect([d.srcAddress, d.dstAddress, d.srcPort, d.dstPort]).toEqual([a, b, p, q]);
        expect(d.payload.equals(m.payload)).toBe(true);
        expect(d.correlationId).toBe(m.correlationId);
      }),
      { numRuns: 300 },
    );
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (x) => void decodeHep3(Buffer.concat([Buffer.from("HEP3"), Buffer.from(x)]))), { numRuns: 2000 });
  });

  it("sends to a collector over UDP, samples by Call-ID and bounds datagrams in flight", async () => {
    const rx = createSocket("udp4");
    const got: Buffer[] = [];
    rx.on("message", (m) => got.push(m));
    await new Promise<void>((r) => rx.bind(0, "127.0.0.1", r));
    const port = (rx.address() as AddressInfo).port;
    const s = new HepSender({ host: "127.0.0.1", port, captureId: 2001 });
    for (let i = 0; i < 10; i++) s.capture("udp", "127.0.0.2", 5070, "127.0.0.1", 5060, INVITE, "call-" + i);
    for (let i = 0; i < 50 && got.length < 10; i++) await new Promise((r) => setTimeout(r, 20));
    expect(got.length).toBe(10);
    expect(new Set(got.map((g) => decodeHep3(g)!.correlationId)).size).toBe(10);
    const half = new HepSender({ host: "127.0.0.1", port, captureId: 1, sample: 0.5 });
    for (let i = 0; i < 400; i++) {
      half.capture("udp", "127.0.0.2", 5070, "127.0.0.1", 5060, INVITE, "c" + i);
      half.capture("udp", "127.0.0.1", 5060, "127.0.0.3", 5080, INVITE, "c" + i);
    }
    // both legs of a call share a fate: sampled-out counts come in pairs
    expect(half.counters.sampledOut % 2).toBe(0);
    expect(half.counters.sampledOut).toBeGreaterThan(200);
    expect(half.counters.sampledOut).toBeLessThan(600);
    const tiny = new HepSender({ host: "127.0.0.1", port, captureId: 1, maxInFlight: 2 });
    for (let i = 0; i < 100; i++) tiny.capture("udp", "127.0.0.2", 1, "127.0.0.1", 2, INVITE, undefined);
    expect(tiny.counters.dropped).toBeGreaterThan(0);
    s.close();
    half.close();
    tiny.close();
    rx.close();
  });
});
