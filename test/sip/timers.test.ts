import { spawn } from "node:child_process";
import { resolve as resolve_ } from "node:path";
import { describe, expect, it } from "vitest";
import { TimerLists, type TimerTarget } from "../../src/sip/timers.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("TimerLists", () => {
  it("fires each timer once, not before its time, in order per duration; cleared ones never; lists go away when empty", async () => {
    const t = new TimerLists();
    const fired: Array<{ name: string; late: number }> = [];
    const target = (name: string, ms: number): TimerTarget & { at: number } => {
      const o = { at: t.now() + ms, onTimer: (kind: number) => fired.push({ name: name + ":" + kind, late: t.now() - o.at }) };
      return o;
    };
    t.set(40, target("a", 40), 1);
    const hb = t.set(40, target("b", 40), 2);
    t.set(10, target("c", 10), 3);
    await sleep(5);
    t.set(40, target("d", 40), 4);
    t.set(10, target("e", 10), 5);
    t.clear(hb);
    t.clear(hb); // twice: no-op
    expect(t.listCount).toBe(2);
    await sleep(120);
    expect(fired.map((f) => f.name)).toEqual(["c:3", "e:5", "a:1", "d:4"]);
    // never early by more than the millisecond of Node's timer clock
    for (const f of fired) expect(f.late).toBeGreaterThanOrEqual(-1);
    expect(t.listCount).toBe(0);
  });

  it("a timer set or cleared from a callback of the same list, and clearing one that fired, behave", async () => {
    const t = new TimerLists();
    const got: string[] = [];
    let later: unknown = null;
    const second = { onTimer: () => got.push("second") };
    const third = { onTimer: () => got.push("third") };
    const first = {
      onTimer: () => {
        got.push("first");
        t.clear(later);
        t.set(15, { onTimer: () => got.push("again") }, 0);
      },
    };
    const h = t.set(15, first, 0);
    t.set(15, second, 0);
    later = t.set(15, third, 0);
    await sleep(60);
    expect(got).toEqual(["first", "second", "again"]);
    t.clear(h); // already fired
    t.clear(undefined);
    t.clear(null);
    expect(t.listCount).toBe(0);
  });

  it("a cleared timer does not keep the process alive, a pending one does", async () => {
    const run = (body: string): Promise<number> =>
      new Promise((resolve) => {
        const src = `import { TimerLists } from ${JSON.stringify(resolve_("dist/src/sip/timers.js"))};\nconst t = new TimerLists();\n${body}`;
        const t0 = Date.now();
        const child = spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: "ignore" });
        child.on("exit", () => resolve(Date.now() - t0));
      });
    // one of three still pending: it holds the process (ended here after 5 s by an unref'd timer)
    expect(await run(`const h = t.set(60_000, { onTimer() {} }, 0); t.set(60_000, { onTimer() {} }, 0); t.clear(h); t.clear(t.set(60_000, { onTimer() {} }, 0)); setTimeout(() => process.exit(3), 5000).unref();`)).toBeGreaterThan(4000);
    // all cleared: the process ends at once, not after the 60 s of the list's Node timer
    expect(await run(`const a = t.set(60_000, { onTimer() {} }, 0); const b = t.set(60_000, { onTimer() {} }, 0); t.clear(a); t.clear(b);`)).toBeLessThan(4000);
    // pending: it fires, then the process ends
    const ms = await run(`t.set(1500, { onTimer() { console.log("fired"); } }, 0);`);
    expect(ms).toBeGreaterThanOrEqual(1500);
  });
});
