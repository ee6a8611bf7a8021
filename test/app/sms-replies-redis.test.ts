/**
 * Replies and opt-out with Redis (real redis-server), two didgate edges sharing it: a STOP a
 * carrier (npm smpp ESME) delivers to edge A is recorded in Redis, so an app bound to edge B is
 * refused (ESME_RX_R_APPN) when it sends to that sender from that number, and allowed again after
 * START on edge A. Confirmations and webhook replies go through the Redis spool to the outbound
 * bind (an npm smpp SMSC peer), from the DID to the sender.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { DEFAULT_OPTOUT_TEXTS } from "../../src/edge/sms-keywords.js";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { STATUS } from "../../src/smpp/constants.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { connectEsme, startSmsc, submittedTo, type TestEsme, type TestSmsc } from "../helpers/smsc.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
let redis: TestRedis;
let client: Redis;
let receiver: Server;
let smsc: TestSmsc;
let edgeA: Didgate;
let edgeB: Didgate;
let carrier: TestEsme;
let appEsme: TestEsme;

const sent = (to: string) => submittedTo(smsc, to);
const waitSent = (to: string, n: number) => waitFor(() => (sent(to).length >= n ? sent(to) : undefined), 10_000);

async function startEdge(id: string): Promise<Didgate> {
  const { app } = await startApp(
    {
      instance_id: id,
      routes: { redis: { url: redis.url, snapshot: "snap.json" } },
      webhooks: { secret: SECRET, timeout_ms: 2000, allow_private: ["127.0.0.0/8"] },
      smpp: {
        listen: "127.0.0.1:0",
        accounts: [
          { system_id: "carrier-1", password: "pw-c", role: "carrier", country_code: "1" },
          { system_id: "app-1", password: "pw-a", role: "app", tenant: "acme", country_code: "1" },
        ],
        binds: [{ name: "smsc-r", host: "127.0.0.1", port: smsc.port, system_id: `didgate-${id}`, password: "pw", mode: "transceiver" }],
      },
    },
    tempDir(),
  );
  await waitFor(() => app.smpp!.clients.get("smsc-r")!.isBound);
  return app;
}

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const j = JSON.parse(body);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ reply: j.text === "hi" ? "Hello from acme" : "" }));
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/in`;
  const w = new RedisRouteWriter(client, { prefix: "didgate:", streamMaxlen: 10_000 });
  await w.set("+15125550100", { tenant: "acme", sms: { webhook: hook, optout: { start_reply: "" } } });
  await w.setOutbound("+44*", { sms: ["smsc-r"] });
  smsc = await startSmsc({ idPrefix: "s" });
  edgeA = await startEdge("edge-a");
  edgeB = await startEdge("edge-b");
  carrier = await connectEsme(edgeA.smpp!.address()!.port);
  expect((await carrier.bind("bind_transceiver", "carrier-1", "pw-c")).command_status).toBe(0);
  appEsme = await connectEsme(edgeB.smpp!.address()!.port);
  expect((await appEsme.bind("bind_transceiver", "app-1", "pw-a")).command_status).toBe(0);
}, 60_000);

afterAll(async () => {
  await carrier?.close();
  await appEsme?.close();
  await edgeA?.stop(500);
  await edgeB?.stop(500);
  await smsc?.close();
  client?.disconnect();
  await redis?.stop();
  await new Promise<void>((r) => receiver.close(() => r()));
});

const deliver = (from: string, text: string) => carrier.send("deliver_sm", { source_addr: from, source_addr_ton: 1, source_addr_npi: 1, destination_addr: "15125550100", dest_addr_ton: 1, dest_addr_npi: 1, short_message: text });
const appSubmit = (to: string) => appEsme.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, source_addr_npi: 1, destination_addr: to, dest_addr_ton: 1, dest_addr_npi: 1, short_message: "promo" });

describe("opt-out shared through Redis", () => {
  it("spool mode: a webhook's reply goes through the spool to the sender", async () => {
    expect(edgeA.delivery!.mode).toBe("spool");
    expect((await deliver("447700900001", "hi")).command_status).toBe(0);
    expect(await waitSent("447700900001", 1)).toEqual([["15125550100", "Hello from acme"]]);
  });

  it("STOP on edge A: confirmed, stored in Redis, and edge B refuses the app's message; START on A: B sends again (an empty start_reply sends no confirmation)", async () => {
    const who = "447700900002";
    expect((await deliver(who, "STOP")).command_status).toBe(0);
    expect(await client.sismember("didgate:optout:+15125550100", `+${who}`)).toBe(1);
    expect(await waitSent(who, 1)).toEqual([["15125550100", DEFAULT_OPTOUT_TEXTS.stop]]);
    expect((await appSubmit(who)).command_status).toBe(STATUS.ESME_RX_R_APPN);
    expect((await deliver(who, "START")).command_status).toBe(0);
    expect(await client.sismember("didgate:optout:+15125550100", `+${who}`)).toBe(0);
    expect((await appSubmit(who)).command_status).toBe(0);
    const all = await waitSent(who, 2);
    expect(all).toEqual([
      ["15125550100", DEFAULT_OPTOUT_TEXTS.stop],
      ["15125550100", "promo"],
    ]);
  });
});
