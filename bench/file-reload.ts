/**
 * Reload of a large route file in a running didgate while sipp sends OPTIONS at 200/s from a trunk
 * source: the worst OPTIONS response time during the reload (goal under 50 ms).
 *
 *   npm run bench:files -- --reload [--entries 1M] [--format json|yaml|csv] [--rate 200] [--json]
 *   node dist/bench/file-reload.js [same options]
 *
 * `didgate serve` runs as a child process with routes.file watched; sipp (-trace_rtt, every
 * response time) pings it; after a few seconds the route file is replaced (written aside, renamed
 * over) and the reload's window is taken from didgate's log (the rename to the "route table
 * loaded from file" line). Reported: the OPTIONS answered in that window, their worst and p99
 * response time, unanswered OPTIONS, the reload's time and its longest main-thread slice.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeRouteFile } from "./file-load.js";
import { parseArgs, Reporter, result } from "./lib.js";

const SIPP = process.env.SIPP_BIN ?? "/usr/bin/sipp";
const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, "..", "src", "cli.js");

const OPTIONS_XML = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="options ping">
  <send start_rtd="1">
    <![CDATA[
      OPTIONS sip:ping@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:bench@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:ping@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" rtd="1"/>
</scenario>
`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface LogLine {
  time: number | string;
  msg: string;
  reason?: string;
  ms?: number;
  max_slice_ms?: number;
  max_slice_cpu_ms?: number;
  entries?: number;
  worker?: boolean;
}

async function main(): Promise<void> {
  const args = parseArgs();
  const n = args.int("entries", 1_000_000);
  const format = (args.option("format") ?? "json") as "json" | "yaml" | "csv";
  const rate = args.int("rate", 200);
  const rep = new Reporter(args.json);
  const dir = mkdtempSync(join(tmpdir(), "didgate-bench-reload-"));
  const children: ChildProcess[] = [];
  try {
    const routes = join(dir, `routes.${format}`);
    await writeRouteFile(routes, format, n);
    const port = await freePort();
    const cfg = join(dir, "didgate.yaml");
    writeFileSync(
      cfg,
      [
        "sip:",
        `  listen: ["udp://127.0.0.1:${port}"]`,
        "  flood: { per_source_pps: 100000, max_sources: 1000 }",
        "  trunks:",
        '    - { name: bench, sources: ["127.0.0.1"], country_code: "1", cps: 100000 }',
        "smpp: { listen: null }",
        `routes: { file: routes.${format}, watch: true }`,
        'admin: { listen: "127.0.0.1:0" }',
        "log: { level: info }",
        "",
      ].join("\n"),
    );
    const logs: LogLine[] = [];
    const didgate = spawn(process.execPath, [CLI, "serve", "--config", cfg], { cwd: dir, stdio: ["ignore", "pipe", "inherit"] });
    children.push(didgate);
    let buf = "";
    didgate.stdout!.on("data", (d: Buffer) => {
      buf += d.toString("utf8");
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          logs.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line
        }
      }
    });
    const waitLog = async (pred: (l: LogLine) => boolean, timeoutMs: number): Promise<LogLine> => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const l = logs.find(pred);
        if (l) return l;
        if (Date.now() > end) throw new Error("timed out waiting for didgate's log");
        if (didgate.exitCode !== null) throw new Error(`didgate exited (${didgate.exitCode})`);
        await sleep(50);
      }
    };
    const initial = await waitLog((l) => l.msg === "route table loaded from file", 300_000);
    await waitLog((l) => l.msg === "didgate started", 60_000);
    rep.note(`initial load: ${n} entries from ${format} in ${initial.ms} ms (worker ${initial.worker}, longest slice ${initial.max_slice_ms} ms)`);

    // sipp pings for the whole run; the reload starts after a few seconds.
    const sippDir = mkdtempSync(join(dir, "sipp-"));
    writeFileSync(join(sippDir, "options.xml"), OPTIONS_XML);
    const total = rate * 600; // stopped once the reload is over (bounded at 10 minutes)
    const sippStart = Date.now();
    const sipp = spawn(
      SIPP,
      [`127.0.0.1:${port}`, "-sf", "options.xml", "-i", "127.0.0.1", "-p", String(await freePort()), "-r", String(rate), "-m", String(total), "-l", String(rate * 10),
        "-trace_rtt", "-rtt_freq", "1", "-recv_timeout", "5000", "-nostdin", "-timeout", "700s"],
      { cwd: sippDir, stdio: ["ignore", "ignore", "ignore"] },
    );
    children.push(sipp);
    await sleep(4000);
    // Replace the file the way deploy tools do: write aside, rename over.
    const next = join(dir, `next.${format}`);
    await writeRouteFile(next, format, n, "x");
    const reloadStart = Date.now();
    renameSync(next, routes);
    const done = await waitLog((l) => l.msg === "route table loaded from file" && l.reason === "watch", 600_000);
    const reloadEnd = typeof done.time === "number" ? done.time : Date.parse(done.time);
    await sleep(3000);
    sipp.kill("SIGUSR1"); // sipp: stop calls and dump statistics
    await new Promise<void>((r) => {
      const t = setTimeout(() => {
        sipp.kill("SIGKILL");
        r();
      }, 10_000);
      sipp.on("close", () => {
        clearTimeout(t);
        r();
      });
    });

    // Response times: "date_ms;response_time_ms;rtd_no" lines, date_ms counted from sipp's start
    // (taken as the spawn time: off by sipp's start-up, a few ms against a window of seconds).
    const all: { at: number; rtt: number }[] = [];
    for (const f of readdirSync(sippDir)) {
      if (!f.endsWith("_rtt.csv")) continue;
      for (const line of readFileSync(join(sippDir, f), "latin1").split("\n")) {
        const parts = line.split(";");
        if (parts.length >= 2 && /^\d/.test(parts[0]!)) {
          const at = sippStart + Number(parts[0]);
          const rtt = Number(parts[1]);
          if (Number.isFinite(at) && Number.isFinite(rtt)) all.push({ at, rtt });
        }
      }
    }
    // An OPTIONS belongs to the window when it was answered in it (at = receive time) or sent
    // in it and answered after it.
    const inWindow = all.filter((x) => x.at >= reloadStart && x.at - x.rtt <= reloadEnd).map((x) => x.rtt).sort((a, b) => a - b);
    const outside = all.filter((x) => !(x.at >= reloadStart && x.at - x.rtt <= reloadEnd)).map((x) => x.rtt).sort((a, b) => a - b);
    rep.report(
      result(`reload ${format} under OPTIONS ${rate}/s`, n, (reloadEnd - reloadStart) * 1e6, {
        reload_ms: reloadEnd - reloadStart,
        reload_log_ms: done.ms,
        max_slice_ms: done.max_slice_ms,
        max_slice_cpu_ms: done.max_slice_cpu_ms,
        options_in_reload: inWindow.length,
        worst_ms: inWindow.length > 0 ? inWindow[inWindow.length - 1] : NaN,
        p99_ms: pct(inWindow, 99),
        p50_ms: pct(inWindow, 50),
        worst_outside_ms: outside.length > 0 ? outside[outside.length - 1] : NaN,
        answered: all.length,
      }),
    );
    if (!args.json) {
      rep.note(
        `  reload of ${n} ${format} entries: ${reloadEnd - reloadStart} ms from rename to swap (load ${done.ms} ms, longest main-thread slice ${done.max_slice_ms} ms, CPU ${done.max_slice_cpu_ms} ms); ` +
          `${inWindow.length} OPTIONS in the window: worst ${inWindow[inWindow.length - 1]} ms, p99 ${pct(inWindow, 99)} ms, p50 ${pct(inWindow, 50)} ms; outside the window worst ${outside[outside.length - 1]} ms; ${all.length} answered in all`,
      );
    }
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await sleep(200);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
