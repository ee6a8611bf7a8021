import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RecordWriter } from "../../src/records/writer.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";

const logger = pino({ level: "silent" });
let redis: TestRedis;
const dirs: string[] = [];

beforeAll(async () => {
  redis = await startRedis({ persistence: true });
});
afterAll(async () => {
  await redis.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "didgate-records-"));
  dirs.push(d);
  return d;
}

async function until(f: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await f()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("condition not met in time");
}

function client(): Redis {
  const c = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100, enableOfflineQueue: true });
  c.on("error", () => undefined);
  return c;
}

describe("call and message records", () => {
  it("writes records to the Redis stream in order, with type and id fields a consumer group can read", async () => {
    const c = client();
    const w = new RecordWriter({ stateDir: tmp(), redis: c, stream: "t1:cdr", logger, registry: new Registry() });
    for (let i = 0; i < 50; i++) w.write(i % 2 === 0 ? "call" : "message", { id: "r" + i, n: i });
    await until(async () => (await c.xlen("t1:cdr")) === 50);
    await c.xgroup("CREATE", "t1:cdr", "billing", "0");
    const got = (await c.xreadgroup("GROUP", "billing", "b1", "COUNT", 100, "STREAMS", "t1:cdr", ">")) as [string, [string, string[]][]][];
    const entries = got[0]![1];
    expect(entries.map((e) => e[1][3])).toEqual(Array.from({ length: 50 }, (_, i) => "r" + i));
    expect(entries[1]![1].slice(0, 2)).toEqual(["type", "message"]);
    expect(JSON.parse(entries[0]![1][5]!)).toEqual({ type: "call", id: "r0", n: 0 });
    expect(w.pending).toBe(0);
    await w.close();
    c.disconnect();
  });

  it("loses no record while Redis is down: they wait on disk and go out when it is back", async () => {
    const c = client();
    const w = new RecordWriter({ stateDir: tmp(), redis: c, stream: "t2:cdr", logger });
    w.write("call", { id: "before" });
    await until(async () => (await c.xlen("t2:cdr")) === 1);
    await redis.kill();
    for (let i = 0; i < 200; i++) w.write("call", { id: "during" + i });
    await new Promise((r) => setTimeout(r, 300));
    expect(w.pending).toBeGreaterThan(0);
    await redis.restart();
    await until(async () => {
      try {
        return (await c.xlen("t2:cdr")) === 201;
      } catch {
        return false;
      }
    }, 20_000);
    const ids = ((await c.xrange("t2:cdr", "-", "+")) as [string, string[]][]).map((e) => e[1][3]);
    expect(ids).toEqual(["before", ...Array.from({ length: 200 }, (_, i) => "during" + i)]);
    await w.close();
    c.disconnect();
  });

  it("a restart resumes from the saved offset: nothing lost, nothing sent twice", async () => {
    const dir = tmp();
    const c = client();
    const w1 = new RecordWriter({ stateDir: dir, redis: c, stream: "t3:cdr", logger });
    w1.write("call", { id: "a" });
    await until(async () => (await c.xlen("t3:cdr")) === 1);
    await w1.close();
    // a second writer on the same directory with records that were never sent (Redis refused them)
    const dead = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    dead.on("error", () => undefined);
    const w2 = new RecordWriter({ stateDir: dir, redis: dead, stream: "t3:cdr", logger });
    w2.write("call", { id: "b" });
    w2.write("message", { id: "c" });
    await new Promise((r) => setTimeout(r, 100));
    await w2.close(100);
    dead.disconnect();
    const w3 = new RecordWriter({ stateDir: dir, redis: c, stream: "t3:cdr", logger });
    await until(async () => (await c.xlen("t3:cdr")) === 3);
    await new Promise((r) => setTimeout(r, 100));
    expect(((await c.xrange("t3:cdr", "-", "+")) as [string, string[]][]).map((e) => e[1][3])).toEqual(["a", "b", "c"]);
    await w3.close();
    c.disconnect();
  });

  it("keeps a rotated JSON-lines copy and calls the record hook", async () => {
    const dir = tmp();
    const seen: string[] = [];
    const w = new RecordWriter({ stateDir: dir, stream: "x", logger, jsonl: { path: join(dir, "cdr.jsonl"), maxBytes: 400, keep: 2 }, onRecord: (t, r) => seen.push(t + ":" + String(r.id)) });
    for (let i = 0; i < 20; i++) w.write("call", { id: "j" + i, pad: "x".repeat(40) });
    await w.close();
    expect(seen).toHaveLength(20);
    expect(existsSync(join(dir, "cdr.jsonl.1"))).toBe(true);
    expect(existsSync(join(dir, "cdr.jsonl.2"))).toBe(true);
    expect(existsSync(join(dir, "cdr.jsonl.3"))).toBe(false);
    const last = readFileSync(join(dir, "cdr.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).id);
    expect(last[last.length - 1]).toBe("j19");
  });
});
