/**
 * Route file loads: generates route files of N entries in YAML, JSON and CSV and loads each in a
 * fresh child process (so that its peak RSS is the load's alone), the way `didgate serve` does:
 * parsed and validated in a worker thread, turned into routes on the main thread in slices, swapped
 * in. Prints per case the load time, the peak RSS of the process (main and worker thread), the
 * longest main-thread slice of the load and the longest event-loop stall seen by a 1 ms timer.
 *
 *   npm run bench:files -- [--entries 100k,1M] [--formats yaml,json,csv] [--mode worker|main] [--json]
 *
 * Targets: 1M JSON or CSV under 5 s, 1M YAML under 15 s, 100k YAML under 2 s, peak RSS under
 * 600 MB, no main-thread stall over 20 ms (worker mode).
 *
 * Entries are distinct (each number has its own target URI, one of 97 tenants): the expensive
 * case, as in bench/redis-sync.ts.
 */
import { spawnSync } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { pino } from "pino";
import { Registry } from "prom-client";
import { RouteMetrics } from "../src/routing/metrics.js";
import type { Route } from "../src/routing/route.js";
import { FileRouteSource } from "../src/routing/sources/file.js";
import { RouteStore, RouteTable } from "../src/routing/table.js";
import { parseArgs, parseCount, Reporter, result } from "./lib.js";

type Format = "yaml" | "json" | "csv";

function key(i: number): string {
  return `+1555${String(i).padStart(7, "0")}`;
}
function uri(i: number): string {
  return `sip:${key(i)}@10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:5060`;
}

/** Writes a route file of n distinct entries (streamed: the generator holds no whole document). */
export async function writeRouteFile(path: string, format: Format, n: number, salt = ""): Promise<void> {
  const out = createWriteStream(path);
  const write = (s: string) => (out.write(s) ? Promise.resolve() : new Promise<void>((r) => out.once("drain", r)));
  let buf = "";
  const emit = async (s: string) => {
    buf += s;
    if (buf.length > 1 << 20) {
      await write(buf);
      buf = "";
    }
  };
  if (format === "yaml") await emit("routes:\n");
  else if (format === "json") await emit('{"routes": {\n');
  else await emit("key,tenant,targets\n");
  for (let i = 0; i < n; i++) {
    const t = `t${i % 97}${salt}`;
    if (format === "yaml") await emit(`  "${key(i)}":\n    tenant: ${t}\n    voice:\n      targets: ["${uri(i)}"]\n`);
    else if (format === "json") await emit(`  "${key(i)}": {"tenant": "${t}", "voice": {"targets": ["${uri(i)}"]}}${i + 1 < n ? "," : ""}\n`);
    else await emit(`${key(i)},${t},${uri(i)}\n`);
  }
  if (format === "json") await emit("}}\n");
  await write(buf);
  await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
}

interface ChildResult {
  ok: boolean;
  entries: number;
  load_ms: number;
  /** CPU time of the process (main and loader thread) during the load. */
  cpu_ms: number;
  peak_rss_mb: number;
  rss_after_mb: number;
  max_slice_ms: number;
  max_slice_cpu_ms: number;
  assemble_ms: number;
  max_stall_ms: number;
  max_stall_cpu_ms: number;
  /** Heap in use after the load and a full GC (with --expose-gc). */
  heap_after_mb?: number;
  error?: string;
}

/** CPU time of this thread in ms (Node 23.9+; 0 before). */
function threadCpuMs(): number {
  const f = (process as unknown as { threadCpuUsage?: () => { user: number; system: number } }).threadCpuUsage;
  if (typeof f !== "function") return 0;
  const u = f.call(process);
  return (u.user + u.system) / 1000;
}

/** In the child: one load, measured. */
async function child(file: string, mode: string): Promise<void> {
  const store = new RouteStore<Route>(RouteTable.build<Route>([]));
  const source = new FileRouteSource({ path: file, watch: false, store, logger: pino({ level: "silent" }), metrics: new RouteMetrics(new Registry()), worker: mode !== "main" });
  const h = monitorEventLoopDelay({ resolution: 1 });
  // A 1 ms timer: the longest gap between its ticks is the longest stall the load caused.
  // Also its CPU time between ticks: on a shared machine the wall-clock gaps include time the
  // thread was runnable but not running.
  let last = performance.now();
  let lastCpu = threadCpuMs();
  let maxGap = 0;
  let maxGapCpu = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    const cpu = threadCpuMs();
    if (now - last > maxGap) maxGap = now - last;
    if (cpu - lastCpu > maxGapCpu) maxGapCpu = cpu - lastCpu;
    last = now;
    lastCpu = cpu;
  }, 1);
  h.enable();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const r = await source.load();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(tick);
  h.disable();
  const res: ChildResult = {
    ok: r.ok,
    entries: r.ok ? r.table.size : 0,
    load_ms: Math.round(ms),
    cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    rss_after_mb: Math.round(process.memoryUsage().rss / 1048576),
    max_slice_ms: Math.round((source.lastStats?.maxSliceMs ?? 0) * 10) / 10,
    max_slice_cpu_ms: Math.round((source.lastStats?.maxSliceCpuMs ?? 0) * 10) / 10,
    assemble_ms: Math.round((source.lastStats?.assembleMs ?? 0) * 10) / 10,
    max_stall_ms: Math.round(Math.max(maxGap, h.max / 1e6) * 10) / 10,
    max_stall_cpu_ms: Math.round(maxGapCpu * 10) / 10,
  };
  if (!r.ok) res.error = r.errors.slice(0, 3).join("; ");
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
    res.heap_after_mb = Math.round(process.memoryUsage().heapUsed / 1048576);
  }
  process.stdout.write(JSON.stringify(res) + "\n");
}

async function main(): Promise<void> {
  const args = parseArgs();
  const childFile = args.option("child");
  if (childFile !== undefined) return child(childFile, args.option("mode") ?? "worker");
  const sizes = (args.option("entries") ?? "100k,1M").split(",").map(parseCount);
  const formats = (args.option("formats") ?? "yaml,json,csv").split(",") as Format[];
  const mode = args.option("mode") ?? "worker";
  const rep = new Reporter(args.json);
  const dir = mkdtempSync(join(tmpdir(), "didgate-bench-files-"));
  const self = fileURLToPath(import.meta.url);
  try {
    for (const n of sizes) {
      for (const f of formats) {
        const file = join(dir, `routes-${n}.${f}`);
        await writeRouteFile(file, f, n);
        const mb = statSync(file).size / 1048576;
        const r = spawnSync(process.execPath, ["--expose-gc", self, "--child", file, "--mode", mode], { encoding: "utf8", maxBuffer: 1 << 20 });
        const line = r.stdout.trim().split("\n").pop() ?? "";
        let c: ChildResult;
        try {
          c = JSON.parse(line) as ChildResult;
        } catch {
          rep.note(`${f} ${n}: child failed (${r.status}): ${r.stderr.slice(0, 500)}`);
          continue;
        }
        if (!c.ok) rep.note(`${f} ${n}: load failed: ${c.error}`);
        rep.report(
          result(`file load ${f} (${mode})`, n, (c.load_ms * 1e6) / n, {
            build_ms: c.load_ms,
            file_mb: Math.round(mb),
            load_s: c.load_ms / 1000,
            cpu_s: c.cpu_ms / 1000,
            peak_rss_mb: c.peak_rss_mb,
            rss_after_mb: c.rss_after_mb,
            max_slice_ms: c.max_slice_ms,
            max_slice_cpu_ms: c.max_slice_cpu_ms,
            max_stall_ms: c.max_stall_ms,
            max_stall_cpu_ms: c.max_stall_cpu_ms,
            heap_after_mb: c.heap_after_mb,
          }),
        );
        if (!args.json) rep.note(`  ${f} ${n}: ${(c.load_ms / 1000).toFixed(2)} s (CPU ${(c.cpu_ms / 1000).toFixed(2)} s), peak RSS ${c.peak_rss_mb} MB (after ${c.rss_after_mb} MB, heap after GC ${c.heap_after_mb ?? "?"} MB), longest main-thread slice ${c.max_slice_ms} ms (CPU ${c.max_slice_cpu_ms} ms), longest stall ${c.max_stall_ms} ms (CPU ${c.max_stall_cpu_ms} ms), file ${Math.round(mb)} MB`);
        rmSync(file, { force: true });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
