/**
 * The didgate command line: one module per command group, every command parsed strictly
 * (src/cli/args.ts). Exit codes: 0 done, 1 a user error (invalid config, input, Redis
 * unreachable; the message says which), 2 a usage error (the command's usage on stderr).
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError, loadConfig, packageRoot } from "../config/load.js";
import { line, processIo, UsageError, type Io } from "./args.js";
import type { CliRedisConfig } from "./redis.js";
import { CHECK_CONFIG_USAGE, DLQ_USAGE, LOOKUP_USAGE, MESSAGES_USAGE, NUMBERS_USAGE, POOLS_USAGE, ROUTES_USAGE, SERVE_USAGE, SESSIONS_USAGE, STATUS_USAGE, STIR_USAGE, USERS_USAGE } from "./usage.js";

const redisFromConfig = (configPath: string | undefined): CliRedisConfig | undefined => loadConfig(configPath).config.routes.redis;

interface Command {
  summary: string;
  usage: string;
  run(argv: string[], io: Io): Promise<number>;
}

// Each command's code is loaded when it runs: `lookup` need not load the SIP and SMPP stacks.
export const COMMANDS: Record<string, Command> = {
  serve: { summary: "run the daemon", usage: SERVE_USAGE, run: async (a, io) => (await import("./serve.js")).serveCommand(a, io) },
  lookup: { summary: "print the routing decision for a number", usage: LOOKUP_USAGE, run: async (a, io) => (await import("./lookup.js")).lookupCommand(a, io) },
  "check-config": { summary: "validate the config and the routes file", usage: CHECK_CONFIG_USAGE, run: async (a, io) => (await import("./lookup.js")).checkConfigCommand(a, io) },
  status: { summary: "the running daemon's status (ready, routes, what waits for delivery)", usage: STATUS_USAGE, run: async (a, io) => (await import("./status.js")).statusCommand(a, io) },
  routes: { summary: "read and write the Redis routing table", usage: ROUTES_USAGE, run: async (a, io) => (await import("./routes.js")).routesCommand(a, redisFromConfig, io.out, io.err) },
  messages: { summary: "messages waiting for delivery (Redis spool)", usage: MESSAGES_USAGE, run: async (a, io) => (await import("./messages.js")).messagesCommand(a, redisFromConfig, io.out, io.err) },
  dlq: { summary: "dead letters: list, replay, drop", usage: DLQ_USAGE, run: async (a, io) => (await import("./dlq.js")).dlqCommand(a, redisFromConfig, io.out, io.err) },
  numbers: { summary: "number lifecycle report: states, quarantines ending, recyclable and inactive numbers", usage: NUMBERS_USAGE, run: async (a, io) => (await import("./numbers.js")).numbersCommand(a, io) },
  sessions: { summary: "masking sessions: list, show, create, delete", usage: SESSIONS_USAGE, run: async (a, io) => (await import("./sessions.js")).sessionsCommand(a, io) },
  pools: { summary: "masking pools: list, show, set, delete (those of the config file are read-only)", usage: POOLS_USAGE, run: async (a, io) => (await import("./pools.js")).poolsCommand(a, io) },
  users: { summary: "registrar users: show USER (its registered contacts), list, set, delete", usage: USERS_USAGE, run: async (a, io) => (await import("./users.js")).usersCommand(a, io) },
  stir: { summary: "decode and verify a STIR/SHAKEN Identity header", usage: STIR_USAGE, run: async (a, io) => (await import("./stir.js")).stirCommand(a, io) },
};

function indent(s: string): string {
  // Group usages list their subcommands indented under "usage:"; single ones start "usage: didgate …".
  const group = s.startsWith("usage:\n");
  const body = s.slice("usage: ".length);
  return body
    .trimEnd()
    .split("\n")
    .map((l) => (l.trim() === "" ? "" : (group ? "  " : "    ") + l))
    .join("\n");
}

export function topUsage(): string {
  return (
    "didgate: SIP/SMPP edge routing for virtual phone numbers\n\n" +
    "usage: didgate COMMAND [options]   (didgate COMMAND --help for one command)\n" +
    "       didgate --version\n\n" +
    Object.entries(COMMANDS)
      .map(([name, c]) => `  ${name}: ${c.summary}\n${indent(c.usage)}`)
      .join("\n\n") +
    "\n\nSettings can be overridden with DIDGATE_<PATH> environment variables (DIDGATE_ROUTES_REDIS_URL=…);\n" +
    "DIDGATE_CONFIG=FILE names the config file.\n"
  );
}

export function version(): string {
  try {
    return String((JSON.parse(readFileSync(resolve(packageRoot(), "package.json"), "utf8")) as { version?: unknown }).version ?? "unknown");
  } catch {
    return "unknown";
  }
}

/** app.ts's StartError, recognised without loading app.ts. */
function isStartError(err: unknown): err is Error & { errors: string[]; headline: string } {
  return err instanceof Error && err.name === "StartError" && Array.isArray((err as { errors?: unknown }).errors);
}

/** Run one command line; returns the exit code (-1: keep running, for serve). */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const cmd = argv[0];
  try {
    if (cmd === "--help" || cmd === "-h" || cmd === "help") {
      io.out(topUsage());
      return 0;
    }
    if (cmd === "--version" || cmd === "-v" || cmd === "version") {
      io.out(`didgate ${version()}\n`);
      return 0;
    }
    if (cmd === undefined) throw new UsageError("missing command", topUsage());
    const c = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd]! : undefined;
    if (!c) throw new UsageError(`unknown command ${JSON.stringify(cmd)}`, topUsage());
    return await c.run(argv.slice(1), io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`didgate: ${err.message}\n\n${err.usage}`);
      return 2;
    }
    if (err instanceof ConfigError || isStartError(err)) {
      io.err(`didgate: ${isStartError(err) ? err.headline : "invalid configuration"}:\n${err.errors.map((e) => `  - ${e}`).join("\n")}\n`);
      return 1;
    }
    if (err instanceof Error && "syscall" in err && (err as NodeJS.ErrnoException).syscall) {
      const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
      io.err(line(`didgate: ${e.syscall} ${e.address ?? ""}${e.port ? ":" + e.port : ""} failed: ${e.code}`));
      return 1;
    }
    io.err(line(`didgate: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`));
    return 1;
  }
}

/** The bin entry: run, and exit with the code unless the command keeps running. */
export function run(argv: string[]): void {
  void main(argv).then((code) => {
    if (code < 0) return;
    process.exitCode = code;
    // Exit once stdout is flushed; a connection left open must not keep a finished command alive.
    setTimeout(() => process.exit(code), 2000).unref();
  });
}
