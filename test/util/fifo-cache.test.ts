/** Unit tests of FifoCache (src/util/fifo-cache.ts): the bound, the order, deleted keys, against a model. */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { FifoCache } from "../../src/util/fifo-cache.js";

describe("FifoCache", () => {
  it("keeps at most max entries, the oldest inserted out first", () => {
    const c = new FifoCache<string, number>(3);
    for (let i = 0; i < 5; i++) c.set("k" + i, i);
    expect(c.size).toBe(3);
    expect([...c.keys()]).toEqual(["k2", "k3", "k4"]);
    expect(c.get("k1")).toBeUndefined();
    expect(c.get("k4")).toBe(4);
  });

  it("does not move an entry that is set again, and does not count it twice", () => {
    const c = new FifoCache<string, number>(2);
    c.set("a", 1).set("b", 2).set("a", 3);
    expect(c.queued).toBe(2);
    c.set("c", 4);
    expect([...c.keys()]).toEqual(["b", "c"]);
  });

  it("a deleted key leaves the map at once, and its queue slot is skipped later", () => {
    const c = new FifoCache<string, number>(2);
    c.set("a", 1).set("b", 2);
    expect(c.delete("a")).toBe(true);
    expect(c.has("a")).toBe(false);
    c.set("c", 3);
    expect([...c.keys()]).toEqual(["b", "c"]);
    c.set("d", 4);
    expect([...c.keys()]).toEqual(["c", "d"]);
  });

  it("keeps its queue bounded when keys are deleted and never evicted", () => {
    const c = new FifoCache<number, number>(100);
    for (let i = 0; i < 100_000; i++) {
      c.set(i, i);
      c.delete(i);
    }
    expect(c.size).toBe(0);
    expect(c.queued).toBeLessThanOrEqual(1025);
    for (let i = 0; i < 100_000; i++) c.set(i, i);
    expect(c.size).toBe(100);
    expect(c.queued).toBeLessThanOrEqual(2 * 100 + 1025);
  });

  it("matches a Map bounded by deleting its first key, for sets without deletes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), (max, keys) => {
        const c = new FifoCache<number, number>(max);
        const m = new Map<number, number>();
        for (const k of keys) {
          c.set(k, k);
          m.set(k, k);
          if (m.size > max) m.delete(m.keys().next().value!);
        }
        expect([...c.keys()]).toEqual([...m.keys()]);
        expect(c.queued).toBe(m.size);
      }),
    );
  });

  it("with deletes, keeps a Map's order (delete and set again puts a key last) and its bounds", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 }), fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 20 })), { maxLength: 3000 }), (max, ops) => {
        const c = new FifoCache<number, number>(max);
        const m = new Map<number, number>();
        for (const [del, k] of ops) {
          if (del) expect(c.delete(k)).toBe(m.delete(k));
          else {
            c.set(k, k);
            m.set(k, k);
            if (m.size > max) m.delete(m.keys().next().value!);
          }
          expect(c.size).toBe(m.size);
          expect(c.oldestKey()).toBe(m.keys().next().value);
          expect(c.queued).toBeLessThanOrEqual(2 * c.size + 1025);
        }
        expect([...c.keys()]).toEqual([...m.keys()]);
      }),
    );
  });

  it("a key deleted and set again leaves in its new turn, not its old one", () => {
    const c = new FifoCache<string, number>(3);
    c.set("a", 1).set("b", 2).set("c", 3);
    c.delete("a");
    c.set("a", 4);
    c.set("d", 5);
    // b was the oldest: a (set again after c) stays
    expect([...c.keys()]).toEqual(["c", "a", "d"]);
    c.set("e", 6);
    expect([...c.keys()]).toEqual(["a", "d", "e"]);
  });

  it("stays bounded at the cap under keys deleted, set again and new (a lockout table of 100,000)", () => {
    const c = new FifoCache<string, number>(100_000);
    for (let i = 0; i < 100_000; i++) c.set("k" + i, i);
    for (let i = 100_000; i < 300_000; i++) {
      c.delete("k" + (i - 50_000));
      c.set("k" + (i - 50_000), i);
      c.set("k" + i, i);
    }
    expect(c.size).toBe(100_000);
    expect(c.queued).toBeLessThanOrEqual(2 * 100_000 + 1025);
  });
});
