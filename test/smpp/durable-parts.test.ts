/**
 * SmppService with a durable part store (RedisPartStore behind SmppPartStore, real redis-server, real
 * ESME): answers after the store, temporary failure on a full store or an unreachable Redis, retry
 * of a final part after a temporary answer, sweep of a complete buffer nobody retried; stored part
 * decoding never throws on bad input.
 */
import fc from "fast-check";
import pino from "pino";
import { Registry } from "prom-client";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RedisPartStore } from "../../src/delivery/parts.js";
import { spoolConnect } from "../../src/delivery/redis.js";
import { RedisConnector } from "../../src/redis/client.js";
import { SmppPartStore } from "../../src/edge/sms-parts.js";
import { gsm7Encode } from "../../src/smpp/charset.js";
import { SmppService } from "../../src/smpp/service.js";
import { decodePart } from "../../src/smpp/inbound.js";
import type { AcceptResult, InboundSms } from "../../src/smpp/types.js";
import { waitFor as waitUntil } from "../helpers/app.js";
import { freePort, startRedis, type TestRedis } from "../helpers/redis.js";
import { connectEsme, waitFor, type TestEsme } from "../helpers/smsc.js";

let redis: TestRedis;
let client: Redis;
let prefixSeq = 0;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
}, 30_000);
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

async function setup(o: { timeoutMs?: number; maxBuffers?: number; perPeer?: number; redisClient?: Redis } = {}) {
  const prefix = `dp${process.pid}x${++prefixSeq}:`;
  const store = new RedisPartStore({ client: o.redisClient ?? client, prefix, timeoutMs: o.timeoutMs ?? 60_000, maxBuffers: o.maxBuffers ?? 0 });
  const messages: InboundSms[] = [];
  const ctl = { answer: (async () => ({ status: "accepted" })) as (m: InboundSms) => Promise<AcceptResult> };
  const edge = new SmppService({
    config: {
      listen: "127.0.0.1:0",
      accounts: [
        { system_id: "c", password: "p", role: "carrier" },
        { system_id: "app1", password: "p", role: "app", may_submit: true },
        { system_id: "app2", password: "p", role: "app", may_submit: true },
      ],
      handler_timeout_s: 2,
      ...(o.perPeer !== undefined ? { reassembly: { max_buffers_per_peer: o.perPeer } } : {}),
    },
    logger: pino({ level: "silent" }),
    registry: new Registry(),
    partStore: new SmppPartStore(store),
    partSweepMs: 50,
    onMessage: (m) => {
      messages.push(m);
      return ctl.answer(m);
    },
    onReceipt: () => {},
  });
  await edge.start();
  cleanup.push(() => edge.close());
  const esme = await connectEsme(edge.address()!.port);
  cleanup.push(() => esme.close());
  expect((await esme.bind("bind_transceiver", "c", "p")).command_status).toBe(0);
  return { edge, esme, messages, ctl, store, prefix };
}

async function part(e: TestEsme, ref: number, total: number, seq: number, text: string, command = "deliver_sm"): Promise<number> {
  const ud = Buffer.concat([Buffer.from([5, 0, 3, ref, total, seq]), Buffer.from(gsm7Encode(text)!)]);
  return (await e.send(command, { source_addr: "447700900123", destination_addr: "15125550100", esm_class: 0x40, short_message: ud })).command_status;
}

describe("durable reassembly through the edge", () => {
  it("a final part answered temporary stays in Redis; the retry completes it again, then it is forgotten", async () => {
    const { esme, messages, ctl, store, prefix } = await setup();
    expect(await part(esme, 9, 2, 1, "a")).toBe(0);
    expect(await client.hget(`${prefix}parts:account:c:447700900123:15125550100:udh8:9:2`, "#t")).toBe("2");
    ctl.answer = async () => ({ status: "temporary" });
    expect(await part(esme, 9, 2, 2, "b")).toBe(0x64);
    expect(await store.size()).toBe(1);
    ctl.answer = async () => ({ status: "accepted" });
    expect(await part(esme, 9, 2, 2, "b")).toBe(0);
    expect(messages.map((m) => [m.text, m.parts, m.partial, m.peer])).toEqual([
      ["ab", 2, false, "c"],
      ["ab", 2, false, "c"],
    ]);
    expect(messages[1]!.message_id).toBe(messages[0]!.message_id); // the first part's id: stable across retries
    await waitUntil(async () => (await store.size()) === 0); // done() after the answer
  });

  it("a part sent again while its completed message is being delivered is a duplicate: the message goes once", async () => {
    const { esme, messages, ctl, store } = await setup();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    ctl.answer = async () => {
      await held;
      return { status: "accepted" };
    };
    expect(await part(esme, 4, 2, 1, "AAA")).toBe(0);
    const last = part(esme, 4, 2, 2, "CCC");
    await waitFor(() => messages.length === 1, 2000, "the completed message handed over");
    // the app repeats both parts before the first answer: answered, not delivered again
    expect(await part(esme, 4, 2, 1, "AAA")).toBe(0);
    expect(await part(esme, 4, 2, 2, "CCC")).toBe(0);
    release();
    expect(await last).toBe(0);
    await waitUntil(async () => (await store.size()) === 0);
    expect(messages.map((m) => m.text)).toEqual(["AAACCC"]);
  });

  it("an app has at most its share of buffers open; other peers still store parts; a completed buffer frees its place; carriers are not counted", async () => {
    const { edge, esme, messages } = await setup({ perPeer: 3 });
    const connect = async (id: string): Promise<TestEsme> => {
      const e = await connectEsme(edge.address()!.port);
      cleanup.push(() => e.close());
      expect((await e.bind("bind_transceiver", id, "p")).command_status).toBe(0);
      return e;
    };
    const app = await connect("app1");
    const sub = (e: TestEsme, ref: number, seq: number, text: string) => part(e, ref, 2, seq, text, "submit_sm");
    for (let ref = 1; ref <= 3; ref++) expect(await sub(app, ref, 1, "p" + ref)).toBe(0);
    expect(await sub(app, 4, 1, "p4")).toBe(0x64);
    // a part of a buffer already open is still taken
    expect(await sub(app, 2, 1, "p2")).toBe(0);
    const other = await connect("app2");
    expect(await sub(other, 4, 1, "q4")).toBe(0);
    // ref 1 completes: its place is free again
    expect(await sub(app, 1, 2, "!")).toBe(0);
    expect(messages.map((m) => m.text)).toEqual(["p1!"]);
    expect(await sub(app, 4, 1, "p4")).toBe(0);
    // a carrier (which may spread parts over edges) is not held to the share
    for (let ref = 10; ref <= 15; ref++) expect(await part(esme, ref, 2, 1, "c" + ref)).toBe(0);
  });

  it("a complete message nobody retried after a temporary answer is swept and delivered whole", async () => {
    const { esme, messages, ctl, store } = await setup({ timeoutMs: 300 });
    expect(await part(esme, 3, 2, 2, "y")).toBe(0);
    ctl.answer = async () => ({ status: "temporary" });
    expect(await part(esme, 3, 2, 1, "x")).toBe(0x64);
    ctl.answer = async () => ({ status: "accepted" });
    await waitFor(() => messages.length === 2, 5000, "sweep");
    expect(messages[1]).toMatchObject({ text: "xy", parts: 2, total_parts: 2, partial: false });
    await waitUntil(async () => (await store.size()) === 0);
    await new Promise((r) => setTimeout(r, 200)); // a few more sweeps: nothing more
    expect(messages).toHaveLength(2);
  });

  it("a full store and an unreachable Redis answer the part with a temporary failure", async () => {
    const { esme, messages } = await setup({ maxBuffers: 1 });
    expect(await part(esme, 1, 2, 1, "a")).toBe(0);
    expect(await part(esme, 2, 2, 1, "b")).toBe(0x64); // a second buffer: full
    expect(await part(esme, 1, 2, 2, "c")).toBe(0); // the first buffer still completes
    await waitFor(() => messages.length === 1, 2000, "message");
    expect(messages[0]!.text).toBe("ac");

    const dead = spoolConnect(RedisConnector.fromUrl(`redis://127.0.0.1:${await freePort()}`), "didgate-parts", { retryStrategy: () => null })("enqueue") as Redis;
    dead.on("error", () => undefined);
    cleanup.push(() => dead.disconnect());
    const down = await setup({ redisClient: dead });
    expect(await part(down.esme, 4, 2, 1, "z")).toBe(0x64);
    expect(down.messages).toHaveLength(0);
  });
});

describe("stored part decoding", () => {
  it("the first part's schedule_delivery_time and validity_period come with the assembled message", async () => {
    const { esme, messages } = await setup();
    const send = (seq: number, text: string) =>
      esme.send("submit_sm", {
        source_addr: "447700900123",
        destination_addr: "15125550100",
        esm_class: 0x40,
        schedule_delivery_time: seq === 1 ? "000000010000000R" : "",
        validity_period: seq === 1 ? "261231235959000+" : "",
        short_message: Buffer.concat([Buffer.from([5, 0, 3, 0x42, 2, seq]), Buffer.from(gsm7Encode(text)!)]),
      });
    expect((await send(2, "world")).command_status).toBe(0);
    expect((await send(1, "hello ")).command_status).toBe(0);
    const m = await waitFor(() => messages.find((x) => x.text === "hello world"));
    expect([m.schedule_delivery_time, m.validity_period]).toEqual(["000000010000000R", "261231235959000+"]);
  });

  it("never throws and rejects what is not a stored part", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ v: 1, seq: 1, units: "", ...(typeof v === "object" && v !== null ? v : { x: v }) }))), (s) => {
        const p = decodePart(s);
        if (p !== undefined) expect(p.seq).toBe(1);
      }),
      { numRuns: 2000 },
    );
    expect(decodePart("null")).toBeUndefined();
    expect(decodePart('{"v":1}')).toBeUndefined();
  });
});
