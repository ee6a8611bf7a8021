/**
 * `didgate routes …`: read and write the Redis routing table (CONTRACT sections 1 and 3).
 *
 *   routes import FILE [--replace] [--format yaml|json|csv]
 *   routes set [--outbound] KEY JSON                 (--outbound: the outbound table, carriers by destination)
 *   routes del [--outbound] KEY
 *   routes export [--format json|yaml|csv]          (to stdout; re-importable; yaml/json include outbound:)
 *   routes reload [--force]                          (every running edge reloads the table)
 *   routes functions                                 (FUNCTION LOAD REPLACE the didgate library)
 *
 * Exit codes: 0 done, 1 invalid input or Redis error (every error listed), 2 usage.
 */
import { readFileSync } from "node:fs";
import { formatFromPath, parseRouteDocument, serializeRoutes, type RouteFormat } from "./document.js";
import { type RedisClient, RedisConnector } from "../../redis/client.js";
import { parseRedisUrl } from "../../redis/endpoint.js";
import { loadFunctionLibrary, RedisRouteWriter, RouteValidationError } from "./redis-writer.js";

/** The part of `routes.redis` the CLI needs. */
export interface RoutesCliRedisConfig {
  url: string;
  /** The endpoint already parsed (the daemon's); else `url` is parsed here. */
  connector?: RedisConnector;
  prefix: string;
  stream_maxlen: number;
}

export const ROUTES_USAGE = `usage:
  didgate routes import FILE [--replace] [--format yaml|json|csv]
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
export async function routesCommand(argv: string[], redisCfg: RoutesCliRedisConfig | undefined, out: (s: string) => void, err: (s: string) => void = out): Promise<number> {
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
    } else if (a === "--replace" || a === "--force" || a === "--outbound") flags.add(a);
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
      valid = need(1, ["--replace"]);
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
    const doc = parseRouteDocument(text, (format as RouteFormat | undefined) ?? formatFromPath(file));
    if (doc.errors.length > 0) {
      err(doc.errors.map((e) => `${file}: ${e}\n`).join("") + `${doc.errors.length} error(s); nothing imported\n`);
      return 1;
    }
    importEntries = doc.entries.map(([k, r]) => [k, r.source]);
    if (doc.outbound !== undefined) importOutbound = doc.outbound.map(([k, e]) => [k, e.source]);
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
        const started = performance.now();
        const r = await writer.import(importEntries!, { replace: flags.has("--replace") });
        out(
          `imported ${importEntries!.length} routes: ${r.written} written, ${r.unchanged} unchanged` +
            (flags.has("--replace") ? `, ${r.deleted} deleted` : "") +
            ` (${Math.round(performance.now() - started)} ms)\n`,
        );
        if (importOutbound !== undefined) {
          const o = await writer.importOutbound(importOutbound, flags.has("--replace"));
          out(`imported ${o.written} outbound entries` + (flags.has("--replace") ? `, ${o.deleted} deleted` : "") + "\n");
        }
        return 0;
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
        const r = await writer.exportEntries();
        for (const e of r.errors) err(`skipped: ${e}\n`);
        const f = (format as RouteFormat | undefined) ?? "json";
        // CSV has one row per route: no place for the outbound table
        const o = f === "csv" ? undefined : await writer.exportOutbound();
        for (const e of o?.errors ?? []) err(`skipped: ${e}\n`);
        out(serializeRoutes(r.entries, f, o?.entries));
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
