/**
 * Message records: a delivered inbound message and a refused one each leave one record in the
 * Redis stream <prefix>cdr (real redis-server, real SMPP peer, real webhook receiver), and the
 * delivered number's inbound activity is recorded.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { connectEsme, type TestEsme } from "../helpers/smsc.js";

let redis: TestRedis;
let client: Redis;
let receiver: Server;
let app: Didgate;
let carrier: TestEsme;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  receiver = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200).end());
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/in`;
  const w = new RedisRouteWriter(client, { prefix: "rec:", streamMaxlen: 10_000 });
  await w.set("+15125550100", { tenant: "acme", sms: { webhook: hook } });
  // released 10 days ago: in quarantine by date alone (its state field still says active)
  await w.set("+15125550150", { tenant: "acme", released_at: new Date(Date.now() - 10 * 86_400_000).toISOString(), sms: { webhook: hook } });
  const dir = tempDir();
  ({ app } = await startApp(
    {
      routes: { redis: { url: redis.url, prefix: "rec:", snapshot: "" } },
      webhooks: { timeout_ms: 1000, allow_private: ["127.0.0.0/8"] },
      smpp: { listen: "127.0.0.1:0", accounts: [{ system_id: "smsc-a", password: "pw", role: "carrier", country_code: "1" }] },
      state_dir: dir,
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

describe("message records", () => {
  it("one record per message: delivered, and refused (no route)", async () => {
    expect((await carrier.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: "5125550100", short_message: "hello" })).command_status).toBe(0);
    expect((await carrier.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: "5125550999", short_message: "nobody" })).command_status).toBe(0x0b);
    const entries = await waitFor(async () => {
      const e = (await client.xrange("rec:cdr", "-", "+")) as [string, string[]][];
      return e.length >= 2 ? e : undefined;
    }, 10_000);
    const recs = entries.map(([, f]) => JSON.parse(f[f.indexOf("json") + 1]!));
    expect(recs.every((r) => r.type === "message")).toBe(true);
    const delivered = recs.find((r) => r.status === "delivered");
    const refused = recs.find((r) => r.status === "rejected");
    expect(delivered).toMatchObject({ direction: "inbound", peer: "smsc-a", from: "+447700900123", to: "+15125550100", tenant: "acme", parts: 1, encoding: "ascii", target: "webhook" });
    expect(refused).toMatchObject({ direction: "inbound", reason: "no_route", to: "+15125550999" });
    await app.activity!.flush();
    expect(Number(await client.hget("rec:activity:in", "+15125550100"))).toBeGreaterThan(Date.now() - 60_000);
  });
});

describe("number lifecycle for messages", () => {
  it("a number whose released_at has passed gets ESME_RINVDSTADR, as a call gets 410", async () => {
    const r = await carrier.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: "5125550150", short_message: "to the old holder" });
    expect(r.command_status).toBe(0x0b);
  });
});
