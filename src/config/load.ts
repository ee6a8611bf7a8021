/**
 * Loading the config: YAML file → DIDGATE_* environment overrides → schema validation.
 * Every error is collected and reported with its path, the bad value and what is allowed.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import type { z } from "zod";
import { configSchema, type Config } from "./schema.js";
import { errMessage } from "../util/errors.js";

/** A user error: printed as its message, no stack trace, exit 1. */
/** Longest message line shown; a longer one keeps its start and its end (the rule it broke). */
const MAX_MESSAGE = 400;

/**
 * A message cut to about `max` characters: its start and its last 100 characters, with how much
 * was cut. A config or route file can hold megabytes in one value; a message must stay readable.
 */
export function clipMessage(s: string, max = MAX_MESSAGE): string {
  if (s.length <= max) return s;
  const tail = 100;
  const head = max - tail - 30;
  return `${s.slice(0, head)}… (${s.length - head - tail} characters cut) …${s.slice(s.length - tail)}`;
}

export class ConfigError extends Error {
  readonly errors: string[];
  constructor(errors: string[]) {
    const clipped = errors.map((e) => clipMessage(e));
    super(clipped.join("\n"));
    this.errors = clipped;
    this.name = "ConfigError";
  }
}

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the config file read (undefined when built from an object). */
  path: string | undefined;
  /** Directory that relative paths in the config resolve against. */
  baseDir: string;
}

/** The package's root directory (where config/ and package.json live). */
export function packageRoot(): string {
  // dist/src/config/load.js or src/config/load.ts → three or two levels up.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(resolve(dir, "package.json"))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

/** Where `didgate` looks for its config when --config is not given. */
export function defaultConfigPath(): string {
  const local = resolve(process.cwd(), "config/didgate.yaml");
  if (existsSync(local)) return local;
  return resolve(packageRoot(), "config/didgate.yaml");
}

/**
 * Relative paths in a config resolve against the directory holding the config file, or its
 * parent when that directory is named "config" (so the bundled config/didgate.yaml can say
 * `file: config/routes.yaml`, and /etc/didgate/didgate.yaml can say `file: routes.yaml`).
 */
export function configBaseDir(configPath: string): string {
  const dir = dirname(configPath);
  return basename(dir) === "config" ? dirname(dir) : dir;
}

export function resolvePath(baseDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

function formatValue(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 80 ? s.slice(0, 77) + "..." : s;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += (out ? "." : "") + formatKey(String(p));
  }
  return out || "(top level)";
}

/** Turn zod issues into one line each: "path: got VALUE; what is allowed". */
export function formatIssues(issues: readonly z.core.$ZodIssue[], prefix = ""): string[] {
  const out: string[] = [];
  for (const i of issues) {
    const path = formatPath([...(prefix ? [prefix] : []), ...i.path]);
    const input = (i as { input?: unknown }).input;
    if (i.code === "unrecognized_keys") {
      for (const k of i.keys) out.push(`${path === "(top level)" ? formatKey(k) : `${path}.${formatKey(k)}`}: unknown key`);
      continue;
    }
    const got = i.code === "invalid_type" && input === undefined ? "missing" : `got ${formatValue(input)}`;
    let msg = i.message;
    if (i.code === "invalid_value" && "values" in i) msg = `must be one of ${i.values.map((v) => JSON.stringify(v)).join(", ")}`;
    else if (i.code === "invalid_type") msg = `must be ${i.expected}${input === undefined ? " (required)" : ""}`;
    else if (i.code === "too_small") msg = `must be at least ${String(i.minimum)}${i.origin === "array" ? " item(s)" : i.origin === "string" ? " character(s)" : ""}`;
    else if (i.code === "too_big") msg = `must be at most ${String(i.maximum)}${i.origin === "array" ? " item(s)" : i.origin === "string" ? " character(s)" : ""}`;
    out.push(clipMessage(`${path}: ${got}; ${msg}`));
  }
  return out;
}

function formatKey(k: string): string {
  return k.length > 80 ? `${k.slice(0, 77)}...` : k;
}

// ---- environment overrides -------------------------------------------------------------------

type AnySchema = z.core.$ZodType;

function unwrap(s: AnySchema): AnySchema {
  let cur = s as unknown as { def: { type: string; innerType?: AnySchema; in?: AnySchema } };
  for (let i = 0; i < 10; i++) {
    const t = cur.def.type;
    if ((t === "default" || t === "optional" || t === "nullable" || t === "prefault" || t === "catch" || t === "readonly") && cur.def.innerType) {
      cur = cur.def.innerType as unknown as typeof cur;
    } else if (t === "pipe" && cur.def.in) {
      cur = cur.def.in as unknown as typeof cur;
    } else break;
  }
  return cur as unknown as AnySchema;
}

function shapeOf(s: AnySchema): Record<string, AnySchema> | undefined {
  const u = unwrap(s) as unknown as { def: { type: string; shape?: Record<string, AnySchema> } };
  return u.def.type === "object" ? u.def.shape : undefined;
}

function elementOf(s: AnySchema): AnySchema | undefined {
  const u = unwrap(s) as unknown as { def: { type: string; element?: AnySchema } };
  return u.def.type === "array" ? u.def.element : undefined;
}

/** Env names that are not config paths. */
const RESERVED_ENV = new Set(["DIDGATE_CONFIG"]);

/**
 * Resolve an env var name (without DIDGATE_) to a config path, walking the schema: key names may
 * contain underscores ("unknown_source"), array items are numeric segments (SIP_TRUNKS_0_CPS).
 */
export function envPath(name: string): (string | number)[] | undefined {
  const tokens = name.toLowerCase().split("_").filter((t) => t.length > 0);
  const out: (string | number)[] = [];
  let schema: AnySchema | undefined = configSchema as unknown as AnySchema;
  let i = 0;
  while (i < tokens.length) {
    if (!schema) return undefined;
    const elem = elementOf(schema);
    if (elem) {
      if (!/^\d+$/.test(tokens[i]!)) {
        // Whole-array override: DIDGATE_SIP_LISTEN='["udp://…"]'
        return undefined;
      }
      out.push(Number(tokens[i]));
      schema = elem;
      i++;
      continue;
    }
    const shape = shapeOf(schema);
    if (!shape) return undefined;
    let matched = false;
    for (let j = tokens.length; j > i; j--) {
      const key = tokens.slice(i, j).join("_");
      if (key in shape) {
        out.push(key);
        schema = shape[key];
        i = j;
        matched = true;
        break;
      }
    }
    if (!matched) return undefined;
  }
  return out;
}

function setPath(obj: Record<string, unknown>, path: (string | number)[], value: unknown): void {
  let cur: Record<string | number, unknown> = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!;
    const nextIsIndex = typeof path[i + 1] === "number";
    let child = cur[k];
    if (typeof child !== "object" || child === null) {
      child = nextIsIndex ? [] : {};
      cur[k] = child;
    }
    cur = child as Record<string | number, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/** Apply DIDGATE_* overrides to a raw (unvalidated) config object. Returns errors for unknown names. */
export function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): string[] {
  const errors: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("DIDGATE_") || RESERVED_ENV.has(name) || value === undefined) continue;
    const path = envPath(name.slice("DIDGATE_".length));
    if (!path || path.length === 0) {
      errors.push(`${name}: unknown setting (environment overrides are DIDGATE_ plus the config path, like DIDGATE_ROUTES_REDIS_URL)`);
      continue;
    }
    let parsed: unknown = value;
    try {
      parsed = YAML.parse(value);
    } catch {
      parsed = value;
    }
    // Strings that look like numbers stay numbers only where the schema wants one: zod reports otherwise.
    setPath(raw, path, parsed === null && value !== "null" && value !== "~" ? value : parsed);
  }
  return errors;
}

/**
 * Trunks, SMPP accounts and binds without their own `country_code` take `default_country_code`,
 * so every component that reads a peer's country code sees the effective one.
 */
function withDefaultCountryCode(c: Config): Config {
  const cc = c.default_country_code;
  if (cc === undefined) return c;
  for (const t of c.sip.trunks) t.country_code ??= cc;
  for (const a of c.smpp.accounts) a.country_code ??= cc;
  for (const b of c.smpp.binds) b.country_code ??= cc;
  return c;
}

/** Validate a raw config object (after env overrides). */
export function validateConfig(raw: unknown): { ok: true; config: Config } | { ok: false; errors: string[] } {
  const r = configSchema.safeParse(raw ?? {}, { reportInput: true });
  if (r.success) return { ok: true, config: withDefaultCountryCode(r.data) };
  return { ok: false, errors: formatIssues(r.error.issues) };
}

/** Read, override and validate. Throws ConfigError listing every problem. */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const file = resolve(path ?? env.DIDGATE_CONFIG ?? defaultConfigPath());
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError([`${file}: cannot read config (${(err as NodeJS.ErrnoException).code ?? errMessage(err)})`]);
  }
  let raw: unknown;
  try {
    raw = YAML.parse(text) ?? {};
  } catch (err) {
    throw new ConfigError([`${file}: not valid YAML: ${errMessage(err).split("\n")[0]}`]);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError([`${file}: the config must be a YAML mapping`]);
  const errors = applyEnv(raw as Record<string, unknown>, env);
  const v = validateConfig(raw);
  if (!v.ok) errors.push(...v.errors);
  if (errors.length > 0 || !v.ok) throw new ConfigError(errors.map((e) => `${file}: ${e}`));
  return { config: v.config, path: file, baseDir: configBaseDir(file) };
}

/** The route snapshot file of a config: routes.redis.snapshot, else routes.snapshot.json in state_dir ("" = off). */
export function snapshotPath(config: Config, baseDir: string): string {
  const s = config.routes.redis?.snapshot;
  if (s === "") return "";
  return s !== undefined ? resolvePath(baseDir, s) : resolvePath(resolvePath(baseDir, config.state_dir), "routes.snapshot.json");
}
