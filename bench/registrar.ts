/**
 * Registrar benchmark.
 *
 * 1. REGISTER/s with digest: sipp (one UDP socket on 127.0.0.8) against `didgate serve` (a child
 *    process, 10k users configured): each registration is REGISTER, 401, REGISTER with credentials,
 *    200, a new Call-ID each time. sipp 3.6 takes no injected field as the digest username, so
 *    every registration is user u0's (its one binding replaced each time: the same work per
 *    REGISTER as for many users). The offered rate is ramped; per step the registrations done, failed, and
 *    didgate's CPU microseconds per registration (utime+stime from /proc/PID/stat). Bindings in
 *    memory, then in Redis (a redis-server on a free port).
 * 2. The cost of a location lookup per call: the registrar's target expansion for a route whose
 *    target is a registered user (memory and Redis store, 10k users registered), beside the static
 *    case (a route of SIP URIs: only the check that no target is a user).
 *
 * 3. The cost of a call through the edge holding a phone's flow (docs/registrar.md, "Several
 *    edges"): the routing edge's expansion of a binding of another edge (a flow token signed per
 *    leg) beside one of its own, and the holding edge's check of that token (relayFlow) per INVITE.
 *    The extra proxy hop itself costs what any proxied call does (docs/sip.md).
 *
 *   npm run build && node dist/bench/registrar.js [--rates 500,1000,2000] [--step-s 5] [--only register,lookup,flow]
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { Registry } from "prom-client";
import { Redis } from "ioredis";
import { registrarSchema } from "../src/config/registrar.js";
import { RegistrarEdge } from "../src/edge/registrar.js";
import { MemoryLocationStore, RedisLocationStore, type Binding, type LocationStore } from "../src/registrar/location.js";
import type { Target } from "../src/routing/route.js";
import { parseOrThrow } from "../src/sip/index.js";
import { DialogSigner } from "../src/sip/rr.js";
import { startRedis } from "../test/helpers/redis.js";
import { freePort } from "../test/helpers/sipp.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const CLI = path.join(ROOT, "dist", "src", "cli.js");
const SIPP = process.env.SIPP_BIN ?? "/usr/bin/sipp";
const DOMAIN = "sip.example.net";
const USERS = 10_000;
const TICK_US = 1e6 / 100;

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf("--" + name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

function cpuTicks(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  const p = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return Number(p[11]) + Number(p[12]);
}

const SCENARIO = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register_bench">
  <send retrans="500"><![CDATA[

REGISTER sip:${DOMAIN} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:u0@${DOMAIN}>;tag=[call_number]
To: <sip:u0@${DOMAIN}>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:u0@[local_ip]:[local_port]>
Expires: 3600
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[

REGISTER sip:${DOMAIN} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:u0@${DOMAIN}>;tag=[call_number]
To: <sip:u0@${DOMAIN}>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:u0@[local_ip]:[local_port]>
Expires: 3600
[authentication username=u0 password=pw-0-secret]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
`;

async function startDidgate(dir: string, redisUrl: string | undefined): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const users = Array.from({ length: USERS }, (_, i) => `      - { user: u${i}, tenant: t, password: "pw-${i}-secret" }`).join("\n");
  const cfg = `sip:
  listen: ["udp://127.0.0.1:${port}"]
  flood: { per_source_pps: 1000000 }
  auth: { algorithms: [MD5] }
  registrar:
    domain: ${DOMAIN}
    users:
${users}
routes: ${redisUrl !== undefined ? `{ redis: { url: "${redisUrl}", snapshot: "" } }` : `{ file: routes.yaml, watch: false }`}
admin: { listen: "127.0.0.1:0" }
records: { enabled: false }
state_dir: ${dir}
log: { level: info }
`;
  fs.writeFileSync(path.join(dir, "didgate.yaml"), cfg);
  fs.writeFileSync(path.join(dir, "routes.yaml"), "routes: {}\n");
  const child = spawn(process.execPath, [CLI, "serve", "--config", path.join(dir, "didgate.yaml")], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes('"didgate started"')) resolve();
    });
    child.once("exit", (c) => reject(new Error("didgate exited " + c)));
  });
  child.stdout!.resume();
  return { child, port };
}

async function registerBench(label: string, redisUrl: string | undefined, rates: number[], stepS: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "didgate-regbench-"));
  fs.writeFileSync(path.join(dir, "reg.xml"), SCENARIO);
  const { child, port } = await startDidgate(dir, redisUrl);
  try {
    for (const rate of rates) {
      const n = rate * stepS;
      const c0 = cpuTicks(child.pid!);
      const t0 = performance.now();
      const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const s = spawn(SIPP, ["-sf", path.join(dir, "reg.xml"), `127.0.0.1:${port}`, "-i", "127.0.0.8", "-t", "u1", "-m", String(n), "-r", String(rate), "-l", "2000", "-nostdin", "-timeout", `${stepS * 4 + 10}s`, "-trace_stat", "-stf", path.join(dir, `stat-${label}-${rate}.csv`)], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        s.stdout.on("data", (d: Buffer) => (out += d.toString()));
        s.stderr.on("data", (d: Buffer) => (out += d.toString()));
        s.on("exit", (code) => resolve({ code, out }));
      });
      const ms = performance.now() - t0;
      const cpuUs = (cpuTicks(child.pid!) - c0) * TICK_US;
      const stat = fs.readFileSync(path.join(dir, `stat-${label}-${rate}.csv`), "latin1").trim().split("\n");
      const head = stat[0]!.split(";");
      const last = stat[stat.length - 1]!.split(";");
      const ok = Number(last[head.indexOf("SuccessfulCall(C)")]);
      const failed = Number(last[head.indexOf("FailedCall(C)")]);
      console.log(`${label.padEnd(7)} offered ${String(rate).padStart(5)}/s: ${ok}/${n} registered, ${failed} failed in ${(ms / 1000).toFixed(1)} s = ${Math.round((ok / ms) * 1000)}/s achieved; didgate CPU ${Math.round(cpuUs / Math.max(1, ok))} us per registration (sipp exit ${r.code})`);
      if (failed > n / 1000) break;
    }
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}

async function lookupBench(): Promise<void> {
  const redis = await startRedis();
  const client = new Redis(redis.url);
  try {
    const stores: Array<[string, LocationStore]> = [["memory", new MemoryLocationStore()], ["redis", new RedisLocationStore(client, "bench:")]];
    const config = registrarSchema.parse({ domain: DOMAIN, users: [] });
    const now = Date.now();
    for (const [name, store] of stores) {
      const edge = new RegistrarEdge({ config, secret: Buffer.alloc(32), nonceTtlMs: 300_000, algorithms: ["MD5"], store, edgeId: "bench", registry: new Registry(), logger: pino({ level: "silent" }), now: Date.now, stack: () => undefined });
      for (let i = 0; i < USERS; i += 500) {
        await Promise.all(
          Array.from({ length: Math.min(500, USERS - i) }, (_, j) => {
            const b: Binding = { contact: `sip:u${i + j}@192.0.2.1:5060`, expiresAt: now + 3_600_000, q: 1, callId: "c", cseq: 1, transport: "udp", address: "192.0.2.1", port: 5060 + ((i + j) % 1000), edge: "bench", registeredAt: now };
            return store.update(`sip:u${i + j}@${DOMAIN}`, { upsert: [b] });
          }),
        );
      }
      const user = (i: number): Target[] => [{ uri: `sip:u${i % USERS}@${DOMAIN}`, priority: 1, weight: 1 }];
      const stat: Target[] = [{ uri: "sip:pbx@192.0.2.1:5060", priority: 1, weight: 1 }];
      const N = name === "memory" ? 200_000 : 50_000;
      // static: what every call to a route of plain SIP URIs pays (the check for user targets)
      let t0 = performance.now();
      let hits = 0;
      for (let i = 0; i < N; i++) if (edge.hasUsers(stat)) hits++;
      const staticUs = ((performance.now() - t0) * 1000) / N;
      // one call at a time (latency)
      t0 = performance.now();
      const M = Math.min(N, 20_000);
      for (let i = 0; i < M; i++) {
        const n = (await edge.expand(user(i), "sequential")).targets.length;
        hits += n;
      }
      const serialUs = ((performance.now() - t0) * 1000) / M;
      // 64 calls in flight (throughput)
      t0 = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next < N) {
            const n = (await edge.expand(user(next++), "sequential")).targets.length;
            hits += n;
          }
        }),
      );
      const ms = performance.now() - t0;
      console.log(`lookup ${name.padEnd(6)}: static route ${staticUs.toFixed(3)} us/call; registered user ${serialUs.toFixed(1)} us/call one at a time, ${Math.round((N / ms) * 1000)} lookups/s with 64 in flight (${hits} contacts for ${N + M} lookups)`);
    }
  } finally {
    client.disconnect();
    await redis.stop();
  }
}

/** Calls through the edge that holds the flow: token signing per leg, and its check per INVITE. */
async function flowBench(): Promise<void> {
  const config = registrarSchema.parse({ domain: DOMAIN, users: [] });
  const signer = new DialogSigner(["bench dialog secret shared by the edges"]);
  const now = Date.now();
  const EDGE_URI = "sip:192.0.2.9:5060;transport=udp";
  const N = 100_000;
  const perCall: string[] = [];
  for (const [label, edge] of [["own edge", "bench"], ["another edge", "edge-2"]] as const) {
    const store = new MemoryLocationStore();
    const reg = new RegistrarEdge({ config, secret: Buffer.alloc(32), nonceTtlMs: 300_000, algorithms: ["MD5"], store, edgeId: "bench", registry: new Registry(), logger: pino({ level: "silent" }), now: Date.now, stack: () => undefined, signer: () => signer });
    const b: Binding = { contact: "sip:u0@198.51.100.7:5060", expiresAt: now + 3_600_000, q: 1, callId: "c", cseq: 1, transport: "udp", address: "198.51.100.7", port: 40000, edge, edgeUri: EDGE_URI, registeredAt: now };
    await store.update(`sip:u0@${DOMAIN}`, { upsert: [b] });
    const t: Target[] = [{ uri: `sip:u0@${DOMAIN}`, priority: 1, weight: 1 }];
    let legs = 0;
    const t0 = performance.now();
    for (let i = 0; i < N; i++) legs += (await reg.expand(t, "sequential", `call-${i}@bench`)).targets.length;
    perCall.push(`${label} ${(((performance.now() - t0) * 1000) / N).toFixed(2)} us`);
    if (legs !== N) throw new Error(`expected ${N} legs, got ${legs}`);
  }
  // the edge holding the flow: parse the Route of each INVITE and check its token
  const holder = new RegistrarEdge({ config, secret: Buffer.alloc(32), nonceTtlMs: 300_000, algorithms: ["MD5"], store: new MemoryLocationStore(), edgeId: "edge-1", registry: new Registry(), logger: pino({ level: "silent" }), now: Date.now, stack: () => undefined, signer: () => signer, edgeUri: EDGE_URI });
  const flow = "udp~198.51.100.7~40000";
  const exp = Math.floor(now / 1000) + 120;
  const M = 20_000;
  const reqs = Array.from({ length: M }, (_, i) => {
    const id = `call-${i}@bench`;
    return parseOrThrow(
      Buffer.from(
        `INVITE sip:u0@198.51.100.7:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.8:5060;branch=z9hG4bK${i}\r\nRoute: <${EDGE_URI};lr;dgf=${flow};dgx=${exp};dgp=${signer.signFlow(id, flow, exp)}>\r\nFrom: <sip:+15125551111@192.0.2.8>;tag=a${i}\r\nTo: <sip:u0@${DOMAIN}>\r\nCall-ID: ${id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n`,
      ),
    );
  });
  let ok = 0;
  const t1 = performance.now();
  for (const r of reqs) {
    const x = holder.relayFlow(r);
    if (x !== undefined && "flow" in x) ok++;
  }
  const checkUs = ((performance.now() - t1) * 1000) / M;
  if (ok !== M) throw new Error(`expected ${M} tokens accepted, got ${ok}`);
  console.log(`flow: expansion per call (memory store) ${perCall.join(", ")}; token check on the holding edge ${checkUs.toFixed(2)} us per INVITE (${M} checked)`);
}

async function main(): Promise<void> {
  const only = arg("only", "register,lookup,flow").split(",");
  const rates = arg("rates", "500,1000,2000,4000").split(",").map(Number);
  const stepS = Number(arg("step-s", "5"));
  console.log(`node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  if (only.includes("register")) {
    await registerBench("memory", undefined, rates, stepS);
    const redis = await startRedis();
    try {
      await registerBench("redis", redis.url, rates, stepS);
    } finally {
      await redis.stop();
    }
  }
  if (only.includes("lookup")) await lookupBench();
  if (only.includes("flow")) await flowBench();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
