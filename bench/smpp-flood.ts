/**
 * Pre-authentication floods against a didgate daemon's SMPP listener, reporting the daemon's RSS
 * (VmRSS from /proc) and /metrics size before and after. Not a speed benchmark.
 *
 *   npm run build && node dist/bench/smpp-flood.js [--dist DIR] [--pdus 500000] [--conns 3000]
 *
 * Phase 1: one unauthenticated connection sends `pdus` header-only PDUs with distinct unknown
 * command_ids and statuses (each answered with generic_nack). Phase 2: `conns` idle connections
 * from 30 loopback addresses outside every account's sources; how many the daemon keeps open after 5 s.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf("--" + name);
  return i > 0 ? process.argv[i + 1]! : def;
}

const dist = resolve(arg("dist", "dist"));
const PDUS = Number(arg("pdus", "500000"));
const CONNS = Number(arg("conns", "3000"));

function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "smpp-flood-"));
  const smppPort = await freePort();
  const adminPort = await freePort();
  writeFileSync(join(dir, "routes.yaml"), "routes:\n  \"+15125550100\": { sms: { webhook: \"http://127.0.0.1:9/x\" } }\n");
  writeFileSync(
    join(dir, "didgate.yaml"),
    [
      `admin: { listen: "127.0.0.1:${adminPort}" }`,
      "sip: { listen: [] }",
      "log: { level: error }",
      "routes: { file: routes.yaml }",
      "smpp:",
      `  listen: "127.0.0.1:${smppPort}"`,
      "  accounts: [{ system_id: carrier, password: pw, role: carrier, sources: [\"127.0.0.1\"] }]",
    ].join("\n") + "\n",
  );
  const child = spawn(process.execPath, [join(dist, "src/cli.js"), "serve", "--config", join(dir, "didgate.yaml")], { stdio: ["ignore", "ignore", "inherit"] });
  const admin = `http://127.0.0.1:${adminPort}`;
  const rss = () => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))![1]) / 1024);
  const scrape = async () => {
    const t0 = performance.now();
    const text = await (await fetch(`${admin}/metrics`)).text();
    const mb = (name: string) => Math.round(Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1] ?? 0) / 1048576);
    return {
      bytes: text.length,
      ms: Math.round(performance.now() - t0),
      series: text.split("\n").filter((l) => l.startsWith("didgate_smpp_pdus_total{")).length,
      heap_used_mb: mb("didgate_nodejs_heap_size_used_bytes"),
      external_mb: mb("didgate_nodejs_external_memory_bytes"),
    };
  };
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${admin}/readyz`)).ok) break;
      } catch {
        /* not up yet */
      }
      if (i > 200) throw new Error("daemon did not start");
      await sleep(50);
    }
    await sleep(500);
    const out: Record<string, unknown> = { dist, pdus: PDUS, conns: CONNS, rss_start_mb: rss(), metrics_start: await scrape() };

    // Phase 1
    const s = net.connect({ host: "127.0.0.1", port: smppPort });
    await new Promise((r) => s.once("connect", r));
    let got = 0;
    s.on("data", (c: Buffer) => (got += c.length));
    s.on("error", () => {});
    const batch = 10_000;
    for (let off = 0; off < PDUS; off += batch) {
      const n = Math.min(batch, PDUS - off);
      const b = Buffer.alloc(16 * n);
      for (let i = 0; i < n; i++) {
        const k = off + i;
        b.writeUInt32BE(16, i * 16);
        b.writeUInt32BE(0x00001000 + k, i * 16 + 4);
        b.writeUInt32BE(k, i * 16 + 8);
        b.writeUInt32BE(k + 1, i * 16 + 12);
      }
      if (!s.write(b)) await new Promise((r) => s.once("drain", r));
    }
    for (let i = 0; got < 16 * PDUS && i < 1200 && !s.destroyed; i++) await sleep(100);
    out.nacks = got / 16;
    s.destroy();
    await sleep(1000);
    out.rss_after_pdus_mb = rss();
    out.metrics_after_pdus = await scrape();

    // Phase 2
    const socks: net.Socket[] = [];
    await Promise.all(
      Array.from({ length: CONNS }, (_, i) =>
        new Promise<void>((r) => {
          const c = net.connect({ host: "127.0.0.1", port: smppPort, localAddress: `127.0.3.${1 + (i % 30)}` });
          c.on("error", () => r());
          c.on("connect", () => r());
          socks.push(c);
        }),
      ),
    );
    await sleep(5000);
    out.conns_open_after_5s = socks.filter((c) => !c.destroyed && c.readyState === "open").length;
    out.rss_with_conns_mb = rss();
    for (const c of socks) c.destroy();
    await sleep(2000);
    out.rss_after_conns_closed_mb = rss();
    out.metrics_end = await scrape();
    console.log(JSON.stringify(out));
  } finally {
    child.kill("SIGKILL");
  }
}

void main();
