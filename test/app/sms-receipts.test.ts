/**
 * Delivery receipts back to the submitter, through a whole didgate with real peers (npm smpp): a
 * carrier that submits (or delivers) with registered_delivery gets a deliver_sm receipt
 * (esm_class 0x04, `id:` the id didgate returned, stat, receipted_message_id and message_state)
 * once the message reached its webhook or app; a message forwarded to an outbound bind gets the
 * carrier's receipt relayed with the submitter's own id. Direct mode first, then spool mode
 * (Redis) where a dead-lettered message gets UNDELIV.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { connectEsme, startSmsc, type SmppPdu, type TestEsme, type TestSmsc } from "../helpers/smsc.js";

let receiver: Server;
let hook: string;
let status = 200;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(status).end());
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/in`;
});

afterAll(async () => {
  await new Promise<void>((r) => receiver.close(() => r()));
});

const receiptsOf = (e: TestEsme) => e.received.filter((p) => p.command === "deliver_sm" && ((p.esm_class as number) & 0x3c) === 0x04);

function text(p: SmppPdu): string {
  const sm = p.short_message as { message: string | Buffer };
  return String(sm.message);
}

function cstr(v: unknown): string {
  return String(v).replace(/\0+$/, "");
}

describe("receipts in direct mode", () => {
  let app: Didgate;
  let admin: string;
  let carrier: TestEsme;
  let appEsme: TestEsme;
  let smsc: TestSmsc;

  beforeAll(async () => {
    smsc = await startSmsc();
    const dir = tempDir();
    writeRoutes(dir, {
      "+15125550100": { sms: { webhook: hook } },
      "+15125550200": { sms: { smpp: "app-1" } },
      "+15125550300": { sms: { smpp: "smsc-b" } },
    });
    ({ app, admin } = await startApp(
      {
        routes: { file: "routes.yaml" },
        webhooks: { timeout_ms: 1000, allow_private: ["127.0.0.0/8"] },
        smpp: {
          listen: "127.0.0.1:0",
          handler_timeout_s: 3,
          accounts: [
            { system_id: "carrier", password: "pw-c", role: "carrier", country_code: "1" },
            { system_id: "app-1", password: "pw-a", role: "app" },
          ],
          binds: [{ name: "smsc-b", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", mode: "transceiver" }],
        },
      },
      dir,
    ));
    const port = app.smpp!.address()!.port;
    carrier = await connectEsme(port);
    expect((await carrier.bind("bind_transceiver", "carrier", "pw-c")).command_status).toBe(0);
    appEsme = await connectEsme(port);
    expect((await appEsme.bind("bind_receiver", "app-1", "pw-a")).command_status).toBe(0);
    await smsc.waitBound();
  });

  afterAll(async () => {
    await carrier?.close();
    await appEsme?.close();
    await app?.stop(1000);
    await smsc?.close();
  });

  const submit = (to: string, fields: Record<string, unknown> = {}) =>
    carrier.send("submit_sm", { source_addr: "447700900123", source_addr_ton: 1, source_addr_npi: 1, destination_addr: to, short_message: "hello receipts", registered_delivery: 1, ...fields });

  it("a message delivered to its webhook gets a DELIVRD receipt with didgate's id", async () => {
    const before = receiptsOf(carrier).length;
    const r = await submit("15125550100");
    expect(r.command_status).toBe(0);
    const id = cstr(r.message_id);
    expect(id.length).toBeGreaterThan(0);
    const rc = await waitFor(() => (receiptsOf(carrier).length > before ? receiptsOf(carrier).at(-1) : undefined));
    expect(text(rc)).toMatch(new RegExp(`^id:${id} sub:001 dlvrd:001 submit date:\\d{10} done date:\\d{10} stat:DELIVRD err:000 text:hello receipts$`));
    expect(cstr(rc.receipted_message_id)).toBe(id);
    expect(rc.message_state).toBe(2);
    // from the recipient back to the sender
    expect([rc.source_addr, rc.destination_addr]).toEqual(["15125550100", "447700900123"]);
  });

  it("a deliver_sm with registered_delivery gets its id in deliver_sm_resp and a receipt with it", async () => {
    const before = receiptsOf(carrier).length;
    const r = await carrier.send("deliver_sm", { source_addr: "447700900123", destination_addr: "15125550100", short_message: "via deliver_sm", registered_delivery: 1 });
    expect(r.command_status).toBe(0);
    const id = cstr(r.message_id);
    expect(id.length).toBeGreaterThan(0);
    const rc = await waitFor(() => (receiptsOf(carrier).length > before ? receiptsOf(carrier).at(-1) : undefined));
    expect(text(rc)).toContain(`id:${id} `);
  });

  it("a message delivered to an app account gets DELIVRD; failure-only receipts are not sent on success", async () => {
    const before = receiptsOf(carrier).length;
    const r = await submit("15125550200");
    const rc = await waitFor(() => (receiptsOf(carrier).length > before ? receiptsOf(carrier).at(-1) : undefined));
    expect(text(rc)).toContain(`id:${cstr(r.message_id)} `);
    expect(text(rc)).toContain("stat:DELIVRD");
    const n = receiptsOf(carrier).length;
    expect((await submit("15125550100", { registered_delivery: 2 })).command_status).toBe(0);
    expect((await submit("15125550100", { registered_delivery: 0 })).command_status).toBe(0);
    await new Promise((res) => setTimeout(res, 300));
    expect(receiptsOf(carrier).length).toBe(n);
  });

  it("a receipt for a submitter bound as transmitter only waits until it binds a session that can receive (a transceiver)", async () => {
    const tx = await connectEsme(app.smpp!.address()!.port);
    try {
      expect((await tx.bind("bind_transmitter", "carrier", "pw-c")).command_status).toBe(0);
      // the transceiver of beforeAll would take it: unbind it for this test
      await carrier.close();
      await waitFor(() => ![...app.smpp!.receivingAccounts()].includes("carrier"));
      const r = await tx.send("submit_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: "15125550100", short_message: "waits", registered_delivery: 1 });
      expect(r.command_status).toBe(0);
      await waitFor(async () => (await (await fetch(`${admin}/metrics`)).text()).match(/didgate_sms_receipts_sent_total\{stat="DELIVRD",outcome="queued"\} 1/));
      carrier = await connectEsme(app.smpp!.address()!.port);
      expect((await carrier.bind("bind_transceiver", "carrier", "pw-c")).command_status).toBe(0);
      const rc = await waitFor(() => receiptsOf(carrier).find((p) => text(p).includes(`id:${cstr(r.message_id)} `)), 5000);
      expect(text(rc)).toContain("stat:DELIVRD");
    } finally {
      await tx.close();
    }
  });

  it("a message forwarded to an outbound bind asks the SMSC for a receipt and relays it with the submitter's id", async () => {
    const before = receiptsOf(carrier).length;
    const r = await submit("15125550300");
    expect(r.command_status).toBe(0);
    const id = cstr(r.message_id);
    const sub = await waitFor(() => smsc.received.filter((p) => p.command === "submit_sm").at(-1));
    expect(sub.registered_delivery).toBe(1);
    // accepted by the SMSC is not delivered: no receipt yet
    await new Promise((res) => setTimeout(res, 200));
    expect(receiptsOf(carrier).length).toBe(before);
    const smscId = "m" + smsc.received.filter((p) => p.command === "submit_sm").length; // the test SMSC numbers its ids
    const resp = await smsc.send("deliver_sm", {
      source_addr: "15125550300",
      destination_addr: "447700900123",
      esm_class: 0x04,
      short_message: `id:${smscId} sub:001 dlvrd:000 submit date:2612041000 done date:2612041001 stat:UNDELIV err:012 text:hello`,
      receipted_message_id: smscId,
      message_state: 5,
    });
    expect(resp.command_status).toBe(0);
    const rc = await waitFor(() => (receiptsOf(carrier).length > before ? receiptsOf(carrier).at(-1) : undefined));
    expect(text(rc)).toMatch(new RegExp(`^id:${id} sub:001 dlvrd:000 .* stat:UNDELIV err:012 `));
    expect(cstr(rc.receipted_message_id)).toBe(id);
    expect(rc.message_state).toBe(5);
  });
});

describe("receipts in spool mode", () => {
  let redis: TestRedis;
  let app: Didgate;
  let carrier: TestEsme;

  beforeAll(async () => {
    redis = await startRedis();
    const client = new Redis(redis.url);
    await new RedisRouteWriter(client, { prefix: "didgate:", streamMaxlen: 1000 }).set("+15125550100", { sms: { webhook: hook } });
    client.disconnect();
    const dir = tempDir();
    ({ app } = await startApp(
      {
        routes: { redis: { url: redis.url, snapshot: "snap.json" } },
        webhooks: { timeout_ms: 1000, allow_private: ["127.0.0.0/8"] },
        smpp: { listen: "127.0.0.1:0", accounts: [{ system_id: "carrier", password: "pw-c", role: "carrier", country_code: "1" }] },
        instance_id: "edge-r",
      },
      dir,
    ));
    carrier = await connectEsme(app.smpp!.address()!.port);
    expect((await carrier.bind("bind_transceiver", "carrier", "pw-c")).command_status).toBe(0);
  }, 60_000);

  afterAll(async () => {
    status = 200;
    await carrier?.close();
    await app?.stop(500);
    await appB?.stop(500);
    await redis?.stop();
  });

  let appB: Didgate | undefined;

  it("a receipt waits in Redis for the edge the submitter can receive on", async () => {
    status = 200;
    // submits on edge A as transmitter only: A delivers, and has no session to send the receipts on
    const tx = await connectEsme(app.smpp!.address()!.port);
    let rx: TestEsme | undefined;
    try {
      expect((await tx.bind("bind_transmitter", "carrier", "pw-c")).command_status).toBe(0);
      await carrier.close();
      await waitFor(() => ![...app.smpp!.receivingAccounts()].includes("carrier"));
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await tx.send("submit_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: "15125550100", short_message: "cross " + i, registered_delivery: 1 });
        expect(r.command_status).toBe(0);
        ids.push(cstr(r.message_id));
      }
      await waitFor(async () => Number(await redis.cli("LLEN", "didgate:smpp:receipts:carrier")) === 4 || undefined, 10_000);
      // a second edge on the same Redis, where the carrier binds a transceiver, sends them
      ({ app: appB } = await startApp(
        {
          routes: { redis: { url: redis.url, snapshot: "snap.json" } },
          webhooks: { timeout_ms: 1000, allow_private: ["127.0.0.0/8"] },
          smpp: { listen: "127.0.0.1:0", accounts: [{ system_id: "carrier", password: "pw-c", role: "carrier", country_code: "1" }] },
          instance_id: "edge-r2",
        },
        tempDir(),
      ));
      rx = await connectEsme(appB!.smpp!.address()!.port);
      expect((await rx.bind("bind_transceiver", "carrier", "pw-c")).command_status).toBe(0);
      for (const id of ids) {
        const rc = await waitFor(() => receiptsOf(rx!).find((p) => text(p).includes(`id:${id} `)), 10_000);
        expect(text(rc)).toContain("stat:DELIVRD");
      }
      expect(receiptsOf(rx)).toHaveLength(4);
      expect(Number(await redis.cli("LLEN", "didgate:smpp:receipts:carrier"))).toBe(0);
    } finally {
      await tx.close();
      await rx?.close();
      carrier = await connectEsme(app.smpp!.address()!.port);
      expect((await carrier.bind("bind_transceiver", "carrier", "pw-c")).command_status).toBe(0);
    }
  }, 30_000);

  it("DELIVRD once the spooled message reaches its webhook; UNDELIV when it is dead-lettered (410)", async () => {
    status = 200;
    const ok = await carrier.send("submit_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: "15125550100", short_message: "spooled", registered_delivery: 1 });
    expect(ok.command_status).toBe(0);
    const r1 = await waitFor(() => receiptsOf(carrier).find((p) => text(p).includes(`id:${cstr(ok.message_id)} `)));
    expect(text(r1)).toContain("stat:DELIVRD");
    status = 410;
    const bad = await carrier.send("submit_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: "15125550100", short_message: "refused", registered_delivery: 1 });
    expect(bad.command_status).toBe(0);
    const r2 = await waitFor(() => receiptsOf(carrier).find((p) => text(p).includes(`id:${cstr(bad.message_id)} `)));
    expect(text(r2)).toContain("stat:UNDELIV");
    expect(r2.message_state).toBe(5);
  });
});
