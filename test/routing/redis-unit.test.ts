/** Pure parts of the Redis route sync: URLs, stream ids, position checks, snapshots. */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { parseRoute, type Route } from "../../src/routing/route.js";
import { hasHashTag, parseRedisUrl } from "../../src/redis/endpoint.js";
import { classifyPosition, compareStreamIds, streamIdMs, type StreamInfo } from "../../src/redis/stream.js";
import { routeKeys } from "../../src/routing/sources/redis-keys.js";
import { functionLibrarySource } from "../../src/routing/sources/redis-writer.js";
import { loadSnapshot, readSnapshotHeader, writeSnapshot } from "../../src/routing/sources/snapshot.js";
import { tempDir, voice } from "./redis-helpers.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe("parseRedisUrl", () => {
  it("standalone, with credentials, database and TLS", () => {
    expect(parseRedisUrl("redis://127.0.0.1:6380/2")).toMatchObject({ kind: "standalone", host: "127.0.0.1", port: 6380, db: 2, tls: false });
    expect(parseRedisUrl("rediss://u:p%40ss@cache.example:6390")).toMatchObject({ kind: "standalone", host: "cache.example", port: 6390, username: "u", password: "p@ss", tls: true });
    expect(parseRedisUrl("redis://:secret@[::1]")).toMatchObject({ host: "::1", port: 6379, password: "secret" });
    expect(parseRedisUrl("redis://h").username).toBeUndefined();
  });
  it("sentinel: several sentinels, the master name and the sentinels' password", () => {
    expect(parseRedisUrl("redis-sentinel://:pw@s1:26379,s2,s3:26380/mymaster/1?sentinel_password=sp")).toEqual({
      kind: "sentinel",
      sentinels: [
        { host: "s1", port: 26379 },
        { host: "s2", port: 26379 },
        { host: "s3", port: 26380 },
      ],
      master: "mymaster",
      db: 1,
      password: "pw",
      sentinelPassword: "sp",
      tls: false,
    });
    expect(() => parseRedisUrl("redis-sentinel://s1:26379")).toThrow(/master name/);
  });
  it("cluster: seed nodes", () => {
    expect(parseRedisUrl("redis-cluster://n1:7000,n2:7001?tls=1")).toEqual({ kind: "cluster", nodes: [{ host: "n1", port: 7000 }, { host: "n2", port: 7001 }], tls: true });
  });
  it("rejects what it cannot use, with a message", () => {
    expect(() => parseRedisUrl("http://x")).toThrow(/unsupported Redis URL scheme/);
    expect(() => parseRedisUrl("redis://h:99999")).toThrow(/bad host:port/);
    expect(() => parseRedisUrl("nothing")).toThrow(/not a Redis URL/);
    expect(() => parseRedisUrl("redis-cluster://")).toThrow(/no host/);
  });
  it("never throws anything but Error on arbitrary input", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          parseRedisUrl(s);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }),
    );
  });
});

describe("keys and hash tags", () => {
  it("names the hashes and the stream under the prefix", () => {
    expect(routeKeys("didgate:")).toEqual({ routes: "didgate:routes", changes: "didgate:changes", outbound: "didgate:outbound" });
    expect(routeKeys("{didgate}:")).toEqual({ routes: "{didgate}:routes", changes: "{didgate}:changes", outbound: "{didgate}:outbound" });
  });
  it("recognises a hash tag", () => {
    expect(hasHashTag("{didgate}:")).toBe(true);
    expect(hasHashTag("didgate:")).toBe(false);
    expect(hasHashTag("{}:")).toBe(false);
    expect(hasHashTag("x{a")).toBe(false);
  });
});

describe("stream ids", () => {
  it("compare like (ms, seq) pairs of unbounded integers", () => {
    const id = fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
    fc.assert(
      fc.property(id, id, ([a1, a2], [b1, b2]) => {
        const want = a1 !== b1 ? (a1 < b1 ? -1 : 1) : a2 !== b2 ? (a2 < b2 ? -1 : 1) : 0;
        expect(Math.sign(compareStreamIds(`${a1}-${a2}`, `${b1}-${b2}`))).toBe(want);
      }),
    );
    expect(compareStreamIds("5", "5-0")).toBe(0);
  });
  it("give their time in ms", () => {
    expect(streamIdMs("1732262400000-3")).toBe(1732262400000);
    expect(streamIdMs("junk")).toBe(0);
  });
});

describe("classifyPosition", () => {
  const info = (over: Partial<StreamInfo>): StreamInfo => ({ length: 10, lastGeneratedId: "100-0", maxDeletedId: "0-0", firstEntryId: "50-0", entriesAdded: 10, ...over });
  it("ok when the stream still holds the position", () => {
    expect(classifyPosition(info({}), "60-0")).toBe("ok");
    expect(classifyPosition(info({}), "100-0")).toBe("ok");
    expect(classifyPosition(info({ maxDeletedId: "60-0", firstEntryId: "61-0" }), "60-0")).toBe("ok");
    expect(classifyPosition(undefined, "0-0")).toBe("ok");
    expect(classifyPosition(info({ firstEntryId: "5-0" }), "0-0")).toBe("ok");
  });
  it("gap when entries after the position were trimmed", () => {
    expect(classifyPosition(info({ maxDeletedId: "70-0", firstEntryId: "71-0" }), "60-0")).toBe("gap");
    expect(classifyPosition(info({ maxDeletedId: "3-0" }), "0-0")).toBe("gap");
    // Redis 6: no trim record, first entry after the position
    expect(classifyPosition(info({ maxDeletedId: undefined, firstEntryId: "71-0" }), "60-0")).toBe("gap");
    expect(classifyPosition(info({ maxDeletedId: undefined, firstEntryId: "50-0" }), "60-0")).toBe("ok");
  });
  it("lost when the stream is gone, went back in time or is a new one", () => {
    expect(classifyPosition(undefined, "60-0")).toBe("lost");
    expect(classifyPosition(info({ lastGeneratedId: "59-0" }), "60-0")).toBe("lost");
    expect(classifyPosition(info({ firstEntryId: "90-0", maxDeletedId: "0-0" }), "60-0")).toBe("lost");
  });
});

describe("snapshots", () => {
  const route = (v: Record<string, unknown>): Route => {
    const r = parseRoute("k", v);
    if (!r.ok) throw new Error(r.errors.join());
    return r.route;
  };
  const entries: [string, Route][] = [
    ["*", route({ state: "released" })],
    ["+44*", route(voice("uk"))],
    ["+15125550100", route(voice("us"))],
  ];

  it("round-trip through an atomically written file", async () => {
    const path = join(tmp.dir, "a", "snap");
    await writeSnapshot(path, "123-4", entries, Date.UTC(2026, 0, 1));
    expect(await readSnapshotHeader(path)).toEqual({ didgate_snapshot: 1, version: "123-4", entries: 3, written_at: "2026-01-01T00:00:00.000Z" });
    const s = await loadSnapshot(path);
    expect(s.table.version).toBe("123-4");
    expect(s.table.size).toBe(3);
    expect(s.table.lookup("+442071234567")?.voice?.targets[0]?.uri).toBe("sip:x@uk");
    expect(s.table.get("*")?.state).toBe("released");
  });

  it("refuses truncated or foreign files, skips invalid entries", async () => {
    const path = join(tmp.dir, "b");
    await writeSnapshot(path, "1-0", entries);
    const text = readFileSync(path, "utf8");
    writeFileSync(path, text.slice(0, text.lastIndexOf('{"end"')));
    await expect(loadSnapshot(path)).rejects.toThrow(/truncated/);
    writeFileSync(path, "hello\n");
    await expect(loadSnapshot(path)).rejects.toThrow(/not a didgate snapshot/);
    await expect(loadSnapshot(join(tmp.dir, "missing"))).rejects.toThrow();
    expect(await readSnapshotHeader(join(tmp.dir, "missing"))).toBeUndefined();
    const lines = text.split("\n");
    lines[2] = JSON.stringify(["+44*", { state: "bogus" }]);
    writeFileSync(path, lines.join("\n"));
    const s = await loadSnapshot(path);
    expect(s.table.size).toBe(2);
    expect(s.invalid[0]).toMatch(/state/);
  });
});

describe("function library", () => {
  it("is found next to the code and is a Redis Function library named didgate", () => {
    const src = functionLibrarySource();
    expect(src).toBeDefined();
    expect(src!.startsWith("#!lua name=didgate")).toBe(true);
    for (const f of ["didgate_set", "didgate_del", "didgate_reload"]) expect(src).toContain(`'${f}'`);
  });
});
