/**
 * Failures visible at the default log level, and `didgate messages pending|show` finding a stuck
 * message: a real redis-server, a real receiver that fails, the CLI spawned from dist/.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Delivery } from "../../src/delivery/delivery.js";
import { RedisConnector } from "../../src/redis/client.js";
import { tempDir } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { startReceiver, type Receiver } from "./receiver.js";
import { freshPrefix, job, until } from "./util.js";

let redis: TestRedis;
let rx: Receiver | undefined;
const open: Delivery[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  for (const d of open.splice(0)) await d.close();
  await rx?.close();
  rx = undefined;
});

/** A logger at the default level (info) writing JSON lines into `lines`. */
function infoLogger() {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

function delivery(prefix: string | undefined, logger: pino.Logger, retryMs: number): Delivery {
  const d = new Delivery({
    ...(prefix !== undefined ? { redis: { connector: RedisConnector.fromUrl(redis.url), prefix, visibility_ms: 60_000, reclaim_interval_ms: 200, retry_poll_ms: 100, block_ms: 200 } } : {}),
    webhooks: { secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", timeout_ms: 2000, max_age_s: 3600, max_in_flight: 4, retry_base_ms: retryMs, retry_max_ms: retryMs, retry_min_ms: retryMs, allow_private: ["127.0.0.0/8"] },
    logger,
    registry: new Registry(),
    instanceId: "edge-test",
    direct_wait_ms: 2000,
  });
  open.push(d);
  return d;
}

const CLI = "dist/src/cli.js";
function cli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { PATH: process.env.PATH ?? "" }, timeout: 30_000 });
}

describe("delivery failures at the default log level", () => {
  it("spool: a webhook failure is a warning with the status and the retry time; the dead letter too", async () => {
    rx = await startReceiver(() => ({ status: 503 }));
    const { logger, lines } = infoLogger();
    const d = delivery(freshPrefix(), logger, 100);
    await d.start();
    expect(await d.accept(job(1, { webhook: rx.url + "/hook?token=secret-in-query" }))).toBe("accepted");
    await until(() => lines.some((l) => l.msg === "delivery failed; retry scheduled"), 10_000, "warn line");
    const w = lines.find((l) => l.msg === "delivery failed; retry scheduled")!;
    expect(w.level).toBe(40);
    expect(w).toMatchObject({ msg_id: "msg_1", target: "webhook", reason: "http 503", attempts: 1 });
    expect(Date.parse(w.retry_at)).toBeGreaterThan(0);
    expect(w.retry_in_ms).toBeGreaterThan(0);
    expect(w.webhook).toBe(rx.url + "/hook");
    expect(JSON.stringify(lines)).not.toContain("secret-in-query");

    // 410: dead-lettered at once, at warn.
    rx.respond = () => ({ status: 410 });
    await until(() => lines.some((l) => l.msg === "message dead-lettered"), 10_000, "dead letter line");
    expect(lines.find((l) => l.msg === "message dead-lettered")).toMatchObject({ level: 40, msg_id: "msg_1", reason: "http 410" });
  });

  it("direct mode: a failed delivery answered with a temporary error is a warning", async () => {
    rx = await startReceiver(() => ({ status: 500 }));
    const { logger, lines } = infoLogger();
    const d = delivery(undefined, logger, 100);
    expect(await d.accept(job(2, { webhook: rx.url }))).toBe("temporary");
    await new Promise((r) => setImmediate(r));
    expect(lines.find((l) => l.msg.startsWith("direct delivery failed"))).toMatchObject({ level: 40, msg_id: "msg_2", reason: "http 500" });
  });
});

describe("didgate messages pending|show", () => {
  it("lists a stuck message with its age and last error, and finds it by id", async () => {
    rx = await startReceiver(() => ({ status: 500 }));
    const prefix = freshPrefix();
    const { logger } = infoLogger();
    // Retries an hour apart: after the first failure the message waits in the retry schedule.
    const d = delivery(prefix, logger, 3_600_000);
    await d.start();
    const stuck = job(7, { webhook: rx.url, webhookSecret: "whsec_route-secret" }, "msg_stuck");
    expect(await d.accept(stuck)).toBe("accepted");
    await until(() => rx!.received.length >= 1, 10_000, "first attempt");

    const dir = tempDir();
    const cfg = join(dir, "didgate.yaml");
    writeFileSync(cfg, `routes:\n  file: routes.yaml\n  redis: { url: "${redis.url}", prefix: "${prefix}" }\n`);
    await until(() => {
      const r = cli(["messages", "pending", "--json", "--config", cfg]);
      const j = JSON.parse(r.stdout) as { messages: Record<string, any>[] };
      return j.messages.some((m) => m.id === stuck.id && m.state === "retry");
    }, 15_000, "retry state");
    const r = cli(["messages", "pending", "--json", "--config", cfg]);
    expect(r.status).toBe(0);
    const m = (JSON.parse(r.stdout) as { messages: Record<string, any>[] }).messages.find((x) => x.id === stuck.id)!;
    expect(m).toMatchObject({ state: "retry", to: "+15125550100", webhook: rx.url, attempts: 1, lastError: "http 500" });
    expect(m.ageS).toBeGreaterThanOrEqual(0);
    expect(m.nextAttemptAt).toBeGreaterThan(Date.now());
    expect(r.stdout).not.toContain("route-secret");

    const text = cli(["messages", "pending", "--config", cfg]);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/msg_stuck_7 {2}retry {2}age=\d+s {2}attempts=1/);
    expect(text.stdout).toContain("last error: http 500");
    expect(text.stdout).toContain("1 waiting for a retry");

    const show = cli(["messages", "show", stuck.id, "--json", "--config", cfg]);
    expect(show.status).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({ id: stuck.id, state: "retry", lastError: "http 500" });
    const none = cli(["messages", "show", "msg_nope", "--config", cfg]);
    expect(none.status).toBe(1);
    expect(none.stderr).toContain("not in the spool");

    // Without Redis: the CLI says where pending messages are instead.
    writeFileSync(cfg, "routes:\n  file: routes.yaml\n");
    const direct = cli(["messages", "pending", "--config", cfg]);
    expect(direct.status).toBe(1);
    expect(direct.stderr).toContain("direct mode");
  });
});
