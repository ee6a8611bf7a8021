/**
 * `didgate routes …`: read and write the Redis routing table (CONTRACT sections 1 and 3).
 *
 *   routes import FILE [--replace] [--atomic] [--format yaml|json|csv]
 *   routes set [--outbound] KEY JSON                 (--outbound: the outbound table, carriers by destination)
 *   routes del [--outbound] KEY
 *   routes export [--format json|yaml|csv]          (to stdout; re-importable; yaml/json include outbound:)
 *   routes reload [--force]                          (every running edge reloads the table)
 *   routes functions                                 (FUNCTION LOAD REPLACE the didgate library)
 *
 * Exit codes: 0 done, 1 invalid input or Redis error (every error listed), 2 usage.
 *
 * An import reads the file entry by entry and reports every bad entry with its line and column;
 * the good ones are imported (exit 1 all the same, so that scripts notice), or with --atomic
 * nothing is. On a terminal it shows its progress (entries, rate, time left) on stderr. An export
 * writes the routes in key order batch by batch, never the whole table as one string.
 */
import { readFileSync } from "node:fs";
import { formatDocError, formatFromPath, scanRouteDocument, validateEntry, type RouteFormat } from "./document.js";
import { type RedisClient, RedisConnector } from "../../redis/client.js";
import { parseRedisUrl } from "../../redis/endpoint.js";
import { loadFunctionLibrary, RedisRouteWriter, RouteValidationError } from "./redis-writer.js";
import { resolvePlain } from "./yaml-fast.js";
import { parseOutboundSection } from "../outbound.js";

/** The part of `routes.redis` the CLI needs. */
export interface RoutesCliRedisConfig {
  url: string;
  /** The endpoint already parsed (the daemon's); else `url` is parsed here. */
  connector?: RedisConnector;
  prefix: string;
  stream_maxlen: number;
}

export const ROUTES_USAGE = `usage:
  didgate routes import FILE [--replace] [--atomic] [--format yaml|json|csv]
  didgate routes set [--outbound] KEY JSON
  didgate routes del [--outbound] KEY
  didgate routes export [--format json|yaml|csv]
  didgate routes reload [--force]
  didgate routes functions
`;

const FORMATS: readonly string[] = ["yaml", "json", "csv"];

/**
 * Runs one `routes` subcommand. `argv` is what follows `routes` (a leading "routes" is ignored).
 * `out` and `err` receive text verbatim (newlines included). Returns the exit code.
 */
export async function routesCommand(
  argv: string[],
  redisCfg: RoutesCliRedisConfig | undefined,
  out: (s: string) => unknown,
  err: (s: string) => void = out,
  opts: { tty?: boolean; now?: () => number } = {},
): Promise<number> {
  const tty = opts.tty ?? process.stderr.isTTY === true;
  const now = opts.now ?? (() => performance.now());
  const args = argv[0] === "routes" ? argv.slice(1) : argv.slice();
  const sub = args.shift();
  const flags = new Set<string>();
  let format: string | undefined;
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--format") {
      format = args[++i];
      if (format === undefined || !FORMATS.includes(format)) {
        err(`--format must be one of ${FORMATS.join(", ")}\n`);
        return 2;
      }
    } else if (a.startsWith("--format=")) {
      format = a.slice(9);
      if (!FORMATS.includes(format)) {
        err(`--format must be one of ${FORMATS.join(", ")}\n`);
        return 2;
      }
    } else if (a === "--replace" || a === "--force" || a === "--atomic" || a === "--outbound") flags.add(a);
    else if (a.startsWith("--") && a.length > 2) {
      err(`unknown option ${a}\n${ROUTES_USAGE}`);
      return 2;
    } else positional.push(a);
  }
  const need = (n: number, allowed: string[] = []): boolean => {
    for (const f of flags) if (!allowed.includes(f)) return false;
    return positional.length === n;
  };
  let valid: boolean;
  switch (sub) {
    case "import":
      valid = need(1, ["--replace", "--atomic"]);
      break;
    case "set":
      valid = need(2, ["--outbound"]) && format === undefined;
      break;
    case "del":
      valid = need(1, ["--outbound"]) && format === undefined;
      break;
    case "export":
      valid = need(0);
      break;
    case "reload":
      valid = need(0, ["--force"]) && format === undefined;
      break;
    case "functions":
      valid = need(0) && format === undefined;
      break;
    default:
      valid = false;
  }
  if (!valid) {
    err(ROUTES_USAGE);
    return 2;
  }
  if (!redisCfg) {
    err("routes.redis is not configured: the routes commands read and write the Redis routing table (set routes.redis.url or DIDGATE_ROUTES_REDIS_URL)\n");
    return 1;
  }

  // Validate the input before connecting.
  let importEntries: [string, unknown][] | undefined;
  let importOutbound: [string, unknown][] | undefined;
  let badEntries = 0;
  let setValue: unknown;
  if (sub === "import") {
    const file = positional[0]!;
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      err(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})\n`);
      return 1;
    }
    const entries: [string, unknown][] = [];
    const bad = new Set<string>();
    const stop = scanRouteDocument(text, (format as RouteFormat | undefined) ?? formatFromPath(file), {
      entry(key, value, line, col) {
        const route = validateEntry(key, value, line, col, (e) => err(formatDocError(e, file) + "\n"));
        if (route === undefined) {
          bad.add(`${line}:${col}:${key}`);
          return;
        }
        entries.push([key, route.source]);
      },
      reset() {
        entries.length = 0;
        bad.clear();
        importOutbound = undefined;
      },
      outbound(value, line, col) {
        const o = parseOutboundSection(value);
        for (const message of o.errors) {
          err(formatDocError({ line, col, message }, file) + "\n");
          bad.add(`${line}:${col}:outbound:${message}`);
        }
        importOutbound = o.entries.map(([k, e]) => [k, e.source]);
      },
    });
    if (stop.length > 0) {
      err(stop.map((e) => formatDocError(e, file) + "\n").join("") + "the file cannot be read past this; nothing imported\n");
      return 1;
    }
    badEntries = bad.size;
    if (badEntries > 0 && flags.has("--atomic")) {
      err(`${badEntries} bad ${badEntries === 1 ? "entry" : "entries"}; nothing imported (--atomic)\n`);
      return 1;
    }
    importEntries = entries;
  } else if (sub === "set") {
    try {
      setValue = JSON.parse(positional[1]!);
    } catch (e) {
      err(`route ${JSON.stringify(positional[0])}: JSON is not valid (${(e as Error).message})\n`);
      return 1;
    }
  }

  let redis: RedisConnector;
  try {
    redis = redisCfg.connector ?? new RedisConnector(parseRedisUrl(redisCfg.url));
  } catch (e) {
    err(`routes.redis.url: ${(e as Error).message}\n`);
    return 1;
  }
  const client: RedisClient = redis.client({ name: "didgate-routes-cli", redis: { retryStrategy: () => null, maxRetriesPerRequest: 1, connectTimeout: 5000 } });
  client.on("error", () => undefined);
  try {
    try {
      await client.connect();
    } catch (e) {
      err(`cannot connect to Redis at ${redis.describe()}: ${(e as Error).message}\n`);
      return 1;
    }
    const writer = new RedisRouteWriter(client, { prefix: redisCfg.prefix, streamMaxlen: redisCfg.stream_maxlen });
    switch (sub) {
      case "import": {
        const started = now();
        const total = importEntries!.length;
        let lastShown = -Infinity;
        const show = (done: number) => {
          const t = now();
          if (done < total && t - lastShown < 200) return;
          lastShown = t;
          const rate = done / Math.max(0.001, (t - started) / 1000);
          const eta = rate > 0 ? Math.ceil((total - done) / rate) : 0;
          err(`\r${done}/${total} entries (${Math.round(rate)}/s, ${done < total ? `about ${eta} s left` : "done"})\x1b[K`);
        };
        if (tty && total > 0) err(`importing ${total} entries…`);
        const r = await writer.import(importEntries!, { replace: flags.has("--replace"), ...(tty ? { onProgress: show } : {}) });
        if (tty && total > 0) err("\n");
        out(
          `imported ${total} routes: ${r.written} written, ${r.unchanged} unchanged` +
            (flags.has("--replace") ? `, ${r.deleted} deleted` : "") +
            (badEntries > 0 ? `; ${badEntries} bad ${badEntries === 1 ? "entry" : "entries"} skipped (listed above)` : "") +
            ` (${Math.round(now() - started)} ms)\n`,
        );
        if (importOutbound !== undefined) {
          const o = await writer.importOutbound(importOutbound, flags.has("--replace"));
          out(`imported ${o.written} outbound entries` + (flags.has("--replace") ? `, ${o.deleted} deleted` : "") + "\n");
        }
        return badEntries > 0 ? 1 : 0;
      }
      case "set": {
        const id = flags.has("--outbound") ? await writer.setOutbound(positional[0]!, setValue) : await writer.set(positional[0]!, setValue);
        out(`set ${positional[0]} (change ${id})\n`);
        return 0;
      }
      case "del": {
        const r = flags.has("--outbound") ? await writer.delOutbound(positional[0]!) : await writer.del(positional[0]!);
        out(r.existed ? `deleted ${positional[0]} (change ${r.id})\n` : `${positional[0]} was not in the table (change ${r.id} written anyway)\n`);
        return 0;
      }
      case "export": {
        await exportRoutes(writer, (format as RouteFormat | undefined) ?? "json", out, err);
        return 0;
      }
      case "reload": {
        const force = flags.has("--force");
        const id = await writer.requestReload(force);
        out(`reload${force ? " --force" : ""} requested (change ${id}); every running edge reloads the table from Redis${force ? ", past the shrink guard" : ""}\n`);
        return 0;
      }
      case "functions": {
        const e = await loadFunctionLibrary(client);
        if (e) {
          err(`could not load the didgate function library: ${e}\n`);
          return 1;
        }
        out("didgate function library loaded (FCALL didgate_set / didgate_del / didgate_reload)\n");
        return 0;
      }
    }
    return 2;
  } catch (e) {
    if (e instanceof RouteValidationError) {
      err(e.errors.map((x) => x + "\n").join(""));
      return 1;
    }
    err(`Redis error: ${(e as Error).message}\n`);
    return 1;
  } finally {
    client.disconnect();
  }
}

/**
 * Writes the routes hash in key order without holding it whole: the keys are read (HSCAN) and
 * sorted, the entries fetched and written a batch at a time. Entries that do not validate are
 * left out and listed on err.
 */
export async function exportRoutes(writer: RedisRouteWriter, format: RouteFormat, outFn: (s: string) => unknown, err: (s: string) => void, batch = 1000): Promise<number> {
  // `out` is process.stdout.write on the command line: false means its buffer is full, so wait
  // for it to drain rather than buffer the whole table.
  const out = async (s: string) => {
    if ((await outFn(s)) === false) await new Promise<void>((r) => process.stdout.once("drain", () => r()));
  };
  const keys: string[] = [];
  for await (const b of writer.scanKeys()) for (const k of b) keys.push(k);
  keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let first = true;
  let written = 0;
  await out(format === "csv" ? "key,json\n" : format === "json" ? '{\n  "routes": {' : "routes:\n");
  for (let i = 0; i < keys.length; i += batch) {
    const ks = keys.slice(i, i + batch);
    const jsons = await writer.client.hmget(writer.keys.routes, ...ks);
    let chunk = "";
    for (let j = 0; j < ks.length; j++) {
      const key = ks[j]!;
      const json = jsons[j];
      if (json === null || json === undefined) continue; // deleted meanwhile
      let value: unknown;
      try {
        value = JSON.parse(json);
      } catch (e) {
        err(`skipped: route ${JSON.stringify(key)}: not valid JSON (${(e as Error).message})\n`);
        continue;
      }
      if (validateEntry(key, value, 0, 0, (e) => err(`skipped: ${e.message}\n`)) === undefined) continue;
      if (format === "csv") chunk += `${csvField(key)},${csvField(JSON.stringify(value))}\n`;
      else if (format === "json") chunk += `${first ? "" : ","}\n    ${JSON.stringify(key)}: ${JSON.stringify(value)}`;
      else chunk += yamlEntry(key, value, "  ");
      first = false;
      written++;
    }
    if (chunk) await out(chunk);
  }
  // CSV has one row per route: no place for the outbound table.
  const o = format === "csv" ? undefined : await writer.exportOutbound();
  for (const e of o?.errors ?? []) err(`skipped: ${e}\n`);
  const outbound = o?.entries ?? [];
  if (format === "json") {
    let tail = first ? "}" : "\n  }";
    if (outbound.length > 0) tail += ',\n  "outbound": {' + outbound.map(([k, v]) => `\n    ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(",") + "\n  }";
    await out(tail + "\n}\n");
  } else if (format === "yaml" && outbound.length > 0) {
    await out("outbound:\n" + outbound.map(([k, v]) => yamlEntry(k, v, "  ")).join(""));
  }
  return written;
}

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A mapping key: plain when it reads back as the same string, double-quoted otherwise. */
function yamlKey(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) && resolvePlain(k) === k ? k : JSON.stringify(k);
}

function yamlScalar(v: unknown): string {
  // JSON's string escapes are YAML double-quoted escapes; numbers, booleans and null read back alike.
  return JSON.stringify(v) ?? "null";
}

function isScalar(v: unknown): boolean {
  return v === null || typeof v !== "object";
}

/** One `key: value` in block style at the given indentation (lists of scalars in flow style). */
function yamlEntry(key: string, value: unknown, indent: string): string {
  return `${indent}${yamlKey(key)}:${yamlValue(value, indent)}`;
}

/** The text after "key:" (a space and an inline value, or a newline and a nested block). */
function yamlValue(v: unknown, indent: string): string {
  if (isScalar(v)) return ` ${yamlScalar(v)}\n`;
  if (Array.isArray(v)) {
    if (v.length === 0 || v.every(isScalar)) return ` [${v.map(yamlScalar).join(", ")}]\n`;
    let s = "\n";
    for (const item of v) s += yamlItem(item, indent + "  ");
    return s;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length === 0) return " {}\n";
  let s = "\n";
  for (const [k, x] of entries) s += yamlEntry(k, x, indent + "  ");
  return s;
}

/** One "- item" of a block sequence. */
function yamlItem(v: unknown, indent: string): string {
  if (isScalar(v) || Array.isArray(v) || Object.keys(v as object).length === 0) {
    const inline = yamlValue(v, indent);
    if (inline.startsWith(" ")) return `${indent}-${inline}`;
    return `${indent}-${inline.replace(/^\n/, "\n")}`;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  let s = "";
  entries.forEach(([k, x], i) => {
    s += i === 0 ? `${indent}- ${yamlKey(k)}:${yamlValue(x, indent + "  ")}` : yamlEntry(k, x, indent + "  ");
  });
  return s;
}
