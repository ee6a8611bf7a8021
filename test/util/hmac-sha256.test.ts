/** HmacSha256 (src/util/hmac-sha256.ts) against RFC 4231 and node:crypto. */
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HmacSha256 } from "../../src/util/hmac-sha256.js";

const node = (key: Uint8Array, input: string): string => createHmac("sha256", key).update(input, "utf8").digest("hex");

describe("HmacSha256", () => {
  it("gives RFC 4231's test vectors", () => {
    // test case 2
    expect(new HmacSha256(Buffer.from("Jefe")).mac("what do ya want for nothing?").toString("hex")).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
    // test case 6: a key longer than a block
    expect(new HmacSha256(Buffer.alloc(131, 0xaa)).mac("Test Using Larger Than Block-Size Key - Hash Key First").toString("hex")).toBe(
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    );
    // test case 5: truncated to 128 bits
    const tc5 = Buffer.alloc(20, 0x0c);
    expect(new HmacSha256(tc5).mac("Test With Truncation", 16).toString("hex")).toBe("a3b6167473100ee06e0c796c2955552b");
  });

  it("matches node:crypto at every length around the block boundaries", () => {
    const key = Buffer.from("an edge group's dialog secret");
    const h = new HmacSha256(key);
    for (let n = 0; n <= 300; n++) {
      const s = "x".repeat(n);
      expect(h.mac(s).toString("hex"), `length ${n}`).toBe(node(key, s));
    }
  });

  it("matches node:crypto for any key and input, non-ASCII and lone surrogates included", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.oneof(
        fc.string({ maxLength: 400 }),
        fc.string({ unit: "binary", maxLength: 300 }),
        // any UTF-16 units, lone surrogates too (both encode them as U+FFFD)
        fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 200 }).map((a) => String.fromCharCode(...a)),
      ), (key, input) => {
        const h = new HmacSha256(key);
        expect(h.mac(input).toString("hex")).toBe(node(key, input));
        // the same instance again, after a longer or shorter input (the buffers are reused)
        expect(h.mac(input + input).toString("hex")).toBe(node(key, input + input));
        expect(h.mac(input, 16).toString("hex")).toBe(node(key, input).slice(0, 32));
      }),
      { numRuns: 500 },
    );
  });

  it("grows for long inputs", () => {
    const key = Buffer.from("k");
    const h = new HmacSha256(key);
    const long = "é".repeat(5000) + "a".repeat(70_000);
    expect(h.mac(long).toString("hex")).toBe(node(key, long));
    expect(h.mac("short").toString("hex")).toBe(node(key, "short"));
  });
});
