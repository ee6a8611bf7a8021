/**
 * Concatenated SMS in spool mode: acknowledged parts are kept in Redis (RedisPartStore), so a
 * restart of the edge mid-message loses no part. Whole didgate instances, a real redis-server with
 * AOF, a real carrier ESME (npm smpp) and a webhook receiver.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { gsm7Encode } from "../../src/smpp/charset.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { connectEsme, type TestEsme } from "../helpers/smsc.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
let redis: TestRedis;
let client: Redis;
let receiver: Server;
let hook: string;
const hits: { id: string; body: any }[] = [];
const dir = tempDir();
/** What each test started, stopped in afterEach (newest first). */
const running: { app?: Didgate; esme?: TestEsme }[] = [];

beforeAll(async () => {
  redis = await startRedis({ persistence: true });
  client = new Redis(redis.url);
  client.on("error", () => undefined);
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      hits.push({ id: String(req.headers["webhook-id"]), body: JSON.parse(body) });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/in`;
  await new RedisRouteWriter(client, { prefix: "didgate:", streamMaxlen: 10_000 }).set("+1512555*", { tenant: "t1", sms: { webhook: hook } });
}, 30_000);

afterEach(async () => {
  for (const r of running.splice(0).reverse()) {
    await r.esme?.close();
    await r.app?.stop(500);
  }
});

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
  await new Promise<void>((r) => receiver.close(() => r()));
});

/** A spool-mode didgate with one carrier account, and that carrier bound to it. */
async function edge(reassembly: Record<string, unknown> = {}): Promise<{ app: Didgate; esme: TestEsme }> {
  const slot: { app?: Didgate; esme?: TestEsme } = {};
  running.push(slot);
  const { app } = await startApp(
    {
      routes: { redis: { url: redis.url, snapshot: "snap.json" } },
      webhooks: { secret: SECRET, timeout_ms: 1000, allow_private: ["127.0.0.0/8"] },
      smpp: { listen: "127.0.0.1:0", accounts: [{ system_id: "smsc-a", password: "pw", role: "carrier", country_code: "1" }], reassembly },
      instance_id: "edge-parts",
    },
    dir,
  );
  slot.app = app;
  expect(app.delivery!.mode).toBe("spool");
  const esme = await connectEsme(app.smpp!.address()!.port);
  slot.esme = esme;
  expect((await esme.bind("bind_transceiver", "smsc-a", "pw")).command_status).toBe(0);
  return { app, esme };
}

/** Part `seq` of `total` (8-bit UDH reference `ref`) to `to`; resolves with deliver_sm_resp's status. */
async function part(esme: TestEsme, to: string, ref: number, total: number, seq: number, text: string): Promise<number> {
  const ud = Buffer.concat([Buffer.from([5, 0, 3, ref, total, seq]), Buffer.from(gsm7Encode(text)!)]);
  const r = await esme.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: to, esm_class: 0x40, short_message: ud });
  return r.command_status;
}

const hitsTo = (e164: string) => hits.filter((h) => h.body.to === e164);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bufferKeys = async () => (await client.keys("didgate:parts:*")).filter((k) => k !== "didgate:parts:due");

describe("reassembly parts in Redis (spool mode)", () => {
  it("a 3-part message sent out of order with a duplicate arrives once, complete", async () => {
    const { esme } = await edge();
    expect(await part(esme, "5125550101", 11, 3, 3, "three.")).toBe(0);
    expect(await part(esme, "5125550101", 11, 3, 1, "one, ")).toBe(0);
    expect(await bufferKeys()).toHaveLength(1); // acknowledged parts are in Redis
    expect(await part(esme, "5125550101", 11, 3, 1, "one, ")).toBe(0); // duplicate
    expect(await part(esme, "5125550101", 11, 3, 2, "two, ")).toBe(0);
    const h = await waitFor(() => hitsTo("+15125550101")[0], 10_000);
    expect(h.body).toMatchObject({ type: "message.received", from: "+447700900123", text: "one, two, three.", parts: 3, tenant: "t1" });
    expect(h.body.partial).toBeUndefined();
    await sleep(300);
    expect(hitsTo("+15125550101")).toHaveLength(1);
    expect(await bufferKeys()).toEqual([]); // done() after the spool took it
    expect(await client.zcard("didgate:parts:due")).toBe(0);
  }, 30_000);

  it("a restart mid-message loses no part: parts 1 and 2 at one edge, part 3 at a new one", async () => {
    const first = await edge();
    expect(await part(first.esme, "5125550102", 12, 3, 1, "before ")).toBe(0);
    expect(await part(first.esme, "5125550102", 12, 3, 2, "the restart, ")).toBe(0);
    await first.esme.close();
    await first.app.stop(500); // drain: nothing of this message is delivered (no partial on shutdown)
    expect(hitsTo("+15125550102")).toEqual([]);
    // Redis crashes too while no edge runs (AOF, fsync always).
    await redis.kill();
    await redis.restart();
    const second = await edge();
    expect(await part(second.esme, "5125550102", 12, 3, 3, "after it.")).toBe(0);
    const h = await waitFor(() => hitsTo("+15125550102")[0], 10_000);
    expect(h.body).toMatchObject({ text: "before the restart, after it.", parts: 3 });
    expect(h.body.partial).toBeUndefined();
    await sleep(300);
    expect(hitsTo("+15125550102")).toHaveLength(1);
    expect(await bufferKeys()).toEqual([]);
  }, 40_000);

  it("a buffer missing a part is swept after the timeout and delivered as partial", async () => {
    const { app, esme } = await edge({ timeout_s: 1 });
    expect(await part(esme, "5125550103", 13, 3, 1, "first ")).toBe(0);
    expect(await part(esme, "5125550103", 13, 3, 3, "third")).toBe(0);
    expect(await bufferKeys()).toHaveLength(1);
    const h = await waitFor(() => hitsTo("+15125550103")[0], 10_000);
    expect(h.body).toMatchObject({ text: "first third", parts: 2, partial: true });
    await waitFor(async () => ((await bufferKeys()).length === 0 ? true : undefined), 5000);
    expect(await app.registry.getSingleMetricAsString("didgate_smpp_reassembly_incomplete_total")).toMatch(/reason="timeout"\} 1/);
    // The missing part comes after its buffer was delivered: it waits in a buffer of its own, then goes alone, partial too.
    expect(await part(esme, "5125550103", 13, 3, 2, "second ")).toBe(0);
    const late = await waitFor(() => hitsTo("+15125550103")[1], 10_000);
    expect(late.body).toMatchObject({ text: "second ", parts: 1, partial: true });
  }, 30_000);
});
