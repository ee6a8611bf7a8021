/**
 * The synchronous reply in a webhook's answer: the sender keeps a 200 JSON body of at most 4 KiB
 * (both transports, a real HTTP server), parseReply() reads `reply` from it, and the attempter
 * hands it back only for an inbound message.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Attempter } from "../../src/delivery/attempt.js";
import { DeliveryMetrics } from "../../src/delivery/metrics.js";
import type { DeliveryJob } from "../../src/delivery/types.js";
import { parseReply, REPLY_MAX_BYTES, REPLY_MAX_CHARS, WebhookSender } from "../../src/delivery/webhook.js";

let server: Server;
let base: string;
const big = JSON.stringify({ reply: "x", pad: "y".repeat(REPLY_MAX_BYTES) });

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const json = (type: string, status = 200, body = '{"reply":"hi there"}') => res.writeHead(status, { "content-type": type }).end(body);
      if (req.url === "/json") json("application/json; charset=utf-8");
      else if (req.url === "/vnd") json("application/vnd.acme+json");
      else if (req.url === "/text") json("text/plain");
      else if (req.url === "/201") json("application/json", 201);
      else if (req.url === "/big") json("application/json", 200, big);
      else res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

describe.each(["http", "fetch"] as const)("WebhookSender (%s) keeps a short JSON answer", (transport) => {
  it("a 200 JSON body (any +json type) is kept; text/plain, 201, 204 and one over 4 KiB are not", async () => {
    const s = new WebhookSender({ timeoutMs: 2000, transport, allowPrivate: ["127.0.0.0/8"] });
    try {
      const a = await s.send(`${base}/json`, "m1", "{}");
      expect([a.result.kind, a.body]).toEqual(["delivered", '{"reply":"hi there"}']);
      expect((await s.send(`${base}/vnd`, "m2", "{}")).body).toBe('{"reply":"hi there"}');
      for (const p of ["/text", "/201", "/none", "/big"]) {
        const x = await s.send(`${base}${p}`, "m3", "{}");
        expect([p, x.result.kind, x.body]).toEqual([p, "delivered", undefined]);
      }
    } finally {
      s.close();
    }
  });
});

describe("parseReply", () => {
  it("reads a non-empty reply string; ignores none or empty; says why otherwise", () => {
    expect(parseReply('{"reply":"ok"}')).toEqual({ reply: "ok" });
    expect(parseReply('{"reply":""}')).toEqual({});
    expect(parseReply('{"other":1}')).toEqual({});
    expect(parseReply("[1]")).toEqual({});
    expect(parseReply("null")).toEqual({});
    expect(parseReply("not json").error).toBe("answer is not JSON");
    expect(parseReply('{"reply":42}').error).toBe("reply is not a string");
    expect(parseReply(JSON.stringify({ reply: "a".repeat(REPLY_MAX_CHARS) }))).toEqual({ reply: "a".repeat(REPLY_MAX_CHARS) });
    expect(parseReply(JSON.stringify({ reply: "a".repeat(REPLY_MAX_CHARS + 1) })).error).toMatch(/over/);
  });
});

describe("Attempter", () => {
  const job = (type: "message.received" | "message.receipt", url: string): DeliveryJob =>
    ({ id: "j1", body: { type, id: "j1" } as never, target: { webhook: url }, acceptedAt: Date.now(), attempts: 0 }) as DeliveryJob;

  it("hands back the reply of an inbound message's webhook, never of a receipt's", async () => {
    const sender = new WebhookSender({ timeoutMs: 2000, allowPrivate: ["127.0.0.0/8"] });
    const a = new Attempter({ sender, metrics: new DeliveryMetrics(new Registry()), logger: pino({ level: "silent" }), smppTimeoutMs: 1000 });
    try {
      expect((await a.round(job("message.received", `${base}/json`), 0)).result).toEqual({ kind: "delivered", reply: "hi there" });
      expect((await a.round(job("message.receipt", `${base}/json`), 0)).result).toEqual({ kind: "delivered" });
      expect((await a.round(job("message.received", `${base}/text`), 0)).result).toEqual({ kind: "delivered" });
    } finally {
      sender.close();
    }
  });
});
