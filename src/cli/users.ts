/**
 * `didgate users show|list|set|delete`: registrar users (docs/registrar.md). `show` asks the
 * running daemon's admin listener for a user's bindings; `list`, `set` and `delete` read and change
 * the users kept in Redis (routes.redis) as the API does (src/api/users.ts): passwords become digest
 * HA1s of the registrar realm and are never printed, users of the config file are read-only, and
 * the edges load a change within about 2 s (they poll the users' change counter).
 *
 * Exit codes: 0 done, 1 not found / read-only / no answer / Redis error, 2 usage.
 */
import { readFileSync } from "node:fs";
import { loadConfig } from "../config/load.js";
import { parseHostPort } from "../util/net.js";
import type { Config } from "../config/schema.js";
import type { UserReport } from "../edge/registrar.js";
import { RedisLocationStore } from "../registrar/location.js";
import { RedisUserStore, USER_NAME } from "../registrar/users.js";
import { bool, line, parseCommand, str, UsageError, withUsage, type Io, type Parsed } from "./args.js";
import { errMessage } from "../util/errors.js";
import { connectCli, NO_REDIS } from "./redis.js";
import { USERS_SUBCOMMANDS, USERS_USAGE } from "./usage.js";

export function renderUser(u: UserReport): string {
  const out = [`${u.user} (tenant ${u.tenant}) ${u.aor}: ${u.bindings.length === 0 ? "not registered" : `${u.bindings.length} binding(s)`}`];
  for (const b of u.bindings) {
    out.push(`  ${b.contact}`);
    out.push(`    source ${b.transport} ${b.source}, edge ${b.edge}, expires in ${b.expires_in_s} s (${b.expires_at}), q ${b.q}${b.instance !== undefined ? `, instance ${b.instance}` : ""}${b.reg_id !== undefined ? ` reg-id ${b.reg_id}` : ""}`);
  }
  return out.join("\n");
}

const E164 = /^\+[1-9]\d{1,14}$/;

export async function usersCommand(argv: string[], io: Io, opts: { now?: () => number } = {}): Promise<number> {
  return withUsage(() => runUsers(argv, io, opts.now ?? Date.now), io.err);
}

async function runUsers(argv: string[], io: Io, now: () => number): Promise<number> {
  const name = argv[0];
  if (name === "--help" || name === "-h" || name === "help") {
    io.out(USERS_USAGE);
    return 0;
  }
  const sub = name !== undefined && Object.hasOwn(USERS_SUBCOMMANDS, name) ? USERS_SUBCOMMANDS[name]! : undefined;
  if (!sub) throw new UsageError(name === undefined ? "users needs a subcommand" : `unknown users subcommand ${JSON.stringify(name)}`, USERS_USAGE);
  const usage = `usage: ${sub.usage}\n  -c, --config FILE   config file\n`;
  const p = parseCommand(argv.slice(1), sub.options, usage, sub);
  if (p === "help") {
    io.out(usage);
    return 0;
  }
  const user = p.positionals[0];
  if (user !== undefined && !USER_NAME.test(user)) throw new UsageError(`not a user name: ${JSON.stringify(user.slice(0, 64))} (1-64 letters, digits and _.!~*'()&=+$,;?/-)`, usage);
  let password: string | undefined;
  if (name === "set") {
    if (str(p, "tenant") === undefined || str(p, "tenant")!.length > 128) throw new UsageError("set needs --tenant T (1-128 characters)", usage);
    const cid = str(p, "caller-id");
    if (cid !== undefined && !E164.test(cid)) throw new UsageError(`--caller-id: not an E.164 number: ${JSON.stringify(cid.slice(0, 32))} (like +15125550100)`, usage);
    const file = str(p, "password-file");
    if (file === undefined) throw new UsageError("set needs --password-file FILE (the password is never given on the command line, where other users of the machine could read it)", usage);
    try {
      // the first line: a file written by echo or an editor ends with a newline that is not part of it
      password = readFileSync(file, "utf8").split(/\r?\n/)[0]!;
    } catch (e) {
      io.err(line(`--password-file: ${errMessage(e)}`));
      return 1;
    }
    if (password.length < 8 || password.length > 256) {
      io.err(line(`--password-file: the password must be 8 to 256 characters (the file's first line has ${password.length})`));
      return 1;
    }
  }
  const config = loadConfig(str(p, "config")).config;
  if (name === "show") return show(config, user!, bool(p, "json"), io);
  const reg = config.sip.registrar;
  if (reg === undefined) {
    io.err(line("sip.registrar is not configured: there are no registrar users"));
    return 1;
  }
  const inConfig = new Map(reg.users.map((u) => [u.user, u]));
  const redis = config.routes.redis;
  if (redis === undefined && name !== "list") {
    io.err(NO_REDIS("users of the config file (sip.registrar.users) are changed there"));
    return 1;
  }
  if (name !== "list" && inConfig.has(user!)) {
    io.err(line(`user ${user} is defined in the config file (sip.registrar.users): change it there`));
    return 1;
  }
  let client;
  if (redis !== undefined) {
    try {
      client = await connectCli(redis.url, "didgate-users");
    } catch (e) {
      io.err(line(errMessage(e)));
      return 1;
    }
  }
  try {
    const store = client !== undefined ? new RedisUserStore(client, redis!.prefix, reg.realm ?? reg.domain) : undefined;
    switch (name) {
      case "list":
        return await list(p, io, inConfig, store);
      case "set": {
        const tenant = str(p, "tenant")!;
        const old = await store!.get(user!);
        // a name is one user of one tenant, as through the API
        if (old !== undefined && old.tenant !== tenant) {
          io.err(line(`user ${user} belongs to tenant ${JSON.stringify(old.tenant)}: delete it first`));
          return 1;
        }
        const cid = str(p, "caller-id");
        const done = await store!.put({ user: user!, tenant, password: password!, ...(cid !== undefined ? { caller_id: cid } : {}) }, now());
        if ("taken" in done) {
          io.err(line(`user ${user} belongs to tenant ${JSON.stringify(done.taken)}: delete it first`));
          return 1;
        }
        io.out(`${done.replaced ? "replaced" : "created"} ${user} (tenant ${tenant})\n`);
        return 0;
      }
      default: {
        if (!(await store!.delete(user!))) {
          io.err(line(`no user ${user} in Redis`));
          return 1;
        }
        // its registrations go with it, as through the API
        await new RedisLocationStore(client!, redis!.prefix, now).update(`sip:${user}@${reg.domain}`, { removeAll: true });
        io.out(`deleted ${user}\n`);
        return 0;
      }
    }
  } catch (e) {
    io.err(line(errMessage(e)));
    return 1;
  } finally {
    client?.disconnect();
  }
}

/** Users of the config file, then those in Redis (a config user of the same name wins); never a password or hash. */
async function list(p: Parsed, io: Io, inConfig: Map<string, { user: string; tenant: string; caller_id?: string | undefined }>, store: RedisUserStore | undefined): Promise<number> {
  const tenant = str(p, "tenant");
  const rows: Array<{ user: string; tenant: string; caller_id?: string; source: "config" | "api"; updated_at?: string }> = [];
  for (const u of inConfig.values()) rows.push({ user: u.user, tenant: u.tenant, ...(u.caller_id !== undefined ? { caller_id: u.caller_id } : {}), source: "config" });
  if (store !== undefined) {
    for (const u of (await store.load()).values()) {
      if (!inConfig.has(u.user)) rows.push({ user: u.user, tenant: u.tenant, ...(u.caller_id !== undefined ? { caller_id: u.caller_id } : {}), source: "api", ...(u.updated_at !== "" ? { updated_at: u.updated_at } : {}) });
    }
  }
  const shown = rows.filter((r) => tenant === undefined || r.tenant === tenant).sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
  if (bool(p, "json")) {
    io.out(JSON.stringify(shown, null, 2) + "\n");
    return 0;
  }
  if (shown.length === 0) {
    io.out("no users\n");
    return 0;
  }
  const cols = ["user", "tenant", "caller_id", "source"] as const;
  const cells = shown.map((r) => cols.map((c) => r[c] ?? "-"));
  const w = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const fmt = (vals: readonly string[]): string => vals.map((v, i) => v.padEnd(w[i]!)).join("  ").trimEnd() + "\n";
  io.out(fmt(cols) + cells.map(fmt).join(""));
  return 0;
}

/** `users show`: the running daemon's answer. */
async function show(cfg: Config, user: string, json: boolean, io: Io): Promise<number> {
  const hp = parseHostPort(cfg.admin.listen)!;
  const host = hp.host === "0.0.0.0" || hp.host === "" ? "127.0.0.1" : hp.host === "::" ? "::1" : hp.host;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${hp.port}/v1/users/${encodeURIComponent(user)}`;
  let res: Response;
  let body: Record<string, unknown>;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    body = (await res.json()) as Record<string, unknown>;
  } catch (e) {
    io.err(line(`didgate: no answer from ${url} (${errMessage(e)}): is didgate running with this config?`));
    return 1;
  }
  if (res.status !== 200) {
    io.err(line(`didgate: ${user}: ${String(body.error ?? res.status)}`));
    return 1;
  }
  if (json) io.out(JSON.stringify(body, null, 2) + "\n");
  else io.out(line(renderUser(body as unknown as UserReport)));
  return 0;
}
