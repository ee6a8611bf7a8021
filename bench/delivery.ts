/**
 * Webhook delivery throughput and latency, direct and spool mode, to a local receiver.
 *
 *   node dist/bench/delivery.js [--json] [--n 20k] [--concurrency 100] [--mode direct|spool|both]
 *                               [--transport fetch|http|both] [--redis redis://127.0.0.1:6379] [--aof]
 *                               [--max-in-flight 256] [--rate MSGS_PER_S]
 *
 * The receiver runs in a child process (node:http, answers 204 at once) so it does not share the
 * sender's event loop. `concurrency` accepts run at once (2 binds × window 50 = 100, like an SMSC),
 * as fast as they are answered (closed loop), or paced at `--rate` messages/s (open loop: latency
 * without the backlog a closed loop builds in spool mode, where accept() is faster than delivery).
 * Without --redis a redis-server is started on a free port (--aof: appendonly, fsync everysec).
 *
 * Reported per mode: ops_per_s = messages delivered per second (first accept → last arrival),
 * p50_ms/p99_ms = accept() call → arrival at the receiver, accept_p50_ms/accept_p99_ms = the
 * accept() call alone (what the SMSC waits for before its deliver_sm_resp).
 */
import { RedisConnector } from "../src/redis/client.js";
import { fork, type ChildProcess } from "node:child_process";
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { Registry } from "prom-client";
import { Redis } from "ioredis";
import { startRedis } from "./servers.js";
import { Delivery } from "../src/delivery/delivery.js";
import type { DeliveryJob } from "../src/delivery/types.js";
import { Reporter, parseArgs, result, round } from "./lib.js";

const wallNow = (): number => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------- receiver (child process)

function runReceiver(): void {
  let lat: number[] = [];
  let first = 0;
  let last = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const now = wallNow();
      const body = Buffer.concat(chunks).toString();
      // The accept time travels in smpp.message_id.
      const k = body.indexOf('"message_id":"');
      if (k >= 0) {
        const t0 = Number(body.slice(k + 14, body.indexOf('"', k + 14)));
        lat.push(now - t0);
        if (first === 0) first = now;
        last = now;
      }
      res.writeHead(204);
      res.end();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.listen(0, "127.0.0.1", () => {
    const a = server.address();
    process.send!({ port: typeof a === "object" && a ? a.port : 0 });
  });
  process.on("message", (m: { cmd: string }) => {
    if (m.cmd === "report") {
      process.send!({ count: lat.length, first, last, lat });
      lat = [];
      first = 0;
      last = 0;
    } else if (m.cmd === "exit") {
      server.close();
      process.exit(0);
    }
  });
}

class ReceiverProc {
  private constructor(readonly child: ChildProcess, readonly port: number) {}

  static async start(): Promise<ReceiverProc> {
    const child = fork(fileURLToPath(import.meta.url), ["--receiver"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const port = await new Promise<number>((resolve, reject) => {
      child.once("message", (m: { port: number }) => resolve(m.port));
      child.once("exit", () => reject(new Error("receiver exited")));
    });
    return new ReceiverProc(child, port);
  }

  report(): Promise<{ count: number; first: number; last: number; lat: number[] }> {
    return new Promise((resolve) => {
      this.child.once("message", resolve as (m: unknown) => void);
      this.child.send({ cmd: "report" });
    });
  }

  async waitFor(n: number, timeoutMs: number): Promise<{ count: number; first: number; last: number; lat: number[] }> {
    // Poll cheaply by asking for the count only at the end: the receiver keeps everything until reported.
    const deadline = Date.now() + timeoutMs;
    let acc: { count: number; first: number; last: number; lat: number[] } = { count: 0, first: 0, last: 0, lat: [] };
    while (acc.count < n && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      const r = await this.report();
      if (r.count > 0) {
        acc = { count: acc.count + r.count, first: acc.first || r.first, last: r.last, lat: acc.lat.concat(r.lat) };
      }
    }
    return acc;
  }

  stop(): void {
    this.child.send({ cmd: "exit" });
  }
}

// ---------------------------------------------------------------- the run

function makeJob(i: number, url: string): DeliveryJob {
  const id = "bench_" + i;
  return {
    id,
    body: {
      type: "message.received", id, received_at: new Date().toISOString(), from: "+447700900123", to: "+15125550100",
      text: "Your verification code is 123456", encoding: "gsm7", parts: 1, tenant: "acme",
      smpp: { peer: "smsc-a", message_id: "" },
    },
    target: { webhook: url },
    acceptedAt: Date.now(),
    attempts: 0,
  };
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function runMode(mode: "direct" | "spool", transport: "fetch" | "http", n: number, concurrency: number, maxInFlight: number, rate: number, rcv: ReceiverProc, redisUrl: string | undefined): Promise<Record<string, number>> {
  const url = `http://127.0.0.1:${rcv.port}/hook`;
  const prefix = `bench${process.pid}x${Date.now()}:`;
  const delivery = new Delivery({
    redis: mode === "spool" ? { connector: RedisConnector.fromUrl(redisUrl!), prefix, max_depth: 0 } : undefined,
    webhooks: { secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", timeout_ms: 5000, max_age_s: 3600, max_in_flight: maxInFlight, transport, allow_private: ["127.0.0.0/8"] },
    logger: pino({ level: "silent" }),
    registry: new Registry(),
    instanceId: "bench",
    direct_wait_ms: 8000,
  });
  await delivery.start();
  // Warm up the connection pool and the JIT.
  for (let i = 0; i < 200; i++) await delivery.accept(makeJob(-1 - i, url));
  await rcv.waitFor(200, 10_000);

  const acceptLat = new Float64Array(n);
  let next = 0;
  let notAccepted = 0;
  const t0 = wallNow();
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      if (rate > 0) {
        // Paced: message i starts at t0 + i / rate (an open-loop offered load, up to `concurrency` in flight).
        const wait = t0 + (i * 1000) / rate - wallNow();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      }
      const j = makeJob(i, url);
      const s = wallNow();
      (j.body as { smpp: { message_id: string } }).smpp.message_id = String(s);
      const o = await delivery.accept(j);
      acceptLat[i] = wallNow() - s;
      if (o !== "accepted") notAccepted++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const acceptedAllAt = wallNow();
  const got = await rcv.waitFor(n - notAccepted, 300_000);
  await delivery.drain(5000);
  await delivery.close();
  if (mode === "spool") {
    const c = new Redis(redisUrl!);
    await c.del(`${prefix}inbound`, `${prefix}retry`, `${prefix}retry:age`, `${prefix}dlq`);
    c.disconnect();
  }
  const lat = got.lat.sort((a, b) => a - b);
  const acc = Array.from(acceptLat).sort((a, b) => a - b);
  const elapsedMs = got.last - t0;
  return {
    delivered: got.count,
    not_accepted: notAccepted,
    elapsed_ms: elapsedMs,
    accept_phase_ms: acceptedAllAt - t0,
    msgs_per_s: (got.count / elapsedMs) * 1000,
    p50_ms: pct(lat, 50),
    p99_ms: pct(lat, 99),
    accept_p50_ms: pct(acc, 50),
    accept_p99_ms: pct(acc, 99),
  };
}

async function main(): Promise<void> {
  const args = parseArgs();
  const n = args.int("n", 20_000);
  const concurrency = args.int("concurrency", 100);
  const maxInFlight = args.int("max-in-flight", 256);
  const rate = args.int("rate", 0);
  const which = args.option("mode") ?? "both";
  const tr = args.option("transport") ?? "both";
  const transports: ("fetch" | "http")[] = tr === "both" ? ["fetch", "http"] : [tr as "fetch" | "http"];
  const rep = new Reporter(args.json);
  const rcv = await ReceiverProc.start();
  let redis: { url: string; stop(): void } | undefined;
  try {
    const modes: ("direct" | "spool")[] = which === "both" ? ["direct", "spool"] : [which as "direct" | "spool"];
    for (const mode of modes) for (const transport of transports) {
      let redisUrl: string | undefined;
      if (mode === "spool") {
        redisUrl = args.option("redis");
        if (redisUrl === undefined) {
          redis ??= await startRedis(args.flag("aof"));
          redisUrl = redis.url;
        }
      }
      const r = await runMode(mode, transport, n, concurrency, maxInFlight, rate, rcv, redisUrl);
      const res = result(`delivery/${mode}/${transport}`, n, 1e9 / r.msgs_per_s, {
        concurrency,
        rate: rate || undefined,
        max_in_flight: maxInFlight,
        delivered: r.delivered,
        not_accepted: r.not_accepted,
        p50_ms: r.p50_ms,
        p99_ms: r.p99_ms,
        accept_p50_ms: r.accept_p50_ms,
        accept_p99_ms: r.accept_p99_ms,
        accept_phase_ms: r.accept_phase_ms,
        elapsed_ms: r.elapsed_ms,
        aof: mode === "spool" && args.flag("aof") ? true : undefined,
      });
      if (args.json) rep.report(res);
      else
        rep.note(
          `${res.name.padEnd(22)} ${String(r.delivered).padStart(7)} msgs  ${Math.round(r.msgs_per_s).toString().padStart(7)} msg/s  ` +
            `accept→webhook p50 ${round(r.p50_ms, 2)} ms p99 ${round(r.p99_ms, 2)} ms  accept() p50 ${round(r.accept_p50_ms, 2)} ms p99 ${round(r.accept_p99_ms, 2)} ms` +
            (r.not_accepted ? `  (${r.not_accepted} not accepted)` : ""),
        );
    }
  } finally {
    rcv.stop();
    redis?.stop();
  }
}

if (process.argv.includes("--receiver")) runReceiver();
else
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
