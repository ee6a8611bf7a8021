/**
 * `didgate serve` takes a SIGHUP from the moment its entry point runs: one that comes while the
 * daemon's modules are still loading does not end the process, and the reload it asks for is
 * applied once the daemon has started.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { afterEach, describe, expect, it } from "vitest";
import { tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { freePort } from "../helpers/redis.js";
import { NODE } from "../helpers/serve.js";

// A preload that sends the process a SIGHUP at the moment the daemon's command modules are
// resolved, that is in the middle of loading, before any of them has run.
const PRELOAD =
  "data:text/javascript," +
  encodeURIComponent(
    `import { registerHooks } from "node:module";
let sent = false;
registerHooks({ resolve(specifier, context, next) {
  if (!sent && specifier === "./cli/index.js") { sent = true; process.stderr.write("preload: SIGHUP\\n"); process.kill(process.pid, "SIGHUP"); }
  return next(specifier, context);
} });`,
  );

let child: ReturnType<typeof spawn> | undefined;
afterEach(() => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  child = undefined;
});

describe("serve: SIGHUP while loading", () => {
  it("keeps running, serves, and reloads once started", async () => {
    const dir = tempDir();
    writeRoutes(dir, { "+15125550100": { voice: { targets: ["sip:+15125550100@127.0.0.5:5999"] } } });
    const adminPort = await freePort();
    const cfg = join(dir, "didgate.yaml");
    writeFileSync(
      cfg,
      YAML.stringify({
        sip: { listen: [`udp://127.0.0.1:${await freePort()}`] },
        smpp: { listen: null },
        routes: { file: "routes.yaml", watch: false },
        admin: { listen: `127.0.0.1:${adminPort}` },
        state_dir: join(dir, "state"),
        log: { level: "info" },
      }),
    );
    const c = spawn(NODE, ["--import", PRELOAD, "dist/src/cli.js", "serve", "--config", cfg], { stdio: ["ignore", "pipe", "pipe"] });
    child = c;
    let out = "";
    c.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    c.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<string>((r) => c.on("exit", (code, signal) => r(`exit ${code} ${signal}`)));
    const gone = (): Promise<never> => exited.then((e) => Promise.reject(new Error(`${e}\n${out}`)));

    // the signal was sent during loading; the daemon starts anyway and then applies the reload
    await Promise.race([gone(), waitFor(() => (out.includes('"config reloaded"') ? true : undefined), 20_000)]);
    expect(out).toContain("preload: SIGHUP");
    const lines = out.split("\n");
    const started = lines.findIndex((l) => l.includes('"didgate started"'));
    const reloaded = lines.findIndex((l) => l.includes('"config reloaded"'));
    expect(started).toBeGreaterThanOrEqual(0);
    expect(reloaded).toBeGreaterThan(started);
    expect(lines.filter((l) => l.includes('"config reloaded"'))).toHaveLength(1);
    expect((await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status).toBe(200);
    expect(c.exitCode).toBe(null);
    c.kill("SIGTERM");
    expect(await exited).toBe("exit 0 null");
  }, 40_000);
});
