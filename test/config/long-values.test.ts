/**
 * `didgate check-config` with huge bad values (a 2 MB log level, listen address, unknown key and
 * route target): every message names the path and shows the start of the value, cut to a few
 * hundred bytes, so the operator sees every problem instead of a screenful of one value.
 */
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "../helpers/app.js";

const CLI = "dist/src/cli.js";
const BIG = 2 * 1024 * 1024;

describe("check-config with huge values", () => {
  it("cuts each value in a message to a few hundred bytes and still lists every problem", () => {
    const dir = tempDir();
    const big = "x".repeat(BIG);
    const cfg = join(dir, "bad.yaml");
    writeFileSync(
      cfg,
      JSON.stringify({
        log: { level: big },
        webhooks: { secret: { [big]: big } },
        admin: { listen: `127.0.0.1:${big}` },
        [`k${big}`]: 1,
        routes: { file: "routes.yaml" },
      }),
    );
    writeFileSync(join(dir, "routes.yaml"), JSON.stringify({ routes: { "+1*": { voice: { targets: [`sip:a@${big}`] } }, [`+1${big}`]: { voice: { targets: ["sip:a@h"] } } } }));
    const r = spawnSync(process.execPath, [CLI, "check-config", "--config", cfg], { encoding: "utf8", env: { PATH: process.env.PATH ?? "" }, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
    expect(r.status).toBe(1);
    const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
    for (const l of lines) expect(l.length, l.slice(0, 200)).toBeLessThanOrEqual(1000);
    const text = r.stderr;
    expect(text.length).toBeLessThan(20_000);
    expect(text).toContain("log.level");
    expect(text).toContain("webhooks.secret");
    expect(text).toContain("admin.listen");
    expect(text).toContain("unknown key");
    expect(text).toMatch(/bytes cut|…|\.\.\./);
    // with the config fixed, the route file's huge entries are reported the same way
    writeFileSync(cfg, JSON.stringify({ routes: { file: "routes.yaml" }, sip: { listen: [] }, admin: { listen: "127.0.0.1:0" } }));
    const r2 = spawnSync(process.execPath, [CLI, "check-config", "--config", cfg], { encoding: "utf8", env: { PATH: process.env.PATH ?? "" }, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
    expect(r2.status).toBe(1);
    expect(r2.stderr.length).toBeLessThan(20_000);
    for (const l of r2.stderr.split("\n")) expect(l.length, l.slice(0, 200)).toBeLessThanOrEqual(1000);
    expect(r2.stderr).toContain("+1*");
    rmSync(dir, { recursive: true, force: true });
  });
});
