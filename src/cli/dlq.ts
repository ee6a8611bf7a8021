/** `didgate dlq list|replay|drop`: the dead-letter stream `<prefix>dlq`. */
import { dlqLength, dropDlq, listDlq, replayDlq } from "../delivery/dlq.js";
import { spoolKeys } from "../delivery/redis.js";
import { bool, line, parseCommand, positiveInt, str, UsageError, withUsage, type Io } from "./args.js";
import { errMessage } from "../util/errors.js";
import { DLQ_SUBCOMMANDS, DLQ_USAGE } from "./usage.js";
import { connectCli, NO_REDIS, resolveSettings, type RedisSettings } from "./redis.js";



function isEntryId(s: string): boolean {
  return /^\d+(-\d+)?$/.test(s);
}

/** `didgate dlq …` (argv after "dlq"). Returns the exit code: 0 done, 1 failed (Redis error, or some ids not found); usage errors throw. */
export async function dlqCommand(argv: string[], redis: RedisSettings, out: (s: string) => void, err: (s: string) => void = out): Promise<number> {
  return withUsage(() => runDlq(argv, redis, { out, err }), err);
}

async function runDlq(argv: string[], redis: RedisSettings, io: Io): Promise<number> {
  const name = argv[0];
  if (name === "--help" || name === "-h" || name === "help") {
    io.out(DLQ_USAGE);
    return 0;
  }
  const sub = name !== undefined && Object.hasOwn(DLQ_SUBCOMMANDS, name) ? DLQ_SUBCOMMANDS[name]! : undefined;
  if (!sub) throw new UsageError(name === undefined ? "dlq needs a subcommand" : `unknown dlq subcommand ${JSON.stringify(name)}`, DLQ_USAGE);
  const usage = `usage: ${sub.usage}\n  -c, --config FILE   config file\n`;
  const p = parseCommand(argv.slice(1), sub.options, usage, { min: 0, max: name === "list" ? 0 : Infinity });
  if (p === "help") {
    io.out(usage);
    return 0;
  }
  const count = positiveInt(p, "count", 100, usage);
  const all = bool(p, "all");
  const ids = p.positionals;
  for (const id of ids) if (!isEntryId(id)) throw new UsageError(`not a dead-letter entry id: ${JSON.stringify(id)} (ids look like 1732262400000-0)`, usage);
  if (name !== "list" && (all ? ids.length > 0 : ids.length === 0)) throw new UsageError(`dlq ${name} takes entry ids or --all (not both)`, usage);

  const cfg = resolveSettings(redis, str(p, "config"));
  if (!cfg) {
    io.err(NO_REDIS("the spool and its dead letters live in Redis"));
    return 1;
  }
  let client;
  try {
    client = await connectCli(cfg.url, "didgate-dlq");
  } catch (e) {
    io.err(line(errMessage(e)));
    return 1;
  }
  const out = (s: string) => io.out(line(s));
  try {
    if (name === "list") {
      const entries = await listDlq(client, cfg.prefix, { count, ...(str(p, "from") !== undefined ? { start: str(p, "from")! } : {}) });
      const total = await dlqLength(client, cfg.prefix);
      if (bool(p, "json")) for (const e of entries) out(JSON.stringify(e));
      else {
        for (const e of entries) {
          const when = e.at ? new Date(e.at).toISOString() : "-";
          out(`${e.entryId}  ${when}  ${e.id ?? "-"}  ${e.type ?? "-"}  ${e.to ?? "-"}  ${e.webhook ?? e.smpp ?? "-"}  attempts=${e.attempts ?? "-"}  ${e.reason}`);
        }
        out(`${entries.length} shown, ${total} in ${spoolKeys(cfg.prefix).dlq}`);
      }
      return 0;
    }
    if (name === "replay") {
      const r = await replayDlq(client, cfg.prefix, all ? "all" : ids);
      out(`replayed ${r.replayed.length}`);
      if (r.missing.length > 0) out(`not found: ${r.missing.join(" ")}`);
      if (r.corrupt.length > 0) out(`unreadable (kept; drop them): ${r.corrupt.join(" ")}`);
      return r.missing.length > 0 || r.corrupt.length > 0 ? 1 : 0;
    }
    const n = await dropDlq(client, cfg.prefix, all ? "all" : ids);
    out(`dropped ${n}`);
    return !all && n < ids.length ? 1 : 0;
  } catch (err) {
    io.err(line(`dlq ${name}: ${errMessage(err)}`));
    return 1;
  } finally {
    client.disconnect();
  }
}
