/**
 * `didgate numbers report`: numbers by state at a time (the lifecycle dates applied), numbers
 * whose quarantine ends soon, numbers available for recycling, and active numbers with no traffic
 * for N days ("use it within 30 days or lose it"). Only exact keys are numbers; prefixes are
 * blocks and are left out.
 */
import { ROUTE_STATES, type Route, type RouteState } from "../routing/route.js";

const DAY_MS = 86_400_000;

export interface ReportInput {
  routes: Iterable<readonly [string, Route]>;
  activity: ReadonlyMap<string, { in?: number; out?: number }>;
  now: number;
  /** The state of a route at a time (Decider.stateOf). */
  stateOf(route: Route, atMs: number): RouteState;
  /** Quarantine days of a route's tenant. */
  quarantineDays(route: Route): number;
  inactiveDays: number;
  /** "Ends soon" horizon. */
  soonDays?: number;
}

export interface NumbersReport {
  at: string;
  by_state: Record<RouteState, number>;
  quarantine_ending: Array<{ number: string; tenant: string | null; released_at: string; available_at: string; days_left: number }>;
  available: Array<{ number: string; tenant: string | null; since: string | null }>;
  inactive: Array<{ number: string; tenant: string | null; last_activity: string | null; idle_days: number | null }>;
}

export function numbersReport(i: ReportInput): NumbersReport {
  const by = Object.fromEntries(ROUTE_STATES.map((s) => [s, 0])) as Record<RouteState, number>;
  const soon = (i.soonDays ?? 14) * DAY_MS;
  const out: NumbersReport = { at: new Date(i.now).toISOString(), by_state: by, quarantine_ending: [], available: [], inactive: [] };
  for (const [key, route] of i.routes) {
    if (!key.startsWith("+") || key.endsWith("*")) continue;
    const st = i.stateOf(route, i.now);
    by[st]++;
    const tenant = route.tenant ?? null;
    if (st === "quarantine" && route.releasedAt !== undefined) {
      const end = route.releasedAt + i.quarantineDays(route) * DAY_MS;
      if (end - i.now <= soon) out.quarantine_ending.push({ number: key, tenant, released_at: new Date(route.releasedAt).toISOString(), available_at: new Date(end).toISOString(), days_left: Math.max(0, Math.ceil((end - i.now) / DAY_MS)) });
    } else if (st === "released") {
      let since: number | null = null;
      if (route.releasedAt !== undefined) since = route.releasedAt + i.quarantineDays(route) * DAY_MS;
      else if (route.portDate !== undefined) since = route.portDate;
      out.available.push({ number: key, tenant, since: since === null ? null : new Date(since).toISOString() });
    } else if (st === "active") {
      const a = i.activity.get(key);
      const last = Math.max(a?.in ?? 0, a?.out ?? 0);
      if (last === 0 || i.now - last >= i.inactiveDays * DAY_MS) {
        out.inactive.push({ number: key, tenant, last_activity: last === 0 ? null : new Date(last).toISOString(), idle_days: last === 0 ? null : Math.floor((i.now - last) / DAY_MS) });
      }
    }
  }
  out.quarantine_ending.sort((a, b) => a.available_at.localeCompare(b.available_at));
  out.inactive.sort((a, b) => (b.idle_days ?? Infinity) - (a.idle_days ?? Infinity) || a.number.localeCompare(b.number));
  return out;
}

/** The report as text tables for a terminal. */
export function renderNumbersReport(r: NumbersReport): string {
  const lines: string[] = [];
  lines.push(`numbers at ${r.at}`);
  lines.push("  " + Object.entries(r.by_state).map(([s, n]) => `${s} ${n}`).join("   "));
  const table = (title: string, rows: Record<string, unknown>[]): void => {
    lines.push("", `${title} (${rows.length})`);
    if (rows.length === 0) return;
    const cols = Object.keys(rows[0]!);
    const w = cols.map((c) => Math.max(c.length, ...rows.map((x) => String(x[c] ?? "-").length)));
    lines.push("  " + cols.map((c, j) => c.padEnd(w[j]!)).join("  "));
    for (const x of rows) lines.push("  " + cols.map((c, j) => String(x[c] ?? "-").padEnd(w[j]!)).join("  "));
  };
  table("quarantine ending soon", r.quarantine_ending);
  table("available for recycling", r.available);
  table("active without traffic", r.inactive);
  return lines.join("\n") + "\n";
}
