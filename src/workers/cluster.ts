/**
 * `didgate serve` with sip.workers > 1 (docs/sip.md "Workers"): a primary process forks N workers
 * (node:cluster). Every worker runs the SIP edge on the same listeners: the UDP socket is one
 * handle shared by all workers (the kernel wakes one of them per datagram, so the datagrams of one
 * source, a trunk's single socket, are spread over all of them), TCP/TLS connections are dealt
 * round-robin by the primary. A message that lands on a worker that does not own its transaction
 * or dialog is handed to the owner (steer.ts, handoff.ts). Worker 0 alone runs SMPP, delivery,
 * the HTTP API and the admin listener; its /metrics is the sum over every worker.
 *
 * The primary handles no traffic: it forwards SIGTERM/SIGINT (drain) and SIGHUP (reload) to the
 * workers, distributes the hand-off ports, answers worker 0's metrics requests, and forks a
 * worker again when one dies after it had started.
 */
import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry, Counter } from "prom-client";
import { Didgate } from "../app.js";
import type { LoadedConfig } from "../config/load.js";
import { resolvePath } from "../config/load.js";
import { loadDialogSecrets } from "../edge/dialog-secret.js";
import { createLogger } from "../ops/logger.js";
import type { UdpSteer } from "../sip/transport.js";
import { errMessage } from "../util/errors.js";
import { Handoff } from "./handoff.js";
import { methodLabel, ownerOf, scanMessage } from "./steer.js";

// not DIDGATE_*: those are config overrides (src/config/load.ts)
const INDEX_ENV = "DGW_WORKER_INDEX";

type Msg =
  | { type: "didgate:handoff"; index: number; port: number }
  | { type: "didgate:peers"; ports: number[] }
  | { type: "didgate:started"; index: number }
  | { type: "didgate:metrics-req"; id: number }
  | { type: "didgate:metrics-res"; id: number; body?: string; error?: string };

function isMsg(m: unknown): m is Msg {
  return typeof m === "object" && m !== null && typeof (m as { type?: unknown }).type === "string" && (m as { type: string }).type.startsWith("didgate:");
}

/** The primary: fork `n` workers and supervise them. Resolves never (signals exit the process). */
export async function runPrimary(loaded: LoadedConfig, n: number): Promise<void> {
  const log = createLogger(loaded.config.log.level).child({ role: "primary" });
  const c = loaded.config;
  // the dialog secret file is made once here: workers read it, none races to create it
  loadDialogSecrets({ secret: c.sip.dialog_secret, previous: c.sip.dialog_secret_previous, stateDir: resolvePath(loaded.baseDir, c.state_dir), logger: log, shared: c.routes.redis !== undefined });
  const aggregator = new AggregatorRegistry();
  const ports: number[] = new Array<number>(n).fill(0);
  const byIndex = new Map<number, Worker>();
  const started = new Set<number>();
  let stopping = false;
  let exitCode = 0;

  const broadcastPeers = (): void => {
    if (ports.some((p) => p === 0)) return;
    for (const w of byIndex.values()) if (w.isConnected()) w.send({ type: "didgate:peers", ports } satisfies Msg);
  };

  const fork = (index: number): void => {
    const w = cluster.fork({ [INDEX_ENV]: String(index) });
    byIndex.set(index, w);
    w.on("message", (m: unknown) => {
      if (!isMsg(m)) return;
      if (m.type === "didgate:handoff") {
        ports[index] = m.port;
        broadcastPeers();
      } else if (m.type === "didgate:started") {
        started.add(index);
        if (started.size === n) log.info({ workers: n }, "didgate workers started");
      } else if (m.type === "didgate:metrics-req") {
        aggregator.clusterMetrics().then(
          (body) => w.isConnected() && w.send({ type: "didgate:metrics-res", id: m.id, body } satisfies Msg),
          (err: unknown) => w.isConnected() && w.send({ type: "didgate:metrics-res", id: m.id, error: errMessage(err) } satisfies Msg),
        );
      }
    });
    w.on("exit", (code, signal) => {
      if (byIndex.get(index) === w) byIndex.delete(index);
      if (stopping) {
        if (code !== 0) exitCode = 1;
        if (byIndex.size === 0) process.exit(exitCode);
        return;
      }
      if (!started.has(index)) {
        // a worker that could not start (a port in use, an unreachable Redis): give up
        log.error({ worker: index, code, signal }, "worker failed to start; stopping");
        exitCode = 1;
        stopAll("SIGTERM");
        return;
      }
      log.error({ worker: index, code, signal }, "worker died; starting it again");
      started.delete(index);
      ports[index] = 0;
      setTimeout(() => {
        if (!stopping) fork(index);
      }, 1000).unref();
    });
  };

  const stopAll = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "signal received, draining the workers");
    if (byIndex.size === 0) process.exit(exitCode);
    for (const w of byIndex.values()) w.process.kill("SIGTERM");
  };
  process.on("SIGTERM", () => stopAll("SIGTERM"));
  process.on("SIGINT", () => stopAll("SIGINT"));
  process.on("SIGHUP", () => {
    for (const w of byIndex.values()) w.process.kill("SIGHUP");
  });
  for (let i = 0; i < n; i++) fork(i);
}

/** A worker: open the hand-off socket, learn the others', then run the daemon's share. */
export async function runWorker(loaded: LoadedConfig, n: number): Promise<void> {
  const index = Number(process.env[INDEX_ENV]);
  if (!Number.isInteger(index) || index < 0 || index >= n) throw new Error(`worker index ${String(process.env[INDEX_ENV])} out of range`);
  const send = (m: Msg): void => {
    process.send?.(m);
  };
  const handoff = await Handoff.open(index);
  const pending = new Map<number, { resolve: (s: string) => void; reject: (e: Error) => void }>();
  const peers = new Promise<void>((resolve) => {
    process.on("message", (m: unknown) => {
      if (!isMsg(m)) return;
      if (m.type === "didgate:peers") {
        handoff.setPeers(m.ports);
        resolve();
      } else if (m.type === "didgate:metrics-res") {
        const p = pending.get(m.id);
        if (p === undefined) return;
        pending.delete(m.id);
        if (m.body !== undefined) p.resolve(m.body);
        else p.reject(new Error(m.error ?? "no metrics"));
      }
    });
  });
  send({ type: "didgate:handoff", index, port: handoff.port });
  await peers;

  let seq = 0;
  const clusterMetrics = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve, reject });
      setTimeout(() => {
        if (pending.delete(id)) reject(new Error("metrics of the workers timed out"));
      }, 6000).unref();
      send({ type: "didgate:metrics-req", id });
    });

  let handoffs: Counter<"kind" | "method"> | undefined;
  const steer: UdpSteer = (buf, address, port) => {
    const info = scanMessage(buf);
    if (info === null) return false;
    const owner = ownerOf(info, n);
    if (owner < 0 || owner === index) return false;
    if (!handoff.send(owner, buf, address, port)) return false;
    handoffs?.inc({ kind: info.response ? "response" : "request", method: methodLabel(info.method) });
    return true;
  };

  const logger = createLogger(loaded.config.log.level).child({ worker: index });
  const app = new Didgate(loaded, { logger, worker: { index, count: n, steer, ...(index === 0 ? { clusterMetrics } : {}) } });
  handoffs = new Counter({
    name: "didgate_sip_worker_handoffs_total",
    help: "SIP datagrams a worker received on the shared socket and passed to the worker that owns their transaction or dialog",
    labelNames: ["kind", "method"],
    registers: [app.registry],
  });
  AggregatorRegistry.setRegistries([app.registry]);
  // its constructor installs the worker's answer to the primary's metrics requests
  new AggregatorRegistry();
  handoff.setReceiver((buf, address, port) => app.sipStack?.transport.receiveHandedOff(buf, address, port));

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    app.logger.info({ signal }, "signal received, draining");
    app.stop().then(
      () => handoff.close().then(() => process.exit(0)),
      (err: unknown) => {
        app.logger.error({ err: errMessage(err) }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", () => {
    try {
      app.reload();
    } catch (err) {
      app.logger.error({ err: errMessage(err) }, "config reload failed");
    }
  });
  await app.start();
  send({ type: "didgate:started", index });
}
