/**
 * The status view: GET /v1/status (JSON and text) on a running didgate with a real redis-server
 * (spool mode), an SMPP bind to a port where nothing listens (down) and a SIP target that never
 * answers health probes (down).
 */
import { createSocket } from "node:dgram";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { freePort } from "../helpers/sipp.js";

let redis: TestRedis;
let app: Didgate;
let admin = "";
const silent = createSocket("udp4");

beforeAll(async () => {
  redis = await startRedis();
  await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
  const target = `sip:+15125550100@127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const dir = tempDir();
  writeRoutes(dir, { "+15125550100": { voice: { targets: [target] } } });
  const sip = await freePort();
  const closed = await freePort();
  ({ app, admin } = await startApp(
    {
      routes: { file: "routes.yaml", redis: { url: redis.url, prefix: "st:", snapshot: "" } },
      sip: {
        listen: [`udp://127.0.0.1:${sip}`],
        trunks: [{ name: "carrier-a", sources: ["127.0.0.2"], cps: 25 }],
        health: { enabled: true, interval_s: 0.2, failures: 1, recoveries: 1 },
        timers: { t1_ms: 20 },
      },
      smpp: { listen: "127.0.0.1:0", binds: [{ name: "smsc-down", host: "127.0.0.1", port: closed, system_id: "x", password: "y", reconnect_min_s: 0.2, reconnect_max_s: 0.5 }] },
      state_dir: dir,
    },
    dir,
  ));
  // the route's target is tracked once a call has tried it: seed it through the health table
  await redis.cli("HSET", "st:routes", "+15125550100", JSON.stringify({ voice: { targets: [target] } }));
});

afterAll(async () => {
  await app?.stop(0);
  silent.close();
  await redis?.stop();
});

describe("status view", () => {
  it("shows routes, trunks, a down bind and the spool, as JSON and as text", async () => {
    const s = await waitFor(async () => {
      const r = (await (await fetch(`${admin}/v1/status`)).json()) as any;
      return r.smpp.binds[0].state !== "bound" ? r : undefined;
    });
    expect(s).toMatchObject({ ready: true, routes: { source: "redis", sync: { state: "connected" } }, workers: 1 });
    expect(s.sip.trunks).toEqual([{ name: "carrier-a", cps: 25, cps_in_use: 0, calls: null, max_calls: null }]);
    expect(s.smpp.binds).toEqual([expect.objectContaining({ name: "smsc-down", window: 10 })]);
    expect(s.smpp.binds[0].state).not.toBe("bound");
    expect(s.delivery).toMatchObject({ mode: "spool", depth: 0, dead_letters: 0 });
    const text = await (await fetch(`${admin}/v1/status?format=text`)).text();
    expect(text).toContain("routes:");
    expect(text).toMatch(/smsc-down\s+[A-Z]+/);
    expect(text).toContain("carrier-a");
  });

  it("shows a target that stopped answering as DOWN", async () => {
    const voice = app.voice!;
    // a call attempt tracks the target; its probes then time out (nothing answers on that port)
    const r = voice.resolver.resolveSync(`sip:+15125550100@127.0.0.1:${(silent.address() as AddressInfo).port}`);
    if (r !== undefined && !("error" in r)) voice.health.track(r, `sip:+15125550100@127.0.0.1:${(silent.address() as AddressInfo).port}`);
    const s = await waitFor(async () => {
      const j = (await (await fetch(`${admin}/v1/status`)).json()) as any;
      return j.sip.targets.some((t: { state: string }) => t.state === "down") ? j : undefined;
    }, 10_000);
    expect(s.sip.targets[0]).toMatchObject({ state: "down" });
    expect(await (await fetch(`${admin}/v1/status?format=text`)).text()).toContain("DOWN");
  });
});
