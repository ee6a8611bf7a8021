/**
 * Kannel as a benchmark baseline, shared by the inbound (bench/sms-e2e.ts) and outbound
 * (bench/sms-outbound.ts) SMS benches: Debian's bearerbox (SMPP transceiver binds to the bench's
 * SMSC) and smsbox (MO messages to an HTTP receiver with get-url; MT messages from its sendsms HTTP
 * interface), configured from bench/kannel/*.tmpl; and the process bookkeeping both benches use
 * (every process the leader of its own group, killed at the end even on error).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, writeFileSync, closeSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./servers.js";

/** Repository root (dist/bench/.. /..). */
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every process started by the bench, each the leader of its own process group. */
export class Procs {
  private readonly all = new Set<ChildProcess>();

  track(c: ChildProcess): ChildProcess {
    this.all.add(c);
    c.once("exit", () => this.all.delete(c));
    return c;
  }

  /** SIGTERM to the group, SIGKILL after graceMs. */
  async stop(c: ChildProcess | undefined, graceMs = 5000): Promise<void> {
    if (!c || c.pid === undefined) return;
    if (c.exitCode !== null || c.signalCode !== null) {
      killGroup(c.pid, "SIGKILL"); // leftovers of the group
      return;
    }
    const exited = new Promise<void>((r) => c.once("exit", () => r()));
    killGroup(c.pid, "SIGTERM");
    const t = setTimeout(() => killGroup(c.pid!, "SIGKILL"), graceMs);
    await exited;
    clearTimeout(t);
    killGroup(c.pid, "SIGKILL");
  }

  /** Synchronous last resort (process exit, signals). */
  killAll(): void {
    for (const c of this.all) if (c.pid !== undefined) killGroup(c.pid, "SIGKILL");
  }
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`; 100 on Linux), read once. */
let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime + stime of a process in ms (from /proc), 0 when gone. */
export function cpuMsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "latin1");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / ticksPerSecond();
  } catch {
    return 0;
  }
}

/** A gateway under test. */
export interface Gateway {
  name: string;
  /** Processes whose CPU time is counted. */
  pids(): (number | undefined)[];
  stop(): Promise<void>;
}

/** Where a bench keeps its processes and logs. */
export interface BenchCtx {
  procs: Procs;
  dir: string;
  logs: string[];
}

/** A log file in the bench directory, opened for appending (listed in ctx.logs). */
export function logFd(ctx: BenchCtx, name: string): number {
  const p = join(ctx.dir, name);
  ctx.logs.push(p);
  return openSync(p, "a");
}

function fill(tmpl: string, vars: Record<string, string | number>): string {
  return tmpl.replace(/\$\{([A-Z_]+)\}/g, (m, k: string) => (k in vars ? String(vars[k]) : m));
}

export interface KannelOptions {
  /** The bench SMSC that bearerbox binds to. */
  peerPort: number;
  /** SMPP transceiver binds of bearerbox to it (smsc-id bench-peer-1, -2, …; system_id kannel1, …). */
  binds: number;
  /** store-type = file: bearerbox writes each message to its store before acknowledging it. */
  store: boolean;
  /** Where smsbox posts MO messages (get-url); default: a closed port (outbound-only runs). */
  receiverPort?: number;
  /** submit_sm outstanding per bind (Kannel's max-pending-submits; its default is 10). */
  maxPendingSubmits?: number;
}

/** Credentials of the sendsms-user in bench/kannel/kannel.conf.tmpl. */
export const KANNEL_SENDSMS_USER = { username: "bench", password: "bench" };

/** Starts bearerbox and smsbox; `sendsmsPort` is smsbox's sendsms HTTP port (ready when this resolves). */
export async function startKannel(ctx: BenchCtx, o: KannelOptions): Promise<Gateway & { sendsmsPort: number }> {
  for (const b of ["/usr/sbin/bearerbox", "/usr/sbin/smsbox"]) if (!existsSync(b)) throw new Error(`${b} not found (Debian package kannel)`);
  const tdir = join(repoRoot, "bench", "kannel");
  const dir = mkdtempSync(join(ctx.dir, "kannel-"));
  const smscT = readFileSync(join(tdir, "smsc.conf.tmpl"), "utf8");
  const extra = o.maxPendingSubmits !== undefined ? `max-pending-submits = ${o.maxPendingSubmits}` : "";
  const smsc = Array.from({ length: o.binds }, (_, k) => fill(smscT, { ID: k + 1, PEER_PORT: o.peerPort, SMSC_EXTRA: extra })).join("\n");
  const sendsmsPort = await freePort();
  const conf = fill(readFileSync(join(tdir, "kannel.conf.tmpl"), "utf8"), {
    ADMIN_PORT: await freePort(),
    SMSBOX_PORT: await freePort(),
    SENDSMS_PORT: sendsmsPort,
    RECEIVER_PORT: o.receiverPort ?? 9,
    DIR: dir,
    LOG_LEVEL: 2,
    MAX_PENDING: 512,
    SMSC_GROUPS: smsc,
    SENDSMS_USER: KANNEL_SENDSMS_USER.username,
    SENDSMS_PASSWORD: KANNEL_SENDSMS_USER.password,
    STORE: o.store ? `store-type = file\nstore-location = "${join(dir, "kannel.store")}"` : "",
  });
  const cfg = join(dir, "kannel.conf");
  writeFileSync(cfg, conf);
  const fdB = logFd(ctx, "bearerbox.out");
  const bb = ctx.procs.track(spawn("/usr/sbin/bearerbox", ["-v", "2", cfg], { detached: true, stdio: ["ignore", fdB, fdB] }));
  closeSync(fdB);
  await sleep(300);
  const fdS = logFd(ctx, "smsbox.out");
  const sb = ctx.procs.track(spawn("/usr/sbin/smsbox", ["-v", "2", cfg], { detached: true, stdio: ["ignore", fdS, fdS] }));
  closeSync(fdS);
  const stop = async (): Promise<void> => {
    await ctx.procs.stop(sb, 3000);
    await ctx.procs.stop(bb, 3000);
  };
  // smsbox opens its sendsms port once it is connected to bearerbox
  const deadline = Date.now() + 20_000;
  while ((await httpStatus(sendsmsPort, "/cgi-bin/sendsms")) === 0) {
    if (bb.exitCode !== null || sb.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`kannel did not start; see ${dir}`);
    }
    await sleep(100);
  }
  return { name: o.store ? "kannel/store" : "kannel", pids: () => [bb.pid, sb.pid], stop, sendsmsPort };
}

/** The status of a GET on 127.0.0.1:port, 0 when nothing answered. */
export function httpStatus(port: number, path: string, timeoutMs = 1000): Promise<number> {
  return new Promise((res) => {
    const r = httpRequest({ host: "127.0.0.1", port, path, timeout: timeoutMs }, (resp) => {
      resp.resume();
      res(resp.statusCode ?? 0);
    });
    r.on("timeout", () => r.destroy());
    r.on("error", () => res(0));
    r.end();
  });
}
