/**
 * `didgate routes …`: read and write the Redis routing table.
 *
 * Exit codes: 0 done, 1 invalid input or Redis error (every error listed), 2 usage.
 */
import { readFileSync } from "node:fs";
import { routeKeyPlanError } from "../routing/number-plan.js";
import type { RouteFormat } from "../routing/sources/document.js";
import { exportRoutes, importProgress, readImportFile } from "../routing/sources/routes-io.js";
import { loadFunctionLibrary, RedisRouteWriter, RouteValidationError } from "../routing/sources/redis-writer.js";
import { bool, line, parseCommand, str, UsageError, withUsage, type Io } from "./args.js";
import { errMessage } from "../util/errors.js";
import { ROUTES_SUBCOMMANDS, ROUTES_USAGE } from "./usage.js";
import { CliRedisError, connectCli, NO_REDIS, resolveSettings, type RedisSettings } from "./redis.js";

const FORMATS: readonly string[] = ["yaml", "json", "csv"];

function subUsage(name: string): string {
  return `usage: ${ROUTES_SUBCOMMANDS[name]!.usage}\n  -c, --config FILE   config file\n`;
}

/**
 * Runs one `routes` subcommand. `argv` is what follows `routes`. `redis` gives the routes.redis
 * settings (or a function of the --config path that loads them). Returns the exit code; usage
 * errors are thrown as UsageError.
 */
export async function routesCommand(
  argv: string[],
  redis: RedisSettings,
  out: (s: string) => void,
  err: (s: string) => void = out,
  opts: { tty?: boolean; now?: () => number } = {},
): Promise<number> {
  return withUsage(() => runRoutes(argv, redis, { out, err }, opts), err);
}

async function runRoutes(argv: string[], redis: RedisSettings, io: Io, opts: { tty?: boolean; now?: () => number }): Promise<number> {
  const name = argv[0];
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    if (name === undefined) throw new UsageError("routes needs a subcommand", ROUTES_USAGE);
    io.out(ROUTES_USAGE);
    return 0;
  }
  const sub = Object.hasOwn(ROUTES_SUBCOMMANDS, name) ? ROUTES_SUBCOMMANDS[name]! : undefined;
  if (!sub) throw new UsageError(`unknown routes subcommand ${JSON.stringify(name)}`, ROUTES_USAGE);
  const usage = subUsage(name);
  const p = parseCommand(argv.slice(1), sub.options, usage, sub);
  if (p === "help") {
    io.out(usage);
    return 0;
  }
  const format = str(p, "format");
  if (format !== undefined && !FORMATS.includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(", ")}`, usage);
  const [a0, a1] = p.positionals;

  // Validate the input before connecting.
  let importEntries: [string, unknown][] | undefined;
  let importOutbound: [string, unknown][] | undefined;
  let badEntries = 0;
  let setValue: unknown;
  if (name === "import") {
    const file = a0!;
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      io.err(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? errMessage(e)})\n`);
      return 1;
    }
    const doc = readImportFile(file, text, format as RouteFormat | undefined, io.err, routeKeyPlanError);
    if (doc.stopped) return 1;
    badEntries = doc.bad;
    if (badEntries > 0 && bool(p, "atomic")) {
      io.err(`${badEntries} bad ${badEntries === 1 ? "entry" : "entries"}; nothing imported (--atomic)\n`);
      return 1;
    }
    importEntries = doc.entries;
    importOutbound = doc.outbound;
  } else if (name === "set") {
    // Outbound keys are destination prefixes, not DIDs: no number-plan check.
    const e = bool(p, "outbound") ? undefined : routeKeyPlanError(a0!);
    if (e) {
      io.err(`route ${JSON.stringify(a0)}: ${e}\n`);
      return 1;
    }
    try {
      setValue = JSON.parse(a1!);
    } catch (e) {
      io.err(`route ${JSON.stringify(a0)}: JSON is not valid (${errMessage(e)})\n`);
      return 1;
    }
  }

  const cfg = resolveSettings(redis, str(p, "config"));
  if (!cfg) {
    io.err(NO_REDIS("the routes commands read and write the Redis routing table"));
    return 1;
  }
  let client;
  try {
    client = await connectCli(cfg.url, "didgate-routes-cli");
  } catch (e) {
    io.err(line(errMessage(e)));
    return 1;
  }
  try {
    const writer = new RedisRouteWriter(client, { prefix: cfg.prefix, streamMaxlen: cfg.stream_maxlen ?? 1_000_000 });
    switch (name) {
      case "import": {
        const now = opts.now ?? (() => performance.now());
        const started = now();
        const replace = bool(p, "replace");
        const total = importEntries!.length;
        // Progress on a terminal (stderr); otherwise the summary line only.
        const tty = opts.tty ?? process.stderr.isTTY === true;
        const progress = tty ? importProgress(total, io.err, now) : undefined;
        progress?.start();
        const r = await writer.import(importEntries!, { replace, ...(progress ? { onProgress: progress.update } : {}) });
        progress?.end();
        io.out(
          `imported ${total} routes: ${r.written} written, ${r.unchanged} unchanged` +
            (replace ? `, ${r.deleted} deleted` : "") +
            (badEntries > 0 ? `; ${badEntries} bad ${badEntries === 1 ? "entry" : "entries"} skipped (listed above)` : "") +
            ` (${Math.round(now() - started)} ms)\n`,
        );
        if (importOutbound !== undefined) {
          const o = await writer.importOutbound(importOutbound, replace);
          io.out(`imported ${o.written} outbound entries` + (replace ? `, ${o.deleted} deleted` : "") + "\n");
        }
        return badEntries > 0 ? 1 : 0;
      }
      case "set": {
        const id = bool(p, "outbound") ? await writer.setOutbound(a0!, setValue) : await writer.set(a0!, setValue);
        io.out(`set ${a0} (change ${id})\n`);
        return 0;
      }
      case "del": {
        const r = bool(p, "outbound") ? await writer.delOutbound(a0!) : await writer.del(a0!);
        io.out(r.existed ? `deleted ${a0} (change ${r.id})\n` : `${a0} was not in the table (change ${r.id} written anyway)\n`);
        return 0;
      }
      case "export": {
        // Streamed in key order, a batch at a time (with the outbound: table for yaml/json).
        await exportRoutes(writer, (format as RouteFormat | undefined) ?? "json", io.out, io.err);
        return 0;
      }
      case "reload": {
        const force = bool(p, "force");
        const id = await writer.requestReload(force);
        io.out(`reload${force ? " --force" : ""} requested (change ${id}); every running edge reloads the table from Redis${force ? ", past the shrink guard" : ""}\n`);
        return 0;
      }
      default: {
        const e = await loadFunctionLibrary(client);
        if (e) {
          io.err(`could not load the didgate function library: ${e}\n`);
          return 1;
        }
        io.out("didgate function library loaded (FCALL didgate_set / didgate_del / didgate_reload)\n");
        return 0;
      }
    }
  } catch (e) {
    if (e instanceof RouteValidationError) {
      io.err(e.errors.map((x) => x + "\n").join(""));
      return 1;
    }
    if (e instanceof CliRedisError) io.err(line(e.message));
    else io.err(`Redis error: ${errMessage(e)}\n`);
    return 1;
  } finally {
    client.disconnect();
  }
}
