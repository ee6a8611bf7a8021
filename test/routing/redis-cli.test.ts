/** `didgate routes …` and the Redis Function library, against a real redis-server. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { routesCommand } from "../../src/cli/routes.js";
import { freePort, startRedis, type TestRedis } from "../helpers/redis.js";
import { makeEdge, redisConfig, tempDir, until, voice, type Edge } from "./redis-helpers.js";

let redis: TestRedis;
let tmp: ReturnType<typeof tempDir>;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  tmp = tempDir();
});
afterAll(async () => {
  await redis?.stop();
  tmp?.cleanup();
});
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
  await redis.cli("FLUSHALL");
});

const cfg = () => ({ url: redis.url, prefix: "didgate:", stream_maxlen: 100_000 });

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await routesCommand(argv, cfg(), (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

function edge(): Edge {
  const e = makeEdge(redisConfig(redis.url));
  cleanups.push(() => e.source.close());
  return e;
}

const YAML_FILE = `routes:
  "+15125550100":
    tenant: acme
    voice:
      targets: ["sip:+15125550100@10.1.2.3:5060;transport=tcp"]
  "+1512555*":
    voice: { targets: [{ uri: "sip:pbx@10.1.2.4", priority: 1, weight: 100 }] }
    sms: { webhook: "https://app.example.com/sms" }
  "*":
    state: released
`;

describe("didgate routes (CLI)", () => {
  it("import reports every bad entry with its line and imports the others; --atomic imports nothing", async () => {
    const file = join(tmp.dir, "mixed.yaml");
    const lines = ["routes:"];
    for (let i = 0; i < 200; i++) {
      const target = i % 50 === 13 ? "http://not-sip" : `sip:+1512555${String(i).padStart(4, "0")}@10.0.0.1`;
      lines.push(`  "+1512555${String(i).padStart(4, "0")}":`, `    voice: { targets: ["${target}"] }`);
    }
    lines.push('  "+1x":', "    state: active");
    writeFileSync(file, lines.join("\n") + "\n");
    const atomic = await run("import", file, "--atomic");
    expect(atomic.code).toBe(1);
    expect(atomic.err).toMatch(/5 bad entries; nothing imported \(--atomic\)/);
    expect(await redis.cli("HLEN", "didgate:routes")).toBe("0\n");

    const r = await run("import", file);
    expect(r.code).toBe(1);
    // Entry i starts on line 2 + 2i.
    for (const i of [13, 63, 113, 163]) expect(r.err).toContain(`${file}:${2 + 2 * i}:3: route "+1512555${String(i).padStart(4, "0")}": voice.targets[0]`);
    expect(r.err).toContain(`${file}:402:3: route "+1x": invalid key`);
    expect(r.out).toMatch(/imported 196 routes: 196 written, 0 unchanged; 5 bad entries skipped/);
    expect(await redis.cli("HLEN", "didgate:routes")).toBe("196\n");
    expect(await redis.cli("HEXISTS", "didgate:routes", "+15125550012")).toBe("1\n");
    expect(await redis.cli("HEXISTS", "didgate:routes", "+15125550013")).toBe("0\n");
  });

  it("import shows its progress on a terminal", async () => {
    const file = join(tmp.dir, "many.csv");
    const rows = ["key,targets"];
    for (let i = 0; i < 5000; i++) rows.push(`+1512666${String(i).padStart(4, "0")},sip:x${i}@h`);
    writeFileSync(file, rows.join("\n") + "\n");
    let out = "";
    let err = "";
    let t = 0;
    const code = await routesCommand(["import", file], cfg(), (s) => (out += s), (s) => (err += s), { tty: true, now: () => (t += 50) });
    expect(code).toBe(0);
    expect(err).toMatch(/^importing 5000 entries…/);
    expect(err).toMatch(/\r\d+\/5000 entries \(\d+\/s, about \d+ s left\)/);
    expect(err).toMatch(/\r5000\/5000 entries \(\d+\/s, done\)\x1b\[K\n$/);
    expect(out).toMatch(/imported 5000 routes: 5000 written/);
  });

  it("export writes in key order, batch by batch, and re-imports unchanged", async () => {
    const file = join(tmp.dir, "big.json");
    const routes: Record<string, unknown> = {};
    for (let i = 2500; i-- > 0; ) routes[`+1513${String(i).padStart(7, "0")}`] = { tenant: `t${i % 3}`, voice: { targets: [{ uri: `sip:${i}@h`, priority: 1 + (i % 2) }, "sip:b@h"] } };
    writeFileSync(file, JSON.stringify(routes));
    expect((await run("import", file)).code).toBe(0);
    for (const format of ["json", "yaml", "csv"] as const) {
      const chunks: string[] = [];
      const code = await routesCommand(["export", "--format", format], cfg(), (s) => void chunks.push(s), () => undefined);
      expect(code).toBe(0);
      expect(chunks.length).toBeGreaterThan(2); // header, batches of 1000, end
      const text = chunks.join("");
      const back = join(tmp.dir, `big-export.${format}`);
      writeFileSync(back, text);
      const again = await run("import", back);
      expect(again.code, again.err).toBe(0);
      expect(again.out).toMatch(/imported 2500 routes: 0 written, 2500 unchanged/);
      if (format === "json") {
        const keys = Object.keys((JSON.parse(text) as { routes: Record<string, unknown> }).routes);
        expect(keys).toEqual([...keys].sort());
        expect(keys.length).toBe(2500);
      }
    }
  });

  it("import, export and re-import round-trip; an edge sees the routes", async () => {
    const file = join(tmp.dir, "routes.yaml");
    writeFileSync(file, YAML_FILE);
    const e = edge();
    await e.source.start();
    const imp = await run("import", file);
    expect(imp).toMatchObject({ code: 0 });
    expect(imp.out).toMatch(/imported 3 routes: 3 written, 0 unchanged/);
    await until(() => e.store.current.size === 3, "edge applied the import");
    expect(e.lookup("+15125550100")).toBe("sip:+15125550100@10.1.2.3:5060;transport=tcp");

    for (const format of ["json", "yaml", "csv"] as const) {
      const exp = await run("export", "--format", format);
      expect(exp.code).toBe(0);
      const back = join(tmp.dir, `export.${format}`);
      writeFileSync(back, exp.out);
      const again = await run("import", back);
      expect(again.code, again.err).toBe(0);
      expect(again.out).toMatch(/imported 3 routes: 0 written, 3 unchanged/);
    }
    expect(JSON.parse((await run("export")).out).routes["*"]).toEqual({ state: "released" });
  });

  it("import --replace deletes the keys missing from the file, and edges follow", async () => {
    const e = edge();
    await e.source.start();
    expect((await run("set", "+44*", JSON.stringify(voice("uk")))).code).toBe(0);
    expect((await run("set", "+33*", JSON.stringify(voice("fr")))).code).toBe(0);
    const file = join(tmp.dir, "only.csv");
    writeFileSync(file, "key,targets\n+44*,sip:x@uk2\n");
    const r = await run("import", file, "--replace");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/1 written, 0 unchanged, 1 deleted/);
    await until(() => e.store.current.size === 1 && e.lookup("+4420") === "sip:x@uk2", "edge followed the replace");
    expect(await redis.cli("HKEYS", "didgate:routes")).toBe("+44*\n");
  });

  it("set and del write the hash and the stream; errors give exit 1, misuse exit 2", async () => {
    const s = await run("set", "+4930*", JSON.stringify(voice("de")));
    expect(s.code).toBe(0);
    expect(s.out).toMatch(/^set \+4930\* \(change \d+-\d+\)/);
    const stream = await redis.cli("XRANGE", "didgate:changes", "-", "+");
    expect(stream).toContain("op\nset\nkey\n+4930*\nroute\n");
    expect((await run("del", "+4930*")).out).toMatch(/^deleted \+4930\*/);
    expect((await run("del", "+4930*")).out).toMatch(/was not in the table/);

    const badJson = await run("set", "+15125550100", "{nope");
    expect(badJson.code).toBe(1);
    expect(badJson.err).toMatch(/JSON is not valid/);
    const badRoute = await run("set", "+15125550100", '{"state":"gone"}');
    expect(badRoute.code).toBe(1);
    expect(badRoute.err).toMatch(/state/);
    const badKey = await run("set", "1*", JSON.stringify(voice("x")));
    expect(badKey.code).toBe(1);
    expect(badKey.err).toMatch(/invalid key/);
    // Keys no number of their country plan can have: exact keys of the wrong length, prefixes longer than a number.
    const short = await run("set", "+1512555010", JSON.stringify(voice("x")));
    expect(short.code).toBe(1);
    expect(short.err).toContain("cannot be a +1 NANP");
    expect(short.err).toContain("this one has 9");
    const longPrefix = await run("set", "+3361234567890*", JSON.stringify(voice("x")));
    expect(longPrefix.code).toBe(1);
    expect(longPrefix.err).toContain("can never match");
    expect((await run("set", "+33612345678", JSON.stringify(voice("fr")))).code).toBe(0);
    expect((await run("set", "+336*", JSON.stringify(voice("fr")))).code).toBe(0);
    expect((await run("set", "+8613800138000", JSON.stringify(voice("cn")))).code).toBe(0); // country not listed: not checked
    for (const k of ["+33612345678", "+336*", "+8613800138000"]) expect((await run("del", k)).code).toBe(0);
    const badFile = join(tmp.dir, "bad.json");
    writeFileSync(badFile, JSON.stringify({ "+1": voice("a"), "+2": { voice: { targets: ["http://x"] } }, "x": voice("b") }));
    const atomic = await run("import", badFile, "--atomic");
    expect(atomic.code).toBe(1);
    expect(atomic.err).toMatch(/"\+2"/);
    expect(atomic.err).toMatch(/"x"/);
    expect(atomic.err).toMatch(/"\+1": \+1 cannot be a \+1 NANP/);
    expect(atomic.err).toMatch(/3 bad entries; nothing imported \(--atomic\)/);
    expect(await redis.cli("HLEN", "didgate:routes")).toBe("0\n");
    // A file that cannot be read past a syntax error imports nothing either.
    const broken = join(tmp.dir, "broken.yaml");
    writeFileSync(broken, 'routes:\n  "+1":\n    voice: x: y\n');
    const bb = await run("import", broken);
    expect(bb.code).toBe(1);
    expect(bb.err).toMatch(/broken\.yaml:3:\d+: not valid YAML/);
    expect(bb.err).toMatch(/nothing imported/);
    expect(await redis.cli("HLEN", "didgate:routes")).toBe("0\n");

    expect((await run("frobnicate")).code).toBe(2);
    expect((await run("set", "+1")).code).toBe(2);
    expect((await run("export", "--format", "xml")).code).toBe(2);
    expect((await run("reload", "--replace")).code).toBe(2);
    let err = "";
    expect(await routesCommand(["export"], undefined, () => undefined, (x) => (err += x))).toBe(1);
    expect(err).toMatch(/routes.redis is not configured/);
    const port = await freePort();
    err = "";
    expect(await routesCommand(["export"], { url: `redis://127.0.0.1:${port}`, prefix: "didgate:", stream_maxlen: 10 }, () => undefined, (x) => (err += x))).toBe(1);
    expect(err).toMatch(/cannot connect to Redis/);
  });

  it("reload --force makes a refusing edge accept the table", async () => {
    await run("set", "+1*", JSON.stringify(voice("a")));
    await run("set", "+2*", JSON.stringify(voice("b")));
    const e = edge();
    await e.source.start();
    await redis.cli("DEL", "didgate:routes");
    expect(await e.source.reload()).toMatchObject({ result: "refused" });
    expect(e.store.current.size).toBe(2);
    const r = await run("reload", "--force");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/reload --force requested/);
    await until(() => e.store.current.size === 0, "edge obeyed reload --force");
    expect(e.source.status().refusing).toBe(false);
  });
});

describe("Redis Function library (FCALL)", () => {
  it("didgate_set / didgate_del write atomically and edges apply them; bad input is rejected", async () => {
    const e = edge();
    await e.source.start(); // loads the library
    const json = JSON.stringify(voice("fcall"));
    const id = await redis.cli("FCALL", "didgate_set", "2", "didgate:routes", "didgate:changes", "+3906*", json);
    expect(id.trim()).toMatch(/^\d+-\d+$/);
    await until(() => e.lookup("+390612345") === "sip:x@fcall", "FCALL write applied");
    expect(await redis.cli("HGET", "didgate:routes", "+3906*")).toBe(json + "\n");
    await redis.cli("FCALL", "didgate_del", "2", "didgate:routes", "didgate:changes", "+3906*");
    await until(() => e.lookup("+390612345") === undefined, "FCALL delete applied");
    await expect(redis.cli("FCALL", "didgate_set", "2", "didgate:routes", "didgate:changes", "39*", json)).resolves.toMatch(/invalid route key/);
    await expect(redis.cli("FCALL", "didgate_set", "2", "didgate:routes", "didgate:changes", "+39*", "[1]")).resolves.toMatch(/JSON object/);
    await expect(redis.cli("FCALL", "didgate_set", "1", "didgate:routes", "+39*", json)).resolves.toMatch(/needs 2 keys/);
    expect(await redis.cli("HLEN", "didgate:routes")).toBe("0\n");
    expect((await redis.cli("FCALL_RO", "didgate_version", "0")).trim()).toBe("1");
    // reload through the function
    await redis.cli("HSET", "didgate:routes", "+1*", JSON.stringify(voice("direct")));
    await redis.cli("FCALL", "didgate_reload", "2", "didgate:routes", "didgate:changes", "force");
    await until(() => e.lookup("+1555") === "sip:x@direct", "FCALL reload applied");
  });

  it("`routes functions` loads the library", async () => {
    await redis.cli("FUNCTION", "FLUSH");
    const r = await run("functions");
    expect(r.code, r.err).toBe(0);
    expect(await redis.cli("FUNCTION", "LIST", "LIBRARYNAME", "didgate")).toContain("didgate_set");
  });
});
