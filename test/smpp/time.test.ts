import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { formatSmppTime, parseSmppTime } from "../../src/smpp/time.js";

const NOW = Date.parse("2026-12-05T12:00:00.000Z");

describe("SMPP times (SMPP 3.4 7.1.1)", () => {
  it("an empty field is not given", () => {
    expect(parseSmppTime("", NOW)).toEqual({ ok: true, at: null });
  });

  it("absolute times: UTC, ahead of UTC and behind it in quarter hours, tenths", () => {
    expect(parseSmppTime("261205130000000+", NOW)).toEqual({ ok: true, at: Date.parse("2026-12-05T13:00:00.000Z") });
    // 14:30 local, 8 quarter hours (2 h) ahead of UTC: 12:30 UTC
    expect(parseSmppTime("261205143000008+", NOW)).toEqual({ ok: true, at: Date.parse("2026-12-05T12:30:00.000Z") });
    // 07:15 local, 20 quarter hours (5 h) behind UTC: 12:15 UTC
    expect(parseSmppTime("261205071500020-", NOW)).toEqual({ ok: true, at: Date.parse("2026-12-05T12:15:00.000Z") });
    expect(parseSmppTime("240229235959900+", NOW)).toEqual({ ok: true, at: Date.parse("2024-02-29T23:59:59.900Z") });
  });

  it("relative times are added to the time of receipt", () => {
    expect(parseSmppTime("000000010000000R", NOW)).toEqual({ ok: true, at: NOW + 3_600_000 });
    expect(parseSmppTime("000007000000000R", NOW)).toEqual({ ok: true, at: NOW + 7 * 86_400_000 });
    expect(parseSmppTime("000000000130000R", NOW)).toEqual({ ok: true, at: NOW + 90_000 });
    // calendar arithmetic: one month after 5 December is 5 January
    expect(parseSmppTime("000100000000000R", NOW)).toEqual({ ok: true, at: Date.parse("2027-01-05T12:00:00.000Z") });
    expect(parseSmppTime("000000000000000R", NOW)).toEqual({ ok: true, at: NOW });
  });

  it("refuses what is not a time", () => {
    for (const s of [
      "2612051300000+", // short
      "2612051300000000+", // long
      "261205130000000X", // no sign
      "26120513000000a+", // not digits
      "261305130000000+", // month 13
      "261200130000000+", // day 0
      "250229130000000+", // 29 February of a common year
      "261131130000000+", // 31 November
      "261205240000000+", // hour 24
      "261205126000000+", // minute 60
      "261205125960000+", // second 60
      "261205125959049+", // offset of 49 quarter hours
      "\u0661\u0662\u0661\u0662\u0660\u0665\u0661\u0663\u0660\u0660\u0660\u0660\u0660\u0660\u0660+", // other digits
    ]) {
      expect(parseSmppTime(s, NOW).ok, s).toBe(false);
    }
  });

  it("property: formatSmppTime and parseSmppTime agree to the tenth of a second", () => {
    fc.assert(
      fc.property(fc.date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2099-12-31T23:59:59.999Z"), noInvalidDate: true }), (d) => {
        const r = parseSmppTime(formatSmppTime(d), NOW);
        expect(r).toEqual({ ok: true, at: d.getTime() - (d.getTime() % 100) });
      }),
    );
  });

  it("property: an absolute time with an offset is the UTC time shifted by the offset", () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date("2001-01-01T00:00:00Z"), max: new Date("2098-12-31T00:00:00Z"), noInvalidDate: true }),
        fc.integer({ min: 0, max: 48 }),
        fc.boolean(),
        (d, nn, ahead) => {
          const shift = nn * 15 * 60_000 * (ahead ? 1 : -1);
          const local = formatSmppTime(new Date(d.getTime() + shift)).slice(0, 13) + String(nn).padStart(2, "0") + (ahead ? "+" : "-");
          const r = parseSmppTime(local, NOW);
          expect(r).toEqual({ ok: true, at: d.getTime() - (d.getTime() % 100) });
        },
      ),
    );
  });

  it("property: any 16-character string parses without throwing; a valid one is a finite time", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ minLength: 16, maxLength: 16 }), fc.stringMatching(/^[0-9]{15}[+\-R]$/)), (s) => {
        const r = parseSmppTime(s, NOW);
        if (r.ok) expect(Number.isFinite(r.at)).toBe(true);
      }),
    );
  });
});
