/** isoCache (src/util/iso-time.ts) against Date.prototype.toISOString. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isoCache } from "../../src/util/iso-time.js";

describe("isoCache", () => {
  it("writes what toISOString writes, whatever the order of the times (seconds revisited, odd years, fractions)", () => {
    const time = fc.oneof(
      fc.integer({ min: 1.7e12, max: 1.7e12 + 5000 }),
      fc.integer({ min: -8.64e15, max: 8.64e15 }),
      fc.double({ min: -1e13, max: 1e13, noNaN: true }),
    );
    fc.assert(
      fc.property(fc.array(time, { maxLength: 50 }), (times) => {
        const iso = isoCache();
        for (const t of times) expect(iso(t)).toBe(new Date(t).toISOString());
      }),
      { numRuns: 300 },
    );
  });
});
