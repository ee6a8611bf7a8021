/** Helpers to run a didgate instance in-process (tests) with a config built from an object. */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
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

/** The outbound message records a test's didgate wrote to `<dir>/records.jsonl` (records.jsonl.path). */
export function outboundRecords(dir: string): Record<string, any>[] {
  const p = join(dir, "records.jsonl");
  if (!existsSync(p)) return [];
  return readFileSync(p, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l))
    .filter((r) => r.type === "message" && r.direction === "outbound");
}

/** A JSON request to didgate's API listener with a bearer token (null: none); the body parsed. */
export async function apiCall(port: number, method: string, path: string, token: string | null, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}
