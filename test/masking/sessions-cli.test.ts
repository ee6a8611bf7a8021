/**
 * `didgate sessions list|show|create|delete` against a real redis-server, next to a running edge
 * with the same config: a session the command line creates routes on the edge at once, one the
 * API creates is listed and shown, and a deletion stops routing.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import type { Didgate } from "../../src/app.js";
import { main } from "../../src/cli/index.js";
import { startApp, tempDir, writeRoutes } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";

const ADMIN = "admin-token-0123456789abcdef";
const pools = [
  { name: "ride", tenant: "acme", numbers: ["+15125550200", "+15125550201"] },
  { name: "desk", tenant: "acme", numbers: ["+15125550300"] },
];

let redis: TestRedis;
let app: Didgate;
let cfgPath = "";

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(["sessions", ...argv, "--config", cfgPath], { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

beforeAll(async () => {
  redis = await startRedis();
  const dir = tempDir();
  writeRoutes(dir, {});
  const cfg = {
    routes: { file: "routes.yaml", redis: { url: redis.url, prefix: "cli:", snapshot: "" } },
    masking: { pools, max_ttl_s: 86_400 },
    state_dir: dir,
  };
  cfgPath = join(dir, "didgate.yaml");
  writeFileSync(cfgPath, YAML.stringify({ ...cfg, log: { level: "silent" } }));
  app = (await startApp({ ...cfg, api: { listen: "127.0.0.1:0", tokens: [{ token: ADMIN }] } }, dir)).app;
});

afterAll(async () => {
  await app?.stop(0);
  await redis?.stop();
});

describe("didgate sessions", () => {
  it("create: the running edge routes by the new session at once; show and list find it; delete stops routing", async () => {
    const c = await cli("create", "--pool", "ride", "+447700900001", "+447700900002", "--ttl-s", "600", "--json");
    expect(c.code, c.err).toBe(0);
    const s = JSON.parse(c.out) as { id: string; proxy: string; a: string; b: string; pool: string; tenant: string; expires_at: string };
    expect(s).toMatchObject({ a: "+447700900001", b: "+447700900002", pool: "ride", tenant: "acme" });
    expect(pools[0]!.numbers).toContain(s.proxy);
    expect(Date.parse(s.expires_at) - Date.now()).toBeGreaterThan(590_000);
    expect(await app.masking!.route(s.proxy, "+447700900001")).toEqual({ id: s.id, other: "+447700900002" });
    expect(await app.masking!.route(s.proxy, "+447700900002")).toEqual({ id: s.id, other: "+447700900001" });

    const show = await cli("show", s.id);
    expect(show.code).toBe(0);
    expect(show.out).toMatch(new RegExp(`^proxy\\s+\\${s.proxy}$`, "m"));
    expect(show.out).toMatch(/^a\s+\+447700900001$/m);

    const list = await cli("list", "--pool", "ride");
    expect(list.code).toBe(0);
    expect(list.out.split("\n")[0]).toMatch(/^id\s+pool\s+proxy\s+a\s+b\s+expires_at$/);
    expect(list.out).toContain(s.id);

    const del = await cli("delete", s.id);
    expect(del).toMatchObject({ code: 0, out: `deleted ${s.id}\n` });
    expect(await app.masking!.route(s.proxy, "+447700900001")).toBeNull();
    expect(await cli("show", s.id)).toMatchObject({ code: 1 });
    expect((await cli("delete", s.id)).err).toContain("no session");
  });

  it("a session created through the API is listed (JSON) by the command line", async () => {
    const res = await fetch(`http://127.0.0.1:${app.api!.address.port}/v1/sessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ a: "+447700900011", b: "+447700900012", pool: "desk", ttl_s: 120 }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const list = await cli("list", "--json");
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.out) as Array<{ id: string; pool: string; proxy: string }>;
    expect(rows.find((r) => r.id === id)).toMatchObject({ pool: "desk", proxy: "+15125550300" });
    // only that pool
    const desk = JSON.parse((await cli("list", "--pool", "desk", "--json")).out) as Array<{ pool: string }>;
    expect(desk.length).toBeGreaterThan(0);
    expect(desk.every((r) => r.pool === "desk")).toBe(true);
  });

  it("pool exhausted, an unknown pool, bad input and a ttl over masking.max_ttl_s", async () => {
    expect((await cli("create", "--pool", "desk", "+447700900021", "+447700900022")).code).toBe(0);
    const again = await cli("create", "--pool", "desk", "+447700900021", "+447700900023");
    expect(again.code).toBe(1);
    expect(again.err).toContain("exhausted");
    const unknown = await cli("create", "--pool", "nope", "+447700900031", "+447700900032");
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no masking pool "nope"');
    expect((await cli("create", "--pool", "ride", "07700900031", "+447700900032")).code).toBe(2);
    expect((await cli("create", "+447700900031", "+447700900032")).code).toBe(2);
    expect((await cli("show", "not-an-id")).code).toBe(2);
    expect((await cli("frobnicate")).code).toBe(2);
    const long = await cli("create", "--pool", "ride", "+447700900041", "+447700900042", "--ttl-s", "90000");
    expect(long.code).toBe(1);
    expect(long.err).toContain("masking.max_ttl_s");
  });

  it("the installed command runs (dist/src/cli.js sessions list)", () => {
    const r = spawnSync(process.execPath, ["dist/src/cli.js", "sessions", "list", "--pool", "ride", "--config", cfgPath], { encoding: "utf8", timeout: 60_000 });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^(no sessions|id\s+pool)/);
  });
});
