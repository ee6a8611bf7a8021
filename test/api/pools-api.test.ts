/**
 * Masking pools on the API listener, against a real redis-server and real HTTP, with two edges:
 * a pool created through the API on one edge carries sessions and is known to the other edge's
 * routing within seconds; tenant scoping and number blocks; config pools are read-only; a pool
 * with live sessions cannot be deleted; validation answers name the field.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";

const ADMIN = "admin-token-0123456789abcdef";
const ACME = "acme-token-0123456789abcdef";
const BETA = "beta-token-0123456789abcdef";
const tokens = [{ token: ADMIN }, { token: ACME, tenant: "acme", blocks: ["+1512555*"] }, { token: BETA, tenant: "beta", blocks: ["+1512555*"] }];
const pools = [{ name: "ride", tenant: "acme", numbers: ["+15125550200"] }];

let redis: TestRedis;
let a: Didgate;
let b: Didgate;

async function call(app: Didgate, method: string, path: string, token: string | null, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`http://127.0.0.1:${app.api!.address.port}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

beforeAll(async () => {
  redis = await startRedis();
  const dir = tempDir();
  writeRoutes(dir, {});
  const cfg = {
    routes: { file: "routes.yaml", redis: { url: redis.url, prefix: "pools:", snapshot: "" } },
    api: { listen: "127.0.0.1:0", tokens },
    masking: { pools, max_pools: 3 },
    state_dir: dir,
  };
  a = (await startApp(cfg, dir)).app;
  b = (await startApp(cfg, dir)).app;
});

afterAll(async () => {
  await a?.stop(0);
  await b?.stop(0);
  await redis?.stop();
});

describe("masking pools API", () => {
  it("changes made at once on two edges: one name, or one number, goes to one pool only (409 for the other)", async () => {
    for (let i = 0; i < 8; i++) {
      // two tenants, one pool name
      const name = `race${i}`;
      const [x, y] = await Promise.all([call(a, "PUT", `/v1/pools/${name}`, ACME, { numbers: [`+151255503${i}0`] }), call(b, "PUT", `/v1/pools/${name}`, BETA, { numbers: [`+151255503${i}1`] })]);
      expect([x.status, y.status].sort(), name).toEqual([200, 409]);
      const winner = x.status === 200 ? "acme" : "beta";
      expect((x.status === 200 ? y : x).json.error.code).toBe("name_taken");
      expect((await call(a, "GET", `/v1/pools/${name}`, ADMIN)).json.tenant, name).toBe(winner);
      expect((await call(b, "DELETE", `/v1/pools/${name}`, ADMIN)).status).toBe(204);
      // one tenant, two pools, one number
      const n = `+151255504${i}0`;
      const [p, q] = await Promise.all([call(a, "PUT", `/v1/pools/px${i}`, ACME, { numbers: [n] }), call(b, "PUT", `/v1/pools/py${i}`, ACME, { numbers: [n] })]);
      expect([p.status, q.status].sort(), n).toEqual([200, 409]);
      expect((p.status === 200 ? q : p).json.error.code).toBe("number_in_other_pool");
      expect((await call(a, "DELETE", `/v1/pools/${p.status === 200 ? "px" : "py"}${i}`, ADMIN)).status).toBe(204);
    }
  }, 30_000);

  it("a pool created on one edge carries sessions, and the other edge routes by it within seconds", async () => {
    const put = await call(a, "PUT", "/v1/pools/delivery", ACME, { numbers: ["+15125550210", "+15125550211"] });
    expect(put).toMatchObject({ status: 200, json: { name: "delivery", tenant: "acme", numbers: ["+15125550210", "+15125550211"], source: "api" } });
    expect(a.masking!.isPoolNumber("+15125550210")).toBe(true);
    await waitFor(() => b.masking!.isPoolNumber("+15125550211") || undefined, 10_000);
    const s = await call(a, "POST", "/v1/sessions", ACME, { a: "+447700900001", b: "+447700900002", pool: "delivery", ttl_s: 600 });
    expect(s.status).toBe(201);
    expect(["+15125550210", "+15125550211"]).toContain(s.json.proxy);
    expect(await b.masking!.route(s.json.proxy, "+447700900001")).toEqual({ id: s.json.id, other: "+447700900002" });
    const list = await call(b, "GET", "/v1/pools", ACME);
    expect(list.json.pools).toEqual([
      { name: "delivery", tenant: "acme", numbers: 2, source: "api" },
      { name: "ride", tenant: "acme", numbers: 1, source: "config" },
    ]);
    // live sessions: the pool stays
    expect(await call(a, "DELETE", "/v1/pools/delivery", ACME)).toMatchObject({ status: 409, json: { error: { code: "pool_in_use" } } });
    expect((await call(a, "DELETE", `/v1/sessions/${s.json.id}`, ACME)).status).toBe(204);
    expect((await call(a, "DELETE", "/v1/pools/delivery", ACME)).status).toBe(204);
    await waitFor(() => !b.masking!.isPoolNumber("+15125550211") || undefined, 10_000);
    expect((await call(b, "GET", "/v1/pools/delivery", ADMIN)).status).toBe(404);
  });

  it("tenant scoping: another tenant neither sees nor takes over a pool; numbers stay inside the token's blocks", async () => {
    expect((await call(a, "PUT", "/v1/pools/courier", ACME, { numbers: ["+15125550220"] })).status).toBe(200);
    expect((await call(a, "GET", "/v1/pools/courier", BETA)).status).toBe(404);
    expect((await call(a, "GET", "/v1/pools", BETA)).json.pools).toEqual([]);
    expect(await call(a, "PUT", "/v1/pools/courier", BETA, { numbers: ["+15125550299"] })).toMatchObject({ status: 409, json: { error: { code: "name_taken" } } });
    expect(await call(a, "PUT", "/v1/pools/x", ACME, { numbers: ["+442071234567"] })).toMatchObject({ status: 403, json: { error: { code: "outside_blocks" } } });
    expect(await call(a, "PUT", "/v1/pools/x", ACME, { tenant: "beta", numbers: ["+15125550230"] })).toMatchObject({ status: 403, json: { error: { code: "forbidden" } } });
    // a number serves one pool
    expect(await call(a, "PUT", "/v1/pools/x", ADMIN, { tenant: "beta", numbers: ["+15125550220"] })).toMatchObject({ status: 409, json: { error: { code: "number_in_other_pool" } } });
    expect((await call(a, "DELETE", "/v1/pools/courier", BETA)).status).toBe(404);
    expect((await call(a, "DELETE", "/v1/pools/courier", ACME)).status).toBe(204);
  });

  it("config pools are read-only; validation names the field; the pool count is bounded", async () => {
    expect(await call(a, "PUT", "/v1/pools/ride", ADMIN, { tenant: "acme", numbers: ["+15125550201"] })).toMatchObject({ status: 409, json: { error: { code: "pool_in_config" } } });
    expect(await call(a, "DELETE", "/v1/pools/ride", ADMIN)).toMatchObject({ status: 409, json: { error: { code: "pool_in_config" } } });
    expect(await call(a, "PUT", "/v1/pools/p1", ADMIN, { numbers: ["+15125550240"] })).toMatchObject({ status: 422, json: { error: { code: "missing_tenant" } } });
    const bad = await call(a, "PUT", "/v1/pools/p1", ADMIN, { tenant: "t", numbers: ["5125550240"] });
    expect(bad).toMatchObject({ status: 422, json: { error: { code: "invalid_number" } } });
    expect(bad.json.error.message).toContain("numbers");
    expect(await call(a, "PUT", "/v1/pools/bad%20name", ADMIN, { tenant: "t", numbers: ["+15125550240"] })).toMatchObject({ status: 422, json: { error: { code: "invalid_name" } } });
    expect((await call(a, "PUT", "/v1/pools/p1", ADMIN, { tenant: "t", numbers: ["+15125550241"] })).status).toBe(200);
    expect((await call(a, "PUT", "/v1/pools/p2", ADMIN, { tenant: "t", numbers: ["+15125550242"] })).status).toBe(200);
    expect(await call(a, "PUT", "/v1/pools/p3", ADMIN, { tenant: "t", numbers: ["+15125550243"] })).toMatchObject({ status: 409, json: { error: { code: "too_many_pools" } } });
    expect((await call(a, "PUT", "/v1/pools/p1", null, { tenant: "t", numbers: ["+15125550241"] })).status).toBe(401);
  });
});
