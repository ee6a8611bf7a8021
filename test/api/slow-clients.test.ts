/**
 * The API listener against clients that send slowly or badly, over raw TCP: an answer given before
 * the body has arrived closes the connection (a client without a token cannot hold connections
 * for the long request timeout by trickling a body), bodyless refusals keep keep-alive, and what
 * fastify or Node's parser refuse (a malformed URL, an over-long path parameter, garbage instead
 * of HTTP) is answered in the API's error shape and counted.
 */
import net from "node:net";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiServer } from "../../src/api/server.js";

const TOKEN = "slow-clients-token-0123456789";
let api: ApiServer;
let port = 0;
const registry = new Registry();

beforeAll(async () => {
  api = new ApiServer({
    host: "127.0.0.1",
    port: 0,
    tokens: [{ token: TOKEN }],
    rateLimit: { per_s: 1000, burst: 1000 },
    maxConnections: 100,
    requestTimeoutMs: 300,
    // what would hold a trickling client without the close: a minute
    longRequestTimeoutMs: 60_000,
    logger: pino({ level: "silent" }),
    registry,
  });
  await api.init("test");
  api.app.post("/v1/echo", { schema: { body: { type: "object" } } }, async (req) => ({ got: req.body }));
  api.app.get("/v1/items/:id", async (req) => ({ id: (req.params as { id: string }).id }));
  port = (await api.listen()).port;
});

afterAll(async () => {
  await api?.close();
});

/** A raw connection: everything it receives, and whether (and when) the server closed it. */
function connect(): Promise<{ sock: net.Socket; text: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    let got = "";
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => (got += d));
    sock.on("error", () => {});
    const closed = new Promise<void>((r) => sock.once("close", () => r()));
    sock.once("connect", () => resolve({ sock, text: () => got, closed }));
    sock.once("error", reject);
  });
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const r = await Promise.race([p, new Promise<never>((_r, rej) => (t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))]);
  clearTimeout(t);
  return r;
}

function statusOf(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
}

function bodyOf(text: string): unknown {
  return JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
}

async function counted(status: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === "didgate_api_requests_total");
  return ((m?.values ?? []) as Array<{ value: number; labels: Record<string, string> }>).filter((v) => v.labels.route === "unmatched" && v.labels.status === status).reduce((a, v) => a + v.value, 0);
}

describe("API listener: slow and malformed clients", () => {
  it("no token and a body still trickling in: 401 and the connection is closed, not held for the long timeout", async () => {
    const c = await connect();
    c.sock.write(`POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"a":`);
    const trickle = setInterval(() => c.sock.writable && c.sock.write(" "), 200);
    try {
      await within(c.closed, 10_000, "server closes the connection");
    } finally {
      clearInterval(trickle);
    }
    expect(statusOf(c.text())).toBe(401);
    expect(c.text()).toMatch(/\r\nconnection: close\r\n/i);
    expect(bodyOf(c.text())).toMatchObject({ error: { code: "unauthorized" } });
  });

  it("a valid token and a body slower than the request timeout: 503 timeout, and the connection is closed", async () => {
    const c = await connect();
    c.sock.write(`POST /v1/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"a":`);
    const trickle = setInterval(() => c.sock.writable && c.sock.write(" "), 100);
    try {
      await within(c.closed, 10_000, "server closes the connection");
    } finally {
      clearInterval(trickle);
    }
    expect(statusOf(c.text())).toBe(503);
    expect(bodyOf(c.text())).toEqual({ error: { code: "timeout", message: "the request took too long" } });
  });

  it("refusals of requests without a body keep the connection (keep-alive), and a whole body is answered as usual", async () => {
    const c = await connect();
    c.sock.write("GET /v1/items/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    await within(
      new Promise<void>((r) => {
        const t = setInterval(() => c.text().includes('"unauthorized"') && (clearInterval(t), r()), 10);
      }),
      5000,
      "first 401",
    );
    const body = '{"a":1}';
    c.sock.write(`POST /v1/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await within(
      new Promise<void>((r) => {
        const t = setInterval(() => c.text().includes('{"got":{"a":1}}') && (clearInterval(t), r()), 10);
      }),
      5000,
      "the echo on the same connection",
    );
    expect(c.sock.destroyed).toBe(false);
    expect(c.text()).not.toMatch(/connection: close/i);
    c.sock.destroy();
  });

  it("a malformed URL and an over-long path parameter get the API's error shape, are counted, and do not echo the URL", async () => {
    const bad0 = await counted("400");
    const long0 = await counted("414");
    for (const [path, status, code] of [
      ["/v1/items/%ff", 400, "bad_request"],
      ["/v1/items/" + "a".repeat(300), 414, "uri_too_long"],
    ] as const) {
      const c = await connect();
      c.sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      await within(c.closed, 5000, path.slice(0, 20));
      expect(statusOf(c.text()), path.slice(0, 20)).toBe(status);
      const b = bodyOf(c.text()) as { error: { code: string; message: string } };
      expect(b.error.code).toBe(code);
      expect(b.error.message).not.toContain("aaaa");
      expect(b.error.message).not.toContain("%ff");
    }
    expect(await counted("400")).toBe(bad0 + 1);
    expect(await counted("414")).toBe(long0 + 1);
  });

  it("a body that is not JSON (text/plain) gets 415 unsupported_media_type", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/echo`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" }, body: '{"a":1}' });
    expect(res.status).toBe(415);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unsupported_media_type");
  });

  it("what is not HTTP gets 400 in the API's error shape and the connection is closed", async () => {
    const c = await connect();
    c.sock.write("HELLO THERE\r\n\r\n");
    await within(c.closed, 5000, "close");
    expect(statusOf(c.text())).toBe(400);
    expect(bodyOf(c.text())).toEqual({ error: { code: "bad_request", message: "the request is not valid HTTP" } });
  });
});
