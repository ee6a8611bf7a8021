/**
 * `didgate sessions list|show|create|delete`: masking sessions in Redis, the same store the edges
 * route calls by and the API writes (docs/masking.md). The pools come from the config
 * (masking.pools) and from Redis (the pools API, `didgate pools set`); an edge without Redis
 * keeps its sessions in its own memory, out of reach of the command line (use the API there).
 *
 * Exit codes: 0 done, 1 not found / pool exhausted / Redis error, 2 usage.
 */
import { loadConfig } from "../config/load.js";
import { RedisSessionStore, type MaskSession } from "../masking/sessions.js";
import { bool, line, parseCommand, positiveInt, str, UsageError, withUsage, type Io } from "./args.js";
import { errMessage } from "../util/errors.js";
import { connectCli, NO_REDIS } from "./redis.js";
import { SESSIONS_SUBCOMMANDS, SESSIONS_USAGE } from "./usage.js";

const E164 = /^\+[1-9]\d{1,14}$/;
const ID = /^ses_[A-Za-z0-9_-]{1,64}$/;

export async function sessionsCommand(argv: string[], io: Io, opts: { now?: () => number } = {}): Promise<number> {
  return withUsage(() => runSessions(argv, io, opts.now ?? Date.now), io.err);
}

function view(s: MaskSession): Record<string, string> {
  return { id: s.id, proxy: s.proxy, a: s.a, b: s.b, pool: s.pool, tenant: s.tenant, expires_at: new Date(s.expiresAt).toISOString() };
}

function table(rows: MaskSession[]): string {
  const cols = ["id", "pool", "proxy", "a", "b", "expires_at"] as const;
  const cells = rows.map((r) => view(r));
  const w = cols.map((c) => Math.max(c.length, ...cells.map((r) => r[c]!.length)));
  const fmt = (vals: readonly string[]): string => vals.map((v, i) => v.padEnd(w[i]!)).join("  ").trimEnd() + "\n";
  return fmt(cols) + cells.map((r) => fmt(cols.map((c) => r[c]!))).join("");
}

async function runSessions(argv: string[], io: Io, now: () => number): Promise<number> {
  const name = argv[0];
  if (name === "--help" || name === "-h" || name === "help") {
    io.out(SESSIONS_USAGE);
    return 0;
  }
  const sub = name !== undefined && Object.hasOwn(SESSIONS_SUBCOMMANDS, name) ? SESSIONS_SUBCOMMANDS[name]! : undefined;
  if (!sub) throw new UsageError(name === undefined ? "sessions needs a subcommand" : `unknown sessions subcommand ${JSON.stringify(name)}`, SESSIONS_USAGE);
  const usage = `usage: ${sub.usage}\n  -c, --config FILE   config file\n`;
  const p = parseCommand(argv.slice(1), sub.options, usage, sub);
  if (p === "help") {
    io.out(usage);
    return 0;
  }
  const json = bool(p, "json");
  const count = positiveInt(p, "count", 1000, usage);
  const ttlS = positiveInt(p, "ttl-s", 3600, usage);
  const [x, y] = p.positionals;
  if ((name === "show" || name === "delete") && !ID.test(x!)) throw new UsageError(`not a session id: ${JSON.stringify(x)} (ids look like ses_…)`, usage);
  if (name === "create") {
    if (str(p, "pool") === undefined) throw new UsageError("create needs --pool NAME", usage);
    for (const n of [x!, y!]) if (!E164.test(n)) throw new UsageError(`not an E.164 number: ${JSON.stringify(n)} (like +15125550100)`, usage);
  }

  const config = loadConfig(str(p, "config")).config;
  const pools = config.masking.pools;
  const poolName = str(p, "pool");
  if (name === "create" && ttlS > config.masking.max_ttl_s) {
    io.err(line(`--ttl-s must be at most ${config.masking.max_ttl_s} (masking.max_ttl_s)`));
    return 1;
  }
  const redis = config.routes.redis;
  if (redis === undefined) {
    io.err(NO_REDIS("without it, masking sessions live in each edge's memory; use the API of that edge"));
    return 1;
  }
  let client;
  try {
    client = await connectCli(redis.url, "didgate-sessions");
  } catch (e) {
    io.err(line(errMessage(e)));
    return 1;
  }
  try {
    const store = new RedisSessionStore(client, redis.prefix, now);
    // The pools: those of the config and those kept in Redis (the API, `didgate pools set`).
    await store.refreshPools();
    const names = [...new Set([...pools.map((q) => q.name), ...store.poolList().map((q) => q.name)])].sort();
    if (poolName !== undefined && !names.includes(poolName)) {
      io.err(line(`no masking pool ${JSON.stringify(poolName)} in masking.pools or in Redis (${names.join(", ") || "none"})`));
      return 1;
    }
    switch (name) {
      case "list": {
        const rows: MaskSession[] = [];
        for (const q of names) if (poolName === undefined || q === poolName) rows.push(...(await store.list(q, count - rows.length > 0 ? count - rows.length : 0)));
        io.out(json ? JSON.stringify(rows.map(view), null, 2) + "\n" : rows.length === 0 ? "no sessions\n" : table(rows));
        return 0;
      }
      case "show": {
        const s = await store.get(x!);
        if (s === null) {
          io.err(line(`no session ${x} (never created, deleted or expired)`));
          return 1;
        }
        io.out(json ? JSON.stringify(view(s), null, 2) + "\n" : Object.entries(view(s)).map(([k, v]) => `${k.padEnd(10)} ${v}`).join("\n") + "\n");
        return 0;
      }
      case "create": {
        const q = pools.find((c) => c.name === poolName);
        // a config pool as the edges keep it (they store masking.pools in Redis when they start)
        if (q !== undefined && !store.isPoolNumber(q.numbers[0]!)) await store.setPool(q.name, q.tenant, q.numbers);
        const r = await store.create(poolName!, x!, y!, ttlS * 1000);
        if (!r.ok) {
          io.err(line(r.code === "pool_exhausted" ? `pool ${poolName} is exhausted: every number already has a session with ${x} or ${y}` : r.code === "same_party" ? "a and b are the same number" : r.code === "party_is_proxy" ? "a or b is a number of a masking pool" : `no masking pool ${poolName} in Redis`));
          return 1;
        }
        io.out(json ? JSON.stringify(view(r.session), null, 2) + "\n" : `${r.session.id} ${r.session.proxy} ${new Date(r.session.expiresAt).toISOString()}\n`);
        return 0;
      }
      default: {
        if (!(await store.delete(x!))) {
          io.err(line(`no session ${x} (never created, deleted or expired)`));
          return 1;
        }
        io.out(`deleted ${x}\n`);
        return 0;
      }
    }
  } catch (e) {
    io.err(line(errMessage(e)));
    return 1;
  } finally {
    client.disconnect();
  }
}
