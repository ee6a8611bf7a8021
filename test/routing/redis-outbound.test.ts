/** The outbound table in Redis: `<prefix>outbound`, its changes in the change stream, the CLI. */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import type { OutboundEntry } from "../../src/routing/outbound.js";
import { routesCommand } from "../../src/cli/routes.js";
import { RouteStore, RouteTable } from "../../src/routing/table.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { makeEdge, redisConfig, tempDir, until } from "./redis-helpers.js";

let redis: TestRedis;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  redis = await startRedis();
  tmp = tempDir();
});
afterAll(async () => {
  await redis?.stop();
  tmp?.cleanup();
});

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await routesCommand(argv, { url: redis.url, prefix: "didgate:", stream_maxlen: 100_000 }, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

describe("outbound table in Redis", () => {
  it("set --outbound before the edge starts (full load), then changes through the stream; del; import and export", async () => {
    expect(await run("set", "--outbound", "+44*", '{"voice":["carrier-uk"],"sms":["smsc-b"]}')).toMatchObject({ code: 0 });
    expect((await run("set", "--outbound", "+44*", '{"voice":[]}')).code).toBe(1);
    const outbound = new RouteStore<OutboundEntry>(RouteTable.build<OutboundEntry>([]));
    const e = makeEdge(redisConfig(redis.url), { outboundStore: outbound });
    try {
      await e.source.start();
      expect(outbound.current.lookup("+442071230300")?.voice).toEqual(["carrier-uk"]);
      expect(await run("set", "--outbound", "*", '{"voice":["carrier-b"]}')).toMatchObject({ code: 0 });
      await until(() => outbound.current.lookup("+15125550100")?.voice[0] === "carrier-b", "the default outbound entry");
      expect(await run("del", "--outbound", "+44*")).toMatchObject({ code: 0 });
      await until(() => outbound.current.lookup("+442071230300")?.voice[0] === "carrier-b", "the +44* entry gone");
      // the routes hash is not touched by outbound changes
      expect(e.store.current.size).toBe(0);

      const file = join(tmp.dir, "routes.yaml");
      writeFileSync(file, YAML.stringify({ routes: { "+15125550100": { voice: { targets: ["tel:+442071230300"] } } }, outbound: { "+44*": { voice: ["carrier-uk", "carrier-b"] } } }));
      const imp = await run("import", file, "--replace");
      expect(imp.code, imp.err).toBe(0);
      expect(imp.out).toContain("imported 1 outbound entries, 1 deleted");
      await until(() => outbound.current.lookup("+442071230300")?.voice.length === 2 && outbound.current.lookup("+15125550100") === undefined, "the imported outbound table");
      const exp = await run("export", "--format", "yaml");
      expect(exp.code).toBe(0);
      const doc = YAML.parse(exp.out) as { routes: Record<string, unknown>; outbound: Record<string, unknown> };
      expect(Object.keys(doc.routes)).toEqual(["+15125550100"]);
      expect(doc.outbound).toEqual({ "+44*": { voice: ["carrier-uk", "carrier-b"] } });
    } finally {
      await e.source.close();
    }
  });

  it("an edge started while Redis is down has the outbound table from the snapshot beside the routes", async () => {
    const r = await startRedis();
    const snapshot = join(tmp.dir, "var", "routes.snapshot");
    try {
      const set = (...argv: string[]) =>
        routesCommand(argv, { url: r.url, prefix: "didgate:", stream_maxlen: 100_000 }, () => undefined, () => undefined);
      expect(await set("set", "+15125550100", '{"voice":{"targets":["sip:a@10.0.0.1"]}}')).toBe(0);
      expect(await set("set", "--outbound", "+44*", '{"voice":["carrier-uk"]}')).toBe(0);
      const store1 = new RouteStore<OutboundEntry>(RouteTable.build<OutboundEntry>([]));
      const first = makeEdge(redisConfig(r.url, { snapshot }), { outboundStore: store1 });
      await first.source.start();
      expect(await set("set", "--outbound", "+49*", '{"voice":["carrier-de"]}')).toBe(0);
      await until(() => store1.current.lookup("+4930123") !== undefined, "the +49* change");
      await until(() => existsSync(snapshot) && first.source.status().snapshot?.writtenAt !== undefined, "route snapshot written");
      await until(() => existsSync(snapshot + ".outbound"), "outbound snapshot written");
      await first.source.close();
      await r.kill();

      const store2 = new RouteStore<OutboundEntry>(RouteTable.build<OutboundEntry>([]));
      const e = makeEdge(redisConfig(r.url, { snapshot }), { outboundStore: store2, startTimeoutMs: 300 });
      try {
        expect(await e.source.start()).toEqual({ stale: true });
        expect(store2.current.lookup("+442071230300")?.voice).toEqual(["carrier-uk"]);
        expect(store2.current.lookup("+4930123")?.voice).toEqual(["carrier-de"]);
      } finally {
        await e.source.close();
      }
    } finally {
      await r.stop();
    }
  });
});
