/**
 * JournalPartStore (direct mode's durable reassembly buffers): the same answers as the Redis store,
 * and what was answered survives a reopen of the journal (a restart), a torn last line and
 * compaction.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { JournalPartStore } from "../../src/delivery/parts-journal.js";
import type { TimeoutClock } from "../../src/util/clock.js";

const dir = mkdtempSync(join(tmpdir(), "didgate-journal-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function clock(start = 1_000_000): TimeoutClock & { t: number } {
  const c = { t: start, now: () => c.t, setTimeout: (f: () => void, ms: number) => setTimeout(f, ms), clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout) };
  return c as TimeoutClock & { t: number };
}

async function store(path: string, c: TimeoutClock, over: Partial<ConstructorParameters<typeof JournalPartStore>[0]> = {}): Promise<JournalPartStore> {
  const s = new JournalPartStore({ path, timeoutMs: 1000, clock: c, ...over });
  await s.open();
  return s;
}

describe("JournalPartStore", () => {
  it("answers stored, duplicate, complete, full and late like the Redis store", async () => {
    const c = clock();
    const s = await store(join(dir, `j${++n}`), c, { maxBuffers: 2 });
    expect(await s.add("a", 3, 1, "a1")).toEqual({ kind: "stored" });
    expect(await s.add("a", 3, 1, "a1")).toEqual({ kind: "duplicate" });
    expect(await s.add("b", 2, 2, "b2")).toEqual({ kind: "stored" });
    expect(await s.add("c", 2, 1, "c1")).toEqual({ kind: "full" });
    expect(await s.add("a", 3, 3, "a3")).toEqual({ kind: "stored" });
    expect(await s.add("a", 3, 2, "a2")).toEqual({ kind: "complete", parts: ["a1", "a2", "a3"] });
    expect(await s.completed("a")).toEqual(["a1", "a2", "a3"]);
    await s.done("a");
    expect(await s.completed("a")).toBeUndefined();
    // b times out: swept (leased), then a late part of it goes alone
    c.t += 1001;
    expect(await s.sweep()).toEqual([{ key: "b", total: 2, parts: [undefined, "b2"] }]);
    expect(await s.sweep()).toEqual([]); // leased
    expect(await s.add("b", 2, 1, "b1")).toEqual({ kind: "late" });
    await s.done("b");
    expect(await s.size()).toBe(0);
    await expect(s.add("x", 2, 3, "bad")).rejects.toThrow(RangeError);
    await s.close();
    // a byte cap as well as a buffer cap
    const small = await store(join(dir, `j${++n}`), c, { maxBytes: 10 });
    expect(await small.add("a", 2, 1, "12345678")).toEqual({ kind: "stored" });
    expect(await small.add("b", 2, 1, "123")).toEqual({ kind: "full" });
    expect(await small.add("a", 2, 2, "12")).toEqual({ kind: "complete", parts: ["12345678", "12"] });
    await small.done("a");
    expect(await small.add("b", 2, 1, "123")).toEqual({ kind: "stored" });
    await small.close();
  });

  it("a reopened journal holds every part answered, the sweep lease and the done buffers' absence", async () => {
    const path = join(dir, `j${++n}`);
    const c = clock();
    const s = await store(path, c);
    await Promise.all([s.add("m1", 3, 1, "one"), s.add("m1", 3, 3, "three"), s.add("m2", 2, 1, "x"), s.add("m3", 2, 1, "gone")]);
    await s.done("m3");
    // not closed: as after kill -9 (every add above resolved, so it is on disk)
    const t = await store(path, c);
    expect(await t.size()).toBe(2);
    expect(await t.add("m1", 3, 2, "two")).toEqual({ kind: "complete", parts: ["one", "two", "three"] });
    expect(await t.add("m3", 2, 2, "new")).toEqual({ kind: "stored" }); // m3 was done: a fresh buffer
    c.t += 1001;
    const swept = await t.sweep();
    // m1: complete but never done (its delivery failed); m2 and the new m3: timed out
    expect(swept.map((b) => b.key).sort()).toEqual(["m1", "m2", "m3"]);
    const u = await store(path, c);
    expect(await u.sweep()).toEqual([]); // the lease was journaled too
    c.t += 60_001;
    expect((await u.sweep()).map((b) => b.key).sort()).toEqual(["m1", "m2", "m3"]);
    await Promise.all([s.close(), t.close(), u.close()]);
  });

  it("ignores a torn last line, and compacts to the live buffers", async () => {
    const path = join(dir, `j${++n}`);
    const c = clock();
    const s = await store(path, c, { compactAfter: 50 });
    for (let i = 0; i < 200; i++) {
      await s.add(`k${i}`, 2, 1, "p".repeat(100));
      if (i % 10 !== 0) await s.done(`k${i}`);
    }
    await s.close();
    // 20 live buffers; 400 records written, compacted along the way
    expect(readFileSync(path, "utf8").trim().split("\n").length).toBeLessThan(200);
    appendFileSync(path, '{"o":"a","k":"torn","t":2,"s":1,"p":"ha');
    const t = await store(path, c);
    expect(t.skippedAtReplay).toBe(1);
    expect(await t.size()).toBe(20);
    expect(await t.add("k0", 2, 2, "q")).toMatchObject({ kind: "complete" });
    // the start rewrote the journal with the live buffers only
    expect(statSync(path).size).toBeLessThan(20 * 400);
    await t.close();
  });
});
