/**
 * Outbound queue gauges per bind (real redis-server, didgate as a child process from dist/, npm
 * smpp SMSC): while the SMSC answers throttled (0x58) the messages an app submitted wait in the
 * Redis spool, and /metrics shows didgate_sms_outbound_queue_depth{bind} and
 * didgate_sms_outbound_queue_oldest_age_seconds{bind} rise; once the SMSC takes them (at the
 * bind's tps) didgate_sms_outbound_bind_tps{bind} shows the rate, and all three fall back to 0.
 * A bind without traffic reports 0 (its label comes from the config). And an HTTP message waiting
 * behind the throttled bind whose recipient opts out meanwhile is never sent: its status_webhook
 * gets `failed` with error 102 (the opt-out is checked again before each send). Without Redis
 * (direct mode, didgate in-process) the gauges count the messages being sent: one waiting for a
 * carrier that answers late.
 */
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Redis } from "ioredis";
import YAML from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import { freePort, startRedis, type TestRedis } from "../helpers/redis.js";
import { connectEsme, startSmsc, type TestEsme, type TestSmsc } from "../helpers/smsc.js";
import { bindAppWhenUp, kill9, spawnServe } from "../helpers/serve.js";


let redis: TestRedis;
let client: Redis;
let smsc: TestSmsc;
let idle: TestSmsc;
let child: ChildProcess | undefined;
let esme: TestEsme | undefined;
let adminPort: number;
let throttle = true;
let apiPort: number;
let receiver: Server;
let hookUrl: string;
const hooks: { status: string; error_code: string | null; id: string }[] = [];
const TOKEN = "acme-token-0123456789abcdef";

async function metrics(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
}
/** A sample's value in a /metrics text (undefined when absent). */
function value(text: string, sample: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(sample + " "));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}
const depth = (m: string, bind: string) => value(m, `didgate_sms_outbound_queue_depth{bind="${bind}"}`);
const age = (m: string, bind: string) => value(m, `didgate_sms_outbound_queue_oldest_age_seconds{bind="${bind}"}`);
const tps = (m: string, bind: string) => value(m, `didgate_sms_outbound_bind_tps{bind="${bind}"}`);

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  const w = new RedisRouteWriter(client, { prefix: "didgate:", streamMaxlen: 10_000 });
  await w.set("+15125550100", { tenant: "acme", sms: { webhook: "http://127.0.0.1:9/in" } });
  await w.setOutbound("+44*", { sms: ["smsc-q"] });
  // throttled (0x58) while `throttle` is set
  smsc = await startSmsc({ idPrefix: "q", submitStatusOf: () => (throttle ? 0x58 : 0) });
  idle = await startSmsc({ idPrefix: "i" });
  receiver = createServer((req, res) => {
    let b = "";
    req.on("data", (d: Buffer) => (b += d.toString()));
    req.on("end", () => {
      hooks.push(JSON.parse(b) as (typeof hooks)[number]);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/status`;
  apiPort = await freePort();
  const smppPort = await freePort();
  adminPort = await freePort();
  const dir = tempDir();
  const cfgPath = join(dir, "didgate.yaml");
  writeFileSync(
    cfgPath,
    YAML.stringify({
      instance_id: "edge-q-1",
      state_dir: dir,
      log: { level: "warn" },
      admin: { listen: `127.0.0.1:${adminPort}` },
      sip: { listen: [] },
      routes: { redis: { url: redis.url, snapshot: "" } },
      webhooks: { allow_private: ["127.0.0.0/8"] },
      api: { listen: `127.0.0.1:${apiPort}`, tokens: [{ token: TOKEN, tenant: "acme" }] },
      smpp: {
        listen: `127.0.0.1:${smppPort}`,
        accounts: [{ system_id: "app-1", password: "pw-a", role: "app", tenant: "acme", country_code: "1" }],
        binds: [
          { name: "smsc-q", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", tps: 10, reconnect_min_s: 0.2, reconnect_max_s: 1 },
          { name: "smsc-idle", host: "127.0.0.1", port: idle.port, system_id: "didgate", password: "pw", reconnect_min_s: 0.2, reconnect_max_s: 1 },
        ],
      },
    }),
  );
  child = spawnServe(cfgPath);
  esme = await bindAppWhenUp(smppPort, "app-1", "pw-a");
}, 60_000);

afterAll(async () => {
  await esme?.close();
  await kill9(child);
  await smsc?.close();
  await idle?.close();
  client?.disconnect();
  await redis?.stop();
  await new Promise<void>((r) => receiver.close(() => r()));
});

describe("outbound queue gauges per bind", () => {
  it("depth and oldest age rise while the SMSC throttles, tps shows the drain, all fall back to 0", async () => {
    const m0 = await metrics();
    expect(depth(m0, "smsc-q")).toBe(0);
    expect(age(m0, "smsc-q")).toBe(0);
    expect(tps(m0, "smsc-q")).toBe(0);
    const n = 40;
    const rs = await Promise.all(
      Array.from({ length: n }, (_, k) => esme!.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: `4477009${String(k).padStart(5, "0")}`, dest_addr_ton: 1, short_message: `queued ${k}` })),
    );
    expect(rs.map((r) => r.command_status)).toEqual(rs.map(() => 0));
    // waiting in the spool for the throttled bind, and getting older
    const up = await waitFor(async () => {
      const m = await metrics();
      return depth(m, "smsc-q") === n && (age(m, "smsc-q") ?? 0) >= 2 ? m : undefined;
    }, 20_000, 200);
    expect(depth(up, "smsc-idle")).toBe(0);
    expect(age(up, "smsc-idle")).toBe(0);
    // the queue lives in Redis, scored by enqueue time
    expect(await client.zcard("didgate:smsout:bq:smsc-q")).toBe(n);
    throttle = false;
    // draining at 10 tps: the tps gauge shows it while the depth goes down
    let sawTps = 0;
    await waitFor(async () => {
      const m = await metrics();
      sawTps = Math.max(sawTps, tps(m, "smsc-q") ?? 0);
      return depth(m, "smsc-q") === 0;
    }, 60_000, 200);
    expect(sawTps).toBeGreaterThan(0);
    expect(sawTps).toBeLessThanOrEqual(10 * 1.5);
    const accepted = new Set(smsc.received.filter((p) => p.command === "submit_sm").map((p) => String((p.short_message as { message: string }).message)));
    expect(accepted.size).toBe(n);
    const down = await metrics();
    expect(depth(down, "smsc-q")).toBe(0);
    expect(age(down, "smsc-q")).toBe(0);
    expect(await client.zcard("didgate:smsout:bq:smsc-q")).toBe(0);
    // nothing submitted for the gauge's window: back to 0
    await waitFor(async () => tps(await metrics(), "smsc-q") === 0, 15_000, 250);
    expect(tps(await metrics(), "smsc-idle")).toBe(0);
  }, 120_000);

  it("a queued HTTP message whose recipient opts out before it is sent: never sent, status_webhook failed with error 102", async () => {
    throttle = true;
    const before = value(await metrics(), "didgate_sms_outbound_opted_out_total") ?? 0;
    const post = await fetch(`http://127.0.0.1:${apiPort}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ from: "+15125550100", to: "+447700900888", text: "waiting promo", status_webhook: hookUrl }),
    });
    expect(post.status).toBe(202);
    const { id } = (await post.json()) as { id: string };
    // tried at the throttled bind at least once, so it is past the enqueue check
    await waitFor(() => smsc.received.some((p) => p.command === "submit_sm" && p.destination_addr === "447700900888"), 20_000);
    await client.sadd("didgate:optout:+15125550100", "+447700900888");
    // (a try that passed its check just before the opt-out is still answered throttled)
    await new Promise((r) => setTimeout(r, 200));
    const openAt = Date.now();
    throttle = false;
    const h = await waitFor(() => hooks.find((x) => x.id === id && x.status === "failed"), 30_000);
    expect(h.error_code).toBe("102");
    const st = (await (await fetch(`http://127.0.0.1:${apiPort}/v1/messages/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { status: string };
    expect(st.status).toBe("failed");
    expect(value(await metrics(), "didgate_sms_outbound_opted_out_total")).toBe(before + 1);
    // nothing reached the SMSC once it accepted again (the earlier tries were refused as throttled)
    expect(smsc.received.filter((p) => p.command === "submit_sm" && p.destination_addr === "447700900888" && (p._at as number) >= openAt)).toEqual([]);
    await waitFor(async () => depth(await metrics(), "smsc-q") === 0, 10_000, 200);
  }, 60_000);
});

describe("outbound queue gauges without Redis (direct mode)", () => {
  let app: Didgate | undefined;
  let late: TestSmsc | undefined;
  let app1: TestEsme | undefined;
  afterAll(async () => {
    await app1?.close();
    await app?.stop(1000);
    await late?.close();
  });

  it("a message waiting for the carrier's late answer counts in its bind's depth and age, then 0", async () => {
    late = await startSmsc({ idPrefix: "d", respondAfterMs: 3000 });
    const dir = tempDir();
    writeFileSync(join(dir, "routes.yaml"), YAML.stringify({ routes: { "+15125550100": { tenant: "acme", sms: { webhook: "http://127.0.0.1:9/in" } } }, outbound: { "+44*": { sms: ["smsc-late"] } } }));
    let admin: string;
    ({ app, admin } = await startApp(
      {
        routes: { file: "routes.yaml" },
        state_dir: dir,
        smpp: {
          listen: "127.0.0.1:0",
          handler_timeout_s: 10,
          accounts: [{ system_id: "app-1", password: "pw-a", role: "app", tenant: "acme", country_code: "1" }],
          binds: [{ name: "smsc-late", host: "127.0.0.1", port: late.port, system_id: "didgate", password: "pw", mode: "transceiver" }],
        },
      },
      dir,
    ));
    await late.waitBound();
    await waitFor(() => app!.smpp!.clients.get("smsc-late")!.isBound);
    app1 = await connectEsme(app.smpp!.address()!.port);
    expect((await app1.bind("bind_transceiver", "app-1", "pw-a")).command_status).toBe(0);
    const scrape = async () => (await fetch(`${admin}/metrics`)).text();
    expect(depth(await scrape(), "smsc-late")).toBe(0);
    // direct mode: the app's answer comes once the carrier answered (3 s)
    const answer = app1.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: "447700900777", dest_addr_ton: 1, short_message: "slow carrier" });
    const m = await waitFor(async () => {
      const t = await scrape();
      return depth(t, "smsc-late") === 1 && (age(t, "smsc-late") ?? 0) >= 1 ? t : undefined;
    }, 10_000, 100);
    expect(tps(m, "smsc-late")).toBeGreaterThan(0);
    expect((await answer).command_status).toBe(0);
    const after = await scrape();
    expect(depth(after, "smsc-late")).toBe(0);
    expect(age(after, "smsc-late")).toBe(0);
  }, 60_000);
});
