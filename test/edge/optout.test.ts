import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { firstWord, MemoryOptOutStore, optKeyword, RedisOptOutStore, type OptOutStore } from "../../src/edge/optout.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";

let redis: TestRedis;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client.disconnect();
  await redis.stop();
});

describe("opt-out keywords", () => {
  it("recognises the standard words in any case, whole text only", () => {
    for (const w of ["STOP", "stop", " Stop. ", "STOPALL", "unsubscribe", "Cancel", "END", "quit!"]) expect(optKeyword(w)).toBe("stop");
    for (const w of ["START", "unstop", "Yes"]) expect(optKeyword(w)).toBe("start");
    for (const w of ["HELP", "info?"]) expect(optKeyword(w)).toBe("help");
    for (const w of ["please stop", "STOPPED", "", "stop it now", "x".repeat(100)]) expect(optKeyword(w)).toBeNull();
  });
  it("ignores a NUL terminator, control and zero-width characters around the word", () => {
    for (const w of ["STOP\u0000", "\u0000stop\u0000\u0000", "Stop\r\n", "\ufeffSTOP", "STOP\u200b", "stop!\u0000"]) expect(optKeyword(w)).toBe("stop");
    expect(optKeyword("START\u0000")).toBe("start");
    expect(optKeyword("S\u0000TOP")).toBeNull();
    expect(firstWord("join\u0000")).toBe("JOIN");
    expect(firstWord("\u200bjoin\u0000now")).toBe("JOIN");
  });
  it("takes the first word for route keywords", () => {
    expect(firstWord("  join the club")).toBe("JOIN");
    expect(firstWord("Info, please")).toBe("INFO");
    expect(firstWord("")).toBe("");
  });
});

for (const kind of ["redis", "memory"] as const) {
  describe(`opt-out store (${kind})`, () => {
    it("records, checks and removes an opt-out per number", async () => {
      const s: OptOutStore = kind === "redis" ? new RedisOptOutStore(client, "t:") : new MemoryOptOutStore();
      expect(await s.isOptedOut("+15125550100", "+447700900123")).toBe(false);
      expect(await s.optOut("+15125550100", "+447700900123")).toBe(true);
      expect(await s.optOut("+15125550100", "+447700900123")).toBe(false);
      expect(await s.isOptedOut("+15125550100", "+447700900123")).toBe(true);
      expect(await s.isOptedOut("+15125550101", "+447700900123")).toBe(false);
      await s.optIn("+15125550100", "+447700900123");
      expect(await s.isOptedOut("+15125550100", "+447700900123")).toBe(false);
    });
  });
}

describe("memory opt-out store bound", () => {
  it("never holds more than its cap", async () => {
    const s = new MemoryOptOutStore(10);
    for (let i = 0; i < 50; i++) await s.optOut("+1", "+2" + i);
    expect(await s.isOptedOut("+1", "+249")).toBe(true);
    expect(await s.isOptedOut("+1", "+20")).toBe(false);
  });
  it("at the cap, a repeated opt-out forgets no one", async () => {
    const s = new MemoryOptOutStore(2);
    await s.optOut("+1", "+21");
    expect(await s.optOut("+1", "+22")).toBe(true);
    expect(await s.optOut("+1", "+22")).toBe(false);
    expect([await s.isOptedOut("+1", "+21"), await s.isOptedOut("+1", "+22")]).toEqual([true, true]);
  });
});

describe("memory opt-out store order", () => {
  it("an opt-in then an opt-out again counts as the newest opt-out at the cap", async () => {
    const s = new MemoryOptOutStore(2);
    await s.optOut("+1", "+21");
    await s.optOut("+1", "+22");
    await s.optIn("+1", "+21");
    await s.optOut("+1", "+21");
    await s.optOut("+1", "+23"); // full: +22 is now the oldest
    expect([await s.isOptedOut("+1", "+21"), await s.isOptedOut("+1", "+22"), await s.isOptedOut("+1", "+23")]).toEqual([true, false, true]);
  });
});
