import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemorySessionStore, RedisSessionStore, type SessionStore } from "../../src/masking/sessions.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";

let redis: TestRedis;
const clients: Redis[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await redis.stop();
});

let n = 0;
function make(kind: "redis" | "memory", now: () => number): { store: SessionStore; other?: SessionStore } {
  if (kind === "memory") return { store: new MemorySessionStore(now, () => 0) };
  const prefix = `t${++n}:`;
  const c1 = new Redis(redis.url);
  const c2 = new Redis(redis.url);
  clients.push(c1, c2);
  return { store: new RedisSessionStore(c1, prefix, now, () => 0), other: new RedisSessionStore(c2, prefix, now, () => 0) };
}

const A = "+15125550001";
const B = "+15125550002";
const C = "+15125550003";
const D = "+15125550004";
const P1 = "+15125550200";
const P2 = "+15125550201";
const P3 = "+15125550202";

for (const kind of ["redis", "memory"] as const) {
  describe(`masking sessions (${kind})`, () => {
    it("a session routes a to b and b to a through its proxy; nobody else", async () => {
      let now = Date.now();
      const { store, other } = make(kind, () => now);
      await store.setPool("ride", "acme", [P1]);
      const r = await store.create("ride", A, B, 60_000);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.session).toMatchObject({ a: A, b: B, proxy: P1, pool: "ride", tenant: "acme" });
      expect(r.session.id).toMatch(/^ses_/);
      expect(await store.route(P1, A)).toEqual({ id: r.session.id, other: B });
      expect(await store.route(P1, B)).toEqual({ id: r.session.id, other: A });
      expect(await store.route(P1, C)).toBeNull();
      expect(store.isPoolNumber(P1)).toBe(true);
      expect(store.isPoolNumber(P2)).toBe(false);
      if (other) {
        // another edge sees the session at once (it learns the pool from Redis)
        await (other as RedisSessionStore).loadPool("ride");
        expect(await other.route(P1, A)).toEqual({ id: r.session.id, other: B });
        expect(await other.get(r.session.id)).toMatchObject({ a: A, b: B, tenant: "acme" });
      }
      expect((await store.activeByPool()).get("ride")).toBe(1);
      expect(await store.delete(r.session.id)).toBe(true);
      expect(await store.route(P1, A)).toBeNull();
      expect(await store.get(r.session.id)).toBeNull();
      expect(await store.delete(r.session.id)).toBe(false);
      void now;
    });

    it("shares a proxy number between sessions with different participants, never one participant twice", async () => {
      const { store } = make(kind, Date.now);
      await store.setPool("ride", "acme", [P1, P2]);
      const s1 = await store.create("ride", A, B, 60_000);
      const s2 = await store.create("ride", C, D, 60_000);
      const s3 = await store.create("ride", A, C, 60_000);
      expect(s1.ok && s2.ok && s3.ok).toBe(true);
      if (!s1.ok || !s2.ok || !s3.ok) return;
      // A is in s1 and s3: they must use different proxies
      expect(s3.session.proxy).not.toBe(s1.session.proxy);
      // C is in s2 and s3: different proxies too
      expect(s3.session.proxy).not.toBe(s2.session.proxy);
      expect(s1.session.proxy).toBe(s2.session.proxy);
      expect(await store.route(s1.session.proxy, A)).toMatchObject({ other: B });
      expect(await store.route(s3.session.proxy, A)).toMatchObject({ other: C });
      expect(await store.route(s3.session.proxy, C)).toMatchObject({ other: A });
      // A already holds both proxies: a fourth session with A cannot be placed
      expect(await store.create("ride", A, D, 60_000)).toEqual({ ok: false, code: "pool_exhausted" });
      expect(await store.create("nope", A, D, 60_000)).toEqual({ ok: false, code: "unknown_pool" });
      expect(await store.create("ride", A, A, 60_000)).toEqual({ ok: false, code: "same_party" });
      // a party that is a proxy number (of this pool or another) would relay back into a session
      await store.setPool("taxi", "acme", [P3]);
      expect(await store.create("ride", A, P3, 60_000)).toEqual({ ok: false, code: "party_is_proxy" });
      expect(await store.create("ride", P1, B, 60_000)).toEqual({ ok: false, code: "party_is_proxy" });
    });

    it("an expired session stops routing at its expiry", async () => {
      let now = Date.now();
      const { store } = make(kind, () => now);
      await store.setPool("ride", "acme", [P1]);
      const r = await store.create("ride", A, B, kind === "redis" ? 300 : 1000);
      expect(r.ok).toBe(true);
      if (kind === "redis") {
        await new Promise((res) => setTimeout(res, 400));
        now = Date.now();
      } else now += 1001;
      expect(await store.route(P1, A)).toBeNull();
      // the slot is free again
      expect((await store.create("ride", A, B, 60_000)).ok).toBe(true);
    });
  });
}

describe("masking allocation across edges", () => {
  it("concurrent creates for one participant on two edges never put it twice on one proxy", async () => {
    const { store, other } = make("redis", Date.now);
    const pool = ["+15125550210", "+15125550211", "+15125550212", "+15125550213", "+15125550214"];
    await store.setPool("p", "acme", pool);
    await (other as RedisSessionStore).loadPool("p");
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? store : other!).create("p", A, "+1512555090" + String(i).padStart(2, "0"), 60_000)));
    const ok = results.filter((r) => r.ok);
    expect(ok).toHaveLength(5);
    expect(new Set(ok.map((r) => (r.ok ? r.session.proxy : ""))).size).toBe(5);
    expect(results.filter((r) => !r.ok).every((r) => !r.ok && r.code === "pool_exhausted")).toBe(true);
  });
});
