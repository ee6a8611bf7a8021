/**
 * HSCAN of a large routes hash in a worker thread. The RESP decoding of ioredis, the JSON syntax
 * check and the dedup of identical entries run on another core; the main thread gets per HSCAN
 * batch a few large values instead of thousands of small strings (a posted string costs the
 * receiver about as much as a JSON.parse of it):
 *   keys   the well-formed keys of the batch joined by "\n" (a valid key has no "\n")
 *   json   "[e1,e2,…]": the entry texts not seen before in this scan, each one balanced {…} (so a
 *          successful parse has exactly one element per entry), to parse with one JSON.parse;
 *          `ends[j]` is the offset just after e_j, to parse them one by one if the whole fails
 *   refs   per key, the id of its entry; the entries in `json` have ids firstId, firstId + 1, …
 *          in order, and an entry text seen before keeps its first id (identical entries share
 *          one parsed route)
 *   odd    [key, text, …] of entries whose text is not one balanced {…} (to parse on their own)
 *   bad    keys that are malformed
 * The main thread validates and compiles the routes and builds the table. The caller reads the
 * stream id before starting the scan.
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
    const seen = new Map();
    let nextId = 0;
    const validKey = /^(\\*|\\+[0-9]{1,15}\\*?)$/;
    // True when t is one balanced {...} (brackets outside strings; JSON string escapes), so that
    // joining such texts with "," keeps one array element per text.
    const isObjectText = (t) => {
      let i = 0;
      const n = t.length;
      while (i < n && t.charCodeAt(i) <= 32) i++;
      if (t.charCodeAt(i) !== 123) return false;
      let depth = 0;
      for (; i < n; i++) {
        const c = t.charCodeAt(i);
        if (c === 34) {
          for (i++; i < n; i++) {
            const d = t.charCodeAt(i);
            if (d === 92) i++;
            else if (d === 34) break;
          }
          if (i >= n) return false;
        } else if (c === 123 || c === 91) depth++;
        else if (c === 125 || c === 93) {
          if (--depth === 0) break;
        }
      }
      for (i++; i < n; i++) if (t.charCodeAt(i) > 32) return false;
      return depth === 0;
    };
    let next = c.hscan(key, "0", "COUNT", count);
    for (;;) {
      const [cur, flat] = await next;
      if (cur !== "0") next = c.hscan(key, cur, "COUNT", count);
      const keys = [];
      const fresh = [];
      const refs = new Int32Array(flat.length >> 1);
      const ends = new Int32Array(flat.length >> 1);
      const odd = [];
      const bad = [];
      const firstId = nextId;
      let n = 0;
      let pos = 1;
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const k = flat[i];
        const v = flat[i + 1];
        if (!validKey.test(k)) {
          bad.push(k);
          continue;
        }
        let id = seen.get(v);
        if (id === undefined) {
          if (!isObjectText(v)) {
            odd.push(k, v);
            continue;
          }
          if (seen.size >= 65536) seen.clear();
          pos += (fresh.length > 0 ? 1 : 0) + v.length;
          ends[fresh.length] = pos;
          id = nextId++;
          seen.set(v, id);
          fresh.push(v);
        }
        keys.push(k);
        refs[n++] = id;
      }
      const out = { keys: keys.join("\\n"), json: "[" + fresh.join(",") + "]", ends: ends.slice(0, fresh.length), refs: refs.slice(0, n), firstId, odd, bad };
      parentPort.postMessage(out, [out.refs.buffer, out.ends.buffer]);
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

/** One HSCAN batch as the worker posts it (see the top of this file). */
export interface ScanBatch {
  keys: string;
  json: string;
  ends: Int32Array;
  refs: Int32Array;
  firstId: number;
  odd: string[];
  bad: string[];
}

export interface WorkerScanOptions {
  endpoint: RedisEndpoint;
  key: string;
  count: number;
  commandTimeoutMs: number;
  /** Called with each batch, in order. */
  onBatch: (batch: ScanBatch) => void;
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
    worker.on("message", (m: ScanBatch | null | { error: string }) => {
      if (settled) return;
      if (m === null) finish();
      else if ("keys" in m) {
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
