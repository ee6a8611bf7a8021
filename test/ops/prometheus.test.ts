/**
 * The Prometheus alert rules and the Grafana dashboard, tested with the real Prometheus binaries
 * (Debian's `prometheus` package: /usr/bin/prometheus, /usr/bin/promtool; CI installs them):
 *
 *  - `promtool check rules` on config/prometheus/didgate-rules.yml;
 *  - every alert has a severity, a summary and a runbook_url whose anchor exists in
 *    docs/operations.md, and every metric it names is one didgate exports;
 *  - `promtool test rules`: each alert fires on synthetic series of its failure and stays quiet on
 *    healthy ones (alert logic only: annotations are stripped in the copy under test);
 *  - live: a real Prometheus (1 s scrape and evaluation) scrapes a running didgate (Redis route sync
 *    and spool, SIP edge with sipp calls, SMPP carrier ESME, node:http webhook receiver); every
 *    dashboard panel query and every alert expression evaluates without error through
 *    /api/v1/query, the key ones return series with the expected values, the rule group is loaded
 *    with health ok, and the webhook failures we caused make DidgateWebhookFailureRatio pending.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectDefaultMetrics, Registry } from "prom-client";
import YAML from "yaml";
import type { Didgate } from "../../src/app.js";
import { routesCommand } from "../../src/cli/routes.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { connectEsme, type TestEsme } from "../helpers/smsc.js";
import { cleanupSipp, freePort, startSipp, type SippProcess } from "../helpers/sipp.js";
import { SCENARIOS, startUac } from "../edge/sip-util.js";

const ROOT = resolve(import.meta.dirname, "../..");
const RULES = join(ROOT, "config/prometheus/didgate-rules.yml");
const DASHBOARD = join(ROOT, "config/grafana/didgate.json");
const RUNBOOK = join(ROOT, "docs/operations.md");
const PROMETHEUS = process.env.PROMETHEUS_BIN ?? "/usr/bin/prometheus";
const PROMTOOL = process.env.PROMTOOL_BIN ?? "/usr/bin/promtool";

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rulesDoc = (): { groups: { name: string; rules: Rule[] }[] } => YAML.parse(readFileSync(RULES, "utf8"));
const alerts = (): Rule[] => rulesDoc().groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);

interface Target {
  expr: string;
  refId: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
}
const dashboard = (): { schemaVersion: number; templating: { list: Record<string, unknown>[] }; panels: Panel[]; uid: string; title: string } =>
  JSON.parse(readFileSync(DASHBOARD, "utf8"));
const allPanels = (): Panel[] => dashboard().panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = (): Panel[] => allPanels().filter((p) => p.type !== "row");

/** Dashboard variables as Grafana would substitute them for one edge and a short range. */
function substitute(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "1m")
    .replaceAll("$__interval", "15s")
    .replaceAll("$__range", "5m")
    .replaceAll("${datasource}", "prometheus")
    .replaceAll("$datasource", "prometheus")
    .replaceAll("$job", "didgate")
    .replaceAll("$instance", ".+");
}

/** Metric names didgate registers: its own (from src/, quoted metric names) and prom-client's defaults. */
async function knownMetricNames(): Promise<Set<string>> {
  const out = spawnSync("grep", ["-rhoE", `"didgate_[a-z0-9_]+"`, join(ROOT, "src")], { encoding: "utf8" });
  const names = new Set(out.stdout.split("\n").filter(Boolean).map((s) => s.slice(1, -1)));
  names.delete("didgate_snapshot"); // the snapshot file's header field, not a metric
  // the process metrics, exactly as src/ops/metrics.ts registers them (collectDefaultMetrics, prefix didgate_)
  const reg = new Registry();
  collectDefaultMetrics({ register: reg, prefix: "didgate_" });
  for (const m of await reg.getMetricsAsJSON()) names.add(m.name);
  reg.clear();
  return names;
}
/** Metric names used in a PromQL expression (identifiers starting didgate_ or up). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b(didgate_[a-z0-9_]+|up)\b/g)].map((m) => m[1]!);
}
function baseName(n: string): string {
  return n.replace(/_(bucket|sum|count)$/, "");
}

describe("alert rules and dashboard files", () => {
  it("promtool check rules passes", () => {
    const r = spawnSync(PROMTOOL, ["check", "rules", RULES], { encoding: "utf8" });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it("every alert has severity, summary and a runbook_url whose anchor is in docs/operations.md", () => {
    const doc = readFileSync(RUNBOOK, "utf8");
    const list = alerts();
    expect(list.length).toBeGreaterThanOrEqual(12);
    const names = list.map((a) => a.alert);
    for (const must of [
      "DidgateDown", "DidgateRouteSyncDisconnected", "DidgateRouteSyncStale", "DidgateRouteReloadRefused", "DidgateSmppBindDown",
      "DidgateWebhookFailureRatio", "DidgateSpoolBacklog", "DidgateDeadLetters", "DidgateCalls5xxRatio", "DidgateEventLoopLag",
    ]) expect(names).toContain(must);
    for (const a of list) {
      expect(["critical", "warning"], a.alert).toContain(a.labels?.severity);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      const url = a.annotations?.runbook_url ?? "";
      const m = /^docs\/operations\.md#([a-z0-9-]+)$/.exec(url);
      expect(m, `${a.alert}: ${url}`).not.toBeNull();
      expect(doc, `${a.alert}: anchor ${m![1]} missing`).toContain(`<a id="${m![1]}"></a>`);
    }
  });

  it("the dashboard uses a prometheus datasource variable and only metrics didgate exports", async () => {
    const d = dashboard();
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(d.uid).toBeTruthy();
    const ds = d.templating.list.find((v) => v.name === "datasource");
    expect(ds).toMatchObject({ type: "datasource", query: "prometheus" });
    const known = await knownMetricNames();
    known.add("up");
    const panels = queryPanels();
    expect(panels.length).toBeGreaterThanOrEqual(25);
    const ids = new Set<number>();
    for (const p of panels) {
      expect(ids.has(p.id), `duplicate panel id ${p.id}`).toBe(false);
      ids.add(p.id);
      expect(p.datasource?.uid, p.title).toBe("${datasource}");
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect(t.datasource?.uid, p.title).toBe("${datasource}");
        const used = metricsIn(t.expr);
        expect(used.length, `${p.title}: ${t.expr}`).toBeGreaterThan(0);
        for (const n of used) expect(known.has(n) || known.has(baseName(n)), `${p.title}: unknown metric ${n}`).toBe(true);
      }
    }
    for (const a of alerts()) for (const n of metricsIn(a.expr)) expect(known.has(n) || known.has(baseName(n)), `${a.alert}: unknown metric ${n}`).toBe(true);
    // what issue #8 asks the dashboard to show
    const exprs = panels.flatMap((p) => p.targets!.map((t) => t.expr)).join("\n");
    for (const n of [
      "didgate_calls_total", "didgate_call_setup_seconds_bucket", "didgate_sip_final_responses_total", "didgate_call_failovers_total",
      "didgate_smpp_bind_state", "didgate_sms_inbound_total", "didgate_webhook_duration_seconds_bucket", "didgate_delivery_total",
      "didgate_spool_depth", "didgate_spool_oldest_age_seconds", "didgate_dead_letters_total", "didgate_route_table_entries",
      "didgate_route_table_version", "didgate_route_sync_connected", "didgate_route_sync_delta_lag_seconds_bucket",
      "didgate_nodejs_eventloop_lag_p99_seconds", "didgate_process_resident_memory_bytes",
    ]) expect(exprs).toContain(n);
  });

  it("docs/operations.md lists every didgate metric in its reference", async () => {
    const doc = readFileSync(RUNBOOK, "utf8");
    const ref = doc.slice(doc.indexOf("## Metrics reference"));
    const own = [...(await knownMetricNames())].filter((n) => !n.startsWith("didgate_nodejs_") && !n.startsWith("didgate_process_"));
    expect(own.length).toBeGreaterThan(50);
    for (const n of own) expect(ref, n).toContain("`" + n + "`");
  });

  it("promtool test rules: each alert fires on its failure and not on healthy series", () => {
    const dir = tempDir("didgate-promtool-");
    try {
      // the alert logic under test; annotations (templates) are covered by check rules and the live test
      const doc = rulesDoc();
      for (const g of doc.groups) for (const r of g.rules) delete r.annotations;
      writeFileSync(join(dir, "rules.yml"), YAML.stringify(doc));
      const j = 'job="didgate"';
      const sev = (s: string, l: Record<string, string>) => ({ exp_labels: { job: "didgate", severity: s, ...l } });
      const A = 'instance="a:9464"';
      const B = 'instance="b:9464"';
      const hist = (name: string, inst: string, per: Record<string, number>) =>
        Object.entries(per).map(([le, inc]) => ({ series: `${name}_bucket{${j},${inst},le="${le}"}`, values: `0+${inc}x30` }));
      const failing = {
        interval: "1m",
        input_series: [
          { series: `up{${j},${A}}`, values: "1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0" },
          { series: `up{${j},${B}}`, values: "1x30" },
          { series: `up{job="other",${A}}`, values: "0x30" },
          { series: `didgate_nodejs_eventloop_lag_p99_seconds{${j},${A}}`, values: "0.5x30" },
          { series: `didgate_nodejs_eventloop_lag_p99_seconds{${j},${B}}`, values: "0.01x30" },
          { series: `didgate_route_sync_connected{${j},${A}}`, values: "1 0x30" },
          { series: `didgate_route_sync_connected{${j},${B}}`, values: "1x30" },
          { series: `didgate_route_sync_stale{${j},${A}}`, values: "1x30" },
          { series: `didgate_route_sync_stale{${j},${B}}`, values: "0x30" },
          ...hist("didgate_route_sync_delta_lag_seconds", A, { "1": 0, "5": 0, "30": 10, "+Inf": 10 }),
          ...hist("didgate_route_sync_delta_lag_seconds", B, { "1": 10, "5": 10, "30": 10, "+Inf": 10 }),
          { series: `didgate_route_sync_refusing{${j},${A}}`, values: "0 0 1x30" },
          { series: `didgate_route_sync_refusing{${j},${B}}`, values: "0x30" },
          { series: `didgate_route_reloads_total{${j},${B},source="redis",result="refused"}`, values: "0 0 0 0 0 0 0 0 0 0 0 0 1x30" },
          { series: `didgate_route_reloads_total{${j},${B},source="redis",result="ok"}`, values: "1+1x30" },
          { series: `didgate_route_reloads_total{${j},${A},source="file",result="failed"}`, values: "0 0 0 0 0 0 0 0 0 0 0 0 1x30" },
          { series: `didgate_sip_final_responses_total{${j},${A},trunk="c",code="200"}`, values: "0+60x30" },
          { series: `didgate_sip_final_responses_total{${j},${A},trunk="c",code="503"}`, values: "0+30x30" },
          { series: `didgate_sip_final_responses_total{${j},${A},trunk="d",code="200"}`, values: "0+60x30" },
          { series: `didgate_sip_final_responses_total{${j},${A},trunk="d",code="404"}`, values: "0+60x30" },
          // 5xx ratio high but only a trickle: no alert
          { series: `didgate_sip_final_responses_total{${j},${A},trunk="e",code="503"}`, values: "0+1x30" },
          { series: `didgate_smpp_bind_state{${j},${A},peer="smsc-b",side="client"}`, values: "1 0x30" },
          { series: `didgate_smpp_bind_state{${j},${A},peer="smsc-c",side="client"}`, values: "1x30" },
          { series: `didgate_smpp_bind_state{${j},${A},peer="smsc-a",side="server"}`, values: "0x30" },
          { series: `didgate_smpp_bind_state{${j},${A},peer="app-1",side="server"}`, values: "1x30" },
          { series: `didgate_delivery_total{${j},${A},kind="webhook",outcome="delivered"}`, values: "0+10x30" },
          { series: `didgate_delivery_total{${j},${A},kind="webhook",outcome="retry"}`, values: "0+5x30" },
          { series: `didgate_delivery_total{${j},${B},kind="webhook",outcome="delivered"}`, values: "0+100x30" },
          { series: `didgate_delivery_total{${j},${B},kind="webhook",outcome="retry"}`, values: "0+1x30" },
          // the spool is shared: both edges report the same age, one alert per job
          { series: `didgate_spool_oldest_age_seconds{${j},${A}}`, values: "0+60x30" },
          { series: `didgate_spool_oldest_age_seconds{${j},${B}}`, values: "0+60x30" },
          { series: `didgate_dead_letters_total{${j},${A},reason="gone"}`, values: "0 0 0 0 0 0 0 0 0 0 0 0 0 0 1x30" },
          { series: `didgate_dead_letters_total{${j},${A},reason="max_age"}`, values: "0x30" },
          // the bind queues are in the shared spool: both edges report the same age, one alert per bind
          { series: `didgate_sms_outbound_queue_oldest_age_seconds{${j},${A},bind="smsc-b"}`, values: "0+60x30" },
          { series: `didgate_sms_outbound_queue_oldest_age_seconds{${j},${B},bind="smsc-b"}`, values: "0+60x30" },
          { series: `didgate_sms_outbound_queue_oldest_age_seconds{${j},${A},bind="smsc-c"}`, values: "0 3 0 1 0x26" },
          // worker 1 stopped answering; worker 0 and the other edge's workers are fine
          { series: `didgate_worker_up{${j},${A},worker="0"}`, values: "1x30" },
          { series: `didgate_worker_up{${j},${A},worker="1"}`, values: "1 1 0x28" },
          { series: `didgate_worker_up{${j},${B},worker="1"}`, values: "1 0 1x28" },
        ],
        alert_rule_test: [
          { eval_time: "16m", alertname: "DidgateDown", exp_alerts: [sev("critical", { instance: "a:9464" })] },
          { eval_time: "16m", alertname: "DidgateEventLoopLag", exp_alerts: [sev("warning", { instance: "a:9464" })] },
          { eval_time: "16m", alertname: "DidgateRouteSyncDisconnected", exp_alerts: [sev("warning", { instance: "a:9464" })] },
          { eval_time: "16m", alertname: "DidgateRouteSyncStale", exp_alerts: [sev("critical", { instance: "a:9464" })] },
          { eval_time: "16m", alertname: "DidgateRouteSyncLag", exp_alerts: [sev("warning", { instance: "a:9464" })] },
          {
            eval_time: "16m",
            alertname: "DidgateRouteReloadRefused",
            exp_alerts: [sev("critical", { instance: "a:9464" }), sev("critical", { instance: "b:9464", source: "redis" })],
          },
          { eval_time: "16m", alertname: "DidgateRouteReloadFailed", exp_alerts: [sev("warning", { instance: "a:9464", source: "file" })] },
          { eval_time: "16m", alertname: "DidgateCalls5xxRatio", exp_alerts: [sev("critical", { instance: "a:9464", trunk: "c" })] },
          { eval_time: "16m", alertname: "DidgateSmppBindDown", exp_alerts: [sev("critical", { instance: "a:9464", peer: "smsc-b", side: "client" })] },
          { eval_time: "16m", alertname: "DidgateSmppAccountUnbound", exp_alerts: [sev("warning", { instance: "a:9464", peer: "smsc-a", side: "server" })] },
          { eval_time: "16m", alertname: "DidgateWebhookFailureRatio", exp_alerts: [sev("warning", { instance: "a:9464" })] },
          { eval_time: "16m", alertname: "DidgateSpoolBacklog", exp_alerts: [sev("warning", {})] },
          { eval_time: "16m", alertname: "DidgateSpoolBacklogCritical", exp_alerts: [] },
          { eval_time: "16m", alertname: "DidgateDeadLetters", exp_alerts: [sev("warning", { reason: "gone" })] },
          { eval_time: "16m", alertname: "DidgateSmsBindBacklog", exp_alerts: [sev("warning", { bind: "smsc-b" })] },
          { eval_time: "16m", alertname: "DidgateWorkerDown", exp_alerts: [sev("warning", { instance: "a:9464", worker: "1" })] },
          // before the `for` durations have passed: nothing fires yet
          { eval_time: "1m", alertname: "DidgateDown", exp_alerts: [] },
          { eval_time: "2m", alertname: "DidgateSmppBindDown", exp_alerts: [] },
          { eval_time: "12m", alertname: "DidgateSpoolBacklog", exp_alerts: [] },
          { eval_time: "12m", alertname: "DidgateSmsBindBacklog", exp_alerts: [] },
          // a dead letter stops alerting once it is 15 minutes old
          { eval_time: "30m", alertname: "DidgateDeadLetters", exp_alerts: [] },
        ],
      };
      const critical = {
        interval: "1m",
        input_series: [{ series: `didgate_spool_oldest_age_seconds{${j},${A}}`, values: "8000+60x20" }],
        alert_rule_test: [
          { eval_time: "10m", alertname: "DidgateSpoolBacklogCritical", exp_alerts: [sev("critical", {})] },
          { eval_time: "10m", alertname: "DidgateSpoolBacklog", exp_alerts: [sev("warning", {})] },
        ],
      };
      const healthy = {
        interval: "1m",
        input_series: [
          { series: `up{${j},${A}}`, values: "1x30" },
          { series: `didgate_nodejs_eventloop_lag_p99_seconds{${j},${A}}`, values: "0.012x30" },
          { series: `didgate_route_sync_connected{${j},${A}}`, values: "1x30" },
          { series: `didgate_route_sync_stale{${j},${A}}`, values: "0x30" },
          { series: `didgate_route_sync_refusing{${j},${A}}`, values: "0x30" },
          ...hist("didgate_route_sync_delta_lag_seconds", A, { "0.01": 50, "1": 50, "5": 50, "30": 50, "+Inf": 50 }),
          { series: `didgate_route_reloads_total{${j},${A},source="redis",result="ok"}`, values: "1x30" },
          { series: `didgate_sip_final_responses_total{${j},${A},trunk="c",code="200"}`, values: "0+600x30" },
          { series: `didgate_sip_final_responses_total{${j},${A},trunk="c",code="503"}`, values: "0+1x30" },
          { series: `didgate_smpp_bind_state{${j},${A},peer="smsc-b",side="client"}`, values: "1x30" },
          { series: `didgate_smpp_bind_state{${j},${A},peer="smsc-a",side="server"}`, values: "1x30" },
          { series: `didgate_delivery_total{${j},${A},kind="webhook",outcome="delivered"}`, values: "0+100x30" },
          { series: `didgate_delivery_total{${j},${A},kind="webhook",outcome="retry"}`, values: "0+2x30" },
          { series: `didgate_spool_oldest_age_seconds{${j},${A}}`, values: "0 2 0 1 0 3 0 0 1 0 2 0 0 1 0 0 0 1 0 0 0 2 0 0 0 1 0 0 0 0" },
          { series: `didgate_dead_letters_total{${j},${A},reason="gone"}`, values: "0x30" },
          { series: `didgate_sms_outbound_queue_oldest_age_seconds{${j},${A},bind="smsc-b"}`, values: "0 2 0 1 0 3 0 0 1 0 2 0 0 1 0 0 0 1 0 0 0 2 0 0 0 1 0 0 0 0" },
          { series: `didgate_worker_up{${j},${A},worker="1"}`, values: "1 1 0 1x27" },
        ],
        alert_rule_test: alerts().map((a) => ({ eval_time: "25m", alertname: a.alert, exp_alerts: [] })),
      };
      writeFileSync(join(dir, "tests.yml"), YAML.stringify({ rule_files: ["rules.yml"], evaluation_interval: "1m", tests: [failing, critical, healthy] }));
      const r = spawnSync(PROMTOOL, ["test", "rules", "tests.yml"], { cwd: dir, encoding: "utf8" });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain("SUCCESS");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Live: a real Prometheus scraping a running didgate
// ---------------------------------------------------------------------------------------------

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

describe("live: Prometheus scrapes a running didgate", () => {
  let redis: TestRedis | undefined;
  let receiver: Server | undefined;
  let app: Didgate | undefined;
  let admin = "";
  let carrier: TestEsme | undefined;
  let prom: ChildProcess | undefined;
  let promUrl = "";
  let promLog = "";
  let uas: SippProcess | undefined;
  let sipPort = 0;
  let uasPort = 0;
  let flaky = 0; // webhook requests to /flaky answered 503 while > 0
  const dirs: string[] = [];

  async function query(expr: string): Promise<{ status: string; error?: string; data?: { resultType: string; result: PromResult[] } }> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: PromResult[] } };
  }
  async function series(expr: string): Promise<PromResult[]> {
    const r = await query(expr);
    if (r.status !== "success") throw new Error(`${expr}: ${r.error}`);
    return r.data!.result;
  }
  const value = async (expr: string): Promise<number | undefined> => {
    const s = await series(expr);
    return s.length ? Number(s[0]!.value[1]) : undefined;
  };
  /** Waits until Prometheus has scraped a sample satisfying `ok` (polls; fails after a deadline). */
  const scraped = (expr: string, ok: (v: number) => boolean = () => true, ms = 15_000): Promise<number> =>
    waitFor(async () => {
      const v = await value(expr);
      return v !== undefined && ok(v) ? v : undefined;
    }, ms, 200);

  const deliver = (to: string, text: string) =>
    carrier!.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, source_addr_npi: 1, destination_addr: to, short_message: text });

  /**
   * Full calls (INVITE, 180, 200, ACK, BYE) from a sipp carrier through didgate to a sipp UAS.
   * The carrier uses the edge tests' scenario (test/edge/scenarios/uac_call.xml): sipp's built-in
   * `-sn uac` ignores Record-Route, so its BYE reaches didgate without a Route header and gets 481
   * (didgate proxies in-dialog requests by Route, it keeps no dialog state).
   */
  const calls = async (n: number, service: string) => {
    const uac = await startUac("uac_call.xml", "udp", sipPort, { service, calls: n, rate: 20, timeoutS: 15 });
    const r = await uac.done;
    return { ...r, trace: r.code === 0 ? "" : (uac.proc.readFile("_errors.log") ?? "") };
  };

  beforeAll(async () => {
    for (const bin of [PROMETHEUS, PROMTOOL]) if (!existsSync(bin)) throw new Error(`${bin} missing: apt-get install prometheus`);
    redis = await startRedis();
    receiver = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        if (req.url === "/flaky" && flaky > 0) res.writeHead(503).end();
        else res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver!.listen(0, "127.0.0.1", r));
    const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    sipPort = await freePort();
    uasPort = await freePort();
    const dir = tempDir("didgate-ops-");
    dirs.push(dir);
    const routesFile = writeRoutes(dir, {
      "+15125550100": { tenant: "acme", sms: { webhook: `${hook}/sms` }, voice: { targets: [`sip:+15125550100@127.0.0.1:${uasPort}`] } },
      "+15125550101": { tenant: "acme", sms: { webhook: `${hook}/flaky` } },
      "+15125550150": { state: "quarantine", sms: { webhook: `${hook}/old` } },
      "+1512556*": { tenant: "block", voice: { targets: [`sip:block@127.0.0.1:${uasPort}`] } },
    });
    const rcfg = { url: redis.url, prefix: "didgate:", stream_maxlen: 1_000_000 };
    let cliOut = "";
    const code = await routesCommand(["import", routesFile], rcfg, (s) => (cliOut += s));
    expect(code, cliOut).toBe(0);
    ({ app, admin } = await startApp(
      {
        instance_id: "ops-test",
        routes: { redis: { url: redis.url, snapshot: "routes.snapshot.json" } },
        webhooks: { secret: SECRET, timeout_ms: 1000, allow_private: ["127.0.0.0/8"] },
        sip: {
          listen: [`udp://127.0.0.1:${sipPort}`, `tcp://127.0.0.1:${sipPort}`],
          trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1", cps: 1000 }],
        },
        smpp: {
          listen: "127.0.0.1:0",
          handler_timeout_s: 2,
          accounts: [{ system_id: "smsc-a", password: "secret1", role: "carrier", sources: ["127.0.0.1"], country_code: "1" }],
        },
      },
      dir,
    ));
    carrier = await connectEsme(app!.smpp!.address()!.port);
    expect((await carrier.bind("bind_transceiver", "smsc-a", "secret1")).command_status).toBe(0);
    // The destination answers with the edge tests' scenario: sipp's built-in `-sn uas` does not
    // copy Record-Route into its 180/200, so in-dialog requests would not come back through didgate.
    uas = startSipp({ args: ["-sf", join(SCENARIOS, "uas_answer.xml"), "-i", "127.0.0.1", "-p", String(uasPort), "-t", "u1", "-timeout", "60s"], timeoutMs: 65_000 });

    // Warm-up traffic: creates every labelled series before the first scrape, so the traffic
    // after it shows up in rate().
    expect((await deliver("5125550100", "hello")).command_status).toBe(0);
    expect((await deliver("+4930123456", "no route")).command_status).toBe(0x0b);
    expect((await deliver("5125550150", "quarantined")).command_status).toBe(0x0b);
    const warm = await calls(2, "5125550100");
    expect(warm.code, warm.stdout.slice(-2000) + warm.stderr + warm.trace).toBe(0);

    // Prometheus: own config and data dir, 1 s scrape and evaluation, our rules.
    const pdir = tempDir("didgate-prom-");
    dirs.push(pdir);
    const adminHostPort = admin.replace("http://", "");
    writeFileSync(
      join(pdir, "prometheus.yml"),
      YAML.stringify({
        global: { scrape_interval: "1s", evaluation_interval: "1s", scrape_timeout: "900ms" },
        rule_files: [RULES],
        scrape_configs: [{ job_name: "didgate", static_configs: [{ targets: [adminHostPort] }] }],
      }),
    );
    const promPort = await freePort();
    promUrl = `http://127.0.0.1:${promPort}`;
    prom = spawn(
      PROMETHEUS,
      [`--config.file=${join(pdir, "prometheus.yml")}`, `--storage.tsdb.path=${join(pdir, "data")}`, `--web.listen-address=127.0.0.1:${promPort}`, "--log.level=warn"],
      { cwd: pdir, stdio: ["ignore", "pipe", "pipe"] },
    );
    prom.stdout!.on("data", (d: Buffer) => (promLog = (promLog + d.toString()).slice(-8000)));
    prom.stderr!.on("data", (d: Buffer) => (promLog = (promLog + d.toString()).slice(-8000)));
    await waitFor(async () => (await fetch(`${promUrl}/-/ready`)).ok || undefined, 20_000, 100).catch((e) => {
      throw new Error(`prometheus did not get ready: ${(e as Error).message}\n${promLog}`);
    });
    await scraped('up{job="didgate"}', (v) => v === 1);
    await scraped('didgate_sms_inbound_total{outcome="accepted"}');

    // Traffic Prometheus sees happen: calls, messages, a route change, failing webhooks.
    const more = await calls(3, "5125560042");
    expect(more.code, more.stdout.slice(-2000) + more.stderr + more.trace).toBe(0);
    for (let i = 0; i < 3; i++) expect((await deliver("5125550100", `m${i}`)).command_status).toBe(0);
    expect((await deliver("+4930123456", "no route")).command_status).toBe(0x0b);
    const writer = await routesCommand(["set", "+15125550199", JSON.stringify({ sms: { webhook: `${hook}/sms` } })], rcfg, () => undefined);
    expect(writer).toBe(0);
    // A webhook that answers 503 until Prometheus has seen the retry counter rise across scrapes.
    flaky = 1;
    expect((await deliver("5125550101", "flaky")).command_status).toBe(0); // spool mode: accepted once stored
    const firstRetries = await scraped('sum(didgate_delivery_total{kind="webhook",outcome="retry"})', (v) => v >= 1, 20_000);
    await scraped('sum(didgate_delivery_total{kind="webhook",outcome="retry"})', (v) => v > firstRetries, 20_000);
    flaky = 0;
    // one more scrape after the last traffic
    await scraped('sum(didgate_sms_inbound_total{outcome="accepted"})', (v) => v >= 5);
    await scraped('sum(didgate_calls_total{outcome="routed"})', (v) => v >= 5);
  }, 90_000);

  afterAll(async () => {
    if (prom && prom.exitCode === null) {
      const exited = new Promise((r) => prom!.once("exit", r));
      prom.kill("SIGTERM");
      const t = setTimeout(() => prom!.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
    uas?.kill();
    await cleanupSipp();
    await carrier?.close();
    await app?.stop(1000);
    if (receiver) await new Promise<void>((r) => receiver!.close(() => r()));
    await redis?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("every dashboard panel query evaluates without error", async () => {
    const failures: string[] = [];
    let n = 0;
    for (const p of queryPanels()) {
      for (const t of p.targets ?? []) {
        const expr = substitute(t.expr);
        expect(expr, p.title).not.toContain("$");
        const r = await query(expr);
        n++;
        if (r.status !== "success") failures.push(`${p.title} [${t.refId}] ${expr}: ${r.error}`);
      }
    }
    expect(failures).toEqual([]);
    expect(n).toBeGreaterThanOrEqual(40);
  });

  it("every alert expression evaluates without error", async () => {
    const failures: string[] = [];
    for (const a of alerts()) {
      const r = await query(a.expr);
      if (r.status !== "success") failures.push(`${a.alert}: ${r.error}`);
    }
    expect(failures).toEqual([]);
  });

  it("the key panels show didgate's traffic", async () => {
    const panelExprs = new Map(queryPanels().flatMap((p) => (p.targets ?? []).map((t) => [`${p.title}/${t.refId}`, substitute(t.expr)] as const)));
    const panel = (title: string, ref = "A"): string => {
      const e = panelExprs.get(`${title}/${ref}`);
      if (e === undefined) throw new Error(`no panel ${title}/${ref}`);
      return e;
    };
    // calls/s by trunk and outcome: the routed calls of trunk "carrier", at a rate above 0
    const calls = await series(panel("Calls/s by trunk and outcome"));
    const routed = calls.find((s) => s.metric.trunk === "carrier" && s.metric.outcome === "routed");
    expect(routed, JSON.stringify(calls)).toBeDefined();
    expect(Number(routed!.value[1])).toBeGreaterThan(0);
    const sipReq = await series(panel("SIP requests/s by trunk and method"));
    expect(sipReq.map((s) => s.metric.method)).toEqual(expect.arrayContaining(["INVITE", "ACK", "BYE"]));
    const finals = await series(panel("Final responses/s by code"));
    expect(finals.map((s) => s.metric.code)).toContain("200");
    const setup = await series(panel("Call setup time (INVITE to final response)", "C"));
    expect(setup.length).toBe(1);
    expect(Number(setup[0]!.value[1])).toBeGreaterThan(0);
    // inbound SMS by outcome
    const sms = await series(panel("Inbound SMS/s by outcome"));
    const outcomes = Object.fromEntries(sms.map((s) => [s.metric.outcome, Number(s.value[1])]));
    expect(Object.keys(outcomes)).toEqual(expect.arrayContaining(["accepted", "no_route", "gone"]));
    expect(outcomes.accepted).toBeGreaterThan(0);
    // SMPP binds: the carrier account is bound
    const binds = await series(panel("SMPP binds up/down"));
    expect(binds.find((s) => s.metric.peer === "smsc-a" && s.metric.side === "server")?.value[1]).toBe("1");
    // webhooks: deliveries, latency, the failures we caused
    const deliveries = await series(panel("Deliveries/s by kind and outcome"));
    expect(deliveries.map((s) => `${s.metric.kind}/${s.metric.outcome}`)).toEqual(expect.arrayContaining(["webhook/delivered", "webhook/retry"]));
    const latency = await series(panel("Webhook latency", "B"));
    expect(latency.length).toBe(1);
    expect(Number(latency[0]!.value[1])).toBeGreaterThan(0);
    const fails = await series(panel("Webhook failures/s by class"));
    expect(fails.map((s) => s.metric.class)).toContain("5xx");
    // spool (spool mode: Redis)
    expect(await series(panel("Spool depth"))).toHaveLength(1);
    expect(await series(panel("Spool oldest message age"))).toHaveLength(1);
    // route table: 4 imported + 1 set; synced from Redis, lag measured for the delta
    const entries = await series(panel("Route table entries by kind"));
    expect(entries.reduce((a, s) => a + Number(s.value[1]), 0)).toBe(5);
    expect(Number((await series(panel("Route table version")))[0]?.value[1])).toBeGreaterThan(1.6e12);
    expect((await series(panel("Route sync state", "A")))[0]?.value[1]).toBe("1");
    expect((await series(panel("Route sync state", "B")))[0]?.value[1]).toBe("0");
    expect((await series(panel("Route sync state", "C")))[0]?.value[1]).toBe("0");
    expect(await series(panel("Route sync lag (change written to applied)", "B"))).toHaveLength(1);
    // process
    const lag = await series(panel("Event-loop lag", "B"));
    expect(lag.length).toBe(1);
    expect(Number(lag[0]!.value[1])).toBeGreaterThanOrEqual(0);
    const mem = await series(panel("Memory", "A"));
    expect(mem.length).toBe(1);
    expect(Number(mem[0]!.value[1])).toBeGreaterThan(10 * 1024 * 1024);
    expect(Number((await series(panel("Memory", "B")))[0]?.value[1])).toBeGreaterThan(1024 * 1024);
  });

  it("the rule group is loaded with health ok; the webhook failures make their alert pending and nothing else fires", async () => {
    const r = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
      status: string;
      data: { groups: { name: string; file: string; rules: { name: string; health: string; lastError?: string; type: string; state?: string }[] }[] };
    };
    expect(r.status).toBe("success");
    const g = r.data.groups.find((x) => x.name === "didgate");
    expect(g, JSON.stringify(r.data.groups.map((x) => x.name))).toBeDefined();
    expect(g!.file).toBe(RULES);
    expect(g!.rules.map((x) => x.name).sort()).toEqual(alerts().map((a) => a.alert!).sort());
    // every rule has been evaluated at least once without error
    await waitFor(async () => {
      const rr = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as typeof r;
      const rules = rr.data.groups.find((x) => x.name === "didgate")!.rules;
      const bad = rules.filter((x) => x.health !== "ok");
      return bad.length === 0 ? true : undefined;
    }, 10_000, 200);
    // The 503s we answered make a webhook failure ratio > 10 %: pending (for: 10m), annotations rendered.
    const pending = await waitFor(async () => {
      const a = (await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as {
        data: { alerts: { labels: Record<string, string>; annotations: Record<string, string>; state: string }[] };
      };
      return a.data.alerts.find((x) => x.labels.alertname === "DidgateWebhookFailureRatio") !== undefined ? a.data.alerts : undefined;
    }, 10_000, 200);
    const wh = pending.find((x) => x.labels.alertname === "DidgateWebhookFailureRatio")!;
    expect(wh.state).toBe("pending");
    expect(wh.labels.severity).toBe("warning");
    expect(wh.annotations.summary).toMatch(/^\d+(\.\d+)?% of webhook deliveries from 127\.0\.0\.1:\d+ fail$/);
    expect(wh.annotations.runbook_url).toBe("docs/operations.md#didgatewebhookfailureratio");
    // a healthy edge otherwise: not down, synced, bound, no dead letters
    const others = pending.filter((x) => x.labels.alertname !== "DidgateWebhookFailureRatio").map((x) => x.labels.alertname);
    expect(others).toEqual([]);
  });
});
