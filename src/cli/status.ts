/** `didgate status`: the running daemon's GET /v1/status, from its admin listener. */
import { loadConfig } from "../config/load.js";
import { parseHostPort } from "../config/net.js";
import { bool, CONFIG_OPTION, line, parseCommand, str, type Io } from "./args.js";
import { errMessage } from "./errors.js";
import { STATUS_USAGE } from "./usage.js";

export async function statusCommand(argv: string[], io: Io): Promise<number> {
  const p = parseCommand(argv, { ...CONFIG_OPTION, json: { type: "boolean" } }, STATUS_USAGE);
  if (p === "help") {
    io.out(STATUS_USAGE);
    return 0;
  }
  const cfg = loadConfig(str(p, "config")).config;
  const hp = parseHostPort(cfg.admin.listen)!;
  // A wildcard listen address is reached on loopback.
  const host = hp.host === "0.0.0.0" || hp.host === "" ? "127.0.0.1" : hp.host === "::" ? "::1" : hp.host;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${hp.port}/v1/status`;
  let body: Record<string, any>;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    body = (await res.json()) as Record<string, any>;
  } catch (e) {
    io.err(line(`didgate: no answer from ${url} (${errMessage(e)}): is didgate running with this config?`));
    return 1;
  }
  if (bool(p, "json")) io.out(JSON.stringify(body, null, 2) + "\n");
  else {
    io.out(line(body.ready ? "ready" : `not ready: ${(body.reasons as string[] | undefined)?.join("; ") ?? "unknown"}`));
    const r = body.routes as Record<string, unknown> | undefined;
    if (r) io.out(line(`routes: ${r.source ?? "?"}, ${r.entries ?? "?"} entries, version ${r.version ?? "?"}${r.stale ? ", stale" : ""}${r.lastError ? `, last error: ${JSON.stringify(r.lastError)}` : ""}`));
    const d = body.delivery as Record<string, any> | null | undefined;
    if (d?.mode === "spool") {
      io.out(line(`delivery: spool, ${d.in_flight ?? 0} in flight here, ${d.queued_or_delivering ?? "?"} queued or being delivered, ${d.retrying ?? "?"} waiting for a retry, ${d.dead_letters ?? "?"} dead letters${d.error ? ` (${d.error})` : ""}`));
      for (const m of (d.oldest as Record<string, any>[] | undefined) ?? []) {
        io.out(line(`  ${m.id}  ${m.state}  age=${m.ageS ?? "-"}s  attempts=${m.attempts}${m.lastError ? `  last error: ${m.lastError}` : ""}`));
      }
    } else if (d) io.out(line(`delivery: direct, ${d.in_flight ?? 0} in flight`));
  }
  return body.ready ? 0 : 1;
}
