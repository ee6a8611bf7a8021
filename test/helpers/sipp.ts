/**
 * Run the real `sipp` binary (foreground, no -bg) as a child process for tests.
 *
 *   const uas = startSipp({ args: ["-sn", "uas", "-i", "127.0.0.1", "-p", String(port), "-m", "1"] });
 *   const res = await runSipp({ args: [...], timeoutMs: 15000 });
 *   expect(res.code).toBe(0);            // sipp exit codes: 0 all calls ok, 1 some failed, 99 no call
 *   await uas.done;
 *   afterEach(cleanupSipp);              // kills anything still running, removes temp directories
 *
 * Every run gets its own temporary working directory (trace files land there; see `files()` /
 * `readFile()`), "-nostdin" is always added, and the process is killed (SIGTERM, then SIGKILL)
 * when `timeoutMs` elapses.
 */
import { spawn, type ChildProcess } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const SIPP_BIN = process.env.SIPP_BIN ?? "/usr/bin/sipp";

export interface SippOptions {
  /** Arguments after the binary (e.g. ["-sf", file, "127.0.0.1:5060", "-m", "1"]). */
  args: string[];
  /** Kill after this many ms (default 20000). */
  timeoutMs?: number;
  /** Working directory; a fresh temporary one by default. */
  cwd?: string;
}

export interface SippResult {
  /** Exit code (null when killed by a signal). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** true when we had to kill it at the timeout */
  timedOut: boolean;
  cwd: string;
}

export interface SippProcess {
  readonly child: ChildProcess;
  readonly cwd: string;
  readonly done: Promise<SippResult>;
  kill(): void;
  /** Files sipp wrote into its working directory. */
  files(): string[];
  /** Read a file from the working directory whose name contains `part` (e.g. "_errors.log"). */
  readFile(part: string): string | undefined;
  /** Resolves once the port given with `-p` is bound (at once when there is none, or it exited). */
  readonly ready: Promise<void>;
}

/** Is a local port bound (any address, UDP or TCP), per the kernel's socket tables? */
function portBound(port: number): boolean {
  const hex = ":" + port.toString(16).toUpperCase().padStart(4, "0") + " ";
  for (const t of ["udp", "udp6", "tcp", "tcp6"]) {
    let text = "";
    try {
      text = fs.readFileSync(`/proc/net/${t}`, "latin1");
    } catch {
      continue;
    }
    // local_address is the second column: "  sl  local_address rem_address ..."
    for (const line of text.split("\n")) {
      const local = line.trim().split(/\s+/)[1];
      if (local !== undefined && (local + " ").endsWith(hex)) return true;
    }
  }
  return false;
}

async function waitBound(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until && child.exitCode === null && child.signalCode === null) {
    if (portBound(port)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

const running = new Set<SippProcess>();
/** temporary working directories this module created (removed by cleanupSipp) */
const tempDirs = new Set<string>();

function listFiles(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

export function startSipp(opts: SippOptions): SippProcess {
  let cwd = opts.cwd;
  if (cwd === undefined) {
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), "didgate-sipp-"));
    tempDirs.add(cwd);
  }
  const args = opts.args.includes("-nostdin") ? opts.args : [...opts.args, "-nostdin"];
  const child = spawn(SIPP_BIN, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  // keep only the tail: sipp's screen output can be large
  child.stdout!.on("data", (d: Buffer) => {
    stdout = (stdout + d.toString("latin1")).slice(-20000);
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString("latin1")).slice(-20000);
  });
  let timedOut = false;
  let killTimer: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGTERM");
    killTimer = setTimeout(() => child.kill("SIGKILL"), 1000);
  }, opts.timeoutMs ?? 20_000);
  const proc: SippProcess = {
    child,
    cwd,
    done: new Promise<SippResult>((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
        clearTimeout(timer);
        if (killTimer) clearTimeout(killTimer);
        running.delete(proc);
        resolve({ code, signal, stdout, stderr, timedOut, cwd });
      };
      child.on("error", (e) => {
        stderr += String(e);
        finish(-1, null);
      });
      child.on("close", finish);
    }),
    kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 1000);
        child.once("close", () => clearTimeout(t));
      }
    },
    files: () => listFiles(cwd),
    readFile(part: string) {
      const f = listFiles(cwd).find((n) => n.includes(part));
      return f === undefined ? undefined : fs.readFileSync(path.join(cwd, f), "latin1");
    },
    ready: Promise.resolve(),
  };
  const pi = args.indexOf("-p");
  const port = pi >= 0 ? Number(args[pi + 1]) : NaN;
  if (Number.isInteger(port) && port > 0) (proc as { ready: Promise<void> }).ready = waitBound(port, child);
  running.add(proc);
  return proc;
}

/** Wait until every sipp still running has bound its `-p` port (a UAS is ready for calls). */
export async function sippReady(): Promise<void> {
  await Promise.all([...running].map((p) => p.ready));
}

/** Run sipp to completion (or timeout) and return its exit status and output. */
export function runSipp(opts: SippOptions): Promise<SippResult> {
  return startSipp(opts).done;
}

/** Kill every sipp started by this process that is still running; waits for them to exit. */
export async function killAllSipp(): Promise<void> {
  const all = [...running];
  for (const p of all) p.kill();
  await Promise.all(all.map((p) => p.done));
}

/** killAllSipp(), then remove the temporary working directories created so far (afterEach). */
export async function cleanupSipp(): Promise<void> {
  await killAllSipp();
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/**
 * Ports handed out by freePort() in this process, never handed out twice. They come from below
 * Linux's ephemeral range (32768-60999): the kernel gives ports from that range to outgoing
 * connections (Redis clients, SMPP binds, HTTP) of every test running at once, and one of those
 * can take a port between a test's pick and its listen, or while a daemon the test killed is
 * restarting on the same port (EADDRINUSE).
 */
const handedOut = new Set<number>();
const LOW = 20000;
const HIGH = 32767;

/** A port that is free for both UDP and TCP on `host` right now (bound, then released). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW + 1));
    if (handedOut.has(port)) continue;
    const tcpOk = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once("error", () => resolve(false));
      s.listen(port, host, () => s.close(() => resolve(true)));
    });
    if (!tcpOk) continue;
    const udpOk = await new Promise<boolean>((resolve) => {
      const u = dgram.createSocket(net.isIPv6(host) ? "udp6" : "udp4");
      u.once("error", () => {
        u.close();
        resolve(false);
      });
      u.bind(port, host, () => u.close(() => resolve(true)));
    });
    if (!udpOk) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error("no free port");
}

/** Absolute path of a scenario file in test/sip/scenarios. */
export function scenario(name: string): string {
  return path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "sip", "scenarios", name);
}

/** Short human summary of a result for assertion messages. */
export function describeResult(r: SippResult, extra?: SippProcess): string {
  const err = extra?.readFile("_errors.log");
  return `exit=${r.code} signal=${r.signal} timedOut=${r.timedOut}\nstderr: ${r.stderr.slice(-1500)}\nstdout tail: ${r.stdout.slice(-1500)}${err ? "\nerrors.log: " + err.slice(-2000) : ""}`;
}
