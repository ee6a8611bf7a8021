import { Writable } from "node:stream";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { OutageLog } from "../../src/util/outage-log.js";

function capture() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

describe("OutageLog", () => {
  it("logs the transition, reminders with a doubling interval, and the recovery", async () => {
    const { logger, lines } = capture();
    let now = 0;
    const o = new OutageLog(logger, { down: "down", still: "still", back: "back" }, { now: () => now, firstReminderMs: 30_000, maxReminderMs: 120_000 });
    // A loop failing every second for 10 minutes.
    for (now = 0; now < 600_000; now += 1000) o.failure("ECONNREFUSED");
    expect(o.isDown).toBe(true);
    expect(o.error).toBe("ECONNREFUSED");
    o.success();
    o.success();
    await new Promise((r) => setImmediate(r));
    const msgs = lines.map((l) => l.msg);
    expect(msgs[0]).toBe("down");
    expect(lines[0]!.level).toBe(40);
    // Reminders at 30 s, 90 s, 210 s, 330 s, 450 s, 570 s (interval 30, 60, 120, 120, ...).
    expect(msgs.filter((m) => m === "still")).toHaveLength(6);
    expect(msgs.at(-1)).toBe("back");
    expect(lines.at(-1)!.level).toBe(30);
    expect(lines.at(-1)!.failures).toBe(600);
    expect(lines).toHaveLength(8);
    expect(o.isDown).toBe(false);
  });
});
