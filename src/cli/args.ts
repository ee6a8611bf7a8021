/**
 * Strict argument parsing for every command: node:util parseArgs with `strict: true`, so a
 * mistyped flag (`--confg`), a flag without its value or an extra argument is a usage error
 * (exit 2, the command's usage on stderr) instead of being ignored.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A usage error: printed with the usage text of the command it belongs to, exit 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** `--config FILE`, shared by every command that reads the config. */
export const CONFIG_OPTION: OptionSpec = { config: { type: "string", short: "c" } };

/**
 * Parse `argv` (what follows the command words) against `options` (plus --help/-h). Returns
 * "help" when help was asked for. Throws UsageError for unknown options, missing values and a
 * positional count outside [min, max].
 */
export function parseCommand(argv: string[], options: OptionSpec, usage: string, positionals: { min: number; max: number } = { min: 0, max: 0 }): Parsed | "help" {
  let parsed: Parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, strict: true, allowPositionals: true }) as Parsed;
  } catch (err) {
    // parseArgs' messages name the option; keep the first sentence (the rest is advice about "--").
    const msg = err instanceof Error ? err.message.split(". To specify")[0]! : String(err);
    throw new UsageError(msg, usage);
  }
  if (parsed.values.help === true) return "help";
  const n = parsed.positionals.length;
  if (n < positionals.min) throw new UsageError(n === 0 ? "missing argument" : `expected at least ${positionals.min} argument(s), got ${n}`, usage);
  if (n > positionals.max) {
    const extra = parsed.positionals.slice(positionals.max).map((p) => JSON.stringify(p)).join(" ");
    throw new UsageError(`unexpected argument(s): ${extra}`, usage);
  }
  return parsed;
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === "string" ? v : undefined;
}

export function bool(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

/** A positive integer option, or the default. */
export function positiveInt(p: Parsed, name: string, dflt: number, usage: string): number {
  const v = str(p, name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got ${JSON.stringify(v)}`, usage);
  return n;
}

/** Where a command writes: text verbatim (add the newline yourself). */
export interface Io {
  out(s: string): void;
  err(s: string): void;
}

export const processIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

export function line(s: string): string {
  return s.endsWith("\n") ? s : s + "\n";
}

/** Run a command whose usage errors should be printed (to `err`) and answered with exit code 2 rather than thrown. */
export async function withUsage(run: () => Promise<number>, err: (s: string) => void): Promise<number> {
  try {
    return await run();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(`didgate: ${e.message}\n\n${e.usage}`);
    return 2;
  }
}
