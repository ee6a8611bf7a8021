import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  encodeText,
  gsm7Decode,
  gsm7Encode,
  gsm7Length,
  gsm7Pack,
  gsm7Unpack,
  parseDataCoding,
  splitSegments,
  ucs2Decode,
  ucs2Encode,
} from "../../src/smpp/charset.js";

const GSM_CHARS = Array.from(
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà\f^{}\\[~]|€",
);

describe("GSM 03.38", () => {
  it("encodes extension characters as escape sequences and decodes them back", () => {
    const s = gsm7Encode("€[]{}")!;
    expect(Array.from(s)).toEqual([0x1b, 0x65, 0x1b, 0x3c, 0x1b, 0x3e, 0x1b, 0x28, 0x1b, 0x29]);
    expect(gsm7Decode(s)).toBe("€[]{}");
    expect(gsm7Length("a€")).toBe(3);
    expect(gsm7Encode("日本")).toBeNull();
  });

  it("packs the classic 'hello' vector and unpacks it", () => {
    const packed = gsm7Pack(gsm7Encode("hello")!);
    expect(packed.toString("hex")).toBe("e8329bfd06");
    expect(gsm7Decode(gsm7Unpack(packed))).toBe("hello");
  });

  it("shows the basic character for an unknown escape and drops a trailing escape", () => {
    expect(gsm7Decode(Uint8Array.from([0x1b, 0x41, 0x42, 0x1b]))).toBe("AB");
  });

  it("treats 7 zero padding bits as padding, not '@'", () => {
    // 7 septets fill 49 bits: 7 octets with 7 spare bits
    const packed = gsm7Pack(gsm7Encode("1234567")!);
    expect(packed.length).toBe(7);
    expect(gsm7Decode(gsm7Unpack(packed))).toBe("1234567");
  });

  it("pack/unpack round-trips for any septets and fill bits (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }).map((a) => a.map((x) => x & 0x7f)), fc.integer({ min: 0, max: 6 }), (septets, fill) => {
        const packed = gsm7Pack(septets, fill);
        const back = gsm7Unpack(packed, 0, packed.length, fill, septets.length);
        expect(Array.from(back)).toEqual(Array.from(septets));
        // Without the count it is exact unless the ambiguous trailing zero septet case applies.
        const guess = gsm7Unpack(packed, 0, packed.length, fill);
        if (septets.length === 0 || septets[septets.length - 1] !== 0) expect(Array.from(guess)).toEqual(Array.from(septets));
      }),
      { numRuns: 500 },
    );
  });

  it("text round-trips through encode/decode for any GSM string (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...GSM_CHARS), { maxLength: 200 }), (chars) => {
        const text = chars.join("");
        const s = gsm7Encode(text)!;
        expect(s).not.toBeNull();
        expect(gsm7Decode(s)).toBe(text);
        expect(gsm7Decode(gsm7Unpack(gsm7Pack(s), 0, undefined, 0, s.length))).toBe(text);
      }),
      { numRuns: 300 },
    );
  });

  it("decoding arbitrary octets never throws (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 6 }), (b, fill) => {
        expect(typeof gsm7Decode(b)).toBe("string");
        expect(typeof gsm7Decode(gsm7Unpack(b, 0, b.length, fill))).toBe("string");
        expect(typeof ucs2Decode(b)).toBe("string");
      }),
    );
  });
});

describe("UCS2", () => {
  it("decodes surrogate pairs (emoji) and round-trips", () => {
    const text = "Hi 😀 👍🏽 Привет";
    const b = ucs2Encode(text);
    expect(b.subarray(6, 10).toString("hex")).toBe("d83dde00");
    expect(ucs2Decode(b)).toBe(text);
  });

  it("replaces lone surrogates and an odd trailing octet with U+FFFD", () => {
    expect(ucs2Decode(Buffer.from([0xd8, 0x3d, 0x00, 0x41, 0x00]))).toBe("\ufffdA\ufffd");
    expect(ucs2Decode(Buffer.from([0xdc, 0x00]))).toBe("\ufffd");
  });

  it("never drops an odd trailing octet silently (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        const out = ucs2Decode(b);
        if (b.length % 2 === 1) {
          // the even prefix decodes as before, and the half code unit shows as U+FFFD
          expect(out).toBe(ucs2Decode(b.subarray(0, b.length - 1)) + "\ufffd");
        } else {
          expect(out.length).toBe(b.length / 2);
        }
      }),
    );
  });

  it("round-trips any well-formed string (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 100 }), (s) => {
        expect(ucs2Decode(ucs2Encode(s))).toBe(s);
      }),
    );
  });

  it("decodes long texts (chunked)", () => {
    const s = "ж".repeat(20000) + "😀";
    expect(ucs2Decode(ucs2Encode(s))).toBe(s);
  });
});

describe("data_coding", () => {
  it("reads the SMPP values 0x00-0x0F", () => {
    expect(parseDataCoding(0).alphabet).toBe("default");
    expect(parseDataCoding(1).alphabet).toBe("ascii");
    expect(parseDataCoding(3).alphabet).toBe("latin1");
    expect(parseDataCoding(8).alphabet).toBe("ucs2");
    expect(parseDataCoding(2).alphabet).toBe("binary");
    expect(parseDataCoding(4).alphabet).toBe("binary");
    expect(parseDataCoding(6)).toEqual({ value: 6, alphabet: "binary", unknown: true });
  });

  it("parses 0x10-0xFF as TS 23.038 groups, not & 0x0F", () => {
    // 0x11 & 0x0F would be IA5; it is GSM 7-bit, class 1
    expect(parseDataCoding(0x11)).toEqual({ value: 0x11, alphabet: "gsm7", message_class: 1 });
    // 0xF3 & 0x0F would be Latin-1; it is GSM 7-bit, class 3
    expect(parseDataCoding(0xf3)).toEqual({ value: 0xf3, alphabet: "gsm7", message_class: 3 });
    expect(parseDataCoding(0xf6)).toEqual({ value: 0xf6, alphabet: "binary", message_class: 2 });
    expect(parseDataCoding(0x18)).toEqual({ value: 0x18, alphabet: "ucs2", message_class: 0 });
    expect(parseDataCoding(0x24)).toMatchObject({ alphabet: "binary", compressed: true });
    expect(parseDataCoding(0x48)).toMatchObject({ alphabet: "ucs2", auto_delete: true });
    expect(parseDataCoding(0xc8)).toEqual({ value: 0xc8, alphabet: "gsm7", mwi: { active: true, kind: "voicemail", store: false } });
    expect(parseDataCoding(0xd2)).toEqual({ value: 0xd2, alphabet: "gsm7", mwi: { active: false, kind: "email", store: true } });
    expect(parseDataCoding(0xe9)).toEqual({ value: 0xe9, alphabet: "ucs2", mwi: { active: true, kind: "fax", store: true } });
    expect(parseDataCoding(0x80)).toMatchObject({ alphabet: "binary", unknown: true });
  });

  it("never throws for any octet", () => {
    for (let i = 0; i < 256; i++) expect(parseDataCoding(i).value).toBe(i);
  });
});

describe("encoding for sending", () => {
  it("chooses GSM when possible, UCS2 otherwise", () => {
    expect(encodeText("Hello [x] €").encoding).toBe("gsm7");
    expect(encodeText("Hello 😀")).toMatchObject({ encoding: "ucs2", data_coding: 8 });
    expect(encodeText("Grüße", "latin1")).toMatchObject({ encoding: "latin1", data_coding: 3 });
  });

  it("never splits an escape sequence or a surrogate pair", () => {
    const g = encodeText("a".repeat(152) + "€" + "b".repeat(10));
    const segs = splitSegments(g, 153);
    expect(segs[0]!.length).toBe(152);
    expect(gsm7Decode(Buffer.concat(segs))).toBe("a".repeat(152) + "€" + "b".repeat(10));
    const u = encodeText("x".repeat(66) + "😀" + "y");
    const us = splitSegments(u, 134);
    expect(us[0]!.length).toBe(132);
    expect(ucs2Decode(us[1]!)).toBe("😀y");
  });
});
