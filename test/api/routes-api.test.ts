/**
 * The routes API against a real redis-server and real HTTP: two edges on one Redis (a write on
 * one is routed by the other), tenant scoping, versions, imports, listings, lookups, and the
 * listener's own answers (auth, rate limit, OpenAPI, errors).
 */
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { createLogger } from "../../src/ops/logger.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";

const ADMIN = "admin-token-0123456789abcdef";
const ACME = "acme-token-0123456789abcdef";
const BETA = "beta-token-0123456789abcdef";
const PREFIX = "apitest:";

let redis: TestRedis;
let a: Didgate;
let b: Didgate;
let base: string;

const tokens = [{ token: ADMIN }, { token: ACME, tenant: "acme", blocks: ["+1512555*"] }, { token: BETA, tenant: "beta" }];

async function call(method: string, path: string, opts: { token?: string | null; body?: unknown; raw?: string; type?: string; headers?: Record<string, string>; url?: string } = {}) {
  const headers: Record<string, string> = { ...opts.headers };
  const token = opts.token === undefined ? ADMIN : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) {
    body = opts.raw;
    headers["content-type"] = opts.type ?? "application/x-ndjson";
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers["content-type"] = "application/json";
  }
  const res = await fetch((opts.url ?? base) + path, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

function edgeConfig(dir: string, api: Record<string, unknown> | undefined) {
  return {
    routes: { file: "routes.yaml", redis: { url: redis.url, prefix: PREFIX, snapshot: "" } },
    ...(api ? { api } : {}),
    state_dir: dir,
  };
}

beforeAll(async () => {
  redis = await startRedis();
  const dir = tempDir();
  writeRoutes(dir, {});
  a = (await startApp(edgeConfig(dir, { listen: "127.0.0.1:0", tokens }), dir)).app;
  b = (await startApp(edgeConfig(dir, undefined), dir)).app;
  base = `http://127.0.0.1:${a.api!.address.port}`;
});

afterAll(async () => {
  await a?.stop(0);
  await b?.stop(0);
  await redis?.stop();
});

describe("authentication and the listener", () => {
  it("refuses a request without a token (401) and with a wrong one (401)", async () => {
    const none = await call("GET", "/v1/routes/%2B15125550100", { token: null });
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe("unauthorized");
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    const wrong = await call("GET", "/v1/routes/%2B15125550100", { token: "not-a-configured-token-at-all" });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("www-authenticate")).toContain("invalid_token");
    const unknownPath = await call("GET", "/v1/nothing", { token: null });
    expect(unknownPath.status).toBe(401);
  });

  it("answers unknown endpoints and bad query strings with the JSON error shape", async () => {
    const nf = await call("GET", "/v1/nothing");
    expect(nf.status).toBe(404);
    expect(nf.json.error.code).toBe("not_found");
    const bad = await call("GET", "/v1/routes?limit=abc");
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe("bad_request");
    const badJson = await call("PUT", "/v1/routes/%2B15125550999", { raw: "{not json", type: "application/json" });
    expect(badJson.status).toBe(400);
    expect(badJson.json.error).toHaveProperty("message");
  });

  it("publishes the OpenAPI document with the routes paths", async () => {
    const r = await call("GET", "/v1/openapi.json");
    expect(r.status).toBe(200);
    expect(r.json.openapi).toMatch(/^3\./);
    for (const p of ["/v1/routes/{key}", "/v1/routes", "/v1/routes/import", "/v1/lookup"]) expect(Object.keys(r.json.paths)).toContain(p);
    expect(Object.keys(r.json.paths["/v1/routes/{key}"])).toEqual(expect.arrayContaining(["get", "put", "delete"]));
  });
});

describe("GET/PUT/DELETE /v1/routes/{key}", () => {
  it("creates a route that the other edge routes by, with an ETag and an audit record", async () => {
    const put = await call("PUT", "/v1/routes/%2B15125550100", { body: { voice: { targets: ["sip:a@127.0.0.1:5070"] } } });
    expect(put.status).toBe(201);
    expect(put.json.result).toBe("created");
    const etag = put.headers.get("etag");
    expect(etag).toMatch(/^"[0-9a-f]{40}"$/);
    const get = await call("GET", "/v1/routes/%2B15125550100");
    expect(get.status).toBe(200);
    expect(get.headers.get("etag")).toBe(etag);
    expect(get.json.route).toEqual({ voice: { targets: ["sip:a@127.0.0.1:5070"] } });
    await waitFor(() => b.store.current.get("+15125550100")?.voice?.targets[0]?.uri === "sip:a@127.0.0.1:5070");
    expect(b.lookup("+15125550100", undefined).ok).toBe(true);
    const audit = await redis.cli("XREVRANGE", `${PREFIX}audit`, "+", "-", "COUNT", "1");
    expect(audit).toContain("+15125550100");
    expect(audit).toContain("admin");
    expect(audit).not.toContain(ADMIN);
  });

  it("updates with the right If-Match (200) and refuses a stale one (412)", async () => {
    const first = await call("PUT", "/v1/routes/%2B15125550101", { body: { voice: { targets: ["sip:one@127.0.0.1"] } } });
    const v1 = first.headers.get("etag")!;
    const second = await call("PUT", "/v1/routes/%2B15125550101", { body: { voice: { targets: ["sip:two@127.0.0.1"] } }, headers: { "if-match": v1 } });
    expect(second.status).toBe(200);
    expect(second.json.result).toBe("updated");
    const stale = await call("PUT", "/v1/routes/%2B15125550101", { body: { voice: { targets: ["sip:three@127.0.0.1"] } }, headers: { "if-match": v1 } });
    expect(stale.status).toBe(412);
    expect(stale.json.error.code).toBe("precondition_failed");
    const createOnly = await call("PUT", "/v1/routes/%2B15125550101", { body: { voice: { targets: ["sip:x@127.0.0.1"] } }, headers: { "if-none-match": "*" } });
    expect(createOnly.status).toBe(412);
    const delStale = await call("DELETE", "/v1/routes/%2B15125550101", { headers: { "if-match": v1 } });
    expect(delStale.status).toBe(412);
    expect((await call("GET", "/v1/routes/%2B15125550101")).json.route.voice.targets).toEqual(["sip:two@127.0.0.1"]);
  });

  it("lets exactly one of two concurrent writes with the same If-Match through", async () => {
    const v = (await call("PUT", "/v1/routes/%2B15125550104", { body: { voice: { targets: ["sip:base@127.0.0.1"] } } })).headers.get("etag")!;
    const results = await Promise.all(
      ["x", "y", "z", "w"].map((n) => call("PUT", "/v1/routes/%2B15125550104", { body: { voice: { targets: [`sip:${n}@127.0.0.1`] } }, headers: { "if-match": v } })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 412, 412, 412]);
    const winner = results.find((r) => r.status === 200)!;
    expect((await call("GET", "/v1/routes/%2B15125550104")).headers.get("etag")).toBe(winner.headers.get("etag"));
  });

  it("refuses bad keys (400) and bad entries (422 naming the field)", async () => {
    for (const k of ["15125550100", "%2B1512abc", "%2B1234567890123456", "%2B"]) {
      const r = await call("PUT", `/v1/routes/${k}`, { body: { voice: { targets: ["sip:a@127.0.0.1"] } } });
      expect(r.status, k).toBe(400);
      expect(r.json.error.code).toBe("invalid_key");
    }
    const badTarget = await call("PUT", "/v1/routes/%2B15125550102", { body: { voice: { targets: ["http://not-sip"] } } });
    expect(badTarget.status).toBe(422);
    expect(badTarget.json.error.code).toBe("invalid_route");
    expect(badTarget.json.error.message).toContain("voice.targets[0]");
    const badState = await call("PUT", "/v1/routes/%2B15125550102", { body: { state: "gone", foo: 1, voice: { targets: ["sip:a@h"] } } });
    expect(badState.status).toBe(422);
    expect(badState.json.error.errors.join("\n")).toMatch(/state[\s\S]*foo/);
    const notObject = await call("PUT", "/v1/routes/%2B15125550102", { body: ["x"] });
    expect([400, 422]).toContain(notObject.status);
    expect((await call("GET", "/v1/routes/%2B15125550102")).status).toBe(404);
  });

  it("takes prefix and default keys URL-encoded", async () => {
    const p = await call("PUT", "/v1/routes/%2B1999%2A", { body: { voice: { targets: ["sip:prefix@127.0.0.1"] } } });
    expect(p.status).toBe(201);
    const d = await call("PUT", "/v1/routes/%2A", { body: { voice: { targets: ["sip:default@127.0.0.1"] } } });
    expect(d.status).toBe(201);
    expect((await call("GET", "/v1/routes/%2B1999%2A")).json.key).toBe("+1999*");
    await waitFor(() => b.store.current.get("*") !== undefined && b.store.current.get("+1999*") !== undefined);
    const look = await call("GET", "/v1/lookup?number=%2B19990001111");
    expect(look.status).toBe(200);
    expect(look.json.key).toBe("+1999*");
    expect(look.json.targets[0].uri).toBe("sip:prefix@127.0.0.1");
    expect((await call("DELETE", "/v1/routes/%2A")).status).toBe(200);
  });

  it("deletes a route everywhere (200, then 404)", async () => {
    await call("PUT", "/v1/routes/%2B15125550103", { body: { voice: { targets: ["sip:d@127.0.0.1"] } } });
    await waitFor(() => b.store.current.get("+15125550103") !== undefined);
    const del = await call("DELETE", "/v1/routes/%2B15125550103");
    expect(del.status).toBe(200);
    expect(del.json.result).toBe("deleted");
    await waitFor(() => b.store.current.get("+15125550103") === undefined);
    expect((await call("DELETE", "/v1/routes/%2B15125550103")).status).toBe(404);
    expect((await call("GET", "/v1/routes/%2B15125550103")).status).toBe(404);
  });
});

describe("tenant tokens", () => {
  it("create inside their blocks only, fill in their tenant, and never touch another tenant's entries", async () => {
    const own = await call("PUT", "/v1/routes/%2B15125550200", { token: ACME, body: { voice: { targets: ["sip:acme@127.0.0.1"] } } });
    expect(own.status).toBe(201);
    expect(own.json.route.tenant).toBe("acme");
    const forced = await call("PUT", "/v1/routes/%2B15125550201", { token: ACME, body: { tenant: "beta", voice: { targets: ["sip:x@127.0.0.1"] } } });
    expect(forced.status).toBe(403);
    const outside = await call("PUT", "/v1/routes/%2B14155550100", { token: ACME, body: { voice: { targets: ["sip:x@127.0.0.1"] } } });
    expect(outside.status).toBe(403);
    expect(outside.json.error.code).toBe("outside_blocks");
    const noBlocks = await call("PUT", "/v1/routes/%2B15125550202", { token: BETA, body: { voice: { targets: ["sip:x@127.0.0.1"] } } });
    expect(noBlocks.status).toBe(403);
    // An entry of beta inside acme's block: acme can neither see, change nor delete it.
    await call("PUT", "/v1/routes/%2B15125550203", { body: { tenant: "beta", voice: { targets: ["sip:beta@127.0.0.1"] } } });
    expect((await call("GET", "/v1/routes/%2B15125550203", { token: ACME })).status).toBe(404);
    expect((await call("GET", "/v1/routes/%2B15125550203", { token: BETA })).status).toBe(200);
    const take = await call("PUT", "/v1/routes/%2B15125550203", { token: ACME, body: { voice: { targets: ["sip:acme@127.0.0.1"] } } });
    expect(take.status).toBe(403);
    const probe = await call("PUT", "/v1/routes/%2B15125550203", { token: ACME, body: { voice: { targets: ["sip:acme@127.0.0.1"] } }, headers: { "if-match": `"${"0".repeat(40)}"` } });
    expect(probe.status).toBe(403);
    expect(JSON.stringify(probe.json)).not.toMatch(/[0-9a-f]{40}/);
    expect((await call("DELETE", "/v1/routes/%2B15125550203", { token: ACME })).status).toBe(404);
    expect((await call("GET", "/v1/routes/%2B15125550100", { token: ACME })).status).toBe(404); // admin's, no tenant
    // Blocks kept in Redis count too, at once.
    expect((await call("PUT", "/v1/routes/%2B18885550000", { token: BETA, body: { voice: { targets: ["sip:b@127.0.0.1"] } } })).status).toBe(403);
    await redis.cli("HSET", `${PREFIX}blocks`, "beta", JSON.stringify(["+1888555*", "+19995550001"]));
    expect((await call("PUT", "/v1/routes/%2B18885550000", { token: BETA, body: { voice: { targets: ["sip:b@127.0.0.1"] } } })).status).toBe(201);
    expect((await call("PUT", "/v1/routes/%2B19995550001", { token: BETA, body: { voice: { targets: ["sip:b@127.0.0.1"] } } })).status).toBe(201);
    expect((await call("PUT", "/v1/routes/%2B19995550002", { token: BETA, body: { voice: { targets: ["sip:b@127.0.0.1"] } } })).status).toBe(403);
    expect((await call("PUT", "/v1/routes/%2B1888%2A", { token: BETA, body: { voice: { targets: ["sip:b@127.0.0.1"] } } })).status).toBe(403);
    const imp = await call("POST", "/v1/routes/import", { token: BETA, raw: ['{"key":"+18885550001","route":{"voice":{"targets":["sip:b@h"]}}}', '{"key":"+18875550001","route":{"voice":{"targets":["sip:b@h"]}}}'].join("\n") });
    expect(imp.json).toMatchObject({ created: 1, failed: 1 });
    expect(imp.json.errors[0].line).toBe(2);
    await redis.cli("HDEL", `${PREFIX}blocks`, "beta");
    // beta may change its own entry even without blocks.
    expect((await call("PUT", "/v1/routes/%2B15125550203", { token: BETA, body: { voice: { targets: ["sip:beta2@127.0.0.1"] } } })).status).toBe(200);
    // lookup: the decision of another tenant's number is refused.
    await waitFor(() => a.store.current.get("+15125550203")?.tenant === "beta");
    expect((await call("GET", "/v1/lookup?number=%2B15125550203", { token: ACME })).status).toBe(403);
    expect((await call("GET", "/v1/lookup?number=%2B15125550203", { token: BETA })).status).toBe(200);
    const audit = await redis.cli("XRANGE", `${PREFIX}audit`, "-", "+");
    expect(audit).toContain("acme");
    expect(audit).not.toContain(ACME);
  });
});

describe("listing and import", () => {
  it("imports 10k NDJSON entries in one request, reports bad lines, and the other edge has them", async () => {
    const lines: string[] = [];
    for (let i = 0; i < 10_000; i++) lines.push(JSON.stringify({ key: `+1777${String(i).padStart(7, "0")}`, route: { tenant: i % 2 ? "acme" : "beta", voice: { targets: [`sip:n${i}@127.0.0.1`] } } }));
    lines.splice(10, 0, "{not json");
    lines.splice(20, 0, JSON.stringify({ key: "+1777bad", route: { voice: { targets: ["sip:x@h"] } } }));
    lines.splice(30, 0, JSON.stringify({ key: "+17779999999", route: { voice: { targets: ["ftp://x"] } } }));
    const r = await call("POST", "/v1/routes/import", { raw: lines.join("\n") + "\n" });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ lines: 10_003, created: 10_000, updated: 0, failed: 3 });
    expect(r.json.errors.map((e: { line: number }) => e.line)).toEqual([11, 21, 31]);
    expect(r.json.errors[2].message).toContain("voice.targets[0]");
    await waitFor(() => b.store.current.get("+17770009999") !== undefined, 15_000);
    // Again: nothing changes.
    const again = await call("POST", "/v1/routes/import", { raw: lines.join("\n") });
    expect(again.json).toMatchObject({ created: 0, updated: 0, unchanged: 10_000, failed: 3 });
  });

  it("pages a prefix in key order with a stable cursor, and a tenant sees only its own", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: any = await call("GET", `/v1/routes?prefix=%2B17770001&limit=30${cursor ? `&cursor=${cursor}` : ""}`);
      expect(r.status).toBe(200);
      seen.push(...r.json.items.map((i: { key: string }) => i.key));
      cursor = r.json.next_cursor;
      pages++;
      // A write during paging does not disturb the pages.
      if (pages === 2) await call("PUT", "/v1/routes/%2B17770001000", { body: { voice: { targets: ["sip:late@127.0.0.1"] } } });
    } while (cursor);
    expect(seen.length).toBe(1000);
    expect(new Set(seen).size).toBe(1000);
    expect([...seen].sort()).toEqual(seen);
    expect(pages).toBeGreaterThanOrEqual(34);
    const plus = await call("GET", "/v1/routes?prefix=+17770001&limit=5");
    expect(plus.json.items[0].key).toBe("+17770001000");
    const acme = await call("GET", "/v1/routes?prefix=%2B1777000&limit=1000", { token: ACME });
    expect(acme.json.items.length).toBeGreaterThan(0);
    expect(acme.json.items.every((i: { route: { tenant: string } }) => i.route.tenant === "acme")).toBe(true);
    expect((await call("GET", "/v1/routes?cursor=!!!")).status).toBe(400);
    expect((await call("GET", "/v1/routes?prefix=abc")).status).toBe(400);
  });

  it("imports CSV with the file loader's columns, and a tenant's import is scoped", async () => {
    const csv = ['key,tenant,targets,failover_on,webhook', '+15125550300,acme,sip:c1@127.0.0.1|sip:c2@127.0.0.1,486 503,', '+15125550301,,"sip:c3@127.0.0.1",,https://example.com/hook', "+14155550000,,sip:out@127.0.0.1,,", "+15125550302,beta,sip:x@127.0.0.1,,", "+15125550203,,sip:steal@127.0.0.1,,"].join("\r\n");
    const r = await call("POST", "/v1/routes/import", { raw: csv, type: "text/csv", token: ACME });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ lines: 5, created: 2, failed: 3 });
    expect(r.json.errors.map((e: { line: number }) => e.line)).toEqual([4, 5, 6]);
    expect(r.json.errors[2].message).toContain("another tenant");
    expect((await call("GET", "/v1/routes/%2B15125550203")).json.route.tenant).toBe("beta");
    const got = await call("GET", "/v1/routes/%2B15125550300", { token: ACME });
    expect(got.json.route).toEqual({ tenant: "acme", voice: { targets: ["sip:c1@127.0.0.1", "sip:c2@127.0.0.1"], failover_on: [486, 503] } });
    const badHeader = await call("POST", "/v1/routes/import", { raw: "number,targets\n+1,sip:x@h", type: "text/csv" });
    expect(badHeader.status).toBe(400);
    const wrongType = await call("POST", "/v1/routes/import", { raw: "x", type: "application/xml" });
    expect(wrongType.status).toBe(415);
  });

  it("takes the last line of a key given twice in one import", async () => {
    const body = [
      JSON.stringify({ key: "+15125550310", route: { voice: { targets: ["sip:first@127.0.0.1"] } } }),
      JSON.stringify({ key: "+15125550310", route: { voice: { targets: ["sip:last@127.0.0.1"] } } }),
    ].join("\r\n");
    const r = await call("POST", "/v1/routes/import", { raw: body });
    expect(r.json).toMatchObject({ lines: 2, created: 1, updated: 1, failed: 0 });
    expect((await call("GET", "/v1/routes/%2B15125550310")).json.route.voice.targets).toEqual(["sip:last@127.0.0.1"]);
    await waitFor(() => b.store.current.get("+15125550310")?.voice?.targets[0]?.uri === "sip:last@127.0.0.1");
  });

  it("answers lookups like the admin endpoint and refuses bad numbers", async () => {
    await waitFor(() => a.store.current.get("+15125550100") !== undefined);
    const r = await call("GET", "/v1/lookup?number=%2B15125550100&at=2026-01-05T15:00:00Z");
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ outcome: "routed", key: "+15125550100", at: "2026-01-05T15:00:00.000Z" });
    expect(r.json).toEqual(a.lookup("+15125550100", undefined, Date.parse("2026-01-05T15:00:00Z")).ok ? (a.lookup("+15125550100", undefined, Date.parse("2026-01-05T15:00:00Z")) as any).json : null);
    expect((await call("GET", "/v1/lookup?number=abc")).status).toBe(400);
    expect((await call("GET", "/v1/lookup")).status).toBe(400);
    expect((await call("GET", "/v1/lookup?number=%2B15125550100&at=yesterday")).status).toBe(400);
  });
});

describe("without Redis, off, and rate limited", () => {
  it("reads from the file table and answers 503 for writes, saying why", async () => {
    const dir = tempDir();
    writeRoutes(dir, { "+15125550100": { tenant: "acme", voice: { targets: ["sip:file@127.0.0.1"] } } });
    const { app } = await startApp({ routes: { file: "routes.yaml" }, api: { listen: "127.0.0.1:0", tokens } }, dir);
    try {
      const url = `http://127.0.0.1:${app.api!.address.port}`;
      const get = await call("GET", "/v1/routes/%2B15125550100", { url, token: ACME });
      expect(get.status).toBe(200);
      expect(get.json.route.voice.targets).toEqual(["sip:file@127.0.0.1"]);
      const put = await call("PUT", "/v1/routes/%2B15125550100", { url, body: { voice: { targets: ["sip:x@h"] } } });
      expect(put.status).toBe(503);
      expect(put.json.error.code).toBe("read_only");
      expect(put.json.error.message).toContain("routes.redis");
      expect((await call("GET", "/v1/routes", { url })).json.items.length).toBe(1);
    } finally {
      await app.stop(0);
    }
  });

  it("answers writes with 503 while Redis is down and reads from the edge's table", async () => {
    const r2 = await startRedis();
    const dir = tempDir();
    writeRoutes(dir, {});
    const { app } = await startApp({ routes: { file: "routes.yaml", redis: { url: r2.url, prefix: "down:", snapshot: "" } }, state_dir: dir, api: { listen: "127.0.0.1:0", tokens } }, dir);
    try {
      const url = `http://127.0.0.1:${app.api!.address.port}`;
      expect((await call("PUT", "/v1/routes/%2B15125550500", { url, body: { voice: { targets: ["sip:up@127.0.0.1"] } } })).status).toBe(201);
      await waitFor(() => app.store.current.get("+15125550500") !== undefined);
      await r2.kill();
      const put = await call("PUT", "/v1/routes/%2B15125550500", { url, body: { voice: { targets: ["sip:down@127.0.0.1"] } } });
      expect(put.status).toBe(503);
      expect(put.json.error.code).toBe("redis_unavailable");
      expect(put.headers.get("retry-after")).toBe("1");
      const get = await call("GET", "/v1/routes/%2B15125550500", { url });
      expect(get.status).toBe(200);
      expect(get.json.route.voice.targets).toEqual(["sip:up@127.0.0.1"]);
      expect(get.headers.get("warning")).toContain("Redis unreachable");
    } finally {
      await app.stop(0);
      await r2.stop();
    }
  });

  it("is off unless api.listen is set", async () => {
    const dir = tempDir();
    writeRoutes(dir, {});
    const { app } = await startApp({ routes: { file: "routes.yaml" }, api: { tokens } }, dir);
    try {
      expect(app.api).toBeUndefined();
    } finally {
      await app.stop(0);
    }
  });

  it("limits each token's request rate (429 with Retry-After)", async () => {
    const dir = tempDir();
    writeRoutes(dir, {});
    const { app } = await startApp({ routes: { file: "routes.yaml" }, api: { listen: "127.0.0.1:0", tokens, rate_limit: { per_s: 0.5, burst: 3 } } }, dir);
    try {
      const url = `http://127.0.0.1:${app.api!.address.port}`;
      const statuses: number[] = [];
      let retry: string | null = null;
      for (let i = 0; i < 5; i++) {
        const r = await call("GET", "/v1/routes", { url });
        statuses.push(r.status);
        if (r.status === 429) retry = r.headers.get("retry-after");
      }
      expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
      expect(statuses[4]).toBe(429);
      expect(Number(retry)).toBeGreaterThanOrEqual(1);
      // Another token has its own bucket.
      expect((await call("GET", "/v1/routes", { url, token: ACME })).status).toBe(200);
    } finally {
      await app.stop(0);
    }
  });

  it("never logs a token, good or bad, and refuses an oversized import record (413)", async () => {
    const dir = tempDir();
    writeRoutes(dir, {});
    const chunks: string[] = [];
    const dest = new Writable({
      write(chunk, _enc, cb) {
        chunks.push(String(chunk));
        cb();
      },
    });
    const { app } = await startApp({ routes: { file: "routes.yaml", redis: { url: redis.url, prefix: "apilog:", snapshot: "" } }, state_dir: dir, api: { listen: "127.0.0.1:0", tokens } }, dir, { logger: createLogger("debug", dest) });
    try {
      const url = `http://127.0.0.1:${app.api!.address.port}`;
      const wrong = "wrong-token-that-must-not-be-logged";
      expect((await call("GET", "/v1/routes", { url, token: wrong })).status).toBe(401);
      expect((await call("PUT", "/v1/routes/%2B15125550400", { url, token: ACME, body: { voice: { targets: ["sip:l@127.0.0.1"] } } })).status).toBe(201);
      const big = await call("POST", "/v1/routes/import", { url, raw: JSON.stringify({ key: "+15125550401", route: { voice: { targets: ["sip:" + "a".repeat(1_100_000)] } } }) });
      expect(big.status).toBe(413);
      await new Promise((r) => setTimeout(r, 100));
      const log = chunks.join("");
      expect(log).toContain("route changed through the API");
      expect(log).toContain("API request refused");
      for (const t of [ADMIN, ACME, BETA, wrong]) expect(log).not.toContain(t);
    } finally {
      await app.stop(0);
    }
  });

  it("serves HTTPS with api.tls", async () => {
    const dir = tempDir();
    writeRoutes(dir, {});
    const { execFileSync } = await import("node:child_process");
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "1", "-subj", "/CN=127.0.0.1"], { stdio: "ignore" });
    const { app } = await startApp({ routes: { file: "routes.yaml" }, api: { listen: "127.0.0.1:0", tokens, tls: { cert: "c.pem", key: "k.pem" } } }, dir);
    try {
      const { request } = await import("node:https");
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port: app.api!.address.port, path: "/v1/routes", headers: { authorization: `Bearer ${ADMIN}` }, rejectUnauthorized: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
      expect(status).toBe(200);
    } finally {
      await app.stop(0);
    }
  });
});
