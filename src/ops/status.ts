/**
 * The status view: what an operator checks first, as JSON (`GET /v1/status` on the admin
 * listener) and as text tables (`didgate status`). The app fills it from its components; this
 * module only shapes and renders it.
 */

export interface StatusReport {
  instance: string;
  version: string;
  node: string;
  uptime_s: number;
  ready: boolean;
  routes: {
    source: "file" | "redis";
    entries: number;
    version: string;
    /** Redis only: sync state and how far behind the stream the table is. */
    sync?: { state: string; lag_ms: number | null; last_error: string | null };
    last_error?: string | null;
  };
  sip: {
    listeners: Array<{ transport: string; address: string; port: number }>;
    trunks: Array<{ name: string; cps: number; cps_in_use: number; calls: number | null; max_calls: number | null }>;
    customers: Array<{ name: string; cps: number; cps_in_use: number; calls: number; max_calls: number | null }>;
    targets: Array<{ target: string; state: "up" | "down"; reason: string | null }>;
    calls_in_progress: number;
  } | null;
  smpp: {
    listen: { address: string; port: number } | null;
    sessions: number;
    binds: Array<{ name: string; state: string; window: number | null; in_flight: number | null }>;
  } | null;
  delivery: {
    mode: "direct" | "spool";
    depth: number | null;
    oldest_age_s: number | null;
    retry: number | null;
    dead_letters: number | null;
  } | null;
  workers: number;
  /** SIP workers that answered for this report (only with sip.workers > 1). */
  workers_up?: number;
}

function table(title: string, rows: Array<Record<string, unknown>>, empty = "none"): string[] {
  const out = ["", title];
  if (rows.length === 0) return [...out, "  " + empty];
  const cols = Object.keys(rows[0]!);
  const cell = (v: unknown): string => (v === null || v === undefined ? "-" : String(v));
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  out.push("  " + cols.map((c, i) => c.padEnd(w[i]!)).join("  "));
  for (const r of rows) out.push("  " + cols.map((c, i) => cell(r[c]).padEnd(w[i]!)).join("  "));
  return out;
}

/** The report as text for a terminal. */
export function renderStatus(s: StatusReport): string {
  const lines: string[] = [];
  lines.push(`didgate ${s.version} on ${s.instance} (Node ${s.node}), up ${formatDuration(s.uptime_s)}, ${s.ready ? "ready" : "NOT READY"}, ${s.workers} SIP worker${s.workers === 1 ? "" : "s"}${s.workers_up !== undefined && s.workers_up < s.workers ? ` (${s.workers_up} answering)` : ""}`);
  const r = s.routes;
  let routes = `routes: ${r.entries} entries from ${r.source}, version ${r.version}`;
  if (r.sync) routes += `, sync ${r.sync.state}${r.sync.lag_ms !== null ? `, lag ${r.sync.lag_ms} ms` : ""}${r.sync.last_error ? `, last error: ${r.sync.last_error}` : ""}`;
  if (r.last_error) routes += `, last error: ${r.last_error}`;
  lines.push(routes);
  if (s.sip) {
    lines.push(`sip: ${s.sip.listeners.map((l) => `${l.transport}://${l.address}:${l.port}`).join(" ")}; ${s.sip.calls_in_progress} calls in progress`);
    lines.push(...table("trunks", s.sip.trunks.map((t) => ({ trunk: t.name, cps: `${t.cps_in_use}/${t.cps}`, calls: t.max_calls === null ? t.calls : `${t.calls ?? 0}/${t.max_calls}` }))));
    if (s.sip.customers.length > 0) lines.push(...table("customers", s.sip.customers.map((c) => ({ customer: c.name, cps: `${c.cps_in_use}/${c.cps}`, calls: c.max_calls === null ? c.calls : `${c.calls}/${c.max_calls}` }))));
    lines.push(...table("targets", s.sip.targets.map((t) => ({ target: t.target, state: t.state === "down" ? "DOWN" : "up", reason: t.reason })), "none tracked"));
  } else lines.push("sip: off");
  if (s.smpp) {
    lines.push(`smpp: ${s.smpp.listen ? `${s.smpp.listen.address}:${s.smpp.listen.port}` : "no listener"}; ${s.smpp.sessions} sessions`);
    lines.push(...table("binds", s.smpp.binds.map((b) => ({ bind: b.name, state: b.state === "bound" ? "bound" : b.state.toUpperCase(), window: b.window === null ? null : `${b.in_flight ?? 0}/${b.window}` })), "none configured"));
  } else lines.push("smpp: off");
  if (s.delivery) {
    const d = s.delivery;
    lines.push("", `delivery: ${d.mode}; queued ${d.depth ?? "-"}, oldest ${d.oldest_age_s === null ? "-" : formatDuration(d.oldest_age_s)}, retrying ${d.retry ?? "-"}, dead letters ${d.dead_letters ?? "-"}`);
  }
  return lines.join("\n") + "\n";
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "-";
  const t = Math.max(0, Math.round(s));
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, "0")}s`;
  if (t < 86_400) return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(t / 86_400)}d${String(Math.floor((t % 86_400) / 3600)).padStart(2, "0")}h`;
}
