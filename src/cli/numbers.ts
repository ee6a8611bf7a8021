/** `didgate numbers report`: numbers by lifecycle state, quarantines ending, recyclable and inactive numbers. */
import { existsSync, readFileSync } from "node:fs";
import { loadConfig, resolvePath } from "../config/load.js";
import { numbersReport, renderNumbersReport } from "../records/numbers-report.js";
import { Decider } from "../routing/decide.js";
import { parseRouteJson, type Route } from "../routing/route.js";
import { loadRouteFile } from "../routing/sources/file.js";
import { bool, CONFIG_OPTION, line, parseCommand, positiveInt, str, UsageError, type Io } from "./args.js";
import { errMessage } from "../util/errors.js";
import { connectCli } from "./redis.js";
import { NUMBERS_USAGE } from "./usage.js";

export async function numbersCommand(argv: string[], io: Io): Promise<number> {
  if (argv[0] === "--help" || argv[0] === "-h") {
    io.out(NUMBERS_USAGE);
    return 0;
  }
  if (argv[0] !== "report") throw new UsageError(argv[0] === undefined ? "numbers needs a subcommand" : `unknown numbers subcommand ${JSON.stringify(argv[0])}`, NUMBERS_USAGE);
  const p = parseCommand(argv.slice(1), { ...CONFIG_OPTION, "inactive-days": { type: "string" }, "soon-days": { type: "string" }, at: { type: "string" }, json: { type: "boolean" } }, NUMBERS_USAGE);
  if (p === "help") {
    io.out(NUMBERS_USAGE);
    return 0;
  }
  const inactiveDays = positiveInt(p, "inactive-days", 30, NUMBERS_USAGE);
  const soonDays = positiveInt(p, "soon-days", 14, NUMBERS_USAGE);
  let now = Date.now();
  const at = str(p, "at");
  if (at !== undefined) {
    now = Date.parse(at);
    if (!Number.isFinite(now)) throw new UsageError(`--at ${JSON.stringify(at)} is not an ISO 8601 time`, NUMBERS_USAGE);
  }
  const loaded = loadConfig(str(p, "config"));
  const c = loaded.config;
  const life = c.lifecycle;
  const decider = new Decider({ quarantineDays: life.quarantine_days, tenantQuarantineDays: new Map(Object.entries(life.tenants)) });
  const routes: Array<[string, Route]> = [];
  const activity = new Map<string, { in?: number; out?: number }>();
  const redis = c.routes.redis;
  if (redis !== undefined) {
    let client;
    try {
      client = await connectCli(redis.url);
    } catch (e) {
      io.err(line(errMessage(e)));
      return 1;
    }
    try {
      let cursor = "0";
      do {
        const [next, flat] = await client.hscan(`${redis.prefix}routes`, cursor, "COUNT", 10_000);
        cursor = next;
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const r = parseRouteJson(flat[i]!, flat[i + 1]!);
          if (r.ok) routes.push([flat[i]!, r.route]);
        }
      } while (cursor !== "0");
      for (const d of ["in", "out"] as const) {
        for (const [k, v] of Object.entries(await client.hgetall(`${redis.prefix}activity:${d}`))) {
          const e = activity.get(k) ?? {};
          e[d] = Number(v);
          activity.set(k, e);
        }
      }
    } finally {
      client.disconnect();
    }
  } else {
    const r = loadRouteFile(resolvePath(loaded.baseDir, c.routes.file));
    if (!r.ok) {
      for (const e of r.errors) io.err(line(e));
      return 1;
    }
    for (const e of r.table.entries()) routes.push(e);
    const file = resolvePath(resolvePath(loaded.baseDir, c.state_dir), "activity.json");
    if (existsSync(file)) {
      const j = JSON.parse(readFileSync(file, "utf8")) as { in?: Record<string, number>; out?: Record<string, number> };
      for (const d of ["in", "out"] as const) for (const [k, v] of Object.entries(j[d] ?? {})) activity.set(k, { ...activity.get(k), [d]: v });
    }
  }
  const report = numbersReport({
    routes,
    activity,
    now,
    stateOf: (r, t) => decider.stateOf(r, t),
    quarantineDays: (r) => (r.tenant !== undefined ? life.tenants[r.tenant] : undefined) ?? life.quarantine_days,
    inactiveDays,
    soonDays,
  });
  io.out(bool(p, "json") ? JSON.stringify(report, null, 2) + "\n" : renderNumbersReport(report));
  return 0;
}
