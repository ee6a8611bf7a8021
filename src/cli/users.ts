/** `didgate users show USER`: a registrar user's bindings, from the running daemon's admin listener. */
import { loadConfig } from "../config/load.js";
import { parseHostPort } from "../util/net.js";
import type { UserReport } from "../edge/registrar.js";
import { bool, CONFIG_OPTION, line, parseCommand, str, UsageError, type Io } from "./args.js";
import { errMessage } from "../util/errors.js";
import { USERS_USAGE } from "./usage.js";

export function renderUser(u: UserReport): string {
  const out = [`${u.user} (tenant ${u.tenant}) ${u.aor}: ${u.bindings.length === 0 ? "not registered" : `${u.bindings.length} binding(s)`}`];
  for (const b of u.bindings) {
    out.push(`  ${b.contact}`);
    out.push(`    source ${b.transport} ${b.source}, edge ${b.edge}, expires in ${b.expires_in_s} s (${b.expires_at}), q ${b.q}${b.instance !== undefined ? `, instance ${b.instance}` : ""}${b.reg_id !== undefined ? ` reg-id ${b.reg_id}` : ""}`);
  }
  return out.join("\n");
}

export async function usersCommand(argv: string[], io: Io): Promise<number> {
  const p = parseCommand(argv, { ...CONFIG_OPTION, json: { type: "boolean" } }, USERS_USAGE, { min: 2, max: 2 });
  if (p === "help") {
    io.out(USERS_USAGE);
    return 0;
  }
  const [sub, user] = p.positionals as [string, string];
  if (sub !== "show") throw new UsageError("expected: didgate users show USER", USERS_USAGE);
  const cfg = loadConfig(str(p, "config")).config;
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
  if (bool(p, "json")) io.out(JSON.stringify(body, null, 2) + "\n");
  else io.out(line(renderUser(body as unknown as UserReport)));
  return 0;
}
