/**
 * End-to-end SMS load test (issue #7): an SMSC peer pushes single-part deliver_sm over 2 binds with
 * window 50 through a gateway to a local webhook receiver; reports messages/s and the latency from
 * deliver_sm to webhook (p50/p99), lost messages and duplicates. Gateways compared in one run:
 *
 *   didgate direct  node dist/src/cli.js serve, routes from a file, ESME_ROK after the receiver's 2xx
 *   didgate spool   the same with routes.redis (a redis-server started here), ESME_ROK once spooled
 *   kannel          Debian kannel: bearerbox (SMPP transceiver binds to the same peer) + smsbox
 *                   (sms-service get-url to the same receiver); acks deliver_sm when queued in memory
 *
 *   npm run build && node dist/bench/sms-e2e.js [--json] [--messages 100k] [--only didgate|kannel]
 *       [--mode direct|spool|both] [--binds 2] [--window 50] [--warmup 2000] [--timeout-s 600]
 *       [--kannel-store] [--no-calibrate] [--keep] [--profile]
 *
 * Processes (each its own process group, killed at the end even on error or Ctrl-C):
 *  - peer (this file, --role peer): a minimal SMPP server with its own PDU encoder/parser; accepts
 *    binds, answers enquire_link/unbind, pushes deliver_sm across the bound sessions with at most
 *    `window` unacknowledged per bind, counts the answers by command_status and re-sends a message
 *    answered with a non-zero status after 100 ms (as an SMSC retries a temporary failure);
 *  - receiver (--role receiver): node:http, answers 200 at once, records each message's arrival
 *    (the message text is "<tag> <index> <first-send wall ms>"): unique count, duplicates, latency;
 *  - sink (--role sink): a trivial ESME that answers every deliver_sm at once: the calibration row
 *    "peer→sink" shows what the peer alone can push (it must be far above the gateways);
 *  - the gateway under test, and redis-server in spool mode.
 *
 * Columns: ops_per_s = unique messages received / (first deliver_sm sent → last arrival);
 * p50_ms/p99_ms = first send of a message's deliver_sm → its arrival at the receiver (one clock:
 * performance.timeOrigin + performance.now() in both processes); lost = messages never received;
 * duplicates = arrivals beyond the first; retries = deliver_sm answered non-zero and re-sent;
 * ack_per_s = messages acknowledged ROK per second at the peer; cpu_ms_per_1k = CPU time of the
 * gateway processes (didgate; bearerbox + smsbox) per 1,000 messages; ratio_to_kannel = ops_per_s
 * over kannel's. Load average of the machine is printed with every row (the machine is shared).
 */
import { execFileSync, fork, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync, closeSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { connect, createServer as createNetServer, type Socket } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CMD } from "../src/smpp/constants.js";
import { Reporter, parseArgs, result, round } from "./lib.js";
import { Procs, cpuMsOf, httpStatus, logFd, startKannel, type BenchCtx, type Gateway } from "./kannel.js";
import { freePort } from "./servers.js";

const wallNow = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const here = dirname(fileURLToPath(import.meta.url));
/** Repository root (dist/bench/.. /..). */
const repoRoot = resolve(here, "..", "..");

// ====================================================================== SMPP PDU helpers

// The peer writes its own PDUs (independent of didgate's codec) but shares the command ids.
const CMD_GENERIC_NACK = CMD.generic_nack;
const CMD_BIND_RECEIVER = CMD.bind_receiver;
const CMD_BIND_TRANSMITTER = CMD.bind_transmitter;
const CMD_SUBMIT_SM = CMD.submit_sm;
const CMD_DELIVER_SM = CMD.deliver_sm;
const CMD_DELIVER_SM_RESP = CMD.deliver_sm_resp;
const CMD_UNBIND = CMD.unbind;
const CMD_BIND_TRANSCEIVER = CMD.bind_transceiver;
const CMD_ENQUIRE_LINK = CMD.enquire_link;

function header(len: number, cmd: number, status: number, seq: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  b.writeUInt32BE(len, 0);
  b.writeUInt32BE(cmd >>> 0, 4);
  b.writeUInt32BE(status >>> 0, 8);
  b.writeUInt32BE(seq >>> 0, 12);
  return b;
}

/** A response with an optional C-string body (system_id, message_id). */
function respPdu(cmd: number, status: number, seq: number, cstr?: string): Buffer {
  const len = 16 + (cstr === undefined ? 0 : cstr.length + 1);
  const b = header(len, cmd, status, seq);
  if (cstr !== undefined) {
    b.write(cstr, 16, "latin1");
    b[len - 1] = 0;
  }
  return b;
}

const SRC_ADDR = "447700900123";

/** deliver_sm, TON/NPI 1/1 addresses, data_coding 0 (GSM), text in short_message (ASCII subset of GSM 03.38). */
function deliverSm(seq: number, dest: string, text: string): Buffer {
  // body: service_type(1) src(2+len+1) dst(2+len+1) esm,pid,prio(3) sched(1) valid(1) reg,repl,dc,defid,smlen(5) sm
  const len = 16 + 1 + 2 + SRC_ADDR.length + 1 + 2 + dest.length + 1 + 3 + 2 + 5 + text.length;
  const b = header(len, CMD_DELIVER_SM, 0, seq);
  let o = 16;
  b[o++] = 0; // service_type ""
  b[o++] = 1;
  b[o++] = 1;
  o += b.write(SRC_ADDR, o, "latin1");
  b[o++] = 0;
  b[o++] = 1;
  b[o++] = 1;
  o += b.write(dest, o, "latin1");
  b[o++] = 0;
  b[o++] = 0; // esm_class
  b[o++] = 0; // protocol_id
  b[o++] = 0; // priority_flag
  b[o++] = 0; // schedule_delivery_time ""
  b[o++] = 0; // validity_period ""
  b[o++] = 0; // registered_delivery
  b[o++] = 0; // replace_if_present_flag
  b[o++] = 0; // data_coding
  b[o++] = 0; // sm_default_msg_id
  b[o++] = text.length;
  b.write(text, o, "latin1");
  return b;
}

/** Splits a byte stream into PDUs; calls onPdu(buf, off, len) for each complete one. */
class PduReader {
  private pending: Buffer | null = null;
  constructor(private readonly onPdu: (b: Buffer, off: number, len: number) => void, private readonly onBad: () => void) {}
  push(chunk: Buffer): void {
    let b = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let o = 0;
    while (b.length - o >= 16) {
      const len = b.readUInt32BE(o);
      if (len < 16 || len > 70_000) {
        this.onBad();
        return;
      }
      if (b.length - o < len) break;
      this.onPdu(b, o, len);
      o += len;
    }
    if (o < b.length) this.pending = b.subarray(o);
    b = Buffer.alloc(0);
  }
}

function dest(i: number): string {
  return "1512555" + String(i % 10_000).padStart(4, "0");
}

// ====================================================================== role: SMSC peer

interface PushCmd {
  cmd: "push";
  n: number;
  tag: string;
  binds: number;
  window: number;
}

interface PeerDone {
  ev: "done";
  tag: string;
  n: number;
  ok: number;
  failed: number;
  retries: number;
  statuses: Record<string, number>;
  t0: number;
  tAcked: number;
}

class PeerConn {
  bound = false;
  systemId = "";
  inflight = 0;
  seq = 1;
  readonly seqToIdx = new Map<number, number>();
  constructor(readonly sock: Socket) {}
}

function runPeer(): void {
  const conns = new Set<PeerConn>();
  let job: {
    n: number;
    tag: string;
    window: number;
    next: number;
    retryQ: number[];
    firstSent: Float64Array;
    state: Uint8Array; // 0 not sent, 1 in flight, 2 ok, 3 failed for good
    ok: number;
    failed: number;
    retries: number;
    statuses: Map<number, number>;
    t0: number;
    done: boolean;
  } | null = null;

  const send = (m: unknown): void => {
    process.send?.(m);
  };

  const finish = (): void => {
    if (!job || job.done) return;
    job.done = true;
    const statuses: Record<string, number> = {};
    for (const [k, v] of job.statuses) statuses["0x" + k.toString(16).padStart(2, "0")] = v;
    const d: PeerDone = { ev: "done", tag: job.tag, n: job.n, ok: job.ok, failed: job.failed, retries: job.retries, statuses, t0: job.t0, tAcked: wallNow() };
    send(d);
  };

  const pump = (c: PeerConn): void => {
    const j = job;
    if (!j || j.done || !c.bound || c.sock.destroyed) return;
    let wrote = false;
    while (c.inflight < j.window) {
      let i: number;
      if (j.retryQ.length > 0) i = j.retryQ.shift()!;
      else if (j.next < j.n) i = j.next++;
      else break;
      if (!wrote) {
        c.sock.cork();
        wrote = true;
      }
      let t = j.firstSent[i];
      if (t === 0) t = j.firstSent[i] = wallNow();
      const seq = c.seq++;
      if (c.seq > 0x7fffffff) c.seq = 1;
      c.seqToIdx.set(seq, i);
      c.inflight++;
      j.state[i] = 1;
      c.sock.write(deliverSm(seq, dest(i), `${j.tag} ${i} ${t.toFixed(3)}`));
    }
    if (wrote) c.sock.uncork();
  };

  const pumpAll = (): void => {
    for (const c of conns) pump(c);
  };

  const retry = (i: number): void => {
    if (!job) return;
    job.retries++;
    job.state[i] = 0;
    const j = job;
    setTimeout(() => {
      if (job !== j) return;
      j.retryQ.push(i);
      pumpAll();
    }, 100);
  };

  const onAnswer = (c: PeerConn, seq: number, status: number): void => {
    const i = c.seqToIdx.get(seq);
    if (i === undefined) return;
    c.seqToIdx.delete(seq);
    c.inflight--;
    const j = job;
    if (!j || j.state[i] !== 1) {
      pump(c);
      return;
    }
    j.statuses.set(status, (j.statuses.get(status) ?? 0) + 1);
    if (status === 0) {
      j.state[i] = 2;
      j.ok++;
    } else if (status === 0x0b) {
      // ESME_RINVDSTADR: no route (a configuration error of the bench): not retried.
      j.state[i] = 3;
      j.failed++;
    } else retry(i);
    if (j.ok + j.failed === j.n) finish();
    else pump(c);
  };

  const server = createNetServer((sock) => {
    sock.setNoDelay(true);
    const c = new PeerConn(sock);
    conns.add(c);
    const reader = new PduReader(
      (b, o, len) => {
        const cmd = b.readUInt32BE(o + 4);
        const status = b.readUInt32BE(o + 8);
        const seq = b.readUInt32BE(o + 12);
        switch (cmd) {
          case CMD_DELIVER_SM_RESP:
          case CMD_GENERIC_NACK:
            onAnswer(c, seq, cmd === CMD_GENERIC_NACK && status === 0 ? 0xff : status);
            return;
          case CMD_BIND_RECEIVER:
          case CMD_BIND_TRANSCEIVER:
          case CMD_BIND_TRANSMITTER: {
            let e = o + 16;
            while (e < o + len && b[e] !== 0) e++;
            c.systemId = b.toString("latin1", o + 16, e);
            sock.write(respPdu(cmd | 0x80000000, 0, seq, "benchsmsc"));
            if (cmd !== CMD_BIND_TRANSMITTER) {
              c.bound = true;
              send({ ev: "bound", system_id: c.systemId, count: [...conns].filter((x) => x.bound).length });
              pump(c);
            }
            return;
          }
          case CMD_ENQUIRE_LINK:
            sock.write(respPdu(0x80000015, 0, seq));
            return;
          case CMD_UNBIND:
            c.bound = false;
            sock.end(respPdu(0x80000006, 0, seq));
            return;
          case CMD_SUBMIT_SM:
            sock.write(respPdu(0x80000004, 0, seq, "m" + seq));
            return;
          default:
            if (cmd < 0x80000000) sock.write(respPdu(CMD_GENERIC_NACK, 0x03, seq));
        }
      },
      () => sock.destroy(),
    );
    sock.on("data", (d: Buffer) => reader.push(d));
    sock.on("error", () => undefined);
    sock.on("close", () => {
      conns.delete(c);
      // Messages in flight on a lost session are sent again (on another session).
      const j = job;
      if (j) for (const i of c.seqToIdx.values()) if (j.state[i] === 1) retry(i);
      c.seqToIdx.clear();
      c.inflight = 0;
    });
  });
  server.listen(0, "127.0.0.1", () => {
    const a = server.address();
    send({ ev: "listening", port: typeof a === "object" && a ? a.port : 0 });
  });

  process.on("message", (m: PushCmd | { cmd: "status" } | { cmd: "exit" }) => {
    if (m.cmd === "push") {
      job = {
        n: m.n,
        tag: m.tag,
        window: m.window,
        next: 0,
        retryQ: [],
        firstSent: new Float64Array(m.n),
        state: new Uint8Array(m.n),
        ok: 0,
        failed: 0,
        retries: 0,
        statuses: new Map(),
        t0: wallNow(),
        done: false,
      };
      if (m.n === 0) finish();
      else pumpAll();
    } else if (m.cmd === "status") {
      send({ ev: "status", bound: [...conns].filter((x) => x.bound).length, ok: job?.ok ?? 0, failed: job?.failed ?? 0, retries: job?.retries ?? 0 });
    } else if (m.cmd === "exit") process.exit(0);
  });
  process.on("disconnect", () => process.exit(0));
}

// ====================================================================== role: trivial ESME sink

function runSink(): void {
  const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
  const binds = Number(process.argv[process.argv.indexOf("--binds") + 1] || "2");
  for (let k = 0; k < binds; k++) {
    const sock = connect({ host: "127.0.0.1", port }, () => {
      sock.setNoDelay(true);
      const id = "sink" + k;
      const b = header(16 + id.length + 1 + 1 + 1 + 3 + 1, CMD_BIND_TRANSCEIVER, 0, 1);
      b.fill(0, 16);
      b.write(id, 16, "latin1");
      sock.write(b);
    });
    const reader = new PduReader(
      (b, o) => {
        const cmd = b.readUInt32BE(o + 4);
        const seq = b.readUInt32BE(o + 12);
        if (cmd === CMD_DELIVER_SM) sock.write(respPdu(CMD_DELIVER_SM_RESP, 0, seq, ""));
        else if (cmd === CMD_ENQUIRE_LINK) sock.write(respPdu(0x80000015, 0, seq));
      },
      () => sock.destroy(),
    );
    sock.on("data", (d: Buffer) => reader.push(d));
    sock.on("error", () => undefined);
  }
  process.on("disconnect", () => process.exit(0));
}

// ====================================================================== role: receiver

interface RcvReport {
  ev: "report";
  unique: number;
  duplicates: number;
  stray: number;
  bad: number;
  first: number;
  last: number;
  p50: number;
  p99: number;
  max: number;
}

function runReceiver(): void {
  let tag = "";
  let n = 0;
  let arrivals = new Float64Array(0);
  let lat = new Float64Array(0);
  let unique = 0;
  let duplicates = 0;
  let stray = 0;
  let bad = 0;
  let first = 0;
  let last = 0;

  const record = (text: string | null, now: number): void => {
    if (text === null) {
      bad++;
      return;
    }
    const s1 = text.indexOf(" ");
    const s2 = s1 < 0 ? -1 : text.indexOf(" ", s1 + 1);
    if (s2 < 0) {
      bad++;
      return;
    }
    if (text.slice(0, s1) !== tag) {
      stray++;
      return;
    }
    const i = Number(text.slice(s1 + 1, s2));
    const t0 = Number(text.slice(s2 + 1));
    if (!(i >= 0 && i < n) || !Number.isFinite(t0)) {
      bad++;
      return;
    }
    if (arrivals[i] !== 0) {
      duplicates++;
      return;
    }
    arrivals[i] = now;
    lat[i] = now - t0;
    unique++;
    if (first === 0) first = now;
    last = now;
  };

  const server = createHttpServer((req, res) => {
    const url = req.url ?? "";
    if (req.method === "GET") {
      // Kannel: /kannel?from=%p&to=%P&text=%a
      const now = wallNow();
      const q = url.indexOf("?");
      record(q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get("text"), now);
      res.writeHead(200, { "content-length": "0" });
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const now = wallNow();
      const body = chunks.length === 1 ? chunks[0].toString() : Buffer.concat(chunks).toString();
      const k = body.indexOf('"text":"');
      record(k < 0 ? null : body.slice(k + 8, body.indexOf('"', k + 8)), now);
      res.writeHead(200, { "content-length": "0" });
      res.end();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1", () => {
    const a = server.address();
    process.send?.({ ev: "listening", port: typeof a === "object" && a ? a.port : 0 });
  });
  process.on("message", (m: { cmd: "reset"; tag: string; n: number } | { cmd: "report" } | { cmd: "count" } | { cmd: "exit" }) => {
    if (m.cmd === "reset") {
      tag = m.tag;
      n = m.n;
      arrivals = new Float64Array(n);
      lat = new Float64Array(n);
      unique = duplicates = stray = bad = 0;
      first = last = 0;
    } else if (m.cmd === "count") {
      process.send?.({ ev: "count", unique, duplicates });
    } else if (m.cmd === "report") {
      const got: number[] = [];
      for (let i = 0; i < n; i++) if (arrivals[i] !== 0) got.push(lat[i]);
      got.sort((a, b) => a - b);
      const r: RcvReport = { ev: "report", unique, duplicates, stray, bad, first, last, p50: pct(got, 50), p99: pct(got, 99), max: got.length ? got[got.length - 1] : NaN };
      process.send?.(r);
    } else if (m.cmd === "exit") process.exit(0);
  });
  process.on("disconnect", () => process.exit(0));
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// ====================================================================== orchestration

/** A forked role of this file, talking over IPC. */
class Child {
  private readonly waiters: { ev: string; resolve: (m: any) => void }[] = [];
  readonly events: any[] = [];
  private constructor(readonly proc: ChildProcess) {
    proc.on("message", (m: any) => {
      const k = this.waiters.findIndex((w) => w.ev === m.ev);
      if (k >= 0) this.waiters.splice(k, 1)[0].resolve(m);
      else this.events.push(m);
    });
  }

  static async fork(procs: Procs, role: string, extra: string[] = [], wait: string | null = "listening"): Promise<{ child: Child; msg: any }> {
    const proc = procs.track(fork(fileURLToPath(import.meta.url), ["--role", role, ...extra], { detached: true, stdio: ["ignore", "inherit", "inherit", "ipc"] }));
    const child = new Child(proc);
    const msg = wait ? await child.next(wait, 10_000) : null;
    return { child, msg };
  }

  send(m: unknown): void {
    if (this.proc.connected) this.proc.send(m as object);
  }

  /** The next message with this ev (already received or to come). */
  next(ev: string, timeoutMs: number): Promise<any> {
    const k = this.events.findIndex((m) => m.ev === ev);
    if (k >= 0) return Promise.resolve(this.events.splice(k, 1)[0]);
    return new Promise((res, rej) => {
      const w = { ev, resolve: (m: any) => (clearTimeout(t), res(m)) };
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        rej(new Error(`timed out after ${timeoutMs} ms waiting for ${ev} from ${this.proc.spawnargs.slice(-2).join(" ")}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  ask(cmd: string, ev: string, timeoutMs = 10_000): Promise<any> {
    this.send({ cmd });
    return this.next(ev, timeoutMs);
  }
}

interface Ctx extends BenchCtx {
  rcvPort: number;
  binds: number;
  window: number;
  /** Run didgate with --cpu-prof (profiles in <dir>/profile-<mode>/, kept with --keep). */
  profile: boolean;
}

const WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async function startRedis(ctx: Ctx): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const dir = mkdtempSync(join(ctx.dir, "redis-"));
  const fd = logFd(ctx, "redis.log");
  const proc = ctx.procs.track(
    spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no"], { detached: true, stdio: ["ignore", fd, fd] }),
  );
  closeSync(fd);
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect({ host: "127.0.0.1", port }, () => s.write("PING\r\n"));
      s.once("data", (d) => (s.destroy(), res(d.toString().startsWith("+PONG"))));
      s.once("error", () => res(false));
    });
    if (ok) return { url: `redis://127.0.0.1:${port}`, proc };
    await sleep(25);
  }
  throw new Error("redis-server did not start");
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("DIDGATE_")) env[k] = v;
  return env;
}

async function startDidgate(ctx: Ctx, mode: "direct" | "spool", peerPort: number): Promise<Gateway> {
  const cli = join(repoRoot, "dist", "src", "cli.js");
  if (!existsSync(cli)) throw new Error(`${cli} not found: run npm run build first`);
  const dir = mkdtempSync(join(ctx.dir, `didgate-${mode}-`));
  const routesFile = join(dir, "routes.yaml");
  writeFileSync(routesFile, JSON.stringify({ routes: { "+1512555*": { tenant: "bench", sms: { webhook: `http://127.0.0.1:${ctx.rcvPort}/hook` } } } }, null, 2) + "\n");
  let redis: { url: string; proc: ChildProcess } | undefined;
  if (mode === "spool") redis = await startRedis(ctx);
  const adminPort = await freePort();
  const binds = Array.from({ length: ctx.binds }, (_, k) => ({
    name: `smsc-${k + 1}`,
    host: "127.0.0.1",
    port: peerPort,
    system_id: `didgate${k + 1}`,
    password: "bench",
    mode: "transceiver",
    country_code: "1",
  }));
  const config = {
    sip: { listen: [] },
    smpp: { listen: null, binds },
    routes: redis ? { file: routesFile, watch: false, redis: { url: redis.url, prefix: "didgate:" } } : { file: routesFile, watch: false },
    webhooks: { secret: WEBHOOK_SECRET, timeout_ms: 5000, max_age_s: 3600, allow_private: ["127.0.0.0/8"] },
    admin: { listen: `127.0.0.1:${adminPort}` },
    log: { level: "warn" },
    state_dir: dir,
    instance_id: "bench",
    drain: { grace_s: 2 },
  };
  const cfgFile = join(dir, "didgate.yaml");
  writeFileSync(cfgFile, JSON.stringify(config, null, 2) + "\n");
  const env = cleanEnv();
  if (redis) execFileSync(process.execPath, [cli, "routes", "import", routesFile, "--config", cfgFile], { env, stdio: ["ignore", "ignore", "inherit"], timeout: 30_000 });
  const fd = logFd(ctx, `didgate-${mode}.log`);
  const nodeArgs = ctx.profile ? ["--cpu-prof", "--cpu-prof-dir", join(ctx.dir, `profile-${mode}`)] : [];
  const proc = ctx.procs.track(spawn(process.execPath, [...nodeArgs, cli, "serve", "--config", cfgFile], { detached: true, env, stdio: ["ignore", fd, fd] }));
  closeSync(fd);
  const deadline = Date.now() + 30_000;
  while ((await httpStatus(adminPort, "/readyz")) !== 200) {
    if (proc.exitCode !== null) throw new Error(`didgate exited with ${proc.exitCode}; see ${ctx.logs[ctx.logs.length - 1]}`);
    if (Date.now() > deadline) throw new Error("didgate not ready after 30 s");
    await sleep(50);
  }
  return {
    name: `didgate/${mode}`,
    pids: () => [proc.pid],
    stop: async () => {
      await ctx.procs.stop(proc, ctx.profile ? 20_000 : 5000);
      await ctx.procs.stop(redis?.proc, 1000);
    },
  };
}

interface CaseResult {
  name: string;
  messages: number;
  msgs_per_s: number;
  ack_per_s: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  lost: number;
  duplicates: number;
  retries: number;
  failed: number;
  statuses: string;
  cpu_ms_per_1k: number;
  elapsed_s: number;
  load1: number;
}

/** Pushes n messages (tag) through whatever is bound to the peer and waits for the receiver. */
async function pushAndMeasure(ctx: Ctx, peer: Child, rcv: Child, tag: string, n: number, timeoutMs: number, cpuPids: () => (number | undefined)[]): Promise<Omit<CaseResult, "name" | "load1">> {
  rcv.send({ cmd: "reset", tag, n });
  await rcv.ask("count", "count");
  const cpu0 = cpuPids().reduce<number>((s, p) => s + cpuMsOf(p), 0);
  peer.send({ cmd: "push", n, tag, binds: ctx.binds, window: ctx.window });
  const deadline = Date.now() + timeoutMs;
  const done: PeerDone = await peer.next("done", timeoutMs);
  // Wait for the receiver: all n, or no progress for 15 s, or the deadline.
  let last = -1;
  let still = Date.now();
  for (;;) {
    const c = await rcv.ask("count", "count");
    if (c.unique >= n) break;
    if (c.unique !== last) {
      last = c.unique;
      still = Date.now();
    } else if (Date.now() - still > 15_000 || Date.now() > deadline) break;
    await sleep(100);
  }
  await sleep(300); // late duplicates
  const cpu1 = cpuPids().reduce<number>((s, p) => s + cpuMsOf(p), 0);
  const r: RcvReport = await rcv.ask("report", "report", 30_000);
  const elapsed = r.last - done.t0;
  return {
    messages: n,
    msgs_per_s: (r.unique / elapsed) * 1000,
    ack_per_s: (done.ok / (done.tAcked - done.t0)) * 1000,
    p50_ms: r.p50,
    p99_ms: r.p99,
    max_ms: r.max,
    lost: n - r.unique,
    duplicates: r.duplicates,
    retries: done.retries,
    failed: done.failed,
    statuses: Object.entries(done.statuses).map(([k, v]) => `${k}:${v}`).join(" "),
    cpu_ms_per_1k: ((cpu1 - cpu0) / n) * 1000,
    elapsed_s: elapsed / 1000,
  };
}

async function waitBound(peer: Child, binds: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await peer.ask("status", "status");
    if (s.bound >= binds) return;
    if (Date.now() > deadline) throw new Error(`only ${s.bound} of ${binds} binds at the peer after ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function main(): Promise<void> {
  const args = parseArgs();
  const n = args.int("messages", 100_000);
  const binds = args.int("binds", 2);
  const window = args.int("window", 50);
  const warmup = args.int("warmup", Math.min(2000, n));
  const timeoutMs = args.int("timeout-s", 600) * 1000;
  const only = args.option("only");
  const modeArg = args.option("mode") ?? "both";
  if (only !== undefined && only !== "didgate" && only !== "kannel") throw new Error("--only: didgate or kannel");
  if (!["direct", "spool", "both"].includes(modeArg)) throw new Error("--mode: direct, spool or both");
  const modes = (modeArg === "both" ? ["direct", "spool"] : [modeArg]) as ("direct" | "spool")[];

  const procs = new Procs();
  const dir = mkdtempSync(join(tmpdir(), "didgate-sms-e2e-"));
  const onSignal = (): void => {
    procs.killAll();
    if (!args.flag("keep")) rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("exit", () => procs.killAll());
  const rep = new Reporter(args.json);
  const rows: CaseResult[] = [];
  const table = { headerDone: false };
  const note = (s: string): void => rep.note(s);
  let rcv: Child | undefined;
  try {
    const r = await Child.fork(procs, "receiver");
    rcv = r.child;
    const ctx: Ctx = { procs, dir, rcvPort: r.msg.port as number, binds, window, logs: [], profile: args.flag("profile") };
    note(`# sms-e2e: ${n} messages, ${binds} binds × window ${window}, warm-up ${warmup}; logs in ${dir}`);

    const cases: { name: string; start: (peerPort: number) => Promise<Gateway> }[] = [];
    if (only !== "didgate" && only !== "kannel" && !args.flag("no-calibrate")) {
      cases.push({
        name: "peer→sink",
        start: async (peerPort) => {
          const s = await Child.fork(procs, "sink", ["--port", String(peerPort), "--binds", String(binds)], null);
          return { name: "peer→sink", pids: () => [], stop: () => procs.stop(s.child.proc, 1000) };
        },
      });
    }
    if (only !== "kannel") for (const m of modes) cases.push({ name: `didgate/${m}`, start: (p) => startDidgate(ctx, m, p) });
    if (only !== "didgate") {
      cases.push({ name: "kannel", start: (p) => startKannel(ctx, { peerPort: p, binds, store: false, receiverPort: ctx.rcvPort }) });
      if (args.flag("kannel-store")) cases.push({ name: "kannel/store", start: (p) => startKannel(ctx, { peerPort: p, binds, store: true, receiverPort: ctx.rcvPort }) });
    }

    for (const c of cases) {
      const pf = await Child.fork(procs, "peer");
      const peer = pf.child;
      let gw: Gateway | undefined;
      try {
        gw = await c.start(pf.msg.port as number);
        await waitBound(peer, binds, 30_000);
        const cpuPids = gw.pids;
        const isSink = c.name === "peer→sink";
        if (warmup > 0 && !isSink) {
          const w = await pushAndMeasure(ctx, peer, rcv, "w" + rows.length, warmup, timeoutMs, cpuPids);
          note(`#   ${c.name} warm-up: ${w.messages - w.lost}/${w.messages} in ${round(w.elapsed_s, 2)} s`);
        }
        const load1 = loadavg()[0];
        let res: Omit<CaseResult, "name" | "load1">;
        if (isSink) {
          // No receiver: the peer's own rate against an ESME that answers at once.
          const t0 = wallNow();
          peer.send({ cmd: "push", n, tag: "sink", binds, window });
          const done: PeerDone = await peer.next("done", timeoutMs);
          const el = done.tAcked - done.t0;
          res = { messages: n, msgs_per_s: (done.ok / el) * 1000, ack_per_s: (done.ok / el) * 1000, p50_ms: NaN, p99_ms: NaN, max_ms: NaN, lost: n - done.ok, duplicates: 0, retries: done.retries, failed: done.failed, statuses: "", cpu_ms_per_1k: NaN, elapsed_s: (wallNow() - t0) / 1000 };
        } else res = await pushAndMeasure(ctx, peer, rcv, "r" + rows.length, n, timeoutMs, cpuPids);
        const row: CaseResult = { name: c.name, load1, ...res };
        rows.push(row);
        printRow(rep, args.json, row, undefined, table);
      } finally {
        await gw?.stop();
        peer.send({ cmd: "exit" });
        await procs.stop(peer.proc, 1000);
      }
    }
    // didgate/direct is compared with Kannel as configured by default (no store: deliver_sm acked
    // once queued in memory); didgate/spool with kannel/store when it ran (acked once in its store file).
    const kannelFor = (x: CaseResult): CaseResult | undefined =>
      (x.name === "didgate/spool" ? rows.find((k) => k.name === "kannel/store") : undefined) ?? rows.find((k) => k.name === "kannel");
    if (!args.json) note("");
    for (const x of rows) {
      const k = x.name.startsWith("didgate") ? kannelFor(x) : undefined;
      if (k === undefined) continue;
      if (args.json) printRow(rep, true, x, k);
      else note(`# ${x.name}: ratio_to_kannel ${round(x.msgs_per_s / k.msgs_per_s, 2)} (msg/s vs ${k.name}), p99 ${round(x.p99_ms, 1)} ms vs ${round(k.p99_ms, 1)} ms`);
    }
    note(`# load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  } finally {
    rcv?.send({ cmd: "exit" });
    await procs.stop(rcv?.proc, 1000);
    procs.killAll();
    if (!args.flag("keep")) rmSync(dir, { recursive: true, force: true });
  }
}

function printRow(rep: Reporter, json: boolean, r: CaseResult, kannel: CaseResult | undefined, table = { headerDone: false }): void {
  if (json) {
    // With --json, didgate rows are printed again with ratio_to_kannel once kannel has run.
    rep.report(
      result(r.name, r.messages, 1e9 / r.msgs_per_s, {
        p50_ms: r.p50_ms,
        p99_ms: r.p99_ms,
        max_ms: r.max_ms,
        lost: r.lost,
        duplicates: r.duplicates,
        retries: r.retries,
        failed: r.failed,
        ack_per_s: Math.round(r.ack_per_s),
        cpu_ms_per_1k: r.cpu_ms_per_1k,
        elapsed_s: r.elapsed_s,
        load1: r.load1,
        statuses: r.statuses || undefined,
        ratio_to_kannel: kannel ? r.msgs_per_s / kannel.msgs_per_s : undefined,
        kannel: kannel?.name,
        final: kannel ? true : undefined,
      }),
    );
    return;
  }
  const cols: [string, number][] = [["case", 14], ["messages", 9], ["msg/s", 8], ["ack/s", 8], ["p50_ms", 8], ["p99_ms", 8], ["max_ms", 8], ["lost", 6], ["dups", 6], ["retries", 8], ["cpu/1k", 7], ["load1", 6]];
  if (!table.headerDone) {
    table.headerDone = true;
    rep.note(cols.map(([h, w], i) => (i === 0 ? h.padEnd(w) : h.padStart(w))).join(" "));
  }
  const v = [r.name, r.messages, Math.round(r.msgs_per_s), Math.round(r.ack_per_s), round(r.p50_ms, 1), round(r.p99_ms, 1), round(r.max_ms, 1), r.lost, r.duplicates, r.retries, round(r.cpu_ms_per_1k, 0), round(r.load1, 2)];
  rep.note(v.map((x, i) => (i === 0 ? String(x).padEnd(cols[i][1]) : String(Number.isNaN(x) ? "-" : x).padStart(cols[i][1]))).join(" ") + (r.failed ? `  failed ${r.failed}` : "") + (r.statuses && r.statuses !== `0x00:${r.messages}` ? `  [${r.statuses}]` : ""));
}

const role = process.argv.includes("--role") ? process.argv[process.argv.indexOf("--role") + 1] : "";
if (role === "peer") runPeer();
else if (role === "receiver") runReceiver();
else if (role === "sink") runSink();
else
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
