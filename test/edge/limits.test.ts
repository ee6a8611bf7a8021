import { describe, expect, it } from "vitest";
import { FloodGuard, TokenBucket } from "../../src/edge/limits.js";
import { TrunkTable } from "../../src/edge/trunks.js";
import { trunkSchema } from "../../src/config/schema.js";

describe("token bucket", () => {
  it("allows a burst of `burst`, then refills at `rate` per second, answering Retry-After seconds", () => {
    let t = 0;
    const b = new TokenBucket(2, 2, () => t);
    expect(b.take()).toBe(0);
    expect(b.take()).toBe(0);
    expect(b.take()).toBe(1);
    t += 500;
    expect(b.take()).toBe(0);
    expect(b.take()).toBe(1);
    t += 10_000;
    expect(b.take()).toBe(0);
    expect(b.take()).toBe(0);
    expect(b.take()).toBeGreaterThanOrEqual(1);
  });
  it("a slow rate gives a longer Retry-After", () => {
    let t = 0;
    const b = new TokenBucket(0.1, 1, () => t);
    expect(b.take()).toBe(0);
    expect(b.take()).toBe(10);
    t += 5000;
    expect(b.take()).toBe(5);
  });
});

describe("flood guard", () => {
  it("limits each source and keeps memory bounded", () => {
    let t = 0;
    const g = new FloodGuard(3, 100, () => t);
    expect([g.allow("a"), g.allow("a"), g.allow("a"), g.allow("a")]).toEqual([true, true, true, false]);
    expect(g.allow("b")).toBe(true);
    for (let i = 0; i < 10_000; i++) g.allow(`10.0.${i >> 8}.${i & 255}`);
    expect(g.size).toBeLessThanOrEqual(100);
    t += 1000;
    expect(g.allow("a")).toBe(true);
  });
});

describe("trunk table", () => {
  const cfg = (o: object) => trunkSchema.parse(o);
  it("exact IPs first, then the most specific CIDR", () => {
    const tt = new TrunkTable(
      [cfg({ name: "wide", sources: ["10.0.0.0/8"] }), cfg({ name: "narrow", sources: ["10.1.0.0/16"], did_from: "to", country_code: "44" }), cfg({ name: "host", sources: ["10.1.2.3"] })],
      () => 0,
    );
    expect(tt.match("10.1.2.3")?.name).toBe("host");
    expect(tt.match("10.1.2.4")?.name).toBe("narrow");
    expect(tt.match("10.1.2.4")?.plan).toEqual({ countryCode: "44" });
    expect(tt.match("10.1.2.4")?.didFrom).toBe("to");
    expect(tt.match("10.200.0.1")?.name).toBe("wide");
    expect(tt.match("192.0.2.1")).toBeUndefined();
  });
  it("keeps CPS buckets across a reload", () => {
    let t = 0;
    const a = new TrunkTable([cfg({ name: "x", sources: ["127.0.0.1"], cps: 1 })], () => t);
    expect(a.match("127.0.0.1")!.cps.take()).toBe(0);
    const b = new TrunkTable([cfg({ name: "x", sources: ["127.0.0.1"], cps: 1 })], () => t, a);
    expect(b.match("127.0.0.1")!.cps.take()).toBe(1);
  });
});
