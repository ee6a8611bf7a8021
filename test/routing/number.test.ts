import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isE164, normalizeNumber, numberUserPart } from "../../src/routing/number.js";

const NANP = { countryCode: "1" };
const UK = { countryCode: "44" };
const DE = { countryCode: "49" };
const AU = { countryCode: "61" };

describe("normalizeNumber: what carriers send", () => {
  const cases: [string, object, string][] = [
    ["+15125550100", {}, "+15125550100"],
    ["+1 (512) 555-0100", {}, "+15125550100"],
    ["+1.512.555.0100", NANP, "+15125550100"],
    ["5125550100", NANP, "+15125550100"],
    ["15125550100", NANP, "+15125550100"],
    ["1-512-555-0100", NANP, "+15125550100"],
    ["(512) 555-0100", NANP, "+15125550100"],
    ["011447700900123", NANP, "+447700900123"],
    ["00447700900123", UK, "+447700900123"],
    ["07700900123", UK, "+447700900123"],
    ["447700900123", UK, "+447700900123"],
    ["7700900123", UK, "+447700900123"],
    ["030 1234567", DE, "+49301234567"],
    ["0049301234567", DE, "+49301234567"],
    ["0212345678", AU, "+61212345678"],
    ["tel:+1-512-555-0100", {}, "+15125550100"],
    ["tel:+1-512-555-0100;npdi;rn=+15125559999", {}, "+15125550100"],
    ["tel:5125550100;phone-context=+1", NANP, "+15125550100"],
    ["sip:+15125550100@10.0.0.1;user=phone", {}, "+15125550100"],
    ["sip:5125550100;rn=5125559999;npdi@carrier.example;user=phone", NANP, "+15125550100"],
    ["sips:+447700900123@example.net:5061", {}, "+447700900123"],
    ['"Alice" <sip:+15125550100@host>;tag=1', {}, "+15125550100"],
    ["sip:%2B15125550100@host", {}, "+15125550100"],
    ["+999999999999999", {}, "+999999999999999"],
  ];
  for (const [input, plan, want] of cases) {
    it(`${input} (${JSON.stringify(plan)}) → ${want}`, () => {
      expect(normalizeNumber(input, plan)).toEqual({ ok: true, e164: want });
    });
  }
});

describe("normalizeNumber: invalid input is an error value", () => {
  const bad: [string, object][] = [
    ["", {}],
    ["anonymous", {}],
    ["sip:anonymous@anonymous.invalid", {}],
    ["+0123456789", {}],
    ["+1234567890123456", {}],
    ["512555010", NANP],
    ["25125550100", NANP],
    ["0123", NANP],
    ["*67 512 555 0100", NANP],
    ["5125550100#", NANP],
    ["+1+5125550100", {}],
    ["00", UK],
    ["0", UK],
    ["\u0000123", {}],
    ["sip:%ZZ@host", {}],
  ];
  for (const [input, plan] of bad) {
    it(`${JSON.stringify(input)} is rejected`, () => {
      const r = normalizeNumber(input, plan);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.length).toBeGreaterThan(0);
    });
  }
  it("never throws, and every success is canonical E.164", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.constantFrom<object>({}, NANP, UK, DE), (s, plan) => {
        const r = normalizeNumber(s, plan);
        if (r.ok) expect(isE164(r.e164)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
  it("is idempotent on its own output", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^\+[1-9][0-9]{0,14}$/), fc.constantFrom<object>({}, NANP, UK), (s, plan) => {
        expect(normalizeNumber(s, plan)).toEqual({ ok: true, e164: s });
      }),
    );
  });
});

describe("numberUserPart", () => {
  it("strips scheme, host and parameters", () => {
    expect(numberUserPart("sip:+15125550100;npdi@h;user=phone")).toBe("+15125550100");
    expect(numberUserPart("<tel:+44-20;ext=1>")).toBe("+44-20");
  });
});
