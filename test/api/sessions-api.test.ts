/**
 * Masking sessions on the API listener, against a real redis-server and real HTTP: create, read,
 * delete; tenant scoping; pool exhaustion (409); a session created on one edge is seen by another;
 * expiry to the second; and an edge without Redis keeps sessions in memory.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, writeRoutes } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";

const ADMIN = "admin-token-0123456789abcdef";
const ACME = "acme-token-0123456789abcdef";
const BETA = "beta-token-0123456789abcdef";
const tokens = [{ token: ADMIN }, { token: ACME, tenant: "acme" }, { token: BETA, tenant: "beta" }];
const pools = [
  { name: "ride", tenant: "acme", numbers: ["+15125550200", "+15125550201"] },
  { name: "beta-pool", tenant: "beta", numbers: ["+15125550300"] },
];

let redis: TestRedis;
let a: Didgate;
let b: Didgate;
let mem: Didgate;

function url(app: Didgate): string {
  return `http://127.0.0.1:${app.api!.address.port}`;
}

async function call(app: Didgate, method: string, path: string, token: string | null, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url(app) + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

beforeAll(async () => {
  redis = await startRedis();
  const dir = tempDir();
  writeRoutes(dir, {});
  const cfg = (api: boolean) => ({
    routes: { file: "routes.yaml", redis: { url: redis.url, prefix: "mask:", snapshot: "" } },
    api: api ? { listen: "127.0.0.1:0", tokens } : { listen: null },
    masking: { pools },
    state_dir: dir,
  });
  a = (await startApp(cfg(true), dir)).app;
  b = (await startApp(cfg(true), dir)).app;
  const dir2 = tempDir();
  writeRoutes(dir2, {});
  mem = (await startApp({ routes: { file: "routes.yaml", watch: false }, api: { listen: "127.0.0.1:0", tokens }, masking: { pools }, state_dir: dir2 }, dir2)).app;
});

afterAll(async () => {
  await a?.stop(0);
  await b?.stop(0);
  await mem?.stop(0);
  await redis?.stop();
});

describe("masking sessions API", () => {
  it("creates a session (201), reads it on another edge, deletes it (204)", async () => {
    const r = await call(a, "POST", "/v1/sessions", ACME, { a: "+447700900001", b: "+447700900002", ttl_s: 600, pool: "ride" });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ a: "+447700900001", b: "+447700900002", pool: "ride", tenant: "acme" });
    expect(["+15125550200", "+15125550201"]).toContain(r.json.proxy);
    expect(Date.parse(r.json.expires_at) - Date.now()).toBeGreaterThan(590_000);
    const g = await call(b, "GET", `/v1/sessions/${r.json.id}`, ADMIN);
    expect(g).toMatchObject({ status: 200, json: { id: r.json.id, proxy: r.json.proxy } });
    expect(await b.masking!.route(r.json.proxy, "+447700900002")).toEqual({ id: r.json.id, other: "+447700900001" });
    // another tenant neither sees nor ends it
    expect((await call(a, "GET", `/v1/sessions/${r.json.id}`, BETA)).status).toBe(404);
    expect((await call(a, "DELETE", `/v1/sessions/${r.json.id}`, BETA)).status).toBe(404);
    // a client that names the JSON type on every request, a DELETE without a body included
    const del = await fetch(url(a) + `/v1/sessions/${r.json.id}`, { method: "DELETE", headers: { authorization: `Bearer ${ACME}`, "content-type": "application/json" } });
    expect(del.status).toBe(204);
    expect((await call(b, "GET", `/v1/sessions/${r.json.id}`, ACME)).status).toBe(404);
  });

  it("answers 409 pool_exhausted when every number already has a session with a participant", async () => {
    const p = { a: "+447700900010", pool: "ride", ttl_s: 600 };
    const s1 = await call(a, "POST", "/v1/sessions", ACME, { ...p, b: "+447700900011" });
    const s2 = await call(b, "POST", "/v1/sessions", ACME, { ...p, b: "+447700900012" });
    expect([s1.status, s2.status]).toEqual([201, 201]);
    expect(s1.json.proxy).not.toBe(s2.json.proxy);
    const s3 = await call(a, "POST", "/v1/sessions", ACME, { ...p, b: "+447700900013" });
    expect(s3).toMatchObject({ status: 409, json: { error: { code: "pool_exhausted" } } });
    const text = await (await fetch(`http://${a.adminAddress!.address}:${a.adminAddress!.port}/metrics`)).text();
    expect(text).toMatch(/didgate_masking_allocations_total\{pool="ride",result="pool_exhausted"\} 1/);
    expect(text).toMatch(/didgate_masking_sessions\{pool="ride"\} 2/);
  });

  it("checks input, tenant and pool", async () => {
    expect((await call(a, "POST", "/v1/sessions", null, { a: "+1", b: "+2", pool: "ride" })).status).toBe(401);
    expect(await call(a, "POST", "/v1/sessions", BETA, { a: "+447700900020", b: "+447700900021", pool: "ride" })).toMatchObject({ status: 403, json: { error: { code: "forbidden" } } });
    expect(await call(a, "POST", "/v1/sessions", ACME, { a: "0044", b: "+447700900021", pool: "ride" })).toMatchObject({ status: 422, json: { error: { code: "invalid_number" } } });
    expect(await call(a, "POST", "/v1/sessions", ACME, { a: "+447700900020", b: "+447700900021", pool: "nope" })).toMatchObject({ status: 404, json: { error: { code: "unknown_pool" } } });
    expect(await call(a, "POST", "/v1/sessions", ADMIN, { a: "+447700900020", b: "+447700900021", pool: "ride", ttl_s: 10_000_000 })).toMatchObject({ status: 422 });
    expect((await call(a, "POST", "/v1/sessions", ADMIN, { a: "+447700900020", pool: "ride" })).status).toBe(400);
    // a POST with the JSON type and no body, and a body poisoning the prototype: 400
    const post = (body: string) => fetch(url(a) + "/v1/sessions", { method: "POST", headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" }, body });
    expect((await post("")).status).toBe(400);
    const poisoned = await post('{"a":"+447700900020","b":"+447700900021","pool":"ride","__proto__":{"x":1}}');
    expect(poisoned.status).toBe(400);
    expect(((await poisoned.json()) as { error: { code: string } }).error.code).toBe("bad_request");
    // a party that is a proxy number (of any pool): its messages would be relayed back into a session
    expect(await call(a, "POST", "/v1/sessions", ACME, { a: "+447700900020", b: "+15125550300", pool: "ride" })).toMatchObject({ status: 422, json: { error: { code: "party_is_proxy" } } });
    expect(await call(mem, "POST", "/v1/sessions", ACME, { a: "+15125550201", b: "+447700900021", pool: "ride" })).toMatchObject({ status: 422, json: { error: { code: "party_is_proxy" } } });
  });

  it("a session stops routing at its expiry", async () => {
    const r = await call(a, "POST", "/v1/sessions", ACME, { a: "+447700900030", b: "+447700900031", ttl_s: 1, pool: "ride" });
    expect(r.status).toBe(201);
    expect(await a.masking!.route(r.json.proxy, "+447700900030")).not.toBeNull();
    await new Promise((res) => setTimeout(res, 1100));
    expect(await b.masking!.route(r.json.proxy, "+447700900030")).toBeNull();
    expect((await call(b, "GET", `/v1/sessions/${r.json.id}`, ACME)).status).toBe(404);
  });

  it("works without Redis on one edge (sessions in memory)", async () => {
    const r = await call(mem, "POST", "/v1/sessions", ADMIN, { a: "+447700900040", b: "+447700900041", pool: "beta-pool" });
    expect(r).toMatchObject({ status: 201, json: { proxy: "+15125550300", tenant: "beta" } });
    expect(await mem.masking!.route("+15125550300", "+447700900041")).toMatchObject({ other: "+447700900040" });
  });
});
