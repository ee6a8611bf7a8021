/** Helpers to run a didgate instance in-process (tests) with a config built from an object. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { Didgate, type DidgateOptions } from "../../src/app.js";
import { validateConfig, type LoadedConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/ops/logger.js";

export function tempDir(prefix = "didgate-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A LoadedConfig from a raw object; relative paths resolve against baseDir. */
export function makeConfig(raw: Record<string, unknown>, baseDir: string): LoadedConfig {
  const v = validateConfig(raw);
  if (!v.ok) throw new Error(v.errors.join("\n"));
  return { config: v.config, path: undefined, baseDir };
}

export function writeRoutes(dir: string, routes: Record<string, unknown>, name = "routes.yaml"): string {
  const p = join(dir, name);
  writeFileSync(p, YAML.stringify({ routes }));
  return p;
}

/** Start an instance with admin on an ephemeral loopback port and no SIP/SMPP listeners unless given. */
export async function startApp(raw: Record<string, unknown>, baseDir: string, opts: DidgateOptions = {}): Promise<{ app: Didgate; admin: string }> {
  const cfg = makeConfig({ admin: { listen: "127.0.0.1:0" }, sip: { listen: [] }, smpp: { listen: null }, log: { level: "silent" }, ...raw }, baseDir);
  const app = new Didgate(cfg, { logger: createLogger(process.env.DIDGATE_TEST_LOG ?? "silent"), ...opts });
  await app.start();
  return { app, admin: `http://127.0.0.1:${app.adminAddress!.port}` };
}

export async function waitFor<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 5000, stepMs = 20): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`waitFor timed out${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
