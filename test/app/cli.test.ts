import { spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir, waitFor } from "../helpers/app.js";

const CLI = "dist/src/cli.js";
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { PATH: process.env.PATH ?? "", ...env }, timeout: 20_000 });

describe("didgate CLI", () => {
  it("lookup prints the decision as JSON from the bundled routes", () => {
    const r = run(["lookup", "+15125550101", "--caller", "+447700900123", "--at", "2026-03-09T15:00:00Z"]);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ outcome: "routed", key: "+15125550101", kind: "exact", rule: { type: "callers", index: 0, match: "+44*" } });
    expect(j.targets[0].uri).toBe("sip:uk-desk@127.0.0.1:5074");
    expect(j.why.join(" ")).toContain("matched callers[0]");

    const office = JSON.parse(run(["lookup", "+15125550101", "--at", "2026-03-09T15:00:00Z"]).stdout);
    expect(office.rule).toMatchObject({ type: "schedule", index: 0 });
    expect(JSON.parse(run(["lookup", "+15125550150"]).stdout)).toMatchObject({ outcome: "gone", state: "quarantine" });
  });

  it("lookup of an invalid number is a user error without a stack trace", () => {
    const r = run(["lookup", "not-a-number"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("invalid character");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("check-config passes on the bundled config and lists every error of a bad one", () => {
    const ok = run(["check-config"]);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/config OK: .*didgate\.yaml, \d+ routes/);

    const dir = tempDir();
    const cfg = join(dir, "bad.yaml");
    writeFileSync(cfg, "sip:\n  unknown_source: maybe\nadmin:\n  listen: nowhere\nroutes:\n  file: routes.yaml\n");
    writeFileSync(join(dir, "routes.yaml"), 'routes:\n  "+1x": { voice: { targets: ["sip:a@h"] } }\n');
    const bad = run(["check-config", "--config", cfg]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("sip.unknown_source");
    expect(bad.stderr).toContain("admin.listen");
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    // Once the config is valid, the routes file's errors are listed.
    writeFileSync(cfg, "routes:\n  file: routes.yaml\n");
    const bad2 = run(["check-config", "--config", cfg]);
    expect(bad2.status).toBe(1);
    expect(bad2.stderr).toContain('route "+1x": invalid key');
  });

  it("environment overrides are validated too", () => {
    const r = run(["check-config"], { DIDGATE_ADMIN_LISTEN: "999.1.1.1" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("admin.listen");
  });

  it("unknown commands print usage and exit 1", () => {
    const r = run(["frobnicate"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("usage:");
  });

  it("serve starts on the bundled config, answers /healthz and exits 0 on SIGTERM", async () => {
    const child = spawn(process.execPath, [CLI, "serve"], {
      env: { PATH: process.env.PATH ?? "", DIDGATE_ADMIN_LISTEN: "127.0.0.1:0", DIDGATE_SIP_LISTEN: "[]", DIDGATE_SMPP_LISTEN: "null" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      const port = await waitFor(() => {
        for (const line of out.split("\n")) {
          if (line.includes('"didgate started"')) return JSON.parse(line).admin.port as number;
        }
        return undefined;
      }, 15_000);
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(res.status).toBe(200);
      const code = new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
      child.kill("SIGTERM");
      expect(await code).toBe(0);
      expect(out).toContain("didgate stopped");
    } finally {
      child.kill("SIGKILL");
    }
  });
});
