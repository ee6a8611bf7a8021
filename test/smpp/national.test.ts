import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { gsm7Decode, gsm7Encode } from "../../src/smpp/charset.js";
import { chooseNational, gsm7DecodeNational, gsm7EncodeNational, gsm7Parts, nationalIes, NATIONAL_LANGUAGES, ucs2Parts } from "../../src/smpp/national.js";
import { LOCKING_TABLES, SINGLE_SHIFT_TABLES } from "../../src/smpp/national-tables.js";
import { CMD } from "../../src/smpp/constants.js";
import { extractUserData } from "../../src/smpp/message.js";
import { buildMessagePdus } from "../../src/smpp/outbound.js";

describe("national language shift tables", () => {
  it("has 128 code units in every table, and table 0 is the default alphabet and its extension", () => {
    for (const t of [...LOCKING_TABLES, ...SINGLE_SHIFT_TABLES]) if (t.length > 0) expect(t.length).toBe(128);
    const all = Uint8Array.from({ length: 128 }, (_, i) => i).filter((i) => i !== 0x1b);
    expect(gsm7DecodeNational(all, 0, 0)).toBe(gsm7Decode(all));
    const text = "{[|€^~]}\\ and £$@";
    expect(gsm7EncodeNational(text, 0, 0)).toEqual(gsm7Encode(text));
  });

  it("decodes Turkish with the locking and single shift tables", () => {
    // "Ğ" is 0x0B in the Turkish locking table; "ş" is 0x1B 0x73 in its single shift table
    expect(gsm7DecodeNational(Uint8Array.from([0x0b, 0x1b, 0x73]), 1, 1)).toBe("Ğş");
    expect(gsm7DecodeNational(Uint8Array.from([0x1c]), 1, 0)).toBe("Ş");
    // Spanish has no locking table: the default alphabet is used, with its single shift table
    expect(gsm7DecodeNational(Uint8Array.from([0x1b, 0x41, 0x41]), 2, 2)).toBe("ÁA");
  });

  it("round-trips any text a table pair can carry", () => {
    for (const [lk, sg] of [[1, 1], [3, 3], [6, 6], [13, 13], [0, 2]] as const) {
      const table = (lk === 0 ? LOCKING_TABLES[0]! : LOCKING_TABLES[lk]!) + SINGLE_SHIFT_TABLES[sg]!;
      const chars = [...new Set(table.replace(/[\uffff \f\u001b]/g, ""))];
      fc.assert(
        fc.property(fc.array(fc.constantFrom(...chars), { maxLength: 60 }), (a) => {
          const t = a.join("");
          const s = gsm7EncodeNational(t, lk, sg);
          expect(s).not.toBeNull();
          expect(gsm7DecodeNational(s!, lk, sg)).toBe(t);
        }),
        { numRuns: 200 },
      );
    }
  });

  it("chooses Turkish tables when they save parts over UCS-2, only when allowed", () => {
    const tr = "Merhaba! Şişli'deki ofisimize hoş geldiniz. Ağustos ayında İstanbul'da güzel bir gün geçirmeniz dileğiyle, sevgiler ve saygılar.";
    expect(tr.length).toBeGreaterThan(70);
    expect(gsm7Encode(tr)).toBeNull();
    expect(ucs2Parts(tr.length)).toBe(2);
    const c = chooseNational(tr, [NATIONAL_LANGUAGES.tr!]);
    expect(c).not.toBeNull();
    expect(c!.parts).toBe(1);
    expect(gsm7DecodeNational(c!.septets, c!.locking, c!.single)).toBe(tr);
    expect(chooseNational(tr, [])).toBeNull();
    expect(chooseNational(tr, [NATIONAL_LANGUAGES.pt!])).toBeNull();
    // an emoji fits no table
    expect(chooseNational(tr + " 🙂", [1])).toBeNull();
  });

  it("counts parts with the UDH the national IEs take", () => {
    expect(gsm7Parts(160, 0)).toBe(1);
    expect(gsm7Parts(155, 3)).toBe(1);
    expect(gsm7Parts(156, 3)).toBe(2);
    expect(gsm7Parts(153 * 2, 0)).toBe(2);
    expect(gsm7Parts(149 * 2, 3)).toBe(2);
    expect(gsm7Parts(149 * 2 + 1, 3)).toBe(3);
  });

  it("reads the national IEs from a UDH", () => {
    expect(nationalIes(Uint8Array.from([0x00, 0x03, 0x01, 0x02, 0x01, 0x25, 0x01, 0x01, 0x24, 0x01, 0x03]))).toEqual({ locking: 1, single: 3 });
    expect(nationalIes(Uint8Array.from([0x25, 0x01, 0x63]))).toEqual({ locking: 0, single: 0 });
    expect(nationalIes(Uint8Array.from([0x25, 0x05, 0x01]))).toEqual({ locking: 0, single: 0 });
  });

  it("parts built through the tables: concatenation and national IEs in every UDH, an escape never split, the text whole again", () => {
    const addr = { addr: "15125550100", ton: 1, npi: 1 };
    fc.assert(
      fc.property(fc.array(fc.constantFrom(..."Şişli çok güzel ığĞİ {}[]€ 0123 abc"), { minLength: 150, maxLength: 700 }), (chars) => {
        const text = chars.join("");
        let saved = -1;
        const pdus = buildMessagePdus(CMD.submit_sm, { source: addr, destination: addr, text }, 0x42, "payload", { languages: [1], saved: (n) => (saved = n) });
        const choice = chooseNational(text, [1]);
        if (choice === null) return; // UCS-2 as good: plain path
        expect(pdus).toHaveLength(choice.parts);
        expect(saved).toBe(ucs2Parts(text.length) - choice.parts);
        const septets: number[] = [];
        pdus.forEach((p, i) => {
          expect(p.data_coding).toBe(0);
          const ud = extractUserData(p);
          if (typeof ud === "number") throw new Error(`bad UDH ${ud}`);
          expect(ud.national).toBe((choice.locking << 8) | choice.single);
          if (pdus.length > 1) expect(ud.concat).toMatchObject({ ref: 0x42, total: pdus.length, seq: i + 1 });
          expect(ud.payload[ud.payload.length - 1]).not.toBe(0x1b);
          const room = 160 - Math.ceil((ud.udh!.length * 8) / 7);
          expect(ud.payload.length).toBeLessThanOrEqual(room);
          septets.push(...ud.payload);
        });
        expect(gsm7DecodeNational(Uint8Array.from(septets), choice.locking, choice.single)).toBe(text);
      }),
      { numRuns: 200 },
    );
  });
});
