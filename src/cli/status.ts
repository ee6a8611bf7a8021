/** `didgate status`: the running daemon's GET /v1/status, from its admin listener. */
import { loadConfig } from "../config/load.js";
import { parseHostPort } from "../util/net.js";
import { bool, CONFIG_OPTION, line, parseCommand, str, type Io } from "./args.js";
import { renderStatus, type StatusReport } from "../ops/status.js";
import { errMessage } from "../util/errors.js";
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
  else io.out(line(renderStatus(body as StatusReport)));
  return body.ready ? 0 : 1;
}
