/**
 * SMS through a whole didgate in spool mode (routes and spool in a real Redis): a message is
 * acknowledged ESME_ROK once spooled, while the webhook receiver is down; it arrives signed, with
 * the same webhook-id on every attempt, once the receiver is up. Routes written to Redis apply live.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { verifyWebhook } from "../../src/delivery/webhook.js";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { connectEsme, type TestEsme } from "../helpers/smsc.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
let redis: TestRedis;
let client: Redis;
let receiver: Server;
let receiverUp = false;
const hits: { id: string; body: any; ok: boolean }[] = [];
let app: Didgate;
let carrier: TestEsme;
let hook: string;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const ok = verifyWebhook(SECRET, req.headers as Record<string, string>, body);
      hits.push({ id: String(req.headers["webhook-id"]), body: JSON.parse(body), ok });
      res.writeHead(receiverUp ? 200 : 503).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/in`;
  const writer = new RedisRouteWriter(client, { prefix: "didgate:", streamMaxlen: 10_000 });
  await writer.set("+1512555*", { tenant: "t1", sms: { webhook: hook } });
  const dir = tempDir();
  ({ app } = await startApp(
    {
      routes: { redis: { url: redis.url, snapshot: "snap.json" } },
      webhooks: { secret: SECRET, timeout_ms: 1000, allow_private: ["127.0.0.0/8"] },
      smpp: { listen: "127.0.0.1:0", accounts: [{ system_id: "smsc-a", password: "pw", role: "carrier", country_code: "1" }] },
      instance_id: "edge-test",
    },
    dir,
  ));
  carrier = await connectEsme(app.smpp!.address()!.port);
  expect((await carrier.bind("bind_transceiver", "smsc-a", "pw")).command_status).toBe(0);
}, 60_000);

afterAll(async () => {
  await carrier?.close();
  await app?.stop(500);
  client?.disconnect();
  await redis?.stop();
  await new Promise<void>((r) => receiver.close(() => r()));
});

describe("spool mode", () => {
  it("acknowledges once spooled and delivers when the receiver comes back", async () => {
    expect(app.delivery!.mode).toBe("spool");
    const resp = await carrier.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: "5125550123", short_message: "spooled" });
    expect(resp.command_status).toBe(0);
    await waitFor(() => hits.length >= 1, 10_000);
    expect(hits[0]!.body.text).toBe("spooled");
    receiverUp = true;
    await waitFor(() => hits.length >= 2 && hits.at(-1)!.body.text === "spooled" ? true : undefined, 20_000);
    const ids = new Set(hits.map((h) => h.id));
    expect(ids.size).toBe(1);
    expect(hits.every((h) => h.ok)).toBe(true);
    expect(hits.at(-1)!.body).toMatchObject({ to: "+15125550123", tenant: "t1" });
  }, 40_000);

  it("a route written to Redis applies live to SMS routing", async () => {
    const writer = new RedisRouteWriter(client, { prefix: "didgate:", streamMaxlen: 10_000 });
    await writer.set("+15125550199", { state: "released" });
    await waitFor(() => app.store.current.get("+15125550199"), 5000);
    const resp = await carrier.send("deliver_sm", { source_addr: "447700900123", destination_addr: "5125550199", short_message: "to a released number" });
    expect(resp.command_status).toBe(0x0b);
  });
});
