/**
 * `didgate pools list|show|set|delete`: masking pools in Redis, the store the edges read their
 * pools from and the pools API writes (docs/masking.md). The pools of the config file
 * (masking.pools) are listed and shown but not changed here, as the API treats them: the file is
 * their source. A change reaches every edge within a couple of seconds (they poll a version key).
 *
 * Exit codes: 0 done, 1 refused / not found / Redis error, 2 usage.
 */
import { loadConfig } from "../config/load.js";
import { checkPoolAgainst, checkPoolInput, MAX_POOL_NUMBERS, POOL_NAME } from "../masking/pools.js";
import { RedisSessionStore, type PoolInfo } from "../masking/sessions.js";
import { errMessage } from "../util/errors.js";
import { bool, line, parseCommand, str, UsageError, withUsage, type Io } from "./args.js";
import { connectCli, NO_REDIS } from "./redis.js";
import { POOLS_SUBCOMMANDS, POOLS_USAGE } from "./usage.js";

export async function poolsCommand(argv: string[], io: Io): Promise<number> {
  return withUsage(() => runPools(argv, io), io.err);
}

interface Row {
  name: string;
  tenant: string;
  numbers: readonly string[];
  source: "config" | "api";
}

async function runPools(argv: string[], io: Io): Promise<number> {
  const name = argv[0];
  if (name === "--help" || name === "-h" || name === "help") {
    io.out(POOLS_USAGE);
    return 0;
  }
  const sub = name !== undefined && Object.hasOwn(POOLS_SUBCOMMANDS, name) ? POOLS_SUBCOMMANDS[name]! : undefined;
  if (!sub) throw new UsageError(name === undefined ? "pools needs a subcommand" : `unknown pools subcommand ${JSON.stringify(name)}`, POOLS_USAGE);
  const usage = `usage: ${sub.usage}\n  -c, --config FILE   config file\n`;
  const p = parseCommand(argv.slice(1), sub.options, usage, sub);
  if (p === "help") {
    io.out(usage);
    return 0;
  }
  const json = bool(p, "json");
  const [pool, ...numbers] = p.positionals;
  if (pool !== undefined && !POOL_NAME.test(pool)) throw new UsageError(`not a pool name: ${JSON.stringify(pool)} (1-64 letters, digits, '_', '.', '-')`, usage);
  const tenant = str(p, "tenant");
  if (name === "set" && (tenant === undefined || tenant.length === 0 || tenant.length > 128)) throw new UsageError("set needs --tenant T (1-128 characters)", usage);

  const config = loadConfig(str(p, "config")).config;
  const configPools = new Map(config.masking.pools.map((q) => [q.name, q]));
  const configNames = new Set(configPools.keys());
  const unique = [...new Set(numbers)];
  if (name === "set") {
    const bad = checkPoolInput({ name: pool!, numbers: unique, configPools: configNames, maxNumbers: MAX_POOL_NUMBERS });
    if (bad !== undefined) {
      io.err(line(bad.message));
      return bad.code === "invalid_number" ? 2 : 1;
    }
  }
  if (name === "delete" && configNames.has(pool!)) {
    io.err(line(`pool ${pool} is defined in the config file (masking.pools): remove it there`));
    return 1;
  }
  const redis = config.routes.redis;
  if (redis === undefined) {
    io.err(NO_REDIS("without it, each edge keeps the pools of its config and of its own API in memory"));
    return 1;
  }
  let client;
  try {
    client = await connectCli(redis.url, "didgate-pools");
  } catch (e) {
    io.err(line(errMessage(e)));
    return 1;
  }
  try {
    const store = new RedisSessionStore(client, redis.prefix);
    await store.refreshPools();
    // The config's pools as the edges hold them: an edge stores them in Redis when it starts, so
    // before any edge ran they are only in the file.
    const rows = new Map<string, Row>();
    for (const q of store.poolList()) rows.set(q.name, { ...q, source: configNames.has(q.name) ? "config" : "api" });
    for (const q of configPools.values()) if (!rows.has(q.name)) rows.set(q.name, { name: q.name, tenant: q.tenant, numbers: q.numbers, source: "config" });
    switch (name) {
      case "list": {
        const active = await store.activeByPool();
        const list = [...rows.values()].sort((a, b) => a.name.localeCompare(b.name)).map((r) => ({ name: r.name, tenant: r.tenant, numbers: r.numbers.length, source: r.source, sessions: active.get(r.name) ?? 0 }));
        if (json) io.out(JSON.stringify(list, null, 2) + "\n");
        else if (list.length === 0) io.out("no pools\n");
        else io.out(table(["name", "tenant", "numbers", "source", "sessions"], list.map((r) => [r.name, r.tenant, String(r.numbers), r.source, String(r.sessions)])));
        return 0;
      }
      case "show": {
        const r = rows.get(pool!);
        if (r === undefined) {
          io.err(line(`no masking pool ${pool}`));
          return 1;
        }
        const v = { name: r.name, tenant: r.tenant, source: r.source, numbers: [...r.numbers].sort() };
        io.out(json ? JSON.stringify(v, null, 2) + "\n" : `name     ${v.name}\ntenant   ${v.tenant}\nsource   ${v.source}\nnumbers  ${v.numbers.join(" ")}\n`);
        return 0;
      }
      case "set": {
        const pools: PoolInfo[] = [...rows.values()];
        const refused = checkPoolAgainst({ name: pool!, tenant: tenant!, numbers: unique, pools, configPools: configNames, maxPools: config.masking.max_pools, maxNumbers: MAX_POOL_NUMBERS });
        if (refused !== undefined) {
          io.err(line(refused.message));
          return 1;
        }
        // written only if no pool changed since they were read for the check above
        if (!(await store.setPool(pool!, tenant!, unique, store.poolsVersionSeen()))) {
          io.err(line("the pools changed while this change was checked: run it again"));
          return 1;
        }
        const v = { name: pool!, tenant: tenant!, source: "api", numbers: [...unique].sort() };
        io.out(json ? JSON.stringify(v, null, 2) + "\n" : `set pool ${pool} (${tenant}): ${unique.length} number${unique.length === 1 ? "" : "s"}\n`);
        return 0;
      }
      default: {
        const r = await store.deletePool(pool!);
        if (r === "in_use") {
          io.err(line(`pool ${pool} has live sessions: delete them (didgate sessions delete) or let them expire first`));
          return 1;
        }
        if (r === "unknown") {
          io.err(line(`no masking pool ${pool}`));
          return 1;
        }
        io.out(`deleted pool ${pool}\n`);
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

function table(cols: readonly string[], rows: readonly string[][]): string {
  const w = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (vals: readonly string[]): string => vals.map((v, i) => v.padEnd(w[i]!)).join("  ").trimEnd() + "\n";
  return fmt(cols) + rows.map(fmt).join("");
}
