import { describe, expect, it } from "vitest";
import { checkTimes, dueNow } from "../../src/edge/sms-schedule.js";

const NOW = Date.parse("2026-12-05T12:00:00.000Z");
const ctx = { baseMs: NOW, nowMs: NOW, canWait: true, deadlineMs: NOW + 86_400_000 };

describe("checkTimes", () => {
  it("no times: nothing to wait for, nothing expires", () => {
    expect(checkTimes(undefined, undefined, ctx)).toEqual({ ok: true, times: {} });
    expect(checkTimes("", "", ctx)).toEqual({ ok: true, times: {} });
  });

  it("a schedule in the future and a validity after it", () => {
    expect(checkTimes("000000010000000R", "000000020000000R", ctx)).toEqual({
      ok: true,
      times: { not_before: "2026-12-05T13:00:00.000Z", expires_at: "2026-12-05T14:00:00.000Z" },
    });
  });

  it("a schedule now or in the past means now", () => {
    expect(checkTimes("000000000000000R", undefined, ctx)).toEqual({ ok: true, times: {} });
    expect(checkTimes("200101000000000+", undefined, ctx)).toEqual({ ok: true, times: {} });
  });

  it("relative times count from when the PDU was received", () => {
    const r = checkTimes(undefined, "000000000010000R", { ...ctx, baseMs: NOW - 5_000 });
    expect(r).toEqual({ ok: true, times: { expires_at: "2026-12-05T12:00:05.000Z" } });
  });

  it("refusals: which status, and why", () => {
    const bad = (s: string | undefined, v: string | undefined, c = ctx) => {
      const r = checkTimes(s, v, c);
      return r.ok ? "ok" : r.outcome;
    };
    expect(bad("garbage", undefined)).toBe("invalid_schedule");
    expect(bad(undefined, "261305120000000+")).toBe("invalid_expiry");
    expect(bad(undefined, "261205120000000+")).toBe("invalid_expiry"); // exactly now: already past
    expect(bad("000000010000000R", "000000010000000R")).toBe("invalid_expiry"); // expires at its schedule
    expect(bad("000001000000000R", undefined)).toBe("invalid_schedule"); // at the deadline
    expect(bad("000000010000000R", undefined, { ...ctx, canWait: false })).toBe("invalid_schedule");
    expect(bad("000000000000000R", "000000010000000R", { ...ctx, canWait: false })).toBe("ok");
  });
});

describe("dueNow", () => {
  it("expired first, then wait for the schedule, else send", () => {
    const t = { not_before: "2026-12-05T12:00:10.000Z", expires_at: "2026-12-05T12:01:00.000Z" };
    expect(dueNow(t, NOW)).toEqual({ kind: "wait", ms: 10_000 });
    expect(dueNow(t, NOW + 10_000)).toEqual({ kind: "send" });
    expect(dueNow(t, NOW + 60_000)).toEqual({ kind: "expired" });
    expect(dueNow({}, NOW)).toEqual({ kind: "send" });
  });
});
