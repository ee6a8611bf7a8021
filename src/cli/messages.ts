/**
 * `didgate messages pending|show`: what waits for delivery in the Redis spool, and where one
 * message is. Without Redis (direct mode) nothing waits in didgate: a message is answered only
 * after its delivery, and the SMSC holds and retries what was not.
 */
import { findMessage, listPending, type PendingMessage } from "../delivery/pending.js";
import { spoolKeys } from "../delivery/redis.js";
import { bool, line, parseCommand, positiveInt, str, UsageError, withUsage, type Io } from "./args.js";
import { errMessage } from "../util/errors.js";
import { MESSAGES_SUBCOMMANDS, MESSAGES_USAGE } from "./usage.js";
import { connectCli, resolveSettings, type RedisSettings } from "./redis.js";



export const DIRECT_MODE_NOTE =
  "routes.redis is not configured: didgate runs in direct mode and keeps no spool. A message is answered " +
  "only after its webhook accepted it; one that failed was answered with a temporary error and waits at " +
  "the SMSC, which retries it. What is being delivered right now lives only in the running process " +
  "(didgate_delivery_in_flight on /metrics; failures are logged at warn).\n";

function when(ms: number | null): string {
  return ms === null ? "-" : new Date(ms).toISOString();
}

function text(m: PendingMessage): string {
  const where =
    m.state === "retry" ? `next ${when(m.nextAttemptAt)}` : m.state === "delivering" ? `by ${m.consumer} for ${Math.round((m.idleMs ?? 0) / 1000)}s` : m.state === "dead" ? `at ${when(m.lastAttemptAt)} by ${m.consumer}` : "";
  return [
    m.id ?? "(unreadable)",
    m.state,
    `age=${m.ageS ?? "-"}s`,
    `attempts=${m.attempts}`,
    m.to ?? "-",
    m.webhook ?? m.smpp ?? "-",
    where,
    m.lastError ? `last error: ${m.lastError}` : "",
  ]
    .filter((s) => s !== "")
    .join("  ");
}

export async function messagesCommand(argv: string[], redis: RedisSettings, out: (s: string) => void, err: (s: string) => void = out): Promise<number> {
  return withUsage(() => runMessages(argv, redis, { out, err }), err);
}

async function runMessages(argv: string[], redis: RedisSettings, io: Io): Promise<number> {
  const name = argv[0];
  if (name === "--help" || name === "-h" || name === "help") {
    io.out(MESSAGES_USAGE);
    return 0;
  }
  const sub = name !== undefined && Object.hasOwn(MESSAGES_SUBCOMMANDS, name) ? MESSAGES_SUBCOMMANDS[name]! : undefined;
  if (!sub) throw new UsageError(name === undefined ? "messages needs a subcommand" : `unknown messages subcommand ${JSON.stringify(name)}`, MESSAGES_USAGE);
  const usage = `usage: ${sub.usage}\n  -c, --config FILE   config file\n`;
  const p = parseCommand(argv.slice(1), sub.options, usage, { min: sub.n, max: sub.n });
  if (p === "help") {
    io.out(usage);
    return 0;
  }
  const count = positiveInt(p, "count", 100, usage);
  const json = bool(p, "json");
  const cfg = resolveSettings(redis, str(p, "config"));
  if (!cfg) {
    io.err(DIRECT_MODE_NOTE);
    return 1;
  }
  let client;
  try {
    client = await connectCli(cfg.url, "didgate-messages");
  } catch (e) {
    io.err(line(errMessage(e)));
    return 1;
  }
  try {
    if (name === "pending") {
      const r = await listPending(client, cfg.prefix, { count });
      if (json) io.out(JSON.stringify({ messages: r.messages, stream: r.streamLength, retry: r.retryLength }, null, 2) + "\n");
      else {
        for (const m of r.messages) io.out(line(text(m)));
        const k = spoolKeys(cfg.prefix);
        io.out(`${r.messages.length} shown; ${r.streamLength} in ${k.inbound} (queued or being delivered), ${r.retryLength} waiting for a retry in ${k.retry}\n`);
      }
      return 0;
    }
    const id = p.positionals[0]!;
    const m = await findMessage(client, cfg.prefix, id);
    if (!m) {
      io.err(`${id}: not in the spool, the retry schedule or the dead letters (delivered, or never accepted)\n`);
      return 1;
    }
    io.out(json ? JSON.stringify(m, null, 2) + "\n" : line(text(m)));
    return 0;
  } catch (err) {
    io.err(line(`messages ${name}: ${errMessage(err)}`));
    return 1;
  } finally {
    client.disconnect();
  }
}
