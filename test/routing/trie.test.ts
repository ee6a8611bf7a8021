import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DigitTrie, NO_VALUE } from "../../src/routing/trie.js";
import { blockId, PageMap, pageId } from "../../src/routing/page-map.js";
import { hashKey, NumMap } from "../../src/routing/num-map.js";
import { POW10, PrefixIndex } from "../../src/routing/prefix-index.js";

const whole = (s: string): [string, number, number] => [s, 0, s.length];

describe("DigitTrie", () => {
  it("stores values at digit strings, the root being the empty string", () => {
    const t = new DigitTrie(2);
    expect(t.get(...whole(""))).toBe(NO_VALUE);
    expect(t.set(...whole(""), 7)).toBe(NO_VALUE);
    expect(t.set(...whole("15"), 1)).toBe(NO_VALUE);
    expect(t.set(...whole("1512"), 2)).toBe(NO_VALUE);
    expect(t.set(...whole("15"), 3)).toBe(1);
    expect(t.get(...whole(""))).toBe(7);
    expect(t.get(...whole("15"))).toBe(3);
    expect(t.get(...whole("151"))).toBe(NO_VALUE);
    expect(t.get(...whole("1512"))).toBe(2);
    expect(t.get(...whole("15123"))).toBe(NO_VALUE);
    expect(t.count).toBe(3);
  });

  it("longestMatch returns the deepest value on the path and its depth", () => {
    const t = new DigitTrie();
    t.set(...whole("4"), 1);
    t.set(...whole("4420"), 2);
    t.set(...whole("44207"), 3);
    expect(t.longestMatch(...whole("442071234567"))).toBe(3);
    expect(t.depth).toBe(5);
    expect(t.longestMatch(...whole("442081234567"))).toBe(2);
    expect(t.depth).toBe(4);
    expect(t.longestMatch(...whole("4930"))).toBe(1);
    expect(t.depth).toBe(1);
    expect(t.longestMatch(...whole("15125550100"))).toBe(NO_VALUE);
    expect(t.depth).toBe(0);
    t.set(...whole(""), 9);
    expect(t.longestMatch(...whole("15125550100"))).toBe(9);
    expect(t.depth).toBe(0);
    // digit ranges inside a longer string
    expect(t.longestMatch("+442079", 1, 7)).toBe(3);
    expect(t.depth).toBe(5);
    expect(t.longestMatch("+44207", 1, 4)).toBe(1);
    expect(t.depth).toBe(1);
  });

  it("delete exposes shorter values and prunes empty branches for reuse", () => {
    const t = new DigitTrie(2);
    t.set(...whole("1"), 1);
    t.set(...whole("123456789012345"), 2);
    const nodesFull = t.nodeCount;
    expect(nodesFull).toBe(16);
    expect(t.delete(...whole("12345"))).toBe(NO_VALUE);
    expect(t.delete(...whole("123456789012345"))).toBe(2);
    expect(t.delete(...whole("123456789012345"))).toBe(NO_VALUE);
    expect(t.nodeCount).toBe(2); // root and "1"
    expect(t.longestMatch(...whole("123456789012345"))).toBe(1);
    expect(t.depth).toBe(1);
    const bytes = t.byteLength;
    t.set(...whole("198765432109876"), 3);
    expect(t.byteLength).toBe(bytes); // freed nodes reused, no growth
    expect(t.longestMatch(...whole("198765432109876"))).toBe(3);
    expect(t.delete(...whole("1"))).toBe(1);
    expect(t.longestMatch(...whole("19"))).toBe(NO_VALUE);
    expect(t.nodeCount).toBe(16);
    expect(t.count).toBe(1);
  });

  it("forEach visits every value once", () => {
    const t = new DigitTrie();
    const keys = ["", "1", "12", "129", "2", "99999"];
    keys.forEach((k, i) => t.set(...whole(k), i + 1));
    const seen: [string, number][] = [];
    t.forEach((d, v) => seen.push([d, v]));
    expect(seen.sort()).toEqual(keys.map((k, i) => [k, i + 1] as [string, number]).sort());
  });

  it("matches a Map of digit strings under random set/delete (property)", () => {
    const digits = fc.string({ unit: fc.constantFrom("1", "2", "3"), minLength: 0, maxLength: 6 });
    const op = fc.tuple(fc.boolean(), digits, fc.integer({ min: 1, max: 1000 }));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.array(digits, { maxLength: 20 }), (ops, queries) => {
        const t = new DigitTrie(1);
        const ref = new Map<string, number>();
        for (const [isSet, k, v] of ops) {
          if (isSet) {
            expect(t.set(...whole(k), v)).toBe(ref.get(k) ?? NO_VALUE);
            ref.set(k, v);
          } else {
            expect(t.delete(...whole(k))).toBe(ref.get(k) ?? NO_VALUE);
            ref.delete(k);
          }
        }
        expect(t.count).toBe(ref.size);
        for (const q of queries) {
          let best = NO_VALUE;
          let depth = 0;
          for (let l = 0; l <= q.length; l++) {
            const v = ref.get(q.slice(0, l));
            if (v !== undefined) {
              best = v;
              depth = l;
            }
          }
          expect(t.longestMatch(...whole(q))).toBe(best);
          expect(t.depth).toBe(depth);
          expect(t.get(...whole(q))).toBe(ref.get(q) ?? NO_VALUE);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("PageMap", () => {
  it("keeps numbers of the same digits but different lengths apart", () => {
    const p = new PageMap(1);
    // "+1234" and "+01234" both have page 12 and low 34, with lengths 4 and 5
    expect(p.set(pageId(12, 4), 34, 1)).toBe(NO_VALUE);
    expect(p.set(pageId(12, 5), 34, 2)).toBe(NO_VALUE);
    expect(p.get(pageId(12, 4), 34)).toBe(1);
    expect(p.get(pageId(12, 5), 34)).toBe(2);
    expect(p.get(pageId(12, 4), 35)).toBe(NO_VALUE);
    expect(p.livePages).toBe(2);
    expect(p.count).toBe(2);
  });

  it("15-digit page ids are exact and distinct", () => {
    const p = new PageMap();
    const top = 9999999999999; // 13 digits of page, 15 digits in all
    p.set(pageId(top, 15), 99, 5);
    p.set(pageId(top - 1, 15), 99, 6);
    expect(p.get(pageId(top, 15), 99)).toBe(5);
    expect(p.get(pageId(top - 1, 15), 99)).toBe(6);
    expect(p.get(pageId(top, 14), 99)).toBe(NO_VALUE);
  });

  it("block ids with the same low 32 bits (tags) stay apart, also in one probe run", () => {
    // blocks k and k + 2^28 of 13-digit numbers: block ids k * 16 + 13 differ by exactly 2^32;
    // pick k so that both have the same home slot in the 16-slot table of a new PageMap
    let k = 1_000_000_000;
    while ((hashKey(blockId(k, 13)) & 15) !== (hashKey(blockId(k + 2 ** 28, 13)) & 15)) k++;
    const p = new PageMap(1);
    const a = pageId(k * 10 + 3, 13);
    const b = pageId((k + 2 ** 28) * 10 + 3, 13);
    p.set(a, 7, 1);
    expect(p.get(b, 7)).toBe(NO_VALUE);
    p.set(b, 7, 2);
    expect([p.get(a, 7), p.get(b, 7)]).toEqual([1, 2]);
    expect(p.delete(a, 7)).toBe(1);
    expect([p.get(a, 7), p.get(b, 7)]).toEqual([NO_VALUE, 2]);
    p.set(a, 7, 3);
    expect(p.delete(b, 7)).toBe(2);
    expect([p.get(a, 7), p.get(b, 7)]).toEqual([3, NO_VALUE]);
  });

  it("removing a block pulls back the lines of its probe run, across the end of the table", () => {
    // in a 16-slot table: A and B hash to slot 15 (B wraps to slot 0), C hashes to slot 0 (slot 1)
    const home = (block: number) => hashKey(blockId(block, 9)) & 15;
    const find = (h: number, from: number) => {
      let b = from;
      while (home(b) !== h) b++;
      return b;
    };
    const A = find(15, 1000);
    const B = find(15, A + 1);
    const C = find(0, 1000);
    const p = new PageMap(1);
    const pid = (block: number) => pageId(block * 10, 9);
    p.set(pid(A), 1, 1);
    p.set(pid(B), 1, 2);
    p.set(pid(C), 1, 3);
    expect(p.delete(pid(A), 1)).toBe(1); // A's block empties and leaves the table
    expect([p.get(pid(A), 1), p.get(pid(B), 1), p.get(pid(C), 1)]).toEqual([NO_VALUE, 2, 3]);
    expect(p.delete(pid(B), 1)).toBe(2);
    expect(p.get(pid(C), 1)).toBe(3);
  });

  it("blocks that empty and come back under churn (property, ids above 2^32)", () => {
    const block = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }).map((b) => 2 ** 30 + b * 7919));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), block, fc.integer({ min: 0, max: 1 }), fc.integer({ min: 1, max: 70_000 })), { maxLength: 200 }), (ops) => {
        const p = new PageMap(1);
        const ref = new Map<number, number>();
        for (const [isSet, b, low, v] of ops) {
          const pid = pageId(b * 10, 14); // one page per block: a delete often empties the block
          const key = b * 2 + low;
          if (isSet) {
            expect(p.set(pid, low, v)).toBe(ref.get(key) ?? NO_VALUE);
            ref.set(key, v);
          } else {
            expect(p.delete(pid, low)).toBe(ref.get(key) ?? NO_VALUE);
            ref.delete(key);
          }
          for (const [k2, v2] of ref) expect(p.get(pageId(Math.floor(k2 / 2) * 10, 14), k2 % 2)).toBe(v2);
        }
        expect(p.count).toBe(ref.size);
      }),
      { numRuns: 300 },
    );
  });

  it("frees empty pages, reuses them and survives hash growth and backward-shift deletes", () => {
    const p = new PageMap(1);
    const ref = new Map<number, number>();
    let x = 12345;
    const rnd = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % 5000;
    for (let i = 0; i < 20000; i++) {
      const n = rnd();
      const pid = pageId(Math.floor(n / 100), 6);
      if (i % 3 === 2) {
        expect(p.delete(pid, n % 100)).toBe(ref.get(n) ?? NO_VALUE);
        ref.delete(n);
      } else {
        expect(p.set(pid, n % 100, i + 1)).toBe(ref.get(n) ?? NO_VALUE);
        ref.set(n, i + 1);
      }
    }
    expect(p.count).toBe(ref.size);
    for (let n = 0; n < 5000; n++) expect(p.get(pageId(Math.floor(n / 100), 6), n % 100)).toBe(ref.get(n) ?? NO_VALUE);
    // bulkLoad matches set(): later duplicates win, overwritten values are reported
    const q = new PageMap(1);
    const n = 3000;
    const pids = new Float64Array(n), lows = new Uint8Array(n), vals = new Int32Array(n);
    const qref = new Map<number, number>();
    let replaced = 0;
    for (let i = 0; i < n; i++) {
      const num = rnd();
      pids[i] = pageId(Math.floor(num / 100), 6);
      lows[i] = num % 100;
      vals[i] = i + 1;
      if (qref.has(num)) replaced++;
      qref.set(num, i + 1);
    }
    const seen: number[] = [];
    q.bulkLoad(pids, lows, vals, n, (old) => seen.push(old));
    expect(seen.length).toBe(replaced);
    expect(q.count).toBe(qref.size);
    for (const [num, v] of qref) expect(q.get(pageId(Math.floor(num / 100), 6), num % 100)).toBe(v);

    for (const n of [...ref.keys()]) p.delete(pageId(Math.floor(n / 100), 6), n % 100);
    expect(p.count).toBe(0);
    expect(p.livePages).toBe(0);
    let visited = 0;
    p.forEach(() => visited++);
    expect(visited).toBe(0);
  });
});

describe("PageMap slab width", () => {
  it("holds 16-bit values until a larger one comes, then widens keeping every value", () => {
    const p = new PageMap(1);
    for (let i = 0; i < 3000; i++) p.set(pageId(1000 + Math.floor(i / 100), 7), i % 100, 65535 - i);
    expect(p.wide).toBe(false);
    p.set(pageId(5000, 7), 1, 65536);
    expect(p.wide).toBe(true);
    expect(p.get(pageId(5000, 7), 1)).toBe(65536);
    for (let i = 0; i < 3000; i++) expect(p.get(pageId(1000 + Math.floor(i / 100), 7), i % 100)).toBe(65535 - i);
    // growth after widening keeps the width
    for (let i = 0; i < 3000; i++) p.set(pageId(9000 + Math.floor(i / 100), 8), i % 100, 100_000 + i);
    expect(p.get(pageId(9029, 8), 99)).toBe(102_999);
    // a bulk load with a large value widens before it writes
    const q = new PageMap(1);
    q.bulkLoad(Float64Array.of(pageId(1, 5), pageId(1, 5)), Uint8Array.of(1, 2), Int32Array.of(7, 1 << 20), 2, () => {});
    expect(q.wide).toBe(true);
    expect([q.get(pageId(1, 5), 1), q.get(pageId(1, 5), 2)]).toEqual([7, 1 << 20]);
  });
});

describe("PageMap block table", () => {
  it("matches a Map under random set/delete across many blocks and lengths (property)", () => {
    // numbers from few pages of many blocks: long probe runs, growth, wrap-around, lines that
    // leave the table (backward shift) and come back
    const num = fc.tuple(fc.integer({ min: 1, max: 15 }), fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 99 }));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), num, fc.integer({ min: 1, max: 1e6 })), { maxLength: 300 }), (ops) => {
        const p = new PageMap(1);
        const ref = new Map<string, number>();
        const idOf = ([len, block, k]: [number, number, number, number]): number => pageId(Math.min(block * 10 + k, len >= 3 ? 10 ** (len - 2) - 1 : 0), len);
        for (const [isSet, n, v] of ops) {
          const pid = idOf(n);
          const key = pid + ":" + n[3];
          if (isSet) {
            expect(p.set(pid, n[3], v)).toBe(ref.get(key) ?? NO_VALUE);
            ref.set(key, v);
          } else {
            expect(p.delete(pid, n[3])).toBe(ref.get(key) ?? NO_VALUE);
            ref.delete(key);
          }
        }
        expect(p.count).toBe(ref.size);
        for (const [key, v] of ref) {
          const [pid, low] = key.split(":").map(Number);
          expect(p.get(pid!, low!)).toBe(v);
        }
        const seen = new Map<string, number>();
        p.forEach((pid, low, v) => seen.set(pid + ":" + low, v));
        expect(seen).toEqual(ref);
      }),
      { numRuns: 300 },
    );
  });
});

describe("NumMap", () => {
  it("matches a Map under random set/delete with colliding keys (property)", () => {
    // keys from a small range force long probe runs and wrap-around at the table end
    const key = fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(2 ** 52, 1.6e14 - 1, 4294967296, 4294967297));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), key, fc.nat(1e6)), { maxLength: 200 }), (ops) => {
        const m = new NumMap(1);
        const ref = new Map<number, number>();
        for (const [isSet, k, v] of ops) {
          if (isSet) {
            expect(m.set(k, v)).toBe(ref.get(k) ?? -1);
            ref.set(k, v);
          } else {
            expect(m.delete(k)).toBe(ref.get(k) ?? -1);
            ref.delete(k);
          }
        }
        expect(m.size).toBe(ref.size);
        for (let k = 1; k <= 40; k++) expect(m.get(k)).toBe(ref.get(k) ?? -1);
        const seen = new Map<number, number>();
        m.forEach((k, v) => seen.set(k, v));
        expect(seen).toEqual(ref);
      }),
      { numRuns: 300 },
    );
  });

  it("reserve grows without losing keys", () => {
    const m = new NumMap(1);
    for (let k = 1; k <= 100; k++) m.set(k * 7919, k);
    const bytes = m.byteLength;
    m.reserve(100000);
    expect(m.byteLength).toBeGreaterThan(bytes);
    for (let k = 1; k <= 100; k++) expect(m.get(k * 7919)).toBe(k);
  });
});

describe("PrefixIndex", () => {
  const pre = (digits: string): Float64Array => {
    const a = new Float64Array(16);
    for (let l = 1; l <= digits.length; l++) a[l] = Number(digits.slice(0, l));
    return a;
  };
  const put = (p: PrefixIndex, digits: string, v: number) => p.set(digits === "" ? 0 : Number(digits), digits.length, v);

  it("probes only the lengths in use, longest first, then the default", () => {
    const p = new PrefixIndex();
    expect(p.longestMatch(pre("15125550100"), 11)).toBe(NO_VALUE);
    put(p, "", 9);
    put(p, "1", 1);
    put(p, "1512", 2);
    put(p, "151255501001234", 3);
    put(p, "01512", 4); // same number, different length
    expect(p.longestMatch(pre("15125550100"), 11)).toBe(2);
    expect(p.depth).toBe(4);
    expect(p.longestMatch(pre("151255501001234"), 15)).toBe(3);
    expect(p.depth).toBe(15);
    expect(p.longestMatch(pre("015129"), 6)).toBe(4);
    expect(p.longestMatch(pre("0151"), 4)).toBe(9);
    expect(p.depth).toBe(0);
    expect(p.longestMatch(pre("1"), 1)).toBe(1);
    expect(p.count).toBe(4);
    expect(p.delete(1512, 4)).toBe(2);
    expect(p.longestMatch(pre("15125550100"), 11)).toBe(1);
    expect(p.delete(1512, 4)).toBe(NO_VALUE);
    expect(p.delete(0, 0)).toBe(9);
    expect(p.longestMatch(pre("2"), 1)).toBe(NO_VALUE);
    const seen: [string, number][] = [];
    p.forEach((d, v) => seen.push([d, v]));
    expect(seen.sort()).toEqual([["01512", 4], ["1", 1], ["151255501001234", 3]]);
  });

  it("keys stay exact for 15 digits", () => {
    expect(POW10[15] + 999999999999999).toBe(1999999999999999);
    const p = new PrefixIndex();
    put(p, "999999999999999", 1);
    put(p, "999999999999998", 2);
    expect(p.longestMatch(pre("999999999999999"), 15)).toBe(1);
    expect(p.longestMatch(pre("999999999999998"), 15)).toBe(2);
    expect(p.get(999999999999998, 15)).toBe(2);
    expect(p.get(99999999999999, 14)).toBe(NO_VALUE);
  });
});
