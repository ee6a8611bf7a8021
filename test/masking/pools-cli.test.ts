/**
 * `didgate pools list|show|set|delete` against a real redis-server, next to a running edge with
 * the same config: a pool the command line sets is picked up by the edge, a session on it (also
 * from the command line) carries a real call from A's carrier to B's (sipp on both sides), and
 * once the pool is deleted its number no longer routes. The config's pools are read-only here.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import type { Didgate } from "../../src/app.js";
import { main } from "../../src/cli/index.js";
import { redisRoutes } from "../edge/masking-util.js";
import { ok, startUac, startUas } from "../edge/sip-util.js";
import { apiCall, startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { freePort, killAllSipp, sippReady } from "../helpers/sipp.js";

const ADMIN = "admin-token-0123456789abcdef";
const A_IP = "127.0.0.2";
const B_IP = "127.0.0.3";
const A = "+15125551101";
const B = "+15125551102";
const RIDE = "+15125550200";
const VAN = ["+15125550400", "+15125550401"];

let redis: TestRedis;
let app: Didgate;
let cfgPath = "";
let udp = 0;
let PB = 0;

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main([...argv, "--config", cfgPath], { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

beforeAll(async () => {
  redis = await startRedis();
  PB = await freePort(B_IP);
  const dir = tempDir();
  writeRoutes(dir, {});
  const set = redisRoutes(redis.url);
  await set("set", "--outbound", A, '{"voice":["carrier-a"]}');
  await set("set", "--outbound", B, '{"voice":["carrier-b"]}');
  const cfg = {
    routes: { file: "routes.yaml", redis: { url: redis.url, snapshot: "" } },
    masking: { pools: [{ name: "ride", tenant: "acme", numbers: [RIDE] }] },
    state_dir: dir,
  };
  cfgPath = join(dir, "didgate.yaml");
  writeFileSync(cfgPath, YAML.stringify({ ...cfg, log: { level: "silent" } }));
  const port = await freePort();
  app = (
    await startApp(
      {
        ...cfg,
        sip: {
          listen: [`udp://127.0.0.1:${port}`],
          timers: { t1_ms: 30 },
          trunks: [
            { name: "carrier-a", sources: [A_IP], country_code: "1", cps: 1000 },
            { name: "carrier-b", sources: [B_IP], country_code: "1", cps: 1000, termination: `sip:${B_IP}:${PB}` },
          ],
        },
        api: { listen: "127.0.0.1:0", tokens: [{ token: ADMIN }] },
      },
      dir,
    )
  ).app;
  udp = app.voice!.listeners.find((l) => l.transport === "udp")!.port;
}, 30_000);

afterAll(async () => {
  await killAllSipp();
  await app?.stop(0);
  await redis?.stop();
});

describe("didgate pools", () => {
  it("set: the edge picks the pool up, a session on it (from the CLI) carries a call A -> proxy -> B; delete stops it", async () => {
    const before = await cli("pools", "list", "--json");
    expect(before.code, before.err).toBe(0);
    expect(JSON.parse(before.out)).toEqual([{ name: "ride", tenant: "acme", numbers: 1, source: "config", sessions: 0 }]);
    expect(app.masking!.isPoolNumber(VAN[0]!)).toBe(false);

    const s = await cli("pools", "set", "van", "--tenant", "acme", ...VAN);
    expect(s, s.err).toMatchObject({ code: 0, out: "set pool van (acme): 2 numbers\n" });
    const show = await cli("pools", "show", "van", "--json");
    expect(JSON.parse(show.out)).toEqual({ name: "van", tenant: "acme", source: "api", numbers: VAN });
    // the API of the running edge reads the same store
    const viaApi = await apiCall(app.api!.address.port, "GET", "/v1/pools/van", ADMIN);
    expect(viaApi.status).toBe(200);
    expect(viaApi.body).toMatchObject({ tenant: "acme", numbers: VAN, source: "api" });
    // the edge's own pool refresh (its version-key poll), not the API request, is what routing uses
    await waitFor(() => app.masking!.isPoolNumber(VAN[1]!) || undefined, 10_000, 50);

    const c = await cli("sessions", "create", "--pool", "van", A, B, "--ttl-s", "600", "--json");
    expect(c.code, c.err).toBe(0);
    const session = JSON.parse(c.out) as { id: string; proxy: string; tenant: string };
    expect(VAN).toContain(session.proxy);
    expect(session.tenant).toBe("acme");
    expect((await cli("sessions", "list", "--pool", "van")).out).toContain(session.id);
    expect(JSON.parse((await cli("pools", "list", "--json")).out)).toContainEqual({ name: "van", tenant: "acme", numbers: 2, source: "api", sessions: 1 });

    const uas = startUas("uas_answer.xml", "udp", PB, {}, 20, B_IP);
    await sippReady();
    const uac = await startUac("uac_call.xml", "udp", udp, { service: session.proxy, caller: A, ip: A_IP });
    await ok(uac, "A");
    await ok(uas, "B");
    const inv = uas.received("INVITE")[0]!;
    expect(inv.requestUri).toBe(`sip:${B}@${B_IP}:${PB}`);
    expect(inv.get("from")).toContain(`<sip:${session.proxy}@`);

    const busy = await cli("pools", "delete", "van");
    expect(busy.code).toBe(1);
    expect(busy.err).toContain("live sessions");
    expect((await cli("sessions", "delete", session.id)).code).toBe(0);
    expect(await cli("pools", "delete", "van")).toMatchObject({ code: 0, out: "deleted pool van\n" });
    expect((await cli("pools", "show", "van")).code).toBe(1);
    await waitFor(() => !app.masking!.isPoolNumber(VAN[1]!) || undefined, 10_000, 50);
    // no longer a pool number and no route of its own: the carrier gets 404
    const gone = await startUac("uac_final.xml", "udp", udp, { service: session.proxy, caller: A, ip: A_IP, subst: { CODE: "404" } });
    await ok(gone, "A after the pool was deleted");
  });

  it("refusals: the config's pools are read-only, a number serves one pool, bad input is a usage error", async () => {
    const cfgPool = await cli("pools", "set", "ride", "--tenant", "acme", "+15125550500");
    expect(cfgPool.code).toBe(1);
    expect(cfgPool.err).toContain("config file");
    const delCfg = await cli("pools", "delete", "ride");
    expect(delCfg.code).toBe(1);
    expect(delCfg.err).toContain("config file");
    const clash = await cli("pools", "set", "other", "--tenant", "acme", "+15125550501", RIDE);
    expect(clash.code).toBe(1);
    expect(clash.err).toContain(`${RIDE} is already a number of pool ride`);
    expect((await cli("pools", "show", "other")).code).toBe(1);
    expect((await cli("pools", "set", "other", "+15125550501")).code).toBe(2);
    expect((await cli("pools", "set", "other", "--tenant", "acme", "5125550501")).code).toBe(2);
    expect((await cli("pools", "set", "bad name", "--tenant", "acme", "+15125550501")).code).toBe(2);
    expect((await cli("pools", "frobnicate")).code).toBe(2);
    expect((await cli("pools", "delete", "nope")).code).toBe(1);
    // another tenant may not take over a pool name
    expect((await cli("pools", "set", "mine", "--tenant", "acme", "+15125550502")).code).toBe(0);
    const taken = await cli("pools", "set", "mine", "--tenant", "globex", "+15125550502");
    expect(taken.code).toBe(1);
    expect(taken.err).toContain("belongs to tenant");
    expect((await cli("pools", "show", "mine")).out).toMatch(/^tenant\s+acme$/m);
  });
});
