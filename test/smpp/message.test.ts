import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { CMD, STATUS, TLV } from "../../src/smpp/constants.js";
import { Pdu, tlvU16, tlvU8 } from "../../src/smpp/codec.js";
import { extractUserData, normaliseReceiptId, parseReceiptText, isReceipt, partUnits, decodeUnits } from "../../src/smpp/message.js";
import { gsm7Encode, gsm7Pack } from "../../src/smpp/charset.js";
import { Reassembler } from "../../src/smpp/reassembly.js";
import { FakeClock } from "./fake-clock.js";

function sm(esm: number, ud: Buffer, tlvs: Pdu["tlvs"] = []): Pdu {
  const p = new Pdu(CMD.deliver_sm, 1);
  p.esm_class = esm;
  p.short_message = ud;
  p.tlvs = tlvs;
  return p;
}

describe("user data", () => {
  it("reads 8-bit and 16-bit UDH concatenation and SAR TLVs", () => {
    const u8 = extractUserData(sm(0x40, Buffer.from("050003cc0302414243", "hex")));
    expect(u8).toMatchObject({ concat: { ref: 0xcc, total: 3, seq: 2, kind: "udh8" } });
    expect((u8 as { payload: Buffer }).payload.toString()).toBe("ABC");
    const u16 = extractUserData(sm(0x40, Buffer.from("060804beef020141", "hex")));
    expect(u16).toMatchObject({ concat: { ref: 0xbeef, total: 2, seq: 1, kind: "udh16" } });
    const sar = extractUserData(sm(0, Buffer.from("hi"), [tlvU16(TLV.sar_msg_ref_num, 513), tlvU8(TLV.sar_total_segments, 2), tlvU8(TLV.sar_segment_seqnum, 2)]));
    expect(sar).toMatchObject({ concat: { ref: 513, total: 2, seq: 2, kind: "sar" } });
    // other IEs are skipped, concat found after them
    const other = extractUserData(sm(0x40, Buffer.from("0b0504158a000000030702014142", "hex")));
    expect(other).toMatchObject({ concat: { ref: 7, total: 2, seq: 1, kind: "udh8" } });
    expect((other as { payload: Buffer }).payload.toString()).toBe("AB");
  });

  it("uses message_payload when short_message is empty", () => {
    const u = extractUserData(sm(0, Buffer.alloc(0), [{ tag: TLV.message_payload, value: Buffer.from("long") }]));
    expect((u as { payload: Buffer }).payload.toString()).toBe("long");
  });

  it("answers a malformed UDH with ESME_RINVESMCLASS and invalid numbering as a single message", () => {
    expect(extractUserData(sm(0x40, Buffer.from("0900", "hex")))).toBe(STATUS.ESME_RINVESMCLASS);
    expect(extractUserData(sm(0x40, Buffer.from("05000301", "hex")))).toBe(STATUS.ESME_RINVESMCLASS);
    expect(extractUserData(sm(0x40, Buffer.from("050003010300", "hex")))).toMatchObject({ concat: null });
  });

  it("never throws for any user data (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 254 }), (esm, ud) => {
        const r = extractUserData(sm(esm, Buffer.from(ud)));
        if (typeof r !== "number") {
          for (const enc of ["gsm7", "ucs2", "latin1", "ascii", "binary"] as const) {
            decodeUnits(enc, partUnits(enc, r, { gsm_packing: "auto" }));
          }
        }
      }),
    );
  });

  it("unpacks packed GSM after a UDH with fill bits", () => {
    const udh = Buffer.from("050003010201", "hex"); // 6 octets: 48 bits, 1 fill bit
    const packed = gsm7Pack(gsm7Encode("Hello €")!, 1);
    const u = extractUserData(sm(0x40, Buffer.concat([udh, packed])));
    if (typeof u === "number") throw new Error("bad");
    expect(u.fillBits).toBe(1);
    expect(decodeUnits("gsm7", partUnits("gsm7", u, { gsm_packing: "packed" }))).toBe("Hello €");
  });
});

describe("receipts", () => {
  it("recognises receipt esm_class values, including 0x44", () => {
    expect([0x04, 0x08, 0x20, 0x44, 0x00, 0x40, 0x03].map(isReceipt)).toEqual([true, true, true, true, false, false, false]);
  });

  it("parses the receipt text", () => {
    const t = parseReceiptText("id:0123456789 sub:001 dlvrd:001 submit date:2611221000 done date:2611221001 stat:DELIVRD err:000 text:Hello world");
    expect(t).toEqual({
      id: "0123456789",
      sub: "001",
      dlvrd: "001",
      submit_date: "2611221000",
      done_date: "2611221001",
      stat: "DELIVRD",
      err: "000",
      text: "Hello world",
    });
    expect(parseReceiptText("ID:ab Stat:undeliv junk Err:5")).toEqual({ id: "ab", stat: "UNDELIV", err: "5" });
  });

  it("parses any text without throwing (property)", () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => void parseReceiptText(s)));
  });

  it("converts receipt ids between decimal and hex per peer", () => {
    expect(normaliseReceiptId("255", { receipt_id_format: "dec", message_id_format: "hex" })).toBe("ff");
    expect(normaliseReceiptId("FF", { receipt_id_format: "hex", message_id_format: "dec" })).toBe("255");
    expect(normaliseReceiptId("18446744073709551615", { receipt_id_format: "dec", message_id_format: "hex" })).toBe("ffffffffffffffff");
    expect(normaliseReceiptId("xyz", { receipt_id_format: "dec", message_id_format: "hex" })).toBe("xyz");
    expect(normaliseReceiptId("255", {})).toBe("255");
  });
});

describe("reassembly", () => {
  function make(clock: FakeClock, opts: { maxBuffers?: number; maxBytes?: number } = {}) {
    const incomplete: { parts: string[]; total: number; reason: string }[] = [];
    const r = new Reassembler<string>({
      timeoutMs: 1000,
      maxBuffers: opts.maxBuffers ?? 100,
      maxBytes: opts.maxBytes ?? 1 << 20,
      clock,
      onIncomplete: (parts, total, reason) => incomplete.push({ parts, total, reason }),
    });
    return { r, incomplete };
  }

  it("completes in any order and discards duplicates", () => {
    const { r } = make(new FakeClock());
    expect(r.add("k", 3, 3, "c", 1).kind).toBe("stored");
    expect(r.add("k", 3, 1, "a", 1).kind).toBe("stored");
    expect(r.add("k", 3, 3, "c2", 1).kind).toBe("duplicate");
    const done = r.add("k", 3, 2, "b", 1);
    expect(done).toEqual({ kind: "complete", parts: ["a", "b", "c"] });
    expect(r.size).toBe(0);
    expect(r.bytes).toBe(0);
  });

  it("hands incomplete parts on after the timeout (injected clock)", () => {
    const clock = new FakeClock();
    const { r, incomplete } = make(clock);
    r.add("k", 3, 1, "a", 1);
    clock.advance(999);
    r.sweep();
    expect(incomplete).toEqual([]);
    r.add("k", 3, 2, "b", 1); // does not extend the deadline
    clock.advance(2);
    r.sweep();
    expect(incomplete).toEqual([{ parts: ["a", "b"], total: 3, reason: "timeout" }]);
    expect(r.size).toBe(0);
  });

  it("bounds memory: a flood of first parts evicts the oldest buffers", () => {
    const { r, incomplete } = make(new FakeClock(), { maxBuffers: 50 });
    for (let i = 0; i < 1000; i++) r.add("k" + i, 2, 1, "p" + i, 10);
    expect(r.size).toBe(50);
    expect(incomplete.length).toBe(950);
    expect(incomplete[0]).toEqual({ parts: ["p0"], total: 2, reason: "evicted" });
    const byBytes = make(new FakeClock(), { maxBytes: 10_000 });
    for (let i = 0; i < 1000; i++) byBytes.r.add("k" + i, 2, 1, "p", 1000);
    expect(byBytes.r.bytes).toBeLessThanOrEqual(10_000);
  });

  it("restores parts after a failed delivery so a retry completes again", () => {
    const { r } = make(new FakeClock());
    r.add("k", 2, 1, "a", 1);
    expect(r.add("k", 2, 2, "b", 1).kind).toBe("complete");
    r.restore("k", 2, [1], ["a"], [1]);
    expect(r.add("k", 2, 2, "b", 1)).toEqual({ kind: "complete", parts: ["a", "b"] });
  });
});
