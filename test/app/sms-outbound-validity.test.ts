/**
 * The validity of an outbound message, in spool mode (real redis-server): an SMSC (npm smpp server)
 * that answers every submit_sm with ESME_RTHROTTLED (0x58) forever keeps the message waiting and
 * retried until its validity ends; then it ends `expired`: over HTTP (`validity_s`) its status
 * history and its signed message.status webhook (a real HTTP receiver) say expired; over SMPP
 * (validity_period, relative and absolute) the app that asked for a receipt gets a deliver_sm with
 * stat:EXPIRED and its record says expired. The carrier gets the end of the validity as its
 * validity_period. A validity_period that is no SMPP time, or lies in the
 * past, is refused with ESME_RINVEXPIRY. A message does not wait for a pacing slot past its validity.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { verifyWebhook } from "../../src/delivery/webhook.js";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { smppTime } from "../../src/smpp/ops.js";
import { apiCall, outboundRecords, startApp, tempDir, waitFor } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { connectEsme, startSmsc, type TestEsme, type TestSmsc } from "../helpers/smsc.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ACME = "acme-token-0123456789abcdef";
let redis: TestRedis;
let app: Didgate;
let esme: TestEsme;
let smsc: TestSmsc;
let slow: TestSmsc;
let dir: string;
let receiver: Server;
let hookUrl: string;
const hooks: { ok: boolean; body: any }[] = [];

const cstr = (v: unknown): string => String(v ?? "").replace(/\0+$/, "");
const submitsTo = (to: string) => smsc.received.filter((p) => p.command === "submit_sm" && p.destination_addr === to);
const api = (method: string, path: string, body?: unknown) => apiCall(app.api!.address.port, method, path, ACME, body);
const records = () => outboundRecords(dir);
const receiptsOf = (e: TestEsme) => e.received.filter((p) => p.command === "deliver_sm" && ((p.esm_class as number) & 0x3c) === 0x04);



beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      hooks.push({ ok: verifyWebhook(SECRET, req.headers as Record<string, string>, body), body: JSON.parse(body) });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/status`;
  redis = await startRedis();
  const c = new Redis(redis.url);
  const w = new RedisRouteWriter(c, { prefix: "didgate:", streamMaxlen: 10_000 });
  await w.set("+15125550100", { tenant: "acme", sms: { webhook: "http://127.0.0.1:9/in" } });
  await w.setOutbound("+44*", { sms: ["smsc-t"] });
  await w.setOutbound("+33*", { sms: ["smsc-slow"] });
  c.disconnect();
  // throttles every submit, for ever
  smsc = await startSmsc({ idPrefix: "t", submitStatus: 0x58 });
  // accepts everything, paced by didgate to one submit every 5 s
  slow = await startSmsc({ idPrefix: "p" });
  dir = tempDir();
  ({ app } = await startApp(
    {
      routes: { redis: { url: redis.url, snapshot: "" } },
      state_dir: dir,
      records: { jsonl: { path: "records.jsonl" } },
      api: { listen: "127.0.0.1:0", tokens: [{ token: ACME, tenant: "acme" }] },
      webhooks: { secret: SECRET, timeout_ms: 1000, allow_private: ["127.0.0.0/8"] },
      smpp: {
        listen: "127.0.0.1:0",
        accounts: [{ system_id: "app-1", password: "pw-a", role: "app", tenant: "acme", country_code: "1" }],
        binds: [
          { name: "smsc-t", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", mode: "transceiver" },
          { name: "smsc-slow", host: "127.0.0.1", port: slow.port, system_id: "didgate", password: "pw", mode: "transceiver", tps: 0.2 },
        ],
      },
    },
    dir,
  ));
  await Promise.all([smsc.waitBound(10_000), slow.waitBound(10_000)]);
  await waitFor(() => app.smpp!.clients.get("smsc-t")!.isBound && app.smpp!.clients.get("smsc-slow")!.isBound, 10_000);
  esme = await connectEsme(app.smpp!.address()!.port);
  expect((await esme.bind("bind_transceiver", "app-1", "pw-a")).command_status).toBe(0);
}, 60_000);

afterAll(async () => {
  await esme?.close();
  await app?.stop(1000);
  await smsc?.close();
  await slow?.close();
  await redis?.stop();
  await new Promise<void>((r) => receiver.close(() => r()));
});

const submit = (to: string, fields: Record<string, unknown>) =>
  esme.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: to, dest_addr_ton: 1, short_message: "code 1234", ...fields });

describe("validity: a message throttled for ever ends expired", () => {
  it("HTTP validity_s: retried while valid, then status expired in its history and in a signed message.status", async () => {
    const r = await api("POST", "/v1/messages", { from: "+15125550100", to: "+447700900301", text: "code 1234", validity_s: 4, status_webhook: hookUrl });
    expect([r.status, r.body.status]).toEqual([202, "queued"]);
    const done = await waitFor(async () => {
      const g = await api("GET", `/v1/messages/${r.body.id}`);
      return g.body.status === "expired" ? g.body : undefined;
    }, 20_000, 100);
    expect(done.history.map((h: { status: string }) => h.status)).toEqual(["queued", "expired"]);
    // it was offered to the SMSC (throttled) more than once before it expired, each time with
    // the end of its validity as validity_period (absolute, UTC; the npm smpp package reads it as a Date)
    expect(submitsTo("447700900301").length).toBeGreaterThanOrEqual(2);
    const vp = submitsTo("447700900301")[0]!.validity_period as Date;
    expect(Math.abs(vp.getTime() - (Date.parse(done.created_at) + 4000))).toBeLessThan(1000);
    const hook = await waitFor(() => hooks.find((h) => h.body.id === r.body.id && h.body.status === "expired"), 10_000);
    expect(hook.ok).toBe(true);
    expect(hook.body).toMatchObject({ type: "message.status", status: "expired", from: "+15125550100", to: "+447700900301", tenant: "acme" });
    const rec = await waitFor(() => records().find((x) => x.id === r.body.id), 10_000);
    expect(rec).toMatchObject({ status: "expired", peer: "api" });
    // no try after the expiry
    const tries = submitsTo("447700900301").length;
    await new Promise((res) => setTimeout(res, 1500));
    expect(submitsTo("447700900301").length).toBe(tries);
  }, 30_000);

  it("SMPP relative validity_period: the app gets a deliver_sm receipt stat:EXPIRED with its id, the record says expired", async () => {
    const r = await submit("447700900302", { registered_delivery: 1, validity_period: "000000000003000R" });
    expect(r.command_status).toBe(0);
    const appId = cstr(r.message_id);
    const rc = await waitFor(() => receiptsOf(esme).find((p) => String((p.short_message as { message: string }).message).startsWith(`id:${appId} `)), 20_000, 100);
    expect(String((rc.short_message as { message: string }).message)).toMatch(/stat:EXPIRED/);
    expect(submitsTo("447700900302").length).toBeGreaterThanOrEqual(1);
    const rec = await waitFor(() => records().find((x) => x.smpp_message_id === appId), 10_000);
    expect(rec).toMatchObject({ status: "expired", peer: "app-1", to: "+447700900302" });
  }, 30_000);

  it("SMPP absolute validity_period (UTC and with a zone offset) is honoured the same way", async () => {
    // 3 s from now, written in UTC+01:00 (04 quarter hours ahead): the same instant
    const at = new Date(Date.now() + 3000 + 3_600_000);
    const local = smppTime(at).slice(0, 13) + "04+";
    const r = await submit("447700900303", { registered_delivery: 1, validity_period: local });
    expect(r.command_status).toBe(0);
    const appId = cstr(r.message_id);
    const rc = await waitFor(() => receiptsOf(esme).find((p) => String((p.short_message as { message: string }).message).startsWith(`id:${appId} `)), 20_000, 100);
    expect(String((rc.short_message as { message: string }).message)).toMatch(/stat:EXPIRED/);
  }, 30_000);

  it("a validity_period that is no SMPP time, or already past, is refused with ESME_RINVEXPIRY (0x62)", async () => {
    expect((await submit("447700900304", { validity_period: "tomorrow" })).command_status).toBe(0x62);
    expect((await submit("447700900304", { validity_period: smppTime(new Date(Date.now() - 60_000)) })).command_status).toBe(0x62);
    expect((await api("POST", "/v1/messages", { from: "+15125550100", to: "+447700900304", text: "x", validity_s: 0 })).status).toBe(400);
    expect(submitsTo("447700900304").length).toBe(0);
  });

  it("a message does not wait for its bind's pacing slot past its validity: it expires unsent", async () => {
    // the first takes the bind's slot; the next slot is 5 s away, the second is valid 2 s
    const first = await api("POST", "/v1/messages", { from: "+15125550100", to: "+33612000001", text: "takes the slot" });
    expect(first.status).toBe(202);
    await waitFor(() => slow.received.some((p) => p.command === "submit_sm" && p.destination_addr === "33612000001"), 10_000);
    const r = await api("POST", "/v1/messages", { from: "+15125550100", to: "+33612000002", text: "short lived", validity_s: 2 });
    expect(r.status).toBe(202);
    await waitFor(async () => ((await api("GET", `/v1/messages/${r.body.id}`)).body.status === "expired" ? true : undefined), 20_000, 100);
    // past the next slot: it was never sent
    await new Promise((res) => setTimeout(res, 4000));
    expect(slow.received.filter((p) => p.command === "submit_sm" && p.destination_addr === "33612000002")).toEqual([]);
  }, 40_000);
});
