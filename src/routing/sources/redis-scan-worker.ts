/**
 * HSCAN of a large routes hash in a worker thread. The RESP decoding of ioredis costs about as much
 * as validating the entries; doing it on another core halves the main thread's share of a full
 * load. The worker posts batches of [key, json, key, json, …] strings; the main thread parses,
 * validates and builds. The caller reads the stream id before starting the scan.
 *
 * The worker is an eval worker (CommonJS text below) so that it runs the same way from the compiled
 * tree and from the TypeScript sources under the test runner.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { RedisEndpoint } from "./redis-client.js";

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { Redis, Cluster } = require(workerData.ioredis);
const ep = workerData.endpoint;
const common = { enableOfflineQueue: true, maxRetriesPerRequest: 0, retryStrategy: () => null, commandTimeout: workerData.commandTimeoutMs, connectTimeout: workerData.commandTimeoutMs };
if (ep.username !== undefined) common.username = ep.username;
if (ep.password !== undefined) common.password = ep.password;
if (ep.tls) common.tls = {};
let c;
if (ep.kind === "standalone") c = new Redis({ ...common, host: ep.host, port: ep.port, db: ep.db });
else if (ep.kind === "sentinel") c = new Redis({ ...common, sentinels: ep.sentinels, name: ep.master, db: ep.db, sentinelPassword: ep.sentinelPassword, sentinelRetryStrategy: () => null });
else c = new Cluster(ep.nodes, { redisOptions: common, clusterRetryStrategy: () => null });
c.on("error", () => {});
(async () => {
  try {
    const key = workerData.key;
    const count = String(workerData.count);
    let next = c.hscan(key, "0", "COUNT", count);
    for (;;) {
      const [cur, flat] = await next;
      if (cur !== "0") next = c.hscan(key, cur, "COUNT", count);
      parentPort.postMessage(flat);
      if (cur === "0") break;
    }
    parentPort.postMessage(null);
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  } finally {
    c.disconnect();
  }
})();
`;

export interface WorkerScanOptions {
  endpoint: RedisEndpoint;
  key: string;
  count: number;
  commandTimeoutMs: number;
  /** Called with each batch, in order. */
  onBatch: (flat: string[]) => void;
}

/** Scans the hash in a worker; resolves after the last batch was handed to onBatch. */
export function scanInWorker(opts: WorkerScanOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    let worker: Worker;
    try {
      const ioredis = createRequire(import.meta.url).resolve("ioredis");
      worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { ioredis, endpoint: opts.endpoint, key: opts.key, count: opts.count, commandTimeoutMs: opts.commandTimeoutMs },
      });
    } catch (err) {
      reject(err as Error);
      return;
    }
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      void worker.terminate();
      if (err) reject(err);
      else resolve();
    };
    worker.on("message", (m: string[] | null | { error: string }) => {
      if (settled) return;
      if (m === null) finish();
      else if (Array.isArray(m)) {
        try {
          opts.onBatch(m);
        } catch (err) {
          finish(err as Error);
        }
      } else finish(new Error(m.error));
    });
    worker.on("error", (err) => finish(err));
    worker.on("exit", (code) => finish(new Error(`scan worker exited (${code})`)));
  });
}
