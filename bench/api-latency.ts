/**
 * Write-to-route latency of the routes API: two didgate edges (A with the API, B without) on one
 * real redis-server started on a free port; PUT --changes route changes one after another on A's
 * API and measure, for each, from the moment the client has A's 2xx answer to the moment edge B's
 * table routes the number by the new entry (B's route source has applied the change-stream entry
 * and B's table gives the new target, as B's lookup would). Also from the moment the PUT was sent,
 * and the PUT round trip itself.
 *
 *   npm run bench:api -- [--changes 1000] [--entries 10000] [--json]
 *
 * --entries routes are imported first (through the API) so B's table is not empty. Edge B runs in
 * a worker thread (its own event loop, as on another host); the client and edge A share the main
 * thread. Times on both sides are performance.timeOrigin + performance.now() (one machine clock).
 * B often applies a change before A's answer reaches the client (Redis answers A's write and B's
 * blocked XREAD at the same moment): such a change counts as 0 ms.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { startApp, tempDir, writeRoutes } from "../test/helpers/app.js";
import { startRedis } from "../test/helpers/redis.js";
import { parseArgs, round } from "./lib.js";

const TOKEN = "bench-admin-token-0123456789";

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const clock = () => performance.timeOrigin + performance.now();

/** Worker: edge B. Reports each applied change with the target B now routes it to. */
async function edgeB(d: { routes: Record<string, unknown>; dir: string }): Promise<void> {
  const b = (await startApp({ routes: d.routes, state_dir: d.dir }, d.dir)).app;
  b.redisSource!.on("delta", (_id: string, _op: string, key: string) => {
    const t = clock();
    parentPort!.postMessage({ key, uri: b.store.current.get(key)?.voice?.targets[0]?.uri, t, size: b.store.current.size });
  });
  parentPort!.postMessage({ ready: true, size: b.store.current.size });
  parentPort!.on("message", (m: { stop?: boolean }) => {
    if (m.stop) void b.stop(0).then(() => process.exit(0));
  });
}

async function main(): Promise<void> {
  const args = parseArgs();
  const changes = args.int("changes", 1000);
  const entries = args.int("entries", 10_000);
  const redis = await startRedis();
  const dir = tempDir("didgate-bench-api-");
  writeRoutes(dir, {});
  const routes = { file: "routes.yaml", redis: { url: redis.url, prefix: "bench:", snapshot: "" } };
  const a = (await startApp({ routes, state_dir: dir, api: { listen: "127.0.0.1:0", tokens: [{ token: TOKEN }], rate_limit: { per_s: 1e6, burst: 1e6 } } }, dir)).app;
  const worker = new Worker(new URL(import.meta.url), { workerData: { routes, dir } });
  const applied = new Map<string, { uri: string | undefined; t: number }>();
  let bSize = 0;
  let notify: (() => void) | undefined;
  await new Promise<void>((resolve, reject) => {
    worker.once("error", reject);
    worker.on("message", (m: { ready?: boolean; key?: string; uri?: string; t?: number; size: number }) => {
      bSize = m.size;
      if (m.ready) resolve();
      else if (m.key !== undefined) applied.set(m.key, { uri: m.uri, t: m.t! });
      notify?.();
    });
  });
  const waitUntil = async (cond: () => boolean, ms: number, what: string) => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        notify = () => (clearTimeout(t), r());
      });
    }
  };
  const base = `http://127.0.0.1:${a.api!.address.port}`;
  const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
  try {
    if (entries > 0) {
      const lines: string[] = [];
      for (let i = 0; i < entries; i++) lines.push(JSON.stringify({ key: `+1737${String(i).padStart(7, "0")}`, route: { voice: { targets: [`sip:pre${i}@127.0.0.1`] } } }));
      const r = await fetch(`${base}/v1/routes/import`, { method: "POST", headers: { ...headers, "content-type": "application/x-ndjson" }, body: lines.join("\n") });
      const j = (await r.json()) as { created: number; unchanged: number };
      if (r.status !== 200 || j.created + j.unchanged !== entries) throw new Error(`preload failed: ${r.status} ${JSON.stringify(j).slice(0, 200)}`);
      await waitUntil(() => bSize >= entries, 120_000, "edge B has the preloaded entries");
    }

    const routeLatency: number[] = [];
    const fromSend: number[] = [];
    const putLatency: number[] = [];
    let beforeAnswer = 0;
    for (let i = 0; i < changes; i++) {
      const key = `+1512555${String(i % 10_000).padStart(4, "0")}`;
      const uri = `sip:v${i}@127.0.0.1:5070`;
      applied.delete(key);
      const t0 = clock();
      const res = await fetch(`${base}/v1/routes/${encodeURIComponent(key)}`, { method: "PUT", headers, body: JSON.stringify({ voice: { targets: [uri] } }) });
      await res.arrayBuffer();
      const tAnswer = clock();
      if (res.status !== 200 && res.status !== 201) throw new Error(`PUT ${key}: ${res.status}`);
      putLatency.push(tAnswer - t0);
      await waitUntil(() => applied.get(key)?.uri === uri, 10_000, `edge B routes ${key} to ${uri}`);
      const tB = applied.get(key)!.t;
      if (tB <= tAnswer) beforeAnswer++;
      routeLatency.push(Math.max(0, tB - tAnswer));
      fromSend.push(tB - t0);
    }
    routeLatency.sort((x, y) => x - y);
    fromSend.sort((x, y) => x - y);
    putLatency.sort((x, y) => x - y);
    const out = {
      name: "api write-to-route",
      changes,
      entries,
      route_p50_ms: round(pct(routeLatency, 50), 3),
      route_p90_ms: round(pct(routeLatency, 90), 3),
      route_p99_ms: round(pct(routeLatency, 99), 3),
      route_max_ms: round(routeLatency[routeLatency.length - 1]!, 3),
      routed_before_answer: beforeAnswer,
      send_to_route_p50_ms: round(pct(fromSend, 50), 3),
      send_to_route_p99_ms: round(pct(fromSend, 99), 3),
      put_p50_ms: round(pct(putLatency, 50), 3),
      put_p99_ms: round(pct(putLatency, 99), 3),
    };
    if (args.json) console.log(JSON.stringify(out));
    else {
      console.log(`API write-to-route latency: ${changes} PUTs on edge A, routed by edge B (same Redis), table of ${entries} entries`);
      console.log(`  200 -> B routes: p50 ${out.route_p50_ms} ms, p90 ${out.route_p90_ms} ms, p99 ${out.route_p99_ms} ms, max ${out.route_max_ms} ms (${beforeAnswer} already routed when the answer arrived)`);
      console.log(`  PUT sent -> B routes: p50 ${out.send_to_route_p50_ms} ms, p99 ${out.send_to_route_p99_ms} ms`);
      console.log(`  PUT round trip:  p50 ${out.put_p50_ms} ms, p99 ${out.put_p99_ms} ms`);
    }
  } finally {
    worker.postMessage({ stop: true });
    await new Promise((r) => worker.once("exit", r));
    await a.stop(0);
    await redis.stop();
  }
}

if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  edgeB(workerData as { routes: Record<string, unknown>; dir: string }).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
