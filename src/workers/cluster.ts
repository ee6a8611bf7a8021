/**
 * `didgate serve` with sip.workers > 1 (docs/sip.md "Workers"): a primary process forks N workers
 * (node:cluster). Every worker runs the SIP edge on the same listeners: the UDP socket is one
 * handle shared by all workers, which all send from it; only the readers (steer.ts udpReaders,
 * the last ceil(N/4)) read it, every worker while a reader is not serving (a shared socket wakes
 * every process reading it for each datagram). TCP/TLS connections are dealt round-robin by the
 * primary. A message read by a worker that does not own its transaction or dialog is handed to
 * the owner (steer.ts, handoff.ts), so the datagrams of one source, a trunk's single socket, are
 * spread over all of them. Worker 0 alone runs SMPP, delivery,
 * the HTTP API and the admin listener; its /metrics is the sum over every worker.
 *
 * The primary handles no traffic: it forwards SIGTERM/SIGINT (drain) and SIGHUP (reload) to the
 * workers, distributes the hand-off ports, answers worker 0's metrics requests, passes on a BYE
 * that a worker saw for a call held by another (its max_calls slots and call record, see
 * VoiceEdge.endedElsewhere), and forks a worker again when one dies after it had started.
 */
import cluster, { type Worker } from "node:cluster";
import { randomBytes } from "node:crypto";
import { AggregatorRegistry, Counter, Gauge, type Registry } from "prom-client";

/** One worker's registry as JSON (what the primary aggregates). */
type WorkerMetrics = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>;
import { Didgate } from "../app.js";
import type { LoadedConfig } from "../config/load.js";
import { loadConfig, resolvePath } from "../config/load.js";
import { loadDialogSecrets } from "../edge/dialog-secret.js";
import { createLogger } from "../ops/logger.js";
import type { SipMessage, Source } from "../sip/index.js";
import type { UdpSteer } from "../sip/transport.js";
import { errMessage } from "../util/errors.js";
import { onHup } from "../cli/hup.js";
import { Handoff } from "./handoff.js";
import { METHOD_LABELS, methodLabelIndex, ownerOf, readsUdp, scanMessage } from "./steer.js";

// not DIDGATE_*: those are config overrides (src/config/load.ts)
const INDEX_ENV = "DGW_WORKER_INDEX";
const COUNT_ENV = "DGW_WORKERS";
const CONFIG_ENV = "DGW_CONFIG_PATH";

/**
 * In a worker process: its index, the worker count and the config file, as the primary decided
 * them (a worker forked again later must not take its count or role from a changed file).
 * Undefined in any other process.
 */
export function workerEnv(env: NodeJS.ProcessEnv = process.env): { index: number; count: number; configPath: string | undefined } | undefined {
  if (!cluster.isWorker || env[COUNT_ENV] === undefined) return undefined;
  const count = Number(env[COUNT_ENV]);
  const index = Number(env[INDEX_ENV]);
  if (!Number.isInteger(count) || count < 2) throw new Error(`worker count ${String(env[COUNT_ENV])} out of range`);
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new Error(`worker index ${String(env[INDEX_ENV])} out of range`);
  const configPath = env[CONFIG_ENV];
  return { index, count, configPath: configPath === undefined || configPath === "" ? undefined : configPath };
}

type Msg =
  | { type: "didgate:handoff"; index: number; port: number }
  | { type: "didgate:peers"; ports: number[]; token: string; serving: number[] }
  | { type: "didgate:started"; index: number }
  | { type: "didgate:metrics-req"; id: number }
  | { type: "didgate:metrics-res"; id: number; body?: string; error?: string }
  | { type: "didgate:metrics-get"; id: number }
  | { type: "didgate:metrics-json"; id: number; metrics?: WorkerMetrics }
  | { type: "didgate:call-ended"; callId: string; byCallee: boolean }
  | { type: "didgate:workers-up"; up: number[] }
  | { type: "didgate:calls-req"; id: number }
  | { type: "didgate:calls-get"; id: number }
  | { type: "didgate:calls-part"; id: number; calls: number }
  | { type: "didgate:calls-res"; id: number; calls: number[] }
  | { type: "didgate:ping" }
  | { type: "didgate:pong" };

/** Longest Call-ID passed between the workers (longer ones are not passed: their slots expire). */
export const CALL_ID_MAX = 256;

/** A call-ended message's Call-ID and side, when well formed. */
export function callEnded(m: { callId?: unknown; byCallee?: unknown }): { callId: string; byCallee: boolean } | undefined {
  const { callId, byCallee } = m;
  if (typeof callId !== "string" || callId.length === 0 || callId.length > CALL_ID_MAX || typeof byCallee !== "boolean") return undefined;
  return { callId, byCallee };
}

/** How long the primary waits for the workers' metrics before answering with those it has. */
const METRICS_WAIT_MS = 3000;
/** How long the primary waits for the workers' calls in progress (/v1/status). */
const STATUS_WAIT_MS = 2000;

const WORKER_UP = "didgate_worker_up";
/** How often the primary asks each started worker for a sign of life. */
const HEARTBEAT_MS = 1000;
/** A started worker silent this long (stopped, or its event loop blocked) is counted as not up. */
export const STALL_MS = 3000;

/** The didgate_worker_up lines of a scrape: 1 for each worker whose metrics are in it. */
export function workerUpText(n: number, up: ReadonlySet<number>): string {
  let out = `# HELP ${WORKER_UP} 1 when the SIP worker's metrics are in this scrape; 0: not running, starting, or slower than 3 s to answer\n# TYPE ${WORKER_UP} gauge\n`;
  for (let i = 0; i < n; i++) out += `${WORKER_UP}{worker="${i}"} ${up.has(i) ? 1 : 0}\n`;
  return out;
}

function isMsg(m: unknown): m is Msg {
  return typeof m === "object" && m !== null && typeof (m as { type?: unknown }).type === "string" && (m as { type: string }).type.startsWith("didgate:");
}

/** The primary: fork `n` workers and supervise them. Resolves never (signals exit the process). */
export async function runPrimary(loaded: LoadedConfig, n: number): Promise<void> {
  const log = createLogger(loaded.config.log.level).child({ role: "primary" });
  const c = loaded.config;
  // the dialog secret file is made once here: workers read it, none races to create it
  loadDialogSecrets({ secret: c.sip.dialog_secret, previous: c.sip.dialog_secret_previous, stateDir: resolvePath(loaded.baseDir, c.state_dir), logger: log, shared: c.routes.redis !== undefined });
  let askSeq = 0;
  /** Questions to the workers in progress: those asked, what they answered (removed when done). */
  const asks = new Map<number, { asked: Set<number>; got: Map<number, unknown>; finish: () => void }>();
  /**
   * Ask every worker that is up (started and answering heartbeats) with `ask(id)`; `done` gets the
   * answers by worker once all have answered, or after `waitMs` with those that did (a worker that
   * is stopped or busy is left out rather than failing the question).
   */
  const gather = <T>(ask: (id: number) => Msg, waitMs: number, done: (got: Map<number, T>) => void): void => {
    const id = ++askSeq;
    const asked = new Set<number>();
    const got = new Map<number, unknown>();
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (!asks.delete(id)) return;
      if (timer !== undefined) clearTimeout(timer);
      done(got as Map<number, T>);
    };
    asks.set(id, { asked, got, finish });
    for (const i of upList()) {
      const w = byIndex.get(i);
      if (w === undefined || !w.isConnected()) continue;
      asked.add(i);
      w.send(ask(id));
    }
    if (asked.size === 0) finish();
    else timer = setTimeout(finish, waitMs);
  };
  /** Worker `index` answered question `id` (`value` undefined: it had nothing to give). */
  const answered = (id: number, index: number, value: unknown): void => {
    const a = asks.get(id);
    if (a === undefined || !a.asked.delete(index)) return;
    if (value !== undefined) a.got.set(index, value);
    if (a.asked.size === 0) a.finish();
  };
  /**
   * Every worker's metrics, aggregated (each gauge by its aggregator, the rest summed), plus
   * didgate_worker_up: a worker that does not answer within METRICS_WAIT_MS is left out.
   */
  const scrape = (): Promise<string> =>
    new Promise<string>((resolve, reject) =>
      gather<WorkerMetrics>((id) => ({ type: "didgate:metrics-get", id }), METRICS_WAIT_MS, (got) => {
        try {
          const reg = AggregatorRegistry.aggregate([...got.values()]);
          reg.metrics().then((body) => resolve(body + workerUpText(n, new Set(got.keys()))), reject);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      }),
    );
  /** Every worker's calls in progress, by index (-1: no answer within STATUS_WAIT_MS). */
  const gatherCalls = (done: (calls: number[]) => void): void =>
    gather<number>((id) => ({ type: "didgate:calls-get", id }), STATUS_WAIT_MS, (got) => {
      const calls = new Array<number>(n).fill(-1);
      for (const [i, c] of got) calls[i] = c;
      done(calls);
    });
  const ports: number[] = new Array<number>(n).fill(0);
  const byIndex = new Map<number, Worker>();
  const started = new Set<number>();
  /** Workers that have run once: one forked again that fails to start is retried, not fatal. */
  const everStarted = new Set<number>();
  /** Workers that were starting when a SIGHUP came: they get it once started. */
  const reloadPending = new Set<number>();
  // a per-boot secret in every hand-off frame: a local process that takes a dead worker's freed
  // port cannot inject frames (handoff.ts)
  const token = randomBytes(8).toString("hex");
  let peersComplete = false;
  let stopping = false;
  let exitCode = 0;

  /** When each started worker last answered a heartbeat (Date.now()). */
  const lastSeen = new Map<number, number>();
  /** Started workers that have not answered for STALL_MS: not up, and handed nothing. */
  const stalled = new Set<number>();
  /** The workers started and answering, in order. */
  const upList = (): number[] => [...started].filter((i) => !stalled.has(i)).sort((a, b) => a - b);
  /** Worker 0 (/readyz, /v1/status) learns which workers are up whenever that changes. */
  const tellUp = (): void => {
    const w0 = byIndex.get(0);
    if (w0 !== undefined && started.has(0) && w0.isConnected()) w0.send({ type: "didgate:workers-up", up: upList() } satisfies Msg);
  };
  /**
   * The hand-off ports to every worker; 0 for a worker that is gone. Datagrams are handed only to
   * the workers that have started (`serving`): one starting (again) has no SIP stack yet.
   */
  const broadcastPeers = (): void => {
    if (!peersComplete) {
      if (ports.some((p) => p === 0)) return;
      peersComplete = true;
    }
    const serving = upList();
    for (const w of byIndex.values()) if (w.isConnected()) w.send({ type: "didgate:peers", ports, token, serving } satisfies Msg);
  };

  const fork = (index: number, attempt = 0): void => {
    const w = cluster.fork({ [INDEX_ENV]: String(index), [COUNT_ENV]: String(n), [CONFIG_ENV]: loaded.path ?? "" });
    byIndex.set(index, w);
    log.info({ worker: index, pid: w.process.pid }, "worker forked");
    w.on("message", (m: unknown) => {
      if (!isMsg(m)) return;
      if (m.type === "didgate:handoff") {
        ports[index] = m.port;
        broadcastPeers();
      } else if (m.type === "didgate:pong") {
        lastSeen.set(index, Date.now());
        if (stalled.delete(index)) {
          log.info({ worker: index }, "worker answering again");
          tellUp();
          broadcastPeers();
        }
      } else if (m.type === "didgate:started") {
        started.add(index);
        lastSeen.set(index, Date.now());
        everStarted.add(index);
        if (reloadPending.delete(index)) w.process.kill("SIGHUP");
        tellUp();
        // the others hand it datagrams from now on
        broadcastPeers();
        if (started.size === n) log.info({ workers: n }, "didgate workers started");
      } else if (m.type === "didgate:metrics-json") {
        answered(m.id, index, m.metrics);
      } else if (m.type === "didgate:call-ended") {
        // a BYE passed by a worker that held nothing of the call: the one that does releases it
        const e = callEnded(m);
        if (e === undefined) return;
        for (const [i, o] of byIndex) if (i !== index && started.has(i) && o.isConnected()) o.send({ type: "didgate:call-ended", ...e } satisfies Msg);
      } else if (m.type === "didgate:calls-part") {
        answered(m.id, index, Number.isInteger(m.calls) && m.calls >= 0 ? m.calls : undefined);
      } else if (m.type === "didgate:calls-req") {
        gatherCalls((calls) => w.isConnected() && w.send({ type: "didgate:calls-res", id: m.id, calls } satisfies Msg));
      } else if (m.type === "didgate:metrics-req") {
        scrape().then(
          (body) => w.isConnected() && w.send({ type: "didgate:metrics-res", id: m.id, body } satisfies Msg),
          (err: unknown) => w.isConnected() && w.send({ type: "didgate:metrics-res", id: m.id, error: errMessage(err) } satisfies Msg),
        );
      }
    });
    w.on("exit", (code, signal) => {
      if (byIndex.get(index) === w) byIndex.delete(index);
      reloadPending.delete(index);
      // a scrape does not wait for a worker that is gone
      for (const a of asks.values()) if (a.asked.delete(index) && a.asked.size === 0) a.finish();
      if (stopping) {
        if (code !== 0) exitCode = 1;
        if (byIndex.size === 0) process.exit(exitCode);
        return;
      }
      const wasStarted = started.delete(index);
      lastSeen.delete(index);
      stalled.delete(index);
      ports[index] = 0;
      tellUp();
      // the others stop sending to (and accepting from) its port at once
      broadcastPeers();
      if (!wasStarted && everStarted.has(index)) {
        // forked again and could not start (say the config file is now invalid): keep trying
        const delay = Math.min(30_000, 1000 * 2 ** Math.min(attempt + 1, 5));
        log.error({ worker: index, code, signal, retry_ms: delay }, "worker failed to start again; retrying");
        setTimeout(() => {
          if (!stopping) fork(index, attempt + 1);
        }, delay).unref();
        return;
      }
      if (!wasStarted) {
        // a worker that could not start (a port in use, an unreachable Redis): give up
        log.error({ worker: index, code, signal }, "worker failed to start; stopping");
        exitCode = 1;
        stopAll("SIGTERM");
        return;
      }
      log.error({ worker: index, code, signal }, "worker died; starting it again");
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
  onHup(() => {
    // a worker still starting gets it once it has its handlers and has started
    for (const [i, w] of byIndex) {
      if (started.has(i)) w.process.kill("SIGHUP");
      else reloadPending.add(i);
    }
  });
  // a worker that stops answering (SIGSTOP, a blocked event loop) is not up: /readyz says so and
  // the others handle the datagrams it owns rather than hand them to it
  setInterval(() => {
    if (stopping) return;
    const now = Date.now();
    let changed = false;
    for (const [i, w] of byIndex) {
      if (!started.has(i) || !w.isConnected()) continue;
      w.send({ type: "didgate:ping" } satisfies Msg);
      if (!stalled.has(i) && now - (lastSeen.get(i) ?? now) > STALL_MS) {
        stalled.add(i);
        changed = true;
        log.error({ worker: i, silent_ms: now - lastSeen.get(i)! }, "worker not answering; counted as down");
      }
    }
    if (changed) {
      tellUp();
      broadcastPeers();
    }
  }, HEARTBEAT_MS).unref();
  for (let i = 0; i < n; i++) fork(i);
}

/**
 * A worker: open the hand-off socket, learn the others', then run the daemon's share. Its index,
 * the count and the config file come from the primary (workerEnv); the config is read here.
 */
export async function runWorker(): Promise<void> {
  const we = workerEnv();
  if (we === undefined) throw new Error("not a didgate worker process");
  const { index, count: n } = we;
  // signals first: the primary may pass a SIGTERM (or a SIGHUP) at any time while this starts
  let app: Didgate | undefined;
  let handoff: Handoff | undefined;
  let started = false;
  let reloadQueued = false;
  let stopping = false;
  const reload = (): void => {
    if (!started || app === undefined) {
      reloadQueued = true;
      return;
    }
    try {
      app.reload();
    } catch (err) {
      app.logger.error({ err: errMessage(err) }, "config reload failed");
    }
  };
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    const h = handoff;
    const closeHandoff = (): Promise<void> => (h === undefined ? Promise.resolve() : h.close());
    if (!started || app === undefined) {
      // not serving yet: nothing to drain
      void closeHandoff().then(() => process.exit(0));
      return;
    }
    app.logger.info({ signal }, "signal received, draining");
    app.stop().then(
      () => closeHandoff().then(() => process.exit(0)),
      (err: unknown) => {
        app!.logger.error({ err: errMessage(err) }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  onHup(reload);

  const loaded = loadConfig(we.configPath);
  const send = (m: Msg): void => {
    process.send?.(m);
  };
  const ho = await Handoff.open(index);
  handoff = ho;
  const pending = new Map<number, { resolve: (s: string) => void; reject: (e: Error) => void }>();
  /** Worker 0: the workers started, as the primary last said (its own start is the first). */
  let workersUp: number[] = [];
  const callsPending = new Map<number, (calls: number[]) => void>();
  /** The workers serving, as the primary last said (whether this one reads the shared UDP socket depends on it). */
  let serving: number[] = [];
  let readUdp: () => void = () => {};
  const peers = new Promise<void>((resolve) => {
    process.on("message", (m: unknown) => {
      if (!isMsg(m)) return;
      if (m.type === "didgate:peers") {
        serving = Array.isArray(m.serving) ? m.serving.filter((i) => Number.isInteger(i)) : [];
        ho.setPeers(m.ports, m.token, serving);
        readUdp();
        resolve();
      } else if (m.type === "didgate:metrics-get") {
        const reg = app?.registry;
        if (reg === undefined) send({ type: "didgate:metrics-json", id: m.id });
        else
          reg.getMetricsAsJSON().then(
            (metrics) => send({ type: "didgate:metrics-json", id: m.id, metrics }),
            () => send({ type: "didgate:metrics-json", id: m.id }),
          );
      } else if (m.type === "didgate:ping") {
        send({ type: "didgate:pong" });
      } else if (m.type === "didgate:call-ended") {
        const e = callEnded(m);
        if (e !== undefined) app?.voice?.endedElsewhere(e.callId, e.byCallee);
      } else if (m.type === "didgate:workers-up") {
        if (Array.isArray(m.up)) workersUp = m.up.filter((i) => Number.isInteger(i) && i >= 0 && i < n);
      } else if (m.type === "didgate:calls-get") {
        send({ type: "didgate:calls-part", id: m.id, calls: app?.voice?.status().calls ?? 0 });
      } else if (m.type === "didgate:calls-res") {
        const p = callsPending.get(m.id);
        if (p === undefined) return;
        callsPending.delete(m.id);
        p(Array.isArray(m.calls) ? m.calls : []);
      } else if (m.type === "didgate:metrics-res") {
        const p = pending.get(m.id);
        if (p === undefined) return;
        pending.delete(m.id);
        if (m.body !== undefined) p.resolve(m.body);
        else p.reject(new Error(m.error ?? "no metrics"));
      }
    });
  });
  send({ type: "didgate:handoff", index, port: ho.port });
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

  /** Calls in progress on each worker (-1: it did not answer in time). */
  const clusterCalls = (): Promise<number[]> =>
    new Promise((resolve) => {
      const id = ++seq;
      callsPending.set(id, resolve);
      setTimeout(() => {
        if (callsPending.delete(id)) resolve(new Array<number>(n).fill(-1));
      }, STATUS_WAIT_MS + 1000).unref();
      send({ type: "didgate:calls-req", id });
    });

  /**
   * Datagrams handed off, by kind (request, response) and method label: plain numbers on the path of
   * every datagram, folded into didgate_sip_worker_handoffs_total when it is scraped.
   */
  const handedOff = new Float64Array(2 * METHOD_LABELS.length);
  const countHandoff = (response: boolean, method: string): void => {
    handedOff[(response ? METHOD_LABELS.length : 0) + methodLabelIndex(method)]!++;
  };
  const steer: UdpSteer = (buf, address, port) => {
    const info = scanMessage(buf);
    if (info === null) return false;
    const owner = ownerOf(info, n);
    if (owner < 0 || owner === index) return false;
    if (!ho.send(owner, buf, address, port)) return false;
    countHandoff(info.response, info.method);
    return true;
  };

  /**
   * A CANCEL over UDP for an INVITE this worker does not hold. Requests are steered by Call-ID, but
   * an INVITE over TCP/TLS is held by whichever worker holds its connection, and one over UDP by
   * whichever got it while its owner was down, starting or not answering. The CANCEL goes round
   * the workers (hops: how many have looked); the last one answers it as one process would (481).
   */
  let ringHops = 0;
  const unmatchedCancel = (bytes: Buffer, m: SipMessage, src: Source): boolean => {
    if (m.topVia === null) return false;
    for (let k = 1; ringHops + k <= n - 1; k++) {
      if (ho.send((index + k) % n, bytes, src.address, src.port, ringHops + k)) {
        countHandoff(false, "CANCEL");
        return true;
      }
    }
    return false;
  };

  const logger = createLogger(loaded.config.log.level).child({ worker: index });
  const endCallElsewhere = (callId: string, byCallee: boolean): void => {
    if (callId.length <= CALL_ID_MAX) send({ type: "didgate:call-ended", callId, byCallee });
  };
  const a = new Didgate(loaded, { logger, worker: { index, count: n, steer, endCallElsewhere, unmatchedCancel, ...(index === 0 ? { clusterMetrics, clusterCalls, workersUp: () => workersUp } : {}) } });
  app = a;
  new Counter({
    name: "didgate_sip_worker_handoffs_total",
    help: "SIP datagrams a worker received on the shared socket and passed to the worker that owns their transaction or dialog",
    labelNames: ["kind", "method"],
    registers: [a.registry],
    collect() {
      this.reset();
      for (let i = 0; i < handedOff.length; i++) {
        const v = handedOff[i]!;
        if (v > 0) this.inc({ kind: i < METHOD_LABELS.length ? "request" : "response", method: METHOD_LABELS[i % METHOD_LABELS.length]! }, v);
      }
    },
  });
  new Counter({
    name: "didgate_sip_worker_handoff_frames_total",
    help: "Hand-off frames sent between SIP workers (each carries one or more of the datagrams counted by didgate_sip_worker_handoffs_total)",
    registers: [a.registry],
    collect() {
      this.reset();
      this.inc(ho.frames);
    },
  });
  ho.setReceiver((buf, address, port, hops) => {
    ringHops = hops;
    try {
      a.sipStack?.transport.receiveHandedOff(buf, address, port);
    } finally {
      ringHops = 0;
    }
  });

  if (stopping) return;
  await a.start();
  if (stopping) return;
  const readers = new Gauge({
    name: "didgate_sip_udp_readers",
    help: "SIP workers reading the shared UDP socket (the others only send from it; every worker reads while a reader is not serving)",
    registers: [a.registry],
  });
  let reading = true;
  let cannotPause = false;
  readUdp = () => {
    const t = a.sipStack?.transport;
    if (t === undefined || cannotPause) return;
    const want = readsUdp(index, n, serving);
    if (want === reading) return;
    if (!t.setUdpReading(want)) {
      cannotPause = true;
      // whatever could be paused reads again: this worker reads, as every worker did before
      t.setUdpReading(true);
      logger.warn("this Node cannot pause reading a UDP socket: every worker reads the shared SIP socket");
      return;
    }
    reading = want;
    readers.set(reading ? 1 : 0);
    logger.info({ reading }, reading ? "reading the shared SIP socket" : "not reading the shared SIP socket (other workers read it)");
  };
  readers.set(1);
  readUdp();
  started = true;
  send({ type: "didgate:started", index });
  if (reloadQueued) {
    reloadQueued = false;
    reload();
  }
}
