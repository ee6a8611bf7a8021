/**
 * `didgate users list|set|delete` against a real redis-server, beside a running edge with the
 * same config: a user the command line creates registers on the edge (sipp as the phone, 401 then
 * 200) with the password of its file, Redis keeps only its HA1s, nothing printed shows the
 * password; users of the config file are read-only; delete removes the user and its bindings.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import type { Didgate } from "../../src/app.js";
import { main } from "../../src/cli/index.js";
import { digestHa1 } from "../../src/sip/digest.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { freePort, killAllSipp } from "../helpers/sipp.js";
import { DOMAIN, PHONE_IP, register } from "./registrar-util.js";
import { ok } from "./sip-util.js";
import { Redis } from "ioredis";

const PREFIX = "ucli:";
const PASSWORD = "cli-made-password";
let redis: TestRedis;
let client: Redis;
let app: Didgate;
let udp = 0;
let dir = "";
let cfgPath = "";

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(["users", ...argv, "--config", cfgPath], { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  client.on("error", () => undefined);
  dir = tempDir();
  writeRoutes(dir, {});
  udp = await freePort();
  const registrar = { domain: DOMAIN, users: [{ user: "alice", tenant: "acme", password: "wonderland", caller_id: "+15125550100" }] };
  const cfg = { routes: { file: "routes.yaml", redis: { url: redis.url, prefix: PREFIX, snapshot: "" } }, state_dir: dir };
  cfgPath = join(dir, "didgate.yaml");
  writeFileSync(cfgPath, YAML.stringify({ ...cfg, sip: { registrar }, log: { level: "silent" } }));
  app = (await startApp({ ...cfg, sip: { listen: [`udp://127.0.0.1:${udp}`], timers: { t1_ms: 30 }, auth: { algorithms: ["MD5"] }, registrar } }, dir)).app;
}, 30_000);

afterAll(async () => {
  await killAllSipp();
  await app?.stop(0);
  client?.disconnect();
  await redis?.stop();
});

describe("didgate users", () => {
  it("set: the user registers on the running edge with the file's password; Redis keeps HA1s only; list shows it without secrets", async () => {
    const pw = join(dir, "ivan.pw");
    writeFileSync(pw, PASSWORD + "\n");
    const set = await cli("set", "ivan", "--tenant", "acme", "--password-file", pw, "--caller-id", "+15125550101");
    expect(set.code, set.err).toBe(0);
    expect(set.out).toBe("created ivan (tenant acme)\n");
    // the edge reloads users when their change counter moves (every 2 s)
    await waitFor(() => app.voice!.registrar!.userView("ivan"), 10_000, 100);
    expect(app.voice!.registrar!.userView("ivan")).toMatchObject({ user: "ivan", tenant: "acme", caller_id: "+15125550101", source: "api" });
    const stored = JSON.parse((await client.hget(`${PREFIX}reg:{users}`, "ivan"))!) as { ha1: Record<string, string> };
    expect(stored.ha1.MD5).toBe(digestHa1("MD5", "ivan", DOMAIN, PASSWORD));
    expect(JSON.stringify(stored)).not.toContain(PASSWORD);
    const phone = await freePort(PHONE_IP);
    await ok(register(udp, phone, { user: "ivan", pass: PASSWORD, expires: 300, final: 200 }), "REGISTER with the password set by the CLI");
    expect(await app.voice!.registrar!.bindings("ivan")).toHaveLength(1);

    const list = await cli("list");
    expect(list.code, list.err).toBe(0);
    expect(list.out.split("\n")[0]).toMatch(/^user\s+tenant\s+caller_id\s+source$/);
    expect(list.out).toMatch(/^alice\s+acme\s+\+15125550100\s+config$/m);
    expect(list.out).toMatch(/^ivan\s+acme\s+\+15125550101\s+api$/m);
    const json = await cli("list", "--json", "--tenant", "acme");
    const rows = JSON.parse(json.out) as Array<Record<string, string>>;
    expect(rows.map((r) => [r.user, r.source])).toEqual([["alice", "config"], ["ivan", "api"]]);
    expect((await cli("list", "--tenant", "other")).out).toBe("no users\n");
    for (const out of [set.out, list.out, json.out]) {
      expect(out).not.toContain(PASSWORD);
      expect(out).not.toContain(stored.ha1.MD5!);
    }
  }, 60_000);

  it("set again replaces the password (the old one gets 403); another tenant may not take the name", async () => {
    const pw = join(dir, "ivan2.pw");
    writeFileSync(pw, "second-password\r\n");
    const again = await cli("set", "ivan", "--tenant", "acme", "--password-file", pw);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toBe("replaced ivan (tenant acme)\n");
    await waitFor(() => (app.voice!.registrar!.userView("ivan")?.caller_id === undefined ? true : undefined), 10_000, 100);
    await ok(register(udp, await freePort(PHONE_IP), { user: "ivan", pass: PASSWORD, expires: 300, final: 403 }), "REGISTER with the old password");
    await ok(register(udp, await freePort(PHONE_IP), { user: "ivan", pass: "second-password", expires: 300, final: 200 }), "REGISTER with the new password");
    const taken = await cli("set", "ivan", "--tenant", "other", "--password-file", pw);
    expect(taken.code).toBe(1);
    expect(taken.err).toContain('belongs to tenant "acme"');
  }, 60_000);

  it("refuses: a config user (set, delete), bad input (usage, exit 2), a short password, no such user", async () => {
    const pw = join(dir, "x.pw");
    writeFileSync(pw, "long-enough-pw\n");
    for (const argv of [["set", "alice", "--tenant", "acme", "--password-file", pw], ["delete", "alice"]]) {
      const r = await cli(...argv);
      expect(r.code, argv.join(" ")).toBe(1);
      expect(r.err).toContain("defined in the config file");
    }
    expect(app.voice!.registrar!.userView("alice")?.source).toBe("config");
    expect((await cli("set", "bob", "--password-file", pw)).code).toBe(2);
    expect((await cli("set", "bob", "--tenant", "acme")).code).toBe(2);
    expect((await cli("set", "bad name", "--tenant", "acme", "--password-file", pw)).code).toBe(2);
    expect((await cli("set", "bob", "--tenant", "acme", "--password-file", pw, "--caller-id", "5125550100")).code).toBe(2);
    expect((await cli("nope")).code).toBe(2);
    const short = join(dir, "short.pw");
    writeFileSync(short, "short\n");
    const s = await cli("set", "bob", "--tenant", "acme", "--password-file", short);
    expect(s.code).toBe(1);
    expect(s.err).toContain("8 to 256 characters");
    expect(s.err).not.toContain("short\n");
    expect(await client.hexists(`${PREFIX}reg:{users}`, "bob")).toBe(0);
    const none = await cli("delete", "nobody");
    expect(none.code).toBe(1);
    expect(none.err).toContain("no user nobody");
  }, 30_000);

  it("delete: the user and its registrations are gone; the edge no longer knows it", async () => {
    expect(await app.voice!.registrar!.bindings("ivan")).not.toHaveLength(0);
    const d = await cli("delete", "ivan");
    expect(d.code, d.err).toBe(0);
    expect(d.out).toBe("deleted ivan\n");
    expect(await client.hexists(`${PREFIX}reg:{users}`, "ivan")).toBe(0);
    expect(await client.exists(`${PREFIX}loc:sip:ivan@${DOMAIN}`)).toBe(0);
    await waitFor(() => (app.voice!.registrar!.userView("ivan") === undefined ? true : undefined), 10_000, 100);
    await ok(register(udp, await freePort(PHONE_IP), { user: "ivan", pass: "second-password", expires: 300, final: 403 }), "REGISTER after delete");
    expect((await cli("list")).out).not.toMatch(/^ivan/m);
  }, 60_000);
});
