import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { Registry } from "prom-client";
import { Webhook } from "standardwebhooks";
import { afterAll, describe, expect, it } from "vitest";
import { WebhookSender } from "../../src/delivery/webhook.js";
import { RecordWriter, type RecordWebhook } from "../../src/records/writer.js";

const logger = pino({ level: "silent" });
const dirs: string[] = [];
const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "didgate-recwh-"));
  dirs.push(d);
  return d;
}

async function until(f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (f()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("condition not met in time");
}

const SECRET = "whsec_" + Buffer.from("a billing receiver's shared secret").toString("base64");

interface Got {
  headers: Record<string, string>;
  body: string;
}

/** A real HTTP receiver; `answer` decides each status. */
async function receiver(answer: (body: string) => number): Promise<{ url: string; got: Got[] }> {
  const got: Got[] = [];
  const s = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const status = answer(body);
      if (status < 300) got.push({ headers: req.headers as Record<string, string>, body });
      res.writeHead(status).end();
    });
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(s.address() as { port: number }).port}/cdr`, got };
}

function hook(url: string, over: Partial<RecordWebhook> = {}): RecordWebhook {
  const sender = new WebhookSender({ timeoutMs: 2000, allowPrivate: ["127.0.0.1/32"] });
  return { sender, url, secret: SECRET, types: ["call"], maxAgeMs: 3_600_000, now: Date.now, ...over };
}

const call = (i: number, tenant = "acme", billable = 61_500): Record<string, unknown> => ({ id: `c${i}`, direction: "inbound", tenant, billable_ms: billable, end_at: new Date().toISOString() });

describe("signed call.completed webhook from the records log", () => {
  it("posts every call record once, signed (Standard Webhooks), in order, and only call records by default", async () => {
    const r = await receiver(() => 204);
    const w = new RecordWriter({ stateDir: tmp(), stream: "x:cdr", logger, webhook: hook(r.url) });
    for (let i = 0; i < 40; i++) w.write("call", call(i));
    w.write("message", { id: "m1", direction: "inbound", parts: 2 });
    await until(() => r.got.length >= 40 && w.webhookPending === 0);
    const wh = new Webhook(SECRET);
    const bodies = r.got.map((g) => wh.verify(g.body, g.headers) as { type: string; data: { id: string; tenant: string } });
    expect(bodies.map((b) => b.data.id)).toEqual(Array.from({ length: 40 }, (_, i) => `c${i}`));
    expect(new Set(bodies.map((b) => b.type))).toEqual(new Set(["call.completed"]));
    expect(r.got[0]!.headers["webhook-id"]).toBe("c0");
    // a tampered body does not verify
    expect(() => wh.verify(r.got[0]!.body.replace("acme", "evil"), r.got[0]!.headers)).toThrow();
    await w.close();
  });

  it("keeps records while the receiver is down (5xx) and posts them all, in order, once it answers; a restart resumes from the saved cursor", async () => {
    let up = false;
    const r = await receiver(() => (up ? 200 : 503));
    const dir = tmp();
    const w1 = new RecordWriter({ stateDir: dir, stream: "x:cdr", logger, webhook: hook(r.url) });
    for (let i = 0; i < 10; i++) w1.write("call", call(i));
    await new Promise((res) => setTimeout(res, 300));
    expect(r.got.length).toBe(0);
    expect(w1.webhookPending).toBeGreaterThan(0);
    await w1.close(100);
    // a new process over the same state directory
    up = true;
    const w2 = new RecordWriter({ stateDir: dir, stream: "x:cdr", logger, webhook: hook(r.url) });
    w2.write("call", call(10));
    await until(() => r.got.length >= 11 && w2.webhookPending === 0);
    const ids = r.got.map((g) => (JSON.parse(g.body) as { data: { id: string } }).data.id);
    expect(ids).toEqual(Array.from({ length: 11 }, (_, i) => `c${i}`));
    await w2.close();
  });

  it("skips a record the receiver refuses for good (4xx) and one past max_age, and goes on", async () => {
    const r = await receiver((b) => (b.includes('"c1"') ? 400 : 200));
    const reg = new Registry();
    const w = new RecordWriter({ stateDir: tmp(), stream: "x:cdr", logger, registry: reg, webhook: hook(r.url, { types: ["call", "message"] }) });
    w.write("call", call(0));
    w.write("call", call(1));
    w.write("call", { ...call(2), end_at: new Date(Date.now() - 2 * 3_600_000).toISOString() });
    w.write("message", { id: "m3", direction: "outbound", tenant: "acme", parts: 3, final_at: new Date().toISOString() });
    await until(() => w.webhookPending === 0);
    const got = r.got.map((g) => JSON.parse(g.body) as { type: string; data: { id: string } });
    expect(got.map((g) => [g.type, g.data.id])).toEqual([
      ["call.completed", "c0"],
      ["message.completed", "m3"],
    ]);
    const text = await reg.metrics();
    expect(text).toMatch(/didgate_records_webhook_total\{outcome="refused"\} 1/);
    expect(text).toMatch(/didgate_records_webhook_total\{outcome="expired"\} 1/);
    await w.close();
  });

  it("refuses an internal address unless allowed, like every webhook", async () => {
    const r = await receiver(() => 200);
    const reg = new Registry();
    const sender = new WebhookSender({ timeoutMs: 2000 });
    const w = new RecordWriter({ stateDir: tmp(), stream: "x:cdr", logger, registry: reg, webhook: hook(r.url, { sender }) });
    w.write("call", call(0));
    await until(() => w.webhookPending === 0);
    expect(r.got.length).toBe(0);
    expect(await reg.metrics()).toMatch(/didgate_records_webhook_total\{outcome="refused"\} 1/);
    await w.close();
  });
});

describe("per-tenant usage metrics", () => {
  it("counts calls, billable seconds, messages and parts by tenant and direction, with a bounded tenant set", async () => {
    const reg = new Registry();
    const w = new RecordWriter({ stateDir: tmp(), stream: "x:cdr", logger, registry: reg, maxTenants: 2 });
    w.write("call", call(0, "acme", 61_500));
    w.write("call", call(1, "acme", 0));
    w.write("call", { ...call(2, "beta", 30_000), direction: "outbound" });
    w.write("call", call(3, "gamma", 10_000));
    w.write("call", { ...call(4, "acme", 1000), direction: "<script>" });
    w.write("message", { id: "m", direction: "inbound", tenant: "beta", parts: 3 });
    w.write("message", { id: "n", direction: "inbound", tenant: null });
    const text = await reg.metrics();
    expect(text).toContain('didgate_tenant_calls_total{tenant="acme",direction="inbound"} 2');
    expect(text).toContain('didgate_tenant_call_seconds_total{tenant="acme",direction="inbound"} 61.5');
    expect(text).toContain('didgate_tenant_call_seconds_total{tenant="beta",direction="outbound"} 30');
    expect(text).toContain('didgate_tenant_calls_total{tenant="other",direction="inbound"} 1');
    expect(text).toContain('didgate_tenant_calls_total{tenant="acme",direction="other"} 1');
    expect(text).toContain('didgate_tenant_message_parts_total{tenant="beta",direction="inbound"} 3');
    expect(text).toContain('didgate_tenant_messages_total{tenant="none",direction="inbound"} 1');
    expect(text).not.toContain("gamma");
    await w.close();
  });
});
