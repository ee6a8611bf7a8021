import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ActivityRecorder } from "../../src/records/activity.js";
import { numbersReport, renderNumbersReport } from "../../src/records/numbers-report.js";
import { Decider } from "../../src/routing/decide.js";
import { parseRoute, type Route } from "../../src/routing/route.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";

const logger = pino({ level: "silent" });
const DAY = 86_400_000;
let redis: TestRedis;
let dir: string;
beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "didgate-activity-"));
});
afterAll(async () => {
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("number activity", () => {
  it("batches touches and never moves a time backwards across edges (Redis)", async () => {
    let now = 1_000_000;
    const c1 = new Redis(redis.url);
    const c2 = new Redis(redis.url);
    const a = new ActivityRecorder({ redis: c1, prefix: "act:", logger, now: () => now, flushMs: 60_000 });
    const b = new ActivityRecorder({ redis: c2, prefix: "act:", logger, now: () => now, flushMs: 60_000 });
    a.touch("+15125550100", "in");
    now = 2_000_000;
    b.touch("+15125550100", "in");
    b.touch("+15125550101", "out");
    expect(await c1.hlen("act:activity:in")).toBe(0); // nothing written before a flush
    await b.flush();
    await a.flush(); // the older time from edge a must not win
    const all = await a.all();
    expect(all.get("+15125550100")).toEqual({ in: 2_000_000 });
    expect(all.get("+15125550101")).toEqual({ out: 2_000_000 });
    await a.close();
    await b.close();
    c1.disconnect();
    c2.disconnect();
  });

  it("keeps times in a file without Redis, across a restart", async () => {
    const file = join(dir, "activity.json");
    const a = new ActivityRecorder({ file, logger, now: () => 5000 });
    a.touch("+15125550100", "out");
    await a.close();
    const b = new ActivityRecorder({ file, logger });
    expect((await b.all()).get("+15125550100")).toEqual({ out: 5000 });
    await b.close();
  });

  it("a file of many numbers is written in slices, each turn of the event loop short, and read back whole", async () => {
    const file = join(dir, "activity-many.json");
    let t = 1000;
    const a = new ActivityRecorder({ file, logger, now: () => t++, flushMs: 60_000, maxPending: 1_000_000 });
    for (let i = 0; i < 30_000; i++) a.touch("+1512" + String(i).padStart(7, "0"), i % 3 === 0 ? "out" : "in");
    // turns of the event loop while it writes: more than one means it yielded between slices
    let turns = 0;
    const tick = setInterval(() => turns++, 0);
    await a.flush();
    clearInterval(tick);
    expect(turns).toBeGreaterThan(1);
    await a.close();
    const b = new ActivityRecorder({ file, logger });
    const all = await b.all();
    expect(all.size).toBe(30_000);
    expect(all.get("+15120000000")).toEqual({ out: 1000 });
    expect(all.get("+15120029999")).toEqual({ in: 30_999 });
    expect(all.get("+15120000001")).toEqual({ in: 1001 });
    await b.close();
  });
});

describe("numbers report", () => {
  const now = Date.parse("2026-12-04T00:00:00Z");
  const iso = (ms: number) => new Date(ms).toISOString();
  const entries: Record<string, unknown> = {
    "+15125550100": { tenant: "acme", voice: { targets: ["sip:a@h"] } },
    "+15125550101": { tenant: "acme", voice: { targets: ["sip:a@h"] } },
    "+15125550102": { tenant: "acme", released_at: iso(now - 10 * DAY) },
    "+15125550103": { tenant: "acme", released_at: iso(now - 100 * DAY) },
    "+15125550104": { tenant: "acme", released_at: iso(now - 85 * DAY) },
    "+1512555*": { voice: { targets: ["sip:block@h"] } },
  };
  const routes: [string, Route][] = Object.entries(entries).map(([k, v]) => {
    const r = parseRoute(k, v);
    if (!r.ok) throw new Error(r.errors.join());
    return [k, r.route];
  });
  it("lists states, quarantine ending soon, available numbers and inactive numbers", () => {
    const d = new Decider({ quarantineDays: 90 });
    const r = numbersReport({
      routes,
      activity: new Map([["+15125550100", { in: now - 2 * DAY }], ["+15125550101", { out: now - 45 * DAY }]]),
      now,
      stateOf: (rt, at) => d.stateOf(rt, at),
      quarantineDays: () => 90,
      inactiveDays: 30,
    });
    expect(r.by_state).toEqual({ active: 2, porting_out: 0, quarantine: 2, released: 1 });
    expect(r.available).toEqual([{ number: "+15125550103", tenant: "acme", since: iso(now - 10 * DAY) }]);
    expect(r.quarantine_ending.map((x) => [x.number, x.days_left])).toEqual([["+15125550104", 5]]);
    expect(r.inactive).toEqual([{ number: "+15125550101", tenant: "acme", last_activity: iso(now - 45 * DAY), idle_days: 45 }]);
    const text = renderNumbersReport(r);
    expect(text).toContain("available for recycling (1)");
    expect(text).toContain("+15125550101");
  });
});
