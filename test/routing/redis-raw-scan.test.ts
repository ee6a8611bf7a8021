/**
 * The full load's own HSCAN connection and RESP reader (src/routing/sources/redis-raw-scan.ts):
 * the reader against replies cut at every byte, and the scan against a real redis-server (ACL
 * user, database number, many batches, invalid entries, a server that refuses it).
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeCommand, rawHscan, RedisReplyError, RespReader } from "../../src/routing/sources/redis-raw-scan.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { makeEdge, metricValue, redisConfig, targetOf, voice, writerFor } from "./redis-helpers.js";

type Value = string | null | Value[] | { error: string };

/** RESP2 encoding of a test value (bulk strings, null bulk, arrays, errors). */
function encode(v: Value): string {
  if (v === null) return "$-1\r\n";
  if (typeof v === "string") return "$" + Buffer.byteLength(v, "utf8") + "\r\n" + v + "\r\n";
  if (Array.isArray(v)) return "*" + v.length + "\r\n" + v.map(encode).join("");
  return "-" + v.error + "\r\n";
}

function plain(r: unknown): Value {
  if (r instanceof RedisReplyError) return { error: r.message };
  if (Array.isArray(r)) return r.map(plain);
  return r as Value;
}

function readAll(bytes: Buffer, cuts: number[]): Value[] {
  const out: Value[] = [];
  const reader = new RespReader((r) => out.push(plain(r)));
  let pos = 0;
  for (const c of [...cuts, bytes.length]) {
    if (c <= pos) continue;
    reader.feed(bytes.subarray(pos, c));
    pos = c;
  }
  return out;
}

const text = fc.string({ unit: "binary", maxLength: 40 });
const value: fc.Arbitrary<Value> = fc.letrec<{ v: Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: "small" },
    text,
    fc.constant(null),
    fc.record({ error: fc.string({ maxLength: 20 }).map((s) => "ERR " + s.replace(/[\r\n]/g, " ")) }),
    fc.array(tie("v"), { maxLength: 5 }),
  ),
})).v;

describe("RESP reader", () => {
  it("reads any sequence of replies the same however the bytes are cut", () => {
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), (values, rawCuts) => {
        const bytes = Buffer.from(values.map(encode).join(""), "utf8");
        const cuts = rawCuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b);
        expect(readAll(bytes, cuts)).toEqual(values);
      }),
      { numRuns: 500 },
    );
  });

  it("reads an HSCAN reply cut at every byte", () => {
    const reply: Value = ["17", ["+15125550100", '{"voice":{"targets":["sip:a@h"]}}', "+4420*", "{\"x\":\"é\"}"]];
    const bytes = Buffer.from(encode(reply), "utf8");
    for (let c = 0; c <= bytes.length; c++) expect(readAll(bytes, [c])).toEqual([reply]);
    expect(readAll(bytes, Array.from({ length: bytes.length }, (_, i) => i))).toEqual([reply]);
  });

  it("simple strings, integers and errors; malformed input throws instead of guessing", () => {
    expect(readAll(Buffer.from("+OK\r\n:42\r\n-NOAUTH Authentication required.\r\n"), [])).toEqual(["OK", "42", { error: "NOAUTH Authentication required." }]);
    for (const bad of ["$x\r\n", "*1a\r\n", "?\r\n", "$\r\n"]) expect(() => new RespReader(() => {}).feed(Buffer.from(bad))).toThrow(RedisReplyError);
  });

  it("encodes commands as arrays of bulk strings (UTF-8 lengths)", () => {
    expect(encodeCommand(["HSCAN", "k", "0"]).toString()).toBe("*3\r\n$5\r\nHSCAN\r\n$1\r\nk\r\n$1\r\n0\r\n");
    expect(encodeCommand(["é"]).toString()).toBe("*1\r\n$2\r\né\r\n");
  });
});

describe("full load through its own HSCAN connection (real redis-server)", () => {
  let redis: TestRedis;
  const url = () => `redis://loader:s3cret@127.0.0.1:${redis.port}/3`;

  beforeAll(async () => {
    // the default user stays open (the helper pings it); the edge logs in as an ACL user
    redis = await startRedis({ args: ["--user", "loader", "on", ">s3cret", "~*", "&*", "+@all"] });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it("loads many batches with AUTH (user and password) and SELECT, skipping invalid entries", async () => {
    const w = writerFor(url());
    const entries: [string, Record<string, unknown>][] = [];
    for (let i = 0; i < 3000; i++) entries.push([`+1512555${String(i).padStart(4, "0")}`, voice(`h${i}`)]);
    entries.push(["+4420*", { voice: { targets: ["sip:x@ünïcode.example"] } }], ["*", voice("default")]);
    await w.writer.import(entries);
    // invalid entries written around the writer: a bad key and a bad value
    await w.client.hset("didgate:routes", "+1-512", JSON.stringify(voice("bad-key")), "+15125559999", '{"voice":');
    await w.client.quit();

    const e = makeEdge(redisConfig(url()), { scanCount: 100 });
    try {
      expect(await e.source.start()).toEqual({ stale: false });
      expect(e.store.current.size).toBe(3002);
      for (const i of [0, 1, 1234, 2999]) expect(e.lookup(`+1512555${String(i).padStart(4, "0")}`)).toBe(`sip:x@h${i}`);
      expect(e.lookup("+442071234567")).toBe("sip:x@ünïcode.example");
      expect(e.lookup("+15125559999")).toBe("sip:x@default"); // its own entry was skipped
      expect(await metricValue(e.registry, "didgate_route_sync_invalid_entries_total", { phase: "load" })).toBe(2);
      // the library's HSCAN was not needed
      expect(e.log.find((l) => String(l.msg).includes("scanning through the client library"))).toBeUndefined();
    } finally {
      await e.source.close();
    }
  });

  it("shares one route between entries with the same text", async () => {
    const w = writerFor(url());
    const same = { tenant: "shared", voice: { targets: ["sip:pbx@10.0.0.1"] } };
    await w.writer.import(Array.from({ length: 500 }, (_, i) => [`+1737555${String(i).padStart(4, "0")}`, same] as [string, Record<string, unknown>]));
    await w.client.quit();
    const e = makeEdge(redisConfig(url()), { scanCount: 64 });
    try {
      await e.source.start();
      const a = e.store.current.lookup("+17375550001");
      const b = e.store.current.lookup("+17375550499");
      expect(targetOf(a)).toBe("sip:pbx@10.0.0.1");
      expect(a).toBe(b);
    } finally {
      await e.source.close();
    }
  });

  it("fails cleanly on a refused login, and the load falls back to the client library", async () => {
    await expect(
      rawHscan({ target: { host: "127.0.0.1", port: redis.port, tls: false, db: 0, username: "loader", password: "wrong" }, key: "didgate:routes", count: 10, commandTimeoutMs: 2000, onBatch: () => {} }),
    ).rejects.toThrow(/AUTH/);
    // an ACL user that may not run HSCAN: the raw scan fails, the library's HSCAN (same user) too,
    // and the start reports Redis as failing instead of loading a partial table
    await redis.cli("ACL", "SETUSER", "noscan", "on", ">pw", "~*", "&*", "+@all", "-hscan");
    const e = makeEdge(redisConfig(`redis://noscan:pw@127.0.0.1:${redis.port}/3`), { startTimeoutMs: 500 });
    try {
      await expect(e.source.start()).rejects.toThrow(/not reachable|NOPERM|HSCAN/);
      expect(e.log.find((l) => String(l.msg).includes("scanning through the client library"))).toBeDefined();
    } finally {
      await e.source.close();
    }
  });

  it("times out on a server that never answers, and on a TLS handshake that never ends", async () => {
    const { createServer } = await import("node:net");
    const socks: import("node:net").Socket[] = [];
    const silent = createServer((c) => socks.push(c));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    const port = (silent.address() as { port: number }).port;
    try {
      await expect(rawHscan({ target: { host: "127.0.0.1", port, tls: false, db: 0 }, key: "k", count: 10, commandTimeoutMs: 200, onBatch: () => {} })).rejects.toThrow(/did not answer/);
      await expect(rawHscan({ target: { host: "127.0.0.1", port, tls: true, db: 0 }, key: "k", count: 10, commandTimeoutMs: 200, onBatch: () => {} })).rejects.toThrow(/no connection to Redis within 200 ms/);
      // an abort (the source closing) ends a scan at once
      const ac = new AbortController();
      const p = rawHscan({ target: { host: "127.0.0.1", port, tls: false, db: 0 }, key: "k", count: 10, commandTimeoutMs: 60_000, onBatch: () => {}, signal: ac.signal });
      ac.abort();
      await expect(p).rejects.toThrow(/aborted/);
    } finally {
      for (const c of socks) c.destroy();
      silent.close();
    }
  });

  it("close() during a full load whose own HSCAN connection hangs ends it: start() rejects, nothing is swapped in", async () => {
    // a proxy in front of the real server: the source's two library connections pass through,
    // the third (the full load's own HSCAN connection) is accepted and never answered
    const { createServer, connect } = await import("node:net");
    const held: import("node:net").Socket[] = [];
    let n = 0;
    const proxy = createServer((c) => {
      held.push(c);
      if (++n > 2) return;
      const up = connect(redis.port, "127.0.0.1");
      held.push(up);
      c.pipe(up).pipe(c);
      c.on("error", () => up.destroy());
      up.on("error", () => c.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", () => r()));
    const port = (proxy.address() as { port: number }).port;
    const e = makeEdge(redisConfig(`redis://loader:s3cret@127.0.0.1:${port}/3`), { startTimeoutMs: 60_000, commandTimeoutMs: 60_000, loadFunctions: false });
    const before = e.store.current;
    try {
      const started = e.source.start();
      const deadline = Date.now() + 10_000;
      while (n < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(n).toBe(3); // the load is waiting on its own connection
      await e.source.close();
      await expect(started).rejects.toThrow();
      expect(e.store.current).toBe(before);
    } finally {
      for (const c of held) c.destroy();
      proxy.close();
    }
  });
});
