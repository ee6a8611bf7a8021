#!/usr/bin/env node
/**
 * The didgate command line (contract section 1). User errors print a message and exit 1, never a
 * stack trace.
 */
import { Didgate, StartError } from "./app.js";
import { ConfigError, loadConfig, resolvePath, type LoadedConfig } from "./config/load.js";
import { Decider } from "./routing/decide.js";
import { lookupJson } from "./routing/explain.js";
import { loadRouteFileInWorker } from "./routing/sources/file.js";
import { routesCommand } from "./routing/sources/routes-cli.js";
import { dlqCommand } from "./delivery/dlq.js";

const USAGE = `didgate: SIP/SMPP edge routing for virtual phone numbers

usage:
  didgate serve [--config FILE]
  didgate lookup NUMBER [--caller NUMBER] [--at ISO8601] [--config FILE]
  didgate check-config [--config FILE]
  didgate routes import FILE [--replace] [--atomic] | set KEY JSON | del KEY | export [--format yaml|json|csv] | reload [--force] | functions
  didgate dlq list | replay ID…|--all | drop ID…|--all

Settings can be overridden with DIDGATE_<PATH> environment variables (DIDGATE_ROUTES_REDIS_URL=…).
`;

export class UsageError extends Error {}

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string | true>;
}

const VALUE_FLAGS = new Set(["config", "caller", "at", "format"]);

export function parseArgs(argv: string[]): ParsedArgs {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (eq >= 0) flags.set(name, a.slice(eq + 1));
      else if (VALUE_FLAGS.has(name)) {
        const v = argv[i + 1];
        if (v === undefined) throw new UsageError(`--${name} needs a value`);
        flags.set(name, v);
        i++;
      } else flags.set(name, true);
    } else if (a === "-h") flags.set("help", true);
    else positional.push(a);
  }
  return { positional, flags };
}

function str(flags: Map<string, string | true>, name: string): string | undefined {
  const v = flags.get(name);
  return typeof v === "string" ? v : undefined;
}

function out(s: string): void {
  process.stdout.write(s.endsWith("\n") ? s : s + "\n");
}

function config(args: ParsedArgs): LoadedConfig {
  return loadConfig(str(args.flags, "config"));
}

async function serve(args: ParsedArgs): Promise<number> {
  const app = new Didgate(config(args));
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.logger.info({ signal }, "signal received, draining");
    app.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        app.logger.error({ err: (err as Error).message }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", () => {
    try {
      app.reload();
    } catch (err) {
      app.logger.error({ err: (err as Error).message }, "config reload failed");
    }
  });
  await app.start();
  return -1; // keep running
}

async function lookup(args: ParsedArgs): Promise<number> {
  const number = args.positional[1];
  if (!number) throw new UsageError("lookup needs a NUMBER");
  const loaded = config(args);
  let atMs = Date.now();
  const at = str(args.flags, "at");
  if (at !== undefined) {
    atMs = Date.parse(at);
    if (!Number.isFinite(atMs)) throw new UsageError(`--at ${JSON.stringify(at)} is not an ISO 8601 time`);
  }
  const file = resolvePath(loaded.baseDir, loaded.config.routes.file);
  const r = await loadRouteFileInWorker(file);
  if (!r.ok) throw new ConfigError(r.errors);
  const caller = str(args.flags, "caller");
  const res = lookupJson(r.table, new Decider(), caller === undefined ? { number, atMs } : { number, caller, atMs });
  if (!res.ok) throw new UsageError(res.error);
  out(JSON.stringify(res.json, null, 2));
  return 0;
}

async function checkConfig(args: ParsedArgs): Promise<number> {
  const loaded = config(args);
  const errors: string[] = [];
  let entries = 0;
  if (!loaded.config.routes.redis) {
    const r = await loadRouteFileInWorker(resolvePath(loaded.baseDir, loaded.config.routes.file));
    if (r.ok) entries = r.table.size;
    else errors.push(...r.errors);
  }
  if (errors.length > 0) throw new ConfigError(errors);
  out(`config OK: ${loaded.path}${loaded.config.routes.redis ? " (routes from Redis)" : `, ${entries} routes`}`);
  return 0;
}

/** argv without --config FILE / --config=FILE (the subcommands parse their own flags). */
function stripConfigFlag(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--config") i++;
    else if (!a.startsWith("--config=")) out.push(a);
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const cmd = args.positional[0];
  if (args.flags.has("help") || cmd === undefined || cmd === "help") {
    out(USAGE);
    return cmd === undefined && !args.flags.has("help") ? 1 : 0;
  }
  switch (cmd) {
    case "serve":
      return serve(args);
    case "lookup":
      return lookup(args);
    case "check-config":
      return checkConfig(args);
    case "routes": {
      const loaded = config(args);
      const all = stripConfigFlag(argv);
      const rest = all.slice(all.indexOf("routes") + 1);
      return routesCommand(rest, loaded.config.routes.redis, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
    }
    case "dlq": {
      const loaded = config(args);
      const redis = loaded.config.routes.redis;
      if (!redis) throw new UsageError("dlq needs routes.redis in the config (the spool and its dead letters live in Redis)");
      const all = stripConfigFlag(argv);
      return dlqCommand(all.slice(all.indexOf("dlq") + 1), redis.url, redis.prefix, (s) => process.stdout.write(s));
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
  }
}

function fail(err: unknown): never {
  if (err instanceof ConfigError || err instanceof StartError) {
    process.stderr.write(`didgate: invalid configuration:\n${err.errors.map((e) => `  - ${e}`).join("\n")}\n`);
  } else if (err instanceof UsageError) {
    process.stderr.write(`didgate: ${err.message}\n\n${USAGE}`);
  } else if (err instanceof Error && "code" in err && (err as NodeJS.ErrnoException).syscall) {
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    process.stderr.write(`didgate: ${e.syscall} ${e.address ?? ""}${e.port ? ":" + e.port : ""} failed: ${e.code}\n`);
  } else {
    process.stderr.write(`didgate: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exit(1);
}

main(process.argv.slice(2)).then((code) => {
  if (code >= 0) process.exit(code);
}, fail);
