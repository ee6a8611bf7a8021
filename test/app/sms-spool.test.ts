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
/** A route's own secret: it signs that route's webhooks and must never be written to Redis by the spool. */
const ROUTE_SECRET = "whsec_cm91dGUtc2VjcmV0LW5ldmVyLWF0LXJlc3Q=";
let redis: TestRedis;
let client: Redis;
let receiver: Server;
let receiverUp = false;
const hits: { id: string; body: any; ok: boolean; okRoute: boolean }[] = [];
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
      const okRoute = verifyWebhook(ROUTE_SECRET, req.headers as Record<string, string>, body);
      hits.push({ id: String(req.headers["webhook-id"]), body: JSON.parse(body), ok, okRoute });
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

  it("a spooled message holds no webhook secret in Redis; it is signed with its route's secret when delivered", async () => {
    const writer = new RedisRouteWriter(client, { prefix: "didgate:", streamMaxlen: 10_000 });
    await writer.set("+15125550177", { tenant: "t1", sms: { webhook: hook, webhook_secret: ROUTE_SECRET } });
    await waitFor(() => app.store.current.get("+15125550177"), 5000);
    receiverUp = false;
    const before = hits.length;
    const resp = await carrier.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: "5125550177", short_message: "secret at rest" });
    expect(resp.command_status).toBe(0);
    // The first attempt was refused (503): the job now waits in Redis for its retry.
    await waitFor(() => hits.slice(before).some((h) => h.body.text === "secret at rest"), 10_000);
    const stored: string[] = [];
    // The spool's keys (the routes hash holds the route entry, secret included: that is configuration).
    for (const key of ["didgate:inbound", "didgate:retry", "didgate:retry:age", "didgate:dlq"]) {
      const type = await client.type(key);
      if (type === "stream") stored.push(JSON.stringify(await client.xrange(key, "-", "+")));
      else if (type === "zset") stored.push(JSON.stringify(await client.zrange(key, "0", "-1")));
      else if (type === "hash") stored.push(JSON.stringify(await client.hgetall(key)));
      else if (type === "string") stored.push(String(await client.get(key)));
      else if (type === "set") stored.push(JSON.stringify(await client.smembers(key)));
    }
    const all = stored.join("\n");
    expect(all).toContain("secret at rest"); // the job is there...
    expect(all).toContain("secretRef");
    expect(all).not.toContain(ROUTE_SECRET); // ...without the secret
    expect(all).not.toContain(ROUTE_SECRET.slice("whsec_".length));
    receiverUp = true;
    await waitFor(() => hits.slice(before).some((h) => h.body.text === "secret at rest" && h.okRoute), 20_000);
    const attempts = hits.slice(before).filter((h) => h.body.text === "secret at rest");
    expect(attempts.every((h) => h.okRoute && !h.ok)).toBe(true);
  }, 40_000);
});
