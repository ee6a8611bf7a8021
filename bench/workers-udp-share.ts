/**
 * What the UDP socket shared by cluster workers (sip.workers > 1) costs per datagram: one sender
 * socket (like one trunk) sends 700-byte datagrams to a port bound by N workers; each worker
 * reports how many it received, its CPU (process.cpuUsage from its first datagram) and its
 * voluntary context switches. With N = 2 it also shows that one source is spread over both.
 *
 *   npx tsc -p . && node dist/bench/workers-udp-share.js [--json] [--count 40000]
 */
import cluster from "node:cluster";
import dgram from "node:dgram";
import net from "node:net";
import { parseArgs } from "./lib.js";

interface Report {
  index: number;
  n: number;
  cpuUs: number;
  cs: number;
}

async function freeUdpPort(): Promise<number> {
  for (;;) {
    const p = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const ok = await new Promise<boolean>((resolve) => {
      const u = dgram.createSocket("udp4");
      u.once("error", () => resolve(false));
      u.bind(p, "127.0.0.1", () => u.close(() => resolve(true)));
    });
    if (ok) return p;
  }
}

async function runCase(n: number, count: number, port: number): Promise<{ workers: number; received: number[]; cpu_us_per_datagram: number; context_switches: number }> {
  const workers = Array.from({ length: n }, (_, i) => cluster.fork({ BENCH_UDP_PORT: String(port), BENCH_INDEX: String(i) }));
  await new Promise<void>((resolve) => {
    let up = 0;
    for (const w of workers) w.once("listening", () => ++up === n && resolve());
  });
  const s = dgram.createSocket("udp4");
  const buf = Buffer.alloc(700, 120);
  for (let k = 0; k < count; k += 20) {
    for (let j = 0; j < 20; j++) s.send(buf, port, "127.0.0.1");
    await new Promise((r) => setTimeout(r, 1));
  }
  await new Promise((r) => setTimeout(r, 500));
  s.close();
  const reports = await Promise.all(
    workers.map(
      (w) =>
        new Promise<Report>((resolve) => {
          w.once("message", (m: Report) => resolve(m));
          w.send("report");
        }),
    ),
  );
  for (const w of workers) w.kill();
  await Promise.all(workers.map((w) => new Promise((r) => w.once("exit", r))));
  const received = reports.sort((a, b) => a.index - b.index).map((r) => r.n);
  const total = received.reduce((a, b) => a + b, 0);
  return { workers: n, received, cpu_us_per_datagram: +(reports.reduce((a, r) => a + r.cpuUs, 0) / Math.max(1, total)).toFixed(2), context_switches: reports.reduce((a, r) => a + r.cs, 0) };
}

function worker(): void {
  const s = dgram.createSocket("udp4");
  let n = 0;
  let c0: NodeJS.CpuUsage | undefined;
  let cs0 = 0;
  s.on("message", () => {
    if (n++ === 0) {
      c0 = process.cpuUsage();
      cs0 = process.resourceUsage().voluntaryContextSwitches;
    }
  });
  s.bind(Number(process.env.BENCH_UDP_PORT), "127.0.0.1");
  process.on("message", () => {
    const c = process.cpuUsage(c0);
    process.send!({ index: Number(process.env.BENCH_INDEX), n, cpuUs: c.user + c.system, cs: process.resourceUsage().voluntaryContextSwitches - cs0 } satisfies Report);
  });
}

async function main(): Promise<void> {
  if (cluster.isWorker) return worker();
  const args = parseArgs();
  const count = args.int("count", 40_000);
  for (const n of [1, 2]) {
    const r = await runCase(n, count, await freeUdpPort());
    if (args.json) process.stdout.write(JSON.stringify({ name: "workers_udp_share", ...r }) + "\n");
    else process.stdout.write(`workers ${n}: received ${r.received.join(" + ")}, ${r.cpu_us_per_datagram} us CPU per datagram, ${r.context_switches} context switches\n`);
  }
}

main().catch((e) => {
  process.stderr.write(String((e as Error).stack ?? e) + "\n");
  process.exit(1);
});
