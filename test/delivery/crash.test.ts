/**
 * An edge killed with SIGKILL while messages are in flight: every message it acknowledged is still
 * delivered, by another edge (XAUTOCLAIM) or by itself after a restart (its own pending entries).
 * The edge runs in a child process from dist/ (compiled here when stale).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Delivery } from "../../src/delivery/delivery.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { startReceiver, type Receiver } from "./receiver.js";
import { SECRET, freshPrefix, job, makeDelivery, until } from "./util.js";

const ROOT = join(import.meta.dirname, "..", "..");
const FIXTURE_TS = join(ROOT, "test/delivery/fixtures/spool-worker.ts");
const FIXTURE_JS = join(ROOT, "dist/test/delivery/fixtures/spool-worker.js");

function mtime(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

/** Compile the worker and src/delivery into dist/ when dist is older than the sources. */
function ensureBuilt(): void {
  const srcDir = join(ROOT, "src/delivery");
  const newest = Math.max(mtime(FIXTURE_TS), ...readdirSync(srcDir).map((f) => mtime(join(srcDir, f))));
  if (mtime(FIXTURE_JS) >= newest) return;
  const r = spawnSync(
    process.execPath,
    [join(ROOT, "node_modules/typescript/bin/tsc"), "--outDir", "dist", "--rootDir", ".", "--module", "nodenext", "--moduleResolution", "nodenext",
      "--target", "es2022", "--lib", "es2023", "--strict", "--skipLibCheck", "--esModuleInterop", "--types", "node", "--sourceMap", FIXTURE_TS],
    { cwd: ROOT, encoding: "utf8", timeout: 110_000 },
  );
  if (r.status !== 0 && mtime(FIXTURE_JS) < newest) throw new Error(`could not compile the worker: ${r.stdout}${r.stderr}`);
}

interface Worker {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  exited: Promise<void>;
}

const children: ChildProcess[] = [];

function startWorker(env: Record<string, string>): Worker {
  const child = spawn(process.execPath, [FIXTURE_JS], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  const lines: Record<string, unknown>[] = [];
  let buf = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ raw: line });
      }
    }
  });
  child.stderr!.on("data", (d: Buffer) => process.stderr.write(d));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return { child, lines, exited };
}

async function kill9(w: Worker): Promise<void> {
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL");
  await w.exited;
}

let redis: TestRedis;
let rx: Receiver | undefined;
const open: Delivery[] = [];

beforeAll(async () => {
  ensureBuilt();
  redis = await startRedis();
}, 120_000);
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once("exit", r));
      c.kill("SIGKILL");
      await gone;
    }
  }
  for (const d of open.splice(0)) await d.close();
  await rx?.close();
  rx = undefined;
});

/** An edge accepts 30 messages, starts delivering 10 of them (the receiver hangs), and is killed. */
async function crashWithMessagesInFlight(prefix: string): Promise<string[]> {
  rx = await startReceiver(() => ({ status: 200, delayMs: 60_000 }));
  const jobs = Array.from({ length: 30 }, (_, i) => job(i, { webhook: rx!.url }));
  const w = startWorker({
    REDIS_URL: redis.url, PREFIX: prefix, INSTANCE: "edge-a", SECRET, VISIBILITY_MS: "60000", TIMEOUT_MS: "30000", MAX_IN_FLIGHT: "10",
    ACCEPT: JSON.stringify(jobs),
  });
  await until(() => w.lines.some((l) => l.ready === true), 15_000, "worker ready");
  const accepted = w.lines.filter((l) => l.outcome === "accepted").map((l) => String(l.id));
  expect(accepted).toHaveLength(30);
  await rx.until(() => rx!.received.length >= 10);
  await kill9(w);
  expect(rx.delivered).toHaveLength(0);
  rx.respond = () => ({ status: 200 });
  return accepted;
}

describe("edge killed with messages in flight", () => {
  it("another edge reclaims them (XAUTOCLAIM) and delivers every acknowledged message", async () => {
    const prefix = freshPrefix();
    const accepted = await crashWithMessagesInFlight(prefix);
    const inFlightAtCrash = new Set(rx!.received.map((r) => r.id));
    const b = makeDelivery(redis.url, prefix, { instanceId: "edge-b", redisOver: { visibility_ms: 500, reclaim_interval_ms: 200 } });
    open.push(b.delivery);
    await b.delivery.start();
    await rx!.until(() => rx!.delivered.length >= 30);
    expect([...rx!.delivered].sort()).toEqual([...accepted].sort());
    expect(new Set(rx!.delivered).size).toBe(30);
    // The ones in flight at the crash came twice, with the same webhook-id.
    for (const id of inFlightAtCrash) expect(rx!.received.filter((r) => r.id === id).length).toBe(2);
  });

  it("the same edge restarted delivers its own pending messages at once", async () => {
    const prefix = freshPrefix();
    const accepted = await crashWithMessagesInFlight(prefix);
    // Visibility 60 s: reclaiming cannot be what delivers them within the test's time.
    const w = startWorker({ REDIS_URL: redis.url, PREFIX: prefix, INSTANCE: "edge-a", SECRET, VISIBILITY_MS: "60000", MAX_IN_FLIGHT: "10" });
    await rx!.until(() => rx!.delivered.length >= 30, 20_000);
    expect([...rx!.delivered].sort()).toEqual([...accepted].sort());
    await kill9(w);
  });
});
