import { writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { validateConfig } from "../../src/config/load.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";

let running: Didgate[] = [];
afterEach(async () => {
  await Promise.all(running.map((a) => a.stop()));
  running = [];
});

async function start(routes: Record<string, unknown>) {
  const dir = tempDir();
  const file = writeRoutes(dir, routes);
  const r = await startApp({ routes: { file: "routes.yaml" } }, dir);
  running.push(r.app);
  return { ...r, dir, file };
}

const getJson = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

describe("admin HTTP server", () => {
  it("serves /healthz, /readyz, /metrics and /v1/lookup", async () => {
    const { admin } = await start({
      "+15125550100": { tenant: "acme", voice: { targets: ["sip:a@127.0.0.1"] }, sms: { webhook: "http://127.0.0.1/x" } },
      "+1512555*": { voice: { targets: ["sip:block@127.0.0.1"] } },
      "+15125550150": { state: "quarantine" },
    });
    expect(await getJson(`${admin}/healthz`)).toEqual({ status: 200, body: { status: "ok" } });
    const ready = await getJson(`${admin}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body.checks.routes).toMatchObject({ loaded: true, source: "file", entries: 3, stale: false });

    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toContain('didgate_route_table_entries{kind="exact"} 2');
    expect(metrics).toContain('didgate_route_table_entries{kind="prefix"} 1');
    expect(metrics).toContain("didgate_process_cpu_seconds_total");
    expect(metrics).toContain('didgate_route_reloads_total{source="file",result="ok"} 1');

    const l = await getJson(`${admin}/v1/lookup?number=%2B15125550100`);
    expect(l.status).toBe(200);
    expect(l.body).toMatchObject({ outcome: "routed", key: "+15125550100", kind: "exact", state: "active", tenant: "acme", sms: { webhook: "http://127.0.0.1/x" } });
    expect(l.body.targets).toEqual([{ uri: "sip:a@127.0.0.1", priority: 1, weight: 100 }]);
    expect((await getJson(`${admin}/v1/lookup?number=tel:%2B1-512-555-0199`)).body).toMatchObject({ key: "+1512555*", kind: "prefix" });
    expect((await getJson(`${admin}/v1/lookup?number=%2B15125550150`)).body).toMatchObject({ outcome: "gone", state: "quarantine" });
    expect((await getJson(`${admin}/v1/lookup?number=%2B4420`)).body).toMatchObject({ outcome: "not_found" });
    const bad = await getJson(`${admin}/v1/lookup?number=hello`);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain("invalid character");
    expect((await getJson(`${admin}/v1/lookup`)).status).toBe(400);
    // National numbers: without a country code they are international (+51 Peru here) ...
    expect((await getJson(`${admin}/v1/lookup?number=5125550100`)).body.number).toBe("+5125550100");
    // ... with country_code as a trunk with that code reads them.
    expect((await getJson(`${admin}/v1/lookup?number=5125550100&country_code=1`)).body).toMatchObject({ number: "+15125550100", key: "+15125550100" });
    expect((await getJson(`${admin}/v1/lookup?number=5125550100&country_code=x1`)).status).toBe(400);
    expect((await getJson(`${admin}/v1/lookup?number=%2B1&at=yesterday`)).status).toBe(400);
    expect((await getJson(`${admin}/nope`)).status).toBe(404);
    expect((await fetch(`${admin}/metrics`, { method: "POST" })).status).toBe(405);
  });

  it("/v1/lookup reads national numbers with default_country_code", async () => {
    const dir = tempDir();
    writeRoutes(dir, { "+15125550100": { voice: { targets: ["sip:a@h"] } } });
    const r = await startApp({ routes: { file: "routes.yaml" }, default_country_code: "1" }, dir);
    running.push(r.app);
    expect((await getJson(`${r.admin}/v1/lookup?number=5125550100`)).body).toMatchObject({ number: "+15125550100", key: "+15125550100" });
    expect((await getJson(`${r.admin}/v1/lookup?number=02079460000&country_code=44`)).body.number).toBe("+442079460000");
  });

  it("binds to loopback by default (no admin section in the config)", async () => {
    // The default is checked in the schema, not by binding 9464: a didgate left running from the
    // README walkthrough holds that port, and tests use free ports only.
    const v = validateConfig({});
    expect(v.ok && v.config.admin.listen).toBe("127.0.0.1:9464");
    const dir = tempDir();
    writeRoutes(dir, { "*": { voice: { targets: ["sip:a@h"] } } });
    const r = await startApp({ routes: { file: "routes.yaml" }, admin: { listen: "127.0.0.1:0" } }, dir);
    running.push(r.app);
    expect(r.app.adminAddress).toMatchObject({ address: "127.0.0.1" });
  });
});

describe("file route source", () => {
  it("reloads a changed file atomically and keeps the last good table on a broken one", async () => {
    const { admin, file, dir } = await start({ "+15125550100": { voice: { targets: ["sip:first@h"] } } });
    const target = async () => (await getJson(`${admin}/v1/lookup?number=%2B15125550100`)).body.targets?.[0]?.uri;
    expect(await target()).toBe("sip:first@h");

    writeRoutes(dir, { "+15125550100": { voice: { targets: ["sip:second@h"] } }, "*": { voice: { targets: ["sip:d@h"] } } });
    await waitFor(async () => (await target()) === "sip:second@h");
    expect((await getJson(`${admin}/readyz`)).body.checks.routes.entries).toBe(2);

    // A broken file (bad entry) keeps the last good table and is counted.
    writeRoutes(dir, { "+15125550100": { voice: { targets: ["not-a-uri"] } } });
    await waitFor(async () => (await (await fetch(`${admin}/metrics`)).text()).includes('didgate_route_reloads_total{source="file",result="failed"} 1'));
    expect(await target()).toBe("sip:second@h");
    // Not even YAML.
    writeFileSync(file, "routes: [\n");
    await waitFor(async () => (await (await fetch(`${admin}/metrics`)).text()).includes('didgate_route_reloads_total{source="file",result="failed"} 2'));
    expect(await target()).toBe("sip:second@h");

    // Fixed again: picked up.
    writeRoutes(dir, { "+15125550100": { voice: { targets: ["sip:third@h"] } } });
    await waitFor(async () => (await target()) === "sip:third@h");
  });

  it("reloads a large file in the loader thread while requests are answered from the old table", async () => {
    const dir = tempDir();
    const file = `${dir}/routes.json`;
    const write = (target: string) => {
      const routes: Record<string, unknown> = { "+15125550100": { voice: { targets: [target] } } };
      for (let i = 0; i < 20_000; i++) routes[`+1737${String(i).padStart(7, "0")}`] = { tenant: `t${i % 9}`, voice: { targets: [`sip:${i}@10.0.${(i >> 8) & 255}.${i & 255}`] } };
      writeFileSync(file, JSON.stringify({ routes }));
    };
    write("sip:old@h");
    const { app, admin } = await startApp({ routes: { file: "routes.json", watch: false } }, dir);
    running.push(app);
    const source = (app as unknown as { fileSource: import("../../src/routing/sources/file.js").FileRouteSource }).fileSource;
    expect(source.lastStats?.worker).toBe(true);
    const target = async () => (await getJson(`${admin}/v1/lookup?number=%2B15125550100`)).body.targets?.[0]?.uri as string;
    expect(await target()).toBe("sip:old@h");

    write("sip:new@h");
    let reloaded = false;
    const p = source.reload("test").then((r) => {
      reloaded = true;
      return r;
    });
    // Lookups go on while the file is loaded; the ones answered before the swap see the old table.
    const during: string[] = [];
    while (!reloaded) {
      const t = await target();
      if (!reloaded) during.push(t);
    }
    expect((await p).ok).toBe(true);
    expect(during.length).toBeGreaterThan(0);
    expect(new Set(during)).toEqual(new Set(["sip:old@h"]));
    expect(await target()).toBe("sip:new@h");
    expect(source.lastStats).toMatchObject({ worker: true, entries: 20_001, distinct: 20_001 });
  });

  it("refuses to start on a broken routes file", async () => {
    const dir = tempDir();
    writeRoutes(dir, { "+1x": { voice: { targets: ["sip:a@h"] } } });
    await expect(startApp({ routes: { file: "routes.yaml" } }, dir)).rejects.toThrow(/invalid key/);
  });

  it("the bundled example routes file exercises every feature and loads", async () => {
    const { loadRouteFile } = await import("../../src/routing/sources/file.js");
    const r = loadRouteFile("config/routes.yaml");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const all = [...r.table.entries()].map(([, v]) => v);
    expect(new Set(all.map((v) => v.state))).toEqual(new Set(["active", "porting_out", "quarantine", "released"]));
    expect(all.some((v) => (v.voice?.schedule.length ?? 0) > 0)).toBe(true);
    expect(all.some((v) => (v.voice?.callers.length ?? 0) > 0)).toBe(true);
    expect(all.some((v) => v.sms?.webhook && v.sms?.smpp)).toBe(true);
    expect(r.table.counts()).toMatchObject({ default: 1 });
    expect(r.table.counts().prefix).toBeGreaterThan(0);
    expect(all.some((v) => v.voice?.ring === "simultaneous" && v.voice.targets.some((t) => t.uri.startsWith("tel:")))).toBe(true);
    expect(r.outbound?.lookup("+447700900123")?.voice).toEqual(["local-test"]);
  });
});
