import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir, waitFor } from "../helpers/app.js";

const CLI = "dist/src/cli.js";
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { PATH: process.env.PATH ?? "", ...env }, timeout: 60_000 });

describe("didgate CLI", { timeout: 120_000 }, () => {
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

  it("unknown commands print usage and exit 2", () => {
    const r = run(["frobnicate"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("usage:");
    expect(run([]).status).toBe(2);
  });

  // Every command with its required arguments; strict parsing must refuse what follows.
  const EVERY: string[][] = [
    ["serve"],
    ["lookup", "+15125550100"],
    ["check-config"],
    ["status"],
    ["routes", "import", "routes.yaml"],
    ["routes", "set", "+15125550100", "{}"],
    ["routes", "del", "+15125550100"],
    ["routes", "export"],
    ["routes", "reload"],
    ["routes", "functions"],
    ["messages", "pending"],
    ["messages", "show", "msg_1"],
    ["dlq", "list"],
    ["dlq", "replay", "1-0"],
    ["dlq", "drop", "1-0"],
    ["numbers", "report"],
    ["stir", "verify", "token"],
    ["users", "show", "alice"],
  ];

  it("an unknown flag exits 2 with the command's usage, for every command", () => {
    for (const cmd of EVERY) {
      const r = run([...cmd, "--bogus"]);
      expect(r.status, cmd.join(" ")).toBe(2);
      expect(r.stderr, cmd.join(" ")).toContain("'--bogus'");
      expect(r.stderr, cmd.join(" ")).toContain(`usage: didgate ${cmd.slice(0, cmd[0] === "routes" || cmd[0] === "dlq" || cmd[0] === "messages" ? 2 : 1).join(" ")}`);
      expect(r.stdout, cmd.join(" ")).toBe("");
    }
  }, 180_000);

  it("a flag without its value and an extra argument exit 2", () => {
    for (const cmd of EVERY) {
      const missing = run([...cmd, "--config"]);
      expect(missing.status, cmd.join(" ")).toBe(2);
      expect(missing.stderr, cmd.join(" ")).toContain("usage:");
    }
    for (const cmd of [["serve", "x"], ["lookup", "+1", "+2"], ["check-config", "x"], ["routes", "del", "a", "b"], ["routes", "export", "x"], ["messages", "pending", "x"], ["dlq", "list", "1-0"]]) {
      const r = run(cmd);
      expect(r.status, cmd.join(" ")).toBe(2);
      expect(r.stderr, cmd.join(" ")).toContain("unexpected argument");
    }
    expect(run(["lookup"]).status).toBe(2);
    expect(run(["routes", "set", "+1"]).status).toBe(2);
    expect(run(["routes", "nope"]).status).toBe(2);
    expect(run(["lookup", "+15125550100", "--country-code", "abc"]).status).toBe(2);
  }, 180_000);

  it("a mistyped flag on serve does not start the daemon", () => {
    const r = run(["serve", "--confg", "x.yaml"], { DIDGATE_ADMIN_LISTEN: "127.0.0.1:0", DIDGATE_SIP_LISTEN: "[]", DIDGATE_SMPP_LISTEN: "null" });
    expect(r.status).toBe(2);
    expect(r.stdout).not.toContain("didgate started");
  });

  it("--help lists every command and flag; COMMAND --help one command; --version the package version", () => {
    const h = run(["--help"]);
    expect(h.status).toBe(0);
    for (const cmd of EVERY) expect(h.stdout).toContain(`didgate ${cmd.slice(0, cmd[0] === "routes" || cmd[0] === "dlq" || cmd[0] === "messages" ? 2 : 1).join(" ")}`);
    for (const flag of ["--outbound", "--config", "--caller", "--at", "--country-code", "--replace", "--format", "--force", "--count", "--from", "--json", "--all"]) expect(h.stdout).toContain(flag);
    const l = run(["lookup", "--help"]);
    expect(l.status).toBe(0);
    expect(l.stdout).toContain("--country-code");
    expect(run(["routes", "--help"]).stdout).toContain("routes import FILE");
    expect(run(["routes", "set", "--help"]).stdout).toContain("routes set [--outbound] KEY JSON");
    const v = run(["--version"]);
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toBe(`didgate ${(JSON.parse(readFileSync("package.json", "utf8")) as { version: string }).version}`);
  }, 120_000);

  it("lookup reads national numbers with --country-code or default_country_code, and warns about short ones", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "routes.yaml"), 'routes:\n  "+15125550100": { voice: { targets: ["sip:us@h"] } }\n  "+4420*": { voice: { targets: ["sip:uk@h"] } }\n');
    writeFileSync(join(dir, "plain.yaml"), "routes:\n  file: routes.yaml\n");
    writeFileSync(join(dir, "us.yaml"), 'default_country_code: "1"\nroutes:\n  file: routes.yaml\n');
    // No country code anywhere: the digits are read as international, and the CLI says so.
    const intl = run(["lookup", "5125550100", "--config", join(dir, "plain.yaml")]);
    expect(intl.status).toBe(0);
    expect(JSON.parse(intl.stdout).number).toBe("+5125550100");
    expect(intl.stderr).toContain("Peru");
    expect(intl.stderr).toContain("--country-code");
    const us = run(["lookup", "5125550100", "--config", join(dir, "us.yaml")]);
    expect(JSON.parse(us.stdout)).toMatchObject({ number: "+15125550100", key: "+15125550100" });
    expect(us.stderr).toBe("");
    const uk = run(["lookup", "02079460000", "--country-code", "44", "--config", join(dir, "us.yaml")]);
    expect(JSON.parse(uk.stdout)).toMatchObject({ number: "+442079460000", key: "+4420*" });
    const short = run(["lookup", "+1512555010", "--config", join(dir, "us.yaml")]);
    expect(short.status).toBe(0);
    expect(short.stderr).toContain("one digit short");
  }, 120_000);

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
      }, 60_000);
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(res.status).toBe(200);
      // didgate status asks the running daemon (the same config: admin.listen on that port).
      const st = spawnSync(process.execPath, [CLI, "status"], { encoding: "utf8", env: { PATH: process.env.PATH ?? "", DIDGATE_ADMIN_LISTEN: `127.0.0.1:${port}` }, timeout: 20_000 });
      expect(st.stdout).toMatch(/^didgate .*, ready,/);
      expect(st.stdout).toMatch(/routes: \d+ entries from file/);
      expect(st.status).toBe(0);
      const code = new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
      child.kill("SIGTERM");
      expect(await code).toBe(0);
      expect(out).toContain("didgate stopped");
    } finally {
      child.kill("SIGKILL");
    }
  }, 120_000);
});

describe("didgate numbers and stir", { timeout: 60_000 }, () => {
  it("numbers report lists states, a quarantine ending, a recyclable number and an inactive one", () => {
    const dir = tempDir();
    const day = 86_400_000;
    const at = Date.parse("2026-12-04T00:00:00Z");
    writeFileSync(
      join(dir, "routes.yaml"),
      [
        "routes:",
        '  "+15125550100": { tenant: acme, voice: { targets: ["sip:a@h"] } }',
        `  "+15125550101": { tenant: acme, released_at: "${new Date(at - 10 * day).toISOString()}" }`,
        `  "+15125550102": { tenant: acme, released_at: "${new Date(at - 100 * day).toISOString()}" }`,
        `  "+15125550103": { tenant: acme, released_at: "${new Date(at - 85 * day).toISOString()}" }`,
        "",
      ].join("\n"),
    );
    writeFileSync(join(dir, "didgate.yaml"), "routes:\n  file: routes.yaml\nstate_dir: var\n");
    const r = run(["numbers", "report", "--config", join(dir, "didgate.yaml"), "--at", new Date(at).toISOString(), "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.by_state).toMatchObject({ active: 1, quarantine: 2, released: 1 });
    expect(j.available.map((x: { number: string }) => x.number)).toEqual(["+15125550102"]);
    expect(j.quarantine_ending.map((x: { number: string }) => x.number)).toEqual(["+15125550103"]);
    expect(j.inactive.map((x: { number: string }) => x.number)).toEqual(["+15125550100"]);
    const text = run(["numbers", "report", "--config", join(dir, "didgate.yaml"), "--at", new Date(at).toISOString()]);
    expect(text.stdout).toContain("available for recycling (1)");
  });

  it("stir verify decodes a PASSporT and gives the verdict", async () => {
    const { makePki } = await import("../stir/pki.js");
    const { createPrivateKey } = await import("node:crypto");
    const { StirSigner } = await import("../../src/stir/sign.js");
    const http = await import("node:http");
    const pki = makePki();
    const server = http.createServer((_q, s) => s.end(pki.chainPem));
    await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
    const x5u = `http://127.0.0.1:${(server.address() as { port: number }).port}/sp.pem`;
    const dir = tempDir();
    writeFileSync(join(dir, "roots.pem"), pki.rootPem);
    const h = new StirSigner({ key: createPrivateKey(pki.spKeyPem), x5u }).sign("A", "+15125550100", "+15125550199").header;
    // the CLI runs in a child process: the server must keep answering while spawnSync blocks this one
    const { spawn } = await import("node:child_process");
    const out = await new Promise<{ code: number | null; stdout: string }>((res) => {
      const c = spawn(process.execPath, [CLI, "stir", "verify", h, "--from", "+15125550100", "--to", "+15125550199", "--anchors", join(dir, "roots.pem"), "--allow-http", "--allow-private", "127.0.0.0/8", "--json"], { env: { PATH: process.env.PATH ?? "" } });
      let so = "";
      c.stdout.on("data", (d: Buffer) => (so += d.toString()));
      c.on("close", (code) => res({ code, stdout: so }));
    });
    expect(out.code).toBe(0);
    // without --allow-private the x5u on loopback is not fetched (a hostile carrier's header pasted here)
    const loop = run(["stir", "verify", h, "--from", "+15125550100", "--to", "+15125550199", "--anchors", join(dir, "roots.pem"), "--allow-http", "--json"]);
    expect(loop.status).toBe(1);
    expect(JSON.parse(loop.stdout).verdict.detail).toMatch(/address not allowed/);
    const j = JSON.parse(out.stdout);
    expect(j.claims).toMatchObject({ attest: "A", orig: { tn: "15125550100" } });
    expect(j.verdict).toMatchObject({ verstat: "TN-Validation-Passed", reason: "passed" });
    const bad = run(["stir", "verify", h, "--from", "+15125550111", "--to", "+15125550199", "--anchors", join(dir, "roots.pem")]);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/verdict: +TN-Validation-Failed \(orig_mismatch\)/);
    server.close();
    pki.cleanup();
  });
});
