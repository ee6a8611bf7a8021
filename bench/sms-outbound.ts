/**
 * Outbound SMS load: an app (npm smpp ESME, transceiver, `--window` submits outstanding) submits
 * single-part messages from its number through didgate (a child process from dist/) to a local
 * SMSC (npm smpp server); reports messages/s (first submit → last arrival at the SMSC), the
 * submit → SMSC arrival latency (p50/p99, one process clock), ESME_ROK answers, lost and duplicates.
 * Modes: direct (no Redis: ESME_ROK after the carrier accepted) and spool (a redis-server started
 * here: ESME_ROK once spooled). No bind tps limit.
 * Kinds: app (the app's submit_sm) and masked (a carrier account's deliver_sm from party a to the
 * proxy number of a masking session, relayed to b through the same outbound bind: the session
 * lookup on top of the same path; docs/masking.md).
 *
 *   npm run build && node dist/bench/sms-outbound.js [--messages 20000] [--window 100] [--mode direct|spool|both] [--kind app|masked|both]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { RedisRouteWriter } from "../src/routing/sources/redis-writer.js";
import { Redis } from "ioredis";
import { freePort, startRedis } from "../test/helpers/redis.js";
import { connectEsme, startSmsc, waitFor } from "../test/helpers/smsc.js";
import { tempDir } from "../test/helpers/app.js";

const ROOT = join(import.meta.dirname, "..", "..");
const args = process.argv.slice(2);
const arg = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
};
const N = Number(arg("messages", "20000"));
// at most 100: didgate takes 100 message PDUs in flight per session from a peer
const WINDOW = Math.min(100, Number(arg("window", "100")));
const MODE = arg("mode", "both");
const KIND = arg("kind", "app");
const TOKEN = "bench-token-0123456789abcdef";

function pct(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

async function run(mode: "direct" | "spool", kind: "app" | "masked"): Promise<Record<string, unknown>> {
  const smsc = await startSmsc({ idPrefix: "b" });
  const dir = tempDir("didgate-bench-");
  const port = await freePort();
  const apiPort = await freePort();
  const redis = mode === "spool" ? await startRedis() : undefined;
  const routes = { "+15125550100": { tenant: "acme", sms: { webhook: "http://127.0.0.1:9/in" } } };
  const outbound = { "+44*": { sms: ["smsc-b"] }, "+15125551002": { sms: ["smsc-b"] } };
  if (redis) {
    const c = new Redis(redis.url);
    const w = new RedisRouteWriter(c, { prefix: "didgate:", streamMaxlen: 10_000 });
    await w.set("+15125550100", routes["+15125550100"]);
    for (const [k, v] of Object.entries(outbound)) await w.setOutbound(k, v);
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
      api: { listen: `127.0.0.1:${apiPort}`, tokens: [{ token: TOKEN }] },
      masking: { pools: [{ name: "ride", tenant: "acme", numbers: ["+15125550200"] }] },
      smpp: {
        listen: `127.0.0.1:${port}`,
        window: WINDOW,
        accounts: [
          { system_id: "app-1", password: "pw", role: "app", tenant: "acme", country_code: "1" },
          { system_id: "smsc-a", password: "pw", role: "carrier", country_code: "1" },
        ],
        binds: [{ name: "smsc-b", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", window: WINDOW }],
      },
    }),
  );
  const child: ChildProcess = spawn(join(ROOT, "node_modules/.bin/node"), [join(ROOT, "dist/src/cli.js"), "serve", "--config", cfg], { stdio: ["ignore", "ignore", "inherit"] });
  try {
    let app: Awaited<ReturnType<typeof connectEsme>> | undefined;
    const t0 = Date.now();
    while (app === undefined && Date.now() - t0 < 20_000) {
      try {
        const e = await connectEsme(port);
        if ((await e.bind("bind_transceiver", kind === "app" ? "app-1" : "smsc-a", "pw")).command_status === 0) app = e;
        else await e.close();
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    if (app === undefined) throw new Error("could not bind to didgate");
    await waitFor(() => smsc.binds.length > 0, 20_000, "didgate bound to the SMSC");
    if (kind === "masked") {
      const r = await fetch(`http://127.0.0.1:${apiPort}/v1/sessions`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ a: "+15125551001", b: "+15125551002", ttl_s: 3600, pool: "ride" }),
      });
      if (r.status !== 201) throw new Error(`session not created: ${r.status} ${await r.text()}`);
    }
    const sentAt = new Float64Array(N);
    const arrived = new Float64Array(N);
    let arrivals = 0;
    let duplicates = 0;
    let ok = 0;
    let refused = 0;
    // count arrivals as the SMSC gets them
    const seen = smsc.received;
    let scanned = 0;
    const scan = (): void => {
      for (; scanned < seen.length; scanned++) {
        const p = seen[scanned]!;
        if (p.command !== "submit_sm") continue;
        const i = Number(String((p.short_message as { message: string }).message).slice(2));
        if (arrived[i] !== 0) duplicates++;
        else {
          arrived[i] = performance.now();
          arrivals++;
        }
      }
    };
    const timer = setInterval(scan, 5);
    const start = performance.now();
    let next = 0;
    await new Promise<void>((resolve) => {
      let inFlight = 0;
      const pump = (): void => {
        while (inFlight < WINDOW && next < N) {
          const i = next++;
          inFlight++;
          sentAt[i] = performance.now();
          const done = (r: { command_status: number }): void => {
            inFlight--;
            if (r.command_status === 0) ok++;
            else refused++;
            if (next >= N && inFlight === 0) resolve();
            else pump();
          };
          if (kind === "app") app!.session.submit_sm({ source_addr: "15125550100", source_addr_ton: 1, destination_addr: "447700900100", dest_addr_ton: 1, short_message: `m ${i}` }, done);
          else app!.session.deliver_sm({ source_addr: "15125551001", source_addr_ton: 1, destination_addr: "15125550200", dest_addr_ton: 1, short_message: `m ${i}` }, done);
        }
      };
      pump();
    });
    await waitFor(() => (scan(), arrivals >= ok), 120_000, "arrivals");
    clearInterval(timer);
    const end = Math.max(...Array.from(arrived).filter((x) => x > 0));
    const lat = Array.from({ length: N }, (_, i) => (arrived[i]! > 0 ? arrived[i]! - sentAt[i]! : NaN)).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
    await app.close();
    return { mode, kind, messages: N, window: WINDOW, ok, refused, ops_per_s: Math.round((arrivals / (end - start)) * 1000), p50_ms: +pct(lat, 50).toFixed(1), p99_ms: +pct(lat, 99).toFixed(1), lost: ok - arrivals, duplicates, load: loadavg()[0]!.toFixed(2) };
  } finally {
    child.kill("SIGKILL");
    await smsc.close();
    await redis?.stop();
  }
}

const modes: ("direct" | "spool")[] = MODE === "both" ? ["direct", "spool"] : [MODE as "direct" | "spool"];
const kinds: ("app" | "masked")[] = KIND === "both" ? ["app", "masked"] : [KIND as "app" | "masked"];
for (const m of modes) for (const k of kinds) console.log(JSON.stringify(await run(m, k)));
process.exit(0);
