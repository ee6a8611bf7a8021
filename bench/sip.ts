/**
 * SIP edge benchmark: sipp UAC -> proxy -> sipp UAS on loopback, full calls
 * (INVITE/100/180/200/ACK/BYE/200, Record-Route on), 100k DIDs in the table, the calls spread over
 * them. The offered rate is ramped until more than 0.1% of calls fail (or the rate is not
 * reached); the highest clean step is the sustained rate. Per step: setup p50/p99 (sipp
 * -trace_rtt: INVITE sent to 200 received) and the proxy's CPU microseconds per call (utime+stime
 * from /proc/PID/stat, all processes of the proxy).
 *
 * The same load runs against didgate (`node dist/src/cli.js serve --config <generated>`) and
 * Kamailio (/usr/sbin/kamailio, one UDP worker, the DIDs in an mtree loaded from db_text,
 * record_route + t_relay; config from bench/kamailio/bench.cfg.tpl), and the ratio is printed.
 * "didgate-w2" is the plain case with sip.workers: 2 (docs/sip.md "Workers"), "kamailio-w2"
 * Kamailio with children=2: the CPU of every process of the proxy is counted.
 *
 *   npx tsc -p . && node dist/bench/sip.js [--json] [--dids 100k] [--step-s 20] [--warmup-s 10]
 *        [--rates 500,1000,...] [--only didgate,didgate-w2,didgate-bare,didgate-cdr-hep,didgate-verify,didgate-out,didgate-sign,kamailio,kamailio-w2] [--log-level info] [--log-file PATH]
 *        [--cpu-prof DIR] [--node-flags "FLAG ..."] [--repeat N]
 *
 * --repeat N runs the chosen proxies in turn N times (round 1: each proxy once, then round 2, ...,
 * each round starting one proxy further down the list) and prints each one's figures round by
 * round with their median, and the capacity ratios (didgate / kamailio, didgate-w2 / didgate,
 * didgate-w2 / kamailio-w2) per round. Every proxy run gets a sipp UAS of its own.
 *
 * Before the first step every proxy gets 2 s at 200 calls/s (the first rate when lower) and then --warmup-s seconds (10) at
 * half the first step's rate, not reported: the steps measure a warm process.
 *
 * --cpu-prof DIR runs each didgate server under `node --cpu-prof` and writes its .cpuprofile into
 * DIR when it stops (warm-up and every step included); summarise one with
 * `node dist/bench/cpuprofile.js FILE` (self time per function and per file). --node-flags passes
 * node/V8 flags to every didgate server (heap sizing, GC options). Each step also prints the CPU
 * per call of the proxy's threads other than its main ones ("helper threads": for Node, V8's
 * concurrent GC and compiler threads), a part of the CPU per call.
 *
 * The outbound case ("didgate-out") runs the same calls the other way: sipp as a customer on
 * 127.0.0.2 (caller ID checked for ownership) -> didgate -> the same sipp UAS as the carrier, the
 * destination picked from a 100k-entry outbound table (one prefix per destination block).
 *
 * The STIR/SHAKEN cases: "didgate-verify" is the inbound case with stir.verify on, every INVITE
 * carrying a valid Identity (PASSporTs signed at the start for the first 5,000 DIDs; the
 * certificate cached after the first call); "didgate-sign" is the outbound case with stir.sign on.
 *
 * Records and capture: the plain "didgate" case runs with the defaults (call records on, written to
 * state_dir/records.log; no capture). "didgate-bare" turns records off; "didgate-cdr-hep" adds a
 * rotated JSON-lines copy of every record and HEP3 capture of every SIP message to a UDP receiver
 * in this process (its packet count is printed, so a capture that sent nothing shows).
 *
 * When `didgate serve` does not answer SIP (the app does not wire the voice edge), the bench runs
 * the same config through `node dist/bench/sip.js --serve CONFIG` (Didgate + VoiceEdge in-process).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createPrivateKey } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { parseIdentity } from "../src/stir/passport.js";
import { StirSigner } from "../src/stir/sign.js";
import { median, parseArgs } from "./lib.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const CLI = path.join(ROOT, "dist", "src", "cli.js");
const SIPP = process.env.SIPP_BIN ?? "/usr/bin/sipp";
const KAMAILIO = process.env.KAMAILIO_BIN ?? "/usr/sbin/kamailio";
const KAM_MODULES = process.env.KAMAILIO_MODULES ?? "/usr/lib/x86_64-linux-gnu/kamailio/modules";
const TICK_US = 1e6 / 100; // USER_HZ

// ---------------------------------------------------------------- in-process server mode

async function serve(configPath: string): Promise<void> {
  const { loadConfig } = await import("../src/config/load.js");
  const { Didgate } = await import("../src/app.js");
  const loaded = loadConfig(configPath);
  const app = new Didgate(loaded);
  await app.start();
  const voice = (app as unknown as { voice?: import("../src/edge/voice.js").VoiceEdge }).voice;
  if (voice === undefined) throw new Error("the config runs no SIP edge (sip.listen is empty)");
  const stop = async (): Promise<void> => {
    await voice.drain(0); // a deadline already passed: new INVITEs refused, nothing waited for
    await voice.close();
    await app.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
}

// ---------------------------------------------------------------- helpers

async function freePort(): Promise<number> {
  for (;;) {
    const p = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const ok = await new Promise<boolean>((resolve) => {
      const u = dgram.createSocket("udp4");
      u.once("error", () => {
        u.close();
        resolve(false);
      });
      u.bind(p, "127.0.0.1", () => u.close(() => resolve(true)));
    });
    if (ok) return p;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** utime+stime ticks of a thread (/proc/PID/task/TID/stat); 0 when gone. */
function threadStatTicks(file: string): number {
  try {
    const s = fs.readFileSync(file, "latin1");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/**
 * CPU ticks of a process tree: all of it, and the share of threads other than each process's
 * main thread (for Node: V8's GC and compiler helper threads, libuv's pool; 0 for Kamailio, whose
 * processes have one thread each).
 */
function treeTicks(rootPid: number): { all: number; helpers: number } {
  const all = processTreeTicks(rootPid);
  let helpers = 0;
  for (const pid of all.pids) {
    let tids: string[] = [];
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) if (tid !== String(pid)) helpers += threadStatTicks(`/proc/${pid}/task/${tid}/stat`);
  }
  return { all: all.sum, helpers };
}

/** utime+stime ticks of a process and all its descendants, and their pids. */
function processTreeTicks(rootPid: number): { sum: number; pids: number[] } {
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, "latin1");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      parent.set(Number(d), Number(f[1]));
      ticks.set(Number(d), Number(f[11]) + Number(f[12]));
    } catch {
      // gone
    }
  }
  let sum = 0;
  const pids: number[] = [];
  for (const [pid, t] of ticks) {
    let p: number | undefined = pid;
    for (let i = 0; i < 10 && p !== undefined && p > 1; i++) {
      if (p === rootPid) {
        sum += t;
        pids.push(pid);
        break;
      }
      p = parent.get(p);
    }
  }
  return { sum, pids };
}

/** Any SIP answer to an OPTIONS on UDP. */
async function sipAlive(port: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  const sock = dgram.createSocket("udp4");
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
  let got = false;
  sock.on("message", () => (got = true));
  const lp = sock.address().port;
  let n = 0;
  while (!got && Date.now() < end) {
    n++;
    const msg =
      `OPTIONS sip:ping@127.0.0.1:${port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${lp};branch=z9hG4bK-ping${n};rport\r\n` +
      `From: <sip:bench@127.0.0.1>;tag=b${n}\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: ping-${n}-${lp}\r\nCSeq: ${n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`;
    sock.send(msg, port, "127.0.0.1");
    await sleep(200);
  }
  sock.close();
  return got;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

// ---------------------------------------------------------------- scenarios

const UAC = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="bench_uac">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+15125559999@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:+15125559999@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:+15125559999@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <ResponseTimeRepartition value="1, 2, 5, 10, 20, 50, 100, 200"/>
</scenario>
`;

const UAS = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="bench_uas">
  <recv request="INVITE"/>
  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user2 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
`;

// ---------------------------------------------------------------- runs

/** A proxy's result in one round: the highest clean step (sustained_cps 0 when none was). */
interface Summary {
  sustained_cps: number;
  p50: number;
  p99: number;
  cpu: number;
}

/**
 * The ratios the SIP capacity goal is stated in (sustained calls/s): one process against Kamailio
 * with one child, two workers against one process, two workers against Kamailio with two children;
 * per round, for the rounds in which both proxies ran.
 */
function capacityRatios(summary: Record<string, readonly Summary[]>): Array<{ label: string; ratios: number[] }> {
  const pairs: Array<[string, string, string]> = [
    ["didgate / kamailio", "didgate", "kamailio"],
    ["didgate-w2 / didgate", "didgate-w2", "didgate"],
    ["didgate-w2 / kamailio-w2", "didgate-w2", "kamailio-w2"],
  ];
  const out: Array<{ label: string; ratios: number[] }> = [];
  for (const [label, a, b] of pairs) {
    const ra = summary[a];
    const rb = summary[b];
    if (ra === undefined || rb === undefined) continue;
    const ratios: number[] = [];
    for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
      const x = ra[i]!.sustained_cps;
      const y = rb[i]!.sustained_cps;
      ratios.push(y > 0 ? Math.round((x / y) * 100) / 100 : x > 0 ? Infinity : NaN);
    }
    out.push({ label, ratios });
  }
  return out;
}

interface Step {
  proxy: string;
  rate: number;
  calls: number;
  ok: number;
  failed: number;
  achieved_cps: number;
  setup_p50_ms: number;
  setup_p99_ms: number;
  cpu_us_per_call: number;
  /** Of cpu_us_per_call, what threads other than the main ones used (Node: GC and JIT helpers). */
  helper_us_per_call: number;
  clean: boolean;
  /** sipp's error log by kind (sippErrors), when it has anything. */
  errors?: string;
}

function statValue(stdout: string, label: string): number {
  const re = new RegExp(`${label}\\s*\\|\\s*(\\d+)\\s*\\|\\s*(\\d+)`, "g");
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(stdout)) !== null) last = Number(m[2]);
  return last;
}

async function runStep(dir: string, proxyName: string, proxyPid: number, proxyPort: number, rate: number, stepS: number, uacIp = "127.0.0.1", csvName = "dids.csv", scenario = "uac.xml"): Promise<Step> {
  const calls = Math.max(1, Math.round(rate * stepS));
  const cwd = fs.mkdtempSync(path.join(dir, `uac-${proxyName}-${rate}-`));
  const uacPort = await freePort();
  const args = [
    `127.0.0.1:${proxyPort}`, "-sf", path.join(dir, scenario), "-inf", path.join(dir, csvName), "-i", uacIp, "-p", String(uacPort),
    "-r", String(rate), "-m", String(calls), "-l", String(Math.max(100, rate * 4)), "-trace_rtt", "-rtt_freq", "50",
    "-timeout", `${stepS + 20}s`, "-recv_timeout", "8000", "-nostdin", "-max_socket", "1000", "-trace_err",
    // a provisional response that arrives after the 200 (a proxy whose processes share one socket
    // may forward them out of order, as Kamailio with children=2 does) is ignored as a UA's
    // transaction layer ignores it, not taken as a failed call; a call still fails on a timeout
    "-default_behaviors", "all,-abortunexp",
  ];
  const c0 = treeTicks(proxyPid);
  const t0 = Date.now();
  const child = spawn(SIPP, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out = (out + d.toString("latin1")).slice(-60000)));
  child.stderr.on("data", (d: Buffer) => (out = (out + d.toString("latin1")).slice(-60000)));
  await new Promise<void>((r) => child.on("close", () => r()));
  const secs = (Date.now() - t0) / 1000;
  const c1 = treeTicks(proxyPid);
  const ok = statValue(out, "Successful call");
  const failed = statValue(out, "Failed call");
  const rtt: number[] = [];
  // sipp's rtt lines start with the ms since sipp started: the last one is about when the last
  // calls were set up
  let lastSetupAt = 0;
  for (const f of fs.readdirSync(cwd)) {
    if (!f.endsWith("_rtt.csv")) continue;
    for (const line of fs.readFileSync(path.join(cwd, f), "latin1").split(/\r?\n/)) {
      const parts = line.split(";");
      if (parts.length >= 2 && /^\d/.test(parts[0]!)) {
        const v = Number(parts[1]);
        if (Number.isFinite(v)) rtt.push(v);
        const at = Number(parts[0]);
        if (Number.isFinite(at) && at > lastSetupAt) lastSetupAt = at;
      }
    }
  }
  rtt.sort((a, b) => a - b);
  const total = ok + failed;
  // calls answered per second up to the last sampled setup (at least the step's nominal length):
  // the recv_timeout sipp waits for a few lost calls at the end is not the proxy's rate
  const setupSpan = lastSetupAt > 0 ? lastSetupAt / 1000 : secs;
  const achieved = ok / Math.min(secs, Math.max(calls / rate, setupSpan));
  const unanswered = calls - total;
  const clean = total > 0 && (failed + unanswered) / calls <= 0.001 && achieved >= rate * 0.9;
  const errors = sippErrors(cwd);
  fs.rmSync(cwd, { recursive: true, force: true });
  return {
    proxy: proxyName,
    rate,
    calls,
    ok,
    failed: failed + unanswered,
    achieved_cps: Math.round(achieved),
    setup_p50_ms: Math.round(pct(rtt, 50) * 1000) / 1000,
    setup_p99_ms: Math.round(pct(rtt, 99) * 1000) / 1000,
    cpu_us_per_call: ok > 0 ? Math.round(((c1.all - c0.all) * TICK_US) / ok) : NaN,
    helper_us_per_call: ok > 0 ? Math.round(((c1.helpers - c0.helpers) * TICK_US) / ok) : NaN,
    clean,
    ...(errors !== "" ? { errors } : {}),
  };
}

/**
 * What sipp's -trace_err log says (failed calls, and messages it did not expect but let pass, such
 * as a late 180): each kind of line (numbers blanked, long quotes cut) with its count, the most
 * frequent first; "" when the log is empty.
 */
function sippErrors(cwd: string): string {
  const kinds = new Map<string, number>();
  for (const f of fs.readdirSync(cwd)) {
    if (!f.endsWith("_errors.log")) continue;
    for (const line of fs.readFileSync(path.join(cwd, f), "latin1").split(/\r?\n/)) {
      // "2026-12-06 23:41:02.123456 1765064462.123456: Aborting call on unexpected message for Call-Id '...': while expecting '200' (index 3), received 'SIP/2.0 408 ...'"
      const m = /^\S+\s+\S+\s+[\d.]+: (.*)$/.exec(line);
      if (m === null) continue;
      const k = m[1]!.replace(/ for Call-Id '[^']*'/g, "").replace(/'[^']*'/g, (q) => (q.length > 40 ? "'…'" : q)).replace(/\d+/g, "N").slice(0, 160);
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
  }
  return [...kinds].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, n]) => `${n}x ${k}`).join(" | ");
}

function kill(child: ChildProcess | null, graceMs = 5000): Promise<void> {
  if (child === null || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("close", () => {
      clearTimeout(t);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

async function main(): Promise<void> {
  const args = parseArgs();
  const serveCfg = args.option("serve");
  if (serveCfg !== undefined) return serve(serveCfg);

  const nDids = args.int("dids", 100_000);
  // A step must outlast what a proxy holds of a finished call (sip.timers.wait_ms, 5 s; Kamailio's
  // wt_timer, 5 s) for its heap to reach its steady state: 5 s steps ended before that and hid
  // the cost of holding 32 s.
  const stepS = Number(args.option("step-s") ?? 20);
  // seconds at half the first rate before the first step (0: only the 2 s at 200/s)
  const warmupS = Number(args.option("warmup-s") ?? 10);
  const rates = (args.option("rates") ?? "250,500,1000,1500,2000,2500,3000,4000,5000,6000,8000").split(",").map(Number);
  const onlyList = args.option("only")?.split(",");
  const want = (n: string): boolean => onlyList === undefined || onlyList.includes(n);
  const logLevel = args.option("log-level") ?? "info";
  const logFile = args.option("log-file") !== undefined ? path.resolve(args.option("log-file")!) : undefined;
  const cpuProfDir = args.option("cpu-prof");
  const nodeFlags: string[] = [];
  if (cpuProfDir !== undefined) {
    fs.mkdirSync(cpuProfDir, { recursive: true });
    nodeFlags.push("--cpu-prof", "--cpu-prof-dir", path.resolve(cpuProfDir));
  }
  // extra node/V8 flags for every didgate server (e.g. "--max-semi-space-size=64")
  const extraFlags = args.option("node-flags");
  if (extraFlags !== undefined) nodeFlags.push(...extraFlags.split(" ").filter((f) => f !== ""));
  const json = args.json;
  const repeat = Math.max(1, args.int("repeat", 1));
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} not found: run npx tsc -p . first`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "didgate-sipbench-"));
  const uasPort = await freePort();
  const routes: Record<string, unknown> = {};
  const dbRows: string[] = ["id(int,auto) tprefix(string) tvalue(string)"];
  const csv: string[] = ["RANDOM"];
  for (let i = 0; i < nDids; i++) {
    const did = "+1512" + String(6000000 + i);
    routes[did] = { voice: { targets: [`sip:${did}@127.0.0.1:${uasPort}`] } };
    dbRows.push(`${i + 1}:${did}:127.0.0.1\\:${uasPort}`);
    csv.push(did + ";");
  }
  // outbound: the caller's own number, and one outbound prefix per destination block
  routes["+15125559999"] = { tenant: "bench", voice: { targets: [`sip:owner@127.0.0.1:${uasPort}`] } };
  const outbound: Record<string, unknown> = {};
  const outCsv: string[] = ["RANDOM"];
  for (let i = 0; i < nDids; i++) {
    const prefix = "+44" + String(2000000 + i);
    outbound[prefix + "*"] = { voice: ["carrier"] };
    outCsv.push(prefix + "123;");
  }
  fs.writeFileSync(path.join(dir, "routes.json"), JSON.stringify({ routes, outbound }));
  fs.writeFileSync(path.join(dir, "out.csv"), outCsv.join("\n") + "\n");
  fs.mkdirSync(path.join(dir, "db"));
  fs.writeFileSync(path.join(dir, "db", "mtree"), dbRows.join("\n") + "\n");
  fs.writeFileSync(path.join(dir, "dids.csv"), csv.join("\n") + "\n");
  fs.writeFileSync(path.join(dir, "uac.xml"), UAC);
  fs.writeFileSync(path.join(dir, "uas.xml"), UAS);

  // every proxy gets a UAS of its own (the same port): a UAS that served a proxy which failed
  // calls keeps retransmitting 200s for the calls never ACKed and holds them, and that work would
  // load the next proxy's run on this two-core machine
  let uas: ChildProcess | null = null;
  const freshUas = async (): Promise<void> => {
    await kill(uas);
    uas = spawn(SIPP, ["-sf", path.join(dir, "uas.xml"), "-i", "127.0.0.1", "-p", String(uasPort), "-nostdin", "-max_socket", "1000"], { cwd: dir, stdio: "ignore" });
    await sleep(500);
  };

  const results: Step[] = [];
  /** Each proxy's result per round (--repeat). */
  const summary: Record<string, Summary[]> = {};
  const log = (s: string): void => {
    if (!json) process.stdout.write(s + "\n");
  };

  const runProxy = async (name: string, start: () => Promise<{ child: ChildProcess; port: number }>, uacIp = "127.0.0.1", csvName = "dids.csv", scenario = "uac.xml"): Promise<void> => {
    await freshUas();
    const { child, port } = await start();
    try {
      // warm-up (not reported): JIT, first GCs after loading the table, sipp sockets; then
      // warmupS at half the first step's rate, so the first step measures a warm process (two
      // workers each compile the hot path under load, and failed a cold 1,000/s step where a
      // warm one sustains 2,000/s)
      await runStep(dir, name + "-warmup", child.pid!, port, Math.min(200, rates[0] ?? 200), 2, uacIp, csvName, scenario);
      await sleep(1000);
      if (warmupS > 0) {
        await runStep(dir, name + "-warmup2", child.pid!, port, Math.max(100, Math.round((rates[0] ?? 200) / 2)), warmupS, uacIp, csvName, scenario);
        await sleep(1500);
      }
      let best: Step | null = null;
      for (const rate of rates) {
        const st = await runStep(dir, name, child.pid!, port, rate, stepS, uacIp, csvName, scenario);
        results.push(st);
        if (json) process.stdout.write(JSON.stringify({ name: `sip_calls_${name}`, entries: nDids, ...st }) + "\n");
        else log(`${name.padEnd(11)} rate ${String(rate).padStart(5)}/s  ok ${String(st.ok).padStart(6)}  failed ${String(st.failed).padStart(5)}  achieved ${String(st.achieved_cps).padStart(5)}/s  setup p50 ${st.setup_p50_ms} ms p99 ${st.setup_p99_ms} ms  cpu ${st.cpu_us_per_call} us/call (helper threads ${st.helper_us_per_call})${st.clean ? "" : "  (not sustained)"}${st.errors !== undefined ? "\n    sipp: " + st.errors : ""}`);
        if (!st.clean) break;
        best = st;
        await sleep(1500); // let transactions drain between steps
      }
      (summary[name] ??= []).push(best ? { sustained_cps: best.rate, p50: best.setup_p50_ms, p99: best.setup_p99_ms, cpu: best.cpu_us_per_call } : { sustained_cps: 0, p50: NaN, p99: NaN, cpu: NaN });
    } finally {
      // a server under --cpu-prof writes its profile on exit: give it time
      await kill(child, cpuProfDir !== undefined ? 60_000 : 5000);
    }
  };

  try {
    const startDidgate = async (extra: string[] = [], sipExtra: string[] = []): Promise<{ child: ChildProcess; port: number }> => {
        const port = await freePort();
        const cfg = path.join(dir, "didgate.yaml");
        fs.writeFileSync(
          cfg,
          [
            "sip:",
            `  listen: ["udp://127.0.0.1:${port}"]`,
            "  max_inflight_invites: 100000",
            ...sipExtra.map((l) => "  " + l),
            "  flood: { per_source_pps: 100000, max_sources: 1000 }",
            "  trunks:",
            '    - { name: bench, sources: ["127.0.0.1"], country_code: "1", cps: 100000 }',
            `    - { name: carrier, termination: "sip:127.0.0.1:${uasPort}" }`,
            "  customers:",
            '    - { name: bench-pbx, tenant: bench, sources: ["127.0.0.2"], country_code: "1", cps: 100000 }',
            "smpp: { listen: null }",
            "routes: { file: routes.json, watch: false }",
            'admin: { listen: "127.0.0.1:0" }',
            `log: { level: ${logLevel} }`,
            ...extra,
            "",
          ].join("\n"),
        );
        // --log-file: the servers' log lines appended there (by default they are dropped)
        const out = logFile !== undefined ? fs.openSync(logFile, "a") : "ignore";
        try {
          let child = spawn(process.execPath, [...nodeFlags, CLI, "serve", "--config", cfg], { cwd: dir, stdio: ["ignore", out, "inherit"] });
          if (!(await sipAlive(port, 90_000))) {
            await kill(child);
            log("didgate serve does not answer SIP (voice edge not wired in app.ts?): using the in-process --serve mode");
            child = spawn(process.execPath, [...nodeFlags, fileURLToPath(import.meta.url), "--serve", cfg], { cwd: dir, stdio: ["ignore", out, "inherit"] });
            if (!(await sipAlive(port, 90_000))) throw new Error("didgate does not answer SIP");
          }
          return { child, port };
        } finally {
          // the server holds its own copy
          if (typeof out === "number") fs.closeSync(out);
        }
    };
    /** The chosen proxies' runs, in the order they are listed (one call: one run of that proxy). */
    const runners: Array<() => Promise<void>> = [];
    if (want("didgate")) runners.push(() => runProxy("didgate", () => startDidgate()));
    if (want("didgate-w2")) runners.push(() => runProxy("didgate-w2", () => startDidgate([], ["workers: 2"])));
    if (want("didgate-bare")) runners.push(() => runProxy("didgate-bare", () => startDidgate(["records: { enabled: false }"])));
    if (want("didgate-cdr-hep"))
      runners.push(async () => {
        const sink = dgram.createSocket("udp4");
        let hep = 0;
        sink.on("message", () => hep++);
        await new Promise<void>((r) => sink.bind(0, "127.0.0.1", () => r()));
        try {
          const on = [`records: { jsonl: { path: cdr.jsonl } }`, `capture: { hep: "udp://127.0.0.1:${sink.address().port}", id: 2001 }`];
          await runProxy("didgate-cdr-hep", () => startDidgate(on));
          log(`didgate-cdr-hep: ${hep} HEP packets received`);
        } finally {
          sink.close();
        }
      });
    if (want("didgate-verify") || want("didgate-sign"))
      runners.push(async () => {
        // STIR/SHAKEN: a P-256 certificate (its own trust anchor) served from loopback; one
        // PASSporT per DID of the verify case, signed now (max_age_s covers the run)
        execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "sp.key", "-out", "sp.pem", "-days", "2", "-subj", "/CN=bench SP"], { cwd: dir, stdio: "ignore" });
        const pem = fs.readFileSync(path.join(dir, "sp.pem"));
        const certServer = http.createServer((_q, res) => res.end(pem));
        await new Promise<void>((r) => certServer.listen(0, "127.0.0.1", r));
        const x5u = `http://127.0.0.1:${(certServer.address() as AddressInfo).port}/sp.pem`;
        try {
          const signer = new StirSigner({ key: createPrivateKey(fs.readFileSync(path.join(dir, "sp.key"))), x5u });
          const ids = ["SEQUENTIAL"];
          for (let i = 0; i < Math.min(nDids, 5000); i++) {
            const did = "+1512" + String(6000000 + i);
            ids.push(did + ";" + parseIdentity(signer.sign("A", "+15125559999", did).header)!.token + ";");
          }
          fs.writeFileSync(path.join(dir, "ids.csv"), ids.join("\n") + "\n");
          fs.writeFileSync(path.join(dir, "uac-id.xml"), UAC.replace("      CSeq: 1 INVITE\n", `      CSeq: 1 INVITE\n      Identity: [field1];info=<${x5u}>;alg=ES256;ppt=shaken\n`));
          if (want("didgate-verify")) {
            const verify = [`stir: { verify: { trust_anchors: sp.pem, max_age_s: 3600, allow_http_x5u: true, allow_private: ["127.0.0.0/8"] } }`];
            await runProxy("didgate-verify", () => startDidgate(verify), "127.0.0.1", "ids.csv", "uac-id.xml");
          }
          if (want("didgate-sign")) {
            const sign = [`stir: { sign: { x5u: "https://certs.example.com/sp.pem", key: sp.key } }`];
            await runProxy("didgate-sign", () => startDidgate(sign), "127.0.0.2", "out.csv");
          }
        } finally {
          certServer.close();
        }
      });
    if (want("didgate-out")) runners.push(() => runProxy("didgate-out", () => startDidgate(), "127.0.0.2", "out.csv"));
    for (const [kname, children] of [["kamailio", 1], ["kamailio-w2", 2]] as const) {
      if (!want(kname)) continue;
      if (!fs.existsSync(KAMAILIO)) log(`${KAMAILIO} not found: Kamailio skipped`);
      else
        runners.push(() =>
          runProxy(kname, async () => {
            const port = await freePort();
            const tpl = fs.readFileSync(path.join(ROOT, "bench", "kamailio", "bench.cfg.tpl"), "utf8");
            const cfg = path.join(dir, "kamailio.cfg");
            fs.writeFileSync(cfg, tpl.replace(/^children=1$/m, `children=${children}`).replace(/@PORT@/g, String(port)).replace(/@MPATH@/g, KAM_MODULES).replace(/@DBDIR@/g, path.join(dir, "db")));
            // -m 1024: shared memory for the transactions held 32 s after each call (RFC 6026);
            // with 256 MB Kamailio ran out and failed a quarter of the calls at 1500/s
            const child = spawn(KAMAILIO, ["-f", cfg, "-DD", "-E", "-Y", dir, "-P", path.join(dir, "kamailio.pid"), "-m", "1024", "-M", "16"], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
            let err = "";
            child.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
            if (!(await sipAlive(port, 20_000))) {
              await kill(child);
              throw new Error("kamailio does not answer: " + err);
            }
            return { child, port };
          }),
        );
    }
    // the proxies in turn, round after round (--repeat): a slow spell of the machine then lands
    // on one round of each rather than on every step of one proxy; each round starts one proxy
    // further down the list, so that no proxy always runs first or last (on a VM the later run of
    // two in a row was the slower in every pair measured, docs/sip.md "Steering")
    for (let round = 1; round <= repeat; round++) {
      if (repeat > 1) log(`-- round ${round} of ${repeat}`);
      for (let i = 0; i < runners.length; i++) await runners[(round - 1 + i) % runners.length]!();
    }
  } finally {
    await kill(uas);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const ratios = capacityRatios(summary);
  if (json) {
    const k = (n: string): Summary | undefined => summary[n]?.[0];
    const r = ratios.find((x) => x.label === "didgate / kamailio")?.ratios[0] ?? null;
    process.stdout.write(JSON.stringify({ name: "sip_summary", entries: nDids, rounds: repeat, didgate: k("didgate"), kamailio: k("kamailio"), ratio_to_kamailio: r, per_round: summary, ratios }) + "\n");
  } else {
    const fmt = (v: number): string => (Number.isNaN(v) ? "-" : String(v));
    log("");
    log("proxy        sustained calls/s   setup p50 ms   setup p99 ms   cpu us/call" + (repeat > 1 ? "   (round by round; median)" : ""));
    for (const [n, runs] of Object.entries(summary)) {
      const col = (f: (x: Summary) => number, w: number): string => {
        const v = runs.map(f);
        // the median of the rounds that had a figure (a proxy that sustained no step has none)
        return (v.length > 1 ? v.map(fmt).join("/") + " ; " + fmt(median(v.filter((x) => !Number.isNaN(x)))) : fmt(v[0]!)).padStart(w);
      };
      log(`${n.padEnd(12)} ${col((x) => x.sustained_cps, 17)}   ${col((x) => x.p50, 12)}   ${col((x) => x.p99, 12)}   ${col((x) => x.cpu, 11)}`);
    }
    for (const { label, ratios: v } of ratios) log(`${label} (sustained calls/s): ${v.map(fmt).join(" / ")}${v.length > 1 ? " ; median " + fmt(median(v.filter((x) => !Number.isNaN(x)))) : ""}`);
  }
}

main().catch((e) => {
  process.stderr.write(String((e as Error).stack ?? e) + "\n");
  process.exit(1);
});
