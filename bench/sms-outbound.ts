/**
 * Outbound SMS load: messages submitted to a gateway leave for one local SMSC (npm smpp server, one
 * bind, 100 submit_sm outstanding); reports messages/s (first submit → last arrival at the SMSC),
 * the submit → SMSC arrival latency (p50/p99), answers refused, lost and duplicates, and the CPU
 * per message of the gateway's processes, of Redis and of this process (the load generator and the
 * SMSC: the floor under what any gateway can be shown to do on this machine). Cases, each
 * with a fresh SMSC, in one run:
 *
 *   didgate/direct smpp|http   no Redis: ESME_ROK / 202 after the carrier accepted the message
 *   didgate/spool  smpp|http   a redis-server started here: ESME_ROK / 202 once in the Redis spool
 *   kannel         sendsms     Debian kannel: smsbox's sendsms HTTP → bearerbox → SMPP bind to the
 *                              same SMSC; 202 once bearerbox has the message in memory
 *   kannel/store   sendsms     the same with bearerbox's file store: 202 once written to its store
 *
 * SMPP: an app (npm smpp ESME, transceiver) with `--window` submits outstanding; HTTP (didgate's
 * POST /v1/messages and Kannel's GET /cgi-bin/sendsms): `--window` requests outstanding on
 * keep-alive connections. No tps limit. Each case first sends a warm-up of 1,000 messages.
 * With --runs R every case runs R times (interleaved) and the summary gives the median of each.
 *
 *   npm run build && node dist/bench/sms-outbound.js [--messages 20000] [--window 100] [--runs 1]
 *       [--mode direct|spool|both] [--only didgate|kannel] [--no-http] [--no-smpp] [--keep]
 *       [--cpu-prof DIR]
 *
 * --cpu-prof DIR writes a V8 CPU profile of each didgate case into DIR (read it with
 * `node dist/bench/cpuprofile.js FILE`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import YAML from "yaml";
import { Redis } from "ioredis";
import { RedisRouteWriter } from "../src/routing/sources/redis-writer.js";
import { startRedis } from "../test/helpers/redis.js";
import { connectEsme, startSmsc, waitFor, type TestSmsc } from "../test/helpers/smsc.js";
import { parseArgs } from "./lib.js";
import { KANNEL_SENDSMS_USER, Procs, cpuMsOf, startKannel, type BenchCtx } from "./kannel.js";
import { freePort } from "./servers.js";

const ROOT = join(import.meta.dirname, "..", "..");
const args = parseArgs();
const N = args.int("messages", 20_000);
// at most 100: didgate takes 100 message PDUs in flight per session from a peer
const WINDOW = Math.min(100, args.int("window", 100));
const RUNS = Math.max(1, args.int("runs", 1));
const MODE = args.option("mode") ?? "both";
const ONLY = args.option("only");
const WARMUP = Math.min(1000, N);
const CPU_PROF = args.option("cpu-prof");
const NODE_FLAGS = CPU_PROF === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", resolve(CPU_PROF)];
const TOKEN = "bench-token-0123456789abcdef";
const FROM = "15125550100";
const TO = "447700900100";

const wallNow = (): number => performance.timeOrigin + performance.now();

function pct(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

/** Commands Redis has run since it started, by command (INFO commandstats; commands run by scripts count too), and its CPU (INFO cpu) under CPU_US. */
async function redisCalls(url: string): Promise<Map<string, number>> {
  const c = new Redis(url);
  try {
    const info = await c.info("commandstats");
    const m = new Map<string, number>();
    for (const x of info.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)) if (x[1] !== "info") m.set(x[1]!, Number(x[2]));
    // the server's own CPU (user + system, µs), carried under a name no command has
    const cpu = await c.info("cpu");
    const u = /used_cpu_user:([\d.]+)/.exec(cpu)?.[1];
    const s = /used_cpu_sys:([\d.]+)/.exec(cpu)?.[1];
    if (u !== undefined && s !== undefined) m.set(CPU_US, Math.round((Number(u) + Number(s)) * 1e6));
    // bytes the clients sent and got (INFO stats)
    const st = await c.info("stats");
    m.set(NET_IN, Number(/total_net_input_bytes:(\d+)/.exec(st)?.[1] ?? 0));
    m.set(NET_OUT, Number(/total_net_output_bytes:(\d+)/.exec(st)?.[1] ?? 0));
    return m;
  } finally {
    c.disconnect();
  }
}

const CPU_US = " cpu_us";
const NET_IN = " net_in";
const NET_OUT = " net_out";

/** Commands per message between two INFO commandstats: the total and the busiest commands; Redis CPU µs per message. */
function perMessage(a: Map<string, number>, b: Map<string, number>, n: number): { total: number; top: string; cpuUs: number; bytesIn: number; bytesOut: number } {
  const per = (k: string): number => Math.round(((b.get(k) ?? 0) - (a.get(k) ?? 0)) / n);
  const cpuUs = per(CPU_US);
  const bytesIn = per(NET_IN);
  const bytesOut = per(NET_OUT);
  for (const k of [CPU_US, NET_IN, NET_OUT]) {
    a.delete(k);
    b.delete(k);
  }
  const d = [...b].map(([k, v]) => [k, (v - (a.get(k) ?? 0)) / n] as const).filter(([, v]) => v > 0).sort((x, y) => y[1] - x[1]);
  return { cpuUs, bytesIn, bytesOut, total: +d.reduce((s, [, v]) => s + v, 0).toFixed(1), top: d.slice(0, 40).map(([k, v]) => `${k}:${v.toFixed(1)}`).join(" ") };
}

/** Sends message i; calls done(accepted) when the gateway answered. */
type Submit = (i: number, text: string, done: (accepted: boolean) => void) => void;

interface Row {
  case: string;
  messages: number;
  accepted: number;
  refused: number;
  msgs_per_s: number;
  p50_ms: number;
  p99_ms: number;
  lost: number;
  duplicates: number;
  /** Redis commands per message (spool cases: INFO commandstats before and after the run), and the busiest. */
  redis_cmds_per_msg?: number;
  /** Redis server CPU (user + system) per message, µs (INFO cpu). */
  redis_cpu_us_per_msg?: number;
  /** Bytes sent to Redis and received from it per message (INFO stats). */
  redis_bytes_in_per_msg?: number;
  redis_bytes_out_per_msg?: number;
  redis_top?: string;
  /** CPU (user + system) of the gateway's processes per message, µs: didgate's one process; bearerbox + smsbox. */
  gw_cpu_us_per_msg?: number;
  /**
   * CPU (user + system) of this process per message, µs: the load generator (the app's ESME or
   * the HTTP client) and the SMSC, both run here. On a machine of C cores no gateway can be shown
   * faster than about C × 1e6 / (this + the gateway's + Redis's) messages per second.
   */
  harness_cpu_us_per_msg?: number;
  load1: string;
}

/**
 * Sends n messages tagged `tag` with `window` outstanding and waits for them at the SMSC; the
 * SMSC stamps each submit_sm with its arrival time (Date.now(), the wall clock of this process).
 */
async function drive(name: string, smsc: TestSmsc, submit: Submit, n: number, tag: string): Promise<Row> {
  const sentAt = new Float64Array(n);
  let accepted = 0;
  let refused = 0;
  const load1 = loadavg()[0]!.toFixed(2);
  const from = smsc.received.length;
  await new Promise<void>((resolve) => {
    let next = 0;
    let inFlight = 0;
    const pump = (): void => {
      while (inFlight < WINDOW && next < n) {
        const i = next++;
        inFlight++;
        sentAt[i] = wallNow();
        submit(i, `${tag} ${i}`, (ok) => {
          inFlight--;
          if (ok) accepted++;
          else refused++;
          if (next >= n && inFlight === 0) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  const arrived = new Float64Array(n);
  let arrivals = 0;
  let duplicates = 0;
  let scanned = from;
  const scan = (): number => {
    for (; scanned < smsc.received.length; scanned++) {
      const p = smsc.received[scanned]!;
      if (p.command !== "submit_sm") continue;
      const text = String((p.short_message as { message?: unknown }).message ?? "");
      const sp = text.indexOf(" ");
      if (text.slice(0, sp) !== tag) continue;
      const i = Number(text.slice(sp + 1));
      if (!(i >= 0 && i < n)) continue;
      if (arrived[i] !== 0) duplicates++;
      else {
        arrived[i] = p._at as number;
        arrivals++;
      }
    }
    return arrivals;
  };
  // every accepted message must arrive; give up after 30 s without progress
  let last = -1;
  let still = Date.now();
  while (scan() < accepted) {
    if (arrivals !== last) [last, still] = [arrivals, Date.now()];
    else if (Date.now() - still > 30_000) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 300)); // late duplicates
  scan();
  let first = Infinity;
  let end = 0;
  const lat: number[] = [];
  for (let i = 0; i < n; i++) {
    first = Math.min(first, sentAt[i]!);
    if (arrived[i]! > 0) {
      end = Math.max(end, arrived[i]!);
      lat.push(arrived[i]! - sentAt[i]!);
    }
  }
  lat.sort((a, b) => a - b);
  return { case: name, messages: n, accepted, refused, msgs_per_s: Math.round((arrivals / (end - first)) * 1000), p50_ms: +pct(lat, 50).toFixed(1), p99_ms: +pct(lat, 99).toFixed(1), lost: accepted - arrivals, duplicates, load1 };
}

/** HTTP requests with `window` outstanding on keep-alive connections; ok = a 2xx answer. */
function httpSubmitter(port: number, agent: Agent, req: (text: string) => { method: string; path: string; headers?: Record<string, string>; body?: string }): Submit {
  return (_i, text, done) => {
    const r = req(text);
    const q = httpRequest({ host: "127.0.0.1", port, agent, method: r.method, path: r.path, headers: r.headers ?? {} }, (res) => {
      res.resume();
      res.on("end", () => done((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300));
    });
    q.on("error", () => done(false));
    q.end(r.body);
  };
}

interface Case {
  name: string;
  /** Starts the gateway against the SMSC; returns its submitters and a stop function. */
  start(ctx: BenchCtx, smsc: TestSmsc): Promise<Started>;
}

interface Started {
  submit: Submit;
  stop(): Promise<void>;
  /** The gateway's processes (their CPU is counted). */
  pids(): (number | undefined)[];
  /** The Redis the gateway uses (spool mode). */
  redisUrl?: string;
}

async function startDidgate(ctx: BenchCtx, smsc: TestSmsc, mode: "direct" | "spool", via: "smpp" | "http"): Promise<Started> {
  const dir = mkdtempSync(join(ctx.dir, `didgate-${mode}-${via}-`));
  const port = await freePort();
  const apiPort = await freePort();
  const redis = mode === "spool" ? await startRedis() : undefined;
  const routes = { ["+" + FROM]: { tenant: "acme", sms: { webhook: "http://127.0.0.1:9/in" } } };
  const outbound = { "+44*": { sms: ["smsc-b"] } };
  if (redis) {
    const c = new Redis(redis.url);
    const w = new RedisRouteWriter(c, { prefix: "didgate:", streamMaxlen: 10_000 });
    await w.set("+" + FROM, routes["+" + FROM]!);
    await w.setOutbound("+44*", outbound["+44*"]);
    c.disconnect();
  } else writeFileSync(join(dir, "routes.yaml"), YAML.stringify({ routes, outbound }));
  const cfg = join(dir, "didgate.yaml");
  writeFileSync(
    cfg,
    YAML.stringify({
      state_dir: dir,
      log: { level: "error" },
      admin: { listen: "127.0.0.1:0" },
      sip: { listen: [] },
      routes: redis ? { redis: { url: redis.url, snapshot: "" } } : { file: "routes.yaml" },
      records: { enabled: false },
      api: { listen: `127.0.0.1:${apiPort}`, tokens: [{ token: TOKEN, tenant: "acme" }], rate_limit: { per_s: 1_000_000, burst: 1_000_000 } },
      smpp: {
        listen: `127.0.0.1:${port}`,
        window: WINDOW,
        accounts: [{ system_id: "app-1", password: "pw", role: "app", tenant: "acme", country_code: "1" }],
        binds: [{ name: "smsc-b", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", window: WINDOW }],
      },
    }),
  );
  const child: ChildProcess = ctx.procs.track(spawn(join(ROOT, "node_modules/.bin/node"), [...NODE_FLAGS, join(ROOT, "dist/src/cli.js"), "serve", "--config", cfg], { detached: true, stdio: ["ignore", "ignore", "inherit"] }));
  const stopAll = async (): Promise<void> => {
    await ctx.procs.stop(child, 3000);
    await redis?.stop();
  };
  try {
    let app: Awaited<ReturnType<typeof connectEsme>> | undefined;
    const t0 = Date.now();
    while (app === undefined && Date.now() - t0 < 20_000) {
      try {
        const e = await connectEsme(port);
        if ((await e.bind("bind_transceiver", "app-1", "pw")).command_status === 0) app = e;
        else await e.close();
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    if (app === undefined) throw new Error("could not bind to didgate");
    await waitFor(() => smsc.binds.length > 0, 20_000, "didgate bound to the SMSC");
    const stop = async (): Promise<void> => {
      await app!.close();
      agent.destroy();
      await stopAll();
    };
    const agent = new Agent({ keepAlive: true, maxSockets: WINDOW });
    if (via === "http") {
      const submit = httpSubmitter(apiPort, agent, (text) => ({
        method: "POST",
        path: "/v1/messages",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ from: "+" + FROM, to: "+" + TO, text }),
      }));
      return { submit, stop, pids: () => [child.pid], ...(redis ? { redisUrl: redis.url } : {}) };
    }
    const submit: Submit = (_i, text, done) => {
      app!.session.submit_sm({ source_addr: FROM, source_addr_ton: 1, destination_addr: TO, dest_addr_ton: 1, short_message: text }, (r: { command_status: number }) => done(r.command_status === 0));
    };
    return { submit, stop, pids: () => [child.pid], ...(redis ? { redisUrl: redis.url } : {}) };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

async function startKannelCase(ctx: BenchCtx, smsc: TestSmsc, store: boolean): Promise<Started> {
  const k = await startKannel(ctx, { peerPort: smsc.port, binds: 1, store, maxPendingSubmits: WINDOW });
  try {
    await waitFor(() => smsc.binds.length > 0, 20_000, "kannel bound to the SMSC");
  } catch (err) {
    await k.stop();
    throw err;
  }
  const agent = new Agent({ keepAlive: true, maxSockets: WINDOW });
  const { username, password } = KANNEL_SENDSMS_USER;
  const submit = httpSubmitter(k.sendsmsPort, agent, (text) => ({
    method: "GET",
    path: `/cgi-bin/sendsms?${new URLSearchParams({ username, password, from: FROM, to: TO, text }).toString()}`,
  }));
  return {
    submit,
    pids: k.pids,
    stop: async () => {
      agent.destroy();
      await k.stop();
    },
  };
}

const cases: Case[] = [];
const modes = (MODE === "both" ? ["direct", "spool"] : [MODE]) as ("direct" | "spool")[];
if (ONLY !== "kannel")
  for (const m of modes)
    for (const via of ["smpp", "http"] as const) {
      if (args.flag(`no-${via}`)) continue;
      cases.push({ name: `didgate/${m} ${via}`, start: (ctx, smsc) => startDidgate(ctx, smsc, m, via) });
    }
if (ONLY !== "didgate") {
  cases.push({ name: "kannel sendsms", start: (ctx, smsc) => startKannelCase(ctx, smsc, false) });
  cases.push({ name: "kannel/store sendsms", start: (ctx, smsc) => startKannelCase(ctx, smsc, true) });
}

const ctx: BenchCtx = { procs: new Procs(), dir: mkdtempSync(join(tmpdir(), "didgate-sms-out-")), logs: [] };
process.once("exit", () => ctx.procs.killAll());
const rows: Row[] = [];
console.log(`# sms-outbound: ${N} messages per case, window ${WINDOW}, ${RUNS} run(s); logs in ${ctx.dir}`);
try {
  for (let run = 0; run < RUNS; run++)
    for (const c of cases) {
      const smsc = await startSmsc({ idPrefix: "b" });
      try {
        const g = await c.start(ctx, smsc);
        try {
          await drive(c.name, smsc, g.submit, WARMUP, `w${run}`);
          const calls0 = g.redisUrl !== undefined ? await redisCalls(g.redisUrl) : undefined;
          const gwCpu = (): number => g.pids().reduce<number>((s, p) => s + cpuMsOf(p), 0);
          const cpu0 = gwCpu();
          const own0 = process.cpuUsage();
          const row = await drive(c.name, smsc, g.submit, N, `r${run}`);
          row.gw_cpu_us_per_msg = Math.round(((gwCpu() - cpu0) * 1000) / N);
          const own = process.cpuUsage(own0);
          row.harness_cpu_us_per_msg = Math.round((own.user + own.system) / N);
          if (g.redisUrl !== undefined && calls0 !== undefined) {
            const pm = perMessage(calls0, await redisCalls(g.redisUrl), N);
            row.redis_cmds_per_msg = pm.total;
            row.redis_cpu_us_per_msg = pm.cpuUs;
            row.redis_bytes_in_per_msg = pm.bytesIn;
            row.redis_bytes_out_per_msg = pm.bytesOut;
            row.redis_top = pm.top;
          }
          rows.push(row);
          console.log(JSON.stringify(row));
        } finally {
          await g.stop();
        }
      } finally {
        await smsc.close();
      }
    }
} finally {
  ctx.procs.killAll();
  if (!args.flag("keep")) rmSync(ctx.dir, { recursive: true, force: true });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const summary = new Map<string, { msgs_per_s: number; p99_ms: number; cpu: number; harness: number }>();
for (const c of cases) {
  const rs = rows.filter((r) => r.case === c.name);
  if (rs.length > 0) summary.set(c.name, { msgs_per_s: median(rs.map((r) => r.msgs_per_s)), p99_ms: median(rs.map((r) => r.p99_ms)), cpu: median(rs.map((r) => r.gw_cpu_us_per_msg ?? NaN)), harness: median(rs.map((r) => r.harness_cpu_us_per_msg ?? NaN)) });
}
console.log(`# medians of ${RUNS} run(s):`);
for (const [name, s] of summary) console.log(`#   ${name.padEnd(22)} ${String(s.msgs_per_s).padStart(7)} msg/s  p99 ${s.p99_ms} ms  gateway CPU ${s.cpu} us/msg  harness CPU ${s.harness} us/msg`);
// Equal guarantees: the spool (acknowledged once in Redis, outside the didgate process) is compared
// with Kannel's file store (acknowledged once in bearerbox's store file); didgate's direct mode
// (acknowledged after the carrier accepted) with Kannel without store (acknowledged once in
// bearerbox's memory), a weaker promise than didgate's.
for (const [name, s] of summary) {
  if (!name.startsWith("didgate")) continue;
  const k = summary.get(name.startsWith("didgate/spool") ? "kannel/store sendsms" : "kannel sendsms");
  if (k !== undefined) console.log(`# ${name}: ratio_to_kannel ${(s.msgs_per_s / k.msgs_per_s).toFixed(2)} (vs ${name.startsWith("didgate/spool") ? "kannel/store" : "kannel"}), p99 ${s.p99_ms} ms vs ${k.p99_ms} ms`);
}
process.exit(0);
