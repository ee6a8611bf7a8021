import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { makeEdge, metricValue, redisConfig, until, voice, writerFor, type Edge } from "./redis-helpers.js";

let redis: TestRedis;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
  await redis.cli("FLUSHALL");
});

function edge(prefix: string, over = {}): Edge {
  const e = makeEdge(redisConfig(redis.url, { prefix, ...over }));
  cleanups.push(() => e.source.close());
  return e;
}
function writer(prefix: string) {
  const w = writerFor(redis.url, prefix);
  cleanups.push(() => w.client.quit());
  return w.writer;
}

describe("Redis route source: load and deltas", () => {
  it("imports routes, loads them and looks them up", async () => {
    const w = writer("a:");
    const r = await w.import([
      ["+15125550100", voice("exact")],
      ["+1512555*", voice("prefix")],
      ["*", voice("default")],
    ]);
    expect(r).toEqual({ written: 3, unchanged: 0, deleted: 0 });
    const e = edge("a:");
    expect(await e.source.start()).toEqual({ stale: false });
    expect(e.lookup("+15125550100")).toBe("sip:x@exact");
    expect(e.lookup("+15125550199")).toBe("sip:x@prefix");
    expect(e.lookup("+4420")).toBe("sip:x@default");
    const st = e.source.status();
    expect(st).toMatchObject({ connected: true, stale: false, refusing: false, entries: 3 });
    expect(st.version).toMatch(/^\d+-\d+$/);
    expect(await metricValue(e.registry, "didgate_route_sync_connected")).toBe(1);
    // re-import of the same entries writes nothing
    expect(await w.import([["+15125550100", voice("exact")]])).toEqual({ written: 0, unchanged: 1, deleted: 0 });
  });

  it("applies a write made through raw redis-cli MULTI/EXEC per the contract", async () => {
    const e = edge("b:");
    await e.source.start();
    const json = JSON.stringify(voice("raw")).replace(/"/g, '\\"');
    const out = await redis.cliScript(
      ["MULTI", `HSET b:routes +4420* "${json}"`, `XADD b:changes MAXLEN ~ 1000 * op set key +4420* route "${json}"`, "EXEC", ""].join("\n"),
    );
    expect(out).toContain("OK");
    await until(() => e.lookup("+442071234567") === "sip:x@raw", "raw write applied");
    expect(e.store.current.version).toMatch(/^\d+-\d+$/);
    expect(await metricValue(e.registry, "didgate_route_sync_deltas_total", { op: "set" })).toBe(1);
  });

  it("a delete exposes the shorter prefix; set/del are applied in order", async () => {
    const w = writer("c:");
    await w.import([
      ["+1512*", voice("short")],
      ["+1512555*", voice("long")],
    ]);
    const e = edge("c:");
    await e.source.start();
    expect(e.lookup("+15125550100")).toBe("sip:x@long");
    await w.del("+1512555*");
    await until(() => e.lookup("+15125550100") === "sip:x@short", "shorter prefix after delete");
    // a burst on one key: the last write wins
    for (let i = 0; i < 50; i++) await w.set("+1999*", voice(`v${i}`));
    await w.del("+1999*");
    await w.set("+1999*", voice("final"));
    await until(() => e.lookup("+19990000") === "sip:x@final", "last write of a burst");
  });

  it("skips invalid entries with a log line naming the key, and counts them", async () => {
    const w = writer("d:");
    await w.import([["+44*", voice("ok")]]);
    await redis.cli("HSET", "d:routes", "+33*", '{"state":"bogus"}', "+34*", "not json", "12x", JSON.stringify(voice("badkey")));
    const e = edge("d:");
    await e.source.start();
    expect(e.store.current.size).toBe(1);
    expect(e.lookup("+4420")).toBe("sip:x@ok");
    for (const key of ["+33*", "+34*", "12x"]) expect(e.log.find((l) => l.key === key && l.msg === "invalid route entry in Redis skipped")).toBeDefined();
    expect(await metricValue(e.registry, "didgate_route_sync_invalid_entries_total", { phase: "load" })).toBe(3);
    // an invalid delta removes the key (a fresh load would skip it too) and is counted
    await redis.cliScript(['MULTI', `HSET d:routes +44* "{\\"voice\\":1}"`, `XADD d:changes * op set key +44* route "{\\"voice\\":1}"`, "EXEC", ""].join("\n"));
    await until(() => e.store.current.size === 0, "invalid delta applied as removal");
    expect(e.source.status().skippedInvalid).toBe(4);
  });

  it("oversized entries written straight into Redis are skipped, logged with a cut key and counted by reason, at load, reload and delta", async () => {
    const w = writer("o:");
    await w.import([["+44*", voice("ok")]]);
    const { client } = writerFor(redis.url, "o:");
    cleanups.push(() => client.quit());
    const bigKey = "+1888" + "9".repeat(3_000_000);
    await client.hset("o:routes", "+1666", JSON.stringify({ tenant: "t", voice: { targets: ["sip:x@" + "a".repeat(5_000_000)] } }));
    await client.hset("o:routes", "+1777", JSON.stringify({ tenant: "t".repeat(20_000_000), voice: { targets: ["sip:x@h"] } }));
    await client.hset("o:routes", bigKey, JSON.stringify(voice("k")));
    await client.hset("o:routes", "+1999", "{not json");
    const e = edge("o:");
    await e.source.start();
    expect(e.store.current.size).toBe(1);
    const skipped = () => e.log.lines.filter((l) => l.msg === "invalid route entry in Redis skipped");
    expect(skipped().map((l) => l.key).sort()).toEqual(["+1666", "+1777", "+1888" + "9".repeat(59) + "…", "+1999"].sort());
    expect(skipped().find((l) => l.key === "+1666")).toMatchObject({ reason: "oversized", phase: "load" });
    expect(skipped().find((l) => l.key === "+1777")).toMatchObject({ reason: "oversized" });
    expect(skipped().find((l) => l.key === "+1999")).toMatchObject({ reason: "not_json" });
    expect(skipped().find((l) => String(l.key).startsWith("+18889"))).toMatchObject({ key_length: bigKey.length });
    const count = (reason: string) => metricValue(e.registry, "didgate_route_entries_skipped_total", { reason });
    expect(await count("oversized")).toBe(2);
    expect(await count("not_json")).toBe(1);
    expect((await count("invalid_key"))! + (await count("invalid_route"))!).toBe(1);
    expect(await count("unknown_op")).toBe(0);
    // reload: the same entries are skipped again, each logged and counted again
    await client.hset("o:routes", "+1555", JSON.stringify({ tenant: "t", voice: { targets: ["sip:x@" + "b".repeat(2_000_000)] } }));
    expect(await e.source.reload()).toMatchObject({ result: "swapped", entries: 1 });
    expect(skipped().filter((l) => l.key === "+1555")).toHaveLength(1);
    expect(await count("oversized")).toBe(5);
    // a delta written straight into the stream
    await client.xadd("o:changes", "*", "op", "set", "key", "+1556", "route", JSON.stringify({ tenant: "t".repeat(3_000_000), voice: { targets: ["sip:x@h"] } }));
    await until(async () => (await count("oversized")) === 6, "oversized delta counted");
    expect(skipped().find((l) => l.key === "+1556")).toMatchObject({ reason: "oversized", phase: "delta" });
    // no log line carries a megabyte value
    for (const l of e.log.lines) expect(JSON.stringify(l).length).toBeLessThan(4000);
    expect(e.lookup("+4420")).toBe("sip:x@ok");
    // the writer refuses what the edges would skip
    const many = Array.from({ length: 3000 }, (_, i) => `sip:${i}@${"c".repeat(400)}`);
    await expect(w.set("+1557", { tenant: "t", voice: { targets: many } })).rejects.toThrow(/characters, more than/);
  });

  it("writer validates before writing", async () => {
    const w = writer("e:");
    await expect(w.set("+1", { state: "nope" })).rejects.toThrow(/state/);
    await expect(w.set("1*", voice("x"))).rejects.toThrow(/invalid key/);
    await expect(w.import([["+1", voice("a")], ["+2", { voice: {} }]])).rejects.toThrow(/invalid routes|targets/);
    expect(await redis.cli("EXISTS", "e:routes", "e:changes")).toBe("0\n");
  });

  it("two edges converge on the same table", async () => {
    const w = writer("f:");
    await w.import(Array.from({ length: 500 }, (_, i) => [`+1555${String(i).padStart(4, "0")}`, voice(`h${i % 7}`)] as const));
    const a = edge("f:");
    await a.source.start();
    const writes = (async () => {
      for (let i = 0; i < 300; i++) {
        if (i % 3 === 0) await w.del(`+1555${String(i).padStart(4, "0")}`);
        else await w.set(`+1666${String(i).padStart(4, "0")}`, voice(`n${i}`));
      }
    })();
    const b = edge("f:");
    await b.source.start();
    await writes;
    const dump = (e: Edge) => JSON.stringify(Array.from(e.store.current.entries(), ([k, v]) => [k, v.source]).sort());
    const want = (await w.exportEntries()).entries.length;
    await until(() => a.store.current.size === want && b.store.current.size === want && a.store.current.version === b.store.current.version, "both edges caught up");
    expect(dump(a)).toBe(dump(b));
    expect(a.store.current.size).toBe(500 - 100 + 200);
  });
});
