/**
 * Registrar users kept in Redis and changed through the API: two didgate edges on one real
 * redis-server, the API on edge 1. A user created with PUT /v1/users/{user} registers (sipp phone,
 * digest 401 then 200) and calls out (407, then a sipp carrier) on edge 2; Redis holds its HA1s,
 * never the password, and no answer shows either; tenant tokens see their own users only; config users are read-only; DELETE removes the
 * user and its bindings, and the phone is refused on both edges.
 */
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import type { TestRedis } from "../helpers/redis.js";
import { freePort } from "../helpers/sipp.js";
import { DOMAIN, PHONE_IP, phoneCall, register, sharedRedis, stopShared } from "./registrar-util.js";
import { ok, startUas } from "./sip-util.js";

const PREFIX = "ru:";
const TOKENS = [
  { token: "admin-token-0123456789" },
  { token: "acme-token-0123456789", tenant: "acme" },
  { token: "other-token-0123456789", tenant: "other" },
];
let shared: Awaited<ReturnType<typeof sharedRedis>> | undefined;
let redis: TestRedis;
let client: Redis;
const edges: Array<{ app: Didgate; udp: number }> = [];
let carrierPort = 0;

async function api(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> | null; text: string }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`http://127.0.0.1:${edges[0]!.app.api!.address.port}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, json: text.length > 0 ? (JSON.parse(text) as Record<string, unknown>) : null, text };
}

beforeAll(async () => {
  shared = await sharedRedis(PREFIX);
  ({ redis, client } = shared);
  const w = shared.writer;
  await w.set("+15125550900", { tenant: "acme", voice: { targets: [`sip:frank@${DOMAIN}`] } });
  await w.setOutbound("+33*", { voice: ["carrier-fr"] });
  carrierPort = await freePort();
  for (const id of ["edge-1", "edge-2"]) {
    const dir = tempDir();
    const udp = await freePort();
    const { app } = await startApp(
      {
        sip: {
          listen: [`udp://127.0.0.1:${udp}`],
          timers: { t1_ms: 30 },
          auth: { algorithms: ["MD5", "SHA-256"], secret: "nonce secret shared by both edges" },
          trunks: [
            { name: "carrier", sources: ["127.0.0.1"], country_code: "1", cps: 1000 },
            { name: "carrier-fr", termination: `sip:127.0.0.1:${carrierPort}` },
          ],
          registrar: { domain: DOMAIN, users: [{ user: "alice", tenant: "acme", password: "wonderland" }], min_expires: 1, calls: { country_code: "1" } },
        },
        routes: { redis: { url: redis.url, prefix: PREFIX, snapshot: "" } },
        ...(id === "edge-1" ? { api: { listen: "127.0.0.1:0", tokens: TOKENS } } : {}),
        state_dir: dir,
        instance_id: id,
      },
      dir,
    );
    edges.push({ app, udp });
  }
}, 30_000);

afterAll(() => stopShared(edges, shared));

describe("registrar users through the API, kept in Redis", () => {
  it("PUT creates a user that registers on another edge; Redis keeps HA1s, no answer shows a password or hash", async () => {
    const [, e2] = edges as [(typeof edges)[0], (typeof edges)[0]];
    const put = await api("PUT", "/v1/users/frank", TOKENS[0]!.token, { tenant: "acme", password: "frank-secret", caller_id: "+15125550900" });
    expect(put.status, put.text).toBe(200);
    expect(put.json).toMatchObject({ user: "frank", tenant: "acme", caller_id: "+15125550900", source: "api" });
    expect(put.text).not.toContain("frank-secret");
    expect(put.text).not.toMatch(/ha1|[0-9a-f]{32}/i);

    const stored = await client.hget(`${PREFIX}reg:{users}`, "frank");
    expect(stored).not.toBeNull();
    expect(stored).not.toContain("frank-secret");
    const md5 = createHash("md5").update(`frank:${DOMAIN}:frank-secret`).digest("hex");
    const sha = createHash("sha256").update(`frank:${DOMAIN}:frank-secret`).digest("hex");
    expect(JSON.parse(stored!)).toMatchObject({ tenant: "acme", ha1: { MD5: md5, "SHA-256": sha } });

    // edge 2 has no API: it finds the user by polling Redis
    await waitFor(() => e2.app.voice!.registrar!.user("frank"), 10_000, 100);
    const phone = await freePort(PHONE_IP);
    await ok(register(e2.udp, phone, { user: "frank", pass: "frank-secret", expires: 120, final: 200 }), "REGISTER on edge 2");
    expect((await e2.app.voice!.registrar!.bindings("frank")).map((b) => b.port)).toEqual([phone]);
    await ok(register(e2.udp, phone, { user: "frank", pass: "not-franks", expires: 120, final: 403 }), "REGISTER, wrong password");

    // and calls out through edge 2 with the same password (checked against the HA1)
    const uas = startUas("uas_answer.xml", "udp", carrierPort);
    await ok(await phoneCall(e2.udp, { user: "frank", pass: "frank-secret", service: "+33163450009", final: 200 }), "phone calls out");
    await ok(uas, "carrier");
    const inv = uas.received("INVITE")[0]!;
    expect(inv.get("p-asserted-identity")).toBe("<tel:+15125550900>");
    expect(inv.get("from")).toContain(`<sip:+15125550900@${DOMAIN}>`);

    const got = await api("GET", "/v1/users/frank", TOKENS[1]!.token);
    expect(got.status).toBe(200);
    expect(got.json).toEqual({ user: "frank", tenant: "acme", caller_id: "+15125550900", source: "api", updated_at: expect.any(String) });
    expect(got.text).not.toContain(md5);
  }, 60_000);

  it("tenant tokens see and change their own users only; config users are read-only; bad input is refused", async () => {
    expect((await api("GET", "/v1/users/frank", TOKENS[2]!.token)).status).toBe(404);
    const taken = await api("PUT", "/v1/users/frank", TOKENS[2]!.token, { password: "someone-else" });
    expect(taken.status).toBe(409);
    expect((taken.json!.error as { code: string }).code).toBe("name_taken");
    expect((await api("PUT", "/v1/users/gus", TOKENS[2]!.token, { tenant: "acme", password: "gus-secret" })).status).toBe(403);
    expect((await api("DELETE", "/v1/users/frank", TOKENS[2]!.token)).status).toBe(404);

    const cfg = await api("GET", "/v1/users/alice", TOKENS[1]!.token);
    expect(cfg.json).toEqual({ user: "alice", tenant: "acme", source: "config" });
    const change = await api("PUT", "/v1/users/alice", TOKENS[0]!.token, { tenant: "acme", password: "new-password" });
    expect(change.status).toBe(409);
    expect((change.json!.error as { code: string }).code).toBe("user_in_config");
    expect((await api("DELETE", "/v1/users/alice", TOKENS[0]!.token)).status).toBe(409);

    expect((await api("PUT", "/v1/users/gus", TOKENS[1]!.token, { password: "short" })).status).toBe(400);
    expect((await api("PUT", "/v1/users/gus", TOKENS[1]!.token, { password: "gus-secret", caller_id: "5125550100" })).status).toBe(422);
    expect((await api("PUT", "/v1/users/gus", TOKENS[0]!.token, { password: "gus-secret" })).status).toBe(422);
    expect((await api("PUT", "/v1/users/gus%20x", TOKENS[1]!.token, { password: "gus-secret" })).status).toBe(422);
    expect((await api("GET", "/v1/users/frank", "no-such-token-0123456789")).status).toBe(401);
    const doc = await api("GET", "/v1/openapi.json", TOKENS[1]!.token);
    expect(Object.keys((doc.json!.paths as Record<string, object>)["/v1/users/{user}"]!)).toEqual(expect.arrayContaining(["get", "put", "delete"]));
  }, 30_000);

  it("two tenants creating one name at once: one gets it, the other 409 name_taken", async () => {
    for (let i = 0; i < 12; i++) {
      const name = `race${i}`;
      const [a, b] = await Promise.all([
        api("PUT", `/v1/users/${name}`, TOKENS[1]!.token, { password: "acme-secret-" + i }),
        api("PUT", `/v1/users/${name}`, TOKENS[2]!.token, { password: "other-secret-" + i }),
      ]);
      expect([a.status, b.status].sort(), name).toEqual([200, 409]);
      const winner = a.status === 200 ? "acme" : "other";
      const ok = a.status === 200 ? a : b;
      const lost = a.status === 200 ? b : a;
      expect(ok.json!.tenant, name).toBe(winner);
      expect((lost.json!.error as { code: string }).code).toBe("name_taken");
      const stored = JSON.parse((await client.hget(PREFIX + "reg:{users}", name))!) as { tenant: string };
      expect(stored.tenant, name).toBe(winner);
      expect((await api("DELETE", `/v1/users/${name}`, TOKENS[0]!.token)).status).toBe(204);
    }
  }, 30_000);

  it("GET /v1/users lists users by name, in pages; a tenant token sees its own tenant's only; no secrets", async () => {
    for (const [name, tenant] of [["hugo", "other"], ["bert", "acme"]] as const) {
      expect((await api("PUT", `/v1/users/${name}`, TOKENS[0]!.token, { tenant, password: `${name}-password` })).status).toBe(200);
    }
    const all = await api("GET", "/v1/users", TOKENS[0]!.token);
    expect(all.status).toBe(200);
    expect((all.json!.users as Array<{ user: string; source: string }>).map((u) => [u.user, u.source])).toEqual([["alice", "config"], ["bert", "api"], ["frank", "api"], ["hugo", "api"]]);
    expect(all.json!.next).toBeUndefined();
    expect(all.text).not.toMatch(/password|ha1/i);
    const acme = await api("GET", "/v1/users", TOKENS[1]!.token);
    expect((acme.json!.users as Array<{ user: string }>).map((u) => u.user)).toEqual(["alice", "bert", "frank"]);
    // a tenant token naming another tenant sees nothing of it
    expect((await api("GET", "/v1/users?tenant=other", TOKENS[1]!.token)).json!.users).toEqual([]);
    expect((await api("GET", "/v1/users?tenant=other", TOKENS[0]!.token)).json!.users).toEqual([expect.objectContaining({ user: "hugo", tenant: "other" })]);
    const p1 = await api("GET", "/v1/users?limit=2", TOKENS[0]!.token);
    expect((p1.json!.users as Array<{ user: string }>).map((u) => u.user)).toEqual(["alice", "bert"]);
    expect(p1.json!.next).toBe("bert");
    const p2 = await api("GET", "/v1/users?limit=2&after=bert", TOKENS[0]!.token);
    expect((p2.json!.users as Array<{ user: string }>).map((u) => u.user)).toEqual(["frank", "hugo"]);
    expect(p2.json!.next).toBeUndefined();
    expect((await api("GET", "/v1/users?limit=0", TOKENS[0]!.token)).status).toBe(400);
    expect((await api("GET", "/v1/users?limit=5000", TOKENS[0]!.token)).status).toBe(400);
    for (const name of ["hugo", "bert"]) expect((await api("DELETE", `/v1/users/${name}`, TOKENS[0]!.token)).status).toBe(204);
  }, 30_000);

  it("DELETE removes the user and its bindings; the phone is refused on both edges", async () => {
    const [e1, e2] = edges as [(typeof edges)[0], (typeof edges)[0]];
    expect((await api("DELETE", "/v1/users/frank", TOKENS[1]!.token)).status).toBe(204);
    expect(await client.hexists(`${PREFIX}reg:{users}`, "frank")).toBe(0);
    expect(await client.exists(`${PREFIX}loc:sip:frank@${DOMAIN}`)).toBe(0);
    expect((await api("GET", "/v1/users/frank", TOKENS[1]!.token)).status).toBe(404);
    await waitFor(() => (e2.app.voice!.registrar!.user("frank") === undefined ? true : undefined), 10_000, 100);
    for (const e of [e1, e2]) {
      const phone = await freePort(PHONE_IP);
      await ok(register(e.udp, phone, { user: "frank", pass: "frank-secret", expires: 120, final: 403 }), "REGISTER after DELETE");
    }
    expect((await api("DELETE", "/v1/users/frank", TOKENS[1]!.token)).status).toBe(404);
  }, 60_000);
});
