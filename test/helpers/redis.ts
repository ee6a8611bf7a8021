/**
 * A real redis-server for tests, on a free loopback port, in its own temp dir. Never touches the
 * machine's 6379. Kill it with stop(); restart() brings it back on the same port with the same
 * directory (with `persistence: true`, with the data acknowledged before the kill).
 *
 *   const r = await startRedis();                 // no persistence
 *   const r = await startRedis({ persistence: true }); // AOF, fsync always: survives kill -9
 *   r.url; r.port; await r.cli("HGETALL", "k"); await r.kill(); await r.restart(); await r.stop();
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort as sippFreePort } from "./sipp.js";

export interface RedisServerOptions {
  /** Append-only file with fsync on every write, so data survives kill -9 and restart(). */
  persistence?: boolean;
  /** Extra redis-server arguments, e.g. ["--maxmemory", "10mb"]. */
  args?: string[];
}

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Runs redis-cli against this server; resolves with stdout (rejects on a non-zero exit). */
  cli(...args: string[]): Promise<string>;
  /** Runs redis-cli with commands on stdin (one per line, one connection: MULTI/EXEC works). */
  cliScript(script: string): Promise<string>;
  /** SIGKILL the server (like a crash); resolves when the process is gone. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and dir; resolves when it answers PING. */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT the server: a store that stalls (connections stay open, nothing answers). */
  pause(): void;
  resume(): void;
  /** Kills the server and removes its directory. */
  stop(): Promise<void>;
}

/** A free loopback port below the ephemeral range (see freePort in sipp.ts, which this is). */
export async function freePort(): Promise<number> {
  return sippFreePort();
}

function ping(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: "127.0.0.1", port });
    let buf = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("\r\n")) done(buf.startsWith("+PONG"));
    });
    sock.on("error", () => done(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startRedis(opts: RedisServerOptions = {}): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), "didgate-redis-"));
  let child: ChildProcess | undefined;
  let port = 0;

  const args = (p: number) => [
    "--port", String(p),
    "--bind", "127.0.0.1",
    "--dir", dir,
    "--save", "",
    "--daemonize", "no",
    "--logfile", join(dir, "redis.log"),
    ...(opts.persistence ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]),
    ...(opts.args ?? []),
  ];

  const launch = async (p: number): Promise<boolean> => {
    const c = spawn("redis-server", args(p), { stdio: "ignore" });
    child = c;
    let exited = false;
    c.once("exit", () => (exited = true));
    c.once("error", () => (exited = true));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (exited) return false;
      if (await ping(p, 500)) return true;
      await sleep(20);
    }
    c.kill("SIGKILL");
    return false;
  };

  const killChild = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve());
      c.kill("SIGKILL");
    });
  };

  for (let tries = 0; ; tries++) {
    port = await freePort();
    if (await launch(port)) break;
    await killChild();
    if (tries >= 4) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error("could not start redis-server (is it installed?)");
    }
  }

  const runCli = (a: string[], stdin?: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const c = spawn("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...a], { stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
      let out = "";
      let err = "";
      c.stdout!.on("data", (d) => (out += d));
      c.stderr!.on("data", (d) => (err += d));
      c.on("error", reject);
      c.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`redis-cli ${a.join(" ")}: exit ${code}: ${err}`))));
      if (c.stdin) {
        c.stdin.on("error", () => undefined);
        c.stdin.end(stdin);
      }
    });

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    cli: (...a: string[]) => runCli(a),
    cliScript: (script: string) => runCli([], script),
    kill: killChild,
    pause: () => void child?.kill("SIGSTOP"),
    resume: () => void child?.kill("SIGCONT"),
    restart: async () => {
      await killChild();
      for (let i = 0; i < 50; i++) {
        if (await launch(port)) return;
        await killChild();
        await sleep(100);
      }
      throw new Error(`could not restart redis-server on port ${port}`);
    },
    stop: async () => {
      await killChild();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestSentinel {
  readonly port: number;
  /** redis-sentinel://127.0.0.1:PORT/MASTER */
  readonly url: string;
  stop(): Promise<void>;
}

/** A Redis Sentinel (redis-server --sentinel) monitoring `master` under the name `name`. */
export async function startSentinel(master: TestRedis, name = "mymaster"): Promise<TestSentinel> {
  const dir = mkdtempSync(join(tmpdir(), "didgate-sentinel-"));
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const conf = join(dir, "sentinel.conf");
    writeFileSync(
      conf,
      [`port ${port}`, "bind 127.0.0.1", `dir ${dir}`, `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`, `sentinel down-after-milliseconds ${name} 5000`, ""].join("\n"),
    );
    const c = spawn("redis-server", [conf, "--sentinel", "--logfile", join(dir, "sentinel.log")], { stdio: "ignore" });
    let exited = false;
    c.once("exit", () => (exited = true));
    c.once("error", () => (exited = true));
    const deadline = Date.now() + 10_000;
    let up = false;
    while (Date.now() < deadline && !exited) {
      if (await ping(port, 500)) {
        up = true;
        break;
      }
      await sleep(20);
    }
    const stop = async () => {
      if (c.exitCode === null && c.signalCode === null) {
        await new Promise<void>((resolve) => {
          c.once("exit", () => resolve());
          c.kill("SIGKILL");
        });
      }
    };
    if (up) {
      return {
        port,
        url: `redis-sentinel://127.0.0.1:${port}/${name}`,
        stop: async () => {
          await stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    await stop();
    if (tries >= 4) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error("could not start redis sentinel");
    }
  }
}

/**
 * A 3-master Redis Cluster of real redis-servers; resolves once every node reports
 * cluster_state:ok. stop() kills them all.
 */
export async function startCluster(): Promise<{ nodes: TestRedis[]; url: string; stop(): Promise<void> }> {
  const nodes: TestRedis[] = [];
  const stop = async () => {
    for (const n of nodes) await n.stop();
  };
  try {
    for (let i = 0; i < 3; i++) nodes.push(await startRedis({ args: ["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"] }));
    await nodes[0]!.cli("--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-yes");
    const deadline = Date.now() + 20_000;
    for (;;) {
      const infos = await Promise.all(nodes.map((n) => n.cli("CLUSTER", "INFO")));
      if (infos.every((i) => i.includes("cluster_state:ok"))) break;
      if (Date.now() > deadline) throw new Error("timed out waiting for cluster_state:ok");
      await sleep(50);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, url: `redis-cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(",")}`, stop };
}
