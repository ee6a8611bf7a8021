/** `didgate lookup NUMBER` and `didgate check-config`: the routing decision and config validation offline. */
import { ConfigError, loadConfig, resolvePath } from "../config/load.js";
import { Decider } from "../routing/decide.js";
import { lookupJson } from "../routing/explain.js";
import { normalizeNumber, type NumberPlan } from "../routing/number.js";
import { countryPlan, shortNumberWarning, splitCountry } from "../routing/number-plan.js";
import { loadRouteFileInWorker } from "../routing/sources/file.js";
import { CONFIG_OPTION, line, parseCommand, str, UsageError, type Io } from "./args.js";
import { CHECK_CONFIG_USAGE, LOOKUP_USAGE } from "./usage.js";



const COUNTRY_CODE = /^[1-9]\d{0,2}$/;

export async function lookupCommand(argv: string[], io: Io): Promise<number> {
  const p = parseCommand(argv, { ...CONFIG_OPTION, caller: { type: "string" }, at: { type: "string" }, "country-code": { type: "string" } }, LOOKUP_USAGE, { min: 1, max: 1 });
  if (p === "help") {
    io.out(LOOKUP_USAGE);
    return 0;
  }
  const number = p.positionals[0]!;
  let atMs = Date.now();
  const at = str(p, "at");
  if (at !== undefined) {
    atMs = Date.parse(at);
    if (!Number.isFinite(atMs)) throw new UsageError(`--at ${JSON.stringify(at)} is not an ISO 8601 time`, LOOKUP_USAGE);
  }
  let cc = str(p, "country-code");
  if (cc !== undefined) {
    cc = cc.replace(/^\+/, "");
    if (!COUNTRY_CODE.test(cc)) throw new UsageError(`--country-code must be 1 to 3 digits like 1 or 44, got ${JSON.stringify(str(p, "country-code"))}`, LOOKUP_USAGE);
  }
  const loaded = loadConfig(str(p, "config"));
  cc ??= loaded.config.default_country_code;
  const plan: NumberPlan = cc !== undefined ? { countryCode: cc } : {};
  const r = await loadRouteFileInWorker(resolvePath(loaded.baseDir, loaded.config.routes.file));
  if (!r.ok) throw new ConfigError(r.errors);
  const caller = str(p, "caller");
  const res = lookupJson(r.table, new Decider(), { number, atMs, plan, ...(caller !== undefined ? { caller } : {}) });
  if (!res.ok) {
    io.err(line(`didgate: ${res.error}`));
    return 1;
  }
  for (const w of numberWarnings(number, plan)) io.err(line(`warning: ${w}`));
  io.out(JSON.stringify(res.json, null, 2) + "\n");
  return 0;
}

/** What the operator should know about how NUMBER was read. */
export function numberWarnings(input: string, plan: NumberPlan): string[] {
  const n = normalizeNumber(input, plan);
  if (!n.ok) return [];
  const out: string[] = [];
  const trimmed = input.trim();
  const international = trimmed.startsWith("+") || trimmed.startsWith("00") || /^(tel|sips?):\+/i.test(trimmed);
  if (plan.countryCode === undefined && !international) {
    const c = splitCountry(n.e164);
    out.push(
      `${JSON.stringify(input)} has no "+" and no country code was given: read as ${n.e164}${c ? ` (${c.plan.name})` : ""}. ` +
        "Pass --country-code (or set default_country_code in the config) to read national numbers as a trunk does.",
    );
  } else if (plan.countryCode !== undefined && !international && !n.e164.startsWith("+" + plan.countryCode)) {
    out.push(`${JSON.stringify(input)} read as ${n.e164}`);
  }
  const short = shortNumberWarning(n.e164);
  if (short) out.push(short);
  return out;
}

export async function checkConfigCommand(argv: string[], io: Io): Promise<number> {
  const p = parseCommand(argv, CONFIG_OPTION, CHECK_CONFIG_USAGE);
  if (p === "help") {
    io.out(CHECK_CONFIG_USAGE);
    return 0;
  }
  const loaded = loadConfig(str(p, "config"));
  const errors: string[] = [];
  let entries = 0;
  if (!loaded.config.routes.redis) {
    const r = await loadRouteFileInWorker(resolvePath(loaded.baseDir, loaded.config.routes.file));
    if (r.ok) entries = r.table.size;
    else errors.push(...r.errors);
  }
  if (errors.length > 0) throw new ConfigError(errors);
  const cc = loaded.config.default_country_code;
  io.out(
    `config OK: ${loaded.path}${loaded.config.routes.redis ? " (routes from Redis)" : `, ${entries} routes`}` +
      (cc !== undefined ? `; national numbers read with +${cc}${countryPlan(cc) ? ` (${countryPlan(cc)!.name})` : ""}` : "") +
      "\n",
  );
  return 0;
}
